"""Metrics shipped by our intake's series encoding come back through the v2 timeseries query of the local
Datadog, one request per family, as the embedded backend would answer: gauges averaged per step and summed
over pods, delta counters as per-second rates, the http family from the duration histogram."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from adapters.datadog.client import DatadogClient, DatadogConfig
from adapters.datadog.intake import series_of
from adapters.datadog.metrics import query_metrics
from domain import semconv
from domain.model import ComponentScope, Identity, MetricKind, MetricPoint, MetricsQuery, TimeRange

pytestmark = pytest.mark.integration

S = 1_000_000_000
MINUTE = 60 * S
START = 1_767_225_600 * S  # a whole minute
NS, PROJECT, COMPONENT, ENV = "acme", "p-1", "c-1", "e-1"


def identity(pod: str, component: str = COMPONENT) -> Identity:
    return Identity(
        namespace=NS,
        project="shop",
        project_uid=PROJECT,
        component="cart",
        component_uid=component,
        environment="prod",
        environment_uid=ENV,
        pod=pod,
    )


def gauge(name: str, ts: int, value: float, pod: str, component: str = COMPONENT) -> MetricPoint:
    return MetricPoint(name, MetricKind.GAUGE, ts, identity(pod, component), value=value)


def delta(name: str, ts: int, value: float, pod: str, **attributes: str) -> MetricPoint:
    point = MetricPoint(name, MetricKind.SUM, ts, identity(pod), attributes, cumulative=False, value=value)
    point.start_ns = ts - MINUTE
    return point


def histogram(ts: int, status: int, buckets: tuple[float, ...], total: float) -> MetricPoint:
    return MetricPoint(
        semconv.HTTP_SERVER_DURATION,
        MetricKind.HISTOGRAM,
        ts,
        identity("pod-a"),
        {semconv.HTTP_STATUS_ATTRIBUTE: str(status)},
        cumulative=False,
        start_ns=ts - MINUTE,
        count=sum(buckets),
        sum=total,
        bounds=(0.1, 0.5),
        bucket_counts=buckets,
    )


@pytest.fixture
async def client(datadog_fake) -> AsyncIterator[DatadogClient]:  # noqa: F811
    config = DatadogConfig(datadog_fake.url, datadog_fake.api_key, datadog_fake.app_key)
    dd = DatadogClient(config)
    yield dd
    await dd.close()


async def ship(fake, points: list[MetricPoint]) -> None:  # noqa: F811
    async with httpx.AsyncClient(base_url=fake.url, headers={"DD-API-KEY": fake.api_key}) as http:
        response = await http.post("/api/v2/series", json={"series": series_of(points)})
    assert response.status_code == 202, response.text


def window(minutes: int = 3) -> TimeRange:
    return TimeRange(START, START + minutes * MINUTE)


async def test_resource_series_sum_pods_and_rate_counters(datadog_fake, client) -> None:  # noqa: F811
    points = []
    for step, (a, b) in enumerate([(0.25, 0.5), (0.5, 1.0), (1.0, 1.5)]):
        mid = START + step * MINUTE - 30 * S  # inside the step that ends at START + step minutes
        points += [gauge("k8s.pod.cpu.usage", mid, a, "pod-a"), gauge("k8s.pod.cpu.usage", mid + S, b, "pod-b")]
        points.append(gauge("k8s.container.cpu.limit", mid, 4.0, "pod-a"))
        points.append(
            delta("k8s.pod.network.io", mid, 600.0 * (step + 1), "pod-a", **{"network.io.direction": "receive"})
        )
        points.append(delta("k8s.pod.network.io", mid, 9999.0, "pod-a", **{"network.io.direction": "transmit"}))
    points.append(gauge("k8s.pod.cpu.usage", START - 30 * S, 100.0, "pod-x", component="other"))  # out of scope
    await ship(datadog_fake, points)

    scope = ComponentScope(NS, PROJECT, COMPONENT, ENV)
    out = await query_metrics(client, MetricsQuery("resource", scope, window(2), MINUTE))
    assert out["cpuUsage"] == [(START, 0.75), (START + MINUTE, 1.5), (START + 2 * MINUTE, 2.5)]
    assert out["cpuLimits"] == [(START, 4.0), (START + MINUTE, 4.0), (START + 2 * MINUTE, 4.0)]
    assert out["networkReceiveBytes"] == [(START, 10.0), (START + MINUTE, 20.0), (START + 2 * MINUTE, 30.0)]
    assert out["memoryUsage"] == []
    assert datadog_fake.stats()["requests"].get("/api/v2/query/timeseries") == 1


async def test_http_series_from_the_duration_histogram(datadog_fake, client) -> None:  # noqa: F811
    mid = START - 30 * S
    await ship(
        datadog_fake,
        [histogram(mid, 200, (60.0, 30.0, 0.0), 12.0), histogram(mid, 500, (0.0, 24.0, 6.0), 18.0)],
    )
    scope = ComponentScope(NS, PROJECT, COMPONENT, ENV)
    out = await query_metrics(client, MetricsQuery("http", scope, window(1), MINUTE))
    assert out["requestCount"] == [(START, 2.0)]
    assert out["successfulRequestCount"] == [(START, 1.5)]
    assert out["unsuccessfulRequestCount"] == [(START, 0.5)]
    assert out["meanLatency"] == [(START, 0.25)]
    assert out["latencyP50"] == [(START, 0.1)]
    assert out["latencyP99"] == [(START, 0.5)]
