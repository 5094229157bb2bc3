"""One connection's trouble stays its own (CPN §3-§4): plane B's agent never sees plane A's requests, replies
find their callers whatever their order, a late reply is dropped, a bad frame closes only the socket that sent it,
and the heartbeat keeps answering agents while it drops silent ones. Test-side agents are WebSocket clients."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from controlplane.gateway.connections import NotAuthorized, ProxyFailed
from devservers.gateway_certs import DictTrust, GatewayRig, KeyPair, gateway_rig, issue
from devservers.tls_proxy import Ca, make_ca
from tunnel.frames import TunnelRequest, TunnelResponse

WAIT_S = 10.0  # bound on waits; never asserted on
A, B = ("observabilityplane", "obs-a"), ("observabilityplane", "obs-b")


class AgentDriver:
    """A test-side agent: a WebSocket client with a client certificate, frames queued, pings counted."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, session: aiohttp.ClientSession, answer_pings: bool) -> None:
        self.ws, self.session, self.answer_pings = ws, session, answer_pings
        self.frames: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1000)
        self.pings = 0
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            message = await self.ws.receive()
            if message.type == aiohttp.WSMsgType.TEXT:
                self.frames.put_nowait(json.loads(message.data))
            elif message.type == aiohttp.WSMsgType.PING:
                self.pings += 1
                if self.answer_pings:
                    await self.ws.pong(message.data)
            elif message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                # the code the gateway sent; ws.close_code may say 1006 if our close reply met a closed socket
                self.close_code = message.data if message.type == aiohttp.WSMsgType.CLOSE else self.ws.close_code
                self.closed.set()
                return

    async def frame(self) -> dict[str, Any]:
        async with asyncio.timeout(WAIT_S):
            return await self.frames.get()

    async def reply(self, request_id: str, body: str = "", status: int = 200) -> None:
        document = {"requestID": request_id, "statusCode": status, "body": base64.b64encode(body.encode()).decode()}
        await self.ws.send_str(json.dumps(document))

    async def stop(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        await self.session.close()


Rig = Callable[..., Awaitable[GatewayRig]]


@pytest.fixture
def plane_cas(tmp_path: Path) -> dict[str, Ca]:
    return {"obs-a": make_ca(tmp_path, "plane-a-ca"), "obs-b": make_ca(tmp_path, "plane-b-ca")}


@pytest.fixture
async def start_rig(tmp_path: Path, plane_cas: dict[str, Ca]) -> AsyncIterator[Rig]:
    """Start a gateway with the given options (one per test); plane A's CRs default/obs-a and default/obs-a2."""
    stack = contextlib.AsyncExitStack()

    async def start(**options: Any) -> GatewayRig:
        trust = DictTrust()
        trust.set(*A, "default/obs-a", plane_cas["obs-a"])
        trust.set(*A, "default/obs-a2", plane_cas["obs-a"])
        trust.set(*B, "default/obs-b", plane_cas["obs-b"])
        return await stack.enter_async_context(gateway_rig(tmp_path, trust, **options))

    async with stack:
        yield start


@pytest.fixture
async def connect(tmp_path: Path, plane_cas: dict[str, Ca]) -> AsyncIterator[Callable[..., Awaitable[AgentDriver]]]:
    drivers: list[AgentDriver] = []
    count = 0

    async def dial(rig: GatewayRig, plane_id: str = "obs-a", *, answer_pings: bool = True) -> AgentDriver:
        nonlocal count
        count += 1
        cert: KeyPair = issue(plane_cas[plane_id], tmp_path, f"{plane_id}-agent-{count}", client=True)
        session = aiohttp.ClientSession()
        before = len(rig.gateway.connections.of_plane("observabilityplane", plane_id))
        ws = await session.ws_connect(
            rig.agent_url(plane_id=plane_id), ssl=rig.client_ssl(cert), autoping=False, max_msg_size=0
        )
        driver = AgentDriver(ws, session, answer_pings)
        drivers.append(driver)
        await eventually(lambda: len(rig.gateway.connections.of_plane("observabilityplane", plane_id)) > before)
        return driver

    yield dial
    for driver in drivers:
        await driver.stop()


async def eventually(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT_S):
        while not condition():
            await asyncio.sleep(0.01)


def request(path: str) -> TunnelRequest:
    return TunnelRequest(request_id=f"caller-{path}", target="k8s", method="GET", path=path)


async def test_plane_b_never_receives_plane_a_requests(start_rig: Rig, connect: Any) -> None:
    rig = await start_rig()
    agent_a, agent_b = await connect(rig, "obs-a"), await connect(rig, "obs-b")
    calls = [asyncio.create_task(rig.gateway.send(*A, "default/obs-a", request(f"/a/{i}"), WAIT_S)) for i in range(5)]
    for _ in range(5):
        frame = await agent_a.frame()
        await agent_a.reply(frame["requestID"], frame["path"])
    assert [(await c).body.decode() for c in calls] == [f"/a/{i}" for i in range(5)]
    call_b = asyncio.create_task(rig.gateway.send(*B, "default/obs-b", request("/b"), WAIT_S))
    frame = await agent_b.frame()
    assert frame["path"] == "/b"  # the first and only frame B ever got
    await agent_b.reply(frame["requestID"], "b")
    assert (await call_b).body == b"b"
    assert agent_b.frames.empty()
    with pytest.raises(NotAuthorized):  # B's agent is not valid for A's CR, even named on B's plane
        await rig.gateway.send(*B, "default/obs-a", request("/x"), WAIT_S)


async def test_out_of_order_replies_reach_their_callers(start_rig: Rig, connect: Any) -> None:
    rig = await start_rig()
    agent = await connect(rig)
    calls = [asyncio.create_task(rig.gateway.send(*A, "default/obs-a", request(f"/{i}"), WAIT_S)) for i in range(4)]
    frames = [await agent.frame() for _ in range(4)]
    for frame in reversed(frames):
        await agent.reply(frame["requestID"], frame["path"])
    answers = [await c for c in calls]
    assert [a.body.decode() for a in answers] == ["/0", "/1", "/2", "/3"]
    assert [a.request_id for a in answers] == ["caller-/0", "caller-/1", "caller-/2", "caller-/3"]


async def test_late_and_unknown_replies_are_dropped(start_rig: Rig, connect: Any) -> None:
    rig = await start_rig()
    agent = await connect(rig)
    with pytest.raises(ProxyFailed, match="no reply within"):
        await rig.gateway.send(*A, "default/obs-a", request("/slow"), 0.2)
    late = await agent.frame()
    await agent.reply(late["requestID"], "late")
    await agent.reply("00000000-0000-4000-8000-000000000000", "unknown")
    call = asyncio.create_task(rig.gateway.send(*A, "default/obs-a", request("/next"), WAIT_S))
    frame = await agent.frame()
    await agent.reply(frame["requestID"], "next")
    assert (await call).body == b"next"
    [connection] = rig.gateway.connections.of_plane(*A)
    assert connection.pending == {}
    assert rig.gateway.status(*A).connected


async def test_per_cr_round_robin_and_cr_keys(start_rig: Rig, connect: Any) -> None:
    rig = await start_rig()
    first, second = await connect(rig), await connect(rig)
    for expected in (first, second, first, second):
        call = asyncio.create_task(rig.gateway.send(*A, "default/obs-a2", request("/rr"), WAIT_S))
        frame = await expected.frame()
        await expected.reply(frame["requestID"])
        await call
    assert first.frames.empty() and second.frames.empty()
    assert rig.gateway.status(*A, "default/obs-a2").connected_agents == 2


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        ("x" * (64 * 1024 + 1), 1009),
        ("not json", 1007),
        ("[1, 2]", 1007),
        ('{"requestID": "r", "statusCode": 200, "body": "***"}', 1007),
        ('{"statusCode": 200}', 1007),
    ],
)
async def test_bad_frame_closes_only_that_connection(start_rig: Rig, connect: Any, bad: str, code: int) -> None:
    rig = await start_rig(max_frame_bytes=64 * 1024)
    culprit, bystander = await connect(rig), await connect(rig)
    waiting = asyncio.create_task(rig.gateway.send(*A, "default/obs-a", request("/pending"), 3600))
    assert (await culprit.frame())["path"] == "/pending"  # round robin starts with the first connection
    await culprit.ws.send_str(bad)
    async with asyncio.timeout(WAIT_S):
        await culprit.closed.wait()
    assert culprit.close_code == code
    with pytest.raises(ProxyFailed, match="proxy request failed"):  # its caller fails now, not after the hour
        await waiting
    await eventually(lambda: rig.gateway.status(*A).connected_agents == 1)
    for _ in range(2):
        call = asyncio.create_task(rig.gateway.send(*A, "default/obs-a", request("/after"), WAIT_S))
        frame = await bystander.frame()
        await bystander.reply(frame["requestID"], "still here")
        assert (await call).body == b"still here"


