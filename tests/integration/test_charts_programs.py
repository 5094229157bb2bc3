"""The programs accept what the charts hand them: the observer's environment (observer-config, plus what the
chart's Secret would add) through its own settings, authentication and backend registry; the auth ConfigMap
through the subject-type parser; the collector's rendered YAML through `observer collect`'s loader; the agent's
arguments through its flag parser; the control plane's environment through its settings. A chart that renders a
variable name or a config key the program does not read fails here, not in a cluster."""

from __future__ import annotations

import datetime
import re
import socket
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from access.settings import AuthSettings
from access.subjects import parse_subject_types
from adapters import registry
from adapters.opensearch.plugin import Settings as OpenSearchSettings
from agents.config import parse as parse_agent_flags
from audit.settings import AuditSettings
from collectors.config import load as load_collector_config
from controlplane.auth import AccessSettings
from controlplane.config import ControlPlaneSettings
from devservers.gateway_certs import GatewayPki
from devservers.helm import template
from devservers.tls_proxy import write_pem
from observer.config import Settings
from tests.integration.test_charts_render import CASES, container, find, helm_bin  # noqa: F401  (session fixture)
from tunnel.tls import client_context

_REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def kubelet_env(
    c: dict[str, Any],
    *,
    pod_name: str,
    secrets: Mapping[tuple[str, str], str] = {},
    namespace: str = "plane",
    node_name: str = "node-1",
) -> dict[str, str]:
    """A container's environment as the kubelet builds it: `value`, `fieldRef` (the pod's `metadata.name`,
    `metadata.namespace` and `spec.nodeName`), `secretKeyRef` from `secrets` ((Secret, key) -> value; an
    `optional` one missing there is left unset), and `$(NAME)` expanded from the variables defined before it (a
    reference to a later or unknown one stays as written, as in Kubernetes)."""
    fields = {"metadata.name": pod_name, "metadata.namespace": namespace, "spec.nodeName": node_name}
    out: dict[str, str] = {}
    for item in c.get("env", []):
        if "value" in item:
            value = _REFERENCE.sub(lambda m: out.get(m.group(1), m.group(0)), item["value"])
        elif "fieldRef" in item["valueFrom"]:
            value = fields[item["valueFrom"]["fieldRef"]["fieldPath"]]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            if (ref["name"], ref["key"]) not in secrets and ref.get("optional"):
                continue
            value = secrets[(ref["name"], ref["key"])]
        out[item["name"]] = value
    return out


def observer_environment(
    objects: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, secret: dict[str, str]
) -> None:
    """The observer container's environment as the kubelet would build it: envFrom ConfigMap, the Secret, env."""
    c = container(objects, "Deployment", "observer")
    variables = dict(find(objects, "ConfigMap", "observer-config")["data"])
    variables.update(secret)
    variables.update({item["name"]: item["value"] for item in c.get("env", []) if "value" in item})
    for name, value in variables.items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize(
    ("case", "secret", "backends"),
    [
        ("op-embedded", {}, ["embedded"]),
        (
            "op-opensearch-prometheus",
            {"OPENSEARCH_PASSWORD": "p", "UID_RESOLVER_OAUTH_CLIENT_SECRET": "s"},
            ["embedded", "http", "opensearch", "prometheus"],
        ),  # http: the logs and metrics adapters
        ("op-datadog", {"DD_API_KEY": "k", "DD_APP_KEY": "a"}, ["embedded", "datadog"]),
        ("op-auth-off", {}, ["embedded"]),
    ],
)
def test_the_observer_reads_its_rendered_environment(
    helm_bin: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    secret: dict[str, str],
    backends: list[str],
) -> None:
    objects = template(*CASES[case])
    observer_environment(objects, monkeypatch, secret)
    settings = Settings()
    assert (settings.host, settings.port, settings.internal_port, settings.otlp_port) == ("0.0.0.0", 8080, 8081, 4318)
    assert str(settings.data_dir) == "/data" and settings.alert_store_backend == "sqlite"
    auth = AuthSettings.from_env()
    assert auth.enabled is (case != "op-auth-off")
    chosen = sorted(entry.name for entry, _ in registry.enabled())
    assert chosen == sorted(backends)
    audit = AuditSettings.from_env()
    if case == "op-opensearch-prometheus":
        assert audit == AuditSettings(("sink", "stdout"), trust_forwarded_for=True)
        assert OpenSearchSettings().audit_prefix == "acme-audit-"
    else:
        assert audit == AuditSettings(("sink",), trust_forwarded_for=False)


def test_the_observer_reads_its_rendered_subject_types(helm_bin: Path) -> None:  # noqa: F811
    objects = template(*CASES["op-embedded"])
    document = yaml.safe_load(find(objects, "ConfigMap", "observer-auth-config")["data"]["auth-config.yaml"])
    types = parse_subject_types(document)
    assert [(t.type, t.entitlement_claim) for t in types] == [("user", "groups"), ("service_account", "sub")]


