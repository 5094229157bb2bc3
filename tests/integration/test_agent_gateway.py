"""The agent process through the real gateway (controlplane/gateway) to the real kube-apiserver: the whole tunnel,
in-process `Gateway.send` (the reconcilers' path) and the internal `/api/proxy/...` listener alike."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import aiohttp
import pytest

from controlplane.gateway.server import Listeners, start
from controlplane.gateway.service import Gateway
from devservers.agent import agent_up
from devservers.kube import KubeServer
from devservers.kube_accounts import AgentAccount, agent_account
from devservers.tls_proxy import Ca, make_ca
from tunnel.frames import TunnelRequest
from tunnel.tls import client_context, gateway_server_context, internal_server_context

WAIT_S = 30.0
PLANE = ("observabilityplane", "obs-gw")
CR_KEY = "/obs-gw"  # a ClusterObservabilityPlane named obs-gw


class OnePlane:
    """The trust seam for one cluster-scoped plane CR whose client CA is `ca_pem`."""

    def __init__(self, ca_pem: str) -> None:
        self.ca_pem = ca_pem

    async def client_cas(self, plane_type: str, plane_id: str) -> Mapping[str, list[str]]:
        return {CR_KEY: [self.ca_pem]} if (plane_type, plane_id) == PLANE else {}


@pytest.fixture(scope="module")
def account(kube_api: KubeServer, tmp_path_factory: pytest.TempPathFactory) -> AgentAccount:
    return agent_account(kube_api, tmp_path_factory.mktemp("agent-gateway"), "observabilityplane")


async def connected(gateway: Gateway) -> None:
    for _ in range(int(WAIT_S * 20)):
        if gateway.status(*PLANE).connected:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the agent never connected")


@pytest.fixture
async def plane(tmp_path: Path, account: AgentAccount) -> AsyncIterator[tuple[Listeners, Ca, Path]]:
    gateway_ca, agent_ca, internal_ca = (make_ca(tmp_path, name) for name in ("gw-ca", "agent-ca", "internal-ca"))
    server_cert, server_key = gateway_ca.issue(tmp_path, "gateway", client=False)
    internal_cert, internal_key = internal_ca.issue(tmp_path, "internal", client=False)
    agent_cert, agent_key = agent_ca.issue(tmp_path, "obs-gw-agent", client=True)
    agent_pem = agent_ca.path.read_text()
    listeners = await start(
        Gateway(OnePlane(agent_pem)),
        host="127.0.0.1",
        agent_port=0,
        internal_port=0,
        agent_ssl=gateway_server_context(server_cert, server_key, [agent_pem]),
        internal_ssl=internal_server_context(internal_cert, internal_key, internal_ca.path),
    )
    try:
        with agent_up(
            tmp_path,
            plane_type=PLANE[0],
            plane_id=PLANE[1],
            server_url=f"wss://127.0.0.1:{listeners.agent_port}/ws",
            client_cert=agent_cert,
            client_key=agent_key,
            server_ca=gateway_ca.path,
            kubeconfig=account.kubeconfig,
        ):
            await connected(listeners.gateway)
            yield listeners, internal_ca, tmp_path
    finally:
        await listeners.close()


async def test_gateway_send_reaches_the_plane_apiserver(
    plane: tuple[Listeners, Ca, Path], account: AgentAccount
) -> None:
    listeners, _, _ = plane
    request = TunnelRequest("mine", "k8s", "GET", f"/api/v1/namespaces/{account.namespace}")
    response = await listeners.gateway.send(*PLANE, CR_KEY, request, timeout=WAIT_S)
    assert response.request_id == "mine" and response.status_code == 200
    assert json.loads(response.body)["metadata"]["name"] == account.namespace
    denied = TunnelRequest("sa", "k8s", "GET", f"/api/v1/namespaces/{account.namespace}/serviceaccounts")
    assert (await listeners.gateway.send(*PLANE, CR_KEY, denied, timeout=WAIT_S)).status_code == 403


async def test_the_internal_proxy_reaches_the_plane_through_the_agent(
    plane: tuple[Listeners, Ca, Path], account: AgentAccount
) -> None:
    listeners, internal_ca, directory = plane
    caller_cert, caller_key = internal_ca.issue(directory, "controller", client=True)
    tls: ssl.SSLContext = client_context(internal_ca.path, caller_cert, caller_key)
    url = (
        f"https://127.0.0.1:{listeners.internal_port}/api/proxy/{PLANE[0]}/{PLANE[1]}/_cluster/{PLANE[1]}"
        f"/k8s/api/v1/namespaces/{account.namespace}/configmaps"
    )
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "via-gateway"}, "data": {"k": "v"}}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT_S)) as session:
        async with session.post(url, json=body, ssl=tls) as created:
            assert created.status == 201, await created.text()
        async with session.get(f"{url}/via-gateway", ssl=tls) as fetched:
            assert fetched.status == 200
            assert (await fetched.json())["data"] == {"k": "v"}
