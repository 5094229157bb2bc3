"""Forwarding over OTLP/HTTP (collectors/exporters/otlp.py): collector A's exporter sends its buffered batches
to collector B or the all-in-one, over real HTTP, and every record arrives as it left, once: also when B goes
away mid-stream and comes back, when B sheds load, and when B refuses something for good."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import logging
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord as OtlpLog
from opentelemetry.proto.logs.v1.logs_pb2 import ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from starlette.responses import Response

from adapters.embedded.backend import EmbeddedBackend
from adapters.protocols import WriteResult
from collectors.buffer import DiskBuffer
from collectors.config import ExporterConfig, OtlpExporterConfig
from collectors.destinations import ConfigError, build_destinations
from collectors.exporters.otlp import DROPPED_INVALID, DROPPED_TOO_LARGE, OtlpExporter
from collectors.otlp.receiver import build_otlp_app
from collectors.pipeline import BufferSink, export_pipeline
from collectors.telemetry import CollectorTelemetry
from devservers.collector import AllInOnePorts, all_in_one, collector
from devservers.local import free_port
from devservers.sample import CART_PROD_LABELS, identity
from devservers.tls_proxy import self_signed_cert
from domain.model import EventRecord, LogRecord, MetricKind, MetricPoint, SpanRecord
from domain.timeutil import now_ns

pytestmark = pytest.mark.integration

CART = identity("cart")
CART_DEV = identity("cart", "dev")


def rows(data_dir: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(data_dir / "telemetry.db") as conn:
        return conn.execute(sql).fetchall()


class TapSink:
    """The real embedded backend, with a record of what the receiver handed it: what arrived, exactly."""

    def __init__(self, backend: EmbeddedBackend) -> None:
        self.backend = backend
        self.logs: list[LogRecord] = []
        self.events: list[EventRecord] = []
        self.spans: list[SpanRecord] = []
        self.metrics: list[MetricPoint] = []
        self.batch_ids: list[str] = []

    async def write(self, *, batch_id: str, logs=(), events=(), spans=(), metrics=()) -> WriteResult:
        result = await self.backend.write(batch_id=batch_id, logs=logs, events=events, spans=spans, metrics=metrics)
        self.batch_ids.append(batch_id)
        self.logs += logs
        self.events += events
        self.spans += spans
        self.metrics += metrics
        return result


class Faults:
    """In front of a real receiver app: answers the next requests with the statuses queued in `answers` (a
    google.rpc.Status body, optional headers) instead of passing them on; everything else goes through."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.answers: list[tuple[int, dict[str, str]]] = []
        self.seen: list[dict[str, str]] = []  # the headers of every request

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.seen.append({k.decode(): v.decode() for k, v in scope["headers"]})
            if self.answers:
                status, headers = self.answers.pop(0)
                body = Status(code=3, message=f"the test answers {status}").SerializeToString()
                await Response(body, status, headers=headers, media_type="application/x-protobuf")(scope, receive, send)
                return
        await self.app(scope, receive, send)


def sample_batch(tag: str, count: int = 3, ts: int | None = None) -> dict[str, list]:
    """A batch of every kind of record, all fields set, bodies and ids unique by `tag`."""
    base = ts or now_ns()
    trace = hashlib.sha256(tag.encode()).hexdigest()[:32]
    return {
        "logs": [
            LogRecord(base + i, f"{tag} log {i} level=warn", CART, "WARN", trace, f"{i + 1:016x}", "stderr")
            for i in range(count)
        ],
        "events": [
            EventRecord(base + i, f"{tag} event {i}", CART, "Warning", "BackOff", "Pod", CART.pod, CART.pod_namespace)
            for i in range(count)
        ],
        "spans": [
            SpanRecord(
                trace,
                f"{i + 1:016x}",
                "" if i == 0 else "0000000000000001",
                f"{tag} GET /cart",
                "Server",
                base + i,
                base + i + 1000,
                CART,
                "error" if i else "ok",
                "boom" if i else "",
                {"http.response.status_code": 500, "retry": False, "ratio": 0.5, "tags": ["a", 1]},
                {
                    "service.name": "cart",
                    **CART_PROD_LABELS,
                    "k8s.pod.name": CART.pod,
                    "k8s.namespace.name": CART.pod_namespace,
                    "k8s.container.name": CART.container,
                },
            )
            for i in range(count)
        ],
        "metrics": [
            MetricPoint(f"{tag}.gauge", MetricKind.GAUGE, base + i, CART, {"k": "v"}, True, 0, 1.5 + i, unit="{cpu}")
            for i in range(count)
        ]
        + [
            MetricPoint("requests", MetricKind.SUM, base + i, CART_DEV, {"route": tag}, False, base, 2.0)
            for i in range(count)
        ]
        + [
            MetricPoint(
                "latency",
                MetricKind.HISTOGRAM,
                base + i,
                CART,
                {"route": tag},
                True,
                base - 1,
                count=3.0,
                sum=0.7,
                bounds=(0.1, 0.5),
                bucket_counts=(1.0, 1.0, 1.0),
                unit="s",
            )
            for i in range(count)
        ],
    }


