"""Domain records back into OTLP export requests: the inverse of mapping.py, for forwarding (a data plane's
collector shipping to the observability plane, collectors/exporters/otlp.py).

The rule is a lossless round trip through our own receiver: `map_*(encode(records))` gives records equal to
the ones encoded, field for field, so a record forwarded by one collector to another (or to `observer up`) is
stored as if it had arrived there directly. How each field travels:

- identity: resource attributes, OpenChoreo's label keys and `k8s.*` (`domain.identity_attributes`);
- logs: `time_unix_nano`, the body as a string, the level as `severity_text` (with the matching
  `severity_number` for other receivers), trace and span ids as bytes, the stream as `log.iostream`;
- events: log records with `k8s.event.reason`, `k8s.event.type` (and `severity_text`), `k8s.object.kind`,
  `k8s.object.name` and the object's namespace as `k8s.namespace.name`, the way the OpenTelemetry `k8sobjects`
  receiver and its enrichment describe an event. When the record's own pod namespace differs from the object's,
  it travels as `k8s.object.label.k8s.namespace.name`, which the receiver lets override;
- spans: as they were received, their `resource` as the resource (with the identity's attributes over it when
  the resource alone would not give the same identity);
- audit records: log records of their own requests (`OtlpRequest.audit`, which the exporter sends with the
  internal token), the record's JSON document as the body, marked with `openchoreo.audit` (mapping.py
  AUDIT_MARKER), under a resource saying where the collector read them;
- metrics: gauges as gauges, sums as monotonic sums and histograms as explicit-bucket histograms, with their
  temporality (cumulative or delta), start time and attributes.

What cannot round-trip is what the receiver never produces: a level outside DEBUG/INFO/WARN/ERROR/FATAL/SEVERE,
an all-zero trace id, a gauge flagged as a delta, a time of 0 (read back as "now"), non-integral histogram
counts (OTLP counts are integers).

Requests are cut to at most about `max_request_bytes` (serialized, before compression), always at the same
places for the same records, so a batch retried after a restart is sent as the same requests (and a receiver
that deduplicates per request sees the same ones). A request that is still refused as too large is split in
halves (`OtlpRequest.halves`).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord as OtlpLogRecord
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AggregationTemporality,
    HistogramDataPoint,
    NumberDataPoint,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from collectors.otlp.decode import Signal
from collectors.otlp.mapping import (
    AUDIT_MARKER,
    EVENT_REASON,
    EVENT_TYPE,
    LOG_IOSTREAM,
    OBJECT_KIND,
    OBJECT_LABEL_PREFIX,
    OBJECT_NAME,
)
from domain.audit import AuditRecord, Collected, audit_document
from domain.identity import K8S_CONTAINER, K8S_NAMESPACE, K8S_POD, identity_attributes, identity_from_attributes
from domain.model import EventRecord, Identity, LogRecord, MetricKind, MetricPoint, SpanKind, SpanRecord

#: The instrumentation scope forwarded records are put under: who re-encoded them.
SCOPE_NAME = "openchoreo-observer/collect"
DEFAULT_MAX_REQUEST_BYTES = 4 * 1024 * 1024

#: A level's OTLP SeverityNumber (the first of its range), for receivers that read the number, not the text.
_SEVERITY_NUMBERS = {"DEBUG": 5, "INFO": 9, "WARN": 13, "ERROR": 17, "SEVERE": 17, "FATAL": 21}
_SPAN_KINDS = {
    SpanKind.UNSPECIFIED.value: Span.SPAN_KIND_UNSPECIFIED,
    SpanKind.INTERNAL.value: Span.SPAN_KIND_INTERNAL,
    SpanKind.SERVER.value: Span.SPAN_KIND_SERVER,
    SpanKind.CLIENT.value: Span.SPAN_KIND_CLIENT,
    SpanKind.PRODUCER.value: Span.SPAN_KIND_PRODUCER,
    SpanKind.CONSUMER.value: Span.SPAN_KIND_CONSUMER,
}
_STATUS_CODES = {"unset": Status.STATUS_CODE_UNSET, "ok": Status.STATUS_CODE_OK, "error": Status.STATUS_CODE_ERROR}
_INT64 = (-(2**63), 2**63 - 1)
#: Bytes a request spends around each item and each group (tags and lengths), for the size estimate.
_ITEM_OVERHEAD = 6
_GROUP_OVERHEAD = 16


# ----------------------------------------------------------------------------------------------- values


def any_value_of(value: Any) -> AnyValue:
    """A plain Python value as an OTLP AnyValue, the inverse of `mapping.any_value`: str, bool, int (int64;
    larger ones as their decimal string), float, list/tuple, dict; bytes as bytes; None as an unset value."""
    if value is None:
        return AnyValue()
    if isinstance(value, bool):  # before int: a bool is an int
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        if _INT64[0] <= value <= _INT64[1]:
            return AnyValue(int_value=value)
        return AnyValue(string_value=str(value))
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, bytes | bytearray):
        return AnyValue(bytes_value=bytes(value))
    if isinstance(value, list | tuple):
        return AnyValue(array_value=ArrayValue(values=[any_value_of(item) for item in value]))
    if isinstance(value, Mapping):
        return AnyValue(kvlist_value=KeyValueList(values=key_values(value)))
    return AnyValue(string_value=str(value))


def key_values(mapping: Mapping[Any, Any]) -> list[KeyValue]:
    """A dict as OTLP key/value pairs, in its own order."""
    return [KeyValue(key=str(key), value=any_value_of(value)) for key, value in mapping.items()]


def _id_bytes(hex_id: str, size: int) -> bytes:
    """A trace or span id as the bytes OTLP carries; b"" (absent) unless it is `size` bytes of hex."""
    if len(hex_id) != 2 * size:
        return b""
    try:
        return bytes.fromhex(hex_id)
    except ValueError:
        return b""


# ----------------------------------------------------------------------------------------------- requests


@dataclass(frozen=True, slots=True)
class _Item:
    """One record of a request: its OTLP message, the resource it sits under and, for metric points, the
    metric it belongs to."""

    resource: Hashable
    metric: _MetricKey | None  # None for every signal but metrics
    message: Message
    size: int


@dataclass(frozen=True, slots=True)
class _MetricKey:
    name: str
    unit: str
    kind: MetricKind
    cumulative: bool


@dataclass(frozen=True, slots=True)
class OtlpRequest:
    """Records of one signal to be sent as one export request, built on demand (`message`). `audit`: a logs
    request of audit records only, which must travel with the internal token."""

    signal: Signal
    items: tuple[_Item, ...]
    resources: Mapping[Hashable, Resource]
    audit: bool = False

    @property
    def records(self) -> int:
        return len(self.items)

    def halves(self) -> tuple[OtlpRequest, OtlpRequest]:
        """The request as two, for a receiver that refused it as too large. Needs two records or more."""
        middle = len(self.items) // 2
        return (
            OtlpRequest(self.signal, self.items[:middle], self.resources, self.audit),
            OtlpRequest(self.signal, self.items[middle:], self.resources, self.audit),
        )

    def message(self) -> Message:
        """The Export{Logs,Trace,Metrics}ServiceRequest: one resource entry per resource, in the order they
        first appear, holding its records in their order."""
        request_type, groups_field, scopes_field, items_field = _LAYOUTS[self.signal]
        request = request_type()
        scopes: dict[Hashable, Any] = {}  # resource -> the repeated field its items (or Metrics) go into

        def items_of(resource: Hashable) -> Any:
            found = scopes.get(resource)
            if found is None:
                group = getattr(request, groups_field).add()
                group.resource.CopyFrom(self.resources[resource])
                scope = getattr(group, scopes_field).add()
                scope.scope.name = SCOPE_NAME
                found = scopes[resource] = getattr(scope, items_field)
            return found

        if self.signal != "metrics":
            for item in self.items:
                items_of(item.resource).append(item.message)
            return request
        points: dict[tuple[Hashable, _MetricKey], Any] = {}
        for item in self.items:
            if item.metric is None:  # a metrics request holds metric points only
                raise TypeError("a metric point without its metric")
            key = (item.resource, item.metric)
            container = points.get(key)
            if container is None:
                container = points[key] = _metric_container(items_of(item.resource).add(), item.metric)
            container.append(item.message)
        return request


#: signal -> (request type, its resource groups field, their scope groups field, the scopes' items field).
_LAYOUTS: dict[str, tuple[type[Message], str, str, str]] = {
    "logs": (ExportLogsServiceRequest, "resource_logs", "scope_logs", "log_records"),
    "traces": (ExportTraceServiceRequest, "resource_spans", "scope_spans", "spans"),
    "metrics": (ExportMetricsServiceRequest, "resource_metrics", "scope_metrics", "metrics"),
}


def _metric_container(metric: Any, key: _MetricKey) -> Any:
    """Fills in a new Metric for `key` and returns the repeated field its data points go into."""
    metric.name, metric.unit = key.name, key.unit
    temporality = (
        AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
        if key.cumulative
        else AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
    )
    if key.kind == MetricKind.GAUGE:
        metric.gauge.SetInParent()
        return metric.gauge.data_points
    if key.kind == MetricKind.SUM:
        metric.sum.is_monotonic = True
        metric.sum.aggregation_temporality = temporality
        return metric.sum.data_points
    metric.histogram.aggregation_temporality = temporality
    return metric.histogram.data_points


def encode_batch(
    *,
    logs: Sequence[LogRecord] = (),
    events: Sequence[EventRecord] = (),
    spans: Sequence[SpanRecord] = (),
    metrics: Sequence[MetricPoint] = (),
    audit: Sequence[AuditRecord] = (),
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
) -> list[OtlpRequest]:
    """A batch as export requests: logs and events to `logs` requests, spans to `traces`, metric points to
    `metrics`, audit records to `logs` requests of their own (`OtlpRequest.audit`), each cut to about
    `max_request_bytes`. Deterministic: the same records give the same requests."""
    resources: dict[Hashable, Resource] = {}
    requests: list[OtlpRequest] = []
    log_items = [*_log_items(logs, resources), *_event_items(events, resources)]
    for signal, items in (
        ("logs", log_items),
        ("traces", list(_span_items(spans, resources))),
        ("metrics", list(_metric_items(metrics, resources))),
    ):
        for chunk in _chunks(items, resources, max_request_bytes):
            requests.append(OtlpRequest(signal, tuple(chunk), resources))  # type: ignore[arg-type]
    for chunk in _chunks(list(_audit_items(audit, resources)), resources, max_request_bytes):
        requests.append(OtlpRequest("logs", tuple(chunk), resources, audit=True))
    return requests


def _chunks(items: list[_Item], resources: Mapping[Hashable, Resource], limit: int) -> Iterator[list[_Item]]:
    """Consecutive runs of items whose request would stay within `limit` bytes (a single item over it is a
    request of its own)."""
    chunk: list[_Item] = []
    size = 0
    seen: set[Hashable] = set()
    for item in items:
        extra = item.size + _ITEM_OVERHEAD
        if item.metric is not None:
            extra += _GROUP_OVERHEAD + len(item.metric.name) + len(item.metric.unit)  # at most one Metric per point
        new_resource = item.resource not in seen
        if new_resource:
            extra += resources[item.resource].ByteSize() + _GROUP_OVERHEAD
        if chunk and size + extra > limit:
            yield chunk
            chunk, size, seen = [], 0, set()
            if not new_resource:  # in the new request, its resource is new
                extra += resources[item.resource].ByteSize() + _GROUP_OVERHEAD
        chunk.append(item)
        seen.add(item.resource)
        size += extra
    if chunk:
        yield chunk


def _identity_resource(resources: dict[Hashable, Resource], kind: str, identity: Identity) -> Hashable:
    key = (kind, identity)
    if key not in resources:
        resources[key] = Resource(attributes=key_values(identity_attributes(identity)))
    return key


# ----------------------------------------------------------------------------------------------- logs


def _log_items(logs: Iterable[LogRecord], resources: dict[Hashable, Resource]) -> Iterator[_Item]:
    for log in logs:
        record = OtlpLogRecord(time_unix_nano=log.ts_ns, body=AnyValue(string_value=log.body))
        if log.level:
            record.severity_text = log.level
            record.severity_number = _SEVERITY_NUMBERS.get(log.level, 0)  # type: ignore[assignment]
        if trace_id := _id_bytes(log.trace_id, 16):
            record.trace_id = trace_id
        if span_id := _id_bytes(log.span_id, 8):
            record.span_id = span_id
        if log.stream in ("stdout", "stderr"):
            record.attributes.append(KeyValue(key=LOG_IOSTREAM, value=AnyValue(string_value=log.stream)))
        resource = _identity_resource(resources, "log", log.identity)
        yield _Item(resource, None, record, record.ByteSize())


def _audit_items(records: Iterable[AuditRecord], resources: dict[Hashable, Resource]) -> Iterator[_Item]:
    for audit in records:
        body = orjson.dumps(audit_document(audit)).decode()
        record = OtlpLogRecord(time_unix_nano=audit.time_ns, body=AnyValue(string_value=body))
        record.attributes.append(KeyValue(key=AUDIT_MARKER, value=AnyValue(bool_value=True)))
        where = audit.collector or Collected()
        key = ("audit", where)
        if key not in resources:
            pairs = ((K8S_NAMESPACE, where.namespace), (K8S_POD, where.pod), (K8S_CONTAINER, where.container))
            resources[key] = Resource(attributes=key_values({k: v for k, v in pairs if v}))
        yield _Item(key, None, record, record.ByteSize())


def _event_items(events: Iterable[EventRecord], resources: dict[Hashable, Resource]) -> Iterator[_Item]:
    """Events as the receiver reads them back (mapping._event): the record's attributes override the
    resource's, so the object's namespace is `k8s.namespace.name` there, and the pod namespace of the identity,
    when it differs, goes in as an object label, which overrides both."""
    for event in events:
        record = OtlpLogRecord(time_unix_nano=event.ts_ns, body=AnyValue(string_value=event.message))
        attributes = {EVENT_REASON: event.reason}
        if event.type:
            attributes[EVENT_TYPE] = event.type
            record.severity_text = event.type
        if event.object_kind:
            attributes[OBJECT_KIND] = event.object_kind
        if event.object_name:
            attributes[OBJECT_NAME] = event.object_name
        attributes[K8S_NAMESPACE] = event.object_namespace  # also when empty: it hides the resource's
        if event.identity.pod_namespace != event.object_namespace:
            attributes[OBJECT_LABEL_PREFIX + K8S_NAMESPACE] = event.identity.pod_namespace
        record.attributes.extend(key_values(attributes))
        resource = _identity_resource(resources, "event", event.identity)
        yield _Item(resource, None, record, record.ByteSize())


# ----------------------------------------------------------------------------------------------- spans


def _span_items(spans: Iterable[SpanRecord], resources: dict[Hashable, Resource]) -> Iterator[_Item]:
    for span in spans:
        message = Span(
            trace_id=_id_bytes(span.trace_id, 16),
            span_id=_id_bytes(span.span_id, 8),
            parent_span_id=_id_bytes(span.parent_span_id, 8),
            name=span.name,
            kind=_SPAN_KINDS.get(span.kind, Span.SPAN_KIND_UNSPECIFIED),
            start_time_unix_nano=span.start_ns,
            end_time_unix_nano=span.end_ns,
            attributes=key_values(span.attributes),
            status=Status(
                code=_STATUS_CODES.get(span.status_code, Status.STATUS_CODE_UNSET), message=span.status_message
            ),
        )
        yield _Item(_span_resource(resources, span), None, message, message.ByteSize())


def _span_resource(resources: dict[Hashable, Resource], span: SpanRecord) -> Hashable:
    """The span's own resource (what the receiver keeps as `SpanRecord.resource`), keyed by its content so
    spans of one process share it; the identity's attributes go over it only if it alone would not give back
    the span's identity."""
    key = ("span", span.identity, _fingerprint(span.resource))
    if key not in resources:
        attributes: Mapping[str, Any] = span.resource
        if identity_from_attributes(attributes) != span.identity:
            attributes = {**span.resource, **identity_attributes(span.identity)}
        resources[key] = Resource(attributes=key_values(attributes))
    return key