async def test_connection_loss_fails_its_pending_callers_at_once(start_rig: Rig, connect: Any) -> None:
    rig = await start_rig()
    agent = await connect(rig)
    call = asyncio.create_task(rig.gateway.send(*A, "default/obs-a", request("/x"), 3600))
    await agent.frame()
    await agent.stop()
    with pytest.raises(ProxyFailed, match="closed"):
        await call
    with pytest.raises(ProxyFailed, match="no agents found"):
        await rig.gateway.send(*A, "default/obs-a", request("/y"), WAIT_S)


async def test_pending_requests_per_connection_are_bounded(start_rig: Rig, connect: Any) -> None:
    rig = await start_rig(max_pending=2)
    agent = await connect(rig)
    calls = [asyncio.create_task(rig.gateway.send(*A, "default/obs-a", request(f"/{i}"), WAIT_S)) for i in range(2)]
    frames = [await agent.frame() for _ in range(2)]
    with pytest.raises(ProxyFailed, match="pending"):
        await rig.gateway.send(*A, "default/obs-a", request("/third"), WAIT_S)
    for frame in frames:
        await agent.reply(frame["requestID"])
    assert [(await c).status_code for c in calls] == [200, 200]


async def test_pongs_keep_an_agent_connected(start_rig: Rig, connect: Any) -> None:
    rig = await start_rig(ping_interval=0.05, read_timeout=0.5)
    agent = await connect(rig, answer_pings=True)
    await eventually(lambda: agent.pings >= 30)  # pings spanning three read deadlines at least
    assert not agent.closed.is_set()
    assert rig.gateway.status(*A).connected


