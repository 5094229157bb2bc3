"""Bearer-token authentication: `Authorization: Bearer <jwt>` -> verified claims -> Subject.

What is checked, and which of the contract's 401 bodies a failure gets (contract notes §0):

| failure | code |
|---|---|
| no `Authorization` header, another scheme, an empty token, several `Authorization` headers | MISSING_TOKEN |
| not a compact JWS, `alg` outside JWT_ALGORITHMS (so never `none` or HS*), a `crit` or `b64` header, a `typ` other than JWT / at+jwt, no key for the `kid`, a bad signature, a payload that is not a JSON object | INVALID_TOKEN |
| `exp` missing or passed, `nbf` or `iat` in the future (each with JWT_LEEWAY_SECONDS of skew) | INVALID_TOKEN |
| `iss` other than JWT_ISSUER, no `aud` among JWT_AUDIENCE, a registered claim of the wrong type | INVALID_CLAIMS |
| a verified token that fits no subject type (access/subjects.py) | INVALID_CLAIMS, "Failed to resolve subject from token" |

The line between the two codes follows the contract's texts: INVALID_TOKEN is "invalid or expired token", so
it covers everything about the token as an artefact (its form, its signature, its lifetime), and
INVALID_CLAIMS, "token claims validation failed", covers a genuine, current token that was not issued for us.
`exp` is required even though RFC 7519 makes it optional: a token without one would never expire.

Keys come only from JWKS_URL. Whatever the token says about keys (`jku`, `jwk`, `x5u`, `x5c`) is ignored, so an
attacker cannot point us at a key of their own; the token's `kid` only selects among the issuer's keys.

The JWKS is fetched once and kept for its Cache-Control `max-age` (clamped to 1 min .. 1 day) or one hour. A
token whose `kid` is unknown triggers one refetch, because that is how key rotation looks from here; such
refetches are spaced by JWKS_MIN_REFRESH_INTERVAL_SECONDS so a stream of made-up `kid`s cannot turn us into a
load generator against the issuer, and concurrent misses share one fetch. When the cached JWKS passes its age
it is refreshed in the background while the old keys keep serving, so no request waits on the issuer after the
first. If the issuer cannot be reached and no key is cached (or a refetch for an unknown `kid` fails), the
answer is 503: the token may well be valid and a 401 would wrongly tell the client to throw it away. The
contract is silent on this case; the body keeps the JWT layer's shape:
`{"error": "AUTHENTICATION_UNAVAILABLE", "message": "authentication is temporarily unavailable"}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from joserfc import jws
from joserfc.errors import ClaimError, JoseError
from joserfc.jwk import ECKey, Key, OKPKey, RSAKey
from joserfc.jwt import JWTClaimsRegistry

from access.model import (
    INVALID_CLAIMS,
    INVALID_TOKEN,
    MISSING_TOKEN,
    AuthenticationFailed,
    AuthenticationUnavailable,
    Subject,
)
from access.settings import AuthSettings
from access.subjects import SubjectResolver

log = logging.getLogger(__name__)

#: Verified tokens remembered at once (a few MB at most).
VERIFIED_CACHE_SIZE = 10_000
#: A JWKS is a handful of keys; anything bigger than this is not one.
MAX_JWKS_BYTES = 1 << 20
MIN_TTL_S = 60.0
MAX_TTL_S = 86400.0
#: Access tokens say `JWT` or `at+jwt` (RFC 9068) or nothing; other types (logout tokens, DPoP proofs, ...) are
#: signed by the same keys for other purposes and must not open the API (RFC 8725 §3.11).
ACCEPTED_TYPES = {"jwt", "at+jwt", "application/jwt", "application/at+jwt"}
_TIME_CLAIMS = {"exp", "nbf", "iat"}
_KEY_TYPES: dict[str, type[RSAKey] | type[ECKey] | type[OKPKey]] = {"RSA": RSAKey, "EC": ECKey, "OKP": OKPKey}
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?", re.IGNORECASE)


def bearer_token(values: list[str] | str | None) -> str:
    """The token of `Authorization: Bearer <token>` (the scheme in any case). Several Authorization headers
    are refused rather than picking one, since a proxy in front may have looked at a different one."""
    if isinstance(values, list):
        if len(values) != 1:
            raise AuthenticationFailed(MISSING_TOKEN, reason=f"{len(values)} Authorization headers")
        values = values[0]
    if not values:
        raise AuthenticationFailed(MISSING_TOKEN, reason="no Authorization header")
    scheme, _, token = values.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer":
        raise AuthenticationFailed(MISSING_TOKEN, reason="the Authorization scheme is not Bearer")
    if not token or len(token.split(maxsplit=1)) != 1:
        raise AuthenticationFailed(MISSING_TOKEN, reason="empty or malformed bearer token")
    return token


def cache_ttl(cache_control: str | None, default_s: float) -> float:
    """How long to keep a JWKS: its `max-age`, clamped so that a misconfigured issuer can neither make us fetch
    on every request (`no-store`, `max-age=0`) nor keep a withdrawn key for days."""
    if not cache_control:
        return default_s
    lowered = cache_control.lower()
    if "no-store" in lowered or "no-cache" in lowered:
        return MIN_TTL_S
    match = _MAX_AGE.search(cache_control)
    if not match:
        return default_s
    return min(MAX_TTL_S, max(MIN_TTL_S, float(match.group(1))))


def parse_jwks(document: Any) -> list[Key]:
    """The usable public signing keys of a JWKS document. A key we cannot use (an unknown `kty`, an
    encryption key, a symmetric key, a malformed one) is skipped with a warning, so one exotic entry does not
    take the others down with it."""
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise ValueError('not a JWKS: expected {"keys": [...]}')
    keys: list[Key] = []
    for position, entry in enumerate(document["keys"]):
        if not isinstance(entry, Mapping):
            log.warning("JWKS key %d skipped: not an object", position)
            continue
        key_class = _KEY_TYPES.get(str(entry.get("kty")))
        label = entry.get("kid", position)
        if key_class is None:
            log.warning("JWKS key %s skipped: kty %r is not an asymmetric signing key type", label, entry.get("kty"))
            continue
        if entry.get("use", "sig") != "sig":
            continue
        ops = entry.get("key_ops")
        if ops is not None and "verify" not in ops:
            continue
        public = {name: value for name, value in entry.items() if name not in ("d", "p", "q", "dp", "dq", "qi", "oth")}
        if len(public) != len(entry):
            log.warning("JWKS key %s carries private key material; the issuer should not publish it", label)
        try:
            keys.append(key_class.import_key(dict(public)))
        except (JoseError, ValueError, TypeError) as exc:
            log.warning("JWKS key %s skipped: %s", label, exc)
    return keys


class JwksCache:
    """The issuer's signing keys, fetched from JWKS_URL and indexed by `kid`. See the module docstring for
    when it fetches; `clock` is monotonic seconds (injectable so tests can step over the refetch spacing)."""

    def __init__(
        self,
        settings: AuthSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = settings.jwks_url
        self.ttl_s = settings.jwks_ttl_s
        self.min_interval_s = settings.jwks_min_refresh_interval_s
        self._verify_tls = not settings.jwks_tls_insecure_skip_verify
        self._timeout_s = settings.jwks_timeout_s
        self._clock = clock
        self._client = client
        self._own_client = client is None
        self._by_kid: dict[str, list[Key]] = {}
        self._all: list[Key] = []
        self._loaded = False
        self._expires_at = 0.0
        self._last_attempt = float("-inf")
        self._attempts = 0
        self._lock: asyncio.Lock | None = None
        self._background: asyncio.Task[None] | None = None
        self._selected: dict[tuple[str | None, str], list[Key]] = {}
        #: Successful fetches, for logs and tests.
        self.fetches = 0
        #: Bumped whenever the set of keys changes, so verdicts reached with the old keys can be dropped.
        self.generation = 0

    async def keys_for(self, kid: str | None, alg: str) -> list[Key]:
        """The cached keys a token signed with `alg` under `kid` may verify with ([] when there are none).
        Fetches on first use; refetches (spaced) when the `kid` is unknown; raises AuthenticationUnavailable
        when the question cannot be answered without the issuer and the issuer cannot be reached."""
        if not self._loaded and not await self._refresh(reason="first use", spaced=True):
            raise AuthenticationUnavailable(f"JWKS {self.url} not fetched yet; the last attempt failed")
        elif self._clock() >= self._expires_at:
            self._refresh_in_background()
        keys = self._select(kid, alg)
        if keys or kid is None:
            return keys
        if await self._refresh(reason=f"unknown kid {kid!r}", spaced=True):
            keys = self._select(kid, alg)
        return keys

    def touch(self) -> None:
        """Called when a remembered token is used without asking for keys: still refresh keys that aged out,
        so a withdrawn key stops working (and its tokens are forgotten) within the cache age."""
        if self._loaded and self._clock() >= self._expires_at:
            self._refresh_in_background()

    async def prefetch(self) -> None:
        """Fetches now so the first request does not wait; a failure is logged, not raised (the issuer may
        simply start after us)."""
        with contextlib.suppress(AuthenticationUnavailable):
            await self._refresh(reason="startup", spaced=False)

    def _select(self, kid: str | None, alg: str) -> list[Key]:
        """Keys usable for `alg`: the one named by `kid`, or, for a token without a `kid`, every key of the
        right type (joserfc's `check_key` covers `kty`, the curve, `use` and the key's own `alg`). Remembered
        per (kid, alg) until the keys change; unknown kids are not remembered, so a spray cannot grow it."""
        cached = self._selected.get((kid, alg))
        if cached is not None:
            return cached
        candidates = self._by_kid.get(kid, []) if kid is not None else self._all
        algorithm = jws.JWSRegistry.algorithms[alg]
        usable = []
        for key in candidates:
            try:
                algorithm.check_key(key)
            except JoseError:
                continue
            usable.append(key)
        if candidates:
            self._selected[(kid, alg)] = usable
        return usable

    def _get_lock(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    async def _refresh(self, reason: str, spaced: bool) -> bool:
        """Fetches unless another caller fetched while we waited for the lock (then its result is ours too).
        With `spaced`, declines (returns False) when the last attempt is more recent than the minimum interval."""
        seen = self._attempts
        async with self._get_lock():
            if self._attempts != seen:
                if not self._loaded:
                    raise AuthenticationUnavailable(f"JWKS {self.url} could not be fetched")
                return True
            if spaced and self._clock() - self._last_attempt < self.min_interval_s:
                log.debug("JWKS refetch for %s declined: last attempt under %ss ago", reason, self.min_interval_s)
                return False
            await self._fetch(reason)
            return True

    def _refresh_in_background(self) -> None:
        """The cached keys have aged out: refresh without making the request wait, at most one at a time and
        no more often than the minimum interval while the issuer keeps failing."""
        if self._background is not None and not self._background.done():
            return
        if self._clock() - self._last_attempt < self.min_interval_s:
            return

        async def refresh() -> None:
            with contextlib.suppress(AuthenticationUnavailable):
                await self._refresh(reason="cache age", spaced=False)

        self._background = asyncio.get_running_loop().create_task(refresh())

    async def _fetch(self, reason: str) -> None:
        self._last_attempt = self._clock()
        try:
            document, cache_control = await self._download()
            keys = parse_jwks(document)
        except (httpx.HTTPError, ValueError) as exc:
            # Keep serving the keys we have; try again after the minimum interval, not on every request.
            self._expires_at = self._clock() + self.min_interval_s
            log.warning("JWKS fetch from %s failed (%s): %s", self.url, reason, exc)
            raise AuthenticationUnavailable(f"JWKS {self.url} could not be fetched: {exc}") from exc
        finally:
            # Counted once finished, so callers queued behind this fetch see that one happened and reuse it.
            self._attempts += 1
        by_kid: dict[str, list[Key]] = {}
        for key in keys:
            if key.kid is not None:
                by_kid.setdefault(key.kid, []).append(key)
        if [key.as_dict() for key in keys] != [key.as_dict() for key in self._all] or not self._loaded:
            self.generation += 1
        self._by_kid, self._all, self._loaded, self._selected = by_kid, keys, True, {}
        ttl = cache_ttl(cache_control, self.ttl_s)
        self._expires_at = self._clock() + ttl
        self.fetches += 1
        log.info("JWKS fetched from %s (%s): %d keys %s, kept %.0fs", self.url, reason, len(keys), sorted(by_kid), ttl)

    async def _download(self) -> tuple[Any, str | None]:
        if self._client is None:
            self._client = httpx.AsyncClient(
                verify=self._verify_tls,
                timeout=self._timeout_s,
                follow_redirects=False,
                headers={"Accept": "application/json", "User-Agent": "openchoreo-observer"},
            )
        async with self._client.stream("GET", self.url) as response:
            if response.status_code != 200:
                raise ValueError(f"HTTP {response.status_code}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_JWKS_BYTES:
                    raise ValueError(f"response larger than {MAX_JWKS_BYTES} bytes")
            return json.loads(body), response.headers.get("cache-control")

    async def close(self) -> None:
        if self._background is not None:
            self._background.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._background
        if self._client is not None and self._own_client:
            await self._client.aclose()
            self._client = None


class Authenticator:
    """Verifies bearer tokens against the configured issuer and resolves their subject. One per process:
    it owns the JWKS cache, so sharing it is what makes the cache work."""

    def __init__(
        self,
        settings: AuthSettings,
        resolver: SubjectResolver | None = None,
        *,
        jwks: JwksCache | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        if not settings.enabled:
            raise ValueError("an Authenticator needs authentication enabled (JWT_DISABLED is true)")
        self.settings = settings
        self.resolver = resolver or SubjectResolver.from_file(settings.auth_config_path)
        self.jwks = jwks or JwksCache(settings)
        self._algorithms = frozenset(settings.algorithms)
        self._registry = jws.JWSRegistry(algorithms=list(settings.algorithms), strict_check_header=False)
        # Room for real-world headers (x5c chains, vendor fields) so they are refused for what they say, not size.
        self._registry.max_header_length = 8192
        self._now = now
        # Two passes so a token that is both expired and for someone else always gets the same answer
        # (INVALID_TOKEN), whatever order its claims come in.
        self._lifetime = JWTClaimsRegistry(now=self._int_now, leeway=settings.leeway_s, exp={"essential": True})
        audience: dict[str, Any] = {}
        if settings.issuer:
            audience["iss"] = {"essential": True, "value": settings.issuer}
        if settings.audiences:
            audience["aud"] = {"essential": True, "values": list(settings.audiences)}
        self._audience = JWTClaimsRegistry(now=self._int_now, leeway=settings.leeway_s, **audience)
        self._verified: dict[str, tuple[dict[str, Any], int]] = {}

    def _int_now(self) -> int:
        return int(self._now())

    async def authenticate(self, authorization: list[str] | str | None) -> Subject:
        """The subject of a request's Authorization header value(s); raises AuthenticationFailed (401) or
        AuthenticationUnavailable (503)."""
        token = bearer_token(authorization)
        claims = await self.verify(token)
        return self.resolver.resolve(claims, token)

    async def verify(self, token: str) -> dict[str, Any]:
        """The claims of a token that passes every check in the module docstring.

        Clients send the same token for many requests (a UI page, an MCP session), so a token verified with
        the current keys is remembered (bounded, oldest out) and only its lifetime is re-checked next time:
        a few microseconds instead of a signature verification (~0.1 ms RS256, ~0.3 ms ES256 here). Only
        genuine tokens get in, the key is the whole token, and a change of keys forgets everything."""
        remembered = self._verified.get(token)
        if remembered is not None and remembered[1] == self.jwks.generation:
            claims = remembered[0]
            if self._still_valid(claims):
                self.jwks.touch()
                return claims
            del self._verified[token]
        claims = await self._verify(token)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            del self._verified[next(iter(self._verified))]
        self._verified[token] = (claims, self.jwks.generation)
        return claims

    def _still_valid(self, claims: dict[str, Any]) -> bool:
        """The lifetime part of the checks, for a token whose signature and audience were already checked."""
        now, leeway = self._now(), self.settings.leeway_s
        nbf = claims.get("nbf")
        return claims["exp"] > now - leeway and (nbf is None or nbf <= now + leeway)

    async def _verify(self, token: str) -> dict[str, Any]:
        try:
            signed = jws.extract_compact(token.encode("ascii"), registry=self._registry)
            header = signed.headers()
        except (JoseError, ValueError, UnicodeError) as exc:
            raise AuthenticationFailed(INVALID_TOKEN, reason=f"not a compact JWS: {exc}") from None
        alg, kid, typ = header.get("alg"), header.get("kid"), header.get("typ")
        if alg not in self._algorithms:
            raise AuthenticationFailed(INVALID_TOKEN, reason=f"alg {alg!r} is not accepted")
        if "crit" in header or "b64" in header:
            raise AuthenticationFailed(INVALID_TOKEN, reason="critical or b64 header extensions are not supported")
        if typ is not None and (not isinstance(typ, str) or typ.lower() not in ACCEPTED_TYPES):
            raise AuthenticationFailed(INVALID_TOKEN, reason=f"typ {typ!r} is not an access token")
        if kid is not None and not isinstance(kid, str):
            raise AuthenticationFailed(INVALID_TOKEN, reason="kid is not a string")
        keys = await self.jwks.keys_for(kid, alg)
        if not keys:
            raise AuthenticationFailed(INVALID_TOKEN, reason=f"no {alg} key with kid {kid!r} in the JWKS")
        if not any(self._signature_ok(signed, key) for key in keys):
            raise AuthenticationFailed(INVALID_TOKEN, reason=f"bad signature (kid {kid!r})")
        try:
            claims = json.loads(signed.payload)
        except (TypeError, ValueError):
            claims = None
        if not isinstance(claims, dict):
            raise AuthenticationFailed(INVALID_TOKEN, reason="payload is not a JSON object")
        for registry in (self._lifetime, self._audience):
            try:
                registry.validate(claims)
            except ClaimError as exc:
                code = INVALID_TOKEN if set(exc.claim.split(",")) & _TIME_CLAIMS else INVALID_CLAIMS
                raise AuthenticationFailed(code, reason=f"claim {exc.claim}: {exc.description}") from None
        return claims

    def _signature_ok(self, signed: jws.CompactSignature, key: Key) -> bool:
        try:
            return jws.validate_compact(signed, key, registry=self._registry)
        except JoseError:
            return False

    async def close(self) -> None:
        await self.jwks.close()
