"""The internal port's optional protection: a shared bearer token and mutual TLS.

Upstream serves the internal port (alert-rule CRUD for OpenChoreo's rule controller, the alert webhook for
Alertmanager) with no authentication at all, trusting that only the cluster can reach it (contract notes §0).
That stays the default, so an unmodified OpenChoreo installation keeps working. Two opt-ins, usable together:

- **Shared secret** (`OBSERVER_INTERNAL_TOKEN`): every request except `GET /health` must carry
  `Authorization: Bearer <token>`. That header is what Alertmanager sends with
  `webhook_configs[].http_config.authorization.credentials` (or `credentials_file`), and what any HTTP client,
  OpenChoreo's controller included, can be configured to send. `GET /health` stays open because kubelet
  probes carry no credentials and it reveals nothing. On the alert webhook alone the token is also accepted as
  the password of HTTP Basic (any user name): that is the auth method Datadog's Webhooks integration offers
  (datadog-notes §4), and Datadog cannot sign a webhook. Everywhere else only Bearer counts, so a browser's
  cached Basic credentials never open the rule CRUD.
- **TLS and mutual TLS** (`OBSERVER_INTERNAL_TLS_CERT_FILE` / `_KEY_FILE`, plus `_CLIENT_CA_FILE`): the port
  speaks HTTPS, and with a client CA it demands a client certificate signed by that CA during the handshake,
  so a caller without one never reaches HTTP at all (not even `/health`). serving.server hands the files to
  uvicorn; this module only checks them, so that a typo stops the process at start with a message naming the
  variable, instead of a TLS stack trace or a port that silently serves plain HTTP.

The token is held as a SHA-256 digest and compared with `hmac.compare_digest`, so neither the time a
comparison takes nor its length tells a caller how much of a guess was right, and the token itself is never
logged nor echoed in an answer.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import ssl
from dataclasses import dataclass
from pathlib import Path

import orjson
from pydantic import SecretStr
from starlette.types import ASGIApp, Receive, Scope, Send

from access.middleware import READ_METHODS
from access.settings import AuthConfigError
from observer.errors import error_body

log = logging.getLogger(__name__)

TOKEN_VARIABLE = "OBSERVER_INTERNAL_TOKEN"
CERT_VARIABLE = "OBSERVER_INTERNAL_TLS_CERT_FILE"
KEY_VARIABLE = "OBSERVER_INTERNAL_TLS_KEY_FILE"
CLIENT_CA_VARIABLE = "OBSERVER_INTERNAL_TLS_CLIENT_CA_FILE"

#: A shorter secret can be guessed by whoever can reach the port and try often enough; 16 random bytes cannot.
MIN_TOKEN_BYTES = 16

#: Served without a token: probes carry no credentials, and the answer says only that the process is up.
OPEN_PATHS = frozenset({"/health"})

#: Where the token may also come as an HTTP Basic password: the alert webhook, which Datadog calls with Basic.
BASIC_PATHS = frozenset({"/api/v1alpha1/alerts/webhook"})

MISSING_MESSAGE = "missing bearer token: the internal API requires an Authorization: Bearer <token> header"
INVALID_MESSAGE = "invalid bearer token"


class InternalPortConfigError(AuthConfigError):
    """The internal port's security settings cannot work; the message names the variable and the fix, never the
    token. An AuthConfigError, so whatever turns a bad authentication setting into a clean refusal to start (the
    CLI prints it and exits 2) handles this one too."""


def check_token(token: str) -> None:
    """Refuses a token that would make the gate weak or unusable. Raises InternalPortConfigError."""
    size = len(token.encode())
    if size < MIN_TOKEN_BYTES:
        raise InternalPortConfigError(
            f"{TOKEN_VARIABLE} is {size} bytes long; use at least {MIN_TOKEN_BYTES} random bytes "
            "(for example `openssl rand -hex 32`), or unset it to leave the internal port unauthenticated"
        )
    # A Secret made with `echo token | kubectl create secret ... --from-file` ends with a newline: no client
    # can send that in a header (HTTP trims it), so every request would be refused with no hint why.
    if any(char.isspace() or not char.isprintable() for char in token):
        raise InternalPortConfigError(
            f"{TOKEN_VARIABLE} contains whitespace or control characters (a trailing newline from the Secret?); "
            "a bearer token must be a single word of printable characters"
        )


@dataclass(frozen=True)
class InternalTls:
    """The internal port's certificate, its key (None when the certificate file holds it) and, for mutual TLS,
    the CA that client certificates must be signed by."""

    certfile: Path
    keyfile: Path | None = None
    client_ca_file: Path | None = None

    @property
    def mutual(self) -> bool:
        return self.client_ca_file is not None

    @property
    def cert_reqs(self) -> ssl.VerifyMode:
        return ssl.CERT_REQUIRED if self.mutual else ssl.CERT_NONE


@dataclass(frozen=True)
class InternalSecurity:
    """What protects the internal port. Both None is upstream's behaviour: open to whoever can reach it."""

    token: SecretStr | None = None
    tls: InternalTls | None = None

    def describe(self) -> str:
        """For the startup log: how the port is protected, naming files but never the token."""
        parts = ["bearer token required (OBSERVER_INTERNAL_TOKEN)" if self.token else "no bearer token"]
        if self.tls is None:
            parts.append("plain HTTP")
        elif self.tls.mutual:
            parts.append(f"TLS with client certificates required, signed by {self.tls.client_ca_file}")
        else:
            parts.append("TLS (no client certificates)")
        return ", ".join(parts)


