"""The demo traffic, end to end through the real OpenTelemetry SDK and its OTLP/HTTP exporters.

A tiny OTLP/HTTP receiver runs in the test (a stdlib HTTP server on a thread) and keeps every export request
it is sent, parsed with the OTLP protobuf classes, so the assertions see exactly what a collector would.
"""

from __future__ import annotations

import contextlib
import gzip
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest, ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from collectors.otlp.mapping import any_value, map_logs
from domain import semconv
from observer import demo
from observer.demo import DEMO_PLATFORM, DemoTraffic

_SIGNALS: dict[str, tuple[type[Message], type[Message]]] = {
    "/v1/traces": (ExportTraceServiceRequest, ExportTraceServiceResponse),
    "/v1/logs": (ExportLogsServiceRequest, ExportLogsServiceResponse),
    "/v1/metrics": (ExportMetricsServiceRequest, ExportMetricsServiceResponse),
}


@dataclass
class Received:
    """Everything the receiver was sent, per signal path."""

    requests: dict[str, list[Any]] = field(default_factory=lambda: {path: [] for path in _SIGNALS})
    lock: threading.Lock = field(default_factory=threading.Lock)

    def items(self, path: str, groups: str, scopes: str, items: str) -> Iterator[tuple[dict[str, Any], Any, Any]]:
        """(resource attributes, scope, item) for every item of every request to `path`."""
        with self.lock:
            requests = list(self.requests[path])
        for request in requests:
            for group in getattr(request, groups):
                resource = _attributes(group.resource)
                for scope in getattr(group, scopes):
                    for item in getattr(scope, items):
                        yield resource, scope.scope, item

    def spans(self) -> list[tuple[dict[str, Any], Any]]:
        return [(res, span) for res, _, span in self.items("/v1/traces", "resource_spans", "scope_spans", "spans")]

    def log_records(self) -> list[tuple[dict[str, Any], Any]]:
        items = self.items("/v1/logs", "resource_logs", "scope_logs", "log_records")
        return [(res, record) for res, _, record in items]

    def metrics(self) -> list[tuple[dict[str, Any], Any]]:
        items = self.items("/v1/metrics", "resource_metrics", "scope_metrics", "metrics")
        return [(res, metric) for res, _, metric in items]


def _handler(received: Received) -> type[BaseHTTPRequestHandler]:
    class OtlpHandler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the stdlib's naming)
            if self.path not in _SIGNALS or self.headers.get("Content-Type") != "application/x-protobuf":
                self.send_error(404 if self.path not in _SIGNALS else 415)
                return
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            request_type, response_type = _SIGNALS[self.path]
            request = request_type()
            request.ParseFromString(body)
            with received.lock:
                received.requests[self.path].append(request)
            payload = response_type().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:  # keep the test output quiet
            pass

    return OtlpHandler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the demo's 24 exporters flush at once on stop; the default backlog of 5 resets them


@contextlib.contextmanager
def otlp_receiver(port: int = 0) -> Iterator[tuple[str, Received]]:
    """An OTLP/HTTP receiver on a loopback port (a free one by default): its endpoint and what it received."""
    received = Received()
    server = _Server(("127.0.0.1", port), _handler(received))
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[str, Received]]:
    with otlp_receiver() as endpoint_and_received:
        yield endpoint_and_received


@pytest.fixture(scope="module")
def live(receiver: tuple[str, Received]) -> Received:
    """Two and a half seconds of live traffic; a high error rate so every code path shows up in so few requests."""
    endpoint, received = receiver
    traffic = DemoTraffic(endpoint, rate=40, export_interval_s=1.0, error_rate=0.3, seed=7)
    sent = traffic.run_for(2.5)
    assert sent > 20
    return received


def _component(resource: dict[str, Any]) -> str:
    return resource["openchoreo.dev/component"]


def _attributes(item: Any) -> dict[str, Any]:
    """The attributes of a span, log record or data point as a dict."""
    return {kv.key: any_value(kv.value) for kv in item.attributes}


# ----------------------------------------------------------------------------------------------- platform


def test_platform_uids_are_stable_and_distinct():
    platform = DEMO_PLATFORM
    uids = [platform["project_uid"], *platform["components"].values(), *platform["environments"].values()]
    assert len(set(uids)) == len(uids)
    assert demo._platform() == DEMO_PLATFORM
    assert {"frontend", "cart", "payments"} <= set(DEMO_PLATFORM["components"])
    assert set(DEMO_PLATFORM["environments"]) == {"development", "production"}


def test_plans_add_up_and_propagate_failures():
    rng = random.Random(1)
    for _ in range(300):
        root = demo.plan_request(rng, error_rate=0.2)
        assert root.component == "frontend"
        call = root
        while call.downstream:
            assert call.status == call.downstream.status  # a downstream failure reaches the user
            call = call.downstream
        assert root.duration_ns > call.duration_ns > 0


