"""Serves the console: `/` (the page), `/console/<file>` (its modules and style), `/console/config.json`.

Why a router of its own rather than StaticFiles: the set of files is fixed when the observer starts (a request can
name only one of them, never a path on disk), every answer carries the same security headers, and an unknown file
is the API's own 404 body rather than Starlette's plain text.

Caching: the file names are not content-hashed (there is no build step), so every answer says `no-cache` and
carries a strong ETag; a browser revalidates and gets a 304 without the body, and a new release is never hidden
behind a stale module.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from access.settings import AuthSettings
from domain.echo import shown
from observer.errors import ROUTE_NOT_FOUND, ApiError

router = APIRouter(include_in_schema=False)

STATIC = files("observer.console") / "static"
ASSET_PREFIX = "/console/"
CONFIG_PATH = "/console/config.json"
#: The OAuth client the console signs in as (a public client: PKCE, no secret). Without it, an observer with
#: authentication on still serves the console, which then asks for a token to be pasted.
CLIENT_ID_ENV = "OBSERVER_CONSOLE_CLIENT_ID"
SCOPES_ENV = "OBSERVER_CONSOLE_SCOPES"
DEFAULT_SCOPES = "openid profile email"
MAX_ASSETS = 64  # the console has about twenty files; a runaway package-data glob should fail loudly

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
}


@dataclass(frozen=True)
class Asset:
    """One file of the console, read once: its bytes, content type and validator."""

    body: bytes
    content_type: str
    etag: str


def _load(entry: Traversable, prefix: str, into: dict[str, Asset]) -> None:
    for child in sorted(entry.iterdir(), key=lambda item: item.name):
        name = f"{prefix}{child.name}"
        if child.is_dir():
            _load(child, f"{name}/", into)
            continue
        suffix = os.path.splitext(child.name)[1]
        if suffix not in CONTENT_TYPES:
            continue
        body = child.read_bytes()
        into[name] = Asset(body, CONTENT_TYPES[suffix], '"' + hashlib.sha256(body).hexdigest()[:32] + '"')
        if len(into) > MAX_ASSETS:
            raise RuntimeError(f"the console ships more than {MAX_ASSETS} files: check observer/console/static")


def load_assets() -> dict[str, Asset]:
    """Every servable file under static/, keyed by its path relative to it (`index.html`, `js/api.js`)."""
    assets: dict[str, Asset] = {}
    _load(STATIC, "", assets)
    if "index.html" not in assets:
        raise RuntimeError("observer/console/static/index.html is missing: the package was installed without it")
    return assets


ASSETS = load_assets()


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") and parts.netloc else ""


def issuer_of(settings: AuthSettings) -> str:
    """The authorization server the console signs in at: AUTH_SERVER_BASE_URL (what the RFC 9728 metadata
    advertises) or else JWT_ISSUER, the issuer tokens must come from."""
    return (settings.auth_server_base_url or settings.issuer).rstrip("/")


def console_config(settings: AuthSettings, env: dict[str, str] | None = None) -> dict[str, Any]:
    """What the page needs to know before its first API call: whether to sign in, where, and as which client."""
    env = dict(os.environ) if env is None else env
    return {
        "auth": {
            "enabled": settings.enabled,
            "issuer": issuer_of(settings) if settings.enabled else "",
            "clientId": env.get(CLIENT_ID_ENV, "").strip() if settings.enabled else "",
            "scopes": env.get(SCOPES_ENV, "").strip() or DEFAULT_SCOPES,
        }
    }


def content_security_policy(settings: AuthSettings) -> str:
    """Only 'self': scripts, styles, images, fetches. The one exception is the identity provider's origin for
    `connect-src` (the PKCE token exchange is a fetch from the page) when authentication is on; the sign-in
    itself is a top-level navigation, which CSP does not govern."""
    connect = "'self'"
    issuer = _origin(issuer_of(settings)) if settings.enabled else ""
    if issuer:
        connect += f" {issuer}"
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src {connect}; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )


def _settings(request: Request) -> AuthSettings:
    settings = getattr(request.app.state, "auth_settings", None)
    return settings if isinstance(settings, AuthSettings) else AuthSettings.disabled()


def _headers(request: Request, content_type: str, etag: str) -> dict[str, str]:
    return {
        "Content-Type": content_type,
        "Cache-Control": "no-cache",
        "ETag": etag,
        "Content-Security-Policy": content_security_policy(_settings(request)),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
    }


def _serve(request: Request, asset: Asset) -> Response:
    headers = _headers(request, asset.content_type, asset.etag)
    if asset.etag in (tag.strip() for tag in request.headers.get("if-none-match", "").split(",")):
        return Response(status_code=304, headers={k: v for k, v in headers.items() if k != "Content-Type"})
    return Response(asset.body, headers=headers)


@router.get("/")
async def console_page(request: Request) -> Response:
    """The single page; every view is a fragment of its URL (`/#/logs?...`), so reloading keeps the state."""
    return _serve(request, ASSETS["index.html"])


@router.get(CONFIG_PATH)
async def console_settings(request: Request) -> Response:
    headers = _headers(request, "application/json", '"config"')
    headers.pop("ETag")
    return JSONResponse(console_config(_settings(request)), headers=headers)


@router.get(ASSET_PREFIX + "{name:path}")
async def console_asset(name: str, request: Request) -> Response:
    asset = ASSETS.get(name)
    if asset is None or name == "index.html":
        raise ApiError(
            404,
            f"the console has no file '{shown(name)}'; open / for the console",
            ROUTE_NOT_FOUND,
        )
    return _serve(request, asset)
