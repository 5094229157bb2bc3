"""Authentication end to end: real tokens, signed by keys of a real OIDC issuer process on loopback
(devservers/oidc.py), verified by the public app's middleware, which fetches the issuer's JWKS over HTTP.

Which body a failure gets (access/authn.py): a missing or non-Bearer credential is MISSING_TOKEN; a token
that is malformed, badly signed, signed with a key or algorithm we do not accept, or outside its lifetime is
INVALID_TOKEN; a genuine current token for another issuer or audience is INVALID_CLAIMS.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from access.authn import Authenticator, JwksCache
from access.middleware import AuthMiddleware
from access.model import Subject
from access.settings import AuthConfigError, AuthSettings
from devservers.local import serving
from devservers.oidc import OidcIssuer, SigningKey, b64url
from observer.app import create_public_app
from tests.conftest import service_over

AUDIENCE = "observer-api"
BASE_URL = "https://observer.example.com"
SCOPES = ("openid", "profile", "email", "observer:read")
MISSING = {"error": "MISSING_TOKEN", "message": "missing or invalid authentication token"}
INVALID = {"error": "INVALID_TOKEN", "message": "invalid or expired token"}
CLAIMS = {"error": "INVALID_CLAIMS", "message": "token claims validation failed"}
UNRESOLVED = {"error": "INVALID_CLAIMS", "message": "Failed to resolve subject from token"}
REFETCH_SPACING_S = 10.0


class SteppedClock:
    """Monotonic time that moves only when the test says so: refetch spacing and cache age become exact."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="module")
def keys() -> dict[str, SigningKey]:
    """Generated once: RSA 2048 takes a while."""
    return {
        "rsa": OidcIssuer.new_key("RS256", kid="rsa-1"),
        "ec": OidcIssuer.new_key("ES256", kid="ec-1"),
        "rotated": OidcIssuer.new_key("RS256", kid="rsa-2"),
        "attacker": OidcIssuer.new_key("RS256", kid="attacker-1"),
    }


@pytest.fixture
def issuer(oidc_issuer: OidcIssuer, keys: dict[str, SigningKey]) -> OidcIssuer:
    """The session's issuer, back to its baseline: the RSA and EC keys published, counters at zero, and the
    attacker's key published at /attacker/jwks (where nothing should ever look)."""
    oidc_issuer.reset()
    oidc_issuer.publish(keys["rsa"], keys["ec"])
    oidc_issuer.publish(keys["attacker"], path="attacker/jwks")
    return oidc_issuer


def settings_for(issuer: OidcIssuer, **overrides: Any) -> AuthSettings:
    values: dict[str, Any] = dict(
        jwks_url=issuer.jwks_url,
        issuer=issuer.url,
        audiences=(AUDIENCE,),
        auth_server_base_url=issuer.url,
        observer_base_url=BASE_URL,
        mcp_scopes=SCOPES,
        leeway_s=30,
        jwks_min_refresh_interval_s=REFETCH_SPACING_S,
    )
    values.update(overrides)
    return AuthSettings(**values)


def add_probe_routes(app: FastAPI) -> None:
    """What a route sees: `request.state.subject`, at a REST path and under /mcp (where the MCP sub-app goes)."""

    def describe(request: Request) -> dict[str, Any]:
        subject: Subject | None = getattr(request.state, "subject", None)
        if subject is None:
            return {"subject": None}
        return {
            "subject": {
                "type": subject.type,
                "claim": subject.entitlement_claim,
                "values": list(subject.entitlement_values),
                "has_token": bool(subject.token),
            }
        }

    app.add_api_route("/api/v1alpha1/whoami", describe, methods=["GET"])
    app.add_api_route("/mcp", describe, methods=["GET", "POST"])
    app.add_api_route("/mcp/session", describe, methods=["GET"])


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock()