#: What the Secrets the chart cases name hold: the observer's internal token, under the keys the cases give.
TOKEN = "internal-token-0123456789"
SECRETS = {("observer-secrets", "OBSERVER_INTERNAL_TOKEN"): TOKEN, ("observer-internal-token", "token"): TOKEN}


@pytest.mark.parametrize("case", ["op-embedded", "op-opensearch-prometheus", "dp-default", "dp-own-certs"])
def test_the_collector_loads_its_rendered_config(helm_bin: Path, tmp_path: Path, case: str) -> None:  # noqa: F811
    objects = template(*CASES[case], namespace="plane")
    path = tmp_path / "collector.yaml"
    path.write_text(find(objects, "ConfigMap", "collector-config")["data"]["collector.yaml"])
    c = container(objects, "DaemonSet", "collector")
    loaded = load_collector_config(path, kubelet_env(c, pod_name="collector-x1", secrets=SECRETS))
    assert loaded.metadata.kubernetes is not None and loaded.metadata.kubernetes.node_name == "node-1"
    assert loaded.metadata.kubernetes.kubeconfig is None, "in-cluster: the pod's ServiceAccount"
    assert loaded.receivers.tail is not None and str(loaded.receivers.tail.checkpoint).startswith("/var/lib/observer/")
    assert str(loaded.buffer.directory) == "/var/lib/observer/buffer"
    assert loaded.exporter.otlp is not None and loaded.exporter.otlp.endpoint.startswith("http")
    assert (loaded.telemetry.host, loaded.telemetry.port) == ("0.0.0.0", 2020)
    assert (loaded.receivers.otlp is not None) is (case == "dp-default")
    assert loaded.receivers.otlp is None or loaded.receivers.otlp.audit_token == "", "workloads never send audit"
    assert loaded.cluster == {"op-opensearch-prometheus": "prod-eu-1", "dp-own-certs": "dp-eu-1"}.get(case, "default")
    producers = [(p.namespace, p.container, p.pod_prefix) for p in loaded.audit.trusted_producers]
    if case == "op-opensearch-prometheus":
        assert producers == [("cp", "controlplane", "controlplane-"), ("plane", "observer", "")]
    else:
        assert producers[0] == ("openchoreo-control-plane", "controlplane", "controlplane-")
        assert producers[1:] == ([("plane", "observer", "observer-")] if case == "op-embedded" else [])
    with_token = case in ("op-opensearch-prometheus", "dp-own-certs")
    assert loaded.exporter.otlp.audit_token == (TOKEN if with_token else "")


@pytest.mark.parametrize(
    ("case", "name"),
    [
        ("op-embedded", "cluster-agent-observabilityplane"),
        ("op-opensearch-prometheus", "cluster-agent-observabilityplane"),
        ("dp-default", "cluster-agent-dataplane"),
    ],
)
def test_the_agent_accepts_its_rendered_flags(
    helm_bin: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    name: str,
) -> None:
    """...and its environment: on an observability plane whose observer Secret holds OBSERVER_INTERNAL_TOKEN, the
    agent calls the observer's internal port with it."""
    objects = template(*CASES[case], namespace="plane")
    monkeypatch.delenv("OBSERVER_INTERNAL_TOKEN", raising=False)
    for variable, value in kubelet_env(container(objects, "Deployment", name), pod_name="a", secrets=SECRETS).items():
        monkeypatch.setenv(variable, value)
    args = container(objects, "Deployment", name)["args"]
    assert args[0] == "agent"
    for directory in ("certs", "ca-certs"):
        (tmp_path / directory).mkdir()
        for file in ("tls.crt", "tls.key", "ca.crt"):
            (tmp_path / directory / file).write_text("x")
    flags = [
        arg.replace("=/certs/", f"={tmp_path}/certs/").replace("=/ca-certs/", f"={tmp_path}/ca-certs/")
        for arg in args[1:]
    ]
    config = parse_agent_flags(flags)
    assert config.server_url == "wss://cluster-gateway.openchoreo-control-plane.svc.cluster.local:8443/ws"
    assert config.plane_id == "default"
    assert config.observer_token == (TOKEN if case == "op-opensearch-prometheus" else "")
    if case.startswith("op-"):
        assert config.plane_type == "observabilityplane"
        assert config.observer_url == "http://observer-internal.plane.svc.cluster.local:8081"
    else:
        assert config.plane_type == "dataplane" and config.observer_url == ""


