"""`/.well-known/oauth-protected-resource` names the MCP endpoint where this observer really is.

It used to say `http://localhost:9097/mcp` whatever port the observer listened on, so an MCP client that
compares the resource with the URL it called refused the metadata. Now the resource comes from
OBSERVER_BASE_URL when set (behind a proxy only the operator knows the public URL), otherwise from the base
URL of the request itself. Both are checked over real HTTP on a port chosen at random.
"""

from __future__ import annotations

import httpx
import pytest

from access.settings import AuthConfigError, AuthSettings
from adapters.embedded.backend import EmbeddedBackend
from devservers.local import serving
from observer.app import create_public_app
from tests.conftest import service_over

METADATA = "/.well-known/oauth-protected-resource"


async def metadata_of(settings: AuthSettings, backend: EmbeddedBackend, host: str | None = None) -> tuple[str, dict]:
    app = create_public_app(service_over(backend), auth=settings)
    with serving(app) as url:
        headers = {"host": host} if host else {}
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            response = await http.get(METADATA, headers=headers)
    assert response.status_code == 200, response.text
    return url, response.json()


async def test_without_configuration_the_resource_is_where_the_request_went(backend: EmbeddedBackend) -> None:
    url, body = await metadata_of(AuthSettings.disabled(), backend)
    assert url.startswith("http://127.0.0.1:") and not url.endswith(":9097")
    assert body["resource"] == f"{url}/mcp"
    # The name the client used, not an address of the server's choosing.
    _, by_name = await metadata_of(AuthSettings.disabled(), backend, host="observer.internal:8443")
    assert by_name["resource"] == "http://observer.internal:8443/mcp"


async def test_observer_base_url_wins_over_the_request(backend: EmbeddedBackend) -> None:
    settings = AuthSettings.from_env({"JWT_DISABLED": "true", "OBSERVER_BASE_URL": "https://observer.example.com/"})
    _, body = await metadata_of(settings, backend)
    assert body["resource"] == "https://observer.example.com/mcp"
    assert settings.www_authenticate_for("http://127.0.0.1:1") == (
        'Bearer resource_metadata="https://observer.example.com/.well-known/oauth-protected-resource",'
        ' scope="openid profile email"'
    )


def test_the_setting_is_empty_unless_set_and_must_be_a_url() -> None:
    unset = AuthSettings.from_env({"JWT_DISABLED": "true"})
    assert unset.observer_base_url == ""
    assert unset.public_base_url("http://10.0.0.7:8080/") == "http://10.0.0.7:8080"
    assert unset.resource_metadata_url == "http://localhost:9097/.well-known/oauth-protected-resource"  # no request
    with pytest.raises(AuthConfigError, match="OBSERVER_BASE_URL"):
        AuthSettings.from_env({"JWT_DISABLED": "true", "OBSERVER_BASE_URL": "observer.example.com"})