@pytest.fixture
async def make_client(backend, clock) -> AsyncIterator[Callable[..., httpx.AsyncClient]]:
    """Builds the public app over the embedded backend with a fresh Authenticator (a cold JWKS cache, the
    stepped clock) and an httpx client on it; all closed at the end."""
    opened: list[tuple[httpx.AsyncClient, Authenticator | None]] = []

    def make(settings: AuthSettings, cors: str = "") -> httpx.AsyncClient:
        authenticator = None
        if settings.enabled:
            authenticator = Authenticator(settings, jwks=JwksCache(settings, clock=clock))
        app = create_public_app(service_over(backend), cors, settings, authenticator=authenticator)
        add_probe_routes(app)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://observer")
        opened.append((client, authenticator))
        return client

    yield make
    for client, authenticator in opened:
        await client.aclose()
        if authenticator is not None:
            await authenticator.close()


@pytest.fixture
def api(make_client, issuer) -> httpx.AsyncClient:
    return make_client(settings_for(issuer))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def whoami(api: httpx.AsyncClient, token: str | None = None, **headers: str) -> httpx.Response:
    return await api.get("/api/v1alpha1/whoami", headers={**(bearer(token) if token else {}), **headers})


def assert_refused(response: httpx.Response, body: dict[str, str], status: int = 401) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == body


# ------------------------------------------------------------------------------------------ valid tokens


async def test_a_token_with_groups_is_a_user_entitled_by_its_groups(api, issuer, keys):
    token = issuer.mint(keys["rsa"], groups=["platform-admins", "devs"])
    response = await whoami(api, token)
    assert response.status_code == 200, response.text
    assert response.json()["subject"] == {
        "type": "user",
        "claim": "groups",
        "values": ["platform-admins", "devs"],
        "has_token": True,
    }


async def test_a_token_without_groups_is_a_service_account_entitled_by_its_sub(api, issuer, keys):
    token = issuer.mint(keys["ec"], sub="observer-resource-reader")  # ES256
    response = await whoami(api, token)
    assert response.status_code == 200, response.text
    assert response.json()["subject"] == {
        "type": "service_account",
        "claim": "sub",
        "values": ["observer-resource-reader"],
        "has_token": True,
    }


async def test_the_query_api_accepts_a_valid_token(api, issuer, keys):
    body = {
        "startTime": "2026-01-01T00:00:00Z",
        "endTime": "2026-01-01T01:00:00Z",
        "searchScope": {"namespace": "demo"},
    }
    without = await api.post("/api/v1/logs/query", json=body)
    assert_refused(without, MISSING)
    with_token = await api.post(
        "/api/v1/logs/query", json=body, headers=bearer(issuer.mint(keys["rsa"], groups=["devs"]))
    )
    assert with_token.status_code != 401, with_token.text


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
async def test_the_bearer_scheme_is_matched_in_any_case(api, issuer, keys, scheme):
    response = await whoami(api, Authorization=f"{scheme} {issuer.mint(keys['rsa'], groups=['devs'])}")
    assert response.status_code == 200, response.text


async def test_an_audience_list_needs_only_to_contain_ours(api, issuer, keys):
    token = issuer.mint(keys["rsa"], aud=["another-api", AUDIENCE], groups=["devs"])
    assert (await whoami(api, token)).status_code == 200


async def test_a_token_without_kid_is_checked_against_the_keys_of_its_type(api, issuer, keys):
    assert (await whoami(api, issuer.mint(keys["ec"], kid=None, groups=["devs"]))).status_code == 200
    forged = issuer.mint(keys["attacker"], kid=None, groups=["devs"])
    assert_refused(await whoami(api, forged), INVALID)


async def test_lateness_within_the_leeway_is_forgiven(api, issuer, keys):
    now = int(issuer.claims()["iat"])
    late = issuer.mint(keys["rsa"], exp=now - 10, iat=now - 300, nbf=now - 300, groups=["devs"])
    early = issuer.mint(keys["rsa"], nbf=now + 10, iat=now + 10, groups=["devs"])
    assert (await whoami(api, late)).status_code == 200
    assert (await whoami(api, early)).status_code == 200


# ------------------------------------------------------------------------------------------ refusals


async def test_no_authorization_header_is_missing_token(api):
    assert_refused(await whoami(api), MISSING)


