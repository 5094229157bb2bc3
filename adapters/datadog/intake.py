"""The sink: our collector's records delivered to Datadog's intakes (a TelemetrySink).

- logs, Kubernetes events and audit records -> the logs intake (`POST {logs}/api/v2/logs`), gzip, cut at Datadog's limits:
  1,000 entries and 5 MB (uncompressed) per request, 1 MB per entry (a longer message is cut, as Datadog would
  cut it, so one line never makes a request fail);
- metrics -> `POST {api}/api/v2/series` (fields.py: the same scope tags as logs);
- spans -> Datadog's OTLP/HTTP traces intake (`POST {otlp}/v1/traces`, protobuf, `dd-api-key`), with the scope
  as resource attributes so Spans search finds them (`@openchoreo.namespace`).

Each request's answer becomes a WriteResult: 202 delivered; 413 split in halves and each half sent (one entry
alone that is still too large is dropped and counted); 400 dropped and counted (the same body would be refused
forever); 408, 429, 5xx, network failures and a refused key (401/403: an operator can fix it, the data must
wait) retry, after `Retry-After` / `X-RateLimit-Reset` when Datadog gives one. Datadog's intakes have no batch
id, so a batch retried after part of it was accepted is delivered twice in part: at-least-once.

Metrics: a gauge is a Datadog gauge; sums and histograms become deltas first (deltas.py, as Datadog's own OTel
exporter does) and are sent as `count` points; a histogram as `<name>.count`, `<name>.sum` and per-bucket
`<name>.bucket` series tagged `lower_bound`/`upper_bound` (the exporter's `counters` mode), which metrics.py
turns back into rates, means and quantiles.
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import orjson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from adapters.datadog import fields, records
from adapters.datadog.client import retry_after
from adapters.datadog.deltas import DeltaConverter
from adapters.datadog.spans import scope_attributes
from adapters.protocols import WriteResult
from adapters.registry import combine
from domain.audit import AuditRecord
from domain.identity import identity_attributes
from domain.model import EventRecord, LogRecord, MetricKind, MetricPoint, SpanKind, SpanRecord

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_ENTRIES = 1000
MAX_PAYLOAD_BYTES = 5 * 1024 * 1024
MAX_ENTRY_BYTES = 1024 * 1024
#: Series per request; far under the 5 MB decompressed limit for our tag counts (413 splits the rest).
MAX_SERIES = 1000
#: Spans per OTLP request.
MAX_SPANS = 2000

DROPPED_INVALID = "destination_invalid"  # Datadog refused a request with 400
DROPPED_TOO_LARGE = "destination_too_large"  # one entry alone over the intake's size limit
_RETRY = frozenset({401, 403, 408, 429})

Post = Callable[[bytes], Awaitable[httpx.Response]]


@dataclass(frozen=True)
class IntakeConfig:
    logs_url: str  # https://http-intake.logs.{site}
    api_url: str  # https://api.{site}
    otlp_url: str  # https://otlp.{site}
    api_key: str = field(default="", repr=False)
    timeout_s: float = 10.0


class DatadogSink:
    def __init__(self, config: IntakeConfig, transport: httpx.AsyncBaseTransport | None = None):
        self.config = config
        self.deltas = DeltaConverter()
        self._http = httpx.AsyncClient(
            timeout=config.timeout_s, headers={"DD-API-KEY": config.api_key}, transport=transport, verify=True
        )

    def __repr__(self) -> str:
        return f"DatadogSink({self.config.logs_url!r})"

    async def close(self) -> None:
        await self._http.aclose()

    async def write(
        self,
        *,
        batch_id: str,
        logs: Sequence[LogRecord] = (),
        events: Sequence[EventRecord] = (),
        spans: Sequence[SpanRecord] = (),
        metrics: Sequence[MetricPoint] = (),
        audit: Sequence[AuditRecord] = (),
    ) -> WriteResult:
        results = []
        entries = [records.log_entry(r) for r in logs] + [records.event_entry(r) for r in events]
        entries += [records.audit_entry(r) for r in audit]
        if entries:
            results.append(await self._send_logs(entries))
        if metrics:
            deltas, pending = self.deltas.convert(metrics)
            sent = await self._send_series(series_of(deltas))
            if sent.outcome != "retry":
                self.deltas.commit(pending)
            results.append(sent)
        if spans:
            results.append(await self._send_spans(list(spans)))
        result = combine(results)
        if result.outcome != "delivered" or result.count:
            log.warning("Datadog batch %s: %s %s (%d records)", batch_id, result.outcome, result.reason, result.count)
        return result

    # ------------------------------------------------------------------------------------------- per intake

    async def _send_logs(self, entries: list[dict[str, Any]]) -> WriteResult:
        encoded = [_entry_bytes(entry) for entry in entries]
        url = self.config.logs_url.rstrip("/") + "/api/v2/logs"
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}

        def post(body: bytes) -> Awaitable[httpx.Response]:
            return self._http.post(url, content=gzip.compress(body, 5), headers=headers)

        return combine([await deliver(chunk, _json_array, post) for chunk in chunks(encoded)])

    async def _send_series(self, series: list[dict[str, Any]]) -> WriteResult:
        encoded = [orjson.dumps(each) for each in series]
        url = self.config.api_url.rstrip("/") + "/api/v2/series"
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}

        def post(body: bytes) -> Awaitable[httpx.Response]:
            return self._http.post(url, content=gzip.compress(body, 5), headers=headers)

        parts = [encoded[i : i + MAX_SERIES] for i in range(0, len(encoded), MAX_SERIES)]
        return combine([await deliver(part, _series_body, post) for part in parts])

    async def _send_spans(self, spans: list[SpanRecord]) -> WriteResult:
        url = self.config.otlp_url.rstrip("/") + "/v1/traces"
        headers = {"Content-Type": "application/x-protobuf", "dd-api-key": self.config.api_key}

        def post(body: bytes) -> Awaitable[httpx.Response]:
            return self._http.post(url, content=body, headers=headers)

        parts = [spans[i : i + MAX_SPANS] for i in range(0, len(spans), MAX_SPANS)]
        return combine([await deliver(part, otlp_traces, post) for part in parts])


async def deliver(items: list[T], encode: Callable[[list[T]], bytes], post: Post) -> WriteResult:
    """Sends `items` as one request; on 413 each half on its own (recursively)."""
    try:
        response = await post(encode(items))
    except httpx.HTTPError as exc:
        return WriteResult.retry(reason=f"Datadog intake unreachable ({type(exc).__name__})")
    status = response.status_code
    if status < 300:
        return WriteResult.delivered()
    if status == 413:
        if len(items) == 1:
            return WriteResult.delivered(1, DROPPED_TOO_LARGE)
        half = len(items) // 2
        return combine([await deliver(items[:half], encode, post), await deliver(items[half:], encode, post)])
    if status in _RETRY or status >= 500:
        wait = retry_after(response) if status in (429, 503) or "retry-after" in response.headers else 0.0
        return WriteResult.retry(wait, f"Datadog intake answered {status}")
    if status == 400:
        return WriteResult.dropped(DROPPED_INVALID, len(items))
    return WriteResult.retry(reason=f"Datadog intake answered {status}")  # 404 ...: a misconfiguration


# ----------------------------------------------------------------------------------------------- logs


def _entry_bytes(entry: dict[str, Any]) -> bytes:
    """One entry as JSON, its message cut so the entry stays within MAX_ENTRY_BYTES."""
    raw = orjson.dumps(entry)
    excess = len(raw) - MAX_ENTRY_BYTES
    if excess > 0:
        message = entry[fields.MESSAGE].encode()
        entry = {**entry, fields.MESSAGE: message[: max(0, len(message) - excess - 64)].decode(errors="ignore")}
        raw = orjson.dumps(entry)
    return raw


def chunks(encoded: list[bytes]) -> list[list[bytes]]:
    """Entries grouped so that no request holds more than MAX_ENTRIES or MAX_PAYLOAD_BYTES (JSON array)."""
    out: list[list[bytes]] = []
    current: list[bytes] = []
    size = 2
    for raw in encoded:
        if current and (len(current) >= MAX_ENTRIES or size + len(raw) + 1 > MAX_PAYLOAD_BYTES):
            out.append(current)
            current, size = [], 2
        current.append(raw)
        size += len(raw) + 1
    if current:
        out.append(current)
    return out


def _json_array(encoded: list[bytes]) -> bytes:
    return b"[" + b",".join(encoded) + b"]"


# ----------------------------------------------------------------------------------------------- metrics

_GAUGE, _COUNT = 3, 1


def _series_body(encoded: list[bytes]) -> bytes:
    return b'{"series":[' + b",".join(encoded) + b"]}"


def metric_tags(point: MetricPoint) -> list[str]:
    tags = records.identity_tags(point.identity)
    tags += [f"{key}:{records.tag_value(value)}" for key, value in sorted(point.attributes.items()) if value != ""]
    return tags


def series_of(points: Sequence[MetricPoint]) -> list[dict[str, Any]]:
    """`/api/v2/series` MetricSeries, one per point (and per bucket of a histogram)."""
    return [series for point in points for series in point_series(point)]


def point_series(point: MetricPoint) -> list[dict[str, Any]]:
    tags = metric_tags(point)
    kind = _COUNT if not point.cumulative and point.kind != MetricKind.GAUGE else _GAUGE
    common: dict[str, Any] = {"type": kind}
    if kind == _COUNT and point.start_ns:
        common["interval"] = max(1, (point.ts_ns - point.start_ns) // 10**9)
    stamp = point.ts_ns // 10**9

    def one(name: str, value: float, extra: tuple[str, ...] = ()) -> dict[str, Any]:
        series = {**common, "metric": name, "points": [{"timestamp": stamp, "value": float(value)}]}
        series["tags"] = tags + list(extra)
        return series

    if point.kind != MetricKind.HISTOGRAM:
        series = one(point.name, point.value)
        if point.unit:
            series["unit"] = point.unit
        return [series]
    out = [one(point.name + ".count", point.count), one(point.name + ".sum", point.sum)]
    lower = "-inf"
    for index, count in enumerate(point.bucket_counts):
        upper = f"{point.bounds[index]:g}" if index < len(point.bounds) else "inf"
        out.append(one(point.name + ".bucket", count, (f"lower_bound:{lower}", f"upper_bound:{upper}")))
        lower = upper
    return out


# ----------------------------------------------------------------------------------------------- spans

_OTLP_KINDS = {kind.value: number for number, kind in enumerate(SpanKind)}
_OTLP_STATUS = {"unset": Status.STATUS_CODE_UNSET, "ok": Status.STATUS_CODE_OK, "error": Status.STATUS_CODE_ERROR}


def any_value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, (list, tuple)):
        return AnyValue(array_value=ArrayValue(values=[any_value(item) for item in value]))
    return AnyValue(string_value=str(value))


def _key_values(mapping: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=key, value=any_value(value)) for key, value in mapping.items()]


def _status_message(record: SpanRecord) -> dict[str, str]:
    return {fields.SPAN_STATUS_MESSAGE: record.status_message} if record.status_message else {}


def otlp_traces(spans: list[SpanRecord]) -> bytes:
    """An OTLP ExportTraceServiceRequest: one ResourceSpans per distinct resource; the scope tags and the
    identity's OpenChoreo labels join the resource, the exact times the span's attributes."""
    grouped: dict[bytes, tuple[Resource, list[Span]]] = {}
    for record in spans:
        exact = scope_attributes(record)
        times = {key: exact.pop(key) for key in (fields.SPAN_START_NS, fields.SPAN_END_NS)}
        resource_attributes = {**record.resource, **identity_attributes(record.identity), **exact}
        key = orjson.dumps(resource_attributes, option=orjson.OPT_SORT_KEYS, default=str)
        if key not in grouped:
            grouped[key] = (Resource(attributes=_key_values(resource_attributes)), [])
        grouped[key][1].append(
            Span(
                trace_id=bytes.fromhex(record.trace_id),
                span_id=bytes.fromhex(record.span_id),
                parent_span_id=bytes.fromhex(record.parent_span_id) if record.parent_span_id else b"",
                name=record.name,
                kind=_OTLP_KINDS.get(record.kind, 0),  # type: ignore[arg-type]
                start_time_unix_nano=record.start_ns,
                end_time_unix_nano=record.end_ns,
                attributes=_key_values({**record.attributes, **times, **_status_message(record)}),
                status=Status(code=_OTLP_STATUS.get(record.status_code, 0), message=record.status_message),  # type: ignore[arg-type]
            )
        )
    request = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(resource=resource, scope_spans=[ScopeSpans(spans=members)])
            for resource, members in grouped.values()
        ]
    )
    return request.SerializeToString()
