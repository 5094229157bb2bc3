"""Live agent connections and the requests waiting on them (upstream's `connection_manager.go`, CPN §3-§4).

Why a per-connection pending table: a reply is accepted only from the socket its request went down, so an agent
of another plane (or a second agent of the same plane) can never answer, or starve, someone else's call; and when
a socket drops, exactly its callers fail at once instead of waiting out their timeouts.
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from aiohttp import web

from tunnel.frames import TunnelResponse

log = logging.getLogger(__name__)

DEFAULT_MAX_PENDING = 256


class GatewayError(ConnectionError):
    """A request the gateway could not carry. `status` is what the internal API answers with.

    A ConnectionError, so in-process callers that treat OSError as "plane unavailable, retry" need no import.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class NotAuthorized(GatewayError):
    """Agents are connected, but none is valid for the CR in the URL (-> 403)."""


class ProxyFailed(GatewayError):
    """The request went nowhere or no reply came in time (-> 502 "proxy request failed: ...")."""


class NoAgents(ProxyFailed):
    """No agent of the plane is connected (upstream: "no agents found for plane ..." -> 502)."""


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass(eq=False)
class AgentConnection:
    """One agent's WebSocket, the CR keys its certificate is valid for, and its in-flight requests."""

    plane_type: str
    plane_id: str
    cr_keys: frozenset[str]
    socket: web.WebSocketResponse
    leaf_der: bytes
    chain_ders: tuple[bytes, ...] = ()
    common_name: str = ""
    max_pending: int = DEFAULT_MAX_PENDING
    connection_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    connected_at: datetime.datetime = field(default_factory=_now)
    last_seen: datetime.datetime = field(default_factory=_now)
    pending: dict[str, asyncio.Future[TunnelResponse]] = field(default_factory=dict)
    closed: bool = False
    _send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def touch(self) -> None:
        """Any inbound frame (and pong) counts as a sign of life: surfaces as `agentConnection.lastHeartbeatTime`."""
        self.last_seen = _now()

    async def send_text(self, text: str, timeout: float) -> None:
        """One frame down the socket; frames never interleave and a stuck peer costs at most `timeout`."""
        async with self._send_lock:
            await asyncio.wait_for(self.socket.send_str(text), timeout)

    def expect(self, request_id: str) -> asyncio.Future[TunnelResponse]:
        """Register a reply slot. Bounded: past `max_pending` in-flight requests the caller gets ProxyFailed."""
        if self.closed:
            raise ProxyFailed(502, "proxy request failed: agent connection closed")
        if len(self.pending) >= self.max_pending:
            raise ProxyFailed(502, f"proxy request failed: {self.max_pending} requests already pending on the agent")
        future: asyncio.Future[TunnelResponse] = asyncio.get_running_loop().create_future()
        self.pending[request_id] = future
        return future

    def resolve(self, response: TunnelResponse) -> bool:
        """Hand a reply to its waiting caller. False (and the reply dropped) for an unknown or timed-out id."""
        future = self.pending.pop(response.request_id, None)
        if future is None or future.done():
            log.info(
                "dropping a reply for unknown request %s on %s/%s", response.request_id, self.plane_type, self.plane_id
            )
            return False
        future.set_result(response)
        return True

    def fail_pending(self, reason: str) -> None:
        """The socket is gone: every caller waiting on it fails now."""
        self.closed = True
        pending, self.pending = self.pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(ProxyFailed(502, f"proxy request failed: {reason}"))


class ConnectionManager:
    """(planeType, planeID) -> live connections; per-CR round robin (upstream `GetForCR`)."""

    def __init__(self) -> None:
        self._planes: dict[tuple[str, str], list[AgentConnection]] = {}
        self._turns: dict[tuple[str, str, str], itertools.count[int]] = {}

    def add(self, connection: AgentConnection) -> int:
        """Register a connection; returns how many the plane now has."""
        plane = self._planes.setdefault((connection.plane_type, connection.plane_id), [])
        plane.append(connection)
        return len(plane)

    def remove(self, connection: AgentConnection) -> int:
        """Forget a connection (idempotent); returns how many the plane still has."""
        key = (connection.plane_type, connection.plane_id)
        plane = self._planes.get(key, [])
        if connection in plane:
            plane.remove(connection)
        if not plane:
            self._planes.pop(key, None)
            for turn in [t for t in self._turns if t[:2] == key]:
                del self._turns[turn]
        return len(plane)

    def of_plane(self, plane_type: str, plane_id: str) -> list[AgentConnection]:
        """The plane's live connections (a copy)."""
        return list(self._planes.get((plane_type, plane_id), []))

    def planes(self) -> Iterable[tuple[str, str]]:
        """Every plane with at least one connection."""
        return list(self._planes)

    def pick(self, plane_type: str, plane_id: str, cr_key: str) -> AgentConnection:
        """The next connection valid for `cr_key`, round robin among them.

        NoAgents when the plane has none at all, NotAuthorized when none is valid for that CR.
        """
        connections = [c for c in self._planes.get((plane_type, plane_id), []) if not c.closed]
        if not connections:
            raise NoAgents(502, f"proxy request failed: no agents found for plane {plane_type}/{plane_id}")
        valid = [c for c in connections if cr_key in c.cr_keys]
        if not valid:
            raise NotAuthorized(403, f"Forbidden: Agent not authorized for CR {cr_key}")
        turn = self._turns.setdefault((plane_type, plane_id, cr_key), itertools.count())
        return valid[next(turn) % len(valid)]
