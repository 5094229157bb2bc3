"""Traces: Datadog's agentless OTLP/HTTP intake (`/v1/traces`, protobuf or JSON) feeding the Spans search.

A span is stored the way Datadog presents OTLP spans: `service` from the resource's `service.name`,
`resource_name` the span name, `trace_id` the 128-bit id as 32 hex digits, `span_id`/`parent_id` as decimal
64-bit numbers (`"0"` for a root), `env` from `deployment.environment[.name]`, `host` from `host.name`,
`type` from the span kind (server/client -> web/http, else custom). Span and resource attributes land in
`attributes` (resource ones too, so a search by `@k8s.namespace.name` works), and `attributes.otel.trace_id`,
`span.kind`, `status.code`, `duration` (ns) are added as Datadog adds them.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from devservers.datadog.models import BadRequest
from devservers.datadog.store import SpanRecord, Store

_KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
_TYPES = {2: "web", 3: "http"}
_ID_FIELDS = ("traceId", "spanId", "parentSpanId")


def _hex_ids_to_base64(value: Any) -> Any:
    """OTLP/JSON writes ids as hex; protobuf's JSON mapping expects base64 for bytes."""
    if isinstance(value, dict):
        return {
            k: (
                base64.b64encode(bytes.fromhex(v)).decode()
                if k in _ID_FIELDS and isinstance(v, str)
                else _hex_ids_to_base64(v)
            )
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_hex_ids_to_base64(v) for v in value]
    return value


def decode(body: bytes, content_type: str) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    try:
        if content_type.startswith("application/json"):
            json_format.ParseDict(_hex_ids_to_base64(json.loads(body)), request)
        else:
            request.ParseFromString(body)
    except (DecodeError, json_format.ParseError, ValueError) as error:
        raise BadRequest(f"Invalid OTLP payload: {error}") from None
    return request


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return getattr(value, kind) if kind else None


def ingest(store: Store, request: ExportTraceServiceRequest) -> int:
    records = []
    with store.lock:
        for resource_spans in request.resource_spans:
            resource = {kv.key: _value(kv.value) for kv in resource_spans.resource.attributes}
            service = str(resource.get("service.name", "unknown_service"))
            env = resource.get("deployment.environment.name", resource.get("deployment.environment"))
            host = resource.get("host.name")
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    attributes = {**resource, **{kv.key: _value(kv.value) for kv in span.attributes}}
                    trace_hex = span.trace_id.hex()
                    attributes.update(
                        {
                            "otel.trace_id": trace_hex,
                            "span.kind": _KINDS.get(span.kind, "unspecified"),
                            "status.code": span.status.code,
                            "duration": span.end_time_unix_nano - span.start_time_unix_nano,
                            "operation_name": span.name,
                        }
                    )
                    tags = [f"service:{service}"] + ([f"env:{env}"] if env else [])
                    records.append(
                        SpanRecord(
                            seq=store.next_seq(),
                            span_id=str(int.from_bytes(span.span_id, "big")),
                            trace_id=trace_hex,
                            parent_id=str(int.from_bytes(span.parent_span_id, "big")) if span.parent_span_id else "0",
                            service=service,
                            resource_name=span.name,
                            start_ns=span.start_time_unix_nano,
                            end_ns=span.end_time_unix_nano,
                            env=str(env) if env else None,
                            host=str(host) if host else None,
                            type=_TYPES.get(span.kind, "custom"),
                            tags=tags,
                            attributes=attributes,
                        )
                    )
        store.spans.extend(records)
    return len(records)


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="microseconds")


def as_json(span: SpanRecord) -> dict[str, Any]:
    """One `Span` of a search answer (client models `Span` / `SpansAttributes`)."""
    attributes: dict[str, Any] = {
        "service": span.service,
        "resource_name": span.resource_name,
        "trace_id": span.trace_id,
        "span_id": span.span_id,
        "parent_id": span.parent_id,
        "start_timestamp": _iso(span.start_ns),
        "end_timestamp": _iso(span.end_ns),
        "type": span.type,
        "tags": list(span.tags),
        "attributes": span.attributes,
        "custom": {},
    }
    if span.env:
        attributes["env"] = span.env
    if span.host:
        attributes["host"] = span.host
    return {"id": f"{span.trace_id}-{span.span_id}", "type": "spans", "attributes": attributes}
