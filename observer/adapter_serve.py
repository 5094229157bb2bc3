"""`observer adapter serve --signal {logs,tracing,metrics}`: our configured backends behind OpenChoreo's adapter
contracts, so OpenChoreo's own observer (pointed here with LOGS_ADAPTER_URL, TRACING_ADAPTER_URL or
METRICS_ADAPTER_URL) serves logs (component, workflow and platform logs, and the audit trail), traces and metrics
from the embedded store, OpenSearch, Prometheus or Datadog.

One app per signal, on the port OpenChoreo's adapter Service uses (DEFAULT_PORTS). Each request is checked
against the signal's spec (adapters/http_contract/specs.py) before anything reads it; answers are the contract's JSON
(adapters/http_contract/wire.py, shared with our client, with its extensions: cursor paging, trace correlation, full
record identity). Errors are the spec's body of that signal: `{title, errorCode, message}` for logs,
`{title, errorCode, detail}` for tracing and metrics, the title within that spec's enum (a status it has no name
for gets its class's: badRequest or internalServerError). What a backend cannot serve is a 501, which
OpenChoreo's observer maps through (observer-contract-notes §2.3): events or runtime topology where no backend
serves them, and alert rules (not served through the contract yet).

No authentication, as OpenChoreo's adapters have none (http-adapters-notes §2): restrict the port with a
NetworkPolicy, as their charts do. The `http` backend is never used here, so an adapter URL in the environment
cannot make the server call itself.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters import registry
from adapters.http_contract import audit_wire, platform_wire, specs, wire
from adapters.protocols import (
    AuditBackend,
    BackendUnavailable,
    EventsBackend,
    InvalidCursor,
    LogsBackend,
    MetricsBackend,
    PlatformLogsBackend,
    SpanNotFound,
    TracesBackend,
)
from domain.platform import without_own_selection
from domain.timeutil import now_ns
from observer.errors import INTERNAL_ERROR, INVALID_BODY, INVALID_REQUEST, METHOD_NOT_ALLOWED, ROUTE_NOT_FOUND

log = logging.getLogger(__name__)

DEFAULT_PORTS: dict[str, int] = {"logs": 9098, "tracing": 9100, "metrics": 9099}
#: A query body is small; anything larger is refused before it is parsed.
MAX_BODY_BYTES = 1024 * 1024
#: The default `step` of a metrics query that names none (OpenChoreo's observer always sends one).
DEFAULT_STEP_NS = 60 * 10**9
RETRY_AFTER_S = 5
#: Which letter each signal's codes carry (the contract's `OBS-V1-L-..`, `OBS-T-..`, `OBS-V1-M-..` families).
_LETTER = {"logs": "L", "tracing": "T", "metrics": "M"}
#: The titles each spec's ErrorResponse enum allows.
_TITLES: dict[str, dict[int, str]] = {
    "logs": {400: "badRequest", 404: "notFound", 409: "conflict", 501: "notImplemented"},
    "tracing": {400: "badRequest"},
    "metrics": {400: "badRequest", 501: "notImplemented"},
}

Handler = Callable[[Request], Awaitable[Any]]


class Refused(Exception):
    """An answer other than 200, in the signal's error shape."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def not_implemented_code(signal: specs.Signal) -> str:
    """The errorCode of our 501s, in the adapters' `OBS-V1-<L|M>-<BACKEND>-501` form."""
    return f"OBS-V1-{_LETTER[signal]}-OBSERVER-501"


def error_response(signal: specs.Signal, status: int, code: str, message: str) -> JSONResponse:
    title = _TITLES[signal].get(status) or ("badRequest" if 400 <= status < 500 else "internalServerError")
    text = "message" if signal == "logs" else "detail"
    headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else None
    return JSONResponse({"title": title, "errorCode": code, text: message[:1000]}, status, headers=headers)


async def _body(request: Request, signal: specs.Signal, schema: str) -> dict[str, Any]:
    """The request's JSON, checked against `schema`: a Refused 400 otherwise (or 413 when too large)."""
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY_BYTES:
            raise Refused(413, INVALID_BODY, f"body larger than {MAX_BODY_BYTES} bytes")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise Refused(400, INVALID_BODY, "the body is not a JSON document") from None
    found = specs.problems(signal, schema, body)
    if found:
        raise Refused(400, INVALID_REQUEST, "; ".join(found))
    if not isinstance(body, dict):  # every request schema is an object; kept for the type checker
        raise Refused(400, INVALID_REQUEST, "the body must be a JSON object")
    return body


