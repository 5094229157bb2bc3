"""Several `observer controlplane` replicas on one PostgreSQL store: who runs the singletons, and how a call
reaches an agent connected to another replica.

- **Leadership.** The reconcilers and the plane status writer must run once, not once per replica: they run only
  on the replica holding a PostgreSQL session advisory lock (`pg_try_advisory_lock`) on a connection of its own.
  The others try again every `interval`. The lock lives as long as that connection, so a killed leader (its
  socket closed by the kernel) frees it and another replica takes over at its next try. On SQLite there is one
  replica: it always leads.
- **Agent directory.** Each replica writes its live agent connections to the `gateway_agents` table (replica id,
  its internal URL CONTROLPLANE_PEER_URL, plane type and id, CR keys, heartbeat) every `interval` and at once on
  a connection change; rows whose heartbeat is older than three intervals belong to a replica that stopped and are
  ignored (and deleted by the next replica that publishes). Heartbeats are wall-clock seconds of the writing host,
  so replicas need their clocks in sync to well under three intervals (NTP).
- **Forwarding.** When `Gateway.send` has no local agent for a CR, `PeerForwarder` carries the request to a replica
  that has one, through that replica's 8444 `/api/proxy/...` with the internal client certificate
  (CLUSTER_GATEWAY_CLIENT_CERT / CLUSTER_GATEWAY_CLIENT_KEY, verifying it with CLUSTER_GATEWAY_CA_CERT: upstream's
  controller-manager names for its gateway client), and relays the answer. The forwarded request carries
  `X-Observer-Forwarded`, and a request carrying it is never forwarded again, so two replicas cannot loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import socket
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import aiohttp
from sqlalchemy import Column, Float, Index, MetaData, String, Table, Text, and_, delete, insert, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from yarl import URL

from controlplane.gateway.connections import NotAuthorized, ProxyFailed
from controlplane.gateway.service import FORWARDED_HEADER, NotifyResult, PlaneStatus
from controlplane.gateway.trust import CLUSTER_NAMESPACE
from serving.waiting import wait_at_most
from tunnel.frames import MAX_FRAME_BYTES, TunnelRequest, TunnelResponse

if TYPE_CHECKING:
    from controlplane.config import ControlPlaneSettings
    from controlplane.gateway.service import Gateway

log = logging.getLogger(__name__)

TaskFactory = Callable[[], Coroutine[Any, Any, None]]
OnChange = Callable[[str, str], Awaitable[None]]

LEADER_LOCK_KEY = 0x0B5E_C0DE_5EED
"""The advisory lock id the leader holds (one per database; any other user of the database must avoid it)."""
EXPIRY_INTERVALS = 3
MAX_PEER_CONNECTIONS = 64
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "host",
     "content-length"}
)  # fmt: skip
_PER_HOP = frozenset({"x-request-id", "date", "server"})  # set again by each listener, not relayed

metadata = MetaData()
gateway_agents = Table(
    "gateway_agents",
    metadata,
    Column("replica_id", String(64), primary_key=True),
    Column("connection_id", String(64), primary_key=True),
    Column("peer_url", String(512), nullable=False),
    Column("plane_type", String(64), nullable=False),
    Column("plane_id", String(253), nullable=False),
    Column("cr_keys", Text, nullable=False),  # a JSON list of "ns/name" / "/name"
    Column("last_seen", Float, nullable=False),  # the agent's last sign of life (epoch seconds)
    Column("heartbeat", Float, nullable=False),  # when its replica last published it (epoch seconds)
    Index("gateway_agents_plane", "plane_type", "plane_id"),
)


def shared(engine: Engine) -> bool:
    """Whether several replicas may share this store (PostgreSQL); SQLite is one process's file."""
    return engine.dialect.name == "postgresql"


# ---------------------------------------------------------------------------------------------- leadership


