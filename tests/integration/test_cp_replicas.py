"""Two `python -m controlplane.run` replicas on one real PostgreSQL, each with its gateway, and one real agent
process (on the real kube-apiserver) connected to the one that does not lead.

- A call made on the leader's 8444 proxy reaches the agent held by the other replica (forwarded with the internal
  client certificate); a call already forwarded is not forwarded again.
- Only one replica leads (one "leads" line in both logs); its reconcilers, whose plane calls go through the other
  replica, put the ReleaseBinding's Deployment on the data plane.
- Killing the leader (SIGKILL: its database session, and so its advisory lock, dies with it) makes the other
  replica lead, and it reconciles the next change (replicas 2 -> 3).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from controlplane.errors import Conflict
from controlplane.gateway.service import FORWARDED_HEADER
from controlplane.replicas import Leadership
from controlplane.store import Store
from devservers.agent import agent_up
from devservers.controlplane import RunningControlPlane, controlplane_process
from devservers.gateway_certs import GatewayPki, ca_pem, gateway_env, gateway_pki, issue
from devservers.kube import KubeServer
from devservers.kube_accounts import AgentAccount, agent_account
from devservers.tls_proxy import make_ca
from tests.unit.test_cp_reconcile_fixtures import world
from tunnel.tls import client_context

WAIT_S = 60.0
NAMESPACE = "replicas"
BINDING = "demo-app-http-service-development"
COMPONENT = "demo-app-http-service"
DP_NAMESPACE = f"dp-{NAMESPACE}-default-development"
PLANE = "/api/proxy/dataplane/default/_cluster/default/k8s"


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cp-replicas")


@pytest.fixture(scope="module")
def pki(directory: Path) -> GatewayPki:
    return gateway_pki(directory)


@pytest.fixture(scope="module")
def account(kube_api: KubeServer, directory: Path) -> AgentAccount:
    return agent_account(kube_api, directory / "kube", "dataplane")


def until(probe: Callable[[], Any], what: str, *running: RunningControlPlane) -> Any:
    """Poll `probe` until it returns something truthy; fail naming `what`, with the replicas' logs."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.1)
    logs = "\n".join(f"--- {r.log_file.name}:\n{r.output()[-3000:]}" for r in running)
    raise AssertionError(f"{what}; the replicas said:\n{logs}")


def leads(running: RunningControlPlane) -> int:
    return sum(" leads: " in line for line in running.output().splitlines())


def deployment_replicas(apps: k8s.AppsV1Api) -> int | None:
    try:
        found: Any = apps.read_namespaced_deployment(COMPONENT, DP_NAMESPACE)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return int(found.spec.replicas)


def agent_connection(store: Store) -> dict[str, Any]:
    plane = store.get("ClusterDataPlane", None, "default") or {}
    return dict((plane.get("status") or {}).get("agentConnection") or {})


def scale(store: Store, replicas: int) -> bool:
    """Set the binding's replicas; False when the reconciler's status write came in between (try again)."""
    current = store.get("ReleaseBinding", NAMESPACE, BINDING)
    assert current is not None
    current["spec"]["componentTypeEnvironmentConfigs"]["replicas"] = replicas
    try:
        store.replace(current)
    except Conflict:
        return False
    return True