# ----------------------------------------------------------------------------------------------- live traffic


def test_every_resource_carries_the_openchoreo_labels(live: Received):
    resources = [resource for resource, _ in live.spans() + live.log_records() + live.metrics()]
    assert resources
    for resource in resources:
        component, environment = resource["openchoreo.dev/component"], resource["openchoreo.dev/environment"]
        assert resource["openchoreo.dev/namespace"] == "demo"
        assert resource["openchoreo.dev/project"] == "shop"
        assert resource["openchoreo.dev/project-uid"] == DEMO_PLATFORM["project_uid"]
        assert resource["openchoreo.dev/component-uid"] == DEMO_PLATFORM["components"][component]
        assert resource["openchoreo.dev/environment-uid"] == DEMO_PLATFORM["environments"][environment]
        assert resource["service.name"] == component
        assert resource["k8s.pod.name"].startswith(f"{component}-")
        assert resource["k8s.namespace.name"].startswith(f"dp-demo-shop-{environment}-")
        assert resource["k8s.container.name"] == "main"


def test_spans_cross_components_with_client_and_server_kinds(live: Received):
    spans = live.spans()
    by_id = {span.span_id: (resource, span) for resource, span in spans}
    kinds = {(_component(resource), span.kind) for resource, span in spans}
    for component in ("frontend", "cart", "payments", "catalog"):
        assert (component, Span.SPAN_KIND_SERVER) in kinds, component
    assert ("frontend", Span.SPAN_KIND_CLIENT) in kinds and ("cart", Span.SPAN_KIND_CLIENT) in kinds

    links = Counter()
    for resource, span in spans:
        if span.kind != Span.SPAN_KIND_SERVER or not span.parent_span_id:
            continue
        parent_resource, parent = by_id[span.parent_span_id]
        assert parent.kind == Span.SPAN_KIND_CLIENT and parent.trace_id == span.trace_id
        assert parent.start_time_unix_nano < span.start_time_unix_nano
        assert span.end_time_unix_nano < parent.end_time_unix_nano
        links[(_component(parent_resource), _component(resource))] += 1
    assert {("frontend", "cart"), ("cart", "payments"), ("frontend", "catalog")} <= set(links)

    roots = [span for resource, span in spans if not span.parent_span_id]
    assert roots and all(span.name in ("GET /checkout", "GET /products", "GET /products/{productId}") for span in roots)


def test_failures_are_errors_up_the_chain(live: Received):
    failed = [(resource, span) for resource, span in live.spans() if span.status.code == span.status.STATUS_CODE_ERROR]
    statuses = {(_component(resource), _attributes(span)[semconv.HTTP_STATUS_ATTRIBUTE]) for resource, span in failed}
    assert {("payments", 502), ("cart", 502), ("frontend", 502)} <= statuses


def test_logs_at_every_level_are_correlated_with_spans(live: Received):
    span_ids = {span.span_id for _, span in live.spans()}
    correlated = Counter()
    for _, record in live.log_records():
        if record.trace_id:
            assert record.span_id in span_ids
            correlated[record.severity_text] += 1
    assert {"DEBUG", "INFO", "WARN", "ERROR"} <= set(correlated)
    bodies = {record.body.string_value for _, record in live.log_records()}
    assert "Starting HTTP server on :8080" in bodies
    assert any(body.startswith("GET /checkout 502 ") for body in bodies)


def test_kubernetes_events_arrive_as_log_records(live: Received):
    records = [(resource, _attributes(record)) for resource, record in live.log_records()]
    events = [(resource, attributes) for resource, attributes in records if "k8s.event.reason" in attributes]
    reasons = {attributes["k8s.event.reason"] for _, attributes in events}
    assert {"Scheduled", "Pulled", "Started"} <= reasons
    for resource, attributes in events:
        assert attributes["k8s.object.kind"] == "Pod"
        assert attributes["k8s.object.name"] == resource["k8s.pod.name"]
        assert attributes["k8s.namespace.name"] == resource["k8s.namespace.name"]
        assert attributes["k8s.event.type"] in ("Normal", "Warning")


def test_the_project_maps_the_demo_into_its_sample_platform(live: Received):
    """The demo's output, read by the OTLP receiver's own mapping, lands in the demo scope with its UIDs."""
    with live.lock:
        requests = list(live.requests["/v1/logs"])
    mapped = [map_logs(request) for request in requests]
    events = [event for each in mapped for event in each.events]
    logs = [record for each in mapped for record in each.logs]
    assert events and logs
    for record in [*events, *logs]:
        assert record.identity.namespace == "demo"
        assert record.identity.component_uid == DEMO_PLATFORM["components"][record.identity.component]