@pytest.mark.parametrize(
    "value", ["Basic YWxpY2U6c2VjcmV0", "Token abc.def.ghi", "Bearer", "Bearer   ", "Bearer a b", "abc.def.ghi", ""]
)
async def test_another_scheme_or_an_empty_token_is_missing_token(api, value):
    assert_refused(await whoami(api, Authorization=value), MISSING)


async def test_two_authorization_headers_are_refused(api, issuer, keys):
    token = issuer.mint(keys["rsa"], groups=["devs"])
    response = await api.get(
        "/api/v1alpha1/whoami", headers=[("Authorization", f"Bearer {token}"), ("Authorization", "Bearer other")]
    )
    assert_refused(response, MISSING)


async def test_expired_beyond_the_leeway_is_invalid_token(api, issuer, keys):
    now = int(issuer.claims()["iat"])
    token = issuer.mint(keys["rsa"], exp=now - 31 - 5, iat=now - 600, nbf=now - 600, groups=["devs"])
    assert_refused(await whoami(api, token), INVALID)


async def test_not_yet_valid_beyond_the_leeway_is_invalid_token(api, issuer, keys):
    now = int(issuer.claims()["iat"])
    assert_refused(await whoami(api, issuer.mint(keys["rsa"], nbf=now + 120, groups=["devs"])), INVALID)
    assert_refused(await whoami(api, issuer.mint(keys["rsa"], iat=now + 120, nbf=None, groups=["devs"])), INVALID)


async def test_a_token_without_exp_never_expires_so_it_is_refused(api, issuer, keys):
    assert_refused(await whoami(api, issuer.mint(keys["rsa"], exp=None, groups=["devs"])), INVALID)


async def test_an_expired_token_for_another_audience_is_invalid_token_whatever_the_claim_order(api, issuer, keys):
    now = int(issuer.claims()["iat"])
    token = issuer.mint(keys["rsa"], aud="someone-else", exp=now - 600, iat=now - 900, nbf=now - 900, groups=["devs"])
    assert_refused(await whoami(api, token), INVALID)


async def test_another_audience_is_invalid_claims(api, issuer, keys):
    assert_refused(await whoami(api, issuer.mint(keys["rsa"], aud="another-api", groups=["devs"])), CLAIMS)
    assert_refused(await whoami(api, issuer.mint(keys["rsa"], aud=["a", "b"], groups=["devs"])), CLAIMS)
    assert_refused(await whoami(api, issuer.mint(keys["rsa"], aud=None, groups=["devs"])), CLAIMS)


async def test_another_issuer_is_invalid_claims(api, issuer, keys):
    assert_refused(await whoami(api, issuer.mint(keys["rsa"], iss="https://evil.example.com", groups=["devs"])), CLAIMS)
    assert_refused(await whoami(api, issuer.mint(keys["rsa"], iss=None, groups=["devs"])), CLAIMS)


async def test_a_token_fitting_no_subject_type_is_refused(api, issuer, keys):
    assert_refused(await whoami(api, issuer.mint(keys["rsa"], sub=None)), UNRESOLVED)
    assert_refused(await whoami(api, issuer.mint(keys["rsa"], sub="", groups=[])), UNRESOLVED)


@pytest.mark.parametrize("token", ["abc.def", "abc.def.ghi", "a.b.c.d.e", "e30.e30.", "notajwt"])
async def test_garbage_is_invalid_token(api, token):
    assert_refused(await whoami(api, token), INVALID)


async def test_a_tampered_payload_is_invalid_token(api, issuer, keys):
    header, _, signature = issuer.mint(keys["rsa"], groups=["devs"]).split(".")
    payload = b64url(b'{"sub":"alice","groups":["platform-admins"],"aud":"observer-api","exp":9999999999}')
    assert_refused(await whoami(api, f"{header}.{payload}.{signature}"), INVALID)


async def test_a_token_of_another_type_is_invalid_token(api, issuer, keys):
    token = issuer.mint(keys["rsa"], headers={"typ": "logout+jwt"}, groups=["devs"])
    assert_refused(await whoami(api, token), INVALID)
    assert (await whoami(api, issuer.mint(keys["rsa"], headers={"typ": "at+jwt"}, groups=["devs"]))).status_code == 200


