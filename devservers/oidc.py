"""A real OIDC issuer for the authentication tests: a separate Python process on loopback.

The process (stdlib `http.server`, started with `python -m devservers.oidc`) serves what a resource server
needs from an identity provider:

- `GET /.well-known/openid-configuration`: discovery, `issuer` = its base URL, `jwks_uri` = `<base>/jwks`;
- `GET /jwks`: the published keys, counted per fetch, with a status and Cache-Control the test can set;
- `GET /attacker/jwks`: a second, "attacker's" JWKS, also counted, so a test can prove it was never fetched;
- `GET /authorize`: the authorization code flow with PKCE S256 (RFC 6749 §4.1, RFC 7636), non-interactive: it
  signs in the one test user the test configured and redirects back with a one-time code bound to the client, the
  redirect URI and the challenge (or with `error=access_denied` when the test said the user refuses);
- `POST /token`: `authorization_code` (the verifier checked against the challenge; codes expire and are
  single-use) and `client_credentials` (a confidential client and its secret), answering signed JWT access tokens;
- CORS headers on discovery, the JWKS and `/token`: a browser page (the console) calls them with `fetch`.

The test side holds the private keys (`SigningKey`) and publishes only public JWKs to the process through
`/_control/*`, so rotating keys is a PUT away. `OidcIssuer.mint` signs tokens with any key, `alg`, `kid` and
claims; `forge` assembles tokens no honest library would sign (`alg: none`, HS256 keyed with a public PEM).
Only for the token endpoint does one private key reach the process (`sign_in_as`): the issuer must sign what it
issues itself, as a real identity provider does.

    issuer = start_oidc_issuer()
    key = issuer.new_key("RS256"); issuer.publish(key)
    token = issuer.mint(key, groups=["devs"])
    issuer.fetches()  # how many times /jwks was read
    issuer.register_client("observer-console", redirect_uris=["http://127.0.0.1:8080/"])  # a public client
    issuer.sign_in_as(key, subject="alice", groups=["devs"])  # who /authorize signs in, what /token signs with
    issuer.stop()
"""

from __future__ import annotations

import argparse
import atexit
import base64
import hashlib
import hmac
import json
import re
import secrets
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qsl, unquote_plus, urlencode, urlsplit

import httpx

ROOT = Path(__file__).resolve().parents[1]
JWKS_PATHS = ("jwks", "attacker/jwks")

# --------------------------------------------------------------------------------------------- the process

#: Outstanding authorization codes the process keeps; a test that leaks more than this has a bug worth seeing.
MAX_CODES = 1000
MAX_FORM_BYTES = 64 * 1024
#: RFC 7636 §4.1 / §4.2: a verifier is 43-128 unreserved characters; an S256 challenge is 43 base64url ones.
VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
CHALLENGE = re.compile(r"[A-Za-z0-9\-_]{43}")
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type",
    "Access-Control-Max-Age": "600",
}
CORS_PATHS = (".well-known/openid-configuration", "token", *JWKS_PATHS)


