"""Quantiles computed here from `sum by (le)` buckets (adapters/prometheus/quantile.py) against Prometheus's own
`histogram_quantile` on a real server, for a table of bucket shapes; and the `http` family read with two
queries instead of one per series key, giving the answer the per-key queries give."""

from __future__ import annotations

import math
import uuid

import cramjam
import httpx
import pytest

from adapters.prometheus.backend import PrometheusBackend
from adapters.prometheus.client import PrometheusClient, PrometheusConfig, Series
from adapters.prometheus.otel import OtelScheme
from adapters.prometheus.quantile import quantile_series
from adapters.prometheus.remote_write import RemoteWriter, encode_write_request
from devservers.sample import COMPONENTS, ENVIRONMENTS, PROJECT_UID, platform_points
from domain import semconv
from domain.model import ComponentScope, MetricsQuery, TimeRange
from domain.timeutil import now_ns

SECOND = 10**9
MINUTE = 60 * SECOND
STEP = 10 * MINUTE  # longer than the 5 m lookback: a bucket without a sample at a step is absent there
STEPS = 4
NAN = math.nan
INF = math.inf

#: Bucket shapes: le -> the gauge's value at each step (None: no sample at that step).
CASES: dict[str, dict[str, list[float | None]]] = {
    "typical": {
        "0.005": [1, 0, 3, 7],
        "0.025": [4, 0, 3, 9],
        "0.1": [9, 0, 10, 12],
        "0.5": [10, 0, 25, 12],
        "1": [12, 0, 26, 30],
        "+Inf": [13, 0, 26, 31],
    },
    "rates": {"0.1": [0.3, 1.7, 0.05, 2.5], "0.25": [0.35, 1.9, 0.2, 2.5], "+Inf": [0.4, 2.0, 0.2, 2.75]},
    "same bound written twice": {"1": [2, 4, 6, 8], "1.0": [3, 4, 5, 6], "2": [9, 9, 12, 20], "+Inf": [10, 9, 14, 21]},
    "decreasing counts": {"0.1": [20, 5, 9, 1], "0.5": [10, 5, 3, 0], "1": [60, 4, 10, 1], "+Inf": [100, 8, 10, 2]},
    "bounds at and below zero": {"-1": [10, 0, 1, 5], "0": [15, 2, 1, 5], "1": [20, 4, 2, 5], "+Inf": [20, 4, 2, 9]},
    "no +Inf bucket": {"0.1": [1, 2, 3, 4], "1": [2, 3, 4, 5]},
    "only +Inf": {"+Inf": [1, 2, 3, 4]},
    "an unparseable bound": {"0.1": [1, 2, 3, 4], "abc": [100, 100, 100, 100], "+Inf": [2, 3, 4, 5]},
    "hexadecimal bound": {"0x1p-2": [1, 2, 3, 4], "+Inf": [2, 3, 4, 5]},
    "gaps": {"0.1": [1, None, 3, None], "0.5": [None, 2, 4, 6], "+Inf": [2, 3, None, 8]},
    "NaN and infinite counts": {"0.1": [NAN, 1, 2, INF], "0.5": [2, NAN, 3, INF], "+Inf": [3, 4, NAN, INF]},
    "empty lowest buckets": {"0.1": [0, 0, 0, 1], "0.5": [0, 1, 0, 1], "+Inf": [3, 1, 2, 1]},
    "negative counts": {"0.1": [-5, -1, 0, 2], "1": [-2, 3, -1, 2], "+Inf": [10, 3, 4, -1]},
}
QUANTILES = (0.0, 0.25, 0.5, 0.9, 0.99, 1.0)


