"""OTLP export requests to the shared domain records.

Pure functions: a decoded request in, a `Mapped` result out, no I/O, so every rule here is unit-testable and the
receiver only moves bytes. Each record's identity comes from its resource attributes (`domain.identity`).

What is not stored is counted, with a reason, so the receiver can report it as OTLP partial success instead of
dropping data silently:

- spans without a valid trace or span id (they could never be found again);
- exponential histograms and summaries (no backend of ours keeps them yet), per data point;
- number points without a value, histogram points whose buckets do not match their bounds, and points of sums
  or histograms that do not say whether they are cumulative or deltas.

Points flagged "no recorded value" are staleness markers, not data, and are skipped without counting.

Log records that carry `k8s.event.reason` are Kubernetes events (the OpenTelemetry `k8s_events` and
`k8sobjects` receivers produce them as log records) and become `EventRecord`s. A log record's `log.iostream`
attribute (`stdout` or `stderr`, as the OpenTelemetry `filelog` receiver and our own forwarding exporter set it)
is its stream; without it the stream is `otlp`.

Audit records travel as log records marked with the attribute `openchoreo.audit` (AUDIT_MARKER), the record's
JSON document (domain/audit.py `audit_document`) as the body. `map_logs(..., trust_audit=True)` (the receiver
passes it only for requests carrying the internal token) turns a marked record whose body is an audit record into
an `AuditRecord`; otherwise (no token, or a body that is not an audit record) the marker means nothing and the
record is an ordinary log line like any other, so no OTLP client can forge the trail.

`collectors/otlp/encode.py` is the inverse: what it encodes maps back here to equal records.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord as OtlpLogRecord
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality, DataPointFlags
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from domain.audit import AuditRecord, NotAnAuditRecord, audit_from_document
from domain.identity import DEFAULT_NAMESPACE, K8S_NAMESPACE, identity_from_attributes
from domain.log_batch import LogBatch
from domain.loglevel import detect_level, normalize_level, severity_number_level
from domain.model import EventRecord, Identity, MetricKind, MetricPoint, SpanKind, SpanRecord
from domain.timeutil import now_ns

EVENT_REASON = "k8s.event.reason"
EVENT_TYPE = "k8s.event.type"
OBJECT_KIND = "k8s.object.kind"
OBJECT_NAME = "k8s.object.name"
#: The events enrichment copies the involved object's labels under this prefix (`k8s.object.label.openchoreo.dev/
#: component-uid`); with the prefix cut they are pod labels again and give the event its identity.
OBJECT_LABEL_PREFIX = "k8s.object.label."
#: Annotations likewise (off by default in the enrichment); the Argo node name among them names the task.
OBJECT_ANNOTATION_PREFIX = "k8s.object.annotation."
#: The semantic-conventions attribute for the stream a log line was written to.
LOG_IOSTREAM = "log.iostream"
#: Marks a log record whose body is an audit record's JSON document (believed only with the internal token).
AUDIT_MARKER = "openchoreo.audit"
#: A marked body longer than this is not read as an audit record (a record is a few hundred bytes).
MAX_AUDIT_BODY_BYTES = 64 * 1024
_IOSTREAMS = frozenset({"stdout", "stderr"})

_TRACE_ID_BYTES = 16
_SPAN_ID_BYTES = 8

_SPAN_KINDS = {
    Span.SPAN_KIND_UNSPECIFIED: SpanKind.UNSPECIFIED.value,
    Span.SPAN_KIND_INTERNAL: SpanKind.INTERNAL.value,
    Span.SPAN_KIND_SERVER: SpanKind.SERVER.value,
    Span.SPAN_KIND_CLIENT: SpanKind.CLIENT.value,
    Span.SPAN_KIND_PRODUCER: SpanKind.PRODUCER.value,
    Span.SPAN_KIND_CONSUMER: SpanKind.CONSUMER.value,
}
_STATUS_CODES = {Status.STATUS_CODE_UNSET: "unset", Status.STATUS_CODE_OK: "ok", Status.STATUS_CODE_ERROR: "error"}


@dataclass(slots=True)
class Mapped:
    """The records of one export request, and what was left out and why."""

    logs: LogBatch = field(default_factory=LogBatch)
    events: list[EventRecord] = field(default_factory=list)
    spans: list[SpanRecord] = field(default_factory=list)
    metrics: list[MetricPoint] = field(default_factory=list)
    audit: list[AuditRecord] = field(default_factory=list)
    rejected: int = 0
    reasons: dict[str, int] = field(default_factory=dict)  # reason -> how many items it rejected
    codes: dict[str, int] = field(default_factory=dict)  # the same counts by a short code, for metric labels

    def reject(self, count: int, reason: str, code: str) -> None:
        """`reason` is the sentence the client reads (partial success); `code` is a stable metric label."""
        if count:
            self.rejected += count
            self.reasons[reason] = self.reasons.get(reason, 0) + count
            self.codes[code] = self.codes.get(code, 0) + count

    @property
    def accepted(self) -> int:
        return len(self.logs) + len(self.events) + len(self.spans) + len(self.metrics) + len(self.audit)

    @property
    def error_message(self) -> str:
        """One line for OTLP partial success: each reason with the number of items it rejected."""
        return "; ".join(f"{count} {reason}" for reason, count in self.reasons.items())


# ----------------------------------------------------------------------------------------------- values


def any_value(value: AnyValue) -> Any:
    """An OTLP AnyValue as plain Python: str, bool, int, float, list, dict; bytes as lowercase hex (so every
    value is JSON-serialisable); None when unset."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return attributes(value.kvlist_value.values)
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, kind)