class OAuthError(Exception):
    """An OAuth error answer (RFC 6749 §5.2): `error` is the standard code, `description` says what to fix."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description


@dataclass(frozen=True)
class _Client:
    client_id: str
    redirect_uris: tuple[str, ...]
    secret: str | None  # None: a public client (PKCE, no secret), which may not use client_credentials


@dataclass(frozen=True)
class _Code:
    client_id: str
    redirect_uri: str
    challenge: str
    scope: str
    expires_at: float  # time.monotonic()


class _IssuerState:
    """Everything the issuer process serves, behind one lock (the server is threaded)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.jwks: dict[str, dict[str, Any]] = {path: {"keys": []} for path in JWKS_PATHS}
        self.fetches: dict[str, int] = {path: 0 for path in JWKS_PATHS}
        self.status: dict[str, int] = {path: 200 for path in JWKS_PATHS}
        self.cache_control: dict[str, str | None] = {path: None for path in JWKS_PATHS}
        self.clients: dict[str, _Client] = {}
        self.codes: dict[str, _Code] = {}
        self.login: dict[str, Any] | None = None  # what PUT /_control/login set: user, key, audience, lifetimes
        self.signer: tuple[Any, str, str] | None = None  # (joserfc key, kid, alg)
        self.issued: dict[str, int] = {"codes": 0, "tokens": 0}

    def set_login(self, body: dict[str, Any]) -> None:
        from joserfc.jwk import JWKRegistry

        jwk = dict(body["jwk"])
        kid, alg = str(jwk.pop("kid")), str(jwk.pop("alg"))
        jwk.pop("use", None)
        self.signer = (JWKRegistry.import_key(jwk), kid, alg)
        self.login = {key: value for key, value in body.items() if key != "jwk"}

    def new_code(self, client: _Client, redirect_uri: str, challenge: str, scope: str) -> str:
        assert self.login is not None
        now = time.monotonic()
        if len(self.codes) >= MAX_CODES:
            self.codes = {code: grant for code, grant in self.codes.items() if grant.expires_at > now}
        if len(self.codes) >= MAX_CODES:
            raise OAuthError(503, "temporarily_unavailable", f"more than {MAX_CODES} codes are outstanding")
        code = secrets.token_urlsafe(32)
        self.codes[code] = _Code(client.client_id, redirect_uri, challenge, scope, now + self.login["code_ttl_s"])
        self.issued["codes"] += 1
        return code

    def redeem(self, form: dict[str, str], client: _Client) -> _Code:
        """The code's grant, checked (RFC 6749 §4.1.3, RFC 7636 §4.6); the code is spent whatever the outcome."""
        grant = self.codes.pop(form.get("code", ""), None)
        if grant is None:
            raise OAuthError(400, "invalid_grant", "the code is unknown or was already used; sign in again")
        if grant.expires_at <= time.monotonic():
            raise OAuthError(400, "invalid_grant", "the code has expired; sign in again")
        if grant.client_id != client.client_id:
            raise OAuthError(400, "invalid_grant", "the code was issued to another client")
        if form.get("redirect_uri", "") != grant.redirect_uri:
            raise OAuthError(400, "invalid_grant", "redirect_uri differs from the one the code was issued for")
        verifier = form.get("code_verifier", "")
        if not VERIFIER.fullmatch(verifier):
            raise OAuthError(400, "invalid_grant", "code_verifier must be 43 to 128 unreserved characters")
        if b64url(hashlib.sha256(verifier.encode()).digest()) != grant.challenge:
            raise OAuthError(400, "invalid_grant", "code_verifier does not match the code_challenge")
        return grant

    def sign(self, claims: dict[str, Any]) -> str:
        from joserfc import jwt

        assert self.signer is not None
        key, kid, alg = self.signer
        return jwt.encode({"alg": alg, "typ": "JWT", "kid": kid}, claims, key, algorithms=[alg])

    def tokens(self, issuer: str, client: _Client, subject: str, groups: list[str], scope: str) -> dict[str, Any]:
        """The token response (RFC 6749 §5.1): an access token for the configured audience, and an ID token for
        the client when `openid` was asked for."""
        assert self.login is not None
        now, lifetime = int(time.time()), int(self.login["token_ttl_s"])
        common = {"iss": issuer, "sub": subject, "iat": now, "nbf": now, "exp": now + lifetime}
        access = {**common, "aud": self.login["audience"], "jti": uuid.uuid4().hex, "client_id": client.client_id}
        if groups:
            access["groups"] = groups
        if scope:
            access["scope"] = scope
        answer: dict[str, Any] = {"access_token": self.sign(access), "token_type": "Bearer", "expires_in": lifetime}
        if scope:
            answer["scope"] = scope
        if "openid" in scope.split():
            answer["id_token"] = self.sign({**common, "aud": client.client_id, "groups": groups})
        self.issued["tokens"] += 1
        return answer


def _authorize(state: _IssuerState, query: dict[str, str]) -> str:
    """The redirect answering GET /authorize: `<redirect_uri>?code=..&state=..`, or `?error=..` once the client and
    its redirect URI are known to be genuine. An unknown client or redirect URI raises: never redirect there."""
    client = state.clients.get(query.get("client_id", ""))
    if client is None:
        raise OAuthError(400, "invalid_request", "client_id is not a client registered at this issuer")
    redirect_uri = query.get("redirect_uri", "")
    if redirect_uri not in client.redirect_uris:
        raise OAuthError(400, "invalid_request", f"redirect_uri is not one of {list(client.redirect_uris)}")
    back = {"state": query["state"]} if "state" in query else {}
    try:
        if query.get("response_type") != "code":
            raise OAuthError(400, "unsupported_response_type", "response_type must be code")
        if query.get("code_challenge_method") != "S256":
            raise OAuthError(400, "invalid_request", "code_challenge_method must be S256 (PKCE is required)")
        if not CHALLENGE.fullmatch(query.get("code_challenge", "")):
            raise OAuthError(400, "invalid_request", "code_challenge must be 43 base64url characters (S256)")
        if state.login is None:
            raise OAuthError(503, "temporarily_unavailable", "the test configured no user (sign_in_as)")
        if state.login["refuse"]:
            raise OAuthError(403, "access_denied", "the user refused the sign-in")
        back["code"] = state.new_code(client, redirect_uri, query["code_challenge"], query.get("scope", ""))
    except OAuthError as error:
        back.update(error=error.error, error_description=error.description)
    separator = "&" if "?" in redirect_uri else "?"
    return f"{redirect_uri}{separator}{urlencode(back)}"