@contextmanager
def receiver_server(app: Any, *, ssl: tuple[Path, Path] | None = None) -> Iterator[str]:
    """A real uvicorn server in a thread (TLS with `ssl` = (cert, key)); yields its base URL."""
    port = free_port()
    tls = {"ssl_certfile": str(ssl[0]), "ssl_keyfile": str(ssl[1])} if ssl is not None else {}
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", **tls)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"{'https' if ssl else 'http'}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
async def tap(backend: EmbeddedBackend) -> TapSink:
    return TapSink(backend)


def drops(telemetry: CollectorTelemetry, reason: str) -> float:
    return (
        telemetry.registry.get_sample_value("collector_records_dropped_total", {"pipeline": "export", "reason": reason})
        or 0.0
    )


# ----------------------------------------------------------------------------------------------- the round trip


async def test_forwarded_records_arrive_as_they_left(tap: TapSink, backend: EmbeddedBackend):
    batch = sample_batch("roundtrip")
    with receiver_server(build_otlp_app(tap)) as url:
        exporter = OtlpExporter(url)
        await exporter.write(batch_id="batch-1", **batch)
        # A restarted collector (a new exporter) redelivering the same batch: stored once, by its batch id.
        again = OtlpExporter(url)
        await again.write(batch_id="batch-1", **batch)
        await exporter.aclose()
        await again.aclose()

    def by_repr(records: Sequence[Any]) -> list[Any]:
        return sorted(records, key=repr)

    arrived = len(tap.batch_ids) // 2  # each delivery of the batch is the same requests
    assert by_repr(tap.logs[: len(batch["logs"])]) == by_repr(batch["logs"])
    assert by_repr(tap.events[: len(batch["events"])]) == by_repr(batch["events"])
    assert by_repr(tap.spans[: len(batch["spans"])]) == by_repr(batch["spans"])
    assert by_repr(tap.metrics[: len(batch["metrics"])]) == by_repr(batch["metrics"])
    assert tap.batch_ids[:arrived] == tap.batch_ids[arrived:]  # the same ids both times
    data = backend.store.path.parent
    assert rows(data, "SELECT count(*) FROM logs") == [(3,)]
    assert rows(data, "SELECT count(*) FROM events") == [(3,)]
    assert rows(data, "SELECT count(*) FROM spans") == [(3,)]


# ----------------------------------------------------------------------------------------------- outages


def otlp_logs_request(tag: str, count: int) -> bytes:
    records = [
        OtlpLog(time_unix_nano=now_ns(), body=AnyValue(string_value=f"{tag} {i:04d}"), severity_text="INFO")
        for i in range(count)
    ]
    attributes = [KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in CART_PROD_LABELS.items()]
    request = ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(resource=Resource(attributes=attributes), scope_logs=[ScopeLogs(log_records=records)])
        ]
    )
    return request.SerializeToString()


def wait_until(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.2)


