"""Metrics: the same OpenTelemetry points, written to the embedded backend and to a real Prometheus (by
remote write), give the same series for every family, scope and step."""

from __future__ import annotations

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
