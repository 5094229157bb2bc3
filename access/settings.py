"""Authentication settings, read from the environment under OpenChoreo's names (contract notes §0 and §5.4).

Authentication is on unless `JWT_DISABLED=true` says otherwise, so a deployment that forgets a variable fails
closed: with authentication on and no `JWKS_URL`, the observer refuses to start and says what to set, instead
of starting with no way to verify a token.

| variable | meaning | default |
|---|---|---|
| `JWT_DISABLED` | `true` turns authentication off (every request passes, no subject) | `false` |
| `JWKS_URL` | the issuer's JWKS endpoint; required when authentication is on | |
| `JWT_ISSUER` | the `iss` every token must carry; empty skips the check | |
| `JWT_AUDIENCE` | accepted `aud` values (comma list; one match is enough); empty skips the check | |
| `JWKS_URL_TLS_INSECURE_SKIP_VERIFY` | `true` skips TLS verification of the JWKS endpoint (development only) | `false` |
| `AUTH_SERVER_BASE_URL` | the authorization server advertised in `/.well-known/oauth-protected-resource` | |
| `MCP_OAUTH_SCOPES` | scopes advertised to MCP clients (space separated) | `openid profile email` |
| `OBSERVER_BASE_URL` | this observer's public URL, for the metadata and `WWW-Authenticate` | the request's own base URL |
| `OBSERVER_AUTH_CONFIG_PATH` | subject types (access/subjects.py); unset uses the built-in two | |
| `JWT_ALGORITHMS` | accepted signature algorithms (comma list, asymmetric only) | RS, PS, ES 256/384/512 |
| `JWT_LEEWAY_SECONDS` | clock skew allowed on `exp`, `nbf` and `iat` | `30` |
| `JWKS_CACHE_TTL_SECONDS` | how long a JWKS is used when its response sets no `max-age` | `3600` |
| `JWKS_MIN_REFRESH_INTERVAL_SECONDS` | least time between two fetches caused by unknown `kid`s | `10` |
| `JWKS_TIMEOUT_SECONDS` | timeout of one JWKS fetch | `5` |

The last five are this implementation's additions; OpenChoreo hard-codes their equivalents.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

#: Asymmetric signature algorithms only: with a public JWKS, an HMAC algorithm would let anyone who has the
#: public key sign (the classic RS256 -> HS256 confusion), and `none` signs nothing at all.
ASYMMETRIC_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
    "Ed25519",
)
DEFAULT_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
DEFAULT_MCP_SCOPES = ("openid", "profile", "email")
#: Where the resource metadata points when OBSERVER_BASE_URL is unset and no request is at hand to say where
#: this observer really is (upstream's default; with a request, its own base URL is used instead).
DEFAULT_OBSERVER_BASE_URL = "http://localhost:9097"

_TRUE = {"true", "1", "t", "yes", "y", "on"}
_FALSE = {"false", "0", "f", "no", "n", "off", ""}


class AuthConfigError(ValueError):
    """The authentication settings cannot work; the message says which variable to set and how."""


def env_flag(environ: Mapping[str, str], name: str, error: type[ValueError] = AuthConfigError) -> bool:
    """A boolean variable. Anything unrecognised is an `error` rather than a guess, because guessing wrong on
    JWT_DISABLED either exposes every query or locks everyone out."""
    raw = environ.get(name, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise error(f"{name}={environ.get(name)!r} is not a boolean: use true or false")


def _number(environ: Mapping[str, str], name: str, default: float, *, minimum: float = 0.0) -> float:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise AuthConfigError(f"{name}={raw!r} is not a number of seconds") from None
    if value < minimum:
        raise AuthConfigError(f"{name}={raw!r} must be at least {minimum:g}")
    return value


def _http_url(name: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise AuthConfigError(f"{name}={value!r} is not an http(s) URL")
    return value


@dataclass(frozen=True)
class AuthSettings:
    """What authentication needs. Build it with `from_env()` in the service, or directly (or `disabled()`)
    in tests, so that no code path turns authentication off without saying so."""

    enabled: bool = True
    jwks_url: str = ""
    issuer: str = ""
    audiences: tuple[str, ...] = ()
    jwks_tls_insecure_skip_verify: bool = False
    auth_server_base_url: str = ""
    mcp_scopes: tuple[str, ...] = DEFAULT_MCP_SCOPES
    observer_base_url: str = ""  # empty: each request's own base URL (see public_base_url)
    auth_config_path: Path | None = None
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    leeway_s: int = 30
    jwks_ttl_s: float = 3600.0
    jwks_min_refresh_interval_s: float = 10.0
    jwks_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        bad = [alg for alg in self.algorithms if alg not in ASYMMETRIC_ALGORITHMS]
        if bad:
            raise AuthConfigError(
                f"JWT_ALGORITHMS: {', '.join(bad)} not accepted; use asymmetric algorithms only "
                f"({', '.join(ASYMMETRIC_ALGORITHMS)}). `none` and HS* are refused on purpose."
            )
        if self.enabled and not self.algorithms:
            raise AuthConfigError("JWT_ALGORITHMS is empty: no token could ever be accepted")
        if self.enabled and not self.jwks_url:
            raise AuthConfigError(
                "authentication is on but JWKS_URL is not set: set JWKS_URL to your identity provider's JWKS "
                "endpoint (for example https://idp.example.com/oauth2/jwks), and JWT_ISSUER / JWT_AUDIENCE to "
                "the issuer and audience of its tokens; or set JWT_DISABLED=true to run without authentication "
                "(development only: anyone who can reach the observer can then read all telemetry)"
            )
        if self.enabled:
            _http_url("JWKS_URL", self.jwks_url)
        if self.observer_base_url:
            _http_url("OBSERVER_BASE_URL", self.observer_base_url)
        if self.leeway_s < 0:
            raise AuthConfigError("JWT_LEEWAY_SECONDS must not be negative")

    @classmethod
    def disabled(cls, **overrides: object) -> AuthSettings:
        """Authentication off, on purpose: for tests and the demo, never a silent default."""
        return cls(enabled=False, **overrides)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AuthSettings:
        """Reads the variables in the module docstring; raises AuthConfigError with the fix when they cannot
        work (authentication on without JWKS_URL, a symmetric algorithm, a malformed number or flag)."""
        env = os.environ if environ is None else environ
        algorithms = tuple(a.strip() for a in env.get("JWT_ALGORITHMS", "").split(",") if a.strip())
        scopes = tuple(env.get("MCP_OAUTH_SCOPES", "").split()) or DEFAULT_MCP_SCOPES
        config_path = env.get("OBSERVER_AUTH_CONFIG_PATH", "").strip()
        leeway = _number(env, "JWT_LEEWAY_SECONDS", 30)
        if leeway != int(leeway):
            raise AuthConfigError("JWT_LEEWAY_SECONDS must be a whole number of seconds")
        return cls(
            enabled=not env_flag(env, "JWT_DISABLED"),
            jwks_url=env.get("JWKS_URL", "").strip(),
            issuer=env.get("JWT_ISSUER", "").strip(),
            audiences=tuple(a.strip() for a in env.get("JWT_AUDIENCE", "").split(",") if a.strip()),
            jwks_tls_insecure_skip_verify=env_flag(env, "JWKS_URL_TLS_INSECURE_SKIP_VERIFY"),
            auth_server_base_url=env.get("AUTH_SERVER_BASE_URL", "").strip(),
            mcp_scopes=scopes,
            observer_base_url=env.get("OBSERVER_BASE_URL", "").strip().rstrip("/"),
            auth_config_path=Path(config_path) if config_path else None,
            algorithms=algorithms or DEFAULT_ALGORITHMS,
            leeway_s=int(leeway),
            jwks_ttl_s=_number(env, "JWKS_CACHE_TTL_SECONDS", 3600, minimum=1),
            jwks_min_refresh_interval_s=_number(env, "JWKS_MIN_REFRESH_INTERVAL_SECONDS", 10),
            jwks_timeout_s=_number(env, "JWKS_TIMEOUT_SECONDS", 5, minimum=0.1),
        )

    def public_base_url(self, request_base_url: str = "") -> str:
        """This observer's public URL: OBSERVER_BASE_URL when set (behind a proxy only the operator knows it),
        otherwise the base URL the request itself was sent to, so the metadata never names a port the
        observer does not listen on; upstream's default only when there is no request either."""
        return (self.observer_base_url or request_base_url or DEFAULT_OBSERVER_BASE_URL).rstrip("/")

    def resource_metadata_url_for(self, request_base_url: str = "") -> str:
        """Where MCP clients read which authorization server to use (RFC 9728)."""
        return f"{self.public_base_url(request_base_url)}/.well-known/oauth-protected-resource"

    def www_authenticate_for(self, request_base_url: str = "") -> str:
        """The challenge every 401 on /mcp carries, so an MCP client can start the OAuth flow by itself."""
        metadata = self.resource_metadata_url_for(request_base_url)
        return f'Bearer resource_metadata="{metadata}", scope="{" ".join(self.mcp_scopes)}"'

    @property
    def resource_metadata_url(self) -> str:
        """`resource_metadata_url_for` without a request at hand."""
        return self.resource_metadata_url_for()

    @property
    def www_authenticate(self) -> str:
        """`www_authenticate_for` without a request at hand."""
        return self.www_authenticate_for()


