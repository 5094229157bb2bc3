"""Which decision point answers, chosen from the environment.

| variable | meaning | default |
|---|---|---|
| `AUTHZ_MODE` | `casbin` (the embedded PDP, access/casbin_pdp.py) or `remote` (OpenChoreo's authz service) | `casbin` |
| `OBSERVER_AUTHZ_POLICY_FILE` | casbin: the policy file, YAML roles + bindings or Casbin CSV (docs/authz-policy.md) | |
| `OBSERVER_AUTHZ_POLICY_DB` | casbin: a SQLite file whose `casbin_rule` table holds the policy (instead of a file) | |
| `AUTHZ_SERVICE_URL` | remote: the authz service base URL | `http://localhost:8080` |
| `AUTHZ_TIMEOUT` | remote: timeout of one evaluation, a Go duration (`30s`, `500ms`) or seconds | `30s` |
| `AUTHZ_TLS_INSECURE_SKIP_VERIFY` | remote: `true` skips TLS verification (development only) | `false` |

Both refuse a request without a subject (401). The embedded PDP needs exactly one policy source: with neither,
the observer refuses to start rather than deny (or allow) everything by accident. Turning authorization off is
not this module's business: JWT_DISABLED=true makes the wiring use `AllowAll` and never ask for a subject.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Mapping

from access.casbin_pdp import CasbinAuthorizer
from access.model import Authorizer
from access.policy_sources import FilePolicySource, PolicyError, SQLitePolicySource
from access.settings import env_flag
from domain.timeutil import parse_go_duration
from observer.auth.remote_pdp import DEFAULT_SERVICE_URL, DEFAULT_TIMEOUT_S, RemoteAuthorizer

log = logging.getLogger(__name__)

MODES = ("casbin", "remote")


class AuthzConfigError(ValueError):
    """The authorization settings cannot work; the message says which variable to set and how."""


def _timeout_s(env: Mapping[str, str]) -> float:
    """AUTHZ_TIMEOUT as OpenChoreo reads it (a Go duration), or a plain number of seconds."""
    raw = env.get("AUTHZ_TIMEOUT", "").strip()
    if not raw:
        return DEFAULT_TIMEOUT_S
    try:
        seconds = float(raw)
    except ValueError:
        try:
            seconds = parse_go_duration(raw) / 1e9
        except ValueError:
            raise AuthzConfigError(f"AUTHZ_TIMEOUT={raw!r} is not a duration (e.g. 30s, 500ms)") from None
    if seconds <= 0:
        raise AuthzConfigError(f"AUTHZ_TIMEOUT={raw!r} must be positive")
    return seconds


def authorizer_from_env(environ: Mapping[str, str] | None = None) -> Authorizer:
    """The authorizer the variables in the module docstring describe; AuthzConfigError when they cannot work
    (an unknown mode, no or two policy sources, a policy that does not load, a malformed timeout or flag)."""
    env = os.environ if environ is None else environ
    mode = env.get("AUTHZ_MODE", "").strip().lower() or "casbin"
    if mode not in MODES:
        raise AuthzConfigError(f"AUTHZ_MODE={mode!r}: use casbin (the embedded policy) or remote (OpenChoreo's PDP)")
    if mode == "remote":
        url = env.get("AUTHZ_SERVICE_URL", "").strip()
        if not url:
            log.warning("AUTHZ_SERVICE_URL is not set: asking %s, OpenChoreo's default", DEFAULT_SERVICE_URL)
            url = DEFAULT_SERVICE_URL
        if not url.startswith(("http://", "https://")):
            raise AuthzConfigError(f"AUTHZ_SERVICE_URL={url!r} is not an http(s) URL")
        insecure = env_flag(env, "AUTHZ_TLS_INSECURE_SKIP_VERIFY", AuthzConfigError)
        if insecure:
            log.warning("AUTHZ_TLS_INSECURE_SKIP_VERIFY=true: callers' tokens go to %s without verifying TLS", url)
        return RemoteAuthorizer(url, timeout_s=_timeout_s(env), tls_insecure_skip_verify=insecure)

    policy_file = env.get("OBSERVER_AUTHZ_POLICY_FILE", "").strip()
    policy_db = env.get("OBSERVER_AUTHZ_POLICY_DB", "").strip()
    if policy_file and policy_db:
        raise AuthzConfigError("set OBSERVER_AUTHZ_POLICY_FILE or OBSERVER_AUTHZ_POLICY_DB, not both")
    if not policy_file and not policy_db:
        raise AuthzConfigError(
            "AUTHZ_MODE=casbin needs a policy: set OBSERVER_AUTHZ_POLICY_FILE to a YAML or CSV policy "
            "(docs/authz-policy.md) or OBSERVER_AUTHZ_POLICY_DB to a SQLite file with a casbin_rule table; "
            "or AUTHZ_MODE=remote with AUTHZ_SERVICE_URL to ask OpenChoreo's authz service"
        )
    try:
        source = SQLitePolicySource(policy_db) if policy_db else FilePolicySource(policy_file)
        return CasbinAuthorizer(source)
    except PolicyError as exc:
        raise AuthzConfigError(f"the authorization policy does not load: {exc}") from None
    except (OSError, sqlite3.Error) as exc:
        raise AuthzConfigError(f"the authorization policy cannot be opened: {exc}") from None
