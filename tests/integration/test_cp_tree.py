"""A ReleaseBinding's resource tree through the whole real chain: the API (in-process ASGI client) -> the tree ->
the Gateway (real TLS listener) -> the agent process -> the real kube-apiserver.

The http-service sample (in control-plane namespace `tree`, so its data-plane namespace is its own on the shared
kube-apiserver) is reconciled into the plane; the tree shows the live Deployment and Service with the plane's
UIDs and health Progressing, then Healthy once the Deployment's status says 2/2; with the agent gone the tree
still answers 200, each node Unknown "plane disconnected"; deleting the Component through the API (204) takes
its binding with it and the sweep removes the Deployment and Service from the plane."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from controlplane.api import create_app
from controlplane.gateway.server import Listeners, start
from controlplane.gateway.service import Gateway
from controlplane.reconcile.loop import Reconciler
from controlplane.reconcile.planes import Backoff
from controlplane.store import Store
from devservers.agent import agent_up
from devservers.kube import KubeServer
from devservers.kube_accounts import AgentAccount, agent_account
from devservers.tls_proxy import make_ca
from tests.integration.test_cp_reconcile_dataplane import StoreTrust
from tests.unit.test_cp_reconcile_fixtures import world
from tunnel.tls import gateway_server_context, internal_server_context

WAIT_S = 60.0
NAMESPACE = "tree"
COMPONENT = "demo-app-http-service"
BINDING = "demo-app-http-service-development"
DP_NAMESPACE = f"dp-{NAMESPACE}-default-development"
TREE = f"/api/v1/namespaces/{NAMESPACE}/releasebindings/{BINDING}/k8sresources/tree"


@pytest.fixture(scope="module")
def account(kube_api: KubeServer, tmp_path_factory: pytest.TempPathFactory) -> AgentAccount:
    return agent_account(kube_api, tmp_path_factory.mktemp("tree-dp"), "dataplane")


async def eventually(check: Callable[[], Any], what: Callable[[], str]) -> Any:
    """Await `check()` (a coroutine function) until it returns something truthy; on timeout fail with `what()`."""
    try:
        async with asyncio.timeout(WAIT_S):
            while True:
                found = await check()
                if found:
                    return found
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(what()) from None


def _read(call: Callable[..., Any], *args: Any) -> Any:
    try:
        return call(*args)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


@pytest.fixture
async def listening(tmp_path: Path) -> AsyncIterator[tuple[Store, Listeners, dict[str, Path]]]:
    gateway_ca, agent_ca, internal_ca = (make_ca(tmp_path, name) for name in ("gw-ca", "agent-ca", "internal-ca"))
    server_cert, server_key = gateway_ca.issue(tmp_path, "gateway", client=False)
    internal_cert, internal_key = internal_ca.issue(tmp_path, "internal", client=False)
    agent_cert, agent_key = agent_ca.issue(tmp_path, "dp-agent", client=True)
    agent_pem = agent_ca.path.read_text()
    store = Store(f"sqlite:///{tmp_path / 'cp.db'}")
    world(store, observability=False, client_ca=agent_pem, namespace=NAMESPACE)
    listeners = await start(
        Gateway(StoreTrust(store)),
        host="127.0.0.1",
        agent_ssl=gateway_server_context(server_cert, server_key, [agent_pem]),
        internal_ssl=internal_server_context(internal_cert, internal_key, internal_ca.path),
    )
    try:
        yield store, listeners, {"ca": gateway_ca.path, "cert": agent_cert, "key": agent_key}
    finally:
        await listeners.close()
        store.close()


async def test_the_tree_shows_the_live_objects_their_health_and_a_lost_agent(
    listening: tuple[Store, Listeners, dict[str, Path]], account: AgentAccount, kube_api: KubeServer, tmp_path: Path
) -> None:
    store, listeners, files = listening
    gateway = listeners.gateway
    api = kube_api.api_client()
    apps, core = k8s.AppsV1Api(api), k8s.CoreV1Api(api)
    reconciler = Reconciler(store, gateway, resync_s=3600, poll_s=0.05, backoff=Backoff(0.05, 0.2))
    app = create_app(store, transport=gateway)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://cp") as client:

        async def tree() -> dict[str, dict[str, Any]]:
            answer = await client.get(TREE)
            assert answer.status_code == 200, answer.text
            (release,) = answer.json()["renderedReleases"]
            assert (release["name"], release["targetPlane"]) == (BINDING, "dataplane")
            return {node["kind"]: node for node in release["nodes"]}

        agent = agent_up(
            tmp_path,
            plane_type="dataplane",
            plane_id="default",
            server_url=f"wss://127.0.0.1:{listeners.agent_port}/ws",
            client_cert=files["cert"],
            client_key=files["key"],
            server_ca=files["ca"],
            kubeconfig=account.kubeconfig,
        )
        with agent:

            async def applied() -> bool:
                await reconciler.pass_once()
                return _read(apps.read_namespaced_deployment, COMPONENT, DP_NAMESPACE) is not None

            await eventually(applied, lambda: f"the Deployment never appeared; agent log: {tmp_path / 'agent.log'}")
            deployment: Any = apps.read_namespaced_deployment(COMPONENT, DP_NAMESPACE)
            service: Any = core.read_namespaced_service(COMPONENT, DP_NAMESPACE)
            nodes = await tree()
            assert list(nodes) == ["Namespace", "Deployment", "Service"]
            shown = nodes["Deployment"]
            assert (shown["group"], shown["version"], shown["namespace"]) == ("apps", "v1", DP_NAMESPACE)
            assert shown["uid"] == deployment.metadata.uid  # read live from the plane
            assert shown["resourceVersion"] == deployment.metadata.resource_version
            assert shown["createdAt"].endswith("Z")
            assert shown["object"]["spec"]["replicas"] == 2
            assert shown["health"]["status"] == "Progressing"  # no controller-manager runs pods here
            assert nodes["Service"]["uid"] == service.metadata.uid
            assert nodes["Service"]["health"] == {"status": "Healthy", "message": "service exists"}
            assert nodes["Service"]["object"]["spec"]["ports"][0]["port"] == 9090

            # pods never run here: report the rollout done by hand, as the deployment controller would
            apps.patch_namespaced_deployment_status(
                COMPONENT,
                DP_NAMESPACE,
                {
                    "status": {
                        "observedGeneration": deployment.metadata.generation,
                        "replicas": 2,
                        "readyReplicas": 2,
                        "availableReplicas": 2,
                        "updatedReplicas": 2,
                    }
                },
            )
            nodes = await tree()
            assert nodes["Deployment"]["health"] == {"status": "Healthy", "message": "2/2 replicas available"}

        async def disconnected() -> bool:
            nodes = await tree()
            return all(n["health"] == {"status": "Unknown", "message": "plane disconnected"} for n in nodes.values())

        await eventually(disconnected, lambda: "the tree never reported the plane disconnected")

        with agent_up(
            tmp_path,
            plane_type="dataplane",
            plane_id="default",
            server_url=f"wss://127.0.0.1:{listeners.agent_port}/ws",
            client_cert=files["cert"],
            client_key=files["key"],
            server_ca=files["ca"],
            kubeconfig=account.kubeconfig,
            name="agent-again",
        ):
            deleted = await client.delete(f"/api/v1/namespaces/{NAMESPACE}/components/{COMPONENT}")
            assert deleted.status_code == 204
            gone = await client.get(TREE)
            assert gone.status_code == 404 and gone.json()["code"] == "NOT_FOUND"  # the binding went with it

            async def swept() -> bool:
                await reconciler.pass_once()
                return (
                    _read(apps.read_namespaced_deployment, COMPONENT, DP_NAMESPACE) is None
                    and _read(core.read_namespaced_service, COMPONENT, DP_NAMESPACE) is None
                )

            await eventually(swept, lambda: "deleting the Component did not remove its Deployment and Service")