def _fingerprint(mapping: Mapping[str, Any]) -> bytes:
    """A hashable stand-in for an attribute dict (its values may be lists and dicts)."""
    try:
        return orjson.dumps(mapping, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:  # an int past 64 bits, or a type orjson does not know
        return repr(mapping).encode()


# ----------------------------------------------------------------------------------------------- metrics


def _metric_items(points: Iterable[MetricPoint], resources: dict[Hashable, Resource]) -> Iterator[_Item]:
    for point in points:
        attributes = [KeyValue(key=key, value=AnyValue(string_value=value)) for key, value in point.attributes.items()]
        message: Message
        if point.kind == MetricKind.HISTOGRAM:
            message = HistogramDataPoint(
                time_unix_nano=point.ts_ns,
                start_time_unix_nano=point.start_ns,
                attributes=attributes,
                count=_count(point.count),
                sum=point.sum,
                bucket_counts=[_count(count) for count in point.bucket_counts],
                explicit_bounds=list(point.bounds),
            )
            cumulative = point.cumulative
        else:
            message = NumberDataPoint(
                time_unix_nano=point.ts_ns,
                start_time_unix_nano=point.start_ns,
                attributes=attributes,
                as_double=point.value,
            )
            cumulative = point.cumulative if point.kind == MetricKind.SUM else True
        metric = _MetricKey(point.name, point.unit, MetricKind(point.kind), cumulative)
        resource = _identity_resource(resources, "metric", point.identity)
        yield _Item(resource, metric, message, message.ByteSize())


def _count(value: float) -> int:
    """An OTLP count (uint64) from the float the domain keeps it in."""
    if not math.isfinite(value) or value <= 0:
        return 0
    return min(int(round(value)), 2**64 - 1)
