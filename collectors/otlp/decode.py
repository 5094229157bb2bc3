"""OTLP/HTTP request bodies to protobuf export requests.

Three steps, each with its own failure so the receiver can answer with the right status:

1. `media_type`: which encoding the Content-Type names (protobuf or JSON); anything else is
   `UnsupportedMediaType` (415).
2. `decompress`: undo `Content-Encoding: gzip`, inflating in bounded steps so a small body that expands to
   gigabytes (a gzip bomb) stops at the size limit with `BodyTooLarge` (413) instead of exhausting memory.
3. `decode_request`: parse the bytes into `Export{Logs,Trace,Metrics}ServiceRequest`, or `DecodeError` (400)
   with a message that says what is wrong.

OTLP/JSON differs from protobuf's canonical JSON mapping in one way that matters: trace and span ids are hex
strings, not base64. They are rewritten to base64 before `json_format` sees them. Enum values may be names or
integers and unknown fields are ignored, as the OTLP specification asks of receivers.
"""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any, Literal

from google.protobuf import json_format
from google.protobuf.message import DecodeError as ProtobufDecodeError
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

Signal = Literal["logs", "traces", "metrics"]
MediaType = Literal["protobuf", "json"]

REQUEST_TYPES: dict[Signal, type[Message]] = {
    "logs": ExportLogsServiceRequest,
    "traces": ExportTraceServiceRequest,
    "metrics": ExportMetricsServiceRequest,
}

#: Content-Type values per encoding; the first is what responses carry.
CONTENT_TYPES: dict[MediaType, tuple[str, ...]] = {
    "protobuf": ("application/x-protobuf", "application/protobuf"),
    "json": ("application/json",),
}

#: Every field of the OTLP protos that holds a trace or span id (spans, span links, log records, exemplars),
#: under both the names JSON may use for it.
_ID_FIELDS = frozenset({"traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id"})

#: Inflate at most this much per step, so memory stays near the limit whatever the compression ratio.
_INFLATE_STEP = 1 << 20


class _Refusal(ValueError):
    """A body the receiver refuses. The message says why, for the client's error log; `reason` is a short
    stable code for the receiver's own metrics (a label value)."""

    reason = "invalid"

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class DecodeError(_Refusal):
    """The body is not a valid OTLP export request."""

    reason = "invalid_body"


class UnsupportedMediaType(_Refusal):
    """The Content-Type or Content-Encoding is not one OTLP/HTTP defines."""

    reason = "unsupported_content_type"


class BodyTooLarge(_Refusal):
    """The body, as sent or once inflated, is larger than the receiver accepts."""

    reason = "too_large"


def media_type(content_type: str | None) -> MediaType:
    """The encoding a Content-Type header names, ignoring parameters such as `charset`."""
    essence = (content_type or "").split(";", 1)[0].strip().lower()
    for media, names in CONTENT_TYPES.items():
        if essence in names:
            return media
    accepted = ", ".join(name for names in CONTENT_TYPES.values() for name in names)
    raise UnsupportedMediaType(f"Content-Type {content_type or '(none)'!r} is not supported; use one of {accepted}")


def decompress(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    """The body with its Content-Encoding undone: `gzip` is inflated, absent or `identity` is returned as it is.

    Raises BodyTooLarge as soon as the inflated size passes `limit`, DecodeError for a corrupt or truncated gzip
    stream and UnsupportedMediaType for any other encoding."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding == "identity":
        return body
    if encoding not in ("gzip", "x-gzip"):
        raise UnsupportedMediaType(
            f"Content-Encoding {content_encoding!r} is not supported; use gzip or none", "unsupported_content_encoding"
        )
    out = bytearray()
    pending = body
    try:
        while pending:  # a gzip body may hold several members back to back
            inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            while pending and not inflater.eof:
                out += inflater.decompress(pending, min(_INFLATE_STEP, limit + 1 - len(out)))
                if len(out) > limit:
                    raise BodyTooLarge(f"the body inflates to more than {limit} bytes", "inflated_too_large")
                pending = inflater.unconsumed_tail
            if not inflater.eof:
                raise DecodeError("the gzip body is truncated", "invalid_gzip")
            pending = inflater.unused_data
    except zlib.error as exc:
        raise DecodeError(f"the body is not valid gzip: {exc}", "invalid_gzip") from exc
    return bytes(out)


def decode_request(signal: Signal, body: bytes, media: MediaType) -> Message:
    """The export request of `signal` encoded in `body`."""
    message = REQUEST_TYPES[signal]()
    name = type(message).__name__
    if media == "protobuf":
        try:
            message.ParseFromString(body)
        except (ProtobufDecodeError, RecursionError) as exc:
            raise DecodeError(f"the body is not a valid protobuf {name}: {exc}", "invalid_protobuf") from exc
        return message
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise DecodeError(f"the body is not valid JSON: {exc}", "invalid_json") from exc
    if not isinstance(document, dict):
        raise DecodeError(f"the body must be a JSON object ({name}), not {type(document).__name__}", "invalid_json")
    try:
        document = _hex_ids_to_base64(document)
    except RecursionError as exc:
        raise DecodeError("the JSON body is nested too deeply", "invalid_json") from exc
    try:
        json_format.ParseDict(document, message, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        raise DecodeError(f"the body is not a valid OTLP/JSON {name}: {exc}", "invalid_json") from exc
    return message


def _hex_ids_to_base64(node: Any) -> Any:
    """A copy of an OTLP/JSON document with every trace and span id turned from hex into base64, which is how
    protobuf's JSON mapping spells bytes. Attribute keys are values (`{"key": "traceId", ...}`), never dict keys,
    so user data is not touched."""
    if isinstance(node, list):
        return [_hex_ids_to_base64(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {}
    for key, value in node.items():
        if key in _ID_FIELDS and isinstance(value, str):
            try:
                value = base64.b64encode(bytes.fromhex(value)).decode("ascii")
            except ValueError:
                raise DecodeError(f"{key} {value!r} is not a hex string", "invalid_json") from None
        else:
            value = _hex_ids_to_base64(value)
        converted[key] = value
    return converted
