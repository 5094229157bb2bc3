"""The OTLP/HTTP receiver: `POST /v1/logs`, `/v1/traces`, `/v1/metrics` into a `TelemetrySink`.

It follows the OTLP/HTTP specification, so any OpenTelemetry SDK or Collector can export to it unchanged:

- the response uses the request's encoding (binary protobuf or OTLP/JSON);
- 200 with `partial_success` when some items were not stored, saying how many and why;
- 400 for a body that does not decode, 413 for one over the size limit (as sent, by Content-Length or by what
  actually arrives, and once inflated), 415 for a Content-Type or Content-Encoding OTLP does not define; each
  with a `google.rpc.Status` body whose message says what to change;
- 429 when too many exports are in progress, 503 when the backend is unavailable (or the collector's buffer is
  full), both with `Retry-After`, which OTLP exporters honour: they retry later with the same body, and the
  batch id (a hash of the signal and the inflated body) lets the sink store a retried export once.

Our extension: an `X-Batch-Id` request header (1-200 of `A-Z a-z 0-9 . _ : / -`) names the export, and the batch
id is derived from it instead of from the body. Our forwarding exporter (collectors/exporters/otlp.py) sends
the id of the buffered batch it is delivering, so a batch it retries (after a timeout, or after a restart, when
it may encode differently) is still stored once, and two different batches that happen to encode to the same
bytes are both stored. Other clients leave it out and nothing changes for them. A malformed value is a 400.

Audit records (our extension, collectors/otlp/mapping.py AUDIT_MARKER): with an `audit_token`, a logs export
carrying `Authorization: Bearer <audit_token>` (the observer's internal token, which our forwarding exporter sends
with audit records) may deliver audit records; they reach the sink as `audit=`. Any other request, and every
request when no token is configured, has its marked records stored as ordinary log lines: the marker alone
proves nothing. The token is compared by digest in constant time and never logged.

Every refusal is counted (`ReceiverStats`, and `on_refused` with a short reason code for metrics), as is every
item left out of a partial success (`on_rejected`, by mapping.py's reason codes).

Concurrency is bounded for memory's sake: each in-flight export holds up to `max_body_bytes` (inflated), so at
most `max_in_flight * max_body_bytes` is held at once; past that the receiver sheds load with 429 instead of
queueing without bound.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc import code_pb2
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.protocols import BackendUnavailable, TelemetrySink, WriteResult
from collectors.buffer import BatchTooLarge, BufferFull
from collectors.otlp.decode import (
    CONTENT_TYPES,
    BodyTooLarge,
    DecodeError,
    MediaType,
    Signal,
    UnsupportedMediaType,
    decode_request,
    decompress,
    media_type,
)
from collectors.otlp.mapping import Mapped, map_logs, map_metrics, map_traces
from domain.identity import DEFAULT_NAMESPACE
from domain.timeutil import format_rfc3339, now_ns

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_IN_FLIGHT = 64
#: Seconds a client is asked to wait after a 429 or 503 before it retries.
DEFAULT_RETRY_AFTER_S = 2
#: Bodies up to this size are decoded on the event loop: a thread hop would cost more than the work.
_INLINE_DECODE_BYTES = 64 * 1024
#: The request header that carries the sender's batch id (our extension, see above).
BATCH_ID_HEADER = "X-Batch-Id"
_BATCH_ID = re.compile(r"[A-Za-z0-9._:/-]{1,200}")

#: Called with (signal, HTTP status, reason code) for each export refused whole.
OnRefused = Callable[[Signal, int, str], None]
#: Called with (signal, reason code, items) for the items a partial success left out.
OnRejected = Callable[[Signal, str, int], None]


#: The export request of one signal, as `decode_request` parses it.
_Request = TypeVar("_Request", ExportLogsServiceRequest, ExportTraceServiceRequest, ExportMetricsServiceRequest)
#: The export response of a signal: each has a `partial_success` with a count field and an `error_message`.
_Response = ExportLogsServiceResponse | ExportTraceServiceResponse | ExportMetricsServiceResponse


@dataclass(frozen=True, slots=True)
class _SignalSpec(Generic[_Request]):
    """What differs between the three endpoints."""

    mapper: Callable[[_Request, str], Mapped]
    response: type[_Response]
    rejected_field: str  # the count field of the response's partial_success

    def map(self, request: Message, default_namespace: str, trust_audit: bool = False) -> Mapped:
        """Maps a request `decode_request` parsed for this spec's signal. It returns a plain `Message`, but
        `decode.REQUEST_TYPES` makes it the signal's own request type, which is what `mapper` takes.
        `default_namespace` is the namespace of plain OpenTelemetry applications (domain/identity.py);
        `trust_audit` (logs only) lets marked records be audit records."""
        if trust_audit and self.mapper is map_logs:
            return map_logs(cast(ExportLogsServiceRequest, request), default_namespace, trust_audit=True)
        return self.mapper(cast(_Request, request), default_namespace)


#: Specs of different request types, hence `Any`; `_SignalSpec.map` takes any decoded request.
_SIGNALS: dict[Signal, _SignalSpec[Any]] = {
    "logs": _SignalSpec(map_logs, ExportLogsServiceResponse, "rejected_log_records"),
    "traces": _SignalSpec(map_traces, ExportTraceServiceResponse, "rejected_spans"),
    "metrics": _SignalSpec(map_metrics, ExportMetricsServiceResponse, "rejected_data_points"),
}


@dataclass(slots=True)
class ReceiverStats:
    """The receiver's own counters, per signal: items stored, items rejected (partial success), and requests
    refused whole, by HTTP status and by (signal, status, reason code)."""

    received: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_SIGNALS, 0))
    rejected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_SIGNALS, 0))
    refused: dict[int, int] = field(default_factory=dict)
    refused_reasons: dict[tuple[str, int, str], int] = field(default_factory=dict)


class _Refused(Exception):
    """Ends an export with an error status and a google.rpc.Status body."""

    def __init__(self, status: int, code: int, message: str, retry_after: int | None = None, *, reason: str):
        super().__init__(message)
        self.status, self.code, self.retry_after, self.reason = status, code, retry_after, reason


#: How each way a body can be unusable is answered: HTTP status and google.rpc code.
_DECODE_FAILURES: dict[type[BodyTooLarge | DecodeError | UnsupportedMediaType], tuple[int, int]] = {
    BodyTooLarge: (413, code_pb2.RESOURCE_EXHAUSTED),
    DecodeError: (400, code_pb2.INVALID_ARGUMENT),
    UnsupportedMediaType: (415, code_pb2.INVALID_ARGUMENT),
}


def batch_id(signal: Signal, body: bytes, declared: str | None = None) -> str:
    """The same export, retried, gets the same id; the inflated body is hashed, so a re-compressed retry does
    too. With an `X-Batch-Id` (`declared`), that id (per signal) is the batch id instead: a separate namespace,
    so a declared id never collides with a body's hash."""
    if declared:
        return hashlib.sha256(b"otlp-batch-id/" + signal.encode() + b"\0" + declared.encode()).hexdigest()
    return hashlib.sha256(b"otlp/" + signal.encode() + b"\0" + body).hexdigest()


