"""A plain OpenTelemetry application, end to end: instrumented with the OpenTelemetry SDK and its OTLP/HTTP
exporters only (no OpenChoreo attribute anywhere), sending to a real `observer up`, and found by its names
through the REST queries and the MCP tools. Its scope comes from the semantic conventions (domain/identity.py):
`service.namespace` is namespace and project, `service.name` the component, `deployment.environment.name` the
environment; an application without `service.namespace` lands in OBSERVER_DEFAULT_NAMESPACE and project
`default`. The same process also shows `observer up --demo`'s backfilled metrics."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode

from devservers.observer import observer_up
from domain.timeutil import format_rfc3339, now_ns

APP = {"service.name": "checkout", "service.namespace": "webshop", "deployment.environment.name": "staging"}
SCOPE = {"namespace": "webshop", "project": "webshop", "component": "checkout", "environment": "staging"}
#: The second application names neither its namespace nor its environment.
BARE = {"service.name": "mailer"}
BARE_SCOPE = {"namespace": "apps", "project": "default", "component": "mailer", "environment": "default"}

try:  # the SDK's log record type moved between versions (observer/demo.py says more)
    from opentelemetry.sdk._logs import LogRecord as _LogRecord  # type: ignore[attr-defined]
except ImportError:
    from opentelemetry._logs import LogRecord as _LogRecord


class App:
    """One plain OpenTelemetry application: a tracer and a logger over its Resource, exporting over OTLP/HTTP."""

    def __init__(self, endpoint: str, attributes: dict[str, str]) -> None:
        self.resource = Resource(attributes)
        self.tracers = TracerProvider(resource=self.resource, shutdown_on_exit=False)
        self.tracers.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces")))
        self.loggers = LoggerProvider(resource=self.resource, shutdown_on_exit=False)
        self.loggers.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{endpoint}/v1/logs")))

    def request(self, body: str, fail: bool = False) -> str:
        """A server span with one log line inside it; returns the trace id (32 hex)."""
        tracer = self.tracers.get_tracer("plain-app")
        logger = self.loggers.get_logger("plain-app")
        with tracer.start_as_current_span("POST /checkout", kind=trace.SpanKind.SERVER) as span:
            context = span.get_span_context()
            time.sleep(0.02)  # a request that takes a moment: the trace lasts at least 20 ms
            fields: dict[str, Any] = {
                "timestamp": time.time_ns(),
                "trace_id": context.trace_id,
                "span_id": context.span_id,
                "trace_flags": context.trace_flags,
                "severity_text": "ERROR" if fail else "INFO",
                "severity_number": SeverityNumber.ERROR if fail else SeverityNumber.INFO,
                "body": body,
                "resource": self.resource,
            }
            logger.emit(
                _LogRecord(**{k: v for k, v in fields.items() if k in _LogRecord.__init__.__code__.co_varnames})
            )
            if fail:
                span.set_status(Status(StatusCode.ERROR, "payment declined"))
        return f"{context.trace_id:032x}"

    def close(self) -> None:
        self.tracers.shutdown()
        self.loggers.shutdown()


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Any]:
    data = tmp_path_factory.mktemp("plain-otel")
    with observer_up(
        data / "data", "--demo", log_file=data / "observer.log", env={"OBSERVER_DEFAULT_NAMESPACE": "apps"}
    ) as up:
        yield up


@pytest.fixture(scope="module")
def sent(server) -> dict[str, str]:
    app, bare = App(server.otlp, APP), App(server.otlp, BARE)
    try:
        traces = {
            "ok": app.request("order 1 placed"),
            "failed": app.request("order 2 declined", fail=True),
            "bare": bare.request("mail sent"),
        }
    finally:
        app.close()
        bare.close()
    return traces


def window(minutes: int = 20) -> dict[str, str]:
    return {"startTime": format_rfc3339(now_ns() - minutes * 60 * 10**9), "endTime": format_rfc3339(now_ns() + 10**9)}


def post(server: Any, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(server.api + path, json=body, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def eventually(check: Any, timeout_s: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def test_logs_of_a_plain_app_by_component_name(server, sent):
    def check() -> None:
        body = post(server, "/api/v1/logs/query", {**window(), "searchScope": SCOPE, "sortOrder": "asc"})
        assert [entry["log"] for entry in body["logs"]] == ["order 1 placed", "order 2 declined"]
        metadata = body["logs"][0]["metadata"]
        assert (metadata["componentName"], metadata["environmentName"]) == ("checkout", "staging")
        assert body["logs"][1]["traceId"] == sent["failed"]

    eventually(check)


def test_traces_of_a_plain_app_and_the_new_filters(server, sent):
    def check() -> None:
        body = post(server, "/api/v1alpha1/traces/query", {**window(), "searchScope": SCOPE})
        assert {entry["traceId"] for entry in body["traces"]} == {sent["ok"], sent["failed"]}
        failed = post(server, "/api/v1alpha1/traces/query", {**window(), "searchScope": SCOPE, "errorsOnly": True})
        assert [entry["traceId"] for entry in failed["traces"]] == [sent["failed"]]
        long = post(server, "/api/v1alpha1/traces/query", {**window(), "searchScope": SCOPE, "minDurationMs": 20})
        assert long["total"] == 2
        logs = post(server, "/api/v1/logs/query", {**window(), "searchScope": SCOPE, "traceId": sent["ok"]})
        assert [entry["log"] for entry in logs["logs"]] == ["order 1 placed"]

    eventually(check)


def test_an_app_without_namespace_lands_in_the_default_one(server, sent):
    def check() -> None:
        body = post(server, "/api/v1/logs/query", {**window(), "searchScope": BARE_SCOPE})
        assert [entry["log"] for entry in body["logs"]] == ["mail sent"]

    eventually(check)


async def _mcp(server: Any, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    http = httpx2.AsyncClient(timeout=httpx2.Timeout(30, read=60))
    async with http, Client(streamable_http_client(f"{server.api}/mcp", http_client=http)) as client:
        result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    return dict(json.loads(result.content[0].text))


def test_the_mcp_tools_find_the_plain_app(server, sent):
    arguments = {**SCOPE, "start_time": window()["startTime"], "end_time": window()["endTime"]}

    def check() -> None:
        logs = asyncio.run(_mcp(server, "query_component_logs", arguments))
        assert {entry["log"] for entry in logs["logs"]} == {"order 1 placed", "order 2 declined"}
        traces = asyncio.run(_mcp(server, "query_traces", arguments))
        assert {entry["traceId"] for entry in traces["traces"]} == {sent["ok"], sent["failed"]}

    eventually(check)


def test_the_demo_backfills_metrics_for_the_last_fifteen_minutes(server):
    """`observer up --demo`: CPU and request rate charts reach back over the backfilled history."""
    demo = {"namespace": "demo", "project": "shop", "component": "cart", "environment": "production"}
    start = now_ns() - 15 * 60 * 10**9

    def check() -> None:
        for metric, key in (("resource", "cpuUsage"), ("http", "requestCount")):
            body = post(
                server,
                "/api/v1/metrics/query",
                {"metric": metric, "step": "1m", "searchScope": demo, **window(15)},
            )
            stamps = [point["timestamp"] for point in body[key]]
            assert len(stamps) >= 10, (metric, stamps)
            assert stamps[0] <= format_rfc3339(start + 5 * 60 * 10**9), (metric, stamps[0])

    eventually(check, timeout_s=120)