def internal_security(
    token: str = "", certfile: str = "", keyfile: str = "", client_ca_file: str = ""
) -> InternalSecurity:
    """Checks the internal port's settings (empty = unset) and returns them, or raises InternalPortConfigError
    saying what to fix. Every file is loaded here the way the TLS stack will load it, so a wrong path, an
    unreadable file, a key that does not match the certificate or a CA file with no certificate stops the
    process before any port opens."""
    if token:
        check_token(token)
    if keyfile and not certfile:
        raise InternalPortConfigError(
            f"{KEY_VARIABLE} is set but {CERT_VARIABLE} is not: set both (the internal port's certificate and its "
            "private key) to serve TLS, or neither"
        )
    if client_ca_file and not certfile:
        raise InternalPortConfigError(
            f"{CLIENT_CA_VARIABLE} needs the internal port to serve TLS: set {CERT_VARIABLE} and {KEY_VARIABLE} too"
        )
    tls = None
    if certfile:
        for variable, path in (
            (CERT_VARIABLE, certfile),
            (KEY_VARIABLE, keyfile),
            (CLIENT_CA_VARIABLE, client_ca_file),
        ):
            if path:
                _readable(variable, path)
        _loads(certfile, keyfile, client_ca_file)
        tls = InternalTls(
            Path(certfile), Path(keyfile) if keyfile else None, Path(client_ca_file) if client_ca_file else None
        )
    return InternalSecurity(SecretStr(token) if token else None, tls)


def _readable(variable: str, path: str) -> None:
    try:
        Path(path).read_bytes()
    except OSError as exc:
        raise InternalPortConfigError(f"{variable}={path}: cannot read it ({exc.strerror or exc})") from None


def _no_password() -> str:
    """Without a callback OpenSSL would prompt on the terminal for an encrypted key; this makes it fail instead."""
    return ""


def _loads(certfile: str, keyfile: str, client_ca_file: str) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(certfile, keyfile or None, password=_no_password)
    except ssl.SSLError as exc:
        where = f"{CERT_VARIABLE}={certfile}" + (f" with {KEY_VARIABLE}={keyfile}" if keyfile else "")
        raise InternalPortConfigError(
            f"{where}: not a PEM certificate with its matching, unencrypted private key ({exc.reason or exc})"
        ) from None
    if client_ca_file:
        try:
            context.load_verify_locations(cafile=client_ca_file)
        except ssl.SSLError as exc:
            raise InternalPortConfigError(
                f"{CLIENT_CA_VARIABLE}={client_ca_file}: no PEM CA certificate in it ({exc.reason or exc})"
            ) from None


