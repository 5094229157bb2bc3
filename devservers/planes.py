"""The whole platform on one machine, for the end-to-end and fault tests of the control plane: the control plane
process with its gateway, a data-plane agent and an observability-plane agent (each its own ServiceAccount in its
own namespace of one kube-apiserver, each with a certificate of its own CA), and the observer the observability
plane's agent reconciles alert rules into.

The control plane keeps its ports across a restart (`ControlPlane.stop()` then `start()`), because the agents
were started with its gateway URL and must find it again when it comes back: that is the fault being tested.

The walk-through manifests (docs/walkthrough/) are applied as written except for what only a running rig knows:
`walkthrough_copy` fills in the agents' CA certificates, the observer's URL and the webhook receiver's URL, and
may move everything to another control-plane namespace (so two tests on one kube-apiserver never share names).

    with platform(tmp_path, kube_api) as rig, rig.dataplane_agent(), rig.observability_agent():
        manifests = rig.walkthrough(namespace="acme", webhook_url=hook.url + "/alerts")
        rig.observer_cli("apply", "-f", str(manifests))        # `observer apply -f DIR --server <cp>`
        await until(lambda: rule_ready(read_rule(rig.kube_client(), "acme")), "the rule never became Ready")
"""

from __future__ import annotations

import asyncio
import functools
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import yaml
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from controlplane import kinds
from devservers.agent import Agent, agent_up
from devservers.gateway_certs import GatewayPki, KeyPair, ca_pem, gateway_env, gateway_pki, issue
from devservers.kube import KubeServer
from devservers.kube_accounts import AgentAccount, agent_account
from devservers.local import free_port, wait_until_answering
from devservers.observer import AllInOne, observer_up
from devservers.receivers import WebhookReceiver
from devservers.tls_proxy import Ca, make_ca

REPO = Path(__file__).resolve().parents[1]
WALKTHROUGH = REPO / "docs" / "walkthrough"
ALERT_RULE_CRD = REPO / "tests" / "data" / "controlplane" / "openchoreo.dev_observabilityalertrules.yaml"
RULE_GROUP, RULE_VERSION, RULE_PLURAL = "openchoreo.dev", "v1alpha1", "observabilityalertrules"

# The names the walk-through uses (docs/walkthrough/*.yaml).
PROJECT, COMPONENT, ENVIRONMENT = "shop", "checkout", "development"
DATA_PLANE, OBSERVABILITY_PLANE = "laptop", "laptop-obs"
BINDING = f"{COMPONENT}-{ENVIRONMENT}"
TRAIT_INSTANCE = "payment-declined"
RULE = f"{COMPONENT}-{ENVIRONMENT}-{TRAIT_INSTANCE}"  # <component>-<environment>-<instanceName>
CHANNEL = "team-webhook"
OBSERVER_TOKEN = "walkthrough-internal-token-0123456789"
START_TIMEOUT_S = 60.0
WAIT_S = 90.0  # what `until` waits by default: a guard against a hang, never a timing assertion
FIRE_WAIT_S = 180.0  # a 1m rule is evaluated at the next minute boundary (+5 s): at most ~2 slots


def dataplane_namespace(namespace: str) -> str:
    """Where the data plane gets the component's Deployment and Service: `dp-<ns>-<project>-<env>`."""
    return f"dp-{namespace}-{PROJECT}-{ENVIRONMENT}"


# ----------------------------------------------------------------------------------------------- the control plane


