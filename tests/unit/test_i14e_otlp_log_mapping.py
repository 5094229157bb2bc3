"""Issue 14, goal 5: OTLP log records map as before, with each field read once and per-request work done once.

map_logs is on the ingest path of every log line; it now skips absent fields and normalizes each distinct
severity text once per request. One request mixing every case pins the answer, record by record and in order.
"""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue, KeyValueList
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord as OtlpLog
from opentelemetry.proto.logs.v1.logs_pb2 import ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from collectors.otlp import mapping
from collectors.otlp.mapping import map_logs
from devservers.sample import BASE_NS, CART_PROD_LABELS
from domain.identity import identity_from_attributes
from domain.loglevel import detect_level, normalize_level
from domain.model import LogRecord

TRACE, SPAN = bytes(range(1, 17)), bytes(range(1, 9))
OTHER_LABELS = {**CART_PROD_LABELS, "openchoreo.dev/component": "frontend", "k8s.pod.name": "frontend-0"}


def kvs(values: dict[str, str]) -> list[KeyValue]:
    return [KeyValue(key=key, value=AnyValue(string_value=text)) for key, text in values.items()]


def log(body: AnyValue | None = None, **fields: Any) -> OtlpLog:
    record = OtlpLog(**fields)
    if body is not None:
        record.body.CopyFrom(body)
    return record


def text(body: str) -> AnyValue:
    return AnyValue(string_value=body)


def request(*resources: tuple[dict[str, str], list[OtlpLog]]) -> ExportLogsServiceRequest:
    return ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(resource=Resource(attributes=kvs(labels)), scope_logs=[ScopeLogs(log_records=records)])
            for labels, records in resources
        ]
    )


def test_one_request_mixing_every_case_maps_record_by_record() -> None:
    cart, frontend = identity_from_attributes(CART_PROD_LABELS), identity_from_attributes(OTHER_LABELS)
    exported = request(
        (
            CART_PROD_LABELS,
            [
                log(text("a"), time_unix_nano=BASE_NS, severity_text="warn", trace_id=TRACE, span_id=SPAN),
                log(text("b"), time_unix_nano=BASE_NS + 1, severity_text="WARNING"),
                log(text("c"), time_unix_nano=BASE_NS + 2, severity_text="warn"),
                log(text("d"), time_unix_nano=BASE_NS + 3, severity_text="nonsense"),
                log(text("e"), time_unix_nano=BASE_NS + 4, severity_number=17),
                log(text("ERROR: disk full"), observed_time_unix_nano=BASE_NS + 5),
                log(AnyValue(int_value=42), time_unix_nano=BASE_NS + 6, severity_text="info"),
                log(time_unix_nano=BASE_NS + 7, severity_text="info"),
                log(
                    AnyValue(kvlist_value=KeyValueList(values=kvs({"k": "v"}))),
                    time_unix_nano=BASE_NS + 8,
                    severity_text="debug",
                    attributes=kvs({"log.iostream": "stderr"}),
                ),
                log(text("event"), time_unix_nano=BASE_NS + 9, attributes=kvs({"k8s.event.reason": "BackOff"})),
                log(
                    text("f"),
                    time_unix_nano=BASE_NS + 10,
                    severity_text="warn",
                    attributes=kvs({"log.iostream": "elsewhere", "other": "x"}),
                    trace_id=TRACE[:15],
                    span_id=bytes(8),
                ),
            ],
        ),
        (OTHER_LABELS, [log(AnyValue(bytes_value=b"\x01\xff"), time_unix_nano=BASE_NS + 11, severity_text="Err")]),
    )

    mapped = map_logs(exported)

    def expect(ts: int, body: str, level: str, who: Any = cart, **extra: str) -> LogRecord:
        return LogRecord(ts_ns=ts, body=body, identity=who, level=level, **{"stream": "otlp", **extra})

    assert mapped.logs == [
        expect(BASE_NS, "a", normalize_level("warn"), trace_id=TRACE.hex(), span_id=SPAN.hex()),
        expect(BASE_NS + 1, "b", normalize_level("WARNING")),
        expect(BASE_NS + 2, "c", normalize_level("warn")),
        expect(BASE_NS + 3, "d", "INFO"),
        expect(BASE_NS + 4, "e", "ERROR"),
        expect(BASE_NS + 5, "ERROR: disk full", detect_level("ERROR: disk full")),
        expect(BASE_NS + 6, "42", "INFO"),
        expect(BASE_NS + 7, "", "INFO"),
        expect(BASE_NS + 8, '{"k":"v"}', "DEBUG", stream="stderr"),
        expect(BASE_NS + 10, "f", normalize_level("warn")),
        expect(BASE_NS + 11, "01ff", normalize_level("Err"), frontend),
    ]
    assert [event.reason for event in mapped.events] == ["BackOff"]
    assert mapped.rejected == 0


def test_a_record_with_no_time_at_all_is_dated_now() -> None:
    mapped = map_logs(request((CART_PROD_LABELS, [log(text("when?"))])))

    assert mapped.logs[0].ts_ns > BASE_NS


def test_each_distinct_severity_text_is_normalized_once_per_request(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []

    def counting(word: str) -> str:
        seen.append(word)
        return normalize_level(word)

    monkeypatch.setattr(mapping, "normalize_level", counting)
    records = [
        log(text(f"line {i}"), time_unix_nano=BASE_NS + i, severity_text=("INFO", "warn")[i % 2]) for i in range(50)
    ]

    mapped = map_logs(request((CART_PROD_LABELS, records[:25]), (OTHER_LABELS, records[25:])))

    assert [record.level for record in mapped.logs] == [("INFO", "WARN")[i % 2] for i in range(50)]
    assert sorted(seen) == ["INFO", "warn"]
