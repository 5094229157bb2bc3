"""The agent listener (8443): `GET /ws?planeType=&planeID=`, the per-CR certificate check, the read loop and the
heartbeat (CPN §2-§4, upstream `server.go` `handleWebSocket` / `handleConnection`).

aiohttp rather than uvicorn because the handler must see the peer certificate
(`request.transport.get_extra_info("ssl_object")`), and must answer 400/401 before the upgrade.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import WSCloseCode, WSMsgType, web
from cryptography import x509
from cryptography.x509.oid import NameOID

from controlplane.gateway.connections import AgentConnection
from controlplane.gateway.service import Gateway
from controlplane.gateway.trust import valid_plane_id, valid_plane_type
from tunnel.frames import FrameError, FrameTooLarge, TunnelResponse, decode
from tunnel.tls import peer_chain

log = logging.getLogger(__name__)

GATEWAY: web.AppKey[Gateway] = web.AppKey("gateway", Gateway)


def _common_name(leaf_der: bytes) -> str:
    """The CN, for the log only: identity is planeType + planeID + the CA chain, never the CN."""
    try:
        names = x509.load_der_x509_certificate(leaf_der).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    except ValueError:
        return ""
    return str(names[0].value) if names else ""


async def handle_ws(request: web.Request) -> web.StreamResponse:
    """Check the query and the certificate, upgrade, then serve the connection until it ends."""
    gateway = request.app[GATEWAY]
    plane_type, plane_id = request.query.get("planeType"), request.query.get("planeID")
    if not valid_plane_type(plane_type):
        return web.Response(status=400, text=f"invalid or missing planeType: {plane_type or ''}")
    if not valid_plane_id(plane_id):
        return web.Response(status=400, text=f"invalid or missing planeID: {plane_id or ''}")
    assert plane_type is not None and plane_id is not None
    ssl_object = request.transport.get_extra_info("ssl_object") if request.transport is not None else None
    leaf, chain = peer_chain(ssl_object) if ssl_object is not None else (None, [])
    if leaf is None:
        return web.Response(status=401, text="client certificate required")
    try:
        keys = await gateway.authorize(plane_type, plane_id, leaf, chain)
    except Exception:  # the store behind the trust seam failed: the agent should retry, not give up
        log.exception("cannot read the client CAs of %s/%s", plane_type, plane_id)
        return web.Response(status=503, text="cannot verify the client certificate now")
    if not keys:
        log.info("refused agent CN %r for %s/%s: no plane CR trusts its CA", _common_name(leaf), plane_type, plane_id)
        return web.Response(
            status=401, text=f"client certificate not valid for any {plane_type} with planeID {plane_id}"
        )

    socket = web.WebSocketResponse(
        autoping=False,  # we see pongs (they extend the read deadline) and answer pings ourselves
        max_msg_size=gateway.max_frame_bytes,
        compress=False,
        timeout=gateway.write_timeout,  # how long close() waits for the peer's close frame
    )
    await socket.prepare(request)
    connection = AgentConnection(
        plane_type=plane_type,
        plane_id=plane_id,
        cr_keys=keys,
        socket=socket,
        leaf_der=leaf,
        chain_ders=tuple(chain),
        common_name=_common_name(leaf),
        max_pending=gateway.max_pending,
    )
    gateway.register(connection)
    pinger = asyncio.create_task(_ping(gateway, connection))
    reason = "connection closed"
    try:
        reason = await _read(gateway, connection)
    finally:
        pinger.cancel()
        gateway.drop(connection, reason)
        if not socket.closed:
            await socket.close(code=WSCloseCode.GOING_AWAY, message=reason.encode()[:120])
    return socket


async def _ping(gateway: Gateway, connection: AgentConnection) -> None:
    """A ping every interval; one that cannot be written within the write timeout ends the connection."""
    while not connection.socket.closed:
        await asyncio.sleep(gateway.ping_interval)
        try:
            await asyncio.wait_for(connection.socket.ping(), gateway.write_timeout)
        except (TimeoutError, ConnectionError, RuntimeError) as exc:
            log.info("ping to agent %s failed: %s", connection.connection_id, exc)
            await gateway.disconnect(connection, "ping failed")
            return


async def _close(connection: AgentConnection, code: int, reason: str) -> str:
    await connection.socket.close(code=code, message=reason.encode()[:120])
    return reason


async def _read(gateway: Gateway, connection: AgentConnection) -> str:
    """Read frames until the socket ends; returns why. Only a pong extends the read deadline; any frame (and a
    pong) updates last_seen. A bad frame closes this connection only: 1009 oversized, 1007 malformed."""
    loop = asyncio.get_running_loop()
    socket = connection.socket
    deadline = loop.time() + gateway.read_timeout
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            return await _close(connection, WSCloseCode.GOING_AWAY, "read deadline exceeded")
        try:
            message = await socket.receive(timeout=remaining)
        except TimeoutError:
            return await _close(connection, WSCloseCode.GOING_AWAY, "read deadline exceeded")
        if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
            connection.touch()
            try:
                frame = decode(message.data)
            except FrameTooLarge:
                return await _close(connection, WSCloseCode.MESSAGE_TOO_BIG, "frame too large")
            except FrameError as exc:
                log.info("malformed frame from agent %s: %s", connection.connection_id, exc)
                return await _close(connection, WSCloseCode.INVALID_TEXT, "malformed frame")
            if isinstance(frame, TunnelResponse):
                connection.resolve(frame)
            else:
                log.info("ignoring a %s from agent %s", type(frame).__name__, connection.connection_id)
        elif message.type == WSMsgType.PONG:
            connection.touch()
            deadline = loop.time() + gateway.read_timeout
        elif message.type == WSMsgType.PING:
            connection.touch()
            try:
                await asyncio.wait_for(socket.pong(message.data), gateway.write_timeout)
            except (TimeoutError, ConnectionError, RuntimeError) as exc:
                return f"pong failed: {exc}"
        elif message.type == WSMsgType.ERROR:
            # aiohttp already closed the socket with the matching code (1009 for an oversized message).
            return f"protocol error: {message.data}"
        else:  # CLOSE, CLOSING, CLOSED
            return "closed by the agent"


def agent_app(gateway: Gateway) -> web.Application:
    """The aiohttp application of the agent listener."""
    app = web.Application()
    app[GATEWAY] = gateway
    app.router.add_get("/ws", handle_ws)
    return app
