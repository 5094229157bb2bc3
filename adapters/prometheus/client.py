"""The Prometheus HTTP API (`/api/v1/query_range`, `/api/v1/query`), asynchronously, with a timeout on every
request, so the queries of one Observer request run at once and an unreachable or slow Prometheus becomes
`BackendUnavailable` (a 503) instead of a hang.

httpx rather than prometheus-api-client: the latter is synchronous (requests), so each of the up to ten queries
of a request would need a thread of its own; `make bench` measures both.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from adapters.protocols import BackendUnavailable

#: labels -> samples (timestamp ns, value), NaN and infinities dropped.
Series = tuple[dict[str, str], list[tuple[int, float]]]
#: labels, timestamps (ns), values: a series as columns, every sample kept.
Columns = tuple[dict[str, str], Sequence[int], list[float]]


class QueryRejected(ValueError):
    """Prometheus refused a query as malformed: a bug in our PromQL, never the user's input."""


@dataclass
class PrometheusConfig:
    address: str  # PROMETHEUS_ADDRESS, e.g. http://prometheus:9090
    timeout_s: float = 10.0  # PROMETHEUS_TIMEOUT_SECONDS: per request
    headers: dict[str, str] = field(default_factory=dict)


class PrometheusClient:
    def __init__(self, config: PrometheusConfig, transport: httpx.AsyncBaseTransport | None = None):
        self.config = config
        self._http = httpx.AsyncClient(
            base_url=config.address.rstrip("/"), timeout=config.timeout_s, headers=config.headers, transport=transport
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def query_range(self, expr: str, start_ns: int, end_ns: int, step_ns: int) -> list[Series]:
        """One series per result, NaN and infinities dropped."""
        columns = await self.query_range_columns(expr, start_ns, end_ns, step_ns)
        with collector_paused():
            return [(labels, _finite(stamps, values)) for labels, stamps, values in columns]

    async def query_range_columns(self, expr: str, start_ns: int, end_ns: int, step_ns: int) -> list[Columns]:
        """One series per result as columns, every sample kept: what histogram buckets are read as, because
        `histogram_quantile` sees NaN and infinite bucket samples too (quantile.py)."""
        content = await self._post(
            "/api/v1/query_range",
            {"query": expr, "start": _seconds(start_ns), "end": _seconds(end_ns), "step": _seconds(step_ns)},
        )
        with collector_paused():
            data = _data(content)
            stamps = _Stamps()
            return [(item["metric"], *stamps.columns(item["values"])) for item in data["result"]]

    async def query(self, expr: str, at_ns: int) -> list[tuple[dict[str, str], float]]:
        """An instant query: one value per series, NaN and infinities dropped."""
        data = _data(await self._post("/api/v1/query", {"query": expr, "time": _seconds(at_ns)}))
        if data["resultType"] == "scalar":
            return [({}, float(data["result"][1]))]
        out = []
        for item in data["result"]:
            value = float(item["value"][1])
            if math.isfinite(value):
                out.append((item["metric"], value))
        return out

    async def _post(self, path: str, form: dict[str, str]) -> bytes:
        """The body of Prometheus's 200, or the failure as QueryRejected or BackendUnavailable."""
        form = {**form, "timeout": f"{self.config.timeout_s:g}"}  # float seconds: 2.x refuses "2.5s"
        try:
            response = await self._http.post(path, data=form)
        except httpx.HTTPError as exc:
            raise BackendUnavailable(f"Prometheus unreachable ({type(exc).__name__})") from None
        if response.status_code in (400, 422):
            raise QueryRejected(f"Prometheus refused a query: {response.text[:300]}")
        if response.status_code != 200:
            raise BackendUnavailable(f"Prometheus answered {response.status_code}: {response.text[:200]}")
        return response.content


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for a synchronous stretch that allocates many containers, all
    alive until it ends: decoding a range answer (a list per sample, ~13,000 for a day of a histogram's buckets)
    and shaping it. Left on, the collector runs every 700 allocations and scans them again each time; in the
    Observer that doubled the time to decode an answer. Nothing awaits inside, so no other task runs with it
    off; it is left off if something else turned it off."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _data(content: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(content)  # a day at 1 m is ~1,500 samples per series: parse fast
    except orjson.JSONDecodeError:  # a proxy's HTML page with a 200
        raise BackendUnavailable("Prometheus answered something that is not its API") from None
    if body.get("status") != "success":
        raise BackendUnavailable(f"Prometheus query failed: {str(body.get('error'))[:200]}")
    data: dict[str, Any] = body["data"]
    return data


def _seconds(ns: int) -> str:
    """Exact decimal seconds (a float would round nanoseconds away)."""
    whole, frac = divmod(ns, 1_000_000_000)
    return f"{whole}.{frac:09d}" if frac else str(whole)


class _Stamps:
    """Converts the `[[seconds, "value"], ...]` of each series of one answer to columns. The series of a range
    answer mostly share their timestamps (the steps), so the column of the previous series is reused when it
    is the same: the per-sample Python work is then only in C (`zip`, `map(float, ...)`)."""

    def __init__(self) -> None:
        self._seconds: tuple[float, ...] = ()
        self._ns: tuple[int, ...] = ()

    def columns(self, values: list[list[Any]]) -> tuple[tuple[int, ...], list[float]]:
        if not values:
            return (), []
        seconds, raw = zip(*values, strict=True)
        if seconds != self._seconds:
            # Prometheus keeps milliseconds, so the timestamp is rounded to them.
            self._seconds, self._ns = seconds, tuple(round(ts * 1000) * 1_000_000 for ts in seconds)
        return self._ns, list(map(float, raw))


def _finite(stamps: Sequence[int], values: list[float]) -> list[tuple[int, float]]:
    """(ns, value) pairs without NaN and infinities."""
    pairs = list(zip(stamps, values, strict=True))
    if all(map(math.isfinite, values)):
        return pairs
    return [pair for pair in pairs if math.isfinite(pair[1])]