def _endpoint(signal: specs.Signal, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """A route: the handler's JSON answer, or what went wrong as the signal's error body."""

    async def endpoint(request: Request) -> Response:
        try:
            return JSONResponse(await handler(request))
        except Refused as exc:
            return error_response(signal, exc.status, exc.code, exc.message)
        except InvalidCursor as exc:
            return error_response(signal, 400, wire.INVALID_CURSOR_CODE, str(exc))
        except ValueError as exc:  # a time or a step the codec could not read
            return error_response(signal, 400, INVALID_REQUEST, str(exc))
        except SpanNotFound:
            return error_response(signal, 404, "", "span not found")
        except NotImplementedError as exc:
            return error_response(signal, 501, not_implemented_code(signal), str(exc) or "not implemented")
        except BackendUnavailable as exc:
            log.warning("%s adapter: backend unavailable: %s", signal, exc)
            return error_response(signal, 503, "", "the backend is unavailable, retry shortly")
        except Exception:
            log.exception("%s adapter: %s %s failed", signal, request.method, request.url.path)
            return error_response(signal, 500, INTERNAL_ERROR, "internal error")

    return endpoint


def _health(_: Request) -> Response:
    return JSONResponse({"status": "healthy"})


def _app(signal: specs.Signal, routes: list[tuple[str, str, Handler]]) -> Starlette:
    """Every health path any adapter uses (`/health`, `/healthz`, `/livez`: http-adapters-notes §4.1), the
    routes, and the framework's own 404/405 in the signal's error shape."""
    table = [Route(path, _health, methods=["GET"]) for path in ("/health", "/healthz", "/livez")]
    table += [Route(path, _endpoint(signal, handler), methods=[method]) for method, path, handler in routes]

    async def http_error(_: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        code = {404: ROUTE_NOT_FOUND, 405: METHOD_NOT_ALLOWED}.get(status, INTERNAL_ERROR)
        return error_response(signal, status, code, exc.detail if isinstance(exc, HTTPException) else "error")

    return Starlette(routes=table, exception_handlers={HTTPException: http_error})


def _alert_routes(signal: specs.Signal) -> list[tuple[str, str, Handler]]:
    async def refuse(_: Request) -> Any:
        raise NotImplementedError("alert rules are not served through this adapter; keep them in the observer")

    rules, rule = "/api/v1alpha1/alerts/rules", "/api/v1alpha1/alerts/rules/{ruleName}"
    return [("POST", rules, refuse), ("GET", rule, refuse), ("PUT", rule, refuse), ("DELETE", rule, refuse)]


async def _json_body(request: Request) -> Any:
    """The request's JSON, unchecked (the newer operations have no schema in our spec copy: their readers in
    adapters/http_contract check every field); Refused 400/413 when it is not JSON or too large."""
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY_BYTES:
            raise Refused(413, INVALID_BODY, f"body larger than {MAX_BODY_BYTES} bytes")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise Refused(400, INVALID_BODY, "the body is not a JSON document") from None


def platform_routes(platform: PlatformLogsBackend | None, audit: AuditBackend | None) -> list[tuple[str, str, Handler]]:
    """The logs contract's newer operations: platform logs and the audit trail, each with filter values
    (http-adapters-notes §3). The filter-values operations clear the listed filter's own selection first, as the
    contract says the adapter does. Without the role in the plane, each answers 501."""

    def serving(role: Any, what: str) -> Any:
        if role is None:
            raise NotImplementedError(f"{what} are not served by this adapter's backend")
        return role

    async def query_platform(request: Request) -> Any:
        query = platform_wire.parse_platform_request(await _json_body(request))
        return platform_wire.platform_response(await serving(platform, "platform logs").query_platform_logs(query))

    async def platform_values(request: Request) -> Any:
        asked = platform_wire.parse_platform_values_request(await _json_body(request))
        cleared = replace(asked, query=without_own_selection(asked.query, asked.filter))
        answer = await serving(platform, "platform logs").platform_filter_values(cleared)
        return platform_wire.filter_values_response(answer)

    async def query_audit(request: Request) -> Any:
        query = audit_wire.parse_audit_request(await _json_body(request))
        page = await serving(audit, "audit logs").query_audit(query)
        return audit_wire.audit_response(page, query)

    async def audit_values(request: Request) -> Any:
        asked = audit_wire.parse_audit_values_request(await _json_body(request))
        cleared = replace(asked, query=audit_wire.without_audit_selection(asked.query, asked.filter))
        return platform_wire.filter_values_response(await serving(audit, "audit logs").audit_filter_values(cleared))

    return [
        ("POST", "/api/v1alpha1/platform-logs/query", query_platform),
        ("POST", "/api/v1alpha1/platform-logs/filter-values", platform_values),
        ("POST", "/api/v1alpha1/audit-logs/query", query_audit),
        ("POST", "/api/v1alpha1/audit-logs/filter-values", audit_values),
    ]


def logs_app(
    logs: LogsBackend,
    events: EventsBackend | None,
    platform: PlatformLogsBackend | None = None,
    audit: AuditBackend | None = None,
) -> Starlette:
    """The logs adapter contract (port 9098) over our logs and events backends, and platform logs and the audit
    trail where the plane serves them."""

    async def query_logs(request: Request) -> Any:
        body = await _body(request, "logs", "LogsQueryRequest")
        return wire.logs_response(await logs.query_logs(wire.parse_logs_request(body)))

    async def query_events(request: Request) -> Any:
        body = await _body(request, "logs", "EventsQueryRequest")
        if events is None:
            raise NotImplementedError("events query is not implemented by this adapter")
        return wire.events_response(await events.query_events(wire.parse_events_request(body)))

    routes = [("POST", "/api/v1/logs/query", query_logs), ("POST", "/api/v1/events/query", query_events)]
    return _app("logs", routes + platform_routes(platform, audit) + _alert_routes("logs"))


def tracing_app(traces: TracesBackend) -> Starlette:
    """The tracing adapter contract (port 9100): the public trace paths, UIDs in the scope's name fields."""

    async def query_traces(request: Request) -> Any:
        body = await _body(request, "tracing", "TracesQueryRequest")
        return wire.traces_response(await traces.query_traces(wire.parse_traces_request(body)))

    async def query_spans(request: Request) -> Any:
        body = await _body(request, "tracing", "TracesQueryRequest")
        query, attributes = wire.parse_spans_request(request.path_params["traceId"], body)
        return wire.spans_response(await traces.query_spans(query), attributes)

    async def span_details(request: Request) -> Any:
        span = await traces.get_span(request.path_params["traceId"], request.path_params["spanId"])
        return wire.span_entry(span, include_attributes=True)

    return _app(
        "tracing",
        [
            ("POST", "/api/v1alpha1/traces/query", query_traces),
            ("POST", "/api/v1alpha1/traces/{traceId}/spans/query", query_spans),
            ("GET", "/api/v1alpha1/traces/{traceId}/spans/{spanId}", span_details),
        ],
    )


def metrics_app(metrics: MetricsBackend, topology: MetricsBackend | None = None) -> Starlette:
    """The metrics adapter contract (port 9099): resource and http series, and runtime topology from the plane's
    topology backend (501 where there is none)."""

    async def query_metrics(request: Request) -> Any:
        body = await _body(request, "metrics", "MetricsQueryRequest")
        return wire.metrics_response(await metrics.query_metrics(wire.parse_metrics_request(body, DEFAULT_STEP_NS)))

    async def runtime_topology(request: Request) -> Any:
        body = await _body(request, "metrics", "RuntimeTopologyRequest")
        if topology is None:
            raise NotImplementedError("runtime topology is not implemented by this adapter")
        query = wire.parse_topology_request(body)
        return wire.topology_response(await topology.query_topology(query), query, now_ns())

    routes = [
        ("POST", "/api/v1/metrics/query", query_metrics),
        ("POST", "/api/v1alpha1/metrics/runtime-topology", runtime_topology),
    ]
    return _app("metrics", routes + _alert_routes("metrics"))


def app_for(signal: specs.Signal, plane: registry.Plane) -> Starlette:
    """The signal's app over the plane's chosen backends; ValueError when no backend serves the signal."""
    if signal == "logs":
        logs = plane.served("logs")
        if logs is None:
            raise ValueError("no configured backend serves logs")
        return logs_app(logs, plane.served("events"), plane.served("platform_logs"), plane.served("audit"))
    if signal == "tracing":
        traces = plane.served("traces")
        if traces is None:
            raise ValueError("no configured backend serves traces")
        return tracing_app(traces)
    metrics = plane.served("metrics")
    if metrics is None:
        raise ValueError("no configured backend serves metrics")
    return metrics_app(metrics, plane.served("topology"))


def backends(environ: Mapping[str, str] | None = None) -> dict[str, registry.BackendEntry]:
    """Every known backend but our own adapter client (which would call this very server)."""
    return {name: entry for name, entry in registry.entries(environ).items() if name != "http"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--signal", required=True, choices=sorted(DEFAULT_PORTS), help="which contract to serve")
    parser.add_argument("--host", help="address to listen on (default: $OBSERVER_HOST, else 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, help="port (default: OpenChoreo's for the signal: logs 9098, tracing 9100, metrics 9099)"
    )
    parser.add_argument("--data-dir", help="the embedded store's directory (default: $OBSERVER_DATA_DIR, else ./data)")


def run(args: argparse.Namespace) -> int:
    """Builds the plane as `observer up` does (its settings, its environment), and serves one contract."""
    from observer import logs as logging_setup
    from observer.config import Settings
    from serving import run_loop, run_servers, server

    settings = Settings()
    if args.data_dir is not None:
        settings = settings.model_copy(update={"data_dir": args.data_dir})
    logging_setup.configure(settings.log_level)
    signal: specs.Signal = args.signal
    host = args.host or settings.host
    port = args.port or DEFAULT_PORTS[signal]

    async def main() -> None:
        chosen = registry.enabled(registry.Context("serve"), shared=settings.by_variable(), known=backends())
        plane = await registry.build_plane(registry.Context("serve"), chosen)
        try:
            await plane.start()
            app = app_for(signal, plane)
            log.info("serving the %s adapter contract on %s:%d (%s)", signal, host, port, registry.describe(chosen))
            await run_servers([server(app, host, port, settings.log_level)], *plane.tasks())
        finally:
            await plane.close()

    try:
        run_loop(main())
    except ValueError as exc:
        print(f"observer adapter serve: {exc}", file=sys.stderr)
        return 2
    return 0
