"""The OTLP/HTTP receiver over a real embedded backend, through ASGI and through a real server with the real
OpenTelemetry SDK exporters."""

from __future__ import annotations

import asyncio
import gzip
import json
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest, ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord as OtlpLog
from opentelemetry.proto.logs.v1.logs_pb2 import ResourceLogs, ScopeLogs
from opentelemetry.proto.metrics.v1 import metrics_pb2 as pm
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from adapters.embedded.backend import EmbeddedBackend
from adapters.protocols import BackendUnavailable, WriteResult
from collectors.otlp.receiver import build_otlp_app
from devservers.sample import BASE_NS, CART_PROD_LABELS, COMPONENTS, ENVIRONMENTS, PROJECT_UID
from domain.model import ComponentScope, EventsQuery, LogsQuery, TimeRange

pytestmark = pytest.mark.integration

PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}
GZIPPED = {**PROTOBUF, "Content-Encoding": "gzip"}
LABELS = CART_PROD_LABELS
CART = ComponentScope("acme", PROJECT_UID, COMPONENTS["cart"], ENVIRONMENTS["prod"])
ALL_TIME = TimeRange(0, 2**62)


def kvs(mapping: dict[str, str]) -> list[KeyValue]:
    return [KeyValue(key=key, value=AnyValue(string_value=item)) for key, item in mapping.items()]


def logs_body(*bodies: str, attributes: dict[str, str] | None = None) -> bytes:
    records = [
        OtlpLog(time_unix_nano=BASE_NS + i, body=AnyValue(string_value=text), attributes=kvs(attributes or {}))
        for i, text in enumerate(bodies)
    ]
    request = ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(resource=Resource(attributes=kvs(LABELS)), scope_logs=[ScopeLogs(log_records=records)])
        ]
    )
    return request.SerializeToString()


def resource_json(labels: dict[str, str] = LABELS) -> dict[str, Any]:
    return {"attributes": [{"key": key, "value": {"stringValue": item}} for key, item in labels.items()]}


async def stored_logs(backend: EmbeddedBackend) -> list[str]:
    page = await backend.query_logs(LogsQuery(scope=CART, range=ALL_TIME, limit=1000, sort="asc"))
    return [log.body for log in page.items]


def rows(backend: EmbeddedBackend, sql: str) -> list[tuple]:
    with sqlite3.connect(backend.store.path) as conn:
        return conn.execute(sql).fetchall()


@pytest.fixture
async def otlp(backend: EmbeddedBackend) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(build_otlp_app(backend)) as client:
        yield client