@dataclass
class ControlPlane:
    """`python -m controlplane.run` with its gateway, on ports fixed at construction so that a restart comes back
    where the agents dial. Its output is appended to `log_file` across restarts."""

    data_dir: Path
    log_file: Path
    env: Mapping[str, str]
    port: int = field(default_factory=free_port)
    agent_port: int = field(default_factory=free_port)
    internal_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    _output: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def gateway_url(self) -> str:
        """What an agent's --server-url is (the agent adds planeType and planeID)."""
        return f"wss://127.0.0.1:{self.agent_port}/ws"

    def start(self) -> None:
        """Start the process and wait until its API answers /ready (RuntimeError with its output otherwise)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._output = open(self.log_file, "ab")  # closed by stop()
        command = [sys.executable, "-m", "controlplane.run", "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--data-dir", str(self.data_dir)]
        variables = {
            **os.environ,
            "LOG_LEVEL": "info",
            "JWT_DISABLED": "true",
            **self.env,
            "AGENT_SERVER_PORT": str(self.agent_port),
            "AGENT_INTERNAL_PORT": str(self.internal_port),
        }
        self.process = subprocess.Popen(command, stdout=self._output, stderr=self._output, env=variables)
        try:
            wait_until_answering(self.process, functools.partial(_ready, self.url), "controlplane", START_TIMEOUT_S)
        except RuntimeError as exc:
            self.stop()
            raise RuntimeError(f"{exc}; its output ends with:\n{self.output()[-2000:]}") from None

    def stop(self) -> None:
        """SIGTERM (SIGKILL after 30 s); the store stays in `data_dir` for the next start."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        if self._output is not None:
            self._output.close()
            self._output = None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def output(self) -> str:
        return self.log_file.read_bytes().decode(errors="replace") if self.log_file.exists() else ""

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """One resource through the REST API (None on 404)."""
        answer = httpx.get(self.url + kinds.get(kind).item_path(name, namespace), timeout=10)
        if answer.status_code == 404:
            return None
        answer.raise_for_status()
        document: dict[str, Any] = answer.json()
        return document


def _ready(url: str) -> bool:
    return httpx.get(f"{url}/ready", timeout=1).status_code == 200


# ----------------------------------------------------------------------------------------------- the rig


