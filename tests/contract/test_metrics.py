"""Metrics: the same OpenTelemetry points, written to the embedded backend and to a real Prometheus (by
remote write), give the same series for every family, scope and step."""

from __future__ import annotations

import dataclasses
import itertools
import math
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.embedded.backend import EmbeddedBackend
from adapters.prometheus.backend import PrometheusBackend
from adapters.prometheus.client import PrometheusConfig
from adapters.prometheus.otel import OtelScheme
from adapters.prometheus.remote_write import RemoteWriter
from devservers.sample import COMPONENTS, ENVIRONMENTS, PROJECT_UID, platform_points
from domain import semconv
from domain.model import ComponentScope, MetricPoint, MetricsQuery, TimeRange
from domain.timeutil import now_ns

SECOND = 10**9
MINUTE = 60 * SECOND
_namespaces = itertools.count()


@pytest.fixture(scope="session")
async def prometheus_metrics(prometheus_server) -> AsyncIterator[PrometheusBackend]:
    backend = PrometheusBackend(
        PrometheusConfig(prometheus_server.url), OtelScheme(), RemoteWriter(prometheus_server.url)
    )
    yield backend
    await backend.close()


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[EmbeddedBackend]:
    backend = EmbeddedBackend(tmp_path / "data")
    yield backend
    backend.close()