def client_for(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://collector")


# ----------------------------------------------------------------------------------------------- signals in


async def test_protobuf_logs_are_stored(otlp: httpx.AsyncClient, backend: EmbeddedBackend):
    response = await otlp.post("/v1/logs", content=logs_body("started", "ERROR payment failed"), headers=PROTOBUF)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-protobuf"
    reply = ExportLogsServiceResponse.FromString(response.content)
    assert not reply.HasField("partial_success")
    page = await backend.query_logs(LogsQuery(scope=CART, range=ALL_TIME, sort="asc"))
    assert [(log.body, log.level, log.ts_ns) for log in page.items] == [
        ("started", "INFO", BASE_NS),
        ("ERROR payment failed", "ERROR", BASE_NS + 1),
    ]
    assert page.items[0].identity.component == "cart"


async def test_json_traces_with_hex_ids(otlp: httpx.AsyncClient, backend: EmbeddedBackend):
    trace_id, root_id, child_id = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174", "eee19b7ec3c1b173"
    document = {
        "resourceSpans": [
            {
                "resource": resource_json(),
                "scopeSpans": [
                    {
                        "scope": {"name": "test"},
                        "spans": [
                            {
                                "traceId": trace_id,
                                "spanId": root_id,
                                "parentSpanId": "",
                                "name": "GET /cart",
                                "kind": 2,
                                "startTimeUnixNano": str(BASE_NS),
                                "endTimeUnixNano": str(BASE_NS + 9_000_000),
                                "attributes": [{"key": "http.response.status_code", "value": {"intValue": "200"}}],
                                "status": {"code": "STATUS_CODE_OK"},
                            },
                            {
                                "traceId": trace_id,
                                "spanId": child_id,
                                "parentSpanId": root_id,
                                "name": "SELECT carts",
                                "kind": "SPAN_KIND_CLIENT",
                                "startTimeUnixNano": str(BASE_NS + 1_000_000),
                                "endTimeUnixNano": str(BASE_NS + 2_000_000),
                                "links": [{"traceId": trace_id, "spanId": root_id}],
                            },
                        ],
                    }
                ],
            }
        ]
    }
    response = await otlp.post("/v1/traces", content=json.dumps(document), headers=JSON)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {}
    root = await backend.get_span(trace_id, root_id)
    assert (root.name, root.kind, root.status_code, root.parent_span_id) == ("GET /cart", "Server", "ok", "")
    assert root.attributes == {"http.response.status_code": 200}
    assert root.identity.component_uid == COMPONENTS["cart"]
    child = await backend.get_span(trace_id, child_id)
    assert (child.parent_span_id, child.kind) == (root_id, "Client")


async def test_gzip_metrics_are_stored(otlp: httpx.AsyncClient, backend: EmbeddedBackend):
    request = ExportMetricsServiceRequest(
        resource_metrics=[
            pm.ResourceMetrics(
                resource=Resource(attributes=kvs(LABELS)),
                scope_metrics=[
                    pm.ScopeMetrics(
                        metrics=[
                            pm.Metric(
                                name="k8s.pod.memory.working_set",
                                gauge=pm.Gauge(data_points=[pm.NumberDataPoint(time_unix_nano=BASE_NS, as_int=2**20)]),
                            )
                        ]
                    )
                ],
            )
        ]
    )
    response = await otlp.post(
        "/v1/metrics",
        content=gzip.compress(request.SerializeToString()),
        headers=GZIPPED,
    )
    assert response.status_code == 200
    assert not ExportMetricsServiceResponse.FromString(response.content).HasField("partial_success")
    stored = rows(backend, "SELECT name, ts_ns, value FROM metric_points JOIN metric_series ON id = series_id")
    assert stored == [("k8s.pod.memory.working_set", BASE_NS, float(2**20))]


async def test_kubernetes_events_arrive_as_log_records(otlp: httpx.AsyncClient, backend: EmbeddedBackend):
    document = {
        "resourceLogs": [
            {
                "resource": resource_json(
                    {"k8s.object.kind": "Pod", "k8s.object.name": "cart-7d9f"}
                    | {f"k8s.object.label.{key}": item for key, item in LABELS.items()}
                ),
                "scopeLogs": [
                    {
                        "logRecords": [
                            {
                                "timeUnixNano": str(BASE_NS),
                                "severityText": "Warning",
                                "body": {"stringValue": "Back-off restarting failed container"},
                                "attributes": [
                                    {"key": "k8s.event.reason", "value": {"stringValue": "BackOff"}},
                                    {"key": "k8s.namespace.name", "value": {"stringValue": "dp-acme-shop-prod"}},
                                ],
                            }
                        ]
                    }
                ],
            }
        ]
    }
    response = await otlp.post("/v1/logs", json=document)
    assert response.status_code == 200
    (event,) = (await backend.query_events(EventsQuery(scope=CART, range=ALL_TIME))).items
    assert (event.type, event.reason) == ("Warning", "BackOff")
    assert (event.object_kind, event.object_name, event.object_namespace) == ("Pod", "cart-7d9f", "dp-acme-shop-prod")
    assert await stored_logs(backend) == []


async def test_partial_success_reports_rejected_points(otlp: httpx.AsyncClient, backend: EmbeddedBackend):
    document = {
        "resourceMetrics": [
            {
                "resource": resource_json(),
                "scopeMetrics": [
                    {
                        "metrics": [
                            {"name": "rpc.latency", "summary": {"dataPoints": [{"count": "1"}, {"count": "2"}]}},
                            {"name": "cpu", "gauge": {"dataPoints": [{"timeUnixNano": str(BASE_NS), "asDouble": 0.5}]}},
                        ]
                    }
                ],
            }
        ]
    }
    response = await otlp.post("/v1/metrics", json=document)
    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert int(partial["rejectedDataPoints"]) == 2
    assert "summary" in partial["errorMessage"]
    assert rows(backend, "SELECT name FROM metric_series") == [("cpu",)]


# ----------------------------------------------------------------------------------------------- refusals


async def test_malformed_protobuf_is_a_400_with_a_protobuf_status(otlp: httpx.AsyncClient):
    response = await otlp.post("/v1/logs", content=b"\x0a\xff\x01garbage", headers=PROTOBUF)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/x-protobuf"
    status = Status.FromString(response.content)
    assert "not a valid protobuf ExportLogsServiceRequest" in status.message


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "xyz"}]}]}]}', "traceId 'xyz' is not a hex"),
        (b'{"resourceSpans": "nope"}', "not a valid OTLP/JSON"),
    ],
)
async def test_bad_json_is_a_400_with_a_json_status(otlp: httpx.AsyncClient, body: bytes, message: str):
    response = await otlp.post("/v1/traces", content=body, headers=JSON)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert message in response.json()["message"]
    assert response.json()["code"] == 3  # INVALID_ARGUMENT