@dataclass
class Platform:
    """Everything `platform()` started, and how to start the agents and apply manifests against it."""

    directory: Path
    kube: KubeServer
    pki: GatewayPki
    control: ControlPlane
    observer: AllInOne
    dataplane_ca: Ca
    observability_ca: Ca
    dataplane_account: AgentAccount
    observability_account: AgentAccount

    def kube_client(self) -> k8s.ApiClient:
        """An admin client of the kube-apiserver both planes share (the test's eyes, never an agent's)."""
        return self.kube.api_client()

    @contextmanager
    def dataplane_agent(self, name: str = "dp-agent") -> Iterator[Agent]:
        """The data plane's agent process (its log: `<directory>/<name>.log`)."""
        cert = issue(self.dataplane_ca, self.directory, name, client=True)
        with self._agent("dataplane", DATA_PLANE, cert, self.dataplane_account, name) as agent:
            yield agent

    @contextmanager
    def observability_agent(self, name: str = "obs-agent") -> Iterator[Agent]:
        """The observability plane's agent process, reconciling alert rules into the observer."""
        cert = issue(self.observability_ca, self.directory, name, client=True)
        extra = ("--observer-url", self.observer.internal)
        env = {"OBSERVER_INTERNAL_TOKEN": OBSERVER_TOKEN}
        with self._agent("observabilityplane", OBSERVABILITY_PLANE, cert, self.observability_account, name,
                         extra, env) as agent:  # fmt: skip
            yield agent

    @contextmanager
    def _agent(
        self,
        plane_type: str,
        plane_id: str,
        cert: KeyPair,
        account: AgentAccount,
        name: str,
        extra_args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> Iterator[Agent]:
        with agent_up(
            self.directory,
            plane_type=plane_type,
            plane_id=plane_id,
            server_url=self.control.gateway_url,
            client_cert=cert.cert,
            client_key=cert.key,
            server_ca=self.pki.server_ca.path,
            kubeconfig=account.kubeconfig,
            extra_args=extra_args,
            env=env,
            name=name,
        ) as agent:
            yield agent

    def walkthrough(self, *, namespace: str, webhook_url: str) -> Path:
        """The walk-through filled in for this rig, in a folder of its own (see `walkthrough_copy`)."""
        return walkthrough_copy(
            self.directory / f"walkthrough-{namespace}",
            namespace=namespace,
            dataplane_ca=ca_pem(self.dataplane_ca),
            observability_ca=ca_pem(self.observability_ca),
            observer_url=self.observer.api,
            webhook_url=webhook_url,
        )

    def observer_cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`observer <args> --server <the control plane>`: the real command, as a subprocess."""
        return subprocess.run(
            [sys.executable, "-m", "observer.cli", *args, "--server", self.control.url],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "CONTROLPLANE_TOKEN": ""},
        )


@contextmanager
def platform(
    directory: Path, kube: KubeServer, *, reconcile_interval: float = 300.0, observer_env: Mapping[str, str] = {}
) -> Iterator[Platform]:
    """Start the observer and the control plane (with its gateway); make the agents' identities and CAs and
    install the ObservabilityAlertRule CRD. The agents are the test's to start (`Platform.dataplane_agent()`)."""
    directory.mkdir(parents=True, exist_ok=True)
    install_alert_rule_crd(kube)
    pki = gateway_pki(directory)
    dataplane_ca, observability_ca = make_ca(directory, "dataplane-agent-ca"), make_ca(directory, "obs-agent-ca")
    accounts = agent_account(kube, directory, "dataplane"), agent_account(kube, directory, "observabilityplane")
    env = {
        **gateway_env(pki),
        "RECONCILE_INTERVAL": str(reconcile_interval),
        "RECONCILE_PROGRESSING_INTERVAL": "1",
    }
    control = ControlPlane(directory / "controlplane", directory / "controlplane.log", env)
    observer_settings = {
        "OBSERVER_INTERNAL_TOKEN": OBSERVER_TOKEN,
        "OBSERVER_RULE_RECONCILE_INTERVAL_SECONDS": "1",
        **observer_env,
    }
    with observer_up(directory / "observer", log_file=directory / "observer.log", env=observer_settings) as observer:
        control.start()
        try:
            yield Platform(directory, kube, pki, control, observer, dataplane_ca, observability_ca, *accounts)
        finally:
            control.stop()


def install_alert_rule_crd(kube: KubeServer) -> None:
    """The ObservabilityAlertRule CRD in the shared kube-apiserver (idempotent), waited for until Established."""
    client = kube.api_client()
    try:
        extensions = k8s.ApiextensionsV1Api(client)
        try:
            extensions.create_custom_resource_definition(yaml.safe_load(ALERT_RULE_CRD.read_text()))
        except ApiException as exc:
            if exc.status != 409:
                raise
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            crd: Any = extensions.read_custom_resource_definition(f"{RULE_PLURAL}.{RULE_GROUP}")
            if any(c.type == "Established" and c.status == "True" for c in (crd.status.conditions or [])):
                return
            time.sleep(0.1)
        raise RuntimeError("the ObservabilityAlertRule CRD never became Established")
    finally:
        client.close()


# ----------------------------------------------------------------------------------------------- the manifests


def walkthrough_copy(
    destination: Path,
    *,
    namespace: str,
    dataplane_ca: str,
    observability_ca: str,
    observer_url: str,
    webhook_url: str,
    source: Path = WALKTHROUGH,
) -> Path:
    """Write each walk-through file to `destination` (same names, so the same order) with what only a running
    platform knows filled in: the plane CRs' clientCA PEMs, the ObservabilityPlane's observerURL, the channel's
    webhook URL, and `namespace` as the control-plane namespace of every document. Nothing else changes."""
    destination.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.glob("*.yaml")):
        documents = [doc for doc in yaml.safe_load_all(path.read_text()) if isinstance(doc, dict)]
        for doc in documents:
            _fill(doc, namespace, dataplane_ca, observability_ca, observer_url, webhook_url)
        (destination / path.name).write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return destination


def _fill(
    doc: dict[str, Any], namespace: str, dataplane_ca: str, observability_ca: str, observer_url: str, webhook_url: str
) -> None:
    kind, metadata, spec = doc["kind"], doc["metadata"], doc.get("spec") or {}
    if kind == "Namespace":
        metadata["name"] = namespace
    elif kinds.get(kind).namespaced:
        metadata["namespace"] = namespace
    if kind == "DataPlane":
        spec["clusterAgent"]["clientCA"] = {"value": dataplane_ca}
    elif kind == "ObservabilityPlane":
        spec["clusterAgent"]["clientCA"] = {"value": observability_ca}
        spec["observerURL"] = observer_url
    elif kind == "ObservabilityAlertsNotificationChannel":
        spec["webhookConfig"]["url"] = webhook_url


# ----------------------------------------------------------------------------------------------- what tests read