def test_the_all_in_one_killed_and_restarted_loses_and_duplicates_nothing(tmp_path: Path):
    """Collector A (`observer collect`, OTLP in, OTLP forwarding out) in front of B (`observer up`). B is
    SIGKILLed while A forwards (requests in flight may have been stored without an answer), A keeps accepting,
    then B comes back on the same address: every record A accepted is in B exactly once."""
    ports = AllInOnePorts.free()
    data = tmp_path / "b-data"
    a_dir = tmp_path / "a"
    a_dir.mkdir()
    document = {
        "receivers": {"otlp": {"port": free_port()}},
        "buffer": {"directory": str(a_dir / "buffer")},
        "exporter": {"otlp": {"endpoint": f"http://127.0.0.1:{ports.otlp}", "timeout_s": 5}},
    }
    sent: list[str] = []

    def send(a_url: str, tag: str, requests: int) -> None:
        for n in range(requests):
            body = otlp_logs_request(f"{tag}-{n:03d}", 50)
            response = httpx.post(
                f"{a_url}/v1/logs",
                content=gzip.compress(body),
                timeout=10,
                headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
            )
            assert response.status_code == 200
            sent.extend(f"{tag}-{n:03d} {i:04d}" for i in range(50))

    with collector(a_dir, document) as a:
        b = all_in_one(data, ports, tmp_path / "b.log")
        process = b.__enter__()
        try:
            send(a.otlp, "before", 15)
            wait_until(lambda: a.value("collector_records_out_total", pipeline="export") >= 200, 120, "A delivers")
            sender = threading.Thread(target=send, args=(a.otlp, "during", 15))
            sender.start()
            time.sleep(0.2)
            process.send_signal(signal.SIGKILL)  # B vanishes mid-stream
            process.wait(10)
        finally:
            b.__exit__(None, None, None)
        sender.join(60)
        send(a.otlp, "outage", 10)
        wait_until(lambda: a.value("collector_export_retries_total", pipeline="export") > 0, 60, "A retries")
        with all_in_one(data, ports, tmp_path / "b.log"):
            wait_until(
                lambda: (
                    a.value("collector_records_out_total", pipeline="export")
                    >= a.value("collector_records_in_total", pipeline="otlp")
                ),
                180,
                "A has delivered everything",
            )
        assert a.value("collector_buffer_bytes") == 0
    bodies = [body for (body,) in rows(data, "SELECT body FROM logs")]
    assert len(bodies) == len(set(bodies)), "a record was stored twice"
    assert set(bodies) == set(sent)


# ----------------------------------------------------------------------------------------------- B's answers


async def test_retryable_answers_keep_the_batch_and_carry_retry_after(tap: TapSink):
    faults = Faults(build_otlp_app(tap))
    batch = sample_batch("retry")
    with receiver_server(faults) as url:
        exporter = OtlpExporter(url)
        faults.answers = [(503, {"Retry-After": "1"})]
        throttled = await exporter.write(batch_id="b-503", **batch)
        assert (throttled.outcome, throttled.retry_after_s) == ("retry", 1.0)
        faults.answers = [(429, {})]  # no Retry-After: retried on the pipeline's own backoff
        throttled = await exporter.write(batch_id="b-503", **batch)
        assert (throttled.outcome, throttled.retry_after_s) == ("retry", 0.0)
        faults.answers = [(401, {})]  # credentials an operator can fix: kept, never dropped
        refused = await exporter.write(batch_id="b-503", **batch)
        assert refused.outcome == "retry" and "answered 401" in refused.reason
        assert await exporter.write(batch_id="b-503", **batch) == WriteResult.delivered()
        await exporter.aclose()
    assert sorted(log.body for log in tap.logs) == sorted(log.body for log in batch["logs"])
    assert len(tap.spans) == len(batch["spans"])


async def test_the_destination_unreachable_is_backend_unavailable():
    exporter = OtlpExporter(f"http://127.0.0.1:{free_port()}", timeout_s=2)
    result = await exporter.write(batch_id="nowhere", **sample_batch("nowhere"))
    assert result.outcome == "retry" and "ConnectError" in result.reason
    await exporter.aclose()


async def test_a_request_refused_for_good_is_dropped_counted_and_the_pipeline_goes_on(tmp_path: Path, tap: TapSink):
    """A 400 means the destination will never take that request: its records are counted as dropped and the
    next batches are delivered, where retrying would hold everything up for ever."""
    telemetry = CollectorTelemetry()
    faults = Faults(build_otlp_app(tap))
    faults.answers = [(400, {})]  # the first request (the first batch's logs and events)
    with DiskBuffer(tmp_path / "buffer") as buffer, receiver_server(faults) as url:
        exporter = OtlpExporter(url)
        producer = BufferSink(buffer, telemetry, "test")
        first, second = sample_batch("first"), sample_batch("second")
        await producer.write(batch_id="first", **first)
        await producer.write(batch_id="second", **second)
        task = asyncio.create_task(export_pipeline(buffer, exporter, telemetry))
        try:
            for _ in range(300):
                if buffer.backlog == 0:
                    break
                await asyncio.sleep(0.1)
            assert buffer.backlog == 0
        finally:
            task.cancel()
            await exporter.aclose()
    assert drops(telemetry, DROPPED_INVALID) == len(first["logs"]) + len(first["events"])
    assert sorted(log.body for log in tap.logs) == sorted(log.body for log in second["logs"])
    assert len(tap.spans) == len(first["spans"]) + len(second["spans"])  # the rest of the first batch arrived


