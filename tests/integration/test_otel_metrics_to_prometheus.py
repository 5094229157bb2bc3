"""OpenTelemetry SDK -> our OTLP receiver -> remote write -> a real Prometheus -> the metrics query: the
latency percentiles and mean that come back are those of the histogram the application recorded."""

from __future__ import annotations

import math
import time

import pytest
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource

from adapters.prometheus.backend import PrometheusBackend
from adapters.prometheus.client import PrometheusConfig
from adapters.prometheus.otel import OtelScheme
from adapters.prometheus.remote_write import RemoteWriter
from collectors.otlp.receiver import build_otlp_app
from devservers.local import serving
from devservers.sample import CART_PROD_LABELS, COMPONENTS, ENVIRONMENTS, PROJECT_UID
from domain import semconv
from domain.model import ComponentScope, MetricsQuery, TimeRange

BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
#: 100 requests: 40 at 8 ms, 40 at 40 ms, 20 at 200 ms. Each quantile's rank falls inside a bucket (never on
#: an edge, where float rounding could tip it into the next bucket), so histogram_quantile interpolates:
#: p50 = 0.025 + 0.025 * 10/40, p90 = 0.1 + 0.15 * 10/20, p99 = 0.1 + 0.15 * 19/20.
SHAPE = [(0.008, 40), (0.04, 40), (0.2, 20)]
MEAN = sum(seconds * n for seconds, n in SHAPE) / 100


def record_twice_and_export(otlp_url: str, namespace: str) -> int:
    """The same shape recorded in two exports, so every bucket's first sample is half its last: Prometheus
    extrapolates each bucket series by the same factor and the quantiles keep their exact values."""
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=f"{otlp_url}/v1/metrics"), export_interval_millis=3_600_000
    )
    view = View(instrument_name=semconv.HTTP_SERVER_DURATION, aggregation=ExplicitBucketHistogramAggregation(BOUNDS))
    resource = Resource.create({**CART_PROD_LABELS, "openchoreo.dev/namespace": namespace, "k8s.pod.name": "cart-0"})
    provider = MeterProvider(resource=resource, metric_readers=[reader], views=[view])
    histogram = provider.get_meter("test").create_histogram(semconv.HTTP_SERVER_DURATION, unit="s")
    for _ in range(2):
        for seconds, count in SHAPE:
            for _ in range(count):
                histogram.record(seconds, {semconv.HTTP_STATUS_ATTRIBUTE: 200})
        assert provider.force_flush(10_000)
    exported = time.time_ns()
    provider.shutdown()
    return exported


async def test_percentiles_are_those_of_the_recorded_histogram(prometheus_server):
    namespace = f"otel{time.time_ns() % 10**9}"
    sink = PrometheusBackend(PrometheusConfig(prometheus_server.url), OtelScheme(), RemoteWriter(prometheus_server.url))
    with serving(build_otlp_app(sink)) as otlp_url:
        exported = record_twice_and_export(otlp_url, namespace)

    at = (exported // 10**9 + 1) * 10**9  # the next whole second: both exports lie in (at - 1m, at]
    reader = PrometheusBackend(PrometheusConfig(prometheus_server.url), OtelScheme())
    scope = ComponentScope(namespace, PROJECT_UID, COMPONENTS["cart"], ENVIRONMENTS["prod"])
    series = await reader.query_metrics(MetricsQuery("http", scope, TimeRange(at, at), 60 * 10**9))
    await reader.close()

    value = {key: points[0][1] for key, points in series.items() if points}
    assert value["latencyP50"] == pytest.approx(0.03125)
    assert value["latencyP90"] == pytest.approx(0.175)
    assert value["latencyP99"] == pytest.approx(0.2425)
    assert value["meanLatency"] == pytest.approx(MEAN)
    assert value["requestCount"] > 0 and math.isclose(value["requestCount"], value["successfulRequestCount"])
    assert series["unsuccessfulRequestCount"] == []  # no 4xx/5xx series exists: the key answers empty
