"""The internal listener (8444, mutual TLS against its own CA): the HTTP proxy into planes and the plane API
(CPN §2 "Internal API", upstream `server.go` proxy handler and `plane_api.go`).

The proxy only translates HTTP to a TunnelRequest and back; routing, refusals and correlation are Gateway.send.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from controlplane.gateway.connections import GatewayError
from controlplane.gateway.service import NOTIFY_EVENTS, PROXY_TIMEOUT_S, Gateway
from controlplane.gateway.trust import cr_key, valid_plane_id, valid_plane_type
from tunnel.frames import TunnelRequest
from tunnel.paths import MAX_BODY_BYTES, refusal

log = logging.getLogger(__name__)

GATEWAY: web.AppKey[Gateway] = web.AppKey("internal_gateway", Gateway)
TIMEOUT: web.AppKey[float] = web.AppKey("proxy_timeout", float)

PROXY_PREFIX = "/api/proxy/"
# Not forwarded either way: they describe one HTTP hop, not the request (RFC 9110 §7.6.1), or are recomputed.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)


def canonical_header(name: str) -> str:
    """Go's `textproto.CanonicalMIMEHeaderKey`: the names the agent (and upstream) see, e.g. `Content-Type`."""
    if not name or any(not (c.isalnum() or c in "-!#$%&'*+.^_`|~") for c in name):
        return name
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def _headers_of(request: web.Request) -> dict[str, list[str]]:
    headers: dict[str, list[str]] = {}
    for name, value in request.headers.items():
        headers.setdefault(canonical_header(name), []).append(value)
    return headers


def _request_id(request: web.Request) -> str:
    given = request.headers.get("X-Request-ID", "").strip()
    return given[:128] if given else f"gw-{secrets.token_hex(8)}"


async def proxy(request: web.Request) -> web.StreamResponse:
    """`ANY /api/proxy/{planeType}/{planeID}/{crNamespace}/{crName}/{target}/{path...}`.

    `path` goes to the agent as "/" + the raw rest of the URL and `query` as the raw query string, both still
    percent-encoded, so the backend sees what the caller sent.
    """
    gateway = request.app[GATEWAY]
    request_id = _request_id(request)
    reply_headers = {"X-Request-ID": request_id}
    parts = request.rel_url.raw_path[len(PROXY_PREFIX) :].split("/", 5)
    if len(parts) < 6 or not all(parts[:5]):
        return web.Response(status=400, text="invalid proxy path", headers=reply_headers)
    plane_type, plane_id, namespace, name, target = (unquote(p) for p in parts[:5])
    path = "/" + parts[5]
    if not valid_plane_type(plane_type) or not valid_plane_id(plane_id):
        return web.Response(status=400, text="invalid planeType or planeID", headers=reply_headers)
    headers = _headers_of(request)
    query = request.rel_url.raw_query_string
    declared = request.content_length or 0
    refused = refusal(target, request.method, path, query, headers, declared)
    body = b""
    if refused is None:
        body = await request.read()  # bounded by client_max_size (MAX_BODY_BYTES)
        refused = refusal(target, request.method, path, query, headers, len(body))
    if refused is not None:
        return web.Response(status=refused.status, text=refused.message, headers=reply_headers)
    tunnel_request = TunnelRequest(
        request_id=request_id,  # replaced with a fresh UUID on the wire by Gateway.send
        gateway_request_id=request_id,
        target=target,
        method=request.method,
        path=path,
        query=query,
        headers={k: v for k, v in headers.items() if k.lower() not in _HOP_BY_HOP},
        body=body,
    )
    key = cr_key(namespace, name)
    try:
        answer = await gateway.send(plane_type, plane_id, key, tunnel_request, request.app[TIMEOUT])
    except GatewayError as exc:
        log.info("proxy %s %s/%s %s: %s", request_id, plane_type, plane_id, key, exc.message)
        return web.Response(status=exc.status, text=exc.message, headers=reply_headers)
    response = web.Response(status=answer.status_code or 502)
    for header, values in answer.headers.items():
        if header.lower() not in _HOP_BY_HOP:
            for value in values:
                response.headers.add(header, value)
    response.headers["X-Request-ID"] = request_id
    body = answer.body
    if not body and answer.error is not None:
        body = answer.error.message.encode()
    response.body = body
    return response


