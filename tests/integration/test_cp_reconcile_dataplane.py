"""The reconciler through the whole real chain: store -> Reconciler -> Gateway (in-process, real TLS listener) ->
the agent process (ServiceAccount kubeconfig, upstream's data-plane RBAC) -> the real kube-apiserver.

Upstream's http-service sample goes in; the Deployment and Service appear in the data-plane namespace with the
identity and tracking labels; the binding's status says so (and turns Available once the Deployment's status
reports 2/2, patched by hand since pods never run here); a hand-deleted Deployment comes back on resync; deleting
the binding removes what it put there (finalizer-free), and the shared Namespace stays."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from controlplane.gateway.server import Listeners, start
from controlplane.gateway.service import Gateway
from controlplane.planes import StoreTrust
from controlplane.reconcile.loop import Reconciler
from controlplane.reconcile.planes import Backoff
from controlplane.render.labels import LABEL_MANAGED_BY, LABEL_RELEASE_UID, RELEASE_CONTROLLER, RenderedRelease
from controlplane.store import Store
from devservers.agent import Agent, agent_up
from devservers.kube import KubeServer
from devservers.kube_accounts import AgentAccount, agent_account
from devservers.planes import until
from devservers.tls_proxy import make_ca
from domain.model import LABEL_COMPONENT, LABEL_COMPONENT_UID, LABEL_ENVIRONMENT, LABEL_PROJECT
from tests.unit.test_cp_reconcile_fixtures import BINDING, DP_NAMESPACE, conditions, world
from tunnel.tls import gateway_server_context, internal_server_context

WAIT_S = 60.0
COMPONENT = "demo-app-http-service"


@pytest.fixture(scope="module")
def account(kube_api: KubeServer, tmp_path_factory: pytest.TempPathFactory) -> AgentAccount:
    return agent_account(kube_api, tmp_path_factory.mktemp("reconcile-dp"), "dataplane")


@dataclass
class Chain:
    """A store with the sample and its ClusterDataPlane trusting `agent_pem`, the gateway listening, and what
    starting the plane's agent takes (the test decides when)."""

    store: Store
    listeners: Listeners
    directory: Path
    account: AgentAccount
    gateway_ca: Path
    agent_cert: Path
    agent_key: Path

    def agent(self) -> AbstractContextManager[Agent]:
        return agent_up(
            self.directory,
            plane_type="dataplane",
            plane_id="default",
            server_url=f"wss://127.0.0.1:{self.listeners.agent_port}/ws",
            client_cert=self.agent_cert,
            client_key=self.agent_key,
            server_ca=self.gateway_ca,
            kubeconfig=self.account.kubeconfig,
        )


@pytest.fixture
async def chain(tmp_path: Path, account: AgentAccount) -> AsyncIterator[Chain]:
    gateway_ca, agent_ca, internal_ca = (make_ca(tmp_path, name) for name in ("gw-ca", "agent-ca", "internal-ca"))
    server_cert, server_key = gateway_ca.issue(tmp_path, "gateway", client=False)
    internal_cert, internal_key = internal_ca.issue(tmp_path, "internal", client=False)
    agent_cert, agent_key = agent_ca.issue(tmp_path, "dp-agent", client=True)
    agent_pem = agent_ca.path.read_text()
    store = Store(f"sqlite:///{tmp_path / 'cp.db'}")
    world(store, observability=False, client_ca=agent_pem)
    listeners = await start(
        Gateway(StoreTrust(store)),
        host="127.0.0.1",
        agent_ssl=gateway_server_context(server_cert, server_key, [agent_pem]),
        internal_ssl=internal_server_context(internal_cert, internal_key, internal_ca.path),
    )
    try:
        yield Chain(store, listeners, tmp_path, account, gateway_ca.path, agent_cert, agent_key)
    finally:
        await listeners.close()
        store.close()


@asynccontextmanager
async def running(reconciler: Reconciler) -> AsyncIterator[Reconciler]:
    stop = asyncio.Event()
    task = asyncio.create_task(reconciler.run(stop))
    try:
        yield reconciler
    finally:
        stop.set()
        await asyncio.wait_for(task, WAIT_S)


def _deployment(apps: k8s.AppsV1Api) -> Any:
    try:
        return apps.read_namespaced_deployment(COMPONENT, DP_NAMESPACE)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def _service(core: k8s.CoreV1Api) -> Any:
    try:
        return core.read_namespaced_service(COMPONENT, DP_NAMESPACE)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


async def test_the_sample_reaches_the_data_plane_and_its_status_comes_back(chain: Chain, kube_api: KubeServer) -> None:
    store = chain.store
    api = kube_api.api_client()
    apps, core = k8s.AppsV1Api(api), k8s.CoreV1Api(api)
    reconciler = Reconciler(store, chain.listeners.gateway, resync_s=2.0, progressing_s=0.5, poll_s=0.05)
    with chain.agent():
        async with running(reconciler):
            await _walk_through(store, apps, core)