def build_otlp_app(
    sink: TelemetrySink,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    retry_after_s: int = DEFAULT_RETRY_AFTER_S,
    on_refused: OnRefused | None = None,
    on_rejected: OnRejected | None = None,
    default_namespace: str = DEFAULT_NAMESPACE,
    audit_token: str = "",
) -> Starlette:
    """The receiver as an ASGI app; `app.state.stats` holds its `ReceiverStats`. `on_refused` and `on_rejected`
    let a process count refusals and partial-success rejections on its own metrics (the collector's /metrics).
    `default_namespace`: where a plain OpenTelemetry application that names no `service.namespace` lands.
    `audit_token`: the internal token whose requests may deliver audit records (module docstring); empty: none."""
    stats = ReceiverStats()
    in_flight = 0
    audit_digest = _digest(audit_token) if audit_token else b""

    async def export(request: Request, signal: Signal) -> Response:
        nonlocal in_flight
        media: MediaType = "json"  # the encoding of errors found before the Content-Type is known to be usable
        try:
            media = media_type(request.headers.get("content-type"))
            _check_declared_length(request, max_body_bytes)
            declared = _declared_batch_id(request)
            if in_flight >= max_in_flight:
                raise _Refused(
                    429, code_pb2.RESOURCE_EXHAUSTED, "too many exports in progress", retry_after_s, reason="busy"
                )
            in_flight += 1
            try:
                mapped = await receive(request, signal, media, declared)
            finally:
                in_flight -= 1
        except (_Refused, *_DECODE_FAILURES) as exc:
            refused = (
                exc
                if isinstance(exc, _Refused)
                else _Refused(*_DECODE_FAILURES[type(exc)], str(exc), reason=exc.reason)
            )
            stats.refused[refused.status] = stats.refused.get(refused.status, 0) + 1
            key = (signal, refused.status, refused.reason)
            stats.refused_reasons[key] = stats.refused_reasons.get(key, 0) + 1
            if on_refused is not None:
                on_refused(signal, refused.status, refused.reason)
            return _status_response(refused, media)
        stats.received[signal] += mapped.accepted
        stats.rejected[signal] += mapped.rejected
        if on_rejected is not None:
            for code, count in mapped.codes.items():
                on_rejected(signal, code, count)
        return _export_response(signal, mapped, media)

    async def receive(request: Request, signal: Signal, media: MediaType, declared: str | None) -> Mapped:
        """Reads, inflates, decodes, maps and stores one export."""
        wire = await _read_body(request, max_body_bytes)
        encoding = request.headers.get("content-encoding")
        trusted = signal == "logs" and _carries_token(request, audit_digest)

        def decode() -> tuple[bytes, Mapped]:
            body = decompress(wire, encoding, max_body_bytes)
            return body, _SIGNALS[signal].map(decode_request(signal, body, media), default_namespace, trusted)

        # Inflating, parsing and mapping megabytes is CPU work; off the event loop it cannot stall other requests.
        body, mapped = decode() if len(wire) <= _INLINE_DECODE_BYTES else await asyncio.to_thread(decode)
        if mapped.accepted:
            try:
                # `audit` only when there is some: a sink from before audit records still takes everything else
                extra = {"audit": mapped.audit} if mapped.audit else {}
                result = await sink.write(
                    batch_id=batch_id(signal, body, declared),
                    logs=mapped.logs,
                    events=mapped.events,
                    spans=mapped.spans,
                    metrics=mapped.metrics,
                    **extra,
                )
            except BufferFull as exc:  # the collector's own buffer: it says how soon there will be room
                wait = max(1, math.ceil(exc.retry_after_s))
                raise _Refused(503, code_pb2.UNAVAILABLE, str(exc), wait, reason="buffer_full") from exc
            except BackendUnavailable as exc:
                message = f"the backend is unavailable: {exc}"
                raise _Refused(503, code_pb2.UNAVAILABLE, message, retry_after_s, reason="unavailable") from exc
            except BatchTooLarge as exc:  # retrying cannot help: only a smaller export fits
                message = f"the export is larger than the collector's buffer can ever hold ({exc}); send less at once"
                raise _Refused(413, code_pb2.RESOURCE_EXHAUSTED, message, reason="larger_than_buffer") from exc
            if result.outcome == "retry":
                wait = max(1, math.ceil(result.retry_after_s)) if result.retry_after_s else retry_after_s
                message = f"the backend is unavailable: {result.reason or 'try again later'}"
                raise _Refused(503, code_pb2.UNAVAILABLE, message, wait, reason="unavailable")
            _count_refused_records(mapped, result)
        return mapped

    async def health(_: Request) -> Response:
        return JSONResponse({"status": "healthy", "timestamp": format_rfc3339(now_ns() // 10**9 * 10**9)})

    def route(signal: Signal) -> Route:
        async def endpoint(request: Request) -> Response:
            return await export(request, signal)

        return Route(f"/v1/{signal}", endpoint, methods=["POST"], name=f"otlp_{signal}")

    app = Starlette(routes=[route("logs"), route("traces"), route("metrics"), Route("/health", health)])
    app.state.stats = stats
    return app


def _count_refused_records(mapped: Mapped, result: WriteResult) -> None:
    """Records the backend refused for good (a whole batch dropped, or single items of it) are reported to the
    client as OTLP partial success, and counted with the rest (`on_rejected`), so none goes missing silently.
    The count may be in the backend's units (Prometheus counts samples), so it is held to what was accepted."""
    if result.count:
        count = min(result.count, mapped.accepted)
        mapped.reject(count, f"refused by the backend ({result.reason or result.outcome})", result.reason or "backend")


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def _carries_token(request: Request, digest: bytes) -> bool:
    """Whether the request's `Authorization: Bearer` is the internal token (constant time; False without one)."""
    if not digest:
        return False
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credentials:
        return False
    return hmac.compare_digest(_digest(credentials.strip()), digest)


def _declared_batch_id(request: Request) -> str | None:
    """The `X-Batch-Id` header's value, None without one; a 400 for a value outside the allowed alphabet or
    length (an id is hashed, but a garbled one is a sender's bug worth telling it about)."""
    value = request.headers.get(BATCH_ID_HEADER)
    if value is None:
        return None
    if not _BATCH_ID.fullmatch(value):
        message = f"{BATCH_ID_HEADER} must be 1 to 200 of A-Z a-z 0-9 . _ : / -"
        raise _Refused(400, code_pb2.INVALID_ARGUMENT, message, reason="invalid_batch_id")
    return value


def _check_declared_length(request: Request, limit: int) -> None:
    """Refuses an oversized body by its Content-Length, before reading any of it. (A malformed header never gets
    here: the HTTP server rejects it.)"""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"the body is {declared} bytes; the limit is {limit}")


async def _read_body(request: Request, limit: int) -> bytes:
    """The body as it arrives, refused as soon as it passes the limit (Content-Length may be absent, with
    chunked transfer, or wrong)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge(f"the body is larger than the limit of {limit} bytes")
    return bytes(body)


def _encode(message: Message, media: MediaType) -> tuple[bytes, str]:
    """A response message in the request's encoding, with its Content-Type."""
    if media == "protobuf":
        return message.SerializeToString(), CONTENT_TYPES["protobuf"][0]
    return json_format.MessageToJson(message, indent=None).encode(), CONTENT_TYPES["json"][0]


def _export_response(signal: Signal, mapped: Mapped, media: MediaType) -> Response:
    spec = _SIGNALS[signal]
    message = spec.response()
    if mapped.rejected:
        setattr(message.partial_success, spec.rejected_field, mapped.rejected)
        message.partial_success.error_message = mapped.error_message
    body, content_type = _encode(message, media)
    return Response(body, status_code=200, media_type=content_type)


def _status_response(refused: _Refused, media: MediaType) -> Response:
    body, content_type = _encode(Status(code=refused.code, message=str(refused)), media)
    headers = {"Retry-After": str(refused.retry_after)} if refused.retry_after is not None else None
    return Response(body, status_code=refused.status, media_type=content_type, headers=headers)