async def test_corrupt_gzip_is_a_400(otlp: httpx.AsyncClient):
    response = await otlp.post("/v1/logs", content=b"\x1f\x8bnot gzip", headers=GZIPPED)
    assert response.status_code == 400
    truncated = gzip.compress(logs_body("x"))[:-12]
    response = await otlp.post("/v1/logs", content=truncated, headers=GZIPPED)
    assert response.status_code == 400
    assert "truncated" in Status.FromString(response.content).message


async def test_oversized_bodies_are_413(backend: EmbeddedBackend):
    async with client_for(build_otlp_app(backend, max_body_bytes=1024)) as client:
        declared = await client.post("/v1/logs", content=b"\0" * 2048, headers=PROTOBUF)
        assert declared.status_code == 413

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the streamed size is what counts
            for _ in range(4):
                yield b"\0" * 512

        streamed = await client.post("/v1/logs", content=chunks(), headers=PROTOBUF)
        assert streamed.status_code == 413
        assert "larger than the limit of 1024 bytes" in Status.FromString(streamed.content).message

    # A gzip bomb: 16 KiB on the wire, within the limit, that inflates to 16 MiB. Inflation stops at the limit.
    bomb = gzip.compress(bytes(16 * 1024 * 1024))
    bomb_app = build_otlp_app(backend, max_body_bytes=1024 * 1024)
    async with client_for(bomb_app) as client:
        inflated = await client.post("/v1/logs", content=bomb, headers=GZIPPED)
    assert inflated.status_code == 413
    assert "inflates to more than 1048576 bytes" in Status.FromString(inflated.content).message
    assert bomb_app.state.stats.refused == {413: 1}


@pytest.mark.parametrize(
    ("headers", "error_encoding"),
    [
        ({"Content-Type": "text/plain"}, "json"),  # no usable encoding was asked for: errors are JSON
        ({}, "json"),
        ({**PROTOBUF, "Content-Encoding": "br"}, "protobuf"),
    ],
)
async def test_unsupported_media_is_415(otlp: httpx.AsyncClient, headers: dict[str, str], error_encoding: str):
    response = await otlp.post("/v1/logs", content=logs_body("x"), headers=headers)
    assert response.status_code == 415
    if error_encoding == "json":
        message = response.json()["message"]
    else:
        message = Status.FromString(response.content).message
    assert "is not supported" in message


