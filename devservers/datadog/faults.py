"""Rate limits and injected failures: how a test makes the fake misbehave the way Datadog can.

Each query endpoint has a named rate limit (Datadog's `X-RateLimit-*` headers: Limit, Period in seconds,
Remaining, Reset in seconds until the window ends, Name). Windows are aligned to the period, as Datadog's are.
Limits are generous by default so ordinary tests never meet them; `set_limit` lowers one.

`inject` (the control endpoint `POST /_fake/fail`) makes the next `count` requests to a path (or to every path
with `"*"`) answer `status`, or all of them for `seconds` (an outage). A 429 carries the rate-limit headers with
Remaining 0 and Reset = `retry_after`; any injected status carries `Retry-After` when `retry_after` is given.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

DEFAULT_LIMITS = {
    "logs_query": (3000, 3600),
    "spans_query": (3000, 3600),
    "timeseries_query": (6000, 3600),
    "monitors": (3000, 60),
    "webhooks": (1000, 60),
}


@dataclass
class Injection:
    path: str  # an exact request path, or "*"
    status: int
    remaining: int | None  # requests left to fail; None: until `until`
    until: float | None  # monotonic deadline of an outage
    retry_after: int | None

    def applies(self, path: str, now: float) -> bool:
        if self.path not in ("*", path):
            return False
        if self.until is not None and now >= self.until:
            return False
        return self.remaining is None or self.remaining > 0


@dataclass(frozen=True)
class Failure:
    status: int
    headers: dict[str, str]


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._limits = dict(DEFAULT_LIMITS)
            self._used: dict[tuple[str, int], int] = {}
            self._injections: list[Injection] = []

    def set_limit(self, name: str, limit: int, period: int) -> None:
        with self._lock:
            self._limits[name] = (limit, period)

    def inject(self, path: str, status: int, count: int | None, seconds: float | None, retry_after: int | None) -> None:
        until = time.monotonic() + seconds if seconds is not None else None
        remaining = count if count is not None else (None if seconds is not None else 1)
        with self._lock:
            self._injections.append(Injection(path, status, remaining, until, retry_after))

    def injected(self, path: str) -> Failure | None:
        """The injected failure this request meets, consuming one of its count."""
        now = time.monotonic()
        with self._lock:
            for injection in self._injections:
                if injection.applies(path, now):
                    if injection.remaining is not None:
                        injection.remaining -= 1
                    headers = {}
                    if injection.retry_after is not None:
                        headers["Retry-After"] = str(injection.retry_after)
                    if injection.status == 429:
                        limit, period = self._limits.get("logs_query", (3000, 3600))
                        reset = injection.retry_after if injection.retry_after is not None else 1
                        headers.update(_headers("injected", limit, period, 0, reset))
                    return Failure(injection.status, headers)
            self._injections = [i for i in self._injections if i.applies(i.path, now)]
        return None

    def take(self, name: str) -> tuple[bool, dict[str, str]]:
        """Counts one request against limit `name`: (allowed, the X-RateLimit-* headers to send)."""
        now = time.time()
        with self._lock:
            limit, period = self._limits.get(name, (1000, 60))
            window = int(now // period)
            used = self._used.get((name, window), 0)
            allowed = used < limit
            if allowed:
                used += 1
                self._used[(name, window)] = used
        reset = max(1, int((window + 1) * period - now))
        return allowed, _headers(name, limit, period, limit - used, reset)


def _headers(name: str, limit: int, period: int, remaining: int, reset: int) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Period": str(period),
        "X-RateLimit-Remaining": str(max(0, remaining)),
        "X-RateLimit-Reset": str(reset),
        "X-RateLimit-Name": name,
    }