async def write_cases(url: str, run: str, start_ns: int) -> None:
    series = []
    for case_id, buckets in enumerate(CASES.values()):
        for le, values in buckets.items():
            labels = (("__name__", "i14p_bucket"), ("case", str(case_id)), ("le", le), ("run", run))
            samples = [
                ((start_ns + k * STEP) // 1_000_000, float(value))
                for k, value in enumerate(values)
                if value is not None
            ]
            series.append((labels, samples))
    body = bytes(cramjam.snappy.compress_raw(encode_write_request(series)))
    headers = {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf"}
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{url}/api/v1/write", content=body, headers=headers)
    assert response.status_code < 300, response.text


def points(series: list[Series]) -> list[tuple[int, float]]:
    assert len(series) <= 1
    return series[0][1] if series else []


async def test_our_quantiles_are_prometheus_histogram_quantile(prometheus_server):
    run = uuid.uuid4().hex[:12]
    start = (now_ns() // MINUTE - 60) * MINUTE
    end = start + (STEPS - 1) * STEP
    await write_cases(prometheus_server.url, run, start)
    client = PrometheusClient(PrometheusConfig(prometheus_server.url))
    compared = 0
    try:
        for case_id, name in enumerate(CASES):
            buckets = f'sum by (le) (i14p_bucket{{run="{run}",case="{case_id}"}})'
            ours = quantile_series(
                await client.query_range_columns(buckets, start, end, STEP),
                {str(q): q for q in QUANTILES},
            )
            for q in QUANTILES:
                theirs = points(await client.query_range(f"histogram_quantile({q}, {buckets})", start, end, STEP))
                assert ours.get(str(q), []) == theirs, (name, q)
                compared += len(theirs)
    finally:
        await client.close()
    assert compared > 100  # the table is not vacuous: most cases have quantiles at most steps


class CountingTransport(httpx.AsyncHTTPTransport):
    """The real transport, counting the requests that pass through it."""

    def __init__(self) -> None:
        super().__init__()
        self.paths: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        return await super().handle_async_request(request)


async def per_key(client: PrometheusClient, expressions: dict[str, str], window: TimeRange, step: int) -> dict:
    """The family as it was read before: each key's PromQL as a query of its own, empty series left out."""
    out = {}
    for key, expr in expressions.items():
        series = await client.query_range(expr, window.start_ns, window.end_ns, step)
        assert len(series) <= 1
        if series and series[0][1]:
            out[key] = series[0][1]
    return out


@pytest.mark.parametrize(("family", "queries"), [("http", 2), ("resource", len(semconv.RESOURCE_SERIES))])
@pytest.mark.parametrize("step_minutes", [1, 2])
async def test_a_family_is_at_most_two_queries_with_the_per_key_answer(
    prometheus_server, family, queries, step_minutes
):
    namespace = f"i14p{uuid.uuid4().hex[:10]}"
    start = (now_ns() // MINUTE - 45) * MINUTE
    writer = RemoteWriter(prometheus_server.url)
    points_ = platform_points(namespace, start)
    for chunk in range(0, len(points_), 5000):
        await writer.write(points_[chunk : chunk + 5000])
    await writer.close()

    counting = CountingTransport()
    config = PrometheusConfig(prometheus_server.url)
    backend = PrometheusBackend(config, OtelScheme(), transport=counting)
    direct = PrometheusClient(config)
    window = TimeRange(start + 10 * MINUTE, start + 30 * MINUTE)
    step = step_minutes * MINUTE
    try:
        for scope in (
            ComponentScope(namespace, PROJECT_UID, COMPONENTS["cart"], ENVIRONMENTS["prod"]),
            ComponentScope(namespace, PROJECT_UID, "", ENVIRONMENTS["prod"]),
            ComponentScope(namespace),
            ComponentScope(namespace, PROJECT_UID, COMPONENTS["cart"], ENVIRONMENTS["dev"]),
            ComponentScope(namespace, PROJECT_UID, COMPONENTS["payments"], ENVIRONMENTS["prod"]),  # no series
        ):
            counting.paths.clear()
            got = await backend.query_metrics(MetricsQuery(family, scope, window, step))  # type: ignore[arg-type]
            assert counting.paths == ["/api/v1/query_range"] * queries
            want = await per_key(direct, OtelScheme().family(family, scope, step), window, step)  # type: ignore[arg-type]
            assert list(got) == list(semconv.family_keys(family))  # every key, in the family's order
            got = {key: points for key, points in got.items() if points}  # those with data: the per-key answer's
            assert list(got) == list(want)  # same keys, in the family's order
            assert got == want, scope  # the same floats
            assert bool(got) == (scope.component_uid != COMPONENTS["payments"])
    finally:
        await backend.close()
        await direct.close()
