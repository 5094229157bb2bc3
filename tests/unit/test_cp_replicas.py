"""controlplane/replicas.py without a server: the agent directory (two replicas' views of one SQLite file, with
their own clocks), the gateway's fallback to a peer and its loop guard, the settings a replica needs, and the
lone SQLite replica that always leads. The PostgreSQL lock and real forwarding: tests/integration/test_cp_replicas.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from controlplane.config import ControlPlaneSettings
from controlplane.gateway.connections import AgentConnection, NoAgents, NotAuthorized, ProxyFailed
from controlplane.gateway.service import FORWARDED_HEADER, Gateway
from controlplane.replicas import AgentDirectory, Leadership, _raise_gateway_error
from controlplane.store import Store
from tunnel.frames import TunnelRequest, TunnelResponse

REQUEST = TunnelRequest(request_id="r1", target="k8s", method="GET", path="/api/v1/namespaces")


class NoTrust:
    async def client_cas(self, plane_type: str, plane_id: str) -> dict[str, list[str]]:
        return {}


class Clock:
    """A settable wall clock (epoch seconds) for one replica."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(f"sqlite:///{tmp_path / 'cp.db'}")
    yield opened
    opened.close()


def connection(plane_id: str, *keys: str) -> AgentConnection:
    return AgentConnection("dataplane", plane_id, frozenset(keys), web.WebSocketResponse(), leaf_der=b"")


async def test_a_replica_finds_the_peer_holding_an_agent_for_the_cr_until_that_peer_stops_heartbeating(
    store: Store,
) -> None:
    here, there = Gateway(NoTrust()), Gateway(NoTrust())
    there.register(connection("default", "/default"))
    seen: list[tuple[str, str]] = []

    async def remote_change(plane_type: str, plane_id: str) -> None:
        seen.append((plane_type, plane_id))

    clock_there, clock_here = Clock(), Clock()
    holder = AgentDirectory(store.engine, "b", "https://b:8444/", there, interval=1.0, clock=clock_there)
    asker = AgentDirectory(
        store.engine, "a", "https://a:8444", here, interval=1.0, on_remote_change=remote_change, clock=clock_here
    )
    await holder.publish()
    assert asker.lookup("dataplane", "default", "/default") == ["https://b:8444"]
    assert asker.lookup("dataplane", "default", "/other") == []  # the agent is not valid for that CR
    assert asker.lookup("dataplane", "elsewhere", "/default") == []
    assert holder.lookup("dataplane", "default", "/default") == []  # never its own

    await asker.publish()
    assert seen == [("dataplane", "default")]
    merged = asker.status("dataplane", "default", "/default")
    assert merged.connected and merged.connected_agents == 1 and merged.last_seen is not None
    assert not asker.status("dataplane", "default", "/other").connected
    assert here.status("dataplane", "default").connected_agents == 0  # the local view is untouched

    clock_here.now += holder.expiry + 1  # the holder stopped heartbeating
    assert asker.lookup("dataplane", "default", "/default") == []
    await asker.publish()
    assert seen == [("dataplane", "default")] * 2  # gone is a change too
    clock_here.now = clock_there.now
    assert asker.lookup("dataplane", "default", "/default") == []  # its expired rows were deleted


async def test_a_stopping_replica_withdraws_its_agents_at_once(store: Store) -> None:
    there = Gateway(NoTrust())
    there.register(connection("default", "/default"))
    holder = AgentDirectory(store.engine, "b", "https://b:8444", there, interval=60.0)
    asker = AgentDirectory(store.engine, "a", "https://a:8444", Gateway(NoTrust()), interval=60.0)
    running = asyncio.create_task(holder.run())
    async with asyncio.timeout(10):
        while not asker.lookup("dataplane", "default", "/default"):
            await asyncio.sleep(0.01)
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    assert asker.lookup("dataplane", "default", "/default") == []