def log_internal_posture(security: InternalSecurity, logger: logging.Logger | None = None) -> None:
    """Says at startup how the internal port is protected; unprotected is upstream's default, so it is said
    plainly (info), with the way to change it."""
    out = logger or log
    if security.token is None and security.tls is None:
        out.info(
            "internal API: no authentication (as upstream): keep its port cluster-internal, or set %s and/or %s, "
            "%s and %s",
            TOKEN_VARIABLE,
            CERT_VARIABLE,
            KEY_VARIABLE,
            CLIENT_CA_VARIABLE,
        )
        return
    out.info("internal API: %s", security.describe())


def _authorization(scope: Scope) -> list[bytes]:
    return [value for key, value in scope.get("headers", ()) if key.lower() == b"authorization"]


def _bearer(values: list[bytes]) -> bytes | None:
    """The credentials of the one `Authorization: Bearer <credentials>` header (scheme case-insensitive, RFC
    7235), or None when there is none, several, or another scheme."""
    if len(values) != 1:
        return None
    scheme, _, credentials = values[0].strip().partition(b" ")
    credentials = credentials.strip(b" \t")
    if scheme.lower() != b"bearer" or not credentials:
        return None
    return credentials


def _secret(scope: Scope) -> bytes | None:
    """The secret the request presents: the Bearer credentials, or on BASIC_PATHS also a Basic password. Several
    Authorization headers are ambiguous and present nothing."""
    values = _authorization(scope)
    if scope.get("path") not in BASIC_PATHS or len(values) != 1:
        return _bearer(values)
    secret = presented_secret(values[0].decode("latin-1"))  # latin-1 decodes any header bytes
    return secret.encode() if secret is not None else None


class InternalTokenMiddleware:
    """Pure ASGI, so it guards every route the internal app has or will have, including ones mounted later,
    before FastAPI parses a body: an unauthenticated caller learns nothing from validation errors."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        check_token(token)
        self.app = app
        self._digest = hashlib.sha256(token.encode()).digest()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):  # lifespan
            await self.app(scope, receive, send)
            return
        if scope["type"] == "http" and scope.get("method") in READ_METHODS and scope.get("path") in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        presented = _secret(scope)
        if presented is not None and hmac.compare_digest(hashlib.sha256(presented).digest(), self._digest):
            await self.app(scope, receive, send)
            return
        invalid = presented is not None
        client = scope.get("client") or ("?", 0)
        log.warning(
            "internal API: 401 (%s bearer token) on %s %s from %s",
            "wrong" if invalid else "no",
            scope.get("method", "WS"),
            scope.get("path", ""),
            client[0],
        )
        await self._refuse(scope, send, invalid)

    async def _refuse(self, scope: Scope, send: Send, invalid: bool) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = orjson.dumps(error_body("unauthorized", "", INVALID_MESSAGE if invalid else MISSING_MESSAGE))
        # RFC 6750 §3.1: no error code when the request carried no credentials, `invalid_token` when it did.
        challenge = b'Bearer error="invalid_token"' if invalid else b"Bearer"
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"www-authenticate", challenge),
        ]
        await send({"type": "http.response.start", "status": 401, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def presented_secret(authorization: str) -> str | None:
    """The secret an `Authorization` header presents: a Bearer token, or the password of HTTP Basic (what
    Datadog's Webhooks integration sends with its Basic auth method); None for anything else."""
    scheme, _, credentials = authorization.strip().partition(" ")
    credentials = credentials.strip()
    if not credentials:
        return None
    if scheme.lower() == "bearer":
        return credentials
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(credentials, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    _, colon, password = decoded.partition(":")
    return password if colon and password else None
