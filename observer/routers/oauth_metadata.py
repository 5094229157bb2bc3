"""`GET /.well-known/oauth-protected-resource`: RFC 9728 metadata for the MCP endpoint (contract notes §0).

It needs no token by design: an MCP client that got a 401 on /mcp follows the `resource_metadata` URL of the
`WWW-Authenticate` header here to learn which authorization server to ask and for which scopes.

`resource` must be the URL the client really uses for /mcp (clients compare it with the URL they called): it
is built from OBSERVER_BASE_URL when set, otherwise from the base URL of this very request, so an observer on
any port or host name describes itself correctly without configuration.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from access.settings import AuthSettings

router = APIRouter(tags=["OAuth"])

RESOURCE_NAME = "OpenChoreo Observer MCP Server"


def protected_resource_metadata(settings: AuthSettings, request_base_url: str = "") -> dict[str, Any]:
    """The document. `openchoreo_security_enabled` is false as upstream serves it; `authorization_servers` is
    empty rather than `[""]` when AUTH_SERVER_BASE_URL is unset."""
    return {
        "resource_name": RESOURCE_NAME,
        "resource": f"{settings.public_base_url(request_base_url)}/mcp",
        "authorization_servers": [settings.auth_server_base_url] if settings.auth_server_base_url else [],
        "bearer_methods_supported": ["header"],
        "scopes_supported": list(settings.mcp_scopes),
        "openchoreo_security_enabled": False,
    }


@router.get("/.well-known/oauth-protected-resource", operation_id="getOAuthProtectedResourceMetadata")
async def oauth_protected_resource(request: Request) -> dict[str, Any]:
    settings: AuthSettings = request.app.state.auth_settings
    return protected_resource_metadata(settings, str(request.base_url))