def attributes(pairs: Iterable[KeyValue]) -> dict[str, Any]:
    """OTLP key/value pairs as a dict (a repeated key keeps its last value)."""
    return {pair.key: any_value(pair.value) for pair in pairs}


def _text(value: Any) -> str:
    """A Python value as text: strings as they are, anything else as compact JSON (`true`, `42`, `{"a":1}`)."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _hex_id(raw: bytes, size: int) -> str:
    """A trace or span id as lowercase hex; "" when absent, all zeros or of the wrong length (all invalid ids
    in OTLP)."""
    if len(raw) != size or not any(raw):
        return ""
    return raw.hex()


def _items(
    groups: Iterable[Any], scopes: str, items: str, default_namespace: str
) -> Iterator[tuple[dict[str, Any], Identity, Any]]:
    """Each item of a resource -> scope -> items request, with its resource attributes and their identity, so
    the three signals walk their requests the same way."""
    for group in groups:
        resource = attributes(group.resource.attributes)
        identity = identity_from_attributes(resource, default_namespace=default_namespace)
        for scope in getattr(group, scopes):
            for item in getattr(scope, items):
                yield resource, identity, item


# ----------------------------------------------------------------------------------------------- logs


def map_logs(
    request: ExportLogsServiceRequest, default_namespace: str = DEFAULT_NAMESPACE, *, trust_audit: bool = False
) -> Mapped:
    """Log records to logs (a LogBatch: rows under their resource's identity, as the export groups them), and
    those describing Kubernetes events to events; with `trust_audit` (a request carrying the internal token),
    records marked AUDIT_MARKER whose body is an audit record to audit records.

    This loop runs once per record of every export, so it reads each protobuf field once, skips the work an
    absent field needs (most records carry no attributes and a plain string body), and normalizes each distinct
    severity text once per request: on the OTLP ingest path it costs about as much as storing the record."""
    out = Mapped()
    now = now_ns()
    batch = out.logs
    levels: dict[str, str] = {}  # severity_text -> level, for this request
    for group in request.resource_logs:
        resource = attributes(group.resource.attributes)
        identity = identity_from_attributes(resource, default_namespace=default_namespace)
        # Most records declare no stream: the run they go to is looked up again only when the stream changes.
        run_stream = "otlp"
        rows = batch.rows(identity, run_stream)
        for scope in group.scope_logs:
            for record in scope.log_records:
                pairs = record.attributes
                stream = "otlp"
                if pairs:
                    record_attributes = attributes(pairs)
                    if EVENT_REASON in record_attributes:
                        out.events.append(_event(record, record_attributes, resource, now))
                        continue
                    if trust_audit and AUDIT_MARKER in record_attributes:
                        audit = _audit(record.body.string_value)
                        if audit is not None:
                            out.audit.append(audit)
                            continue
                    declared = record_attributes.get(LOG_IOSTREAM)
                    if declared in _IOSTREAMS:
                        stream = declared
                if stream != run_stream:
                    run_stream = stream
                    rows = batch.rows(identity, stream)
                value = record.body
                # A non-empty string_value is the oneof's one set field; anything else takes the general path.
                body = value.string_value or _text(any_value(value))
                severity_text = record.severity_text
                if severity_text:
                    level = levels.get(severity_text)
                    if level is None:
                        level = levels[severity_text] = normalize_level(severity_text)
                elif record.severity_number:
                    level = severity_number_level(record.severity_number)
                else:
                    level = detect_level(body)
                trace_id = record.trace_id
                span_id = record.span_id
                rows.append(
                    (
                        record.time_unix_nano or record.observed_time_unix_nano or now,
                        level,
                        body,
                        _hex_id(trace_id, _TRACE_ID_BYTES) if trace_id else "",
                        _hex_id(span_id, _SPAN_ID_BYTES) if span_id else "",
                    )
                )
    return out


def _audit(body: str) -> AuditRecord | None:
    """The audit record a marked log record's body holds, or None (it then stays a log line)."""
    if not body.startswith("{") or len(body) > MAX_AUDIT_BODY_BYTES:
        return None
    try:
        return audit_from_document(orjson.loads(body))
    except (orjson.JSONDecodeError, NotAnAuditRecord):
        return None


def _timestamp(record: OtlpLogRecord, now: int) -> int:
    """When it happened if the producer says, else when it was observed, else now (map_logs inlines it)."""
    return record.time_unix_nano or record.observed_time_unix_nano or now


def _event(record: OtlpLogRecord, record_attributes: dict[str, Any], resource: dict[str, Any], now: int) -> EventRecord:
    """An event's identity is that of the object it is about: its labels, found as `k8s.object.label.*` in the
    resource (the events enrichment) or the record attributes, override the resource's own attributes."""
    merged = {**resource, **record_attributes}
    object_labels = {
        key[len(prefix) :]: value
        for key, value in merged.items()
        for prefix in (OBJECT_LABEL_PREFIX, OBJECT_ANNOTATION_PREFIX)
        if key.startswith(prefix)
    }
    return EventRecord(
        ts_ns=_timestamp(record, now),
        message=_text(any_value(record.body)),
        # An event is about its object: the emitter's `service.name` is no plain OpenTelemetry scope of it.
        identity=identity_from_attributes({**merged, **object_labels}, plain_otel=False),
        type=_text(merged.get(EVENT_TYPE)) or record.severity_text,
        reason=_text(merged.get(EVENT_REASON)),
        object_kind=_text(merged.get(OBJECT_KIND)),
        object_name=_text(merged.get(OBJECT_NAME)),
        object_namespace=_text(merged.get(K8S_NAMESPACE)),
    )


# ----------------------------------------------------------------------------------------------- traces


def map_traces(request: ExportTraceServiceRequest, default_namespace: str = DEFAULT_NAMESPACE) -> Mapped:
    out = Mapped()
    for resource, identity, span in _items(request.resource_spans, "scope_spans", "spans", default_namespace):
        trace_id = _hex_id(span.trace_id, _TRACE_ID_BYTES)
        span_id = _hex_id(span.span_id, _SPAN_ID_BYTES)
        if not trace_id or not span_id:
            out.reject(1, "spans without a valid trace_id (16 bytes) and span_id (8 bytes)", "invalid_span_ids")
            continue
        out.spans.append(
            SpanRecord(
                trace_id=trace_id,
                span_id=span_id,
                parent_span_id=_hex_id(span.parent_span_id, _SPAN_ID_BYTES),
                name=span.name,
                kind=_SPAN_KINDS.get(span.kind, SpanKind.UNSPECIFIED.value),
                start_ns=span.start_time_unix_nano,
                end_ns=span.end_time_unix_nano,
                identity=identity,
                status_code=_STATUS_CODES.get(span.status.code, "unset"),
                status_message=span.status.message,
                attributes=attributes(span.attributes),
                resource=resource,
            )
        )
    return out


# ----------------------------------------------------------------------------------------------- metrics


def map_metrics(request: ExportMetricsServiceRequest, default_namespace: str = DEFAULT_NAMESPACE) -> Mapped:
    """Gauges and non-monotonic sums to gauges, monotonic sums to sums, explicit-bucket histograms to
    histograms; exponential histograms and summaries are rejected per data point."""
    out = Mapped()
    now = now_ns()
    for _, identity, metric in _items(request.resource_metrics, "scope_metrics", "metrics", default_namespace):
        data = metric.WhichOneof("data")
        if data == "gauge":
            _numbers(out, metric, MetricKind.GAUGE, True, metric.gauge.data_points, identity, now)
        elif data == "sum":
            if not metric.sum.is_monotonic:  # an up-down counter is a level, like a gauge
                _numbers(out, metric, MetricKind.GAUGE, True, metric.sum.data_points, identity, now)
            else:
                cumulative = _is_cumulative(out, metric.sum.aggregation_temporality, len(metric.sum.data_points))
                if cumulative is not None:
                    _numbers(out, metric, MetricKind.SUM, cumulative, metric.sum.data_points, identity, now)
        elif data == "histogram":
            points = metric.histogram.data_points
            cumulative = _is_cumulative(out, metric.histogram.aggregation_temporality, len(points))
            if cumulative is not None:
                for point in points:
                    _histogram(out, metric, cumulative, point, identity, now)
        elif data == "exponential_histogram":
            out.reject(
                len(metric.exponential_histogram.data_points),
                "exponential histogram points (not supported)",
                "exponential_histogram",
            )
        elif data == "summary":
            out.reject(len(metric.summary.data_points), "summary points (not supported)", "summary")
    return out


def _is_cumulative(out: Mapped, temporality: int, points: int) -> bool | None:
    """Whether sum or histogram points are running totals (True) or deltas (False). Points that do not say are
    rejected (None): guessing wrong would turn every rate computed from them into nonsense."""
    if temporality == AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE:
        return True
    if temporality == AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA:
        return False
    out.reject(points, "points with an unspecified aggregation temporality", "unspecified_temporality")
    return None


def _no_value(flags: int) -> bool:
    return bool(flags & DataPointFlags.DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK)


def _labels(pairs: Iterable[KeyValue]) -> dict[str, str]:
    """Data point attributes as label values (strings), the way every metrics backend keeps them."""
    return {key: _text(value) for key, value in attributes(pairs).items()}


def _numbers(
    out: Mapped, metric: Any, kind: MetricKind, cumulative: bool, points: Iterable[Any], identity: Identity, now: int
) -> None:
    for point in points:
        if _no_value(point.flags):
            continue
        which = point.WhichOneof("value")
        if which is None:
            out.reject(1, "number points without a value", "number_point_without_value")
            continue
        out.metrics.append(
            MetricPoint(
                name=metric.name,
                unit=metric.unit,
                kind=kind,
                ts_ns=point.time_unix_nano or now,
                identity=identity,
                attributes=_labels(point.attributes),
                cumulative=cumulative,
                start_ns=point.start_time_unix_nano,
                value=float(getattr(point, which)),
            )
        )


def _histogram(out: Mapped, metric: Any, cumulative: bool, point: Any, identity: Identity, now: int) -> None:
    if _no_value(point.flags):
        return
    bounds = tuple(point.explicit_bounds)
    counts = tuple(float(count) for count in point.bucket_counts)
    if not counts and not bounds:  # allowed: no buckets, only count and sum, i.e. one +Inf bucket
        counts = (float(point.count),)
    if len(counts) != len(bounds) + 1:
        reason = "histogram points whose bucket_counts do not number explicit_bounds + 1"
        out.reject(1, reason, "histogram_buckets_mismatch")
        return
    if any(math.isnan(bound) for bound in bounds) or any(low >= high for low, high in zip(bounds, bounds[1:])):
        out.reject(1, "histogram points whose explicit_bounds do not increase", "histogram_bounds_not_increasing")
        return
    out.metrics.append(
        MetricPoint(
            name=metric.name,
            unit=metric.unit,
            kind=MetricKind.HISTOGRAM,
            ts_ns=point.time_unix_nano or now,
            identity=identity,
            attributes=_labels(point.attributes),
            cumulative=cumulative,
            start_ns=point.start_time_unix_nano,
            count=float(point.count),
            sum=point.sum if point.HasField("sum") else 0.0,
            bounds=bounds,
            bucket_counts=counts,
        )
    )
