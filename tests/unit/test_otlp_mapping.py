"""OTLP requests to domain records: identity, logs, Kubernetes events, spans, metrics, and OTLP/JSON ids."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord as OtlpLog
from opentelemetry.proto.logs.v1.logs_pb2 import ResourceLogs, ScopeLogs
from opentelemetry.proto.metrics.v1 import metrics_pb2 as pm
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from collectors.otlp.decode import decode_request
from collectors.otlp.mapping import any_value, map_logs, map_metrics, map_traces
from devservers.sample import BASE_NS, CART_PROD_LABELS, COMPONENTS, ENVIRONMENTS, PROJECT_UID
from domain.identity import identity_from_attributes
from domain.model import EventRecord, Identity, MetricKind

LABELS = CART_PROD_LABELS
CART = Identity(
    namespace="acme",
    project="shop",
    project_uid=PROJECT_UID,
    component="cart",
    component_uid=COMPONENTS["cart"],
    environment="prod",
    environment_uid=ENVIRONMENTS["prod"],
)
TRACE = bytes(range(1, 17))
SPAN = bytes(range(1, 9))


# ----------------------------------------------------------------------------------------------- builders


def value(python: Any) -> AnyValue:
    if isinstance(python, bool):
        return AnyValue(bool_value=python)
    if isinstance(python, int):
        return AnyValue(int_value=python)
    if isinstance(python, float):
        return AnyValue(double_value=python)
    if isinstance(python, bytes):
        return AnyValue(bytes_value=python)
    if isinstance(python, list):
        return AnyValue(array_value=ArrayValue(values=[value(item) for item in python]))
    if isinstance(python, dict):
        return AnyValue(kvlist_value=KeyValueList(values=kvs(python)))
    return AnyValue(string_value=python)


def kvs(mapping: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=key, value=value(item)) for key, item in mapping.items()]


def logs_request(*records: OtlpLog, resource: dict[str, Any] | None = None) -> ExportLogsServiceRequest:
    return ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=Resource(attributes=kvs(LABELS if resource is None else resource)),
                scope_logs=[ScopeLogs(log_records=list(records))],
            )
        ]
    )


def spans_request(*spans: Span, resource: dict[str, Any] | None = None) -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=kvs(LABELS if resource is None else resource)),
                scope_spans=[ScopeSpans(spans=list(spans))],
            )
        ]
    )


def metrics_request(*metrics: pm.Metric) -> ExportMetricsServiceRequest:
    return ExportMetricsServiceRequest(
        resource_metrics=[
            pm.ResourceMetrics(
                resource=Resource(attributes=kvs(LABELS)), scope_metrics=[pm.ScopeMetrics(metrics=list(metrics))]
            )
        ]
    )


def span(**fields: Any) -> Span:
    base: dict[str, Any] = {"trace_id": TRACE, "span_id": SPAN, "name": "GET /cart", "start_time_unix_nano": BASE_NS}
    base["end_time_unix_nano"] = BASE_NS + 5_000_000
    return Span(**{**base, **fields})


CUMULATIVE = pm.AGGREGATION_TEMPORALITY_CUMULATIVE
DELTA = pm.AGGREGATION_TEMPORALITY_DELTA


# ----------------------------------------------------------------------------------------------- identity


def test_identity_from_openchoreo_labels():
    where = {"k8s.namespace.name": "dp-acme-shop-prod", "k8s.pod.name": "cart-7d9f", "k8s.container.name": "main"}
    attrs = {**LABELS, **where}
    assert identity_from_attributes(attrs) == replace(
        CART, pod="cart-7d9f", pod_namespace="dp-acme-shop-prod", container="main"
    )


def test_semantic_conventions_fill_in_names_the_labels_leave_out():
    # Next to an OpenChoreo label the conventions give names only: UIDs come from the labels or not at all.
    identity = identity_from_attributes(
        {
            "openchoreo.dev/namespace": "acme",
            "service.name": "cart",
            "service.namespace": "shop",
            "deployment.environment.name": "prod",
        }
    )
    assert (identity.component, identity.project, identity.environment) == ("cart", "shop", "prod")
    assert identity.component_uid == identity.project_uid == identity.environment_uid == ""
    assert identity_from_attributes({"deployment.environment": "staging"}).environment == "staging"
    both = {"deployment.environment.name": "new", "deployment.environment": "old"}
    assert identity_from_attributes(both).environment == "new"


def test_labels_win_over_semantic_conventions():
    attrs = {**LABELS, "service.name": "cart-svc", "service.namespace": "other", "deployment.environment.name": "p"}
    identity = identity_from_attributes(attrs)
    assert (identity.component, identity.project, identity.environment) == ("cart", "shop", "prod")


def test_the_sdk_placeholder_service_name_is_no_component():
    assert identity_from_attributes({"service.name": "unknown_service:python"}).component == ""
    assert identity_from_attributes({"service.name": "unknown_service"}).component == ""


def test_a_kubernetes_namespace_is_not_an_openchoreo_namespace():
    identity = identity_from_attributes({"k8s.namespace.name": "dp-acme-shop-prod-1a2b"})
    assert identity.namespace == ""
    assert identity.pod_namespace == "dp-acme-shop-prod-1a2b"


def test_workflow_pods_take_their_namespace_and_run_from_argo():
    identity = identity_from_attributes(
        {
            "k8s.namespace.name": "workflows-acme",
            "workflows.argoproj.io/workflow": "build-cart-42",
            "workflows.argoproj.io/node-name": "build-cart-42.push-step",
        }
    )
    assert (identity.namespace, identity.workflow_run) == ("acme", "build-cart-42")
    assert identity.task == "build-cart-42.push-step"
    labelled = identity_from_attributes(
        {
            "openchoreo.dev/namespace": "acme",
            "openchoreo.dev/workflow-run": "run-1",
            "workflows.argoproj.io/workflow": "argo-name",
            "k8s.namespace.name": "workflows-other",
        }
    )
    assert (labelled.namespace, labelled.workflow_run) == ("acme", "run-1")


def test_identity_values_that_are_not_strings_become_strings():
    assert identity_from_attributes({"openchoreo.dev/namespace": 42}).namespace == "42"


# ----------------------------------------------------------------------------------------------- values


def test_any_value_to_python():
    assert any_value(value("s")) == "s"
    assert any_value(value(True)) is True
    assert any_value(value(7)) == 7
    assert any_value(value(1.5)) == 1.5
    assert any_value(value(b"\x01\xff")) == "01ff"
    assert any_value(value([1, "a", [False]])) == [1, "a", [False]]
    assert any_value(value({"a": {"b": 2}})) == {"a": {"b": 2}}
    assert any_value(AnyValue()) is None


# ----------------------------------------------------------------------------------------------- logs


def test_log_record_fields():
    record = OtlpLog(
        time_unix_nano=BASE_NS,
        body=value("payment accepted"),
        severity_text="warning",
        trace_id=TRACE,
        span_id=SPAN,
    )
    (log,) = map_logs(logs_request(record)).logs
    assert log.ts_ns == BASE_NS
    assert log.body == "payment accepted"
    assert log.level == "WARN"
    assert log.trace_id == TRACE.hex() and log.span_id == SPAN.hex()
    assert log.stream == "otlp"
    assert log.identity == CART


def test_structured_body_is_stored_as_json():
    (log,) = map_logs(logs_request(OtlpLog(time_unix_nano=BASE_NS, body=value({"msg": "hi", "n": 1})))).logs
    assert json.loads(log.body) == {"msg": "hi", "n": 1}
    (empty,) = map_logs(logs_request(OtlpLog(time_unix_nano=BASE_NS))).logs
    assert empty.body == ""


def test_log_time_falls_back_to_observed_then_now():
    (observed,) = map_logs(logs_request(OtlpLog(observed_time_unix_nano=BASE_NS + 1))).logs
    assert observed.ts_ns == BASE_NS + 1
    (now,) = map_logs(logs_request(OtlpLog(body=value("x")))).logs
    assert now.ts_ns > BASE_NS  # BASE_NS is in 2026; the clock is later


@pytest.mark.parametrize(
    ("severity_text", "severity_number", "body", "level"),
    [
        ("ERROR", 9, "all fine", "ERROR"),  # text wins over number and body
        ("Information", 0, "", "INFO"),
        ("", 17, "INFO all fine", "ERROR"),  # number wins over body
        ("", 21, "", "FATAL"),
        ("", 5, "", "DEBUG"),
        ("", 0, '{"level":"warn","msg":"slow"}', "WARN"),  # detected from the body
        ("", 0, "E0101 10:00:00.000 klog says", "ERROR"),
        ("", 0, "nothing here", "INFO"),
    ],
)
def test_log_level(severity_text, severity_number, body, level):
    record = OtlpLog(
        time_unix_nano=BASE_NS, severity_text=severity_text, severity_number=severity_number, body=value(body)
    )
    (log,) = map_logs(logs_request(record)).logs
    assert log.level == level


@pytest.mark.parametrize(("trace_id", "span_id"), [(b"", b""), (bytes(16), bytes(8)), (b"\x01" * 5, b"\x01" * 3)])
def test_absent_zero_or_malformed_log_ids_are_empty(trace_id, span_id):
    (log,) = map_logs(logs_request(OtlpLog(time_unix_nano=BASE_NS, trace_id=trace_id, span_id=span_id))).logs
    assert (log.trace_id, log.span_id) == ("", "")


# ----------------------------------------------------------------------------------------------- events


def event_record(**attributes: Any) -> OtlpLog:
    return OtlpLog(
        time_unix_nano=BASE_NS,
        severity_text="Warning",
        body=value("Back-off restarting failed container"),
        attributes=kvs({"k8s.event.reason": "BackOff", "k8s.namespace.name": "dp-acme-shop-prod", **attributes}),
    )


def test_log_records_with_an_event_reason_are_events():
    resource = {"k8s.object.kind": "Pod", "k8s.object.name": "cart-7d9f"}
    resource |= {f"k8s.object.label.{key}": item for key, item in LABELS.items()}
    mapped = map_logs(logs_request(event_record(), OtlpLog(body=value("plain")), resource=resource))
    assert len(mapped.logs) == 1
    (event,) = mapped.events
    assert isinstance(event, EventRecord)
    assert event.ts_ns == BASE_NS
    assert event.message == "Back-off restarting failed container"
    assert (event.type, event.reason) == ("Warning", "BackOff")
    assert (event.object_kind, event.object_name, event.object_namespace) == ("Pod", "cart-7d9f", "dp-acme-shop-prod")
    assert (event.identity.namespace, event.identity.component_uid, event.identity.environment_uid) == (
        "acme",
        COMPONENTS["cart"],
        ENVIRONMENTS["prod"],
    )


def test_event_identity_and_object_from_record_attributes():
    labels = {f"k8s.object.label.{key}": item for key, item in LABELS.items()}
    about = {"k8s.event.type": "Normal", "k8s.object.kind": "Deployment", "k8s.object.name": "cart"}
    record = event_record(**labels, **about)
    # The resource is the events collector's own; the object's labels override it.
    (event,) = map_logs(logs_request(record, resource={"openchoreo.dev/component": "collector"})).events
    assert event.type == "Normal"
    assert (event.object_kind, event.object_name) == ("Deployment", "cart")
    assert event.identity.component == "cart"
    assert event.identity.project_uid == PROJECT_UID


def test_workflow_events_belong_to_the_run():
    record = event_record(
        **{"k8s.namespace.name": "workflows-acme", "k8s.object.label.workflows.argoproj.io/workflow": "build-42"}
    )
    (event,) = map_logs(logs_request(record, resource={})).events
    assert (event.identity.namespace, event.identity.workflow_run) == ("acme", "build-42")


# ----------------------------------------------------------------------------------------------- spans


def test_span_fields():
    child = span(
        parent_span_id=bytes(range(11, 19)),
        kind=Span.SPAN_KIND_CLIENT,
        status=Status(code=Status.STATUS_CODE_ERROR, message="boom"),
        attributes=kvs({"http.response.status_code": 503, "retry": True, "ratio": 0.5, "tags": ["a"], "raw": b"\x0a"}),
    )
    root = span(span_id=bytes(range(11, 19)), kind=Span.SPAN_KIND_SERVER)
    mapped = map_traces(spans_request(child, root, resource={**LABELS, "service.name": "cart"}))
    assert mapped.rejected == 0
    first, second = mapped.spans
    assert first.trace_id == TRACE.hex() and len(first.trace_id) == 32
    assert first.span_id == SPAN.hex()
    assert first.parent_span_id == bytes(range(11, 19)).hex()
    assert second.parent_span_id == ""
    assert (first.kind, second.kind) == ("Client", "Server")
    assert (first.status_code, first.status_message, second.status_code) == ("error", "boom", "unset")
    assert first.attributes == {
        "http.response.status_code": 503,
        "retry": True,
        "ratio": 0.5,
        "tags": ["a"],
        "raw": "0a",
    }
    assert first.resource == {**LABELS, "service.name": "cart"}
    assert (first.name, first.start_ns, first.end_ns) == ("GET /cart", BASE_NS, BASE_NS + 5_000_000)
    assert first.identity == CART


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        (Span.SPAN_KIND_UNSPECIFIED, "Unspecified"),
        (Span.SPAN_KIND_INTERNAL, "Internal"),
        (Span.SPAN_KIND_SERVER, "Server"),
        (Span.SPAN_KIND_CLIENT, "Client"),
        (Span.SPAN_KIND_PRODUCER, "Producer"),
        (Span.SPAN_KIND_CONSUMER, "Consumer"),
        (99, "Unspecified"),
    ],
)
def test_span_kinds(kind, name):
    (record,) = map_traces(spans_request(span(kind=kind))).spans
    assert record.kind == name


@pytest.mark.parametrize(
    ("code", "status"),
    [(Status.STATUS_CODE_UNSET, "unset"), (Status.STATUS_CODE_OK, "ok"), (Status.STATUS_CODE_ERROR, "error")],
)
def test_span_statuses(code, status):
    (record,) = map_traces(spans_request(span(status=Status(code=code)))).spans
    assert record.status_code == status


def test_spans_without_valid_ids_are_rejected():
    mapped = map_traces(spans_request(span(trace_id=bytes(16)), span(span_id=b"\x01"), span()))
    assert len(mapped.spans) == 1
    assert mapped.rejected == 2
    assert "trace_id" in mapped.error_message and mapped.error_message.startswith("2 ")


# ----------------------------------------------------------------------------------------------- metrics


def number(value_: float | int, **fields: Any) -> pm.NumberDataPoint:
    base: dict[str, Any] = {"time_unix_nano": BASE_NS, "start_time_unix_nano": BASE_NS - 60 * 10**9}
    if isinstance(value_, int):
        base["as_int"] = value_
    else:
        base["as_double"] = value_
    return pm.NumberDataPoint(**{**base, **fields})


def test_gauge():
    metric = pm.Metric(
        name="k8s.pod.cpu.usage", gauge=pm.Gauge(data_points=[number(0.25, attributes=kvs({"cpu": 0, "mode": "user"}))])
    )
    (point,) = map_metrics(metrics_request(metric)).metrics
    assert (point.name, point.kind, point.value, point.ts_ns) == ("k8s.pod.cpu.usage", MetricKind.GAUGE, 0.25, BASE_NS)
    assert point.attributes == {"cpu": "0", "mode": "user"}
    assert point.identity == CART


@pytest.mark.parametrize(("temporality", "cumulative"), [(CUMULATIVE, True), (DELTA, False)])
def test_monotonic_sum(temporality, cumulative):
    metric = pm.Metric(
        name="k8s.pod.network.io",
        sum=pm.Sum(data_points=[number(1024)], aggregation_temporality=temporality, is_monotonic=True),
    )
    (point,) = map_metrics(metrics_request(metric)).metrics
    assert (point.kind, point.cumulative, point.value) == (MetricKind.SUM, cumulative, 1024.0)
    assert point.start_ns == BASE_NS - 60 * 10**9


def test_non_monotonic_sum_is_a_gauge():
    metric = pm.Metric(name="queue.depth", sum=pm.Sum(data_points=[number(-3)], aggregation_temporality=DELTA))
    (point,) = map_metrics(metrics_request(metric)).metrics
    assert (point.kind, point.value) == (MetricKind.GAUGE, -3.0)


def histogram_point(**fields: Any) -> pm.HistogramDataPoint:
    base: dict[str, Any] = {
        "time_unix_nano": BASE_NS,
        "start_time_unix_nano": BASE_NS - 10**9,
        "count": 6,
        "sum": 1.75,
        "explicit_bounds": [0.1, 0.5, 1.0],
        "bucket_counts": [1, 2, 2, 1],
        "attributes": kvs({"http.response.status_code": 200}),
    }
    return pm.HistogramDataPoint(**{**base, **fields})


@pytest.mark.parametrize(("temporality", "cumulative"), [(CUMULATIVE, True), (DELTA, False)])
def test_histogram(temporality, cumulative):
    metric = pm.Metric(
        name="http.server.request.duration",
        histogram=pm.Histogram(data_points=[histogram_point()], aggregation_temporality=temporality),
    )
    (point,) = map_metrics(metrics_request(metric)).metrics
    assert (point.kind, point.cumulative) == (MetricKind.HISTOGRAM, cumulative)
    assert (point.count, point.sum, point.start_ns) == (6.0, 1.75, BASE_NS - 10**9)
    assert point.bounds == (0.1, 0.5, 1.0)
    assert point.bucket_counts == (1.0, 2.0, 2.0, 1.0)
    assert point.attributes == {"http.response.status_code": "200"}


def test_histogram_without_buckets_is_one_overflow_bucket():
    point_ = histogram_point(explicit_bounds=[], bucket_counts=[])
    point_.ClearField("sum")
    metric = pm.Metric(name="h", histogram=pm.Histogram(data_points=[point_], aggregation_temporality=DELTA))
    (point,) = map_metrics(metrics_request(metric)).metrics
    assert (point.bounds, point.bucket_counts, point.sum) == ((), (6.0,), 0.0)


def test_invalid_points_are_rejected_and_counted():
    metrics = [
        pm.Metric(
            name="e",
            exponential_histogram=pm.ExponentialHistogram(data_points=[pm.ExponentialHistogramDataPoint()] * 2),
        ),
        pm.Metric(name="s", summary=pm.Summary(data_points=[pm.SummaryDataPoint()] * 3)),
        pm.Metric(name="u", sum=pm.Sum(data_points=[number(1)], is_monotonic=True)),  # temporality unspecified
        pm.Metric(
            name="h",
            histogram=pm.Histogram(
                data_points=[histogram_point(bucket_counts=[1, 2]), histogram_point(explicit_bounds=[1.0, 0.5, 2.0])],
                aggregation_temporality=CUMULATIVE,
            ),
        ),
        pm.Metric(name="g", gauge=pm.Gauge(data_points=[pm.NumberDataPoint(time_unix_nano=BASE_NS), number(1.0)])),
    ]
    mapped = map_metrics(metrics_request(*metrics))
    assert [point.name for point in mapped.metrics] == ["g"]
    assert mapped.rejected == 2 + 3 + 1 + 2 + 1
    for words in ("exponential", "summary", "temporality", "bucket_counts", "increase", "without a value"):
        assert words in mapped.error_message


def test_points_without_a_recorded_value_are_skipped_not_rejected():
    stale = number(1.0, flags=pm.DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK)
    mapped = map_metrics(
        metrics_request(
            pm.Metric(name="g", gauge=pm.Gauge(data_points=[stale])),
            pm.Metric(
                name="h",
                histogram=pm.Histogram(
                    data_points=[histogram_point(flags=pm.DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK)],
                    aggregation_temporality=CUMULATIVE,
                ),
            ),
        )
    )
    assert (mapped.metrics, mapped.rejected) == ([], 0)


def test_point_time_falls_back_to_now():
    metric = pm.Metric(name="g", gauge=pm.Gauge(data_points=[pm.NumberDataPoint(as_double=1.0)]))
    (point,) = map_metrics(metrics_request(metric)).metrics
    assert point.ts_ns > BASE_NS


# ----------------------------------------------------------------------------------------------- OTLP/JSON ids


@given(trace_id=st.binary(min_size=16, max_size=16), span_id=st.binary(min_size=8, max_size=8))
def test_json_hex_ids_arrive_as_the_same_hex(trace_id: bytes, span_id: bytes):
    document = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "traceId", "value": {"stringValue": "not-an-id"}}]},
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": trace_id.hex().upper(),
                                "spanId": span_id.hex(),
                                "parentSpanId": "",
                                "name": "s",
                                "kind": "SPAN_KIND_SERVER",
                                "startTimeUnixNano": str(BASE_NS),
                                "endTimeUnixNano": BASE_NS + 1,
                                "status": {"code": 2},
                                "someFutureField": {"x": 1},
                            }
                        ]
                    }
                ],
            }
        ]
    }
    request = decode_request("traces", json.dumps(document).encode(), "json")
    mapped = map_traces(request)
    if not any(trace_id) or not any(span_id):
        assert mapped.rejected == 1
        return
    (record,) = mapped.spans
    assert (record.trace_id, record.span_id, record.parent_span_id) == (trace_id.hex(), span_id.hex(), "")
    assert (record.kind, record.status_code, record.end_ns) == ("Server", "error", BASE_NS + 1)
    assert record.resource == {"traceId": "not-an-id"}