async def test_silent_agent_is_dropped_after_the_read_deadline(start_rig: Rig, connect: Any) -> None:
    changes: list[tuple[str, str, int]] = []
    rig: GatewayRig

    async def on_change(plane_type: str, plane_id: str) -> None:
        changes.append((plane_type, plane_id, rig.gateway.status(plane_type, plane_id).connected_agents))

    rig = await start_rig(ping_interval=0.05, read_timeout=0.3, on_change=on_change)
    agent = await connect(rig, answer_pings=False)
    async with asyncio.timeout(WAIT_S):
        await agent.closed.wait()
    assert agent.close_code == 1001
    assert agent.pings >= 1
    await eventually(lambda: len(changes) == 2)
    assert changes == [("observabilityplane", "obs-a", 1), ("observabilityplane", "obs-a", 0)]


async def test_frames_update_last_seen_but_only_pongs_extend_the_deadline(start_rig: Rig, connect: Any) -> None:
    rig = await start_rig(ping_interval=0.05, read_timeout=0.3)
    agent = await connect(rig, answer_pings=False)
    [connection] = rig.gateway.connections.of_plane(*A)
    first_seen = connection.last_seen
    chatter = TunnelResponse(request_id="nobody-waits", status_code=200)
    async with asyncio.timeout(WAIT_S):
        while not agent.closed.is_set():
            await agent.ws.send_str(json.dumps({"requestID": chatter.request_id, "statusCode": 200}))
            await asyncio.sleep(0.02)
    assert agent.close_code == 1001
    assert connection.last_seen > first_seen
