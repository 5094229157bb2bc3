"""The gateway as one object: who is connected, sending a request to a plane, and the plane lifecycle operations.

Both listeners (agent_server, internal) and in-process callers (the reconcilers, through `send`) use this object,
so a request from a reconciler takes exactly the path a request to `/api/proxy/...` takes, minus the HTTP hop.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import ssl
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from aiohttp import WSCloseCode

from controlplane.gateway.connections import (
    DEFAULT_MAX_PENDING,
    AgentConnection,
    ConnectionManager,
    NoAgents,
    NotAuthorized,
    ProxyFailed,
)
from controlplane.gateway.trust import PlaneTrust
from tunnel.frames import MAX_FRAME_BYTES, FrameError, TunnelError, TunnelRequest, TunnelResponse, encode
from tunnel.paths import refusal
from tunnel.tls import add_client_cas, verify_client_chain

log = logging.getLogger(__name__)

OnChange = Callable[[str, str], Awaitable[None]]
"""Called with (planeType, planeID) after an agent of that plane connected or went away."""

FORWARDED_HEADER = "X-Observer-Forwarded"
"""Marks a request one replica forwarded to another (controlplane/replicas.py): it is never forwarded again."""


class PeerRoute(Protocol):
    """Another replica's agents (controlplane/replicas.py PeerForwarder), tried when no local agent fits."""

    async def send(
        self, plane_type: str, plane_id: str, cr_key: str, request: TunnelRequest, timeout: float
    ) -> TunnelResponse | None:
        """A peer's answer, or None when no other replica holds an agent for the CR."""
        ...


PROXY_TIMEOUT_S = 30.0
HEARTBEAT_INTERVAL_S = 30.0
HEARTBEAT_TIMEOUT_S = 90.0
WRITE_TIMEOUT_S = 10.0


def rfc3339(moment: datetime.datetime) -> str:
    """Go's `time.Time` JSON form, in UTC with a `Z`."""
    return moment.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class PlaneStatus:
    """`{planeType, planeID, connected, connectedAgents, lastSeen}` of the status API."""

    plane_type: str
    plane_id: str
    connected: bool
    connected_agents: int
    last_seen: datetime.datetime | None

    def to_json(self) -> dict[str, Any]:
        """The wire shape; `lastSeen` is left out while no agent was ever seen."""
        out: dict[str, Any] = {
            "planeType": self.plane_type,
            "planeID": self.plane_id,
            "connected": self.connected,
            "connectedAgents": self.connected_agents,
        }
        if self.last_seen is not None:
            out["lastSeen"] = rfc3339(self.last_seen)
        return out


@dataclass(frozen=True)
class NotifyResult:
    """The answer of `POST /api/v1/planes/notify`."""

    action: str
    disconnected_agents: int = 0
    authorizations_granted: int = 0
    authorizations_revoked: int = 0

    def to_json(self) -> dict[str, Any]:
        """`{success, action, disconnectedAgents?, authorizationsGranted?, authorizationsRevoked?}` (omitempty)."""
        out: dict[str, Any] = {"success": True, "action": self.action}
        if self.disconnected_agents:
            out["disconnectedAgents"] = self.disconnected_agents
        if self.authorizations_granted:
            out["authorizationsGranted"] = self.authorizations_granted
        if self.authorizations_revoked:
            out["authorizationsRevoked"] = self.authorizations_revoked
        return out


NOTIFY_EVENTS = frozenset({"created", "updated", "deleted"})