def _start() -> int:
    """Recent enough for Prometheus to accept by remote write, on a minute boundary like real schedules."""
    return (now_ns() // MINUTE - 45) * MINUTE


async def load(backend: Any, points: list[MetricPoint]) -> None:
    for chunk in range(0, len(points), 2000):
        await backend.write(batch_id=uuid.uuid4().hex, metrics=points[chunk : chunk + 2000])


def scopes(namespace: str) -> dict[str, ComponentScope]:
    prod = ENVIRONMENTS["prod"]
    return {
        "component": ComponentScope(namespace, PROJECT_UID, COMPONENTS["cart"], prod),
        "project": ComponentScope(namespace, PROJECT_UID, "", prod),
        "namespace": ComponentScope(namespace),
    }


async def answers(backend: Any, namespace: str, family: str, window: TimeRange, step_ns: int) -> dict:
    """Every scope's series, checked for shape: all keys of the family, one point per step, finite values."""
    out = {}
    wanted = semconv.HTTP_SERIES if family == "http" else [spec.key for spec in semconv.RESOURCE_SERIES]
    steps = list(range(window.start_ns, window.end_ns + 1, step_ns))
    if steps[-1] != window.end_ns:
        steps.append(window.end_ns)  # the partial last step: a point at the range's end
    for name, scope in scopes(namespace).items():
        series = await backend.query_metrics(MetricsQuery(family, scope, window, step_ns))
        assert set(series) == set(wanted), (name, sorted(series))
        for key, points in series.items():
            assert [ts for ts, _ in points] == steps, (name, key)
            assert all(math.isfinite(value) for _, value in points), (name, key)
        out[name] = series
    return out


@pytest.mark.parametrize("family", ["resource", "http"])
@pytest.mark.parametrize("step_minutes", [1, 2])
async def test_prometheus_gives_the_embedded_series(embedded, prometheus_metrics, family, step_minutes):
    namespace = f"metrics{next(_namespaces)}-{uuid.uuid4().hex[:6]}"
    start = _start()
    points = platform_points(namespace, start)
    await load(embedded, points)
    await load(prometheus_metrics, points)
    window = TimeRange(start + 10 * MINUTE, start + 30 * MINUTE)
    want = await answers(embedded, namespace, family, window, step_minutes * MINUTE)
    got = await answers(prometheus_metrics, namespace, family, window, step_minutes * MINUTE)
    for name, series in want.items():
        for key, points in series.items():
            values = [value for _, value in got[name][key]]
            assert values == pytest.approx([value for _, value in points], rel=1e-9, abs=1e-12), (name, key)


#: Where Datadog's documented semantics differ from the contract's, and what the tests assert instead.
DIFFERS = {
    "datadog": "a step's rollup bucket is [b, b + step), reported at its end, where the contract's point at t "
    "covers (t - step, t]: a sample exactly on a step boundary counts in the step after; and rollups are aligned "
    "to Datadog's grid (multiples of the interval since the epoch), so a window off that grid comes back on it",
}


def _a_nanosecond_later(points: list[MetricPoint]) -> list[MetricPoint]:
    """The same samples 1 ns later: (t - step, t] then holds exactly the samples of [t - step, t), so the
    embedded backend computes what Datadog's [b, b + step) buckets hold."""
    return [dataclasses.replace(point, ts_ns=point.ts_ns + 1) for point in points]


@pytest.mark.parametrize("family", ["resource", "http"])
@pytest.mark.parametrize("step_minutes", [1, 2])
async def test_datadog_gives_the_embedded_series(embedded, datadog_backend, family, step_minutes):
    """The same points through Datadog's series intake and v2 timeseries query (the local Datadog), compared
    with the embedded backend's series under Datadog's bucket boundaries (DIFFERS), on a window on its grid."""
    step = step_minutes * MINUTE
    namespace = f"metrics{next(_namespaces)}-{uuid.uuid4().hex[:6]}"
    start = _start() // step * step
    points = platform_points(namespace, start)
    await load(embedded, _a_nanosecond_later(points))
    await load(datadog_backend.roles.sink, points)
    window = TimeRange(start + 10 * MINUTE, start + 30 * MINUTE)
    want = await answers(embedded, namespace, family, window, step)
    got = await answers(datadog_backend.roles.metrics, namespace, family, window, step)
    for name, series in want.items():
        for key, values in series.items():
            assert [v for _, v in got[name][key]] == pytest.approx([v for _, v in values], rel=1e-9, abs=1e-12), (
                name,
                key,
            )


async def test_datadog_answers_on_its_own_grid(datadog_backend):
    """A window off Datadog's grid (DIFFERS): the steps come back on multiples of the interval."""
    step = 2 * MINUTE
    namespace = f"metrics{next(_namespaces)}-{uuid.uuid4().hex[:6]}"
    start = _start() // step * step + MINUTE  # one minute off the two-minute grid
    await load(datadog_backend.roles.sink, platform_points(namespace, start))
    window = TimeRange(start + 10 * MINUTE, start + 30 * MINUTE)
    series = await datadog_backend.roles.metrics.query_metrics(
        MetricsQuery("resource", scopes(namespace)["component"], window, step)
    )
    for key, values in series.items():
        stamps = [ts for ts, _ in values]
        assert stamps and all(ts % step == 0 for ts in stamps), key
        assert all(b - a == step for a, b in itertools.pairwise(stamps)), key
        assert window.start_ns - step <= stamps[0] and stamps[-1] <= window.end_ns + step, key


@pytest.mark.parametrize("family", ["resource", "http"])
@pytest.mark.parametrize("step_minutes", [1, 2])
async def test_the_metrics_adapter_contract_gives_the_embedded_series(embedded, family, step_minutes):
    """adapters/http -> `observer adapter serve`'s metrics app (real HTTP on loopback) -> the same embedded store:
    the very series, every scope, exactly (floats and nanosecond timestamps survive the JSON)."""
    from devservers.local import serving
    from observer.adapter_serve import metrics_app
    from tests.contract.conftest import built

    namespace = f"metrics{next(_namespaces)}-{uuid.uuid4().hex[:6]}"
    start = _start()
    await load(embedded, platform_points(namespace, start))
    window = TimeRange(start + 10 * MINUTE, start + 30 * MINUTE)
    want = await answers(embedded, namespace, family, window, step_minutes * MINUTE)
    with serving(metrics_app(embedded)) as url:
        http = await built("http", metrics_url=url)
        try:
            got = await answers(http.roles.metrics, namespace, family, window, step_minutes * MINUTE)
        finally:
            await http.close()
    assert got == want


# ----------------------------------------------------------------------------------------------- partial steps, empty


@pytest.mark.parametrize("family", ["resource", "http"])
async def test_a_partial_last_step_is_answered_alike(embedded, prometheus_metrics, family):
    """20 minutes and 30 seconds at a 2-minute step: ten whole steps, then a point at the end, covering the step
    before it like every point; Prometheus evaluates it there too."""
    namespace = f"metrics{next(_namespaces)}-{uuid.uuid4().hex[:6]}"
    start = _start()
    points = platform_points(namespace, start)
    await load(embedded, points)
    await load(prometheus_metrics, points)
    window = TimeRange(start + 10 * MINUTE, start + 30 * MINUTE + 30 * SECOND)
    want = await answers(embedded, namespace, family, window, 2 * MINUTE)
    got = await answers(prometheus_metrics, namespace, family, window, 2 * MINUTE)
    for name, series in want.items():
        for key, points_ in series.items():
            assert points_[-1][0] == window.end_ns, (name, key)
            values = [value for _, value in got[name][key]]
            assert values == pytest.approx([value for _, value in points_], rel=1e-9, abs=1e-12), (name, key)


async def test_datadog_keeps_the_bucket_of_a_partial_last_step(datadog_backend):
    """DIFFERS: the partial step's bucket is kept at its own end, on Datadog's grid, after the range's end."""
    step = 2 * MINUTE
    namespace = f"metrics{next(_namespaces)}-{uuid.uuid4().hex[:6]}"
    start = _start() // step * step
    await load(datadog_backend.roles.sink, platform_points(namespace, start))
    window = TimeRange(start + 10 * MINUTE, start + 29 * MINUTE)
    series = await datadog_backend.roles.metrics.query_metrics(
        MetricsQuery("resource", scopes(namespace)["component"], window, step)
    )
    assert [ts for ts, _ in series["cpuUsage"]][-1] == start + 30 * MINUTE


@pytest.mark.parametrize("family", ["resource", "http"])
@pytest.mark.parametrize("backend", ["embedded", "prometheus", "datadog", "http"])
async def test_an_empty_answer_has_every_key(request, embedded, family, backend):
    """Nothing in the scope: every key of the family, each an empty list, from every backend."""
    from devservers.local import serving
    from observer.adapter_serve import metrics_app
    from tests.contract.conftest import built

    window = TimeRange(_start(), _start() + 10 * MINUTE)
    query = MetricsQuery(family, ComponentScope(f"empty{next(_namespaces)}"), window, MINUTE)
    want = {key: [] for key in semconv.family_keys(family)}
    if backend == "embedded":
        assert await embedded.query_metrics(query) == want
    elif backend == "prometheus":
        assert await request.getfixturevalue("prometheus_metrics").query_metrics(query) == want
    elif backend == "datadog":
        assert await request.getfixturevalue("datadog_backend").roles.metrics.query_metrics(query) == want
    else:
        with serving(metrics_app(embedded)) as url:
            http = await built("http", metrics_url=url)
            try:
                assert await http.roles.metrics.query_metrics(query) == want
            finally:
                await http.close()
