"""REST routes of the query API: bind, validate, call the service, shape the response.

One module for the eight query routes (the contract's seven and the log-context extension) because each is four lines of the same pattern; the work lives in
`observer.validation`, `observer.service` and `observer.wire`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Request

from access.model import Subject
from adapters.http_contract.wire import trace_entry
from adapters.protocols import collecting_warnings
from domain.echo import shown
from domain.model import WorkflowScope
from domain.timeutil import now_ns
from observer.errors import UNSUPPORTED_MEDIA_TYPE, bad_request
from observer.responses import FastJSONResponse
from observer.service import QueryService
from observer.validation import (
    validate_events,
    validate_log_context,
    validate_logs,
    validate_metrics,
    validate_span_ids,
    validate_spans,
    validate_topology,
    validate_traces,
)
from observer.wire import (
    ErrorResponse,
    EventsQueryRequest,
    LogContextRequest,
    LogsQueryRequest,
    MetricsQueryRequest,
    RuntimeTopologyRequest,
    TracesQueryRequest,
    component_log_entries,
    event_entry,
    log_context_body,
    metric_series_body,
    span_entry,
    topology_body,
    workflow_log_entry,
)


async def require_json(request: Request) -> None:
    """A Content-Type, when given, must be JSON (clients that send none are accepted, as upstream does)."""
    content_type = request.headers.get("content-type", "")
    if content_type and not content_type.lower().startswith("application/json"):
        raise bad_request(
            f"Invalid request format: Content-Type must be application/json, not {shown(content_type)}",
            UNSUPPORTED_MEDIA_TYPE,
        )


async def query_service(request: Request) -> QueryService:
    return request.app.state.query_service


def caller(request: Request) -> Subject | None:
    """The subject the authentication middleware left on the request (None when authentication is off)."""
    return getattr(request.state, "subject", None)


_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (400, 401, 403, 404, 500, 503)
}

# The ids' form is documented here and checked by observer.validation (a `pattern=` would let FastAPI refuse them
# first, with a generic message instead of one naming the form).
TRACE_ID: Any = Path(
    description="The trace id: 32 hexadecimal digits, not all zero (OpenTelemetry's form; upper case is accepted).",
    json_schema_extra={"pattern": "^(?!0{32})[0-9a-fA-F]{32}$"},
)
SPAN_ID: Any = Path(
    description="The span id: 16 hexadecimal digits, not all zero (OpenTelemetry's form; upper case is accepted).",
    json_schema_extra={"pattern": "^(?!0{16})[0-9a-fA-F]{16}$"},
)

# Handlers return FastJSONResponse: the bodies are already plain JSON-ready dicts, and letting FastAPI re-validate
# a page of a thousand log lines through a response model costs more than the query itself.
router = APIRouter(dependencies=[Depends(require_json)], responses=_ERRORS, default_response_class=FastJSONResponse)


@router.post("/api/v1/logs/query", tags=["Logs"], operation_id="queryLogs")
async def query_logs(
    request: Request, body: LogsQueryRequest, service: QueryService = Depends(query_service)
) -> FastJSONResponse:
    scope, query = validate_logs(body)
    with collecting_warnings() as warnings:
        page = await service.logs(caller(request), scope, query)
    if isinstance(scope, WorkflowScope):
        return warned(_paged("logs", [workflow_log_entry(record) for record in page.items], page), warnings)
    return warned(_paged("logs", component_log_entries(page.items), page), warnings)


#: The log-context answer, for /openapi.json: the container, its lines before, at and after the anchor, and the
#: window searched. Entries are the contract's ComponentLogEntry.
_LOG_ENTRIES = {"type": "array", "items": {"$ref": "#/components/schemas/ComponentLogEntry"}}
LOG_CONTEXT_RESPONSE: dict[str, Any] = {
    "type": "object",
    "required": ["podName", "containerName", "before", "anchor", "after", "searched"],
    "properties": {
        "podName": {"type": "string"},
        "containerName": {"type": "string"},
        "before": {**_LOG_ENTRIES, "description": "Up to `before` lines of the container, oldest first."},
        "anchor": {**_LOG_ENTRIES, "description": "The container's lines at the anchor instant."},
        "after": {**_LOG_ENTRIES, "description": "Up to `after` lines of the container, oldest first."},
        "searched": {
            "type": "object",
            "description": "How far from the anchor the search reached (it stops at 24 hours either way).",
            "properties": {
                "startTime": {"type": "string", "format": "date-time"},
                "endTime": {"type": "string", "format": "date-time"},
            },
        },
    },
}


@router.post(
    "/api/v1alpha1/logs/context",
    tags=["Logs"],
    operation_id="getLogContext",
    summary="The lines around one log line (extension)",
    description="The lines one container wrote just before and just after one log line, like `grep -C`: pass the"
    " timestamp of a line a logs query returned (and its podName and containerName when several containers logged"
    " at that instant). Authorized as a logs query (`logs:view`) on the component scope.",
    responses={
        200: {
            "description": "The lines around the anchor",
            "content": {"application/json": {"schema": LOG_CONTEXT_RESPONSE}},
        }
    },
    openapi_extra={"x-observer-extension": True},
)
async def get_log_context(
    request: Request, body: LogContextRequest, service: QueryService = Depends(query_service)
) -> FastJSONResponse:
    scope, checked = validate_log_context(body)
    with collecting_warnings() as warnings:
        context = await service.log_context(caller(request), scope, checked)
    return warned(FastJSONResponse(log_context_body(context)), warnings)


@router.post("/api/v1/events/query", tags=["Events"], operation_id="queryEvents")
async def query_events(
    request: Request, body: EventsQueryRequest, service: QueryService = Depends(query_service)
) -> FastJSONResponse:
    scope, query = validate_events(body)
    with collecting_warnings() as warnings:
        page = await service.events(caller(request), scope, query)
    with_metadata = not isinstance(scope, WorkflowScope)
    return warned(_paged("events", [event_entry(record, with_metadata) for record in page.items], page), warnings)


@router.post("/api/v1/metrics/query", tags=["Metrics"], operation_id="queryMetrics")
async def query_metrics(
    request: Request, body: MetricsQueryRequest, service: QueryService = Depends(query_service)
) -> FastJSONResponse:
    scope, query = validate_metrics(body)
    with collecting_warnings() as warnings:
        series = await service.metrics(caller(request), scope, query)
    return warned(FastJSONResponse(metric_series_body(series)), warnings)


@router.post("/api/v1alpha1/metrics/runtime-topology", tags=["Metrics"], operation_id="queryRuntimeTopology")
async def query_runtime_topology(
    request: Request, body: RuntimeTopologyRequest, service: QueryService = Depends(query_service)
) -> FastJSONResponse:
    scope, query = validate_topology(body)
    with collecting_warnings() as warnings:
        topology = await service.topology(caller(request), scope, query)
    answer = topology_body(topology, query.range.start_ns, query.range.end_ns, now_ns())
    return warned(FastJSONResponse(answer), warnings)


@router.post("/api/v1alpha1/traces/query", tags=["Traces"], operation_id="queryTraces")
async def query_traces(
    request: Request, body: TracesQueryRequest, service: QueryService = Depends(query_service)
) -> FastJSONResponse:
    scope, query = validate_traces(body)
    with collecting_warnings() as warnings:
        page = await service.traces(caller(request), scope, query)
    return warned(_paged("traces", [trace_entry(trace) for trace in page.items], page), warnings)


@router.post("/api/v1alpha1/traces/{traceId}/spans/query", tags=["Traces"], operation_id="querySpansForTrace")
async def query_spans(
    request: Request, body: TracesQueryRequest, traceId: str = TRACE_ID, service: QueryService = Depends(query_service)
) -> FastJSONResponse:
    scope, query = validate_spans(traceId, body)
    with collecting_warnings() as warnings:
        page = await service.spans(caller(request), scope, query)
    include = bool(body.includeAttributes)
    return warned(_paged("spans", [span_entry(span, include) for span in page.items], page), warnings)


@router.get("/api/v1alpha1/traces/{traceId}/spans/{spanId}", tags=["Traces"], operation_id="getSpanDetailsForTrace")
async def get_span_details(
    request: Request, traceId: str = TRACE_ID, spanId: str = SPAN_ID, service: QueryService = Depends(query_service)
) -> FastJSONResponse:
    trace_id, span_id = validate_span_ids(traceId, spanId)
    with collecting_warnings() as warnings:
        span = await service.span(caller(request), trace_id, span_id)
    return warned(FastJSONResponse(span_entry(span, include_attributes=True)), warnings)


#: The response header carrying a backend's warning (an OpenChoreo adapter's `X-OpenChoreo-Adapter-Notice`, a
#: scan an adapter backend stopped early), one header line per warning. A header rather than a body field: the
#: JSON answer stays exactly upstream's schema, and a client that knows nothing of it loses nothing.
WARNING_HEADER = "X-Observer-Warning"


def header_text(text: str) -> str:
    """A warning as a header value: printable ASCII only (anything else becomes `?`), so that no backend's text
    can break or split the header."""
    return "".join(char if " " <= char <= "~" else "?" for char in text)


def warned(response: FastJSONResponse, warnings: list[str]) -> FastJSONResponse:
    """The response, with one X-Observer-Warning line per warning the backends handed up while it was built."""
    for text in warnings:
        response.headers.append(WARNING_HEADER, header_text(text))
    return response


def _paged(key: str, items: list[dict[str, Any]], page: Any) -> FastJSONResponse:
    body: dict[str, Any] = {key: items, "total": page.total, "tookMs": page.took_ms}
    if page.next_cursor:
        body["nextCursor"] = page.next_cursor  # extension: pass it back as `cursor` for the next page
    return FastJSONResponse(body)