@pytest.mark.parametrize("case", ["cp-sqlite", "cp-postgres", "cp-auth-off-external"])
def test_the_control_plane_reads_its_rendered_environment(
    helm_bin: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    case: str,
) -> None:
    objects = template(*CASES[case])
    c = container(objects, "StatefulSet", "controlplane")
    secrets = {("cp-db", "dsn"): "postgresql://cp:secret@postgres:5432/cp"}
    for name, value in kubelet_env(c, pod_name="controlplane-1", secrets=secrets).items():
        monkeypatch.setenv(name, value)
    settings = ControlPlaneSettings()
    assert (settings.host, settings.api_port, settings.agent_port, settings.internal_port) == (
        "0.0.0.0",
        8090,
        8443,
        8444,
    )
    assert settings.gateway_enabled and settings.internal_mtls_enabled
    assert (
        str(settings.server_cert_path) == "/certs/tls.crt"
        and str(settings.internal_client_ca_path) == "/internal-ca/ca.crt"
    )
    assert (settings.heartbeat_interval, settings.heartbeat_timeout) == (30.0, 90.0)
    if case == "cp-postgres":
        assert settings.db_url.startswith("postgresql://") and settings.shared_store
        assert settings.peer_url == "https://controlplane-1.controlplane-peers.default.svc.cluster.local:8444"
        assert (str(settings.gateway_ca_cert), str(settings.gateway_client_cert), str(settings.gateway_client_key)) == (
            "/certs/ca.crt",
            "/peer-client/tls.crt",
            "/peer-client/tls.key",
        )
    else:
        assert settings.db_url == "sqlite:////data/controlplane.db"
        assert settings.peer_url == "" and settings.gateway_ca_cert is None
    access = AccessSettings.from_env()
    assert access.enabled is (case != "cp-auth-off-external")
    audit = AuditSettings.from_env(default="stdout")
    if case == "cp-auth-off-external":
        assert audit == AuditSettings((), trust_forwarded_for=True)
    else:
        assert audit == AuditSettings(("stdout",), trust_forwarded_for=False)


@pytest.mark.parametrize("case", ["op-embedded", "op-auth-off"])
def test_the_observer_starts_with_its_rendered_configuration(helm_bin: Path, tmp_path: Path, case: str) -> None:  # noqa: F811
    """`observer up` with the rendered environment, subject types and authorization policy (only the listen
    address, the ports, the data directory and the mounted files' paths moved to loopback and a temporary
    directory): it starts, and authentication is on or off as the values say."""
    from devservers.observer import observer_up

    objects = template(*CASES[case])
    environment = dict(find(objects, "ConfigMap", "observer-config")["data"])
    auth_config = tmp_path / "auth-config.yaml"
    auth_config.write_text(find(objects, "ConfigMap", "observer-auth-config")["data"]["auth-config.yaml"])
    environment |= {"OBSERVER_HOST": "127.0.0.1", "OBSERVER_AUTH_CONFIG_PATH": str(auth_config)}
    if "OBSERVER_AUTHZ_POLICY_FILE" in environment:
        policy = tmp_path / "policy.yaml"
        policy.write_text(find(objects, "ConfigMap", "observer-authz-policy")["data"]["policy.yaml"])
        environment["OBSERVER_AUTHZ_POLICY_FILE"] = str(policy)
    with observer_up(tmp_path / "data", env=environment) as observer:
        response = httpx.post(f"{observer.api}/api/v1/logs/query", json={}, timeout=10)
    assert (response.status_code == 401) is (case == "op-embedded"), response.text


@pytest.mark.parametrize("case", ["cp-sqlite", "cp-auth-off-external"])
def test_the_control_plane_starts_with_its_rendered_environment(helm_bin: Path, tmp_path: Path, case: str) -> None:  # noqa: F811
    """`observer controlplane` with the rendered environment (the ports, the data directory and the certificate
    files moved to loopback and a temporary directory): the API and the gateway start, and the API asks for a
    token or not as the values say."""
    from devservers.controlplane import controlplane_process
    from devservers.gateway_certs import gateway_env, gateway_pki

    objects = template(*CASES[case])
    environment = kubelet_env(container(objects, "StatefulSet", "controlplane"), pod_name="controlplane-0")
    (tmp_path / "pki").mkdir()
    pki = gateway_pki(tmp_path / "pki")
    with controlplane_process(tmp_path / "data", env=environment, gateway=gateway_env(pki)) as running:
        assert running.agent_port and running.internal_port
        response = httpx.get(f"{running.url}/api/v1/namespaces", timeout=10)
    assert (response.status_code == 401) is (case == "cp-sqlite"), response.text
    assert (tmp_path / "data" / "controlplane.db").is_file(), "SQLite in the data directory, as on the PVC"


