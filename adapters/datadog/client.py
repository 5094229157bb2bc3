"""Datadog's HTTP APIs over one `httpx.AsyncClient`: the keys in headers, TLS verified, a timeout on every
request, and Datadog's rate limits respected.

Rate limits: every answer's `X-RateLimit-*` headers are kept per limit name (`last_limits`), and a 429 is
waited out (for `X-RateLimit-Reset` seconds, or `Retry-After`) and the request sent again, but only while the
wait still ends before the request's deadline; past it the caller gets `RateLimited` at once, a
`BackendUnavailable` that says when to come back (a 503 with Retry-After for a user), instead of a hang or a
storm of retries. Server errors and network failures are `BackendUnavailable` too; a 400 is `QueryRejected`
(a bug in the query we built, never the user's input, which is escaped).

The API and application keys are only ever set as headers: they are never logged, never part of a message,
and the client's `repr` does not show them.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from adapters.protocols import BackendUnavailable

#: How long a query may wait out 429s in total before it answers 503 (a user is waiting).
DEFAULT_RATE_LIMIT_WAIT_S = 10.0


class QueryRejected(ValueError):
    """Datadog refused a request as malformed (400/422): a bug in what we built."""


class RateLimited(BackendUnavailable):
    """Datadog kept answering 429 past the deadline; `retry_after_s` is when its limit resets."""

    def __init__(self, message: str, retry_after_s: float):
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class RateLimit:
    """One `X-RateLimit-*` reading: what Datadog said about the named limit on its last answer."""

    name: str
    limit: int
    remaining: int
    period_s: int
    reset_s: float


@dataclass(frozen=True)
class DatadogConfig:
    base_url: str  # https://api.{site}, or DATADOG_API_URL
    api_key: str = field(default="", repr=False)
    app_key: str = field(default="", repr=False)
    timeout_s: float = 10.0
    rate_limit_wait_s: float = DEFAULT_RATE_LIMIT_WAIT_S


class DatadogClient:
    """JSON in, JSON out, for the query APIs (API and application key)."""

    def __init__(self, config: DatadogConfig, transport: httpx.AsyncBaseTransport | None = None):
        self.config = config
        self.last_limits: dict[str, RateLimit] = {}
        # A limit can cover several paths (Logs Search and Logs Aggregate share one; so do Spans search and
        # aggregate), so an exhausted limit is kept by its `X-RateLimit-Name`, learned per path from the answers.
        self._limit_of: dict[str, str] = {}  # path -> the name of the limit its answers reported
        self._exhausted: dict[str, float] = {}  # limit name -> monotonic time it resets, once none remain
        self._http = httpx.AsyncClient(
            base_url=config.base_url.rstrip("/"),
            timeout=config.timeout_s,
            headers={
                "DD-API-KEY": config.api_key,
                "DD-APPLICATION-KEY": config.app_key,
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
            transport=transport,
            verify=True,
        )

    def __repr__(self) -> str:
        return f"DatadogClient({self.config.base_url!r})"

    async def close(self) -> None:
        await self._http.aclose()

    async def post(self, path: str, body: dict[str, Any], what: str) -> dict[str, Any]:
        """POST `body` to `path`, waiting out 429s up to the deadline; the decoded answer."""
        deadline = time.monotonic() + self.config.rate_limit_wait_s
        content = orjson.dumps(body)
        while True:
            await self._wait_for_budget(path, deadline, what)
            try:
                response = await self._http.post(path, content=content)
            except httpx.HTTPError as exc:
                raise BackendUnavailable(f"{what}: Datadog unreachable ({type(exc).__name__})") from None
            self._remember(path, response)
            if response.status_code != 429:
                return _decoded(response, what)
            wait = retry_after(response)
            if time.monotonic() + wait > deadline:
                raise RateLimited(f"{what}: Datadog rate limit reached, resets in {wait:g} s", max(wait, 1.0))
            await asyncio.sleep(wait)

    async def _wait_for_budget(self, path: str, deadline: float, what: str) -> None:
        """Never send what Datadog said it would refuse: when the last answer left no requests in the period,
        wait for the reset (or fail at once when that is past the deadline)."""
        resets = self._exhausted.get(self._limit_of.get(path, path), 0.0)
        wait = resets - time.monotonic()
        if wait <= 0:
            return
        if time.monotonic() + wait > deadline:
            raise RateLimited(f"{what}: Datadog rate limit exhausted, resets in {wait:.0f} s", max(wait, 1.0))
        await asyncio.sleep(wait)

    def _remember(self, path: str, response: httpx.Response) -> None:
        reading = rate_limit(response.headers)
        if reading is None:
            return
        self.last_limits[reading.name] = reading
        limit = self._limit_of[path] = reading.name or path
        if reading.remaining <= 0 and response.status_code != 429:
            self._exhausted[limit] = time.monotonic() + min(reading.reset_s, MAX_RETRY_S)
        else:
            self._exhausted.pop(limit, None)


def rate_limit(headers: httpx.Headers) -> RateLimit | None:
    """The `X-RateLimit-*` headers of an answer, or None when it carries none (or unreadable ones)."""
    if "x-ratelimit-limit" not in headers:
        return None
    try:
        return RateLimit(
            name=headers.get("x-ratelimit-name", ""),
            limit=int(headers["x-ratelimit-limit"]),
            remaining=int(headers.get("x-ratelimit-remaining", "0")),
            period_s=int(headers.get("x-ratelimit-period", "0")),
            reset_s=float(headers.get("x-ratelimit-reset", "0")),
        )
    except ValueError:
        return None


#: A 429 that says nothing about when to come back is waited on this long.
DEFAULT_RETRY_S = 1.0
#: No single wait is longer than this, whatever a header says (a misconfigured proxy must not park us).
MAX_RETRY_S = 3600.0


def retry_after(response: httpx.Response) -> float:
    """How long a 429 or 503 asks us to wait: `X-RateLimit-Reset` (seconds), else `Retry-After` (seconds)."""
    for header in ("x-ratelimit-reset", "retry-after"):
        raw = response.headers.get(header)
        if raw is None:
            continue
        try:
            seconds = float(raw)
        except ValueError:
            continue
        if seconds >= 0:
            return min(seconds, MAX_RETRY_S)
    return DEFAULT_RETRY_S


def _decoded(response: httpx.Response, what: str) -> dict[str, Any]:
    status = response.status_code
    if status in (400, 422):
        raise QueryRejected(f"{what}: Datadog refused the request: {_errors(response)}")
    if status in (401, 403):
        raise BackendUnavailable(f"{what}: Datadog refused the API or application key ({status})")
    if status >= 300:
        raise BackendUnavailable(f"{what}: Datadog answered {status}: {_errors(response)}")
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise BackendUnavailable(f"{what}: Datadog answered something that is not its API") from None
    if not isinstance(body, dict):
        raise BackendUnavailable(f"{what}: Datadog answered something that is not its API")
    return body


def _errors(response: httpx.Response) -> str:
    """Datadog's `{"errors": [...]}`, shortened; never the request (which carried the keys in headers only)."""
    try:
        errors = orjson.loads(response.content).get("errors")
    except (orjson.JSONDecodeError, AttributeError):
        errors = None
    text = "; ".join(map(str, errors)) if isinstance(errors, list) else response.text
    return text[:300]