class Leadership:
    """Runs the singletons while this replica holds the leader lock (module docstring)."""

    def __init__(self, engine: Engine, replica_id: str, *, interval: float = 5.0) -> None:
        self.engine = engine
        self.replica_id = replica_id
        self.interval = interval
        self.leading = False
        self.tries = 0  # attempts at the lock so far (how long a follower has been waiting, for logs and tests)

    async def run(self, singletons: Sequence[TaskFactory]) -> None:
        """Until cancelled: wait for the lock, run the singletons while it is held, stop them when it is lost."""
        if not shared(self.engine):
            log.info("replica %s leads (SQLite store: the only replica)", self.replica_id)
            self.leading = True
            await asyncio.gather(*(factory() for factory in singletons))
            return
        waiting_said = False
        while True:
            connection = await asyncio.to_thread(self._try_lock)
            if connection is None:
                if not waiting_said:
                    log.info(
                        "replica %s follows: another replica leads; trying for the lead every %gs",
                        self.replica_id,
                        self.interval,
                    )
                    waiting_said = True
                await asyncio.sleep(self.interval)
                continue
            waiting_said = False
            await self._lead(connection, singletons)

    async def _lead(self, connection: Connection, singletons: Sequence[TaskFactory]) -> None:
        log.info("replica %s leads: the reconcilers and the plane status writer run here", self.replica_id)
        self.leading = True
        tasks = [asyncio.create_task(factory()) for factory in singletons]
        try:
            while True:
                await asyncio.sleep(self.interval)
                alive = False
                try:
                    async with asyncio.timeout(self.interval * 3):  # not wait_for: serving/waiting.py says why
                        alive = await asyncio.to_thread(self._alive, connection)
                except TimeoutError:
                    pass
                if not alive:
                    log.warning("replica %s lost its database connection: no longer leads", self.replica_id)
                    return
        finally:
            self.leading = False
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._release(connection)

    def _try_lock(self) -> Connection | None:
        """A connection holding the lock, or None (another replica has it, or the database is unreachable)."""
        self.tries += 1
        try:
            connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        except SQLAlchemyError as exc:
            log.warning("replica %s cannot reach the store to try for the lead: %s", self.replica_id, exc)
            return None
        try:
            held = connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": LEADER_LOCK_KEY}).scalar()
        except SQLAlchemyError as exc:
            log.warning("replica %s cannot try for the lead: %s", self.replica_id, exc)
            held = False
        if held:
            return connection
        connection.close()
        return None

    @staticmethod
    def _alive(connection: Connection) -> bool:
        try:
            connection.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return False
        return True

    @staticmethod
    def _release(connection: Connection) -> None:
        """Close the database session itself (never back to the pool), which frees the lock."""
        with contextlib.suppress(SQLAlchemyError):
            connection.invalidate()
        with contextlib.suppress(SQLAlchemyError):
            connection.close()


# ---------------------------------------------------------------------------------------------- agent directory


@dataclass(frozen=True)
class RemoteAgent:
    """An agent connection held by another replica, as its last heartbeat said."""

    replica_id: str
    peer_url: str
    plane_type: str
    plane_id: str
    cr_keys: frozenset[str]
    last_seen: float


