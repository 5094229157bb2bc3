"""The OpenChoreo API resolver against a real HTTP server that plays openchoreo-api and its token endpoint."""

from __future__ import annotations

import pytest
from fastapi import FastAPI, Form, Request
from fastapi.responses import JSONResponse

from adapters.protocols import ResolverAuthFailed, ResolverUnavailable, ScopeNotFound
from devservers.local import serving
from observer.resolver_http import OpenChoreoResolver

UIDS = {
    "/api/v1/namespaces/acme": "0f5d1d3e-0000-4000-8000-000000000001",
    "/api/v1/namespaces/acme/projects/shop": "0f5d1d3e-0000-4000-8000-000000000002",
    "/api/v1/namespaces/acme/components/cart svc": "0f5d1d3e-0000-4000-8000-000000000003",
    "/api/v1/namespaces/acme/environments/prod": "0f5d1d3e-0000-4000-8000-000000000004",
}


class FakeOpenChoreo:
    """State the test can steer: which token is valid, and what each call saw."""

    def __init__(self) -> None:
        self.valid_token = "token-1"
        self.issued = 0
        self.calls: list[tuple[str, str]] = []
        self.broken = False
        self.app = FastAPI()

        @self.app.post("/oauth2/token")
        async def token(grant_type: str = Form(), client_id: str = Form(), client_secret: str = Form()):
            if (grant_type, client_id, client_secret) != ("client_credentials", "observer", "s3cret"):
                return JSONResponse({"error": "invalid_client"}, status_code=401)
            self.issued += 1
            return {"access_token": self.valid_token, "expires_in": 3600}

        @self.app.get("/api/v1/namespaces/{rest:path}")
        async def resource(rest: str, request: Request):
            self.calls.append((request.url.path, request.headers.get("authorization", "")))
            if self.broken:
                return JSONResponse({"message": "boom"}, status_code=502)
            if request.headers.get("authorization") != f"Bearer {self.valid_token}":
                return JSONResponse({"message": "unauthorized"}, status_code=401)
            uid = UIDS.get(request.url.path)
            if uid is None:
                return JSONResponse({"message": "not found"}, status_code=404)
            return {"metadata": {"name": rest.rsplit("/", 1)[-1], "uid": uid}}


@pytest.fixture(scope="module")
def openchoreo():
    fake = FakeOpenChoreo()
    with serving(fake.app) as url:
        fake.url = url
        yield fake


def resolver(fake, secret: str = "s3cret") -> OpenChoreoResolver:
    return OpenChoreoResolver(
        fake.url, token_url=f"{fake.url}/oauth2/token", client_id="observer", client_secret=secret, max_auth_retry=2
    )


async def test_names_resolve_to_metadata_uids_with_escaped_paths(openchoreo):
    result = await resolver(openchoreo).resolve("acme", "shop", "cart svc", "prod")
    assert result == (
        UIDS["/api/v1/namespaces/acme/projects/shop"],
        UIDS["/api/v1/namespaces/acme/components/cart svc"],
        UIDS["/api/v1/namespaces/acme/environments/prod"],
    )
    assert ("/api/v1/namespaces/acme/components/cart svc", "Bearer token-1") in openchoreo.calls


async def test_unknown_name_is_scope_not_found(openchoreo):
    with pytest.raises(ScopeNotFound) as caught:
        await resolver(openchoreo).resolve("acme", "shop", "nope")
    assert caught.value.kind == "component"


async def test_token_is_cached_and_refreshed_after_a_401(openchoreo):
    subject = resolver(openchoreo)
    await subject.resolve("acme")
    issued = openchoreo.issued
    await subject.resolve("acme")
    assert openchoreo.issued == issued  # cached
    openchoreo.valid_token = "token-2"  # the API rotated its keys: the cached token is now refused
    await subject.resolve("acme", environment="prod")
    assert openchoreo.issued == issued + 1


async def test_refused_credentials_are_scope_auth_failed(openchoreo):
    with pytest.raises(ResolverAuthFailed):
        await resolver(openchoreo, secret="wrong").resolve("acme")


async def test_server_errors_are_unavailable(openchoreo):
    openchoreo.broken = True
    try:
        with pytest.raises(ResolverUnavailable):
            await resolver(openchoreo).resolve("acme")
    finally:
        openchoreo.broken = False


async def test_unreachable_api_is_unavailable():
    with pytest.raises(ResolverUnavailable):
        await OpenChoreoResolver("http://127.0.0.1:9", timeout_s=2).resolve("acme")


async def test_a_fully_named_scope_costs_three_lookups_and_no_namespace_lookup(openchoreo):
    subject = resolver(openchoreo)
    await subject.resolve("acme")  # the token, fetched once
    openchoreo.calls.clear()
    await subject.resolve("acme", "shop", "cart svc", "prod")
    assert sorted(path for path, _ in openchoreo.calls) == [
        "/api/v1/namespaces/acme/components/cart svc",
        "/api/v1/namespaces/acme/environments/prod",
        "/api/v1/namespaces/acme/projects/shop",
    ]


async def test_a_name_in_a_missing_namespace_is_the_namespace_not_found(openchoreo):
    with pytest.raises(ScopeNotFound) as caught:
        await resolver(openchoreo).resolve("nowhere", "shop", "cart svc")
    assert (caught.value.kind, caught.value.name) == ("namespace", "nowhere")


async def test_a_recreated_component_resolves_to_its_new_uid_on_the_next_query(openchoreo):
    """No UID is cached: a component deleted and re-created under its name never shows its predecessor's data."""
    subject = resolver(openchoreo)
    path = "/api/v1/namespaces/acme/components/cart svc"
    first = await subject.resolve("acme", component="cart svc")
    UIDS[path] = "0f5d1d3e-0000-4000-8000-00000000000f"
    try:
        assert await subject.resolve("acme", component="cart svc") == ("", UIDS[path], "")
        assert first != ("", UIDS[path], "")
    finally:
        UIDS[path] = "0f5d1d3e-0000-4000-8000-000000000003"
