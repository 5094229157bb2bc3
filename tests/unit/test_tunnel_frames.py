"""The tunnel frames are OpenChoreo's `messaging/types.go` JSON, byte for byte (CPN §4)."""

from __future__ import annotations

import base64
import json

import pytest

from tunnel.frames import (
    MAX_FRAME_BYTES,
    FrameError,
    FrameTooLarge,
    StreamChunk,
    StreamInit,
    StreamResponse,
    TunnelError,
    TunnelRequest,
    TunnelResponse,
    as_stream_response,
    decode,
    encode,
)

FULL_REQUEST = TunnelRequest(
    request_id="6f1c2a4e-0d7b-4a53-9a36-2f1f2f0c9e11",
    gateway_request_id="gw-0123456789abcdef",
    target="k8s",
    method="PATCH",
    path="/apis/apps/v1/namespaces/dp-x/deployments/cart",
    query="fieldManager=renderedrelease-controller&force=true",
    headers={"Content-Type": ["application/apply-patch+yaml"]},
    body=b'{"apiVersion":"apps/v1"}',
)


@pytest.mark.parametrize(
    "frame",
    [
        FULL_REQUEST,
        TunnelRequest(request_id="r", target="k8s", method="GET", path="/api"),
        TunnelResponse(request_id="r", status_code=200, headers={"A": ["1", "2"]}, body=b"\x00\xff"),
        TunnelResponse(
            request_id="r", status_code=502, error=TunnelError(message="backend request failed: x", code=502)
        ),
        TunnelResponse(request_id="r", status_code=500, error=TunnelError(message="m", details="d")),
        StreamInit(request_id="r", target="hubble", method="GET", path="/", upgrade_proto="hubble/v1"),
        StreamChunk(request_id="r", data=b"abc", stream_id="1", is_close=True),
        StreamChunk(request_id="r", data=b""),
    ],
)
def test_round_trip(frame: object) -> None:
    assert decode(encode(frame)) == frame  # type: ignore[arg-type]


def test_request_field_names_order_and_base64() -> None:
    text = encode(FULL_REQUEST)
    obj = json.loads(text)
    assert list(obj) == ["requestID", "gatewayRequestID", "target", "method", "path", "query", "headers", "body"]
    assert obj["body"] == base64.standard_b64encode(FULL_REQUEST.body).decode()
    assert " " not in text.replace("application/apply-patch+yaml", "")


def test_omitempty_leaves_out_empty_optional_fields() -> None:
    assert json.loads(encode(TunnelRequest(request_id="r", target="k8s", method="GET", path="/api"))) == {
        "requestID": "r",
        "target": "k8s",
        "method": "GET",
        "path": "/api",
    }
    assert json.loads(encode(TunnelResponse(request_id="r", status_code=0))) == {"requestID": "r", "statusCode": 0}
    assert json.loads(encode(StreamChunk(request_id="r", data=b""))) == {"requestID": "r", "data": ""}
    error = TunnelResponse(request_id="r", status_code=404, error=TunnelError(message="unknown target: x"))
    assert json.loads(encode(error))["error"] == {"message": "unknown target: x"}
    init = json.loads(encode(StreamInit(request_id="r", target="k8s", method="GET", path="/x")))
    assert init == {"requestID": "r", "target": "k8s", "method": "GET", "path": "/x", "isUpgrade": True}


def test_std_base64_not_urlsafe() -> None:
    data = bytes([0xFB, 0xFF, 0xBF])  # encodes to "+/+/" in std, "-_-_" in urlsafe
    assert json.loads(encode(StreamChunk(request_id="r", data=data)))["data"] == "+/+/"
    with pytest.raises(FrameError):
        decode('{"requestID":"r","data":"-_-_"}')
    with pytest.raises(FrameError):
        decode('{"requestID":"r","statusCode":200,"body":"YQ"}')  # missing padding: Go's StdEncoding refuses it


def test_go_html_escaping_and_sorted_header_keys() -> None:
    text = encode(TunnelResponse(request_id="<&>", status_code=200, headers={"b": ["x"], "a": ["y"]}))
    assert text.startswith('{"requestID":"\\u003c\\u0026\\u003e"')
    assert list(json.loads(text)["headers"]) == ["a", "b"]
    assert decode(text).request_id == "<&>"


def test_decode_order() -> None:
    both = '{"requestID":"r","isUpgrade":true,"data":"YQ==","statusCode":1,"target":"k8s"}'
    assert isinstance(decode(both), StreamInit)
    assert isinstance(decode('{"requestID":"r","data":"YQ==","statusCode":1}'), StreamChunk)
    assert isinstance(decode('{"requestID":"r","statusCode":200}'), TunnelResponse)
    assert isinstance(decode('{"requestID":"r","isUpgrade":false,"statusCode":200}'), TunnelResponse)
    assert isinstance(decode('{"requestID":"r","data":null,"method":"GET"}'), TunnelRequest)
    assert isinstance(decode(b'{"requestID":"r","method":"GET"}'), TunnelRequest)


def test_missing_and_null_fields_take_go_zero_values() -> None:
    frame = decode('{"requestID":"r","statusCode":204,"headers":{"X":null},"body":null,"error":null}')
    assert frame == TunnelResponse(request_id="r", status_code=204, headers={"X": []})


def test_stream_response_conversion() -> None:
    response = decode(encode(StreamResponse(request_id="r", status_code=501, error=TunnelError(message="no"))))
    assert isinstance(response, TunnelResponse)
    assert as_stream_response(response) == StreamResponse(request_id="r", status_code=501, error=TunnelError("no"))


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        b"\xff\xfe",
        "[1,2]",
        '"s"',
        "null",
        "{}",  # no requestID
        '{"requestID":1}',
        '{"requestID":"r","statusCode":"200"}',
        '{"requestID":"r","statusCode":true}',
        '{"requestID":"r","statusCode":200.5}',
        '{"requestID":"r","method":["GET"]}',
        '{"requestID":"r","headers":["a"]}',
        '{"requestID":"r","headers":{"a":"b"}}',
        '{"requestID":"r","headers":{"a":[1]}}',
        '{"requestID":"r","body":5}',
        '{"requestID":"r","body":"***"}',
        '{"requestID":"r","isUpgrade":"yes"}',
        '{"requestID":"r","data":"YQ==","isClose":1}',
        '{"requestID":"r","statusCode":500,"error":"boom"}',
        '{"requestID":"r","statusCode":500,"error":{"code":"x","message":"m"}}',
    ],
)
def test_bad_frames_raise_frame_error(text: str | bytes) -> None:
    with pytest.raises(FrameError):
        decode(text)


def test_oversize_frames() -> None:
    big = '{"requestID":"r","body":"' + "A" * MAX_FRAME_BYTES + '"}'
    with pytest.raises(FrameTooLarge):
        decode(big)
    with pytest.raises(FrameTooLarge):
        decode(big.encode())
    with pytest.raises(FrameTooLarge):
        encode(TunnelResponse(request_id="r", status_code=200, body=b"x" * (MAX_FRAME_BYTES * 3 // 4)))
    ten_mib = TunnelRequest(request_id="r", target="k8s", method="PUT", path="/", body=b"x" * (10 * 1024 * 1024))
    assert decode(encode(ten_mib)) == ten_mib
