"""Who may connect to the gateway (CPN §2-§3), over real TLS on loopback with certificates made for the test:
an agent certificate of the plane CR's CA is accepted; one of another plane's CA, an expired one, or none at all
is refused; the query is checked before the upgrade; the internal listener refuses agent certificates."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest

from controlplane.gateway.server import start
from controlplane.gateway.service import Gateway
from devservers.gateway_certs import DictTrust, GatewayRig, gateway_pki, gateway_rig, issue, issue_expired_client
from devservers.tls_proxy import Ca, make_ca
from tunnel.tls import client_context, gateway_server_context, internal_server_context

WAIT_S = 10.0  # bound on waits; never asserted on


async def eventually(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT_S):
        while not condition():
            await asyncio.sleep(0.01)


@pytest.fixture
def cas(tmp_path: Path) -> dict[str, Ca]:
    return {name: make_ca(tmp_path, name) for name in ("plane-a-ca", "plane-b-ca", "stranger-ca")}


@pytest.fixture
async def rig(tmp_path: Path, cas: dict[str, Ca]) -> AsyncIterator[GatewayRig]:
    trust = DictTrust()
    trust.set("observabilityplane", "obs-a", "default/obs-a", cas["plane-a-ca"])
    trust.set("observabilityplane", "obs-b", "default/obs-b", cas["plane-b-ca"])
    async with gateway_rig(tmp_path, trust) as running:
        yield running


async def dial(rig: GatewayRig, context: ssl.SSLContext, url: str) -> aiohttp.ClientWebSocketResponse:
    session = aiohttp.ClientSession()
    try:
        ws = await session.ws_connect(url, ssl=context)
    except BaseException:
        await session.close()
        raise
    ws._test_session = session  # type: ignore[attr-defined]  # closed with the socket in `hang_up`
    return ws


async def hang_up(ws: aiohttp.ClientWebSocketResponse) -> None:
    await ws.close()
    await ws._test_session.close()  # type: ignore[attr-defined]


async def refused_status(rig: GatewayRig, context: ssl.SSLContext, url: str) -> int:
    """The HTTP status the upgrade got (-1 when the TLS handshake itself failed)."""
    async with aiohttp.ClientSession() as session:
        try:
            async with session.ws_connect(url, ssl=context):
                return 101
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status
        except (aiohttp.ClientConnectionError, ssl.SSLError):
            return -1


async def test_agent_of_the_plane_ca_is_accepted(rig: GatewayRig, cas: dict[str, Ca], tmp_path: Path) -> None:
    agent = issue(cas["plane-a-ca"], tmp_path, "obs-a-agent", client=True)
    ws = await dial(rig, rig.client_ssl(agent), rig.agent_url(plane_id="obs-a"))
    try:
        await eventually(lambda: rig.gateway.status("observabilityplane", "obs-a").connected)
        [connection] = rig.gateway.connections.of_plane("observabilityplane", "obs-a")
        assert connection.cr_keys == {"default/obs-a"}
        assert connection.common_name == "obs-a-agent"
    finally:
        await hang_up(ws)
    await eventually(lambda: not rig.gateway.status("observabilityplane", "obs-a").connected)


async def test_certificate_of_another_planes_ca_is_401(rig: GatewayRig, cas: dict[str, Ca], tmp_path: Path) -> None:
    # plane B's CA passes the handshake (it is a plane CA) but is not plane A's: the per-CR check refuses it
    agent_b = issue(cas["plane-b-ca"], tmp_path, "obs-b-agent", client=True)
    assert await refused_status(rig, rig.client_ssl(agent_b), rig.agent_url(plane_id="obs-a")) == 401
    assert not rig.gateway.status("observabilityplane", "obs-a").connected


async def test_expired_and_unknown_ca_certificates_are_refused(
    rig: GatewayRig, cas: dict[str, Ca], tmp_path: Path
) -> None:
    expired = issue_expired_client(cas["plane-a-ca"], tmp_path, "old-agent")
    stranger = issue(cas["stranger-ca"], tmp_path, "stranger", client=True)
    for cert in (expired, stranger):
        status = await refused_status(rig, rig.client_ssl(cert), rig.agent_url(plane_id="obs-a"))
        assert status in (-1, 401)  # refused in the handshake or by the per-CR check: never connected
    assert rig.gateway.connections.of_plane("observabilityplane", "obs-a") == []


async def test_no_client_certificate_is_401(rig: GatewayRig) -> None:
    assert await refused_status(rig, rig.client_ssl(None), rig.agent_url(plane_id="obs-a")) == 401


async def test_unknown_plane_id_is_401(rig: GatewayRig, cas: dict[str, Ca], tmp_path: Path) -> None:
    agent = issue(cas["plane-a-ca"], tmp_path, "obs-a-agent", client=True)
    assert await refused_status(rig, rig.client_ssl(agent), rig.agent_url(plane_id="obs-zzz")) == 401
    assert await refused_status(rig, rig.client_ssl(agent), rig.agent_url("dataplane", "obs-a")) == 401


@pytest.mark.parametrize(
    "query",
    [
        "",
        "planeID=obs-a",
        "planeType=observabilityplane",
        "planeType=cluster&planeID=obs-a",
        "planeType=observabilityplane&planeID=",
        "planeType=observabilityplane&planeID=Obs_A",
        "planeType=observabilityplane&planeID=../x",
    ],
)
async def test_bad_query_is_400_before_the_certificate(rig: GatewayRig, query: str) -> None:
    url = f"wss://127.0.0.1:{rig.listeners.agent_port}/ws?{query}"
    assert await refused_status(rig, rig.client_ssl(None), url) == 400


async def test_ca_learnt_by_notify_reaches_the_handshake(rig: GatewayRig, tmp_path: Path) -> None:
    late_ca = make_ca(tmp_path, "late-ca")
    agent = issue(late_ca, tmp_path, "late-agent", client=True)
    assert await refused_status(rig, rig.client_ssl(agent), rig.agent_url(plane_id="obs-late")) == -1
    rig.trust.set("observabilityplane", "obs-late", "/obs-late", late_ca)
    async with aiohttp.ClientSession() as session:
        notify = {"planeType": "observabilityplane", "planeID": "obs-late", "event": "created", "name": "obs-late"}
        async with session.post(rig.internal_url("/api/v1/planes/notify"), json=notify, ssl=rig.internal_ssl()) as r:
            assert r.status == 200
    ws = await dial(rig, rig.client_ssl(agent), rig.agent_url(plane_id="obs-late"))
    try:
        await eventually(lambda: rig.gateway.status("observabilityplane", "obs-late", "/obs-late").connected)
    finally:
        await hang_up(ws)


async def test_internal_listener_refuses_agent_certificates(
    rig: GatewayRig, cas: dict[str, Ca], tmp_path: Path
) -> None:
    agent = issue(cas["plane-a-ca"], tmp_path, "obs-a-agent", client=True)
    url = rig.internal_url("/api/v1/planes/status")
    async with aiohttp.ClientSession() as session:
        for context in (rig.client_ssl(agent), rig.client_ssl(None)):
            with pytest.raises((aiohttp.ClientConnectionError, ssl.SSLError)):
                async with session.get(url, ssl=context) as response:
                    await response.read()
        async with session.get(url, ssl=rig.internal_ssl()) as response:
            assert response.status == 200
            assert await response.json() == {"planes": [], "total": 0}


async def test_store_failure_is_503_so_the_agent_retries(rig: GatewayRig, cas: dict[str, Ca], tmp_path: Path) -> None:
    agent = issue(cas["plane-a-ca"], tmp_path, "obs-a-agent", client=True)
    rig.trust.failing = True
    assert await refused_status(rig, rig.client_ssl(agent), rig.agent_url(plane_id="obs-a")) == 503


async def test_listeners_on_pre_bound_sockets(tmp_path: Path) -> None:
    pki = gateway_pki(tmp_path)
    bound = []
    for _ in range(2):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        bound.append(sock)
    listeners = await start(
        Gateway(DictTrust()),
        agent_ssl=gateway_server_context(pki.server.cert, pki.server.key),
        internal_ssl=internal_server_context(pki.server.cert, pki.server.key, pki.internal_ca.path),
        agent_sock=bound[0],
        internal_sock=bound[1],
    )
    try:
        assert (listeners.agent_port, listeners.internal_port) == tuple(s.getsockname()[1] for s in bound)
        context = client_context(pki.server_ca.path, pki.internal_client.cert, pki.internal_client.key)
        async with aiohttp.ClientSession() as session:
            url = f"https://127.0.0.1:{listeners.internal_port}/api/v1/planes/status"
            async with session.get(url, ssl=context) as response:
                assert response.status == 200
    finally:
        await listeners.close()