async def test_content_type_parameters_are_ignored(otlp: httpx.AsyncClient):
    response = await otlp.post("/v1/logs", content=b"{}", headers={"Content-Type": "Application/JSON; charset=utf-8"})
    assert response.status_code == 200


# ----------------------------------------------------------------------------------------------- retries and load


async def test_a_retried_export_is_stored_once(otlp: httpx.AsyncClient, backend: EmbeddedBackend):
    body = logs_body("only once")
    for headers, content in ((PROTOBUF, body), (PROTOBUF, body), (GZIPPED, gzip.compress(body))):
        assert (await otlp.post("/v1/logs", content=content, headers=headers)).status_code == 200
    assert await stored_logs(backend) == ["only once"]
    response = await otlp.post("/v1/logs", content=logs_body("only once", "and another"), headers=PROTOBUF)
    assert response.status_code == 200
    assert await stored_logs(backend) == ["only once", "only once", "and another"]


async def test_a_large_export_is_stored_whole(otlp: httpx.AsyncClient, backend: EmbeddedBackend):
    bodies = [f"line {i:05d} " + "x" * 100 for i in range(2000)]  # ~250 KiB: decoded in a worker thread
    response = await otlp.post("/v1/logs", content=logs_body(*bodies), headers=PROTOBUF)
    assert response.status_code == 200
    assert rows(backend, "SELECT body FROM logs ORDER BY ts_ns") == [(body,) for body in bodies]


class UnavailableSink:
    async def write(self, **_: Any) -> None:
        raise BackendUnavailable("connection refused")


async def test_an_unavailable_backend_is_503_with_retry_after():
    async with client_for(build_otlp_app(UnavailableSink(), retry_after_s=7)) as client:
        response = await client.post("/v1/logs", content=logs_body("x"), headers=PROTOBUF)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "7"
    status = Status.FromString(response.content)
    assert status.code == 14 and "connection refused" in status.message  # UNAVAILABLE


class AnsweringSink:
    """Answers every write with the same result, as a backend's sink does."""

    def __init__(self, result: WriteResult) -> None:
        self.result = result

    async def write(self, **_: Any) -> WriteResult:
        return self.result


async def test_a_write_result_to_retry_is_503_with_the_backends_retry_after():
    async with client_for(build_otlp_app(AnsweringSink(WriteResult.retry(3.2, "OpenSearch answered 429")))) as client:
        response = await client.post("/v1/logs", content=logs_body("x"), headers=PROTOBUF)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "4"
    assert "OpenSearch answered 429" in Status.FromString(response.content).message


async def test_records_the_backend_refused_for_good_are_a_partial_success_and_counted():
    rejected: list[tuple[str, str, int]] = []
    sink = AnsweringSink(WriteResult.dropped("destination_invalid", 2))
    app = build_otlp_app(sink, on_rejected=lambda signal, code, count: rejected.append((signal, code, count)))
    async with client_for(app) as client:
        response = await client.post("/v1/logs", content=logs_body("a", "b"), headers=PROTOBUF)
    assert response.status_code == 200
    reply = ExportLogsServiceResponse.FromString(response.content)
    assert reply.partial_success.rejected_log_records == 2
    assert "destination_invalid" in reply.partial_success.error_message
    assert rejected == [("logs", "destination_invalid", 2)]