def _client_of(state: _IssuerState, form: dict[str, str], authorization: str | None) -> _Client:
    """The calling client (RFC 6749 §2.3): HTTP Basic or client_id/client_secret in the form; a registered
    confidential client must prove its secret, a public one has none to prove."""
    client_id, secret = form.get("client_id", ""), form.get("client_secret")
    if authorization and authorization.lower().startswith("basic "):
        try:
            pair = base64.b64decode(authorization[6:], validate=True).decode()
        except ValueError:
            raise OAuthError(401, "invalid_client", "the Basic credentials are not base64") from None
        client_id, _, secret = (unquote_plus(part) for part in pair.partition(":"))
    client = state.clients.get(client_id)
    if client is None:
        raise OAuthError(401, "invalid_client", "client_id is not a client registered at this issuer")
    if client.secret is not None and not (secret and hmac.compare_digest(secret, client.secret)):
        raise OAuthError(401, "invalid_client", "the client secret is missing or wrong")
    return client


def _token(state: _IssuerState, issuer: str, form: dict[str, str], authorization: str | None) -> dict[str, Any]:
    if state.login is None:
        raise OAuthError(400, "invalid_request", "the test configured no signing key (sign_in_as)")
    client = _client_of(state, form, authorization)
    grant_type = form.get("grant_type", "")
    if grant_type == "authorization_code":
        grant = state.redeem(form, client)
        user = state.login
        return state.tokens(issuer, client, user["subject"], list(user["groups"]), grant.scope)
    if grant_type == "client_credentials":
        if client.secret is None:
            raise OAuthError(400, "unauthorized_client", "a public client may not use client_credentials")
        return state.tokens(issuer, client, client.client_id, [], form.get("scope", ""))
    raise OAuthError(400, "unsupported_grant_type", "grant_type must be authorization_code or client_credentials")