class Elsewhere:
    """Another replica as the gateway sees it (PeerRoute): answers for the CRs it holds, records what it got."""

    def __init__(self, holds: bool) -> None:
        self.holds = holds
        self.got: list[TunnelRequest] = []

    async def send(
        self, plane_type: str, plane_id: str, cr_key: str, request: TunnelRequest, timeout: float
    ) -> TunnelResponse | None:
        self.got.append(request)
        return TunnelResponse(request.request_id, 200, body=b"from the peer") if self.holds else None


async def test_the_gateway_hands_a_cr_without_a_local_agent_to_a_peer_once() -> None:
    gateway = Gateway(NoTrust())
    peer = Elsewhere(holds=True)
    gateway.peers = peer
    answer = await gateway.send("dataplane", "default", "/default", REQUEST, 5)
    assert (answer.status_code, answer.body, answer.request_id) == (200, b"from the peer", "r1")

    forwarded = TunnelRequest("r2", "k8s", "GET", "/api/v1/namespaces", headers={FORWARDED_HEADER: ["a"]})
    with pytest.raises(NoAgents):
        await gateway.send("dataplane", "default", "/default", forwarded, 5)
    assert [r.request_id for r in peer.got] == ["r1"]  # a forwarded request never goes further

    gateway.register(connection("default", "ns/other"))  # an agent here, not valid for the CR
    answer = await gateway.send("dataplane", "default", "/default", REQUEST, 5)
    assert answer.body == b"from the peer"

    gateway.peers = Elsewhere(holds=False)
    with pytest.raises(NotAuthorized):  # nobody holds one: the local answer stands
        await gateway.send("dataplane", "default", "/default", REQUEST, 5)


def test_a_peers_own_refusal_becomes_the_same_error_as_a_local_one() -> None:
    with pytest.raises(ProxyFailed):
        _raise_gateway_error(502, b"proxy request failed: no agents found for plane dataplane/default")
    with pytest.raises(NotAuthorized):
        _raise_gateway_error(403, b"Forbidden: Agent not authorized for CR /default")
    _raise_gateway_error(502, b'{"kind":"Status","code":502}')  # the plane's own 502 is relayed as an answer
    _raise_gateway_error(403, b'{"kind":"Status","code":403}')


def test_a_replica_on_postgresql_with_the_gateway_names_what_it_needs(tmp_path: Path) -> None:
    cert = tmp_path / "server.crt"
    cert.write_text("x")
    gateway = {"server_cert_path": cert, "server_key_path": cert, "internal_client_ca_path": cert}
    lone = ControlPlaneSettings(**gateway)  # type: ignore[arg-type]
    assert not lone.shared_store and lone.replica_problems() == []
    shared = ControlPlaneSettings(db="postgresql://db/cp", **gateway)  # type: ignore[arg-type]
    assert shared.shared_store
    problems = shared.gateway_problems()
    assert any(p.startswith("CONTROLPLANE_PEER_URL") for p in problems)
    assert {p.split(" ")[0] for p in problems} == {
        "CONTROLPLANE_PEER_URL",
        "CLUSTER_GATEWAY_CA_CERT",
        "CLUSTER_GATEWAY_CLIENT_CERT",
        "CLUSTER_GATEWAY_CLIENT_KEY",
    }
    complete = ControlPlaneSettings(
        db="postgresql+psycopg://db/cp",
        peer_url="https://10.0.0.1:8444",
        gateway_ca_cert=cert,
        gateway_client_cert=cert,
        gateway_client_key=cert,
        **gateway,  # type: ignore[arg-type]
    )
    assert complete.replica_problems() == []
    plain = ControlPlaneSettings(
        db="postgresql://db/cp",
        peer_url="https://10.0.0.1:8444",
        gateway_ca_cert=cert,
        internal_mtls_enabled=False,
        **gateway,  # type: ignore[arg-type]
    )
    assert plain.replica_problems() == []  # no client certificate without mutual TLS


async def test_the_lone_sqlite_replica_always_leads(store: Store) -> None:
    started = asyncio.Event()

    async def singleton() -> None:
        started.set()
        await asyncio.Event().wait()

    leadership = Leadership(store.engine, "only")
    running = asyncio.create_task(leadership.run([singleton]))
    async with asyncio.timeout(10):
        await started.wait()
    assert leadership.leading
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