class BlockingSink:
    """Holds every write until released, so exports pile up in flight."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.writes = 0

    async def write(self, **_: Any) -> WriteResult:
        self.entered.set()
        await self.release.wait()
        self.writes += 1
        return WriteResult.delivered()


async def test_saturation_is_429_with_retry_after():
    sink = BlockingSink()
    app = build_otlp_app(sink, max_in_flight=1)
    async with client_for(app) as client:
        first = asyncio.create_task(client.post("/v1/logs", content=logs_body("a"), headers=PROTOBUF))
        await asyncio.wait_for(sink.entered.wait(), 5)
        refused = await client.post("/v1/logs", content=logs_body("b"), headers=PROTOBUF)
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) > 0
        sink.release.set()
        assert (await asyncio.wait_for(first, 5)).status_code == 200
        assert (await client.post("/v1/logs", content=logs_body("b"), headers=PROTOBUF)).status_code == 200
    assert sink.writes == 2
    assert app.state.stats.refused == {429: 1}
    assert app.state.stats.received["logs"] == 2


async def test_health_and_counters(backend: EmbeddedBackend):
    app = build_otlp_app(backend)
    async with client_for(app) as client:
        assert (await client.get("/health")).json()["status"] == "healthy"
        await client.post("/v1/logs", content=logs_body("a", "b"), headers=PROTOBUF)
        no_ids = {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "", "spanId": ""}]}]}]}
        await client.post("/v1/traces", json=no_ids)
    assert app.state.stats.received == {"logs": 2, "traces": 0, "metrics": 0}
    assert app.state.stats.rejected == {"logs": 0, "traces": 1, "metrics": 0}


async def test_export_responses_for_each_signal_parse(otlp: httpx.AsyncClient):
    for path, response_type in (
        ("/v1/logs", ExportLogsServiceResponse),
        ("/v1/traces", ExportTraceServiceResponse),
        ("/v1/metrics", ExportMetricsServiceResponse),
    ):
        response = await otlp.post(path, content=b"", headers=PROTOBUF)  # an empty export is valid
        assert response.status_code == 200
        response_type.FromString(response.content)


# ----------------------------------------------------------------------------------------------- the real SDK


@pytest.fixture
def server_url(backend: EmbeddedBackend) -> Iterator[str]:
    """The receiver behind a real uvicorn server on a free loopback port, in a thread with its own loop."""
    server = uvicorn.Server(uvicorn.Config(build_otlp_app(backend), host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def export_with_the_sdk(url: str) -> tuple[str, str]:
    """A span, a log record inside it and a histogram, through the SDK's own OTLP/HTTP exporters. Returns the
    span's trace and span ids in hex."""
    from opentelemetry._logs import SeverityNumber
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource as SdkResource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    resource = SdkResource.create({**LABELS, "service.name": "cart"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{url}/v1/traces")))
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(
        SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{url}/v1/logs", compression=Compression.Gzip))
    )
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=f"{url}/v1/metrics"), export_interval_millis=3_600_000
    )
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    try:
        with tracer_provider.get_tracer("test").start_as_current_span("checkout") as span:
            logger_provider.get_logger("test").emit(
                body="cart checked out", severity_number=SeverityNumber.WARN, severity_text="WARN"
            )
            context = span.get_span_context()
        histogram = meter_provider.get_meter("test").create_histogram("http.server.request.duration", unit="s")
        for seconds in (0.004, 0.02, 0.3):
            histogram.record(seconds, {"http.response.status_code": 200})
        assert meter_provider.force_flush(10_000)
    finally:
        tracer_provider.shutdown()
        logger_provider.shutdown()
        meter_provider.shutdown()
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


async def test_the_opentelemetry_sdk_exporters(server_url: str, backend: EmbeddedBackend):
    trace_id, span_id = await asyncio.to_thread(export_with_the_sdk, server_url)

    span = await backend.get_span(trace_id, span_id)
    assert (span.name, span.kind, span.parent_span_id) == ("checkout", "Internal", "")
    assert span.identity.component_uid == COMPONENTS["cart"]
    assert span.resource["service.name"] == "cart"

    (log,) = (await backend.query_logs(LogsQuery(scope=CART, range=ALL_TIME))).items
    assert (log.body, log.level, log.trace_id, log.span_id) == ("cart checked out", "WARN", trace_id, span_id)

    assert rows(backend, "SELECT name, kind FROM metric_series") == [("http.server.request.duration", "histogram")]
    # Cumulative points (the flush and the shutdown each export one) are stored as deltas that add up.
    ((count, total),) = rows(backend, "SELECT sum(count), sum(sum) FROM metric_points")
    assert count == 3 and total == pytest.approx(0.324)