def _handler(state: _IssuerState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet: the tests read counts, not logs
            pass

        def _path(self) -> str:
            return self.path.split("?", 1)[0].strip("/")

        def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in {**(CORS if self._path() in CORS_PATHS else {}), **(headers or {})}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _raw(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_FORM_BYTES:
                raise OAuthError(413, "invalid_request", f"the body is larger than {MAX_FORM_BYTES} bytes")
            return self.rfile.read(length)

        def _body(self) -> Any:
            return json.loads(self._raw() or b"null")

        def _base(self) -> str:
            host, port = cast("tuple[str, int]", self.server.server_address)[:2]  # AF_INET: (host, port)
            return f"http://{host}:{port}"

        def _oauth_error(self, error: OAuthError) -> None:
            headers = {"Cache-Control": "no-store"}
            if error.status == 401:
                headers["WWW-Authenticate"] = 'Basic realm="oidc-devserver"'
            self._send(error.status, {"error": error.error, "error_description": error.description}, headers)

        def do_OPTIONS(self) -> None:  # a CORS preflight
            if self._path() in CORS_PATHS:
                self.send_response(204)
                for name, value in CORS.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self._send(404, {"error": "not found"})

        def do_GET(self) -> None:
            path = self._path()
            if path == ".well-known/openid-configuration":
                base = self._base()
                self._send(
                    200,
                    {
                        "issuer": base,
                        "jwks_uri": f"{base}/jwks",
                        "authorization_endpoint": f"{base}/authorize",
                        "token_endpoint": f"{base}/token",
                        "response_types_supported": ["code"],
                        "grant_types_supported": ["authorization_code", "client_credentials"],
                        "code_challenge_methods_supported": ["S256"],
                        "token_endpoint_auth_methods_supported": ["none", "client_secret_post", "client_secret_basic"],
                        "subject_types_supported": ["public"],
                        "id_token_signing_alg_values_supported": ["RS256", "ES256", "PS256"],
                    },
                )
            elif path == "authorize":
                query = dict(parse_qsl(urlsplit(self.path).query))
                try:
                    with state.lock:
                        location = _authorize(state, query)
                except OAuthError as error:
                    self._oauth_error(error)
                    return
                self.send_response(302)
                self.send_header("Location", location)
                self.send_header("Cache-Control", "no-store")
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif path in JWKS_PATHS:
                with state.lock:
                    state.fetches[path] += 1
                    status, jwks, cache_control = state.status[path], state.jwks[path], state.cache_control[path]
                headers = {"Cache-Control": cache_control} if cache_control else {}
                self._send(status, jwks if status == 200 else {"error": "unavailable"}, headers)
            elif path == "_control/stats":
                with state.lock:
                    self._send(200, {"fetches": dict(state.fetches), "issued": dict(state.issued)})
            elif path == "health":
                self._send(200, {"status": "ok"})
            else:
                self._send(404, {"error": "not found"})

        def do_PUT(self) -> None:
            path = self.path.strip("/")
            body = self._body()
            with state.lock:
                if path.startswith("_control/jwks/") and path.removeprefix("_control/jwks/") in JWKS_PATHS:
                    state.jwks[path.removeprefix("_control/jwks/")] = body
                elif path.startswith("_control/behaviour/") and path.removeprefix("_control/behaviour/") in JWKS_PATHS:
                    target = path.removeprefix("_control/behaviour/")
                    state.status[target] = int(body.get("status", 200))
                    state.cache_control[target] = body.get("cache_control")
                elif path.startswith("_control/clients/"):
                    client_id = path.removeprefix("_control/clients/")
                    redirect_uris = tuple(str(uri) for uri in body.get("redirect_uris", []))
                    state.clients[client_id] = _Client(client_id, redirect_uris, body.get("secret"))
                elif path == "_control/login":
                    state.set_login(body)
                else:
                    self._send(404, {"error": "not found"})
                    return
            self._send(200, {"ok": True})

        def do_POST(self) -> None:
            path = self._path()
            if path == "_control/reset":
                self._body()
                with state.lock:
                    state.reset()
                self._send(200, {"ok": True})
            elif path == "token":
                try:
                    if "application/x-www-form-urlencoded" not in (self.headers.get("Content-Type") or ""):
                        raise OAuthError(400, "invalid_request", "send the form as application/x-www-form-urlencoded")
                    form = dict(parse_qsl(self._raw().decode(errors="replace")))
                    with state.lock:
                        answer = _token(state, self._base(), form, self.headers.get("Authorization"))
                except OAuthError as error:
                    self._oauth_error(error)
                    return
                self._send(200, answer, {"Cache-Control": "no-store", "Pragma": "no-cache"})
            else:
                self._send(404, {"error": "not found"})

    return Handler


def serve(port: int) -> None:
    """Runs the issuer until killed; prints `PORT <n>` first so the parent learns the port it got."""
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(_IssuerState()))
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()


# --------------------------------------------------------------------------------------------- the test side


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class SigningKey:
    """A private key the tests sign with; only `public_jwk()` ever reaches the issuer process."""

    kid: str
    alg: str
    key: Any  # joserfc RSAKey / ECKey with the private part

    def public_jwk(self) -> dict[str, Any]:
        return {**self.key.as_dict(private=False), "kid": self.kid, "use": "sig", "alg": self.alg}

    def public_pem(self) -> bytes:
        return self.key.as_pem(private=False)


class OidcIssuer:
    """Handle on the issuer process: its URLs, its keys, its counters."""

    def __init__(self, process: subprocess.Popen[bytes], port: int) -> None:
        self.process = process
        self.url = f"http://127.0.0.1:{port}"
        self.jwks_url = f"{self.url}/jwks"
        self.attacker_jwks_url = f"{self.url}/attacker/jwks"
        self._http = httpx.Client(base_url=self.url, timeout=10)
        atexit.register(self.stop)

    # keys and tokens

    @staticmethod
    def new_key(alg: str = "RS256", kid: str | None = None) -> SigningKey:
        from joserfc.jwk import ECKey, RSAKey

        curves = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
        key = ECKey.generate_key(curves[alg]) if alg in curves else RSAKey.generate_key(2048)
        return SigningKey(kid or f"{alg.lower()}-{uuid.uuid4().hex[:8]}", alg, key)

    def claims(self, **overrides: Any) -> dict[str, Any]:
        """A valid access token's claims for audience `observer-api`, alive for five minutes; a value of
        None in `overrides` removes that claim."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.url,
            "aud": "observer-api",
            "sub": "alice",
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "jti": uuid.uuid4().hex,
            "client_id": "observer-tests",
        }
        claims.update(overrides)
        return {name: value for name, value in claims.items() if value is not None}

    def mint(
        self,
        key: SigningKey,
        headers: dict[str, Any] | None = None,
        *,
        alg: str | None = None,
        kid: str | None = "",
        **claims: Any,
    ) -> str:
        """A token signed by `key`. `kid=""` uses the key's own kid, `kid=None` leaves it out; `headers` adds
        (or overrides) header fields; `claims` override `self.claims()`."""
        from joserfc import jwt

        header: dict[str, Any] = {"alg": alg or key.alg, "typ": "JWT"}
        if kid is not None:
            header["kid"] = kid or key.kid
        header.update(headers or {})
        return jwt.encode(header, self.claims(**claims), key.key, algorithms=[header["alg"]])

    @staticmethod
    def forge(
        header: dict[str, Any], claims: dict[str, Any], signature: bytes | None = None, hmac_secret: bytes | None = None
    ) -> str:
        """A token assembled by hand: `signature` as given, or HMAC-SHA256 with `hmac_secret`."""
        signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
        if hmac_secret is not None:
            signature = hmac.new(hmac_secret, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{b64url(signature or b'')}"

    # the process

    def publish(self, *keys: SigningKey, path: str = "jwks") -> None:
        """Replaces the JWKS at `path` with these keys' public halves."""
        self._http.put(f"/_control/jwks/{path}", json={"keys": [k.public_jwk() for k in keys]}).raise_for_status()

    def publish_raw(self, document: Any, path: str = "jwks") -> None:
        self._http.put(f"/_control/jwks/{path}", json=document).raise_for_status()

    def behave(self, status: int = 200, cache_control: str | None = None, path: str = "jwks") -> None:
        """The status (non-200: an error body) and Cache-Control of the next JWKS answers."""
        self._http.put(
            f"/_control/behaviour/{path}", json={"status": status, "cache_control": cache_control}
        ).raise_for_status()

    def register_client(
        self, client_id: str, *, redirect_uris: list[str] | tuple[str, ...] = (), secret: str | None = None
    ) -> None:
        """Registers (or replaces) an OAuth client: a public one (no `secret`: authorization code with PKCE, to
        exactly these redirect URIs) or a confidential one (`secret`: client credentials too)."""
        body = {"redirect_uris": list(redirect_uris), "secret": secret}
        self._http.put(f"/_control/clients/{client_id}", json=body).raise_for_status()

    def sign_in_as(
        self,
        key: SigningKey,
        *,
        subject: str = "alice",
        groups: list[str] | tuple[str, ...] = (),
        audience: str = "observer-api",
        code_ttl_s: float = 60,
        token_ttl_s: int = 300,
        refuse: bool = False,
    ) -> None:
        """Who `/authorize` signs in (`subject`, `groups`; `refuse`: the user declines, `error=access_denied`) and
        how `/token` signs: with `key` (its private half goes to the process; publish it for the tokens to
        verify), for `audience`, codes valid `code_ttl_s` (0: expired at once), tokens `token_ttl_s`."""
        body = {
            "jwk": {**key.key.as_dict(private=True), "kid": key.kid, "alg": key.alg},
            "subject": subject,
            "groups": list(groups),
            "audience": audience,
            "code_ttl_s": code_ttl_s,
            "token_ttl_s": token_ttl_s,
            "refuse": refuse,
        }
        self._http.put("/_control/login", json=body).raise_for_status()

    def issued(self) -> dict[str, int]:
        """How many codes and tokens the process issued since the last reset."""
        return cast("dict[str, int]", self._http.get("/_control/stats").json()["issued"])

    def fetches(self, path: str = "jwks") -> int:
        return self._http.get("/_control/stats").json()["fetches"][path]

    def reset(self) -> None:
        """Empty JWKS everywhere, counters at zero, plain 200 answers; no clients, codes or signed-in user."""
        self._http.post("/_control/reset", json={}).raise_for_status()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._http.close()


def start_oidc_issuer() -> OidcIssuer:
    """Starts the issuer process on a free loopback port and returns once it answers."""
    process = subprocess.Popen(
        [sys.executable, "-m", "devservers.oidc", "--port", "0"], cwd=ROOT, stdout=subprocess.PIPE
    )
    assert process.stdout is not None
    line = process.stdout.readline().decode().strip()
    if not line.startswith("PORT "):
        process.kill()
        raise RuntimeError(f"OIDC issuer did not start (said {line!r}, exit code {process.poll()})")
    issuer = OidcIssuer(process, int(line.split()[1]))
    deadline = time.monotonic() + 10
    while True:
        try:
            if issuer._http.get("/health").status_code == 200:
                return issuer
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            issuer.stop()
            raise RuntimeError("OIDC issuer did not answer")
        time.sleep(0.05)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="a tiny OIDC issuer for the tests")
    parser.add_argument("--port", type=int, default=0)
    serve(parser.parse_args().port)