# ------------------------------------------------------------------------------------------ attacks


async def test_alg_none_is_refused(api, issuer, keys):
    claims = issuer.claims(groups=["platform-admins"])
    for alg in ("none", "None", "NONE"):
        assert_refused(await whoami(api, OidcIssuer.forge({"alg": alg, "typ": "JWT"}, claims)), INVALID)
        assert_refused(await whoami(api, OidcIssuer.forge({"alg": alg, "kid": "rsa-1"}, claims, b"sig")), INVALID)


async def test_hs256_keyed_with_the_public_key_pem_is_refused(api, issuer, keys):
    """The classic confusion: the public key is public, so if it were accepted as an HMAC secret anyone
    could sign."""
    claims = issuer.claims(groups=["platform-admins"])
    pem = keys["rsa"].public_pem()
    for secret in (pem, pem.strip(), pem.decode().replace("\n", "").encode()):
        for header in ({"alg": "HS256", "kid": "rsa-1", "typ": "JWT"}, {"alg": "HS256", "typ": "JWT"}):
            assert_refused(await whoami(api, OidcIssuer.forge(header, claims, hmac_secret=secret)), INVALID)


async def test_a_key_named_by_the_token_is_never_used(api, issuer, keys):
    """jku / x5u point at the attacker's JWKS (served, and counted, by the issuer process); jwk embeds the
    attacker's key. All are signed by the attacker; none may verify, and the attacker's JWKS is never read."""
    attacker = keys["attacker"]
    claims = {"groups": ["platform-admins"]}
    tokens = [
        issuer.mint(attacker, headers={"jku": issuer.attacker_jwks_url}, **claims),
        issuer.mint(attacker, headers={"jku": issuer.attacker_jwks_url}, kid="rsa-1", **claims),
        issuer.mint(attacker, headers={"x5u": issuer.attacker_jwks_url}, **claims),
        issuer.mint(attacker, headers={"jwk": attacker.public_jwk()}, **claims),
        issuer.mint(attacker, headers={"jwk": attacker.public_jwk()}, kid="rsa-1", **claims),
        issuer.mint(attacker, headers={"jwk": attacker.public_jwk()}, kid=None, **claims),
    ]
    for token in tokens:
        assert_refused(await whoami(api, token), INVALID)
    assert issuer.fetches("attacker/jwks") == 0


async def test_an_algorithm_outside_the_allow_list_is_refused_without_asking_the_issuer(make_client, issuer, keys):
    api = make_client(settings_for(issuer, algorithms=("ES256",)))
    assert_refused(await whoami(api, issuer.mint(keys["rsa"], groups=["devs"])), INVALID)
    assert issuer.fetches() == 0
    assert (await whoami(api, issuer.mint(keys["ec"], groups=["devs"]))).status_code == 200


async def test_a_key_published_for_another_algorithm_does_not_verify(api, issuer, keys):
    """rsa-1 is published with alg RS256; a PS256 signature by the same private key is still refused."""
    assert_refused(await whoami(api, issuer.mint(keys["rsa"], alg="PS256", groups=["devs"])), INVALID)


# ------------------------------------------------------------------------------------------ the JWKS cache


async def test_keys_are_fetched_once_and_reused(api, issuer, keys):
    for _ in range(5):
        assert (await whoami(api, issuer.mint(keys["rsa"], groups=["devs"]))).status_code == 200
    assert issuer.fetches() == 1


async def test_a_rotated_in_key_is_accepted_after_exactly_one_refetch(api, issuer, keys, clock):
    assert (await whoami(api, issuer.mint(keys["rsa"], groups=["devs"]))).status_code == 200
    assert issuer.fetches() == 1
    new_token = issuer.mint(keys["rotated"], groups=["devs"])
    # Not published yet: one refetch (the spacing since the first fetch has passed), then a refusal.
    clock.advance(REFETCH_SPACING_S)
    assert_refused(await whoami(api, new_token), INVALID)
    assert issuer.fetches() == 2
    issuer.publish(keys["rsa"], keys["rotated"])
    clock.advance(REFETCH_SPACING_S)
    assert (await whoami(api, new_token)).status_code == 200
    assert issuer.fetches() == 3
    for _ in range(3):
        assert (await whoami(api, issuer.mint(keys["rotated"], groups=["devs"]))).status_code == 200
        assert (await whoami(api, issuer.mint(keys["rsa"], groups=["devs"]))).status_code == 200
    assert issuer.fetches() == 3


