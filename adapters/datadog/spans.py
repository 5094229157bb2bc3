"""Spans as our intake sends them to Datadog's OTLP intake, and Spans search results back as our SpanRecords.

Datadog presents an OTLP span with the span name as `resource_name`, 64-bit span ids in decimal, the 128-bit
trace id in hex, and span and resource attributes merged into `attributes` (where Spans search reaches them
as `@name`), plus a few it adds itself (`span.kind`, `status.code`, `duration`, ...). Reading back, Datadog's
own additions and ours (`openchoreo.*`) are taken out; keys under the OTel resource namespaces go back to the
resource. Datadog keeps microseconds, so our intake adds the exact nanoseconds (fields.SPAN_START_NS).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapters.datadog import fields
from adapters.datadog.records import identity_from_tags, identity_tags, tags_by_key
from domain.identity import identity_from_attributes
from domain.model import SpanKind, SpanRecord, TraceSummary
from domain.timeutil import parse_rfc3339

#: What Datadog adds to an OTLP span's attributes (not the producer's).
_DATADOG_ADDED = frozenset({"otel.trace_id", "span.kind", "status.code", "duration", "operation_name"})
#: Attribute namespaces OTel's resource semantic conventions use (the rest are span attributes).
_RESOURCE_PREFIXES = (
    "service.",
    "k8s.",
    "host.",
    "deployment.",
    "telemetry.",
    "process.",
    "os.",
    "container.",
    "cloud.",
    "openchoreo.dev/",
    "workflows.argoproj.io/",
)
#: What our intake adds (the scope tags as attributes, the exact times), taken out again on the way back.
_OURS = frozenset(
    {
        *fields.IDENTITY_TAGS.values(),
        fields.WORKLOAD,
        fields.SPAN_START_NS,
        fields.SPAN_END_NS,
        fields.SPAN_STATUS_MESSAGE,
    }
)
_KINDS = {kind.value.lower(): kind.value for kind in SpanKind}
_STATUS = {0: "unset", 1: "ok", 2: "error", "0": "unset", "1": "ok", "2": "error"}


def scope_attributes(record: SpanRecord) -> dict[str, str]:
    """Our scope tags as resource attributes (`openchoreo.namespace`), with the exact start and end. Datadog's
    Kubernetes and service tags are left out: OTel's own resource attributes (`k8s.pod.name`, `service.name`)
    say the same to Datadog's OTLP intake."""
    tags = {
        key: value
        for key, value in tags_by_key(identity_tags(record.identity)).items()
        if key.startswith("openchoreo.")
    }
    tags[fields.SPAN_START_NS] = str(record.start_ns)
    tags[fields.SPAN_END_NS] = str(record.end_ns)
    return tags


def hex_span_id(decimal: Any) -> str:
    """Datadog's decimal 64-bit span id as our 16 hex digits ("" for a root's parent `0`)."""
    text = str(decimal or "0")
    number = int(text) if text.isdigit() else int(text, 16)
    return f"{number:016x}" if number else ""


def _ns(attributes: Mapping[str, Any], exact: str, stamp: Any) -> int:
    value = attributes.get(exact)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return parse_rfc3339(stamp) if isinstance(stamp, str) and stamp else 0


def span_from_result(item: Mapping[str, Any]) -> SpanRecord:
    """A Spans search result (`data[]`) as our SpanRecord."""
    outer = item.get("attributes") or {}
    merged: Mapping[str, Any] = outer.get("attributes") or {}
    resource: dict[str, Any] = {}
    attributes: dict[str, Any] = {}
    for key, value in merged.items():
        if key in _DATADOG_ADDED or key in _OURS:
            continue
        (resource if key.startswith(_RESOURCE_PREFIXES) else attributes)[key] = value
    identity = identity_from_attributes(resource)
    tagged = identity_from_tags({k: str(v) for k, v in merged.items() if k in _OURS})
    if not identity.namespace and tagged.namespace:
        identity = tagged
    return SpanRecord(
        trace_id=str(outer.get("trace_id") or merged.get("otel.trace_id") or ""),
        span_id=hex_span_id(outer.get("span_id")),
        parent_span_id=hex_span_id(outer.get("parent_id")),
        name=str(outer.get("resource_name") or merged.get("operation_name") or ""),
        kind=_KINDS.get(str(merged.get("span.kind", "")).lower(), SpanKind.UNSPECIFIED.value),
        start_ns=_ns(merged, fields.SPAN_START_NS, outer.get("start_timestamp")),
        end_ns=_ns(merged, fields.SPAN_END_NS, outer.get("end_timestamp")),
        identity=identity,
        status_code=_STATUS.get(merged.get("status.code", 0), "unset"),
        status_message=str(merged.get(fields.SPAN_STATUS_MESSAGE) or merged.get("error.msg") or ""),
        attributes=attributes,
        resource=resource,
    )


def summarise(trace_id: str, spans: list[SpanRecord]) -> TraceSummary:
    """A trace summary as the contract defines it: the root span (the earliest span when the root has not
    arrived), the span count, the earliest start and latest end, and whether any span failed."""
    ordered = sorted(spans, key=lambda span: (span.start_ns, span.span_id))
    roots = [span for span in ordered if not span.parent_span_id]
    root = roots[0] if roots else ordered[0]
    return TraceSummary(
        trace_id=trace_id,
        name=root.name,
        span_count=len(spans),
        root_span_id=root.span_id,
        root_span_name=root.name,
        root_span_kind=root.kind,
        start_ns=ordered[0].start_ns,
        end_ns=max(span.end_ns for span in spans),
        has_errors=any(span.status_code == "error" for span in spans),
    )