class Gateway:
    """Agent connections of every plane, and the operations on them.

    Every interval is a constructor parameter so tests run the real heartbeat logic with short periods.
    """

    def __init__(
        self,
        trust: PlaneTrust,
        *,
        ping_interval: float = HEARTBEAT_INTERVAL_S,
        read_timeout: float = HEARTBEAT_TIMEOUT_S,
        write_timeout: float = WRITE_TIMEOUT_S,
        max_pending: int = DEFAULT_MAX_PENDING,
        max_frame_bytes: int = MAX_FRAME_BYTES,
        on_change: OnChange | None = None,
    ) -> None:
        self.trust = trust
        self.ping_interval = ping_interval
        self.read_timeout = read_timeout
        self.write_timeout = write_timeout
        self.max_pending = max_pending
        self.max_frame_bytes = min(max_frame_bytes, MAX_FRAME_BYTES)
        self.on_change = on_change
        self.connections = ConnectionManager()
        self.peers: PeerRoute | None = None  # set when replicas share the store
        self._tls: list[ssl.SSLContext] = []
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------------------------------ trust and TLS

    def attach_tls(self, context: ssl.SSLContext) -> None:
        """Remember the agent listener's context so CAs learnt later (notify, `trust_client_cas`) reach the TLS layer."""
        self._tls.append(context)

    def trust_client_cas(self, ca_pems: Iterable[str]) -> None:
        """Let certificates of these CAs through the agent listener's handshake (the per-CR check still decides)."""
        pems = list(ca_pems)
        for context in self._tls:
            add_client_cas(context, pems)

    async def authorize(
        self, plane_type: str, plane_id: str, leaf_der: bytes, chain_ders: Iterable[bytes]
    ) -> frozenset[str]:
        """The CR keys whose client CA validates this certificate (empty: refuse). The trust seam may raise."""
        cas: Mapping[str, list[str]] = await self.trust.client_cas(plane_type, plane_id)
        chain = list(chain_ders)
        return frozenset(key for key, pems in cas.items() if verify_client_chain(leaf_der, chain, pems))

    # ------------------------------------------------------------------------------------------ connections

    def register(self, connection: AgentConnection) -> None:
        """A verified agent is live: it may receive requests for its CR keys."""
        count = self.connections.add(connection)
        log.info(
            "agent %s (CN %s) connected to %s/%s for %s; %d connected",
            connection.connection_id,
            connection.common_name,
            connection.plane_type,
            connection.plane_id,
            sorted(connection.cr_keys),
            count,
        )
        self._changed(connection.plane_type, connection.plane_id)

    def drop(self, connection: AgentConnection, reason: str) -> bool:
        """Forget a connection and fail its callers now (idempotent). True if it was still registered."""
        if connection not in self.connections.of_plane(connection.plane_type, connection.plane_id):
            connection.fail_pending(reason)
            return False
        remaining = self.connections.remove(connection)
        connection.fail_pending(reason)
        log.info(
            "agent %s left %s/%s (%s); %d connected",
            connection.connection_id,
            connection.plane_type,
            connection.plane_id,
            reason,
            remaining,
        )
        self._changed(connection.plane_type, connection.plane_id)
        return True

    async def disconnect(self, connection: AgentConnection, reason: str, code: int = WSCloseCode.GOING_AWAY) -> None:
        """Drop a connection and close its socket; the agent redials (upstream: after 5 s)."""
        self.drop(connection, reason)
        if not connection.socket.closed:
            try:
                await asyncio.wait_for(
                    connection.socket.close(code=code, message=reason.encode()[:120]), self.write_timeout
                )
            except (TimeoutError, ConnectionError) as exc:
                log.info("closing agent %s: %s", connection.connection_id, exc)

    def _changed(self, plane_type: str, plane_id: str) -> None:
        if self.on_change is None:
            return
        task = asyncio.get_running_loop().create_task(self._run_on_change(plane_type, plane_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_on_change(self, plane_type: str, plane_id: str) -> None:
        assert self.on_change is not None
        try:
            await self.on_change(plane_type, plane_id)
        except Exception:  # the hook is the lead's code: its failure must not break a connection
            log.exception("on_change hook failed for %s/%s", plane_type, plane_id)

    # ------------------------------------------------------------------------------------------ requests

    async def send(
        self, plane_type: str, plane_id: str, cr_key: str, request: TunnelRequest, timeout: float = PROXY_TIMEOUT_S
    ) -> TunnelResponse:
        """Carry one request to an agent of the plane valid for `cr_key` and wait for its reply.

        A request the tunnel refuses (tunnel.paths) comes back as a response with that status and an error, as
        the agent would answer it. Raises NoAgents (502), NotAuthorized (403) or ProxyFailed (502: timeout, send
        failure, connection lost, too many pending) - all ConnectionErrors. With `peers` set (replicas on one
        store) a CR no local agent serves goes to a replica whose agent does, unless the request was forwarded
        already (FORWARDED_HEADER). The reply carries the caller's request_id; on the wire the gateway uses a
        fresh UUID per send.
        """
        refused = refusal(
            request.target, request.method, request.path, request.query, request.headers, len(request.body)
        )
        if refused is not None:
            return TunnelResponse(
                request_id=request.request_id,
                status_code=refused.status,
                error=TunnelError(message=refused.message, code=refused.status),
            )
        forwarded = FORWARDED_HEADER in request.headers
        try:
            connection = self.connections.pick(plane_type, plane_id, cr_key)
        except (NoAgents, NotAuthorized):
            if self.peers is None or forwarded:
                raise
            answer = await self.peers.send(plane_type, plane_id, cr_key, request, timeout)
            if answer is None:
                raise
            return answer
        if forwarded:
            request = replace(request, headers={k: v for k, v in request.headers.items() if k != FORWARDED_HEADER})
        wire_id = str(uuid.uuid4())
        try:
            text = encode(replace(request, request_id=wire_id))
        except FrameError as exc:
            raise ProxyFailed(502, f"proxy request failed: {exc}") from exc
        reply = connection.expect(wire_id)
        try:
            async with asyncio.timeout(timeout):
                try:
                    await connection.send_text(text, self.write_timeout)
                except (ConnectionError, RuntimeError, TimeoutError) as exc:
                    raise ProxyFailed(502, f"proxy request failed: {exc or type(exc).__name__}") from exc
                response = await reply
        except TimeoutError as exc:
            raise ProxyFailed(502, f"proxy request failed: no reply within {timeout:g}s") from exc
        finally:
            connection.pending.pop(wire_id, None)
        return replace(response, request_id=request.request_id)

    # ------------------------------------------------------------------------------------------ status and lifecycle

    def status(self, plane_type: str, plane_id: str, cr_key: str | None = None) -> PlaneStatus:
        """How many agents of the plane are connected (only those valid for `cr_key` when given), last seen when."""
        live = [c for c in self.connections.of_plane(plane_type, plane_id) if cr_key is None or cr_key in c.cr_keys]
        last_seen = max((c.last_seen for c in live), default=None)
        return PlaneStatus(plane_type, plane_id, bool(live), len(live), last_seen)

    def statuses(self) -> list[PlaneStatus]:
        """The status of every plane with at least one agent connected."""
        return [self.status(plane_type, plane_id) for plane_type, plane_id in sorted(self.connections.planes())]

    async def reconnect(self, plane_type: str, plane_id: str) -> int:
        """Drop every socket of the plane (agents redial); returns how many were dropped."""
        connections = self.connections.of_plane(plane_type, plane_id)
        await asyncio.gather(
            *(self.disconnect(c, "reconnect requested", WSCloseCode.SERVICE_RESTART) for c in connections)
        )
        return len(connections)

    async def notify(self, plane_type: str, plane_id: str, event: str) -> NotifyResult:
        """A plane CR was created, updated or deleted: re-verify (or drop) the plane's live connections.

        created/updated re-runs the per-CR check on every live connection with the CRs' current CAs: keys are
        granted and revoked, and a connection left valid for no CR is disconnected. deleted disconnects all of
        the plane's agents (those still valid for another CR redial and are accepted again). The trust seam's
        error propagates (the API answers 503).
        """
        if event == "deleted":
            return NotifyResult("disconnect", disconnected_agents=await self.reconnect(plane_type, plane_id))
        cas = await self.trust.client_cas(plane_type, plane_id)
        self.trust_client_cas(pem for pems in cas.values() for pem in pems)
        granted = revoked = dropped = 0
        for connection in self.connections.of_plane(plane_type, plane_id):
            chain = list(connection.chain_ders)
            keys = frozenset(k for k, pems in cas.items() if verify_client_chain(connection.leaf_der, chain, pems))
            granted += len(keys - connection.cr_keys)
            revoked += len(connection.cr_keys - keys)
            connection.cr_keys = keys
            if not keys:
                dropped += 1
                await self.disconnect(connection, "client certificate no longer valid for any plane CR")
        return NotifyResult(
            "revalidate", disconnected_agents=dropped, authorizations_granted=granted, authorizations_revoked=revoked
        )

    async def close(self) -> None:
        """Disconnect every agent and wait for pending on_change hooks (shutdown)."""
        for plane_type, plane_id in list(self.connections.planes()):
            await self.reconnect(plane_type, plane_id)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