def log_auth_posture(settings: AuthSettings, logger: logging.Logger | None = None) -> None:
    """Says at startup how requests are authenticated. With authentication off it shouts: an observer without
    authentication serves every namespace's logs to anyone who can reach its port, which is fine for a laptop
    demo and a breach anywhere else, so it must never go unnoticed in a log."""
    out = logger or log
    if not settings.enabled:
        banner = "!" * 78
        out.warning(
            "\n%s\n!! AUTHENTICATION IS DISABLED (JWT_DISABLED=true).\n"
            "!! Every request is accepted without a token, and no caller identity reaches authorization:\n"
            "!! anyone who can reach this port can read all logs, traces, events and metrics.\n"
            "!! Use this only on a laptop or in a test. For anything else set JWKS_URL, JWT_ISSUER and\n"
            "!! JWT_AUDIENCE, and remove JWT_DISABLED.\n%s",
            banner,
            banner,
        )
        return
    out.info(
        "authentication on: JWKS %s, issuer %s, audience %s, algorithms %s, leeway %ds",
        settings.jwks_url,
        settings.issuer or "(any)",
        ", ".join(settings.audiences) or "(any)",
        ",".join(settings.algorithms),
        settings.leeway_s,
    )
    if not settings.issuer:
        out.warning(
            "JWT_ISSUER is not set: tokens from any issuer whose keys are in %s are accepted", settings.jwks_url
        )
    if not settings.audiences:
        out.warning("JWT_AUDIENCE is not set: tokens minted for other services by the same issuer are accepted here")
    if settings.jwks_tls_insecure_skip_verify:
        out.warning(
            "JWKS_URL_TLS_INSECURE_SKIP_VERIFY=true: the JWKS is fetched without verifying TLS; anyone on the path can substitute keys"
        )