async def test_requests_too_large_for_the_destination_are_split_until_they_fit(backend: EmbeddedBackend):
    """B takes at most 8 KiB per export: A halves a refused request until each part fits; the one record that
    alone is too large is dropped and counted, everything else arrives once."""
    small = [
        LogRecord(now_ns() + i, f"{i:03d} " + bytes(range(256)).hex()[: 700 + i], CART, "INFO", stream="stdout")
        for i in range(40)
    ]
    huge = LogRecord(now_ns(), "huge " + "".join(f"{n:x}" for n in range(4000)), CART, "INFO", stream="stdout")
    with receiver_server(build_otlp_app(backend, max_body_bytes=8 * 1024)) as url:
        exporter = OtlpExporter(url)
        result = await exporter.write(batch_id="big", logs=[*small[:20], huge, *small[20:]])
        await exporter.aclose()
    stored = [body for (body,) in rows(backend.store.path.parent, "SELECT body FROM logs")]
    assert sorted(stored) == sorted(log.body for log in small)
    assert result == WriteResult.delivered(1, DROPPED_TOO_LARGE)  # the pipeline counts it (tested above)


# ----------------------------------------------------------------------------------------------- TLS and auth


class RequireBearer:
    """An authenticating front (as an ingress would be) for a real receiver: 401 without the token."""

    def __init__(self, app: Any, token: str) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        headers = dict(scope.get("headers") or [])
        if scope["type"] == "http" and headers.get(b"authorization") != f"Bearer {self.token}".encode():
            await Response("unauthorized", 401)(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def test_tls_with_a_ca_file_and_a_bearer_token_that_is_never_logged(
    tmp_path: Path, tap: TapSink, caplog: pytest.LogCaptureFixture
):
    cert, key = self_signed_cert(tmp_path, "observer")
    token = "s3cr3t-token-value"
    token_file = tmp_path / "token"
    token_file.write_text("wrong-token\n")
    caplog.set_level(logging.DEBUG)
    with receiver_server(RequireBearer(build_otlp_app(tap), token), ssl=(cert, key)) as url:
        untrusted = OtlpExporter(url)  # the self-signed certificate is not trusted without the CA file
        result = await untrusted.write(batch_id="tls", **sample_batch("tls"))
        assert result.outcome == "retry" and "ConnectError" in result.reason
        await untrusted.aclose()
        exporter = OtlpExporter(url, ca_file=cert, bearer_token_file=token_file, headers={"X-Tenant": "acme"})
        result = await exporter.write(batch_id="tls", **sample_batch("tls"))
        assert result.outcome == "retry" and "answered 401" in result.reason
        token_file.write_text(token + "\n")  # the rotated token is read again
        await exporter.write(batch_id="tls", **sample_batch("tls"))
        await exporter.aclose()
        skipping = OtlpExporter(url, tls_skip_verify=True, bearer_token=token)
        await skipping.write(batch_id="tls-2", **sample_batch("tls-2"))
        await skipping.aclose()
    assert len(tap.logs) == 6
    assert token not in caplog.text


# ----------------------------------------------------------------------------------------------- configuration


async def test_otlp_forwarding_is_the_only_destination(tmp_path: Path):
    otlp = OtlpExporterConfig(endpoint="http://127.0.0.1:4318")
    async with AsyncExitStack() as stack:
        with pytest.raises(ConfigError, match=r"remove exporter\.opensearch .* and exporter\.data_dir"):
            await build_destinations(ExporterConfig(otlp=otlp, opensearch="http://x:9200", data_dir=tmp_path), stack)
        (destination,) = await build_destinations(ExporterConfig(otlp=otlp), stack)
        assert isinstance(destination.sink, OtlpExporter)
