"""A real OIDC issuer for the authentication tests: a separate Python process on loopback.

The process (stdlib `http.server`, started with `python -m devservers.oidc`) serves what a resource server
needs from an identity provider:

- `GET /.well-known/openid-configuration`: discovery, `issuer` = its base URL, `jwks_uri` = `<base>/jwks`;
- `GET /jwks`: the published keys, counted per fetch, with a status and Cache-Control the test can set;
- `GET /attacker/jwks`: a second, "attacker's" JWKS, also counted, so a test can prove it was never fetched.

The test side holds the private keys (`SigningKey`) and publishes only public JWKs to the process through
`/_control/*`, so rotating keys is a PUT away. `OidcIssuer.mint` signs tokens with any key, `alg`, `kid` and
claims; `forge` assembles tokens no honest library would sign (`alg: none`, HS256 keyed with a public PEM).

    issuer = start_oidc_issuer()
    key = issuer.new_key("RS256"); issuer.publish(key)
    token = issuer.mint(key, groups=["devs"])
    issuer.fetches()  # how many times /jwks was read
    issuer.stop()
"""

from __future__ import annotations

import argparse
import atexit
import base64
import json
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

import httpx

ROOT = Path(__file__).resolve().parents[1]
JWKS_PATHS = ("jwks", "attacker/jwks")

# --------------------------------------------------------------------------------------------- the process


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


def _handler(state: _IssuerState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet: the tests read counts, not logs
            pass

        def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> Any:
            length = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(length) or b"null")

        def _base(self) -> str:
            host, port = cast("tuple[str, int]", self.server.server_address)[:2]  # AF_INET: (host, port)
            return f"http://{host}:{port}"

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0].strip("/")
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
                        "subject_types_supported": ["public"],
                        "id_token_signing_alg_values_supported": ["RS256", "ES256", "PS256"],
                    },
                )
            elif path in JWKS_PATHS:
                with state.lock:
                    state.fetches[path] += 1
                    status, jwks, cache_control = state.status[path], state.jwks[path], state.cache_control[path]
                headers = {"Cache-Control": cache_control} if cache_control else {}
                self._send(status, jwks if status == 200 else {"error": "unavailable"}, headers)
            elif path == "_control/stats":
                with state.lock:
                    self._send(200, {"fetches": dict(state.fetches)})
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
                else:
                    self._send(404, {"error": "not found"})
                    return
            self._send(200, {"ok": True})

        def do_POST(self) -> None:
            if self.path.strip("/") == "_control/reset":
                self._body()
                with state.lock:
                    state.reset()
                self._send(200, {"ok": True})
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
        import hashlib
        import hmac

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

    def fetches(self, path: str = "jwks") -> int:
        return self._http.get("/_control/stats").json()["fetches"][path]

    def reset(self) -> None:
        """Empty JWKS everywhere, counters at zero, plain 200 answers."""
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