async def test_concurrent_requests_with_a_new_kid_share_one_fetch(api, issuer, keys, clock):
    assert (await whoami(api, issuer.mint(keys["rsa"], groups=["devs"]))).status_code == 200
    issuer.publish(keys["rsa"], keys["rotated"])
    clock.advance(REFETCH_SPACING_S)
    responses = await asyncio.gather(*(whoami(api, issuer.mint(keys["rotated"], groups=["devs"])) for _ in range(20)))
    assert [r.status_code for r in responses] == [200] * 20
    assert issuer.fetches() == 2


async def test_a_kid_spray_does_not_hammer_the_issuer(api, issuer, keys, clock):
    assert (await whoami(api, issuer.mint(keys["rsa"], groups=["devs"]))).status_code == 200
    assert issuer.fetches() == 1
    attacker = keys["attacker"]

    def spray(n: int) -> list[str]:
        return [issuer.mint(attacker, kid=f"made-up-{uuid.uuid4().hex}", groups=["devs"]) for _ in range(n)]

    # Within the spacing of the first fetch: no refetch at all, sequential or concurrent.
    for token in spray(10):
        assert_refused(await whoami(api, token), INVALID)
    for response in await asyncio.gather(*(whoami(api, token) for token in spray(20))):
        assert_refused(response, INVALID)
    assert issuer.fetches() == 1
    # Once the spacing has passed: one refetch for the whole burst.
    clock.advance(REFETCH_SPACING_S)
    for response in await asyncio.gather(*(whoami(api, token) for token in spray(20))):
        assert_refused(response, INVALID)
    for token in spray(10):
        assert_refused(await whoami(api, token), INVALID)
    assert issuer.fetches() == 2
    # Genuine tokens are unaffected throughout.
    assert (await whoami(api, issuer.mint(keys["ec"], groups=["devs"]))).status_code == 200


async def test_the_jwks_is_refreshed_after_its_max_age_without_making_requests_wait(make_client, issuer, keys, clock):
    issuer.behave(cache_control="public, max-age=300")
    api = make_client(settings_for(issuer))
    token = issuer.mint(keys["rsa"], groups=["devs"])
    assert (await whoami(api, token)).status_code == 200
    clock.advance(299)
    assert (await whoami(api, token)).status_code == 200
    assert issuer.fetches() == 1
    # rsa-1 is withdrawn; once the age has passed, a request (still served from the old keys) starts a
    # refresh in the background, after which rsa-1 tokens, even remembered ones, stop working.
    issuer.publish(keys["ec"])
    clock.advance(2)
    assert (await whoami(api, token)).status_code == 200
    for _ in range(500):
        response = await whoami(api, token)
        if response.status_code != 200:
            break
        await asyncio.sleep(0.01)
    assert_refused(response, INVALID)
    assert issuer.fetches() == 2
    assert (await whoami(api, issuer.mint(keys["ec"], groups=["devs"]))).status_code == 200


async def test_an_unreachable_jwks_is_503_not_401_and_recovers(make_client, issuer, keys, clock):
    issuer.behave(status=500)
    api = make_client(settings_for(issuer))
    token = issuer.mint(keys["rsa"], groups=["devs"])
    refused = await whoami(api, token)
    assert_refused(
        refused, {"error": "AUTHENTICATION_UNAVAILABLE", "message": "authentication is temporarily unavailable"}, 503
    )
    # Not retried on every request while it is down.
    for _ in range(5):
        assert (await whoami(api, token)).status_code == 503
    assert issuer.fetches() == 1
    issuer.behave(status=200)
    clock.advance(REFETCH_SPACING_S)
    assert (await whoami(api, token)).status_code == 200
    assert issuer.fetches() == 2