def test_replicas_on_one_postgres_share_agents_and_one_leader_reconciles(
    postgres_server: Any, kube_api: KubeServer, directory: Path, pki: GatewayPki, account: AgentAccount
) -> None:
    db = postgres_server.fresh_database()
    agent_ca = make_ca(directory, "agent-ca")
    store = Store(db)  # the test's own view of the shared store
    world(store, observability=False, client_ca=ca_pem(agent_ca), namespace=NAMESPACE)
    binding = store.delete("ReleaseBinding", NAMESPACE, BINDING)  # applied once the agent is up
    env = {
        "LOG_LEVEL": "info",
        "REPLICA_HEARTBEAT_INTERVAL": "0.5",
        "RECONCILE_PROGRESSING_INTERVAL": "1",
        "CLUSTER_GATEWAY_CA_CERT": str(pki.server_ca.path),
        "CLUSTER_GATEWAY_CLIENT_CERT": str(pki.internal_client.cert),
        "CLUSTER_GATEWAY_CLIENT_KEY": str(pki.internal_client.key),
    }
    apps = k8s.AppsV1Api(kube_api.api_client())
    tls = client_context(pki.server_ca.path, pki.internal_client.cert, pki.internal_client.key)
    with ExitStack() as stack:
        stack.callback(store.close)
        internal = stack.enter_context(httpx.Client(verify=tls, timeout=30))
        leader = stack.enter_context(
            controlplane_process(directory / "leader", db=db, env=env, gateway=gateway_env(pki))
        )
        until(lambda: leads(leader) == 1, "the first replica never led", leader)
        holder = stack.enter_context(
            controlplane_process(directory / "holder", db=db, env=env, gateway=gateway_env(pki))
        )
        until(lambda: " follows: " in holder.output(), "the second replica never said it follows", leader, holder)
        assert "a replica on a shared store, peers reach it at https://127.0.0.1:" in holder.output()

        cert = issue(agent_ca, directory, "dp-agent", client=True)
        agent = stack.enter_context(
            agent_up(
                directory,
                plane_type="dataplane",
                plane_id="default",
                server_url=f"wss://127.0.0.1:{holder.agent_port}/ws",
                client_cert=cert.cert,
                client_key=cert.key,
                server_ca=pki.server_ca.path,
                kubeconfig=account.kubeconfig,
                name="replica-agent",
            )
        )
        plane_status = "/api/v1/planes/dataplane/default/status"
        until(lambda: internal.get(holder.internal_url(plane_status)).json()["connected"], "agent never up", holder)
        assert internal.get(leader.internal_url(plane_status)).json()["connected"] is False  # not held there
        until(lambda: agent_connection(store).get("connectedAgents") == 1, "the plane CR's status", leader, holder)

        # A call made on the leader reaches the agent held by the other replica.
        path = f"{PLANE}/api/v1/namespaces/{account.namespace}"
        proxied = until(
            lambda: (answer := internal.get(leader.internal_url(path))).status_code == 200 and answer,
            "the leader never forwarded a call to the agent's replica",
            leader,
            holder,
        )
        assert proxied.json()["metadata"]["name"] == account.namespace
        assert len(proxied.headers.get_list("X-Request-ID")) == 1  # one hop's headers, not two
        # ... once: marked as forwarded already, the leader answers as a lone gateway would.
        refused = internal.get(leader.internal_url(path), headers={FORWARDED_HEADER: "test"})
        assert refused.status_code == 502 and "no agents found for plane dataplane/default" in refused.text

        # The leader's reconcilers reach the plane through the other replica; the other never leads.
        store.create({k: binding[k] for k in ("apiVersion", "kind", "spec")} | {"metadata": {
            "name": BINDING, "namespace": NAMESPACE}})  # fmt: skip
        until(lambda: deployment_replicas(apps) == 2, "the leader never applied the binding", leader, holder)
        assert leads(leader) == 1 and leads(holder) == 0

        # The leader dies without a word; the other takes the lock and reconciles the next change.
        leader.process.kill()
        leader.process.wait(timeout=30)
        until(lambda: leads(holder) == 1, "the surviving replica never took over", holder)
        until(lambda: scale(store, 3), "the binding could not be changed", holder)
        until(lambda: deployment_replicas(apps) == 3, "the new leader never reconciled the change", holder)
        assert agent.process.poll() is None


async def test_the_leader_lock_admits_one_replica_and_passes_on_when_it_stops(postgres_server: Any) -> None:
    db = postgres_server.fresh_database()
    first_store, second_store = Store(db), Store(db)  # two engines: two replicas' database sessions
    started = {"first": asyncio.Event(), "second": asyncio.Event()}

    def singleton(name: str) -> Callable[[], Any]:
        async def run() -> None:
            started[name].set()
            await asyncio.Event().wait()

        return run

    first = Leadership(first_store.engine, "first", interval=0.05)
    second = Leadership(second_store.engine, "second", interval=0.05)
    tasks = [asyncio.create_task(first.run([singleton("first")]))]
    try:
        async with asyncio.timeout(WAIT_S):
            await started["first"].wait()
            tasks.append(asyncio.create_task(second.run([singleton("second")])))
            while second.tries < 3:
                await asyncio.sleep(0.01)
        assert first.leading and not second.leading and not started["second"].is_set()

        tasks[0].cancel()  # the leader stops: its session closes and the lock is free
        await asyncio.gather(tasks[0], return_exceptions=True)
        async with asyncio.timeout(WAIT_S):
            await started["second"].wait()
        assert second.leading and not first.leading
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        first_store.close()
        second_store.close()