def serving_certificate(pki: GatewayPki, directory: Path, dns_names: list[str]) -> tuple[Path, Path]:
    """What cert-manager makes of the rendered Certificate cluster-gateway-tls: a serverAuth leaf of the gateway's
    CA for exactly its dnsNames (wildcards included)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cluster-gateway")]))
        .issuer_name(pki.server_ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name) for name in dns_names]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(pki.server_ca.key.public_key()), critical=False
        )
        .sign(pki.server_ca.key, hashes.SHA256())
    )
    return write_pem(directory, "cluster-gateway-tls", cert, key)


def mounted_secrets(objects: list[dict[str, Any]], root: Path, pki: GatewayPki) -> dict[str, Path]:
    """The pod's Secret volumes laid out under `root` as the kubelet mounts them (mount path -> directory), with
    what cert-manager would have put in each Secret: the serving certificate with the gateway's CA as `ca.crt`, the
    internal CA, and the replicas' client certificate of that internal CA."""
    serving = find(objects, "Certificate", "cluster-gateway-tls")["spec"]["dnsNames"]
    cert, key = serving_certificate(pki, root, serving)
    contents = {
        "gateway-tls": {"tls.crt": cert, "tls.key": key, "ca.crt": pki.server_ca.path},
        "internal-ca": {"ca.crt": pki.internal_ca.path},
        "peer-client": {"tls.crt": pki.internal_client.cert, "tls.key": pki.internal_client.key},
    }
    mounts: dict[str, Path] = {}
    for mount in container(objects, "StatefulSet", "controlplane")["volumeMounts"]:
        if mount["name"] not in contents:
            continue
        directory = root / mount["name"]
        directory.mkdir()
        for file, source in contents[mount["name"]].items():
            (directory / file).write_bytes(source.read_bytes())
        mounts[mount["mountPath"]] = directory
    return mounts


def test_a_replica_on_postgresql_starts_with_its_rendered_environment_and_peers_can_verify_it(
    helm_bin: Path,  # noqa: F811
    postgres_server: Any,
    tmp_path: Path,
) -> None:
    """`observer controlplane` as pod controlplane-1 of a PostgreSQL install with replicas: the rendered
    environment (CONTROLPLANE_PEER_URL from the pod's name, the peers' CA and client certificate) passes the
    start-up checks that refuse a replica missing them, and a peer holding the rendered client certificate and
    CA reaches its internal API under the rendered peer host name (the serving certificate made from the rendered
    Certificate's SANs). Only the ports, the data directory and the mounted files' directory are moved."""
    from devservers.controlplane import controlplane_process
    from devservers.gateway_certs import gateway_pki

    objects = template(*CASES["cp-postgres"], namespace="cp")
    dsn = postgres_server.fresh_database()
    environment = kubelet_env(
        container(objects, "StatefulSet", "controlplane"), pod_name="controlplane-1", secrets={("cp-db", "dsn"): dsn}
    )
    peer_url = environment["CONTROLPLANE_PEER_URL"]
    assert peer_url == "https://controlplane-1.controlplane-peers.cp.svc.cluster.local:8444"
    (tmp_path / "pki").mkdir()
    pki = gateway_pki(tmp_path / "pki")
    (tmp_path / "mounts").mkdir()
    mounts = mounted_secrets(objects, tmp_path / "mounts", pki)
    assert set(mounts) == {"/certs", "/internal-ca", "/peer-client"}
    for name, value in environment.items():
        for mount_path, directory in mounts.items():
            if value.startswith(mount_path + "/"):
                environment[name] = str(directory / value.removeprefix(mount_path + "/"))
    gateway = {name: environment.pop(name) for name in list(environment) if name.startswith(("SERVER_", "INTERNAL_"))}
    with controlplane_process(tmp_path / "data", db=dsn, env=environment, gateway=gateway) as running:
        context = client_context(
            environment["CLUSTER_GATEWAY_CA_CERT"],
            environment["CLUSTER_GATEWAY_CLIENT_CERT"],
            environment["CLUSTER_GATEWAY_CLIENT_KEY"],
        )
        host = peer_url.removeprefix("https://").rpartition(":")[0]
        status = _status_line(context, running.internal_port, host)
        wrong_name = ssl.SSLCertVerificationError
        with pytest.raises(wrong_name, match="match|mismatch"):
            _status_line(context, running.internal_port, "controlplane-1.elsewhere.cp.svc.cluster.local")
    assert status.startswith(b"HTTP/1.1 "), status


def _status_line(context: ssl.SSLContext, port: int, server_hostname: str) -> bytes:
    """The first line of a GET / on 127.0.0.1:`port` over TLS, the certificate checked for `server_hostname`
    (what a peer dialing that name checks; the name itself resolves only in the cluster)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=server_hostname) as tls:
            tls.sendall(f"GET / HTTP/1.1\r\nHost: {server_hostname}\r\nConnection: close\r\n\r\n".encode())
            return tls.recv(4096).split(b"\r\n", 1)[0]