async def test_a_jwks_outage_after_startup_keeps_the_cached_keys_working(make_client, issuer, keys, clock):
    api = make_client(settings_for(issuer))
    assert (await whoami(api, issuer.mint(keys["rsa"], groups=["devs"]))).status_code == 200
    issuer.behave(status=503)
    clock.advance(3600)
    for _ in range(3):
        assert (await whoami(api, issuer.mint(keys["rsa"], groups=["devs"]))).status_code == 200
    # A genuinely unknown kid during the outage cannot be decided: 503.
    clock.advance(REFETCH_SPACING_S)
    response = await whoami(api, issuer.mint(keys["rotated"], groups=["devs"]))
    assert response.status_code == 503


async def test_an_unusable_entry_in_the_jwks_does_not_hide_the_others(make_client, issuer, keys):
    encryption_key = {**keys["rotated"].public_jwk(), "use": "enc"}
    issuer.publish_raw(
        {
            "keys": [
                {"kty": "oct", "k": "c2VjcmV0", "kid": "rsa-1", "alg": "HS256"},
                {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
                {"kty": "XYZ", "kid": "exotic"},
                encryption_key,
                keys["rsa"].public_jwk(),
            ]
        }
    )
    api = make_client(settings_for(issuer))
    assert (await whoami(api, issuer.mint(keys["rsa"], groups=["devs"]))).status_code == 200
    claims = issuer.claims(groups=["platform-admins"])
    assert_refused(
        await whoami(api, OidcIssuer.forge({"alg": "HS256", "kid": "rsa-1"}, claims, hmac_secret=b"secret")), INVALID
    )
    assert_refused(await whoami(api, issuer.mint(keys["rotated"], groups=["devs"])), INVALID)  # published for "enc"


# ------------------------------------------------------------------------------------------ the gate


async def test_mcp_401s_carry_the_resource_metadata_challenge(api, issuer, keys):
    challenge = (
        f'Bearer resource_metadata="{BASE_URL}/.well-known/oauth-protected-resource", '
        f'scope="openid profile email observer:read"'
    )
    for path in ("/mcp", "/mcp/session"):
        missing = await api.get(path)
        assert_refused(missing, MISSING)
        assert missing.headers["www-authenticate"] == challenge
        invalid = await api.get(path, headers=bearer("abc.def.ghi"))
        assert_refused(invalid, INVALID)
        assert invalid.headers["www-authenticate"] == challenge
    posted = await api.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "initialize"})
    assert posted.headers["www-authenticate"] == challenge
    elsewhere = await whoami(api)
    assert "www-authenticate" not in elsewhere.headers
    assert "www-authenticate" not in (await api.get("/mcpx")).headers
    ok = await api.get("/mcp", headers=bearer(issuer.mint(keys["rsa"], groups=["devs"])))
    assert ok.status_code == 200 and ok.json()["subject"]["type"] == "user"


async def test_the_default_mcp_scopes_are_openid_profile_email(make_client, issuer):
    api = make_client(AuthSettings.from_env({"JWKS_URL": issuer.jwks_url}))
    response = await api.get("/mcp")
    assert response.headers["www-authenticate"].endswith('scope="openid profile email"')
    # Without OBSERVER_BASE_URL the challenge points at the host the client reached.
    assert (
        'resource_metadata="http://observer/.well-known/oauth-protected-resource"'
        in response.headers["www-authenticate"]
    )


async def test_protected_resource_metadata_and_health_need_no_token(api, issuer):
    metadata = await api.get("/.well-known/oauth-protected-resource")
    assert metadata.status_code == 200
    assert metadata.json() == {
        "resource_name": "OpenChoreo Observer MCP Server",
        "resource": f"{BASE_URL}/mcp",
        "authorization_servers": [issuer.url],
        "bearer_methods_supported": ["header"],
        "scopes_supported": list(SCOPES),
        "openchoreo_security_enabled": False,
    }
    assert (await api.get("/health")).status_code == 200
    assert (await api.head("/health")).status_code != 401  # passes the gate (the route itself only has GET)
    # Only reading them is free.
    assert_refused(await api.post("/health"), MISSING)
    assert_refused(await api.delete("/.well-known/oauth-protected-resource"), MISSING)
    assert issuer.fetches() == 0


