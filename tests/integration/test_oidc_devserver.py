"""The tests' OIDC issuer (devservers/oidc.py) as an authorization server, over HTTP against the real process.

The console's sign-in and the resolver's client credentials are tested against it, so it has to behave as a
strict identity provider would: a code is bound to its client, redirect URI and PKCE challenge, is spent by its
first redemption (right or wrong), expires, and a wrong verifier is `invalid_grant`; an unknown client or redirect
URI is never redirected to; the tokens verify against the published JWKS with the configured audience.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from devservers.oidc import OidcIssuer, SigningKey

CLIENT = "observer-console"
REDIRECT = "http://127.0.0.1:9/callback"
SERVICE, SECRET = "observer-resolver", "resolver-secret"


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


@pytest.fixture
def issuer(oidc_issuer: OidcIssuer) -> Iterator[tuple[OidcIssuer, SigningKey, httpx.Client]]:
    """The issuer, reset: one published key it signs with, user alice in `devs`, a public and a confidential
    client; and an HTTP client that does not follow redirects (the test reads them)."""
    oidc_issuer.reset()
    key = oidc_issuer.new_key()
    oidc_issuer.publish(key)
    oidc_issuer.register_client(CLIENT, redirect_uris=[REDIRECT])
    oidc_issuer.register_client(SERVICE, secret=SECRET)
    oidc_issuer.sign_in_as(key, subject="alice", groups=["devs"])
    with httpx.Client(base_url=oidc_issuer.url, timeout=10, follow_redirects=False) as http:
        yield oidc_issuer, key, http


def _authorize(http: httpx.Client, challenge: str, **overrides: str) -> httpx.Response:
    query = {
        "response_type": "code",
        "client_id": CLIENT,
        "redirect_uri": REDIRECT,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": "s-123",
        "scope": "openid profile",
        **overrides,
    }
    return http.get("/authorize", params=query)


def _redirected(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    return {name: values[0] for name, values in parse_qs(location.query).items()}


def _redeem(http: httpx.Client, code: str, verifier: str, **overrides: str) -> httpx.Response:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_id": CLIENT,
        "code_verifier": verifier,
        **overrides,
    }
    return http.post("/token", data=form)


def _claims(http: httpx.Client, token: str) -> dict[str, Any]:
    """The token's claims, verified against the issuer's published JWKS (as the observer verifies them)."""
    keys = KeySet.import_key_set(http.get("/jwks").json())
    return dict(jwt.decode(token, keys, algorithms=["RS256"]).claims)


def test_the_code_flow_issues_a_token_for_the_configured_user(
    issuer: tuple[OidcIssuer, SigningKey, httpx.Client],
) -> None:
    oidc, key, http = issuer
    verifier, challenge = _pkce()
    back = _redirected(_authorize(http, challenge))
    assert back["state"] == "s-123" and back["code"]
    answer = _redeem(http, back["code"], verifier)
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["access-control-allow-origin"] == "*"
    body = answer.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 300
    claims = _claims(http, body["access_token"])
    assert claims["iss"] == oidc.url and claims["aud"] == "observer-api"
    assert claims["sub"] == "alice" and claims["groups"] == ["devs"] and claims["client_id"] == CLIENT
    assert claims["scope"] == "openid profile"
    assert _claims(http, body["id_token"])["aud"] == CLIENT
    assert jwt.decode(body["access_token"], key.key).header["kid"] == key.kid
    assert oidc.issued() == {"codes": 1, "tokens": 1}


def test_a_code_is_spent_by_its_first_redemption_even_a_wrong_one(
    issuer: tuple[OidcIssuer, SigningKey, httpx.Client],
) -> None:
    _, _, http = issuer
    verifier, challenge = _pkce()
    code = _redirected(_authorize(http, challenge))["code"]
    wrong = _redeem(http, code, _pkce()[0])
    assert wrong.status_code == 400
    assert wrong.json() == {"error": "invalid_grant", "error_description": wrong.json()["error_description"]}
    assert "does not match the code_challenge" in wrong.json()["error_description"]
    again = _redeem(http, code, verifier)  # the right verifier, too late
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert "already used" in again.json()["error_description"]

    code = _redirected(_authorize(http, challenge))["code"]
    assert _redeem(http, code, verifier).status_code == 200
    assert _redeem(http, code, verifier).json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"redirect_uri": "http://127.0.0.1:9/elsewhere"}, "redirect_uri differs"),
        ({"client_id": SERVICE, "client_secret": SECRET}, "another client"),
        ({"code_verifier": "short"}, "43 to 128"),
    ],
)
def test_a_code_redeemed_with_other_parameters_is_refused(
    issuer: tuple[OidcIssuer, SigningKey, httpx.Client], overrides: dict[str, str], needle: str
) -> None:
    _, _, http = issuer
    verifier, challenge = _pkce()
    code = _redirected(_authorize(http, challenge))["code"]
    answer = _redeem(http, code, verifier, **overrides)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"
    assert needle in answer.json()["error_description"]


def test_an_expired_code_is_refused(issuer: tuple[OidcIssuer, SigningKey, httpx.Client]) -> None:
    oidc, key, http = issuer
    oidc.sign_in_as(key, code_ttl_s=0)  # every code is born expired: no clock to wait for
    verifier, challenge = _pkce()
    code = _redirected(_authorize(http, challenge))["code"]
    answer = _redeem(http, code, verifier)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"
    assert "expired" in answer.json()["error_description"]


@pytest.mark.parametrize(
    ("overrides", "status"),
    [
        ({"client_id": "nobody"}, 400),
        ({"redirect_uri": "http://attacker.example/cb"}, 400),
    ],
)
def test_an_unknown_client_or_redirect_uri_is_never_redirected_to(
    issuer: tuple[OidcIssuer, SigningKey, httpx.Client], overrides: dict[str, str], status: int
) -> None:
    _, _, http = issuer
    answer = _authorize(http, _pkce()[1], **overrides)
    assert answer.status_code == status and "location" not in answer.headers
    assert answer.json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": ""}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
    ],
)
def test_a_bad_request_from_a_genuine_client_is_redirected_back_with_the_error(
    issuer: tuple[OidcIssuer, SigningKey, httpx.Client], overrides: dict[str, str], error: str
) -> None:
    oidc, _, http = issuer
    back = _redirected(_authorize(http, _pkce()[1], **overrides))
    assert back["error"] == error and back["state"] == "s-123" and "code" not in back
    assert back["error_description"]
    assert oidc.issued()["codes"] == 0


def test_a_user_who_refuses_comes_back_with_access_denied(
    issuer: tuple[OidcIssuer, SigningKey, httpx.Client],
) -> None:
    oidc, key, http = issuer
    oidc.sign_in_as(key, refuse=True)
    back = _redirected(_authorize(http, _pkce()[1]))
    assert back["error"] == "access_denied" and "code" not in back


def test_client_credentials_for_a_confidential_client_only(
    issuer: tuple[OidcIssuer, SigningKey, httpx.Client],
) -> None:
    _, _, http = issuer
    form = {"grant_type": "client_credentials", "client_id": SERVICE, "client_secret": SECRET}
    answer = http.post("/token", data=form)
    assert answer.status_code == 200, answer.text
    claims = _claims(http, answer.json()["access_token"])
    assert claims["sub"] == SERVICE and claims["client_id"] == SERVICE and claims["aud"] == "observer-api"
    assert "groups" not in claims and "id_token" not in answer.json()

    basic = http.post("/token", data={"grant_type": "client_credentials"}, auth=(SERVICE, SECRET))
    assert basic.status_code == 200, basic.text

    wrong = http.post("/token", data={**form, "client_secret": "guess"})
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    public = http.post("/token", data={"grant_type": "client_credentials", "client_id": CLIENT})
    assert public.status_code == 400 and public.json()["error"] == "unauthorized_client"
    other = http.post("/token", data={**form, "grant_type": "password"})
    assert other.status_code == 400 and other.json()["error"] == "unsupported_grant_type"
    json_body = http.post("/token", json=form)
    assert json_body.status_code == 400 and "x-www-form-urlencoded" in json_body.json()["error_description"]


def test_a_page_on_another_origin_may_read_discovery_jwks_and_token(
    issuer: tuple[OidcIssuer, SigningKey, httpx.Client],
) -> None:
    oidc, _, http = issuer
    origin = {"Origin": "http://127.0.0.1:9"}
    discovery = http.get("/.well-known/openid-configuration", headers=origin)
    assert discovery.headers["access-control-allow-origin"] == "*"
    metadata = discovery.json()
    assert metadata["authorization_endpoint"] == f"{oidc.url}/authorize"
    assert metadata["token_endpoint"] == f"{oidc.url}/token"
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert http.get("/jwks", headers=origin).headers["access-control-allow-origin"] == "*"
    preflight = http.options(
        "/token",
        headers={**origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"},
    )
    assert preflight.status_code == 204
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert "content-type" in preflight.headers["access-control-allow-headers"].lower()
    refused = http.post("/token", data={"grant_type": "authorization_code", "client_id": CLIENT}, headers=origin)
    assert refused.status_code == 400 and refused.headers["access-control-allow-origin"] == "*"  # readable errors
    assert "access-control-allow-origin" not in http.get("/_control/stats").headers