def identity_labels(control: ControlPlane, namespace: str) -> dict[str, str]:
    """The `openchoreo.dev/*` names and UIDs of the walk-through's component, as the control plane assigned them:
    what the collector puts on the component's logs and what the rendered objects carry."""
    uids = {}
    for kind, name in (("Project", PROJECT), ("Component", COMPONENT), ("Environment", ENVIRONMENT)):
        document = control.get(kind, namespace, name)
        if document is None:
            raise LookupError(f"{kind} {namespace}/{name} is not in the control plane")
        uids[kind] = str(document["metadata"]["uid"])
    return {
        "openchoreo.dev/namespace": namespace,
        "openchoreo.dev/project": PROJECT,
        "openchoreo.dev/project-uid": uids["Project"],
        "openchoreo.dev/component": COMPONENT,
        "openchoreo.dev/component-uid": uids["Component"],
        "openchoreo.dev/environment": ENVIRONMENT,
        "openchoreo.dev/environment-uid": uids["Environment"],
    }


def send_logs(observer: AllInOne, labels: Mapping[str, str], lines: list[str]) -> None:
    """OTLP/HTTP log records from the component (resource attributes = its identity labels), stamped now."""
    now = time.time_ns()
    records = [
        {"timeUnixNano": str(now - i * 1_000_000), "severityText": "ERROR", "body": {"stringValue": line}}
        for i, line in enumerate(lines)
    ]
    attributes = [{"key": key, "value": {"stringValue": value}} for key, value in labels.items()]
    attributes.append({"key": "k8s.pod.name", "value": {"stringValue": f"{COMPONENT}-0"}})
    body = {"resourceLogs": [{"resource": {"attributes": attributes}, "scopeLogs": [{"logRecords": records}]}]}
    answer = httpx.post(f"{observer.otlp}/v1/logs", json=body, timeout=30)
    answer.raise_for_status()


def binding_conditions(control: ControlPlane, namespace: str) -> dict[str, dict[str, Any]]:
    """The ReleaseBinding's status conditions by type, read through the control plane's API."""
    binding = control.get("ReleaseBinding", namespace, BINDING)
    conditions = ((binding or {}).get("status") or {}).get("conditions") or []
    return {str(c["type"]): c for c in conditions}


def agent_connection(control: ControlPlane, kind: str, namespace: str, name: str) -> dict[str, Any]:
    """A plane CR's `status.agentConnection` (empty when not written yet)."""
    document = control.get(kind, namespace, name) or {}
    return dict((document.get("status") or {}).get("agentConnection") or {})


def read_or_none(call: Any, *args: Any) -> Any:
    """A kube client read; None on 404."""
    try:
        return call(*args)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def read_rule(api: k8s.ApiClient, namespace: str, name: str = RULE) -> dict[str, Any] | None:
    """The ObservabilityAlertRule CR in the observability plane (None when absent)."""
    custom = k8s.CustomObjectsApi(api)
    found: dict[str, Any] | None = read_or_none(
        custom.get_namespaced_custom_object, RULE_GROUP, RULE_VERSION, namespace, RULE_PLURAL, name
    )
    return found


def rule_ready(rule: Mapping[str, Any] | None, generation: int | None = None) -> bool:
    """The agent synced the rule into the observer: phase Ready, Synced True (for `generation`, when given)."""
    status = (rule or {}).get("status") or {}
    synced = any(c.get("type") == "Synced" and c.get("status") == "True" for c in status.get("conditions") or [])
    fresh = generation is None or status.get("observedGeneration") == generation
    return bool(status.get("phase") == "Ready" and synced and fresh)


async def until(check: Callable[[], Any], what: Callable[[], str] | str, timeout_s: float = WAIT_S) -> Any:
    """Poll `check` in a thread (it may block on a kube or HTTP client) until it returns something truthy; on
    timeout fail with `what` (a callable is asked then, so the message shows the state at that moment)."""
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                found = await asyncio.to_thread(check)
                if found:
                    return found
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(what() if callable(what) else what) from None


async def fire_until_notified(observer: AllInOne, hook: WebhookReceiver, labels: Mapping[str, str]) -> None:
    """Five lines matching the walk-through's rule a batch, every 20 s, until `hook` has a request: whichever
    point of its minute the rule became Ready at, some batch lands in a slot the evaluator has yet to run."""
    lines = [f"ERROR payment declined for order #{i}" for i in range(5)]
    try:
        async with asyncio.timeout(FIRE_WAIT_S):
            while not hook.requests:
                await asyncio.to_thread(send_logs, observer, labels, lines)
                try:
                    await hook.wait_for(1, 20)
                except TimeoutError:
                    continue
    except TimeoutError:
        raise AssertionError(f"no notification within {FIRE_WAIT_S} s of sending matching logs") from None
