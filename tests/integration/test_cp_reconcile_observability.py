"""The observability plane through the real chain (store -> Reconciler -> Gateway -> agent process -> the real
kube-apiserver with the ObservabilityAlertRule CRD): a component's alert-rule trait becomes an
ObservabilityAlertRule CR in the namespace named after the control-plane namespace, a notification channel becomes
its ConfigMap + Secret (the header token read from the store's v1 Secret) with the channel controller's labels; removing the trait prunes the rule and deleting the
channel sweeps its objects. Only the observability plane's agent runs, so the binding also shows a release applied
to one plane while the other (the data plane) is away."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from controlplane.gateway.server import start
from controlplane.gateway.service import Gateway
from controlplane.planes import StoreTrust
from controlplane.reconcile.loop import Reconciler
from controlplane.render.labels import (
    CHANNEL_CONTROLLER,
    LABEL_APP_MANAGED_BY,
    LABEL_MANAGED_BY,
    LABEL_NOTIFICATION_CHANNEL,
    RELEASE_CONTROLLER,
)
from controlplane.store import Store
from devservers.agent import agent_up
from devservers.kube import KubeServer
from devservers.kube_accounts import AgentAccount, agent_account
from devservers.planes import read_or_none, until
from devservers.tls_proxy import make_ca
from domain.model import LABEL_COMPONENT
from tests.unit.test_cp_reconcile_fixtures import conditions, world
from tests.unit.test_cp_reconcile_planes import TOKEN_REF, alert_trait, channel, secret
from tunnel.tls import gateway_server_context, internal_server_context

WAIT_S = 60.0
CRD = Path(__file__).parent.parent / "data" / "controlplane" / "openchoreo.dev_observabilityalertrules.yaml"
GROUP, VERSION, PLURAL = "openchoreo.dev", "v1alpha1", "observabilityalertrules"
COMPONENT = "demo-app-http-service"
BINDING_NAME = f"{COMPONENT}-development"


@pytest.fixture(scope="module")
def api(kube_api: KubeServer) -> Iterator[k8s.ApiClient]:
    client = kube_api.api_client()
    extensions = k8s.ApiextensionsV1Api(client)
    try:
        extensions.create_custom_resource_definition(yaml.safe_load(CRD.read_text()))
    except ApiException as exc:
        if exc.status != 409:
            raise
    for _ in range(600):
        crd: Any = extensions.read_custom_resource_definition(f"{PLURAL}.{GROUP}")
        if any(c.type == "Established" and c.status == "True" for c in (crd.status.conditions or [])):
            break
        time.sleep(0.1)
    yield client
    client.close()


@pytest.fixture(scope="module")
def account(kube_api: KubeServer, tmp_path_factory: pytest.TempPathFactory) -> AgentAccount:
    return agent_account(kube_api, tmp_path_factory.mktemp("reconcile-obs"), "observabilityplane")


def _rules(api: k8s.ApiClient, namespace: str) -> list[dict[str, Any]]:
    found: Any = k8s.CustomObjectsApi(api).list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
    return list(found["items"])


@pytest.fixture
async def namespace(api: k8s.ApiClient) -> AsyncIterator[str]:
    """A control-plane namespace of its own (the observability plane mirrors its name); deleted afterwards."""
    name = f"rc-{uuid.uuid4().hex[:8]}"
    yield name
    try:
        k8s.CoreV1Api(api).delete_namespace(name)
    except ApiException as exc:
        if exc.status != 404:
            raise


async def test_rules_and_channels_reach_the_observability_plane_and_leave_it(
    tmp_path: Path, api: k8s.ApiClient, account: AgentAccount, namespace: str
) -> None:
    core = k8s.CoreV1Api(api)
    gateway_ca, agent_ca, internal_ca = (make_ca(tmp_path, name) for name in ("gw-ca", "agent-ca", "internal-ca"))
    server_cert, server_key = gateway_ca.issue(tmp_path, "gateway", client=False)
    internal_cert, internal_key = internal_ca.issue(tmp_path, "internal", client=False)
    agent_cert, agent_key = agent_ca.issue(tmp_path, "obs-agent", client=True)
    agent_pem = agent_ca.path.read_text()
    store = Store(f"sqlite:///{tmp_path / 'cp.db'}")
    world(store, client_ca=agent_pem, namespace=namespace)
    component = store.get("Component", namespace, COMPONENT)
    assert component is not None
    component["spec"]["traits"] = [alert_trait()]
    store.replace(component)
    token = secret("t0k3n")
    hooks = channel(Authorization=TOKEN_REF)
    for document in (token, hooks):
        document["metadata"]["namespace"] = namespace
        store.create(document)
    listeners = await start(
        Gateway(StoreTrust(store)),
        host="127.0.0.1",
        agent_ssl=gateway_server_context(server_cert, server_key, [agent_pem]),
        internal_ssl=internal_server_context(internal_cert, internal_key, internal_ca.path),
    )
    reconciler = Reconciler(store, listeners.gateway, resync_s=3600, poll_s=0.05)
    listeners.gateway.on_change = reconciler.plane_changed
    stop = asyncio.Event()
    task = asyncio.create_task(reconciler.run(stop))
    try:
        with agent_up(
            tmp_path,
            plane_type="observabilityplane",
            plane_id="shared-obs",
            server_url=f"wss://127.0.0.1:{listeners.agent_port}/ws",
            client_cert=agent_cert,
            client_key=agent_key,
            server_ca=gateway_ca.path,
            kubeconfig=account.kubeconfig,
            extra_args=("--observer-url", ""),  # no alert-rule controller (and no finalizers): only the tunnel
        ):
            (rule,) = await until(lambda: _rules(api, namespace), "no ObservabilityAlertRule appeared")
            assert rule["metadata"]["labels"][LABEL_MANAGED_BY] == RELEASE_CONTROLLER
            assert rule["metadata"]["labels"][LABEL_COMPONENT] == COMPONENT
            assert rule["spec"]["name"] == alert_trait()["instanceName"]

            configmap = await until(
                lambda: read_or_none(core.read_namespaced_config_map, "hooks-dev", namespace),
                lambda: f"no channel ConfigMap: {reconciler.channel_results}",
            )
            assert configmap.data["webhook.url"] == "http://receiver:9000/hook"
            assert configmap.metadata.labels[LABEL_APP_MANAGED_BY] == CHANNEL_CONTROLLER
            assert configmap.metadata.labels[LABEL_NOTIFICATION_CHANNEL] == "hooks-dev"
            stored: Any = await until(
                lambda: read_or_none(core.read_namespaced_secret, "hooks-dev", namespace), "no channel Secret"
            )
            assert base64.b64decode(stored.data["webhook.header.Authorization"]) == b"t0k3n"

            # the data plane has no agent here: the binding says which plane is missing
            applied = await until(
                lambda: conditions(store, namespace, BINDING_NAME).get("ResourcesApplied"), "no status"
            )
            assert applied["reason"] == "PlaneDisconnected" and "dataplane/default" in applied["message"]

            current = store.get("Component", namespace, COMPONENT)
            assert current is not None
            current["spec"]["traits"] = []
            store.replace(current)
            await until(
                lambda: not _rules(api, namespace),
                lambda: f"the rule of the removed trait was not pruned: {_rules(api, namespace)}",
            )

            store.delete("ObservabilityAlertsNotificationChannel", namespace, "hooks-dev")
            await until(
                lambda: (
                    read_or_none(core.read_namespaced_config_map, "hooks-dev", namespace) is None
                    and read_or_none(core.read_namespaced_secret, "hooks-dev", namespace) is None
                ),
                "the deleted channel's ConfigMap and Secret were not swept",
            )
    finally:
        stop.set()
        await asyncio.wait_for(task, WAIT_S)
        await listeners.close()
        store.close()