class AgentDirectory:
    """This replica's agent connections in `gateway_agents`, and what the other replicas hold (module docstring).

    `on_remote_change(planeType, planeID)` is called when the agents other replicas hold for a plane changed, so
    the leader's reconcilers and status see an agent that came or went elsewhere.
    """

    def __init__(
        self,
        engine: Engine,
        replica_id: str,
        peer_url: str,
        gateway: Gateway,
        *,
        interval: float = 5.0,
        on_remote_change: OnChange | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.replica_id = replica_id
        self.peer_url = peer_url.rstrip("/")
        self.gateway = gateway
        self.interval = interval
        self.on_remote_change = on_remote_change
        self._clock = clock
        self._wake = asyncio.Event()
        self.remote: list[RemoteAgent] = []
        metadata.create_all(engine)

    @property
    def expiry(self) -> float:
        """Seconds without a heartbeat after which a replica's rows no longer count."""
        return self.interval * EXPIRY_INTERVALS

    def changed(self) -> None:
        """A local agent came or went: publish now rather than at the next heartbeat."""
        self._wake.set()

    def _local_rows(self) -> list[dict[str, Any]]:
        now = self._clock()
        return [
            {
                "replica_id": self.replica_id,
                "connection_id": connection.connection_id,
                "peer_url": self.peer_url,
                "plane_type": connection.plane_type,
                "plane_id": connection.plane_id,
                "cr_keys": json.dumps(sorted(connection.cr_keys)),
                "last_seen": connection.last_seen.timestamp(),
                "heartbeat": now,
            }
            for plane_type, plane_id in self.gateway.connections.planes()
            for connection in self.gateway.connections.of_plane(plane_type, plane_id)
            if not connection.closed
        ]

    def _publish(self, rows: list[dict[str, Any]]) -> list[RemoteAgent]:
        """Replace this replica's rows, delete expired ones, read the others' (sync: run in a thread)."""
        cutoff = self._clock() - self.expiry
        with self.engine.begin() as conn:
            conn.execute(delete(gateway_agents).where(gateway_agents.c.replica_id == self.replica_id))
            conn.execute(delete(gateway_agents).where(gateway_agents.c.heartbeat < cutoff))
            if rows:
                conn.execute(insert(gateway_agents), rows)
        return self._read(select(gateway_agents).where(gateway_agents.c.replica_id != self.replica_id))

    def _read(self, query: Any) -> list[RemoteAgent]:
        cutoff = self._clock() - self.expiry
        with self.engine.connect() as conn:
            found = conn.execute(query.where(gateway_agents.c.heartbeat >= cutoff)).mappings().all()
        return [
            RemoteAgent(
                str(row["replica_id"]),
                str(row["peer_url"]),
                str(row["plane_type"]),
                str(row["plane_id"]),
                frozenset(json.loads(row["cr_keys"])),
                float(row["last_seen"]),
            )
            for row in found
        ]

    def lookup(self, plane_type: str, plane_id: str, cr_key: str) -> list[str]:
        """The internal URLs of other live replicas holding an agent of the plane valid for `cr_key`, read now
        from the table (sync: run in a thread)."""
        query = select(gateway_agents).where(
            and_(
                gateway_agents.c.replica_id != self.replica_id,
                gateway_agents.c.plane_type == plane_type,
                gateway_agents.c.plane_id == plane_id,
            )
        )
        return list(dict.fromkeys(a.peer_url for a in self._read(query) if cr_key in a.cr_keys))

    async def publish(self) -> None:
        """One heartbeat: write ours, read theirs, report planes whose remote agents changed."""
        before = self._counts(self.remote)
        self.remote = await asyncio.to_thread(self._publish, self._local_rows())
        after = self._counts(self.remote)
        if self.on_remote_change is not None:
            for plane in sorted(set(before) | set(after)):
                if before.get(plane) != after.get(plane):
                    await self.on_remote_change(*plane)

    @staticmethod
    def _counts(agents: list[RemoteAgent]) -> dict[tuple[str, str], tuple[tuple[str, str], ...]]:
        out: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for agent in agents:
            out.setdefault((agent.plane_type, agent.plane_id), []).append((agent.replica_id, ",".join(agent.cr_keys)))
        return {plane: tuple(sorted(v)) for plane, v in out.items()}

    async def run(self) -> None:
        """Publish every `interval` and on every local change until cancelled; then withdraw this replica's rows
        so its agents stop being routed here at once."""
        try:
            while True:
                self._wake.clear()
                try:
                    await self.publish()
                except Exception:  # the store is down: the rows expire, the next heartbeat writes them again
                    log.exception("publishing the agents of replica %s failed", self.replica_id)
                await wait_at_most(self._wake.wait(), self.interval)
        finally:
            with contextlib.suppress(SQLAlchemyError):
                self._withdraw()

    def _withdraw(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(gateway_agents).where(gateway_agents.c.replica_id == self.replica_id))

    def status(self, plane_type: str, plane_id: str, cr_key: str | None = None) -> PlaneStatus:
        """The gateway's `status` with the agents of the other replicas added (as of the last heartbeat): what the
        plane status writer puts in a plane CR's `status.agentConnection`."""
        local = self.gateway.status(plane_type, plane_id, cr_key)
        remote = [
            a
            for a in self.remote
            if a.plane_type == plane_type and a.plane_id == plane_id and (cr_key is None or cr_key in a.cr_keys)
        ]
        if not remote:
            return local
        seen = [datetime.datetime.fromtimestamp(a.last_seen, datetime.UTC) for a in remote]
        if local.last_seen is not None:
            seen.append(local.last_seen)
        count = local.connected_agents + len(remote)
        return PlaneStatus(plane_type, plane_id, True, count, max(seen))

    async def notify(self, plane_type: str, plane_id: str, event: str) -> NotifyResult:
        """The gateway's `notify` (the plane watcher's half of PlaneGateway)."""
        return await self.gateway.notify(plane_type, plane_id, event)


# ---------------------------------------------------------------------------------------------- forwarding


class PeerForwarder:
    """Carries a request to a replica holding an agent for the CR (Gateway's `peers`; module docstring)."""

    def __init__(self, directory: AgentDirectory, client_ssl: ssl.SSLContext) -> None:
        self.directory = directory
        self.client_ssl = client_ssl
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self.client_ssl, limit=MAX_PEER_CONNECTIONS)
            self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        return self._session

    async def close(self) -> None:
        """Release the connections to peers (shutdown)."""
        if self._session is not None:
            await self._session.close()

    async def send(
        self, plane_type: str, plane_id: str, cr_key: str, request: TunnelRequest, timeout: float
    ) -> TunnelResponse | None:
        """The answer of a peer holding an agent for `cr_key`, or None when no live replica holds one. Raises
        ProxyFailed when every such peer is unreachable or answers that it could not carry the request."""
        peers = await asyncio.to_thread(self.directory.lookup, plane_type, plane_id, cr_key)
        if not peers:
            return None
        failure: ProxyFailed | None = None
        for peer in peers:
            try:
                return await self._forward(peer, plane_type, plane_id, cr_key, request, timeout)
            except ProxyFailed as exc:
                failure = exc
                log.info("forwarding to replica %s failed: %s", peer, exc.message)
        assert failure is not None
        raise failure

    async def _forward(
        self, peer: str, plane_type: str, plane_id: str, cr_key: str, request: TunnelRequest, timeout: float
    ) -> TunnelResponse:
        namespace, _, name = cr_key.partition("/")
        segments = [plane_type, plane_id, namespace or CLUSTER_NAMESPACE, name, request.target]
        url = f"{peer}/api/proxy/{'/'.join(quote(s, safe='') for s in segments)}{request.path}"
        if request.query:
            url += f"?{request.query}"
        headers = [
            (k, v) for k, values in request.headers.items() if k.lower() not in _HOP_BY_HOP | _PER_HOP for v in values
        ]
        headers.append((FORWARDED_HEADER, self.directory.replica_id))
        headers.append(("X-Request-ID", request.gateway_request_id or request.request_id))
        try:
            async with (
                asyncio.timeout(timeout),
                self._client().request(
                    request.method, URL(url, encoded=True), headers=headers, data=request.body or None
                ) as answer,
            ):
                body = await answer.content.read(MAX_FRAME_BYTES + 1)
                if len(body) > MAX_FRAME_BYTES:
                    raise ProxyFailed(502, f"proxy request failed: the answer of replica {peer} is too large")
                reply_headers: dict[str, list[str]] = {}
                for header, value in answer.headers.items():
                    if header.lower() not in _HOP_BY_HOP | _PER_HOP:
                        reply_headers.setdefault(header, []).append(value)
                status = answer.status
        except TimeoutError as exc:
            raise ProxyFailed(502, f"proxy request failed: replica {peer} gave no answer within {timeout:g}s") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise ProxyFailed(502, f"proxy request failed: cannot reach replica {peer}: {exc}") from exc
        _raise_gateway_error(status, body)
        return TunnelResponse(request_id=request.request_id, status_code=status, headers=reply_headers, body=body)