# ----------------------------------------------------------------------------------------------- our extensions


async def test_a_declared_batch_id_names_the_batch_not_the_body(otlp: httpx.AsyncClient, backend: EmbeddedBackend):
    """`X-Batch-Id`: the same id is one batch whatever the body (a sender that re-encoded a retry), and two ids
    are two batches even with identical bodies."""
    first = {**PROTOBUF, "X-Batch-Id": "a1b2/logs/0"}
    assert (await otlp.post("/v1/logs", content=logs_body("same id"), headers=first)).status_code == 200
    assert (await otlp.post("/v1/logs", content=logs_body("same id", "re-encoded"), headers=first)).status_code == 200
    second = {**PROTOBUF, "X-Batch-Id": "a1b2/logs/1"}
    assert (await otlp.post("/v1/logs", content=logs_body("same id"), headers=second)).status_code == 200
    assert await stored_logs(backend) == ["same id", "same id"]
    refused = await otlp.post("/v1/logs", content=logs_body("x"), headers={**PROTOBUF, "X-Batch-Id": "no spaces"})
    assert refused.status_code == 400
    assert "X-Batch-Id" in Status.FromString(refused.content).message


class RecordingSink:
    """Keeps what the receiver hands over (fields the embedded backend does not store, such as the stream)."""

    def __init__(self) -> None:
        self.logs: list = []

    async def write(self, *, logs=(), **_: Any) -> WriteResult:
        self.logs += logs
        return WriteResult.delivered()


async def test_log_iostream_is_the_stream():
    sink = RecordingSink()
    async with client_for(build_otlp_app(sink)) as client:
        for stream in ("stderr", "stdin", None):
            attributes = {"log.iostream": stream} if stream else None
            await client.post("/v1/logs", content=logs_body(f"to {stream}", attributes=attributes), headers=PROTOBUF)
    assert [log.stream for log in sink.logs] == ["stderr", "otlp", "otlp"]


async def test_the_collectors_buffer_full_or_too_small_is_503_or_413_and_counted(tmp_path):
    from collectors.buffer import DiskBuffer
    from collectors.pipeline import BufferSink
    from collectors.telemetry import CollectorTelemetry

    telemetry = CollectorTelemetry()
    with DiskBuffer(tmp_path / "buffer", max_bytes=4096) as buffer:
        app = build_otlp_app(
            BufferSink(buffer, telemetry),
            on_refused=telemetry.count_otlp_refused,
            on_rejected=telemetry.count_otlp_rejected,
        )
        async with client_for(app) as client:
            huge = await client.post("/v1/logs", content=logs_body("x" * 8192), headers=PROTOBUF)
            assert huge.status_code == 413  # could never fit, however long the sender waited
            assert "buffer can ever hold" in Status.FromString(huge.content).message
            accepted = 0
            while True:
                response = await client.post("/v1/logs", content=logs_body(f"fill {accepted}"), headers=PROTOBUF)
                if response.status_code != 200:
                    break
                accepted += 1
            assert response.status_code == 503 and int(response.headers["retry-after"]) >= 1
            no_ids = {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "", "spanId": ""}]}]}]}
            assert (await client.post("/v1/traces", json=no_ids)).status_code == 200  # nothing to store: no write
    assert accepted > 0

    def sample(name: str, **labels: str) -> float | None:
        return telemetry.registry.get_sample_value(name, labels)

    assert (
        sample("collector_otlp_requests_refused_total", signal="logs", status="413", reason="larger_than_buffer") == 1
    )
    assert sample("collector_otlp_requests_refused_total", signal="logs", status="503", reason="buffer_full") == 1
    assert sample("collector_records_dropped_total", pipeline="otlp", reason="invalid_span_ids") == 1
    assert app.state.stats.refused_reasons == {("logs", 413, "larger_than_buffer"): 1, ("logs", 503, "buffer_full"): 1}
