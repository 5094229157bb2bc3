"""The JSON text frames of the agent tunnel, byte-compatible with OpenChoreo's `messaging/types.go` (CPN §4).

Why by hand and not pydantic: the wire is Go's `encoding/json` output (omitempty, `[]byte` as std base64, no type
discriminator, HTML-safe escaping), and a frame arriving from the network must fail with one error type
(`FrameError`) that the reader turns into a close code, whatever is wrong with it.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_FRAME_BYTES = 16 * 1024 * 1024
"""One frame at most: a 10 MiB body in base64 (13.4 MiB) plus headers fits; anything larger closes the socket (1009)."""


class FrameError(ValueError):
    """A frame that is not JSON, not an object, has a field of the wrong type, or is larger than MAX_FRAME_BYTES."""


class FrameTooLarge(FrameError):
    """The frame exceeds MAX_FRAME_BYTES: a reader closes with 1009 rather than 1007."""


@dataclass(frozen=True)
class TunnelError:
    """`error{code?, message, details?}` of a response: a failure the agent met, not the backend's own status."""

    message: str
    code: int = 0
    details: str = ""


@dataclass(frozen=True)
class TunnelRequest:
    """`HTTPTunnelRequest`, gateway -> agent: one HTTP request the agent replays against `target`."""

    request_id: str
    target: str
    method: str
    path: str
    query: str = ""
    headers: Mapping[str, list[str]] = field(default_factory=dict)
    body: bytes = b""
    gateway_request_id: str = ""


@dataclass(frozen=True)
class TunnelResponse:
    """`HTTPTunnelResponse`, agent -> gateway: the backend's answer to the request of the same `request_id`."""

    request_id: str
    status_code: int
    headers: Mapping[str, list[str]] = field(default_factory=dict)
    body: bytes = b""
    error: TunnelError | None = None


@dataclass(frozen=True)
class StreamInit:
    """`HTTPTunnelStreamInit`, gateway -> agent: opens an upgraded stream (exec, wirelogs); `isUpgrade` is always true."""

    request_id: str
    target: str
    method: str
    path: str
    query: str = ""
    headers: Mapping[str, list[str]] = field(default_factory=dict)
    upgrade_proto: str = ""


@dataclass(frozen=True)
class StreamChunk:
    """`HTTPTunnelStreamChunk`, both ways: bytes of an open stream; `is_close` ends it."""

    request_id: str
    data: bytes
    stream_id: str = ""
    is_close: bool = False


@dataclass(frozen=True)
class StreamResponse:
    """`HTTPTunnelStreamResponse`, agent -> gateway: the answer to a StreamInit (ours: always 501, streams unsupported).

    On the wire it is a TunnelResponse without a body, so `decode` returns a TunnelResponse for it; a reader that
    knows the pending id was a stream converts with `as_stream_response`.
    """

    request_id: str
    status_code: int
    headers: Mapping[str, list[str]] = field(default_factory=dict)
    error: TunnelError | None = None


Frame = TunnelRequest | TunnelResponse | StreamInit | StreamChunk | StreamResponse


# ---------------------------------------------------------------------------------------------------------- encode


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _headers_out(headers: Mapping[str, list[str]]) -> dict[str, list[str]]:
    # Go marshals a map with its keys sorted.
    return {name: list(headers[name]) for name in sorted(headers)}


def _error_out(error: TunnelError) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if error.code:
        out["code"] = error.code
    out["message"] = error.message
    if error.details:
        out["details"] = error.details
    return out


def _to_object(frame: Frame) -> dict[str, Any]:
    """The JSON object of a frame, fields in Go's struct order, empty optional fields left out (omitempty)."""
    out: dict[str, Any] = {"requestID": frame.request_id}
    if isinstance(frame, TunnelRequest):
        if frame.gateway_request_id:
            out["gatewayRequestID"] = frame.gateway_request_id
        out.update(target=frame.target, method=frame.method, path=frame.path)
        if frame.query:
            out["query"] = frame.query
        if frame.headers:
            out["headers"] = _headers_out(frame.headers)
        if frame.body:
            out["body"] = _b64(frame.body)
    elif isinstance(frame, StreamInit):
        out.update(target=frame.target, method=frame.method, path=frame.path)
        if frame.query:
            out["query"] = frame.query
        if frame.headers:
            out["headers"] = _headers_out(frame.headers)
        out["isUpgrade"] = True
        if frame.upgrade_proto:
            out["upgradeProto"] = frame.upgrade_proto
    elif isinstance(frame, StreamChunk):
        out["data"] = _b64(frame.data)
        if frame.stream_id:
            out["streamId"] = frame.stream_id
        if frame.is_close:
            out["isClose"] = True
    else:  # TunnelResponse | StreamResponse
        out["statusCode"] = frame.status_code
        if frame.headers:
            out["headers"] = _headers_out(frame.headers)
        if isinstance(frame, TunnelResponse) and frame.body:
            out["body"] = _b64(frame.body)
        if frame.error is not None:
            out["error"] = _error_out(frame.error)
    return out