async def _walk_through(store: Store, apps: k8s.AppsV1Api, core: k8s.CoreV1Api) -> None:
    deployment = await until(lambda: _deployment(apps), "the Deployment never appeared")
    binding = store.get("ReleaseBinding", *BINDING)
    component = store.get("Component", "default", COMPONENT)
    assert binding is not None and component is not None
    labels = deployment.metadata.labels
    assert labels[LABEL_COMPONENT] == COMPONENT and labels[LABEL_PROJECT] == "default"
    assert labels[LABEL_ENVIRONMENT] == "development"
    assert labels[LABEL_COMPONENT_UID] == component["metadata"]["uid"]
    assert labels[LABEL_MANAGED_BY] == RELEASE_CONTROLLER
    assert labels[LABEL_RELEASE_UID] == RenderedRelease.of(binding, "dataplane").uid
    assert deployment.spec.replicas == 2
    service = await until(lambda: _service(core), "the Service never appeared")
    assert service.metadata.labels[LABEL_COMPONENT_UID] == component["metadata"]["uid"]
    assert [port.port for port in service.spec.ports] == [9090]

    await until(
        lambda: conditions(store).get("ResourcesApplied", {}).get("reason") == "Applied",
        "ResourcesApplied never became True",
    )
    assert "0/2 replicas available" in conditions(store)["Available"]["message"]  # no controller-manager here

    # pods never run here: report the rollout done by hand, as the deployment controller would
    current: Any = apps.read_namespaced_deployment(COMPONENT, DP_NAMESPACE)
    apps.patch_namespaced_deployment_status(
        COMPONENT,
        DP_NAMESPACE,
        {
            "status": {
                "observedGeneration": current.metadata.generation,
                "replicas": 2,
                "readyReplicas": 2,
                "availableReplicas": 2,
                "updatedReplicas": 2,
            }
        },
    )
    await until(lambda: conditions(store).get("Ready", {}).get("status") == "True", "the binding never became Ready")
    assert conditions(store)["Available"]["message"] == "2/2 replicas available"

    uid = current.metadata.uid
    apps.delete_namespaced_deployment(COMPONENT, DP_NAMESPACE)
    restored = await until(
        lambda: (d := _deployment(apps)) is not None and d.metadata.uid != uid and d,
        "the hand-deleted Deployment was not restored",
    )
    assert restored.metadata.labels[LABEL_MANAGED_BY] == RELEASE_CONTROLLER

    store.delete("ReleaseBinding", *BINDING)
    await until(
        lambda: _deployment(apps) is None and _service(core) is None,
        "deleting the binding did not remove its Deployment and Service",
    )
    namespace: Any = core.read_namespace(DP_NAMESPACE)
    assert namespace.metadata.name == DP_NAMESPACE  # ensured, never pruned


async def test_a_plane_without_its_agent_is_disconnected_until_the_agent_dials_in(
    chain: Chain, kube_api: KubeServer
) -> None:
    apps = k8s.AppsV1Api(kube_api.api_client())
    # a backoff of an hour: recovering within the test proves the gateway's on_change hook woke the reconciler
    reconciler = Reconciler(
        chain.store, chain.listeners.gateway, resync_s=3600, poll_s=0.05, backoff=Backoff(3600.0, 3600.0)
    )
    chain.listeners.gateway.on_change = reconciler.plane_changed
    async with running(reconciler):
        await until(
            lambda: conditions(chain.store).get("ResourcesApplied", {}).get("reason") == "PlaneDisconnected",
            "the binding never reported PlaneDisconnected",
        )
        message = conditions(chain.store)["ResourcesApplied"]["message"]
        assert message == "dataplane/default (CR /default) is not connected; retrying"
        with chain.agent():
            await until(
                lambda: conditions(chain.store).get("ResourcesApplied", {}).get("reason") == "Applied",
                "the binding did not recover when the agent connected",
            )
            assert _deployment(apps) is not None
        await until(  # the agent stopped: the gateway's hook makes the next pass see the plane gone
            lambda: conditions(chain.store).get("ResourcesApplied", {}).get("reason") == "PlaneDisconnected",
            "the binding did not notice the agent leaving",
        )
    with chain.agent():  # clean the shared data-plane namespace for the other tests of the session
        chain.store.delete("ReleaseBinding", *BINDING)
        reconciler = Reconciler(chain.store, chain.listeners.gateway, resync_s=3600, poll_s=0.05)
        chain.listeners.gateway.on_change = reconciler.plane_changed
        async with running(reconciler):
            await until(lambda: _deployment(apps) is None, "the binding's Deployment was not swept")
