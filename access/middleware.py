"""The public port's authentication gate, as plain ASGI so it sits in front of FastAPI routes and of the MCP
sub-app mounted at /mcp alike.

Every request needs a valid bearer token except `GET /health`, `GET /.well-known/oauth-protected-resource`
(a client must read it to learn where to get a token), the API description (`/openapi.json`, `/docs`, `/redoc`
and their assets) and CORS preflights (browsers send those without
credentials; the CORS middleware, outermost, answers them). The verified Subject is put in
`scope["state"]["subject"]`, which is what Starlette exposes as `request.state.subject`, in the app and in any
mounted sub-app (they share the state dict).

Failures are `{"error": CODE, "message": text}` with status 401 (contract notes §0), or 503 when the issuer
cannot be asked (access/authn.py says why). On /mcp every 401 also carries
`WWW-Authenticate: Bearer resource_metadata="...", scope="..."`, which is how an MCP client discovers the
authorization server.

With authentication off (`authenticator=None`, from JWT_DISABLED=true) requests pass untouched and carry no
subject, so authorization sees an anonymous caller; the startup log says so loudly (settings.log_auth_posture).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from access.authn import Authenticator
from access.model import AuthenticationFailed, AuthenticationUnavailable
from access.settings import AuthSettings

log = logging.getLogger(__name__)

#: Paths served without a token, and only for reading: health, the RFC 9728 metadata an MCP client needs before it
#: has a token, the API's own description, and the web console's page and files (none of them holds data, and a
#: browser opening them has no token yet: the console signs in, then calls the API with its token).
PUBLIC_PATHS = frozenset(
    {
        "/health",
        "/.well-known/oauth-protected-resource",
        "/openapi.json",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
        "/",
    }
)
PUBLIC_PREFIXES = ("/docs/assets/", "/console/")
READ_METHODS = frozenset({"GET", "HEAD"})
UNAVAILABLE_CODE = "AUTHENTICATION_UNAVAILABLE"
UNAVAILABLE_MESSAGE = "authentication is temporarily unavailable"


def is_mcp_path(path: str) -> bool:
    return path == "/mcp" or path.startswith("/mcp/")


def _is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def _header_values(scope: Scope, name: bytes) -> list[str]:
    return [value.decode("latin-1") for key, value in scope.get("headers", ()) if key.lower() == name]


def _is_preflight(scope: Scope) -> bool:
    if scope.get("method") != "OPTIONS":
        return False
    names = {key.lower() for key, _ in scope.get("headers", ())}
    return b"origin" in names and b"access-control-request-method" in names


def _base_url(scope: Scope) -> str:
    """The URL the client used to reach this server (scheme, Host, root path), so the 401 challenge on /mcp
    points at metadata the client can fetch when OBSERVER_BASE_URL is not configured."""
    return str(Request(scope).base_url)


class AuthMiddleware:
    """Authenticates each HTTP (and WebSocket) request before the app sees it."""

    def __init__(self, app: ASGIApp, authenticator: Authenticator | None, settings: AuthSettings) -> None:
        self.app = app
        self.authenticator = authenticator
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self.authenticator is None:
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if scope["type"] == "http" and (
            (scope.get("method") in READ_METHODS and _is_public(path)) or _is_preflight(scope)
        ):
            await self.app(scope, receive, send)
            return
        try:
            subject = await self.authenticator.authenticate(_header_values(scope, b"authorization"))
        except AuthenticationFailed as failure:
            log.debug(
                "401 %s on %s %s: %s", failure.code, scope.get("method", "WS"), path, failure.reason or failure.message
            )
            await self._refuse(scope, send, 401, failure.code, failure.message)
            return
        except AuthenticationUnavailable as exc:
            log.warning("503 on %s %s: %s", scope.get("method", "WS"), path, exc)
            await self._refuse(scope, send, 503, UNAVAILABLE_CODE, UNAVAILABLE_MESSAGE)
            return
        state: dict[str, Any] = scope.setdefault("state", {})
        state["subject"] = subject
        await self.app(scope, receive, send)

    async def _refuse(self, scope: Scope, send: Send, status: int, code: str, message: str) -> None:
        if scope["type"] == "websocket":
            # Closing before accepting makes the server answer the handshake with 403; nothing more to say.
            await send({"type": "websocket.close", "code": 1008})
            return
        body = orjson.dumps({"error": code, "message": message})
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if status == 401 and is_mcp_path(scope.get("path", "")):
            challenge = self.settings.www_authenticate_for(_base_url(scope))
            headers.append((b"www-authenticate", challenge.encode()))
        if status == 503:
            headers.append((b"retry-after", b"5"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