def _raise_gateway_error(status: int, body: bytes) -> None:
    """The peer's gateway (not the agent) refused: the same error as a local refusal, so callers that treat a
    ConnectionError as "plane unavailable" (the reconcilers) behave alike on every replica. Recognised by the
    gateway's own messages (controlplane/gateway/connections.py)."""
    if status == 502 and body.startswith(b"proxy request failed"):
        raise ProxyFailed(502, body.decode(errors="replace"))
    if status == 403 and body.startswith(b"Forbidden: Agent not authorized"):
        raise NotAuthorized(403, body.decode(errors="replace"))


# ---------------------------------------------------------------------------------------------- wiring


def replica_id() -> str:
    """This process's name among the replicas: host name and a random suffix (a restart is a new replica)."""
    return f"{socket.gethostname()[:40]}-{uuid.uuid4().hex[:8]}"


@dataclass
class Replicas:
    """This replica's part in a group of replicas (one alone on SQLite): leadership, directory, forwarding."""

    replica_id: str
    leadership: Leadership
    directory: AgentDirectory | None = None
    peers: PeerForwarder | None = None

    @classmethod
    def open(
        cls, settings: ControlPlaneSettings, engine: Engine, gateway: Gateway, on_remote_change: OnChange
    ) -> Replicas:
        """Leadership always; on a shared store also the directory and the forwarder, set as `gateway.peers`."""
        from tunnel.tls import client_context

        name = replica_id()
        leadership = Leadership(engine, name, interval=settings.replica_interval)
        if not shared(engine):
            return cls(name, leadership)

        async def remote_change(plane_type: str, plane_id: str) -> None:
            if leadership.leading:  # the leader's reconcilers and status writer act on it, once
                await on_remote_change(plane_type, plane_id)

        directory = AgentDirectory(
            engine, name, settings.peer_url, gateway, interval=settings.replica_interval, on_remote_change=remote_change
        )
        assert settings.gateway_ca_cert is not None
        if settings.gateway_client_cert is not None and settings.gateway_client_key is not None:
            tls = client_context(settings.gateway_ca_cert, settings.gateway_client_cert, settings.gateway_client_key)
        else:
            tls = ssl.create_default_context(cafile=str(settings.gateway_ca_cert))
        peers = PeerForwarder(directory, tls)
        gateway.peers = peers
        return cls(name, leadership, directory, peers)

    def changed(self) -> None:
        """A local agent came or went (the gateway's on_change)."""
        if self.directory is not None:
            self.directory.changed()

    async def run(self, singletons: Sequence[TaskFactory]) -> None:
        """The singletons under the leader lock, and the directory's heartbeat, until cancelled."""
        try:
            parts = [self.leadership.run(singletons)]
            if self.directory is not None:
                parts.append(self.directory.run())
            await asyncio.gather(*parts)
        finally:
            if self.peers is not None:
                await self.peers.close()