def _json(status: int, document: Mapping[str, Any]) -> web.Response:
    return web.json_response(dict(document), status=status)


async def notify(request: web.Request) -> web.Response:
    """`POST /api/v1/planes/notify` `{planeType, planeID, event, namespace, name}`."""
    gateway = request.app[GATEWAY]
    try:
        document = await request.json()
    except (ValueError, UnicodeDecodeError):
        return _json(400, {"success": False, "error": "request body is not JSON"})
    if not isinstance(document, dict):
        return _json(400, {"success": False, "error": "request body is not a JSON object"})
    plane_type, plane_id, event = document.get("planeType"), document.get("planeID"), document.get("event")
    if not isinstance(plane_type, str) or not valid_plane_type(plane_type):
        return _json(400, {"success": False, "error": "invalid planeType"})
    if not isinstance(plane_id, str) or not valid_plane_id(plane_id):
        return _json(400, {"success": False, "error": "invalid planeID"})
    if event not in NOTIFY_EVENTS:
        return _json(400, {"success": False, "error": "event must be created, updated or deleted"})
    try:
        result = await gateway.notify(plane_type, plane_id, str(event))
    except Exception as exc:  # the trust seam could not read the CAs: the caller retries (upstream: 503)
        log.exception("notify %s/%s %s failed", plane_type, plane_id, event)
        return _json(503, {"success": False, "action": "revalidate", "error": f"cannot read plane client CAs: {exc}"})
    return _json(200, result.to_json())


def _plane(request: web.Request) -> tuple[str, str] | web.Response:
    plane_type, plane_id = request.match_info["type"], request.match_info["id"]
    if not valid_plane_type(plane_type) or not valid_plane_id(plane_id):
        return _json(400, {"success": False, "error": "invalid planeType or planeID"})
    return plane_type, plane_id


async def reconnect(request: web.Request) -> web.Response:
    """`POST /api/v1/planes/{type}/{id}/reconnect` -> `{success, disconnectedAgents}`."""
    plane = _plane(request)
    if isinstance(plane, web.Response):
        return plane
    dropped = await request.app[GATEWAY].reconnect(*plane)
    return _json(200, {"success": True, "disconnectedAgents": dropped})


async def plane_status(request: web.Request) -> web.Response:
    """`GET /api/v1/planes/{type}/{id}/status[?namespace=&name=]`: with a name, only agents valid for that CR."""
    plane = _plane(request)
    if isinstance(plane, web.Response):
        return plane
    name = request.query.get("name", "")
    key = cr_key(request.query.get("namespace", ""), name) if name else None
    return _json(200, request.app[GATEWAY].status(*plane, cr_key=key).to_json())


async def all_status(request: web.Request) -> web.Response:
    """`GET /api/v1/planes/status` -> `{planes: [...], total}` over the planes with agents connected."""
    planes = [status.to_json() for status in request.app[GATEWAY].statuses()]
    return _json(200, {"planes": planes, "total": len(planes)})


def internal_app(gateway: Gateway, proxy_timeout: float = PROXY_TIMEOUT_S) -> web.Application:
    """The aiohttp application of the internal listener. Bodies past 10 MiB are refused (413) while read."""
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[GATEWAY] = gateway
    app[TIMEOUT] = proxy_timeout
    app.router.add_post("/api/v1/planes/notify", notify)
    app.router.add_get("/api/v1/planes/status", all_status)
    app.router.add_post("/api/v1/planes/{type}/{id}/reconnect", reconnect)
    app.router.add_get("/api/v1/planes/{type}/{id}/status", plane_status)
    app.router.add_route("*", PROXY_PREFIX + "{tail:.*}", proxy)
    return app
