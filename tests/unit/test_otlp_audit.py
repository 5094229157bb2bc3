"""Audit records over OTLP (collectors/otlp/): encoded as log records marked `openchoreo.audit` in requests of
their own, believed by the receiver only on a request carrying its internal token; anywhere else the marker is
ignored and the record is an ordinary log line."""

from __future__ import annotations

import asyncio
import dataclasses
import gzip

import httpx
import orjson
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord as OtlpLog
from opentelemetry.proto.logs.v1.logs_pb2 import ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from adapters.protocols import WriteResult
from collectors.otlp.encode import encode_batch
from collectors.otlp.mapping import AUDIT_MARKER, map_logs
from collectors.otlp.receiver import build_otlp_app
from devservers.sample import identity
from domain.audit import Actor, AuditRecord, AuditResource, Collected, audit_document
from domain.model import LogRecord

TOKEN = "internal-token-0123456789abcdef"
RECORD = AuditRecord(
    event_id="evt-9",
    time_ns=1_764_900_000_000_000_001,
    actor=Actor("service_account", "rule-controller", "https://idp"),
    action="incident.update",
    category="management",
    result="denied",
    surface="mcp",
    resource=AuditResource(type="incident", name="i-1"),
    collector=Collected("openchoreo-observability-plane", "observer-0", "observer"),
)
DOCUMENT = orjson.dumps(audit_document(RECORD)).decode()


def marked_request(body: str = DOCUMENT) -> ExportLogsServiceRequest:
    """What any OTLP client could send: a log record carrying the audit marker."""
    record = OtlpLog(time_unix_nano=5, body=AnyValue(string_value=body))
    record.attributes.append(KeyValue(key=AUDIT_MARKER, value=AnyValue(bool_value=True)))
    resource = Resource(attributes=[KeyValue(key="k8s.pod.name", value=AnyValue(string_value="cart-0"))])
    return ExportLogsServiceRequest(
        resource_logs=[ResourceLogs(resource=resource, scope_logs=[ScopeLogs(log_records=[record])])]
    )


# ----------------------------------------------------------------------------------------------- mapping


def test_a_marked_record_is_an_ordinary_log_line_unless_trusted():
    untrusted = map_logs(marked_request())
    assert untrusted.audit == []
    assert [record.body for record in untrusted.logs] == [DOCUMENT]
    trusted = map_logs(marked_request(), trust_audit=True)
    assert (trusted.logs, trusted.audit) == ([], [RECORD])


@pytest.mark.parametrize("body", ["not json", "{}", DOCUMENT[:-3], DOCUMENT.replace('"denied"', '"maybe"')])
def test_a_trusted_marked_record_that_is_not_an_audit_record_stays_a_log_line(body: str):
    mapped = map_logs(marked_request(body), trust_audit=True)
    assert (mapped.audit, [record.body for record in mapped.logs]) == ([], [body])


def test_audit_records_encode_into_requests_of_their_own_and_map_back_equal():
    log = LogRecord(1, "hello", identity("cart"), "INFO")
    other = dataclasses.replace(RECORD, event_id="evt-10", collector=None)
    requests = encode_batch(logs=[log], audit=[RECORD, other])
    assert [(request.signal, request.audit) for request in requests] == [("logs", False), ("logs", True)]
    assert map_logs(requests[1].message(), trust_audit=True).audit == [RECORD, other]  # type: ignore[arg-type]
    assert map_logs(requests[0].message(), trust_audit=True).audit == []  # type: ignore[arg-type]
    halves = requests[1].halves()
    assert all(half.audit for half in halves)


def test_an_audit_request_read_without_trust_is_logs_of_the_pod_that_wrote_them():
    (request,) = encode_batch(audit=[RECORD])
    (line,) = map_logs(request.message()).logs  # type: ignore[arg-type]
    assert line.body == DOCUMENT
    assert (line.identity.pod_namespace, line.identity.pod, line.identity.container) == (
        "openchoreo-observability-plane",
        "observer-0",
        "observer",
    )


# ----------------------------------------------------------------------------------------------- the receiver


class Recording:
    """A sink that keeps what it was handed."""

    def __init__(self) -> None:
        self.logs: list[LogRecord] = []
        self.audit: list[AuditRecord] = []

    async def write(self, *, batch_id: str, logs=(), events=(), spans=(), metrics=(), audit=()) -> WriteResult:
        self.logs += logs
        self.audit += audit
        return WriteResult.delivered()


def post(app, headers: dict[str, str]) -> httpx.Response:
    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://collector") as client:
            body = gzip.compress(marked_request().SerializeToString())
            return await client.post(
                "/v1/logs",
                content=body,
                headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip", **headers},
            )

    return asyncio.run(send())


def test_the_receiver_takes_audit_records_only_from_requests_carrying_the_internal_token():
    sink = Recording()
    app = build_otlp_app(sink, audit_token=TOKEN)
    assert post(app, {"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert (sink.audit, sink.logs) == ([RECORD], [])


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token-0123456789abcdef"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": "Bearer "},
    ],
)
def test_without_the_token_the_marker_is_ignored_and_the_record_is_a_log_line(headers: dict[str, str]):
    sink = Recording()
    assert post(build_otlp_app(sink, audit_token=TOKEN), headers).status_code == 200
    assert sink.audit == []
    assert [record.body for record in sink.logs] == [DOCUMENT]


def test_a_receiver_without_a_token_takes_no_audit_records_at_all():
    sink = Recording()
    assert post(build_otlp_app(sink), {"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert (sink.audit, len(sink.logs)) == ([], 1)


def test_a_sink_from_before_audit_records_still_takes_ordinary_exports():
    class Old:
        def __init__(self) -> None:
            self.logs: list[LogRecord] = []

        async def write(self, *, batch_id: str, logs=(), events=(), spans=(), metrics=()) -> WriteResult:
            self.logs += logs
            return WriteResult.delivered()

    sink = Old()
    assert post(build_otlp_app(sink, audit_token=TOKEN), {}).status_code == 200  # type: ignore[arg-type]
    assert len(sink.logs) == 1
