"""`GET /.well-known/oauth-protected-resource`: RFC 9728 metadata for the MCP endpoint (contract notes §0).

It needs no token by design: an MCP client that got a 401 on /mcp follows the `resource_metadata` URL of the
`WWW-Authenticate` header here to learn which authorization server to ask and for which scopes.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from observer.auth.settings import AuthSettings

router = APIRouter(tags=["OAuth"])

RESOURCE_NAME = "OpenChoreo Observer MCP Server"


def protected_resource_metadata(settings: AuthSettings) -> dict[str, Any]:
    """The document, from settings alone. `openchoreo_security_enabled` is false as upstream serves it;
    `authorization_servers` is empty rather than `[""]` when AUTH_SERVER_BASE_URL is unset."""
    return {
        "resource_name": RESOURCE_NAME,
        "resource": f"{settings.observer_base_url.rstrip('/')}/mcp",
        "authorization_servers": [settings.auth_server_base_url] if settings.auth_server_base_url else [],
        "bearer_methods_supported": ["header"],
        "scopes_supported": list(settings.mcp_scopes),
        "openchoreo_security_enabled": False,
    }


@router.get("/.well-known/oauth-protected-resource", operation_id="getOAuthProtectedResourceMetadata")
async def oauth_protected_resource(request: Request) -> dict[str, Any]:
    settings: AuthSettings = request.app.state.auth_settings
    return protected_resource_metadata(settings)