async def test_unknown_paths_need_a_token_and_the_api_description_does_not(api):
    assert_refused(await api.get("/nowhere"), MISSING)
    assert_refused(await api.get("/docs/assets/../../api/v1/logs/query"), MISSING)
    # The description holds no data, and a browser opening /docs sends no token: reading it is free.
    assert (await api.get("/openapi.json")).status_code == 200
    page = await api.get("/docs")
    assert page.status_code == 200
    assets = re.findall(r'(?:src|href)="(/docs/assets/[^"]+)"', page.text)
    assert assets
    for asset in assets:
        assert (await api.get(asset)).status_code == 200, asset
    assert (await api.get("/redoc")).status_code == 200
    assert_refused(await api.post("/openapi.json"), MISSING)


async def test_cors_preflights_pass_and_401s_carry_cors_headers(make_client, issuer):
    api = make_client(settings_for(issuer), cors="https://console.example.com")
    preflight = await api.options(
        "/api/v1/logs/query",
        headers={
            "Origin": "https://console.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Authorization, Content-Type",
        },
    )
    assert preflight.status_code in (200, 204), preflight.text
    assert preflight.headers["access-control-allow-origin"] == "https://console.example.com"
    refused = await api.post("/api/v1/logs/query", json={}, headers={"Origin": "https://console.example.com"})
    assert_refused(refused, MISSING)
    assert refused.headers["access-control-allow-origin"] == "https://console.example.com"
    # An OPTIONS that is not a preflight is not exempt.
    assert_refused(await api.options("/api/v1/logs/query"), MISSING)


async def test_jwt_disabled_passes_everything_through_without_a_subject(make_client):
    api = make_client(AuthSettings.from_env({"JWT_DISABLED": "true"}))
    for headers in ({}, bearer("abc.def.ghi"), {"Authorization": "Basic x"}):
        response = await whoami(api, **headers)
        assert response.status_code == 200
        assert response.json() == {"subject": None}
    assert (await api.get("/mcp")).json() == {"subject": None}


async def test_a_configured_subject_type_order_is_followed(make_client, issuer, keys, tmp_path):
    config = tmp_path / "auth-config.yaml"
    config.write_text(
        "subjects:\n"
        "  - type: service_account\n    entitlementClaim: client_id\n    priority: 1\n"
        "  - type: user\n    entitlement:\n      claim: realm_access.roles\n    priority: 2\n"
    )
    api = make_client(settings_for(issuer, auth_config_path=config))  # the Authenticator reads the file
    service = await whoami(api, issuer.mint(keys["rsa"], groups=["devs"]))
    assert service.json()["subject"]["type"] == "service_account"
    assert service.json()["subject"]["values"] == ["observer-tests"]
    user = await whoami(api, issuer.mint(keys["rsa"], client_id=None, realm_access={"roles": ["admin", "dev"]}))
    assert user.json()["subject"] == {
        "type": "user",
        "claim": "realm_access.roles",
        "values": ["admin", "dev"],
        "has_token": True,
    }
    assert_refused(await whoami(api, issuer.mint(keys["rsa"], client_id=None, groups=["devs"])), UNRESOLVED)


async def test_over_real_http(backend, issuer, keys):
    """The same gate behind uvicorn: headers and bodies as they leave the socket."""
    settings = settings_for(issuer)
    app = create_public_app(service_over(backend), "", settings)
    add_probe_routes(app)
    try:
        with serving(app) as url:
            async with httpx.AsyncClient(base_url=url) as client:
                refused = await client.post("/mcp", json={})
                assert refused.status_code == 401
                assert refused.json() == MISSING
                assert refused.headers["content-type"] == "application/json"
                assert refused.headers["www-authenticate"].startswith('Bearer resource_metadata="')
                ok = await client.get("/api/v1alpha1/whoami", headers=bearer(issuer.mint(keys["ec"], groups=["devs"])))
                assert ok.status_code == 200 and ok.json()["subject"]["values"] == ["devs"]
    finally:
        await app.state.authenticator.close()