# Go's encoder is HTML-safe by default; these characters only ever occur inside JSON strings, so a replace is exact.
_GO_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def encode(frame: Frame) -> str:
    """One frame as the JSON text Go's `json.Marshal` would write; FrameTooLarge past MAX_FRAME_BYTES.

    Refusing to send an oversized frame here lets the sender answer with an error instead of having the peer
    close the whole connection with 1009.
    """
    text = json.dumps(_to_object(frame), ensure_ascii=False, separators=(",", ":")).translate(_GO_ESCAPES)
    if len(text) > MAX_FRAME_BYTES or len(text.encode("utf-8")) > MAX_FRAME_BYTES:
        raise FrameTooLarge(f"frame of {len(text.encode('utf-8'))} bytes exceeds {MAX_FRAME_BYTES}")
    return text


# ---------------------------------------------------------------------------------------------------------- decode


def _str(obj: Mapping[str, Any], key: str, *, required: bool = False) -> str:
    value = obj.get(key)
    if value is None:
        if required:
            raise FrameError(f"missing field {key!r}")
        return ""
    if not isinstance(value, str):
        raise FrameError(f"field {key!r} must be a string")
    return value


def _int(obj: Mapping[str, Any], key: str) -> int:
    value = obj.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise FrameError(f"field {key!r} must be an integer")
    return value


def _bool(obj: Mapping[str, Any], key: str) -> bool:
    value = obj.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise FrameError(f"field {key!r} must be a boolean")
    return value


def _bytes(obj: Mapping[str, Any], key: str) -> bytes:
    value = obj.get(key)
    if value is None:
        return b""
    if not isinstance(value, str):
        raise FrameError(f"field {key!r} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise FrameError(f"field {key!r} is not standard base64") from exc


def _headers(obj: Mapping[str, Any]) -> dict[str, list[str]]:
    value = obj.get("headers")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise FrameError("field 'headers' must be an object of string lists")
    out: dict[str, list[str]] = {}
    for name, values in value.items():
        if values is None:
            out[name] = []
            continue
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise FrameError(f"header {name!r} must be a list of strings")
        out[name] = list(values)
    return out


def _error(obj: Mapping[str, Any]) -> TunnelError | None:
    value = obj.get("error")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise FrameError("field 'error' must be an object")
    return TunnelError(message=_str(value, "message"), code=_int(value, "code"), details=_str(value, "details"))


def decode(text: str | bytes) -> Frame:
    """Parse one frame. No type field exists, so the shape decides, in the order of upstream's readers:
    `isUpgrade: true` -> StreamInit; `data` -> StreamChunk; `statusCode` -> TunnelResponse; else TunnelRequest.

    `requestID` is required (a frame without it cannot be correlated); every other missing field takes Go's zero
    value, and `null` counts as missing, as Go's decoder does. Anything else malformed raises FrameError.
    """
    size = len(text) if isinstance(text, bytes) else len(text.encode("utf-8"))
    if size > MAX_FRAME_BYTES:
        raise FrameTooLarge(f"frame of {size} bytes exceeds {MAX_FRAME_BYTES}")
    try:
        obj = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FrameError(f"frame is not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise FrameError("frame is not a JSON object")
    request_id = _str(obj, "requestID", required=True)
    if _bool(obj, "isUpgrade"):
        return StreamInit(
            request_id=request_id,
            target=_str(obj, "target"),
            method=_str(obj, "method"),
            path=_str(obj, "path"),
            query=_str(obj, "query"),
            headers=_headers(obj),
            upgrade_proto=_str(obj, "upgradeProto"),
        )
    if obj.get("data") is not None:
        return StreamChunk(
            request_id=request_id,
            data=_bytes(obj, "data"),
            stream_id=_str(obj, "streamId"),
            is_close=_bool(obj, "isClose"),
        )
    if "statusCode" in obj:
        return TunnelResponse(
            request_id=request_id,
            status_code=_int(obj, "statusCode"),
            headers=_headers(obj),
            body=_bytes(obj, "body"),
            error=_error(obj),
        )
    return TunnelRequest(
        request_id=request_id,
        gateway_request_id=_str(obj, "gatewayRequestID"),
        target=_str(obj, "target"),
        method=_str(obj, "method"),
        path=_str(obj, "path"),
        query=_str(obj, "query"),
        headers=_headers(obj),
        body=_bytes(obj, "body"),
    )


def as_stream_response(response: TunnelResponse) -> StreamResponse:
    """The StreamResponse a decoded TunnelResponse stands for, when its id belongs to a StreamInit."""
    return StreamResponse(
        request_id=response.request_id, status_code=response.status_code, headers=response.headers, error=response.error
    )
