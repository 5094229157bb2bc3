"""Senders the console's browser tests use to put telemetry into a running observer AFTER the page opened.

Two shapes, because the issue asks for both: one OTLP/HTTP JSON log record with a resource given as plain
attributes (the live tail test picks the demo's own pod labels, so the line belongs to a component the page
already shows), and an application instrumented with the OpenTelemetry SDK's OTLP/HTTP exporters only (no
OpenChoreo attribute anywhere), as tests/e2e/test_plain_otel.py sends it, which the console must find by the
semantic-convention names alone.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from domain.timeutil import now_ns

try:  # the SDK's log record type moved between versions (observer/demo.py says more)
    from opentelemetry.sdk._logs import LogRecord as _LogRecord  # type: ignore[attr-defined]
except ImportError:
    from opentelemetry._logs import LogRecord as _LogRecord

#: A bound on one export: the observer runs on this machine, a slower answer is a failure worth seeing.
SEND_TIMEOUT_S = 10.0


def send_json_log(otlp: str, attributes: dict[str, str], text: str) -> None:
    """One OTLP/HTTP JSON log record stamped now, with `attributes` as its resource; the observer must accept it.

    Stamped now (not a second earlier) so a tail that started a moment ago cannot take it for history."""
    resource = [{"key": key, "value": {"stringValue": value}} for key, value in attributes.items()]
    record = {
        "timeUnixNano": str(now_ns()),
        "severityText": "INFO",
        "severityNumber": 9,
        "body": {"stringValue": text},
    }
    body = {"resourceLogs": [{"resource": {"attributes": resource}, "scopeLogs": [{"logRecords": [record]}]}]}
    response = httpx.post(f"{otlp}/v1/logs", json=body, timeout=SEND_TIMEOUT_S)
    assert response.status_code == 200, response.text


class PlainApp:
    """An application instrumented with the OpenTelemetry SDK only: a tracer and a logger over one Resource,
    exporting synchronously over OTLP/HTTP protobuf (each call returns once the observer answered)."""

    def __init__(self, otlp: str, attributes: dict[str, str]) -> None:
        self.resource = Resource(attributes)
        self.tracers = TracerProvider(resource=self.resource, shutdown_on_exit=False)
        self.tracers.add_span_processor(
            SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{otlp}/v1/traces", timeout=SEND_TIMEOUT_S))
        )
        self.loggers = LoggerProvider(resource=self.resource, shutdown_on_exit=False)
        self.loggers.add_log_record_processor(
            SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{otlp}/v1/logs", timeout=SEND_TIMEOUT_S))
        )

    def request(self, route: str, body: str) -> str:
        """A server span named `route` with one log line `body` inside it; returns the trace id (32 hex)."""
        tracer = self.tracers.get_tracer("plain-app")
        logger = self.loggers.get_logger("plain-app")
        with tracer.start_as_current_span(route, kind=trace.SpanKind.SERVER) as span:
            context = span.get_span_context()
            fields: dict[str, Any] = {
                "timestamp": time.time_ns(),
                "trace_id": context.trace_id,
                "span_id": context.span_id,
                "trace_flags": context.trace_flags,
                "severity_text": "INFO",
                "severity_number": SeverityNumber.INFO,
                "body": body,
                "resource": self.resource,
            }
            accepted = _LogRecord.__init__.__code__.co_varnames
            logger.emit(_LogRecord(**{key: value for key, value in fields.items() if key in accepted}))
        return f"{context.trace_id:032x}"

    def close(self) -> None:
        """Flushes and stops both providers (the processors are synchronous: nothing is left to send)."""
        self.tracers.shutdown()
        self.loggers.shutdown()