# ------------------------------------------------------------------------------------------ settings and startup


def test_authentication_is_on_unless_disabled_and_then_needs_a_jwks_url():
    with pytest.raises(AuthConfigError) as raised:
        AuthSettings.from_env({})
    assert "JWKS_URL" in str(raised.value) and "JWT_DISABLED=true" in str(raised.value)
    with pytest.raises(AuthConfigError):
        AuthSettings.from_env({"JWT_DISABLED": "false"})
    with pytest.raises(AuthConfigError):
        AuthSettings.from_env({"JWT_DISABLED": "maybe"})
    assert AuthSettings.from_env({"JWT_DISABLED": "true"}).enabled is False
    assert AuthSettings.from_env({"JWT_DISABLED": "TRUE"}).enabled is False


def test_settings_read_openchoreo_variable_names():
    settings = AuthSettings.from_env(
        {
            "JWKS_URL": "https://idp.example.com/oauth2/jwks",
            "JWT_ISSUER": "https://idp.example.com/oauth2/token",
            "JWT_AUDIENCE": "observer-api, openchoreo-api",
            "JWKS_URL_TLS_INSECURE_SKIP_VERIFY": "true",
            "AUTH_SERVER_BASE_URL": "https://idp.example.com",
            "MCP_OAUTH_SCOPES": "openid  observer:read",
            "OBSERVER_BASE_URL": "https://observer.example.com/",
            "OBSERVER_AUTH_CONFIG_PATH": "/etc/observer/auth-config.yaml",
            "JWT_LEEWAY_SECONDS": "45",
        }
    )
    assert settings.enabled and settings.audiences == ("observer-api", "openchoreo-api")
    assert settings.jwks_tls_insecure_skip_verify and settings.leeway_s == 45
    assert settings.mcp_scopes == ("openid", "observer:read")
    assert settings.resource_metadata_url == "https://observer.example.com/.well-known/oauth-protected-resource"
    assert settings.auth_config_path == Path("/etc/observer/auth-config.yaml")
    assert "none" not in settings.algorithms and not any(a.startswith("HS") for a in settings.algorithms)
    defaults = AuthSettings.from_env({"JWKS_URL": "http://127.0.0.1:1/jwks"})
    assert defaults.mcp_scopes == ("openid", "profile", "email")
    assert defaults.observer_base_url == "" and defaults.leeway_s == 30


@pytest.mark.parametrize("algorithms", ["HS256", "RS256,none", "RS256,HS512"])
def test_symmetric_algorithms_and_none_cannot_be_allowed(algorithms):
    with pytest.raises(AuthConfigError):
        AuthSettings.from_env({"JWKS_URL": "http://127.0.0.1:1/jwks", "JWT_ALGORITHMS": algorithms})


def test_observer_up_refuses_to_start_without_a_jwks_url(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JWT_", "JWKS_"))}
    result = subprocess.run(
        [sys.executable, "-m", "observer.cli", "up", "--data-dir", str(tmp_path / "data"), "--port", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 2, result.stderr
    assert "JWKS_URL" in result.stderr and "JWT_DISABLED=true" in result.stderr


def test_a_broken_auth_config_stops_startup(tmp_path):
    config = tmp_path / "auth-config.yaml"
    config.write_text("subjects:\n  - type: user\n")
    with pytest.raises(AuthConfigError, match="entitlement claim"):
        Authenticator(AuthSettings(jwks_url="http://127.0.0.1:1/jwks", auth_config_path=config))


async def test_the_middleware_is_plain_asgi_and_leaves_lifespan_alone():
    seen: list[str] = []

    async def app(scope, receive, send):
        seen.append(scope["type"])

    # Authentication on (a lifespan event carries no token, so anything but a pass-through would refuse it).
    settings = AuthSettings(jwks_url="http://127.0.0.1:9/jwks")
    authenticator = Authenticator(settings)
    try:
        gate = AuthMiddleware(app, authenticator, settings)
        await gate({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    finally:
        await authenticator.close()
    assert seen == ["lifespan"]
