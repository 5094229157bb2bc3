"""A cap on request bodies, enforced while they stream in, before anything parses them.

Without it a client can make the observer buffer (and then JSON-parse, and then search for) a body of any size:
a 10 MB `searchPhrase` once took 30 s of a worker. Both ports sit behind this middleware:

- a `Content-Length` over the cap is refused at once, without reading a byte of the body;
- a body without one (chunked) is counted as it arrives, and refused the moment it passes the cap.

Either way the answer is 413 in the contract's error shape (`OBS-V1-PAYLOAD-TOO-LARGE`). Inside the app the
refusal travels as an HTTPException, which FastAPI's body reader lets through untouched (any other exception
there becomes a 400 "error parsing the body"), so the app's own error handler renders it. Anything that
swallows the exception and answers on its own (a mounted ASGI app, such as the MCP transport) has its answer
replaced by the 413, so the cap means the same on every route.

Pure ASGI rather than BaseHTTPMiddleware, so streaming responses and the MCP transport pass through untouched.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from observer.errors import PAYLOAD_TOO_LARGE, error_body

#: Every route's cap unless a route has its own: a query is a few hundred bytes, an MCP call a few kilobytes.
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
#: The alert webhook's cap: an Alertmanager notification carries every alert of its group with all their
#: labels and annotations (a few hundred kilobytes for a large group), and refusing one loses alerts.
DEFAULT_WEBHOOK_MAX_BODY_BYTES = 8 * 1024 * 1024


def too_large_message(limit: int, declared: int | None = None) -> str:
    size = f" ({declared} bytes)" if declared is not None else ""
    return (
        f"the request body{size} is larger than {limit} bytes, the most this route accepts;"
        " send a smaller body (a narrower query, fewer items per request)"
    )


class BodyTooLarge(HTTPException):
    """Raised from `receive` when the body passes the cap; an HTTPException so FastAPI re-raises it."""

    error_code = PAYLOAD_TOO_LARGE

    def __init__(self, limit: int, declared: int | None = None) -> None:
        super().__init__(413, too_large_message(limit, declared))


class BodyLimitMiddleware:
    """Caps every HTTP request body at `max_bytes`, or at `per_path[path]` for the paths listed there."""

    def __init__(
        self, app: ASGIApp, max_bytes: int = DEFAULT_MAX_BODY_BYTES, per_path: Mapping[str, int] | None = None
    ) -> None:
        if max_bytes <= 0 or any(limit <= 0 for limit in (per_path or {}).values()):
            raise ValueError("a body limit must be a positive number of bytes")
        self.app = app
        self.max_bytes = max_bytes
        self.per_path = dict(per_path or {})

    def limit_for(self, path: str) -> int:
        return self.per_path.get(path, self.max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""))
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(send, BodyTooLarge(limit, declared))
            return
        guard = _Guard(limit, receive, send)
        try:
            await self.app(scope, guard.receive, guard.send)
        except BodyTooLarge as exc:
            if not guard.started:
                await _refuse(send, exc)


class _Guard:
    """The counting `receive` and the `send` that swaps the app's answer for the 413 once the cap has tripped."""

    def __init__(self, limit: int, receive: Receive, send: Send) -> None:
        self.limit = limit
        self._receive = receive
        self._send = send
        self.received = 0
        self.tripped: BodyTooLarge | None = None
        self.started = False  # whether anything has gone out to the client

    async def receive(self) -> Message:
        if self.tripped is not None:
            raise self.tripped
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit:
                self.tripped = BodyTooLarge(self.limit)
                raise self.tripped
        return message

    async def send(self, message: Message) -> None:
        if self.tripped is not None:
            # Whatever the app says after its body was cut off (its own 400 or 500, or the 413 our error
            # handler rendered) is replaced by the one 413 this module defines.
            if message["type"] == "http.response.start" and not self.started:
                self.started = True
                await _refuse(self._send, self.tripped)
            return
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


async def _refuse(send: Send, exc: BodyTooLarge) -> None:
    body = orjson.dumps(error_body("badRequest", PAYLOAD_TOO_LARGE, str(exc.detail)))
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),  # the rest of the body is never read: the connection cannot be reused
    ]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed length before the app sees the request
    return None
