"""The agent's tunnel end (agents/tunnel.py, agents/run.py) against a test-side TLS WebSocket server that requires
a client certificate, as the gateway does: the agent process presents its certificate and plane, answers every
requestID exactly once, answers pings, refuses a server its --server-ca did not sign, and redials after a drop.
Requests are replayed against the real kube-apiserver with the agent's own ServiceAccount."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from agents.tunnel import Backoff, run
from devservers.agent import Agent, agent_up
from devservers.kube import KubeServer
from devservers.kube_accounts import AgentAccount, agent_account
from devservers.tls_proxy import Ca, make_ca
from tunnel.frames import (
    StreamInit,
    TunnelRequest,
    TunnelResponse,
    decode,
    encode,
)

WAIT_S = 30.0  # bound on every wait for the agent; generous, never asserted on


@dataclass(frozen=True)
class Certs:
    gateway_ca: Ca
    agent_ca: Ca
    server_cert: Path
    server_key: Path
    agent_cert: Path
    agent_key: Path
    directory: Path


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    directory = tmp_path_factory.mktemp("agent-tunnel-certs")
    gateway_ca, agent_ca = make_ca(directory, "gateway-ca"), make_ca(directory, "agent-ca")
    server_cert, server_key = gateway_ca.issue(directory, "gateway", client=False)
    agent_cert, agent_key = agent_ca.issue(directory, "obs-agent", client=True)
    return Certs(gateway_ca, agent_ca, server_cert, server_key, agent_cert, agent_key, directory)


@pytest.fixture(scope="module")
def account(kube_api: KubeServer, tmp_path_factory: pytest.TempPathFactory) -> AgentAccount:
    return agent_account(kube_api, tmp_path_factory.mktemp("agent-tunnel"), "observabilityplane")


@dataclass
class Connection:
    """One agent socket as the test gateway sees it."""

    ws: web.WebSocketResponse
    query: dict[str, str]
    peer_cn: str
    inbox: asyncio.Queue[aiohttp.WSMessage] = field(default_factory=lambda: asyncio.Queue(1000))
    done: asyncio.Event = field(default_factory=asyncio.Event)

    async def send(self, frame: TunnelRequest | StreamInit) -> None:
        await self.ws.send_str(encode(frame))

    async def next_message(self) -> aiohttp.WSMessage:
        return await asyncio.wait_for(self.inbox.get(), WAIT_S)

    async def replies(self, ids: set[str]) -> list[TunnelResponse]:
        """Text replies until every id in `ids` has been answered (duplicates are kept, for the caller to see)."""
        seen: list[TunnelResponse] = []
        while not ids <= {reply.request_id for reply in seen}:
            message = await self.next_message()
            if message.type is aiohttp.WSMsgType.TEXT:
                frame = decode(message.data)
                assert isinstance(frame, TunnelResponse)
                seen.append(frame)
        return seen


class TestGateway:
    """A TLS WebSocket server on loopback that requires a client certificate signed by `client_ca` and hands each
    accepted socket to the test (`await gateway.connection()`); reads are queued, pongs included (autoping off)."""

    __test__ = False

    def __init__(self, cert: Path, key: Path, client_ca: Path) -> None:
        self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.tls.load_cert_chain(str(cert), str(key))
        self.tls.load_verify_locations(str(client_ca))
        self.tls.verify_mode = ssl.CERT_REQUIRED
        self.connections: asyncio.Queue[Connection] = asyncio.Queue(100)
        self.accepted = 0
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/ws", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.tls)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"wss://127.0.0.1:{port}/ws"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def connection(self) -> Connection:
        return await asyncio.wait_for(self.connections.get(), WAIT_S)

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        subject = dict(item[0] for item in (peer or {}).get("subject", ()))
        ws = web.WebSocketResponse(autoping=False, max_msg_size=16 * 1024 * 1024)
        await ws.prepare(request)
        self.accepted += 1
        connection = Connection(ws, dict(request.query), str(subject.get("commonName", "")))
        await self.connections.put(connection)
        async for message in ws:
            await connection.inbox.put(message)
        connection.done.set()
        return ws


@pytest.fixture
async def gateway(certs: Certs) -> AsyncIterator[TestGateway]:
    server = TestGateway(certs.server_cert, certs.server_key, certs.agent_ca.path)
    await server.start()
    yield server
    await server.stop()


StartAgent = Callable[..., Agent]


@pytest.fixture
def agent_for(certs: Certs, account: AgentAccount, tmp_path: Path) -> Iterator[StartAgent]:
    """Start the agent process against a gateway URL (stopped at the end of the test)."""
    with contextlib.ExitStack() as stack:
        started = itertools.count()

        def start(url: str) -> Agent:
            return stack.enter_context(
                agent_up(
                    tmp_path,
                    plane_type="observabilityplane",
                    plane_id="obs-1",
                    server_url=url,
                    client_cert=certs.agent_cert,
                    client_key=certs.agent_key,
                    server_ca=certs.gateway_ca.path,
                    kubeconfig=account.kubeconfig,
                    name=f"agent-{next(started)}",
                )
            )

        yield start


def k8s_get(request_id: str, path: str) -> TunnelRequest:
    return TunnelRequest(request_id=request_id, target="k8s", method="GET", path=path)


async def test_the_agent_presents_its_certificate_and_plane(
    gateway: TestGateway, agent_for: StartAgent, account: AgentAccount
) -> None:
    agent_for(gateway.url)
    connection = await gateway.connection()
    assert connection.query == {"planeType": "observabilityplane", "planeID": "obs-1"}
    assert connection.peer_cn == "obs-agent"
    await connection.send(k8s_get("first", f"/api/v1/namespaces/{account.namespace}"))
    [reply] = await connection.replies({"first"})
    assert reply.status_code == 200 and json.loads(reply.body)["metadata"]["name"] == account.namespace


async def test_every_request_id_is_answered_exactly_once(
    gateway: TestGateway, agent_for: StartAgent, account: AgentAccount
) -> None:
    agent_for(gateway.url)
    connection = await gateway.connection()
    expected: dict[str, int] = {}
    for index in range(24):
        await connection.send(k8s_get(f"ns-{index}", f"/api/v1/namespaces/{account.namespace}"))
        expected[f"ns-{index}"] = 200
    await connection.send(k8s_get("secrets", "/api/v1/namespaces/kube-system/secrets"))
    expected["secrets"] = 403
    await connection.send(TunnelRequest("metrics", "monitoring", "GET", "/api/v1/query"))
    expected["metrics"] = 404
    await connection.send(k8s_get("sa", f"/api/v1/namespaces/{account.namespace}/serviceaccounts"))
    expected["sa"] = 403  # the apiserver's answer to the agent's ServiceAccount
    await connection.send(
        StreamInit("exec", "k8s", "GET", "/api/v1/namespaces/x/pods/p/exec", upgrade_proto="SPDY/3.1")
    )
    expected["exec"] = 501
    replies = await connection.replies(set(expected))
    await connection.send(k8s_get("sentinel", "/version"))  # sent last; anything duplicated would come before it
    replies += await connection.replies({"sentinel"})
    ids = [reply.request_id for reply in replies]
    assert sorted(ids) == sorted([*expected, "sentinel"])  # each exactly once
    assert {reply.request_id: reply.status_code for reply in replies if reply.request_id != "sentinel"} == expected


async def test_pings_are_answered(gateway: TestGateway, agent_for: StartAgent) -> None:
    agent_for(gateway.url)
    connection = await gateway.connection()
    await connection.ws.ping(b"heartbeat-1")
    message = await connection.next_message()
    assert message.type is aiohttp.WSMsgType.PONG and message.data == b"heartbeat-1"


async def test_the_agent_redials_after_the_server_drops_it(
    gateway: TestGateway, agent_for: StartAgent, account: AgentAccount
) -> None:
    agent_for(gateway.url)
    first = await gateway.connection()
    await first.ws.close()
    second = await gateway.connection()  # within the first backoff step (<= 1 s after a successful connect)
    assert second.query == first.query
    await second.send(k8s_get("after", f"/api/v1/namespaces/{account.namespace}"))
    [reply] = await second.replies({"after"})
    assert reply.status_code == 200


async def test_a_server_not_signed_by_the_server_ca_is_refused(
    certs: Certs, agent_for: StartAgent, tmp_path: Path
) -> None:
    impostor_ca = make_ca(tmp_path, "impostor-ca")
    cert, key = impostor_ca.issue(tmp_path, "impostor", client=False)
    impostor = TestGateway(cert, key, certs.agent_ca.path)
    await impostor.start()
    try:
        agent = agent_for(impostor.url)
        for _ in range(int(WAIT_S * 10)):
            if "certificate verify failed" in agent.output():
                break
            await asyncio.sleep(0.1)
        assert "certificate verify failed" in agent.output()
        assert impostor.accepted == 0 and agent.process.poll() is None  # refused, and still trying
    finally:
        await impostor.stop()


async def test_sigterm_stops_the_agent_cleanly(gateway: TestGateway, agent_for: StartAgent) -> None:
    agent = agent_for(gateway.url)
    connection = await gateway.connection()
    assert await asyncio.to_thread(agent.stop) == 0
    await asyncio.wait_for(connection.done.wait(), WAIT_S)
    assert "agent stopped" in agent.output()


def test_the_agent_process_refuses_to_start_without_a_server_ca(
    certs: Certs, account: AgentAccount, tmp_path: Path
) -> None:
    with agent_up(
        tmp_path,
        plane_type="observabilityplane",
        plane_id="obs-1",
        server_url="wss://127.0.0.1:1/ws",
        client_cert=certs.agent_cert,
        client_key=certs.agent_key,
        server_ca=None,
        kubeconfig=account.kubeconfig,
    ) as agent:
        assert agent.process.wait(timeout=WAIT_S) == 2
        assert "--server-ca is required" in agent.output()


# In process, with a handler the test controls: the ordering and bounding rules, which a real backend cannot be
# made to exercise deterministically.


@pytest.fixture
async def in_process(
    gateway: TestGateway, certs: Certs
) -> AsyncIterator[tuple[asyncio.Event, list[asyncio.Task[None]]]]:
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    yield stop, tasks
    stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), WAIT_S)


def client_tls(certs: Certs) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(str(certs.gateway_ca.path))
    context.load_cert_chain(str(certs.agent_cert), str(certs.agent_key))
    return context


async def test_replies_come_back_out_of_order_and_a_failing_handler_still_answers(
    gateway: TestGateway, certs: Certs, in_process: tuple[asyncio.Event, list[asyncio.Task[None]]]
) -> None:
    stop, tasks = in_process
    fast_done = asyncio.Event()

    async def handler(request: TunnelRequest) -> TunnelResponse:
        if request.request_id == "slow":
            await fast_done.wait()
        if request.request_id == "boom":
            raise RuntimeError("handler bug")
        if request.request_id == "fast":
            fast_done.set()
        return TunnelResponse(request.request_id, 200, body=request.request_id.encode())

    tasks.append(asyncio.create_task(run(gateway.url, client_tls(certs), handler, stop)))
    connection = await gateway.connection()
    for request_id in ("slow", "boom", "fast"):
        await connection.send(k8s_get(request_id, "/"))
    replies = await connection.replies({"slow", "boom", "fast"})
    order = [reply.request_id for reply in replies]
    assert order.index("fast") < order.index("slow") and len(order) == 3
    boom = next(reply for reply in replies if reply.request_id == "boom")
    assert boom.status_code == 500 and boom.error is not None and "handler bug" in boom.error.message


async def test_requests_in_flight_are_bounded(
    gateway: TestGateway, certs: Certs, in_process: tuple[asyncio.Event, list[asyncio.Task[None]]]
) -> None:
    stop, tasks = in_process
    release = asyncio.Event()
    started: list[str] = []
    two_started = asyncio.Event()

    async def handler(request: TunnelRequest) -> TunnelResponse:
        started.append(request.request_id)
        if len(started) == 2:
            two_started.set()
        await release.wait()
        return TunnelResponse(request.request_id, 204)

    tasks.append(asyncio.create_task(run(gateway.url, client_tls(certs), handler, stop, max_concurrent=2)))
    connection = await gateway.connection()
    ids = [f"r{index}" for index in range(6)]
    for request_id in ids:
        await connection.send(k8s_get(request_id, "/"))
    await asyncio.wait_for(two_started.wait(), WAIT_S)
    await connection.ws.ping(b"barrier")
    # A correct agent reads nothing more until a slot frees, so neither a third request nor the pong can show up.
    # (The window only gives a broken agent the chance to misbehave; a correct one passes whatever its length.)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(connection.inbox.get(), 0.5)
    assert started == ["r0", "r1"]  # the other four wait in the socket, not in the agent
    release.set()
    replies: list[TunnelResponse] = []
    pong_seen = False
    while len(replies) < len(ids) or not pong_seen:
        message = await connection.next_message()
        if message.type is aiohttp.WSMsgType.PONG:
            pong_seen = True
        else:
            frame = decode(message.data)
            assert isinstance(frame, TunnelResponse)
            replies.append(frame)
    assert sorted(reply.request_id for reply in replies) == ids and len(started) == 6


async def test_backoff_resets_after_a_successful_connect(
    gateway: TestGateway, certs: Certs, in_process: tuple[asyncio.Event, list[asyncio.Task[None]]]
) -> None:
    stop, tasks = in_process
    backoff = Backoff()
    backoff.attempt = 5  # as after five failed dials
    connects: list[int] = []

    async def handler(request: TunnelRequest) -> TunnelResponse:
        return TunnelResponse(request.request_id, 204)

    tasks.append(
        asyncio.create_task(
            run(
                gateway.url,
                client_tls(certs),
                handler,
                stop,
                backoff=backoff,
                on_connect=lambda: connects.append(backoff.attempt),
            )
        )
    )
    await gateway.connection()
    assert connects == [0]