def test_metrics_arrive_under_the_semconv_names(live: Received):
    metrics: dict[str, list[tuple[dict[str, Any], Any]]] = {}
    for resource, metric in live.metrics():
        metrics.setdefault(metric.name, []).append((resource, metric))

    histograms = metrics[semconv.HTTP_SERVER_DURATION]
    assert {_component(resource) for resource, _ in histograms} >= {"frontend", "cart", "payments"}
    points = [point for _, metric in histograms for point in metric.histogram.data_points]
    assert all(metric.histogram.aggregation_temporality == 2 for _, metric in histograms)  # cumulative
    assert tuple(points[0].explicit_bounds) == demo.LATENCY_BUCKETS_S
    assert {_attributes(point)[semconv.HTTP_STATUS_ATTRIBUTE] for point in points} >= {200, 502}

    for name in (*semconv.CPU_USAGE[:1], *semconv.MEMORY_USAGE[:1], *semconv.CPU_REQUEST, *semconv.MEMORY_LIMIT):
        values = [point.as_double for _, metric in metrics[name] for point in metric.gauge.data_points]
        assert values, name
    cpu = [point.as_double for _, metric in metrics[semconv.CPU_USAGE[0]] for point in metric.gauge.data_points]
    memory = [point.as_double for _, metric in metrics[semconv.MEMORY_USAGE[0]] for point in metric.gauge.data_points]
    assert all(0.0 < value <= 0.6 for value in cpu)
    assert all(80 * demo.MIB <= value <= 300 * demo.MIB for value in memory)

    for name, attribute, directions in (
        (semconv.NETWORK_IO[0], semconv.NETWORK_DIRECTION_ATTRIBUTE, {"receive", "transmit"}),
        (semconv.DISK_IO[0], semconv.DISK_DIRECTION_ATTRIBUTE, {"read", "write"}),
    ):
        sums = [metric.sum for _, metric in metrics[name]]
        assert all(each.is_monotonic for each in sums)
        seen = {_attributes(point)[attribute] for each in sums for point in each.data_points}
        assert seen == directions
        assert max(point.as_int or point.as_double for each in sums for point in each.data_points) > 0


# ----------------------------------------------------------------------------------------------- backfill


def test_backfill_spreads_history_over_the_window(receiver: tuple[str, Received]):
    endpoint, received = receiver  # shared with the live run: this run's records are told apart by pod name
    traffic = DemoTraffic(endpoint, seed=11)
    pods = {workload.pod for workload in traffic.workloads.values()}
    try:
        sent = traffic.backfill(minutes=10, rate=0.2)
    finally:
        traffic.stop()
    assert sent > 50
    spans = [span for resource, span in received.spans() if resource["k8s.pod.name"] in pods]
    starts = sorted(span.start_time_unix_nano for span in spans)
    assert starts[-1] - starts[0] > 8 * 60 * 10**9  # history, not a burst
    # Backfilled requests feed each pod's metric history: points over the window, not stamped "now".
    mine = [(resource, metric) for resource, metric in received.metrics() if resource["k8s.pod.name"] in pods]
    names = {metric.name for _, metric in mine}
    assert {semconv.HTTP_SERVER_DURATION, semconv.CPU_USAGE[0], semconv.NETWORK_IO[0]} <= names
    stamps = sorted(
        point.time_unix_nano
        for _, metric in mine
        if metric.name == semconv.CPU_USAGE[0]
        for point in metric.gauge.data_points
    )
    assert stamps[-1] - stamps[0] > 8 * 60 * 10**9
    counts = [
        point.count
        for _, metric in mine
        if metric.name == semconv.HTTP_SERVER_DURATION
        for point in metric.histogram.data_points
    ]
    assert max(counts) > 0
    # The running totals of one series only ever grow (cumulative from the history's start, in time order).
    network = [
        (point.time_unix_nano, point.as_int)
        for resource, metric in mine
        if metric.name == semconv.NETWORK_IO[0] and resource["k8s.pod.name"] == next(iter(sorted(pods)))
        for point in metric.sum.data_points
        if point.attributes[0].value.string_value == "receive"
    ]
    assert [value for _, value in sorted(network)] == sorted(value for _, value in network)


def test_backfill_waits_for_an_endpoint_that_is_not_up_yet():
    """The all-in-one asks for history before its OTLP receiver listens; the history must still arrive."""
    with socket.socket() as probe:  # a free port, closed again: nothing listens there yet
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    traffic = DemoTraffic(f"http://127.0.0.1:{port}", seed=3)
    try:
        assert traffic.backfill(minutes=2, rate=0.5) == 0  # deferred, not sent into the void
        traffic.start()
        with otlp_receiver(port) as (_, received):
            deadline = time.monotonic() + 5
            while traffic.requests_sent < 30 and time.monotonic() < deadline:
                time.sleep(0.05)
            traffic.stop()
            oldest = min(span.start_time_unix_nano for _, span in received.spans())
    finally:
        traffic.stop()
    assert time.time_ns() - oldest > 60 * 10**9
