"""The MCP server: OpenChoreo's 13 observer tools over streamable HTTP, on top of the same QueryService as REST.

Wire contract (observer-contract-notes §3): server `openchoreo-observer` 1.0.0, tools only, exactly the 13 tool
names with snake_case arguments, and every result the same JSON object the matching REST endpoint answers (as
text content and as structuredContent). A missing required argument or an argument of the wrong JSON type is a
protocol error (JSON-RPC -32602), as the Go SDK's schema validation makes it; everything else that goes wrong is
a tool error (`isError: true`) whose text is the message an agent can act on: "namespace is required",
"invalid start_time: ...", "insufficient permissions to perform this action".

MCP deliberately applies fewer checks than REST (no 30-day limit, no limit errors, limit 0 meaning 100), because
the Go handlers skip the REST validators and only the service-level parsing runs; the messages here are those
service-level ones.

Who is calling: the authentication middleware puts the Subject in `scope["state"]["subject"]` of every HTTP
request before /mcp is reached. The SDK hands each tool call the Starlette Request of the POST that carried it
(`ServerRequestContext.request`), so the caller is read per call, never remembered from the request that opened
the session: a revoked grant or a different token applies to the very next call.

`extended=True` (OBSERVER_MCP_EXTENDED_TOOLS=true) adds what agents ask for beyond the contract:
`query_runtime_topology`, `get_log_context`, and cursor paging (`cursor` in, `next_cursor` out) on the logs and
events tools. The default list stays exactly the 13.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from mcp import types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.exceptions import MCPError
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from adapters.loglevel import API_LEVELS
from adapters.model import (
    ComponentScope,
    EventsQuery,
    LogRecord,
    LogsQuery,
    MetricFamily,
    MetricsQuery,
    Page,
    SortOrder,
    SpansQuery,
    TimeRange,
    TopologyQuery,
    TracesQuery,
    WorkflowScope,
)
from adapters.timeutil import format_rfc3339, now_ns, parse_rfc3339
from observer.auth import model as authz
from observer.auth.model import AuthorizationUnavailable, NotAuthenticated, PermissionDenied, Subject
from observer.auth.resources import component_resource
from observer.errors import ApiError
from observer.service import QueryService
from observer.validation import DEFAULT_LIMIT, MAX_LIMIT, NamedScope, step_ns
from observer.wire import (
    component_log_entry,
    event_entry,
    metric_series_body,
    span_entry,
    topology_body,
    trace_entry,
    workflow_log_entry,
)

if TYPE_CHECKING:
    from starlette.applications import Starlette

log = logging.getLogger(__name__)

SERVER_NAME = "openchoreo-observer"
SERVER_VERSION = "1.0.0"

#: The texts upstream's MCP handlers return for the authorizer's two refusals (contract notes §2.1).
FORBIDDEN_TEXT = "insufficient permissions to perform this action"
UNAUTHORIZED_TEXT = "unauthorized request"
AUTHZ_UNAVAILABLE_TEXT = "authorization service temporarily unavailable"
ALERTS_NOT_CONFIGURED_TEXT = "alerts are not configured"
COSTS_NOT_CONFIGURED_TEXT = (
    "cost data is not available: this observer has no FinOps backend configured, so neither costs nor"
    " right-sizing recommendations can be queried"
)

#: The default list, in upstream's order; e2e pins exactly these names.
CONTRACT_TOOLS = (
    "query_component_logs",
    "query_workflow_logs",
    "query_component_events",
    "query_workflow_events",
    "query_resource_metrics",
    "query_http_metrics",
    "query_traces",
    "query_trace_spans",
    "get_span_details",
    "query_alerts",
    "query_incidents",
    "query_costs",
    "query_recommendations",
)
EXTENDED_TOOLS = ("query_runtime_topology", "get_log_context")

GRANULARITY = re.compile(r"^[1-9][0-9]*[hdw]$")

Arguments = Mapping[str, Any]
Body = dict[str, Any]


class AlertQueries(Protocol):
    """What the MCP tools need of observer.alerting.service.AlertService (typed structurally, so this module
    does not depend on the alert store being importable)."""

    async def query_alerts(self, caller: Subject | None, named: NamedScope, query: Any) -> Body: ...

    async def query_incidents(self, caller: Subject | None, named: NamedScope, query: Any) -> Body: ...


class ToolError(Exception):
    """A failure the agent should see as the tool's answer (`isError: true`), with a message saying what to fix."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# ----------------------------------------------------------------------------------------------- schemas


def _string(description: str) -> dict[str, Any]:
    return {"type": "string", "description": description}


def _strings(description: str) -> dict[str, Any]:
    return {"type": "array", "description": description, "items": {"type": "string"}}


def _number(description: str) -> dict[str, Any]:
    return {"type": "number", "description": description}


def _boolean(description: str) -> dict[str, Any]:
    return {"type": "boolean", "description": description}


NAMESPACE = _string("Namespace (organization) name (required)")
START_TIME = _string("Start of the time range in RFC3339 format (e.g., 2025-11-04T08:29:02.452Z)")
END_TIME = _string("End of the time range in RFC3339 format (e.g., 2025-11-04T09:29:02.452Z)")
LOG_LIMIT = _number("Maximum number of log entries to return. Default: 100")
LIMIT = _number("Maximum number of entries to return. Default: 100")
SORT_ORDER = {
    "type": "string",
    "description": "Sort order by timestamp: 'asc' (oldest first) or 'desc' (newest first). Default: 'desc'",
    "enum": ["asc", "desc"],
}
SEARCH_PHRASE = _string("Text to search for within log lines (matched as a literal, case-sensitive substring)")
LOG_LEVELS = _strings("Log levels to keep (e.g., ['ERROR', 'WARN']): DEBUG, INFO, WARN or ERROR. Default: all levels")
STEP = _string("Resolution step of the series as a duration (e.g., '1m', '5m', '15m', '30m', '1h'). Default: '5m'")
CURSOR = _string(
    "Opaque cursor: the next_cursor of the previous page of this same query, to continue where it ended"
)


def _scope_properties(what: str) -> dict[str, dict[str, Any]]:
    return {
        "namespace": NAMESPACE,
        "project": _string(f"Project name to filter {what}"),
        "component": _string(f"Component name to filter {what} (requires project)"),
        "environment": _string(f"Environment name to filter {what} (e.g., 'development', 'production')"),
    }


def _window_properties() -> dict[str, dict[str, Any]]:
    return {"start_time": START_TIME, "end_time": END_TIME}


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
}


@dataclass(frozen=True)
class ToolSpec:
    """One tool: what tools/list advertises, and the coroutine that answers tools/call."""

    name: str
    description: str
    properties: dict[str, dict[str, Any]]
    required: tuple[str, ...]
    handler: Callable[[Subject | None, Arguments], Awaitable[Body]] = field(repr=False)

    def input_schema(self) -> dict[str, Any]:
        return {"type": "object", "properties": self.properties, "required": list(self.required)}

    def tool(self) -> types.Tool:
        return types.Tool(
            name=self.name,
            description=self.description,
            input_schema=self.input_schema(),
            annotations=types.ToolAnnotations(read_only_hint=True),
        )

    def check(self, arguments: Arguments) -> None:
        """What the Go SDK's schema validation rejects before a handler runs: a missing required argument, a
        value of the wrong JSON type, a sort_order outside its enum. A protocol error (-32602), as upstream.
        Unknown arguments are ignored, as the schema does not forbid them; null counts as absent."""
        missing = [name for name in self.required if arguments.get(name) is None]
        if missing:
            raise MCPError(
                types.INVALID_PARAMS, f"{self.name}: missing required argument(s): {', '.join(missing)}"
            )
        for name, value in arguments.items():
            schema = self.properties.get(name)
            if schema is None or value is None:
                continue
            expected = schema["type"]
            wrong_type = not isinstance(value, _JSON_TYPES[expected]) or (
                expected == "number" and (isinstance(value, bool) or not math.isfinite(value))
            )
            if expected == "array" and not wrong_type:
                wrong_type = not all(isinstance(item, str) for item in value)
            if wrong_type:
                kind = "an array of strings" if expected == "array" else f"a {expected}"
                raise MCPError(types.INVALID_PARAMS, f"{self.name}: argument {name!r} must be {kind}")
            if "enum" in schema and value not in schema["enum"]:
                raise MCPError(
                    types.INVALID_PARAMS,
                    f"{self.name}: argument {name!r} must be one of: {', '.join(schema['enum'])}",
                )


# ----------------------------------------------------------------------------------------------- arguments


def _text(arguments: Arguments, name: str) -> str:
    value = arguments.get(name)
    return value.strip() if isinstance(value, str) else ""


def _component_scope(arguments: Arguments) -> NamedScope:
    """upstream's validateComponentScope, on trimmed names (as the REST validators trim them)."""
    named = NamedScope(
        _text(arguments, "namespace"),
        _text(arguments, "project"),
        _text(arguments, "component"),
        _text(arguments, "environment"),
    )
    if not named.namespace:
        raise ToolError("namespace is required")
    if named.component and not named.project:
        raise ToolError("project is required when component is provided")
    return named


def _time(arguments: Arguments, name: str) -> int:
    """Traces, spans, alerts, incidents (and here metrics, topology, costs) parse times up front."""
    try:
        return parse_rfc3339(str(arguments.get(name) or ""))
    except ValueError as exc:
        raise ToolError(f"invalid {name}: invalid time format (expected RFC3339): {exc}") from None


def _window(arguments: Arguments) -> TimeRange:
    return _ordered(TimeRange(_time(arguments, "start_time"), _time(arguments, "end_time")))


def _ordered(window: TimeRange) -> TimeRange:
    """Upstream hands reversed bounds to its adapters and answers nothing; an agent would read that empty
    answer as "nothing happened", so it is told instead. Equal bounds are a valid, one-instant range."""
    if window.end_ns < window.start_ns:
        raise ToolError("end_time must not be before start_time")
    return window


def _logs_window(arguments: Arguments) -> TimeRange:
    """Logs and events fail inside the service upstream, with its own wording."""
    bounds = []
    for name, label in (("start_time", "start time"), ("end_time", "end time")):
        try:
            bounds.append(parse_rfc3339(str(arguments.get(name) or "")))
        except ValueError as exc:
            raise ToolError(f"failed to parse {label}: {exc}") from None
    return _ordered(TimeRange(bounds[0], bounds[1]))


def _limit(arguments: Arguments) -> int:
    """0 (or absent) means 100, as upstream's setDefaults. No error for large values either: upstream forwards
    them to an adapter that stops at 1000, so the page is capped at MAX_LIMIT here rather than refused. A
    negative limit is treated as absent, because a backend must never read it as "no limit"."""
    value = arguments.get("limit")
    if value is None or int(value) <= 0:
        return DEFAULT_LIMIT
    return min(int(value), MAX_LIMIT)


def _sort(arguments: Arguments) -> SortOrder:
    return "asc" if arguments.get("sort_order") == "asc" else "desc"


def _levels(arguments: Arguments) -> tuple[str, ...]:
    """Levels as agents write them (any case, repeats tolerated); an unknown level is refused rather than
    silently matching nothing, because an empty answer would read as "no errors happened"."""
    levels: list[str] = []
    for raw in arguments.get("log_levels") or []:
        level = raw.strip().upper()
        if level not in API_LEVELS:
            raise ToolError(f"invalid log level '{raw}'; valid levels are: {', '.join(API_LEVELS)}")
        if level not in levels:
            levels.append(level)
    return tuple(levels)


def _required_text(arguments: Arguments, name: str) -> str:
    value = _text(arguments, name)
    if not value:
        raise ToolError(f"{name} is required")
    return value


def _api_error_text(error: ApiError) -> str:
    if error.status == 403:
        return FORBIDDEN_TEXT
    if error.status == 401:
        return UNAUTHORIZED_TEXT
    return error.message


def _json_ready(body: Body) -> tuple[str, Body]:
    """The text content and the structuredContent of one result: the REST encoder's JSON (orjson, values it
    does not know written as strings, NaN as null), and that same JSON read back, so the two never differ."""
    text = orjson.dumps(body, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    return text, orjson.loads(text)


def _success(body: Body) -> types.CallToolResult:
    text, structured = _json_ready(body)
    return types.CallToolResult(content=[types.TextContent(text=text)], structured_content=structured)


def _failure(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=message)], is_error=True)


def caller_of(ctx: ServerRequestContext[Any, Any]) -> Subject | None:
    """The subject authentication left on the HTTP request that carried THIS message (None when
    authentication is off or the transport is not HTTP)."""
    request = ctx.request
    state = getattr(request, "scope", {}).get("state") if request is not None else None
    subject = state.get("subject") if isinstance(state, dict) else None
    return subject if isinstance(subject, Subject) else None


# ----------------------------------------------------------------------------------------------- the tools


#: get_log_context: how far from the anchor it looks (successively wider, never re-reading a window), how many
#: lines it reads per page, and how many pages per direction at most, so one call stays cheap however noisy
#: the component's other containers are.
CONTEXT_REACH_NS = tuple(seconds * 10**9 for seconds in (60, 600, 3600, 6 * 3600, 24 * 3600))
CONTEXT_PAGE = 500
CONTEXT_MAX_PAGES = 20
CONTEXT_DEFAULT_LINES = 10
CONTEXT_MAX_LINES = 200


class ObserverTools:
    """The tool set over one QueryService (and, optionally, the alert service)."""

    def __init__(self, query: QueryService, alerts: AlertQueries | None = None, *, extended: bool = False) -> None:
        self._query = query
        self._alerts = alerts
        self._extended = extended
        self.specs: tuple[ToolSpec, ...] = self._build_specs()
        self.by_name: dict[str, ToolSpec] = {spec.name: spec for spec in self.specs}

    # ------------------------------------------------------------------------------------ registry

    def _build_specs(self) -> tuple[ToolSpec, ...]:
        paging = {"cursor": CURSOR} if self._extended else {}
        required = ("namespace", "start_time", "end_time")
        specs = [
            ToolSpec(
                "query_component_logs",
                "Query runtime application logs of components (services, APIs, workers, scheduled tasks) deployed"
                " in OpenChoreo. Filters by project, component, environment, time range, log levels and a search"
                " phrase. Returns {logs, total, tookMs}.",
                {**_scope_properties("logs"), **_window_properties(), "search_phrase": SEARCH_PHRASE,
                 "log_levels": LOG_LEVELS, "limit": LOG_LIMIT, "sort_order": SORT_ORDER, **paging},
                required,
                self.component_logs,
            ),
            ToolSpec(
                "query_workflow_logs",
                "Query CI/CD workflow run logs in OpenChoreo: the build, test and deployment steps of a workflow"
                " run. Filters by workflow run name, task name, time range, log levels and a search phrase.",
                {"namespace": NAMESPACE,
                 "workflow_run_name": _string("Workflow run name, to read the logs of one CI/CD run"),
                 "task_name": _string("Task (step) name within the workflow run"),
                 **_window_properties(), "search_phrase": SEARCH_PHRASE, "log_levels": LOG_LEVELS,
                 "limit": LOG_LIMIT, "sort_order": SORT_ORDER, **paging},
                required,
                self.workflow_logs,
            ),
            ToolSpec(
                "query_component_events",
                "Query Kubernetes events of components in OpenChoreo (scheduling, scaling, image pulls, probe"
                " failures, job completion). Filters by project, component, environment and time range.",
                {**_scope_properties("events"), **_window_properties(), "limit": LIMIT, "sort_order": SORT_ORDER,
                 **paging},
                required,
                self.component_events,
            ),
            ToolSpec(
                "query_workflow_events",
                "Query Kubernetes events emitted while CI/CD workflow runs executed in OpenChoreo (pods of build"
                " and deployment steps). Filters by workflow run name and time range.",
                {"namespace": NAMESPACE,
                 "workflow_run_name": _string("Workflow run name, to read the events of one CI/CD run"),
                 **_window_properties(), "limit": LIMIT, "sort_order": SORT_ORDER, **paging},
                required,
                self.workflow_events,
            ),
            ToolSpec(
                "query_resource_metrics",
                "Query CPU and memory resource metrics of components in OpenChoreo: time series of usage,"
                " requests and limits (plus network and disk I/O where collected). Useful for capacity planning,"
                " resource constraints and memory leaks.",
                {**_scope_properties("metrics"), **_window_properties(), "step": STEP},
                required,
                self.resource_metrics,
            ),
            ToolSpec(
                "query_http_metrics",
                "Query HTTP request and latency metrics of components in OpenChoreo: time series of request"
                " counts (total, successful, unsuccessful), mean latency and p50/p90/p99 latency in seconds.",
                {**_scope_properties("metrics"), **_window_properties(), "step": STEP},
                required,
                self.http_metrics,
            ),
            ToolSpec(
                "query_traces",
                "Query distributed traces of components in OpenChoreo: one summary per trace (trace ID, name,"
                " span count, root span, duration, whether any span failed). Start here to follow a request"
                " across services.",
                {**_scope_properties("traces"), **_window_properties(), "limit": LIMIT, "sort_order": SORT_ORDER},
                required,
                self.traces,
            ),
            ToolSpec(
                "query_trace_spans",
                "Query the spans of one distributed trace in OpenChoreo (span ID, name, parent span, kind,"
                " status, timing and attributes). Use a trace_id from query_traces.",
                {"trace_id": _string("Trace ID whose spans to return (required), from query_traces results"),
                 **_scope_properties("spans"), **_window_properties(), "limit": LIMIT, "sort_order": SORT_ORDER},
                ("trace_id", *required),
                self.trace_spans,
            ),
            ToolSpec(
                "get_span_details",
                "Get the full details of one span of a trace in OpenChoreo: attributes, resource attributes,"
                " parent span, status and timing. Use trace_id and span_id from query_trace_spans.",
                {"trace_id": _string("Trace ID containing the span (required)"),
                 "span_id": _string("Span ID to return (required)")},
                ("trace_id", "span_id"),
                self.span_details,
            ),
            ToolSpec(
                "query_alerts",
                "Query alerts that fired in OpenChoreo, with the rule that fired, its value and labels. Filters by"
                " project, component, environment and time range.",
                {**_scope_properties("alerts"), **_window_properties(), "limit": LIMIT, "sort_order": SORT_ORDER},
                required,
                self.alerts,
            ),
            ToolSpec(
                "query_incidents",
                "Query incidents in OpenChoreo and their lifecycle (active, acknowledged, resolved). Every"
                " incident has an alert, but not every alert opens an incident. Filters by project, component,"
                " environment and time range.",
                {**_scope_properties("incidents"), **_window_properties(), "limit": LIMIT,
                 "sort_order": SORT_ORDER},
                required,
                self.incidents,
            ),
            ToolSpec(
                "query_costs",
                "Query per-component cost records in OpenChoreo: CPU cost, memory cost and resource efficiency"
                " over a time range, in buckets of the given granularity.",
                {"namespace": NAMESPACE,
                 "environment": _string("Environment name (required)"),
                 "project": _string("Project name to filter costs"),
                 "component": _string("Component name to filter costs (requires project)"),
                 **_window_properties(),
                 "granularity": _string(
                     "Bucket size: a whole number of hours, days or weeks matching ^[1-9][0-9]*[hdw]$"
                     " (e.g., '1h', '1d', '1w')")},
                ("namespace", "environment", "start_time", "end_time"),
                self.costs,
            ),
            ToolSpec(
                "query_recommendations",
                "Query right-sizing recommendations for components in OpenChoreo: current versus recommended CPU"
                " and memory requests and limits, with their costs.",
                {"namespace": NAMESPACE,
                 "environment": _string("Environment name (required)"),
                 "project": _string("Project name to filter recommendations"),
                 "component": _string("Component name to filter recommendations (requires project)"),
                 **_window_properties()},
                ("namespace", "environment", "start_time", "end_time"),
                self.recommendations,
            ),
        ]
        if self._extended:
            specs += [
                ToolSpec(
                    "query_runtime_topology",
                    "Query the runtime call graph of a project in one environment: which components, gateways and"
                    " external hosts talk to which, with request counts, error counts and latency per edge.",
                    {"namespace": NAMESPACE,
                     "project": _string("Project name (required)"),
                     "environment": _string("Environment name (required)"),
                     "component": _string("Component name, to keep only the edges touching it"),
                     **_window_properties(),
                     "include_gateways": _boolean("Include gateway nodes and edges. Default: true"),
                     "include_external": _boolean("Include external hosts called by components. Default: true")},
                    ("namespace", "project", "environment", "start_time", "end_time"),
                    self.runtime_topology,
                ),
                ToolSpec(
                    "get_log_context",
                    "Get the log lines written just before and just after one log line by the same container"
                    " (pod and container), like `grep -C`. Pass the timestamp of a line from"
                    " query_component_logs (and its podName and containerName when several containers log at"
                    " that instant).",
                    {"namespace": NAMESPACE,
                     "project": _string("Project name (required)"),
                     "component": _string("Component name (required)"),
                     "environment": _string("Environment name (required)"),
                     "timestamp": _string("Timestamp of the log line, exactly as query_component_logs returned it"),
                     "pod_name": _string("Pod of the log line (metadata.podName), when ambiguous"),
                     "container_name": _string("Container of the log line (metadata.containerName), when ambiguous"),
                     "before": _number(f"Lines to return before it. Default: {CONTEXT_DEFAULT_LINES},"
                                       f" at most {CONTEXT_MAX_LINES}"),
                     "after": _number(f"Lines to return after it. Default: {CONTEXT_DEFAULT_LINES},"
                                      f" at most {CONTEXT_MAX_LINES}")},
                    ("namespace", "project", "component", "environment", "timestamp"),
                    self.log_context,
                ),
            ]
        return tuple(specs)

    # ------------------------------------------------------------------------------------ logs and events

    def _cursor(self, arguments: Arguments) -> str:
        return _text(arguments, "cursor") if self._extended else ""

    def _paged(self, key: str, items: list[Body], page: Page[Any]) -> Body:
        body: Body = {key: items, "total": page.total, "tookMs": page.took_ms}
        if self._extended and page.next_cursor:
            body["next_cursor"] = page.next_cursor
        return body

    def _logs_query(self, scope: ComponentScope | WorkflowScope, arguments: Arguments) -> LogsQuery:
        """The logs tools' shared arguments (window, limit, order, levels, phrase, cursor) as a query."""
        return LogsQuery(
            scope=scope,
            range=_logs_window(arguments),
            limit=_limit(arguments),
            sort=_sort(arguments),
            levels=_levels(arguments),
            phrase=arguments.get("search_phrase") or "",
            cursor=self._cursor(arguments),
        )

    async def component_logs(self, caller: Subject | None, arguments: Arguments) -> Body:
        named = _component_scope(arguments)
        page = await self._query.logs(caller, named, self._logs_query(ComponentScope(named.namespace), arguments))
        return self._paged("logs", [component_log_entry(record) for record in page.items], page)

    def _workflow_scope(self, arguments: Arguments, with_task: bool) -> WorkflowScope:
        namespace = _text(arguments, "namespace")
        if not namespace:
            raise ToolError("namespace is required")
        task = _text(arguments, "task_name") if with_task else ""
        return WorkflowScope(namespace, _text(arguments, "workflow_run_name"), task)

    async def workflow_logs(self, caller: Subject | None, arguments: Arguments) -> Body:
        scope = self._workflow_scope(arguments, with_task=True)
        page = await self._query.logs(caller, scope, self._logs_query(scope, arguments))
        return self._paged("logs", [workflow_log_entry(record) for record in page.items], page)

    def _events_query(self, scope: ComponentScope | WorkflowScope, arguments: Arguments) -> EventsQuery:
        """The events tools' shared arguments (window, limit, order, cursor) as a query."""
        return EventsQuery(
            scope=scope,
            range=_logs_window(arguments),
            limit=_limit(arguments),
            sort=_sort(arguments),
            cursor=self._cursor(arguments),
        )

    async def component_events(self, caller: Subject | None, arguments: Arguments) -> Body:
        named = _component_scope(arguments)
        page = await self._query.events(caller, named, self._events_query(ComponentScope(named.namespace), arguments))
        return self._paged("events", [event_entry(record, True) for record in page.items], page)

    async def workflow_events(self, caller: Subject | None, arguments: Arguments) -> Body:
        scope = self._workflow_scope(arguments, with_task=False)
        page = await self._query.events(caller, scope, self._events_query(scope, arguments))
        return self._paged("events", [event_entry(record, False) for record in page.items], page)

    # ------------------------------------------------------------------------------------ metrics and traces

    async def _metrics(self, family: MetricFamily, caller: Subject | None, arguments: Arguments) -> Body:
        named = _component_scope(arguments)
        window = _window(arguments)
        try:
            step = step_ns(arguments.get("step") or None, window)
        except ApiError as error:
            raise ToolError(error.message) from None
        query = MetricsQuery(family=family, scope=ComponentScope(named.namespace), range=window, step_ns=step)
        return metric_series_body(await self._query.metrics(caller, named, query))

    async def resource_metrics(self, caller: Subject | None, arguments: Arguments) -> Body:
        return await self._metrics("resource", caller, arguments)

    async def http_metrics(self, caller: Subject | None, arguments: Arguments) -> Body:
        return await self._metrics("http", caller, arguments)

    async def traces(self, caller: Subject | None, arguments: Arguments) -> Body:
        named = _component_scope(arguments)
        query = TracesQuery(
            scope=ComponentScope(named.namespace),
            range=_window(arguments),
            limit=_limit(arguments),
            sort=_sort(arguments),
        )
        page = await self._query.traces(caller, named, query)
        return {"traces": [trace_entry(trace) for trace in page.items], "total": page.total, "tookMs": page.took_ms}

    async def trace_spans(self, caller: Subject | None, arguments: Arguments) -> Body:
        trace_id = _required_text(arguments, "trace_id").lower()
        named = _component_scope(arguments)
        query = SpansQuery(
            trace_id=trace_id,
            scope=ComponentScope(named.namespace),
            range=_window(arguments),
            limit=_limit(arguments),
            sort=_sort(arguments),
        )
        page = await self._query.spans(caller, named, query)
        # Upstream's MCP answer is the service-level response: attributes included whenever they exist.
        spans = [span_entry(span, include_attributes=True) for span in page.items]
        return {"spans": spans, "total": page.total, "tookMs": page.took_ms}

    async def span_details(self, caller: Subject | None, arguments: Arguments) -> Body:
        trace_id = _required_text(arguments, "trace_id")
        span_id = _required_text(arguments, "span_id")
        return span_entry(await self._query.span(caller, trace_id, span_id), include_attributes=True)

    # ------------------------------------------------------------------------------------ alerts and incidents

    def _alert_query(self, arguments: Arguments) -> tuple[NamedScope, Any]:
        named = _component_scope(arguments)
        window = _window(arguments)
        if self._alerts is None:
            raise ToolError(ALERTS_NOT_CONFIGURED_TEXT)
        from observer.alerting.service import AlertsQuery  # present whenever an AlertService was given

        return named, AlertsQuery(window.start_ns, window.end_ns, _limit(arguments), _sort(arguments))

    async def alerts(self, caller: Subject | None, arguments: Arguments) -> Body:
        named, query = self._alert_query(arguments)
        assert self._alerts is not None
        return await self._alerts.query_alerts(caller, named, query)

    async def incidents(self, caller: Subject | None, arguments: Arguments) -> Body:
        named, query = self._alert_query(arguments)
        assert self._alerts is not None
        return await self._alerts.query_incidents(caller, named, query)

    # ------------------------------------------------------------------------------------ costs

    async def _no_costs(self, caller: Subject | None, arguments: Arguments) -> Body:
        """No cost backend exists: the arguments are still checked and the caller still authorized, so an agent
        learns what it did wrong (or that it may not ask) before it learns the data is not there."""
        named = _component_scope(arguments)
        if not named.environment:
            raise ToolError("environment is required")
        _window(arguments)
        granularity = _text(arguments, "granularity")
        if granularity and not GRANULARITY.match(granularity):
            raise ToolError(
                f"invalid granularity '{granularity}': expected a whole number of hours, days or weeks"
                " (e.g., 1h, 1d, 1w)"
            )
        try:
            await self._query.authorizer.authorize(caller, authz.FINOPS_VIEW, component_resource(named))
        except PermissionDenied:
            raise ToolError(FORBIDDEN_TEXT) from None
        except NotAuthenticated:
            raise ToolError(UNAUTHORIZED_TEXT) from None
        except AuthorizationUnavailable:
            raise ToolError(AUTHZ_UNAVAILABLE_TEXT) from None
        raise ToolError(COSTS_NOT_CONFIGURED_TEXT)

    async def costs(self, caller: Subject | None, arguments: Arguments) -> Body:
        return await self._no_costs(caller, arguments)

    async def recommendations(self, caller: Subject | None, arguments: Arguments) -> Body:
        return await self._no_costs(caller, arguments)

    # ------------------------------------------------------------------------------------ extended tools

    async def runtime_topology(self, caller: Subject | None, arguments: Arguments) -> Body:
        named = _component_scope(arguments)
        for name in ("project", "environment"):
            if not getattr(named, name):
                raise ToolError(f"{name} is required")
        window = _window(arguments)
        gateways, external = arguments.get("include_gateways"), arguments.get("include_external")
        query = TopologyQuery(
            scope=ComponentScope(named.namespace),
            range=window,
            include_gateways=True if gateways is None else bool(gateways),
            include_external=True if external is None else bool(external),
        )
        topology = await self._query.topology(caller, named, query)
        return topology_body(topology, window.start_ns, window.end_ns, now_ns())

    async def log_context(self, caller: Subject | None, arguments: Arguments) -> Body:
        """The lines around one line of one container, on top of plain logs queries over narrow windows.

        The anchor instant is read first (a range of one nanosecond), which also tells which container wrote
        the line when the caller did not say. Then each direction walks away from the anchor through windows
        of growing width (1 min, 10 min, 1 h, 6 h, 24 h), paging each with cursors and keeping only the
        container's lines, until enough are found, the reach is exhausted, or the page budget is spent; the
        windows never overlap, so no line is read twice.
        """
        named = _component_scope(arguments)
        for name in ("project", "component", "environment"):
            if not getattr(named, name):
                raise ToolError(f"{name} is required")
        anchor = _time(arguments, "timestamp")
        before = self._context_lines(arguments, "before")
        after = self._context_lines(arguments, "after")
        pod, container = _text(arguments, "pod_name"), _text(arguments, "container_name")

        def same(record: LogRecord) -> bool:
            who = record.identity
            return (not pod or who.pod == pod) and (not container or who.container == container)

        at_anchor = [record for record in await self._read_all(caller, named, TimeRange(anchor, anchor)) if same(record)]
        writers = sorted({(record.identity.pod, record.identity.container) for record in at_anchor})
        if len(writers) > 1:
            listed = ", ".join(f"{p}/{c}" for p, c in writers)
            raise ToolError(
                f"{len(writers)} containers logged at {arguments['timestamp']} ({listed}); pass pod_name and"
                " container_name to choose one"
            )
        if writers:
            pod, container = writers[0]
        elif not (pod and container):
            raise ToolError(
                f"no log line at {arguments['timestamp']} in this scope; pass the exact timestamp of a line"
                " returned by query_component_logs, or pod_name and container_name to read around any instant"
            )

        def same_container(record: LogRecord) -> bool:
            return record.identity.pod == pod and record.identity.container == container

        earlier, searched_from = await self._walk(caller, named, anchor, before, "desc", same_container)
        later, searched_to = await self._walk(caller, named, anchor, after, "asc", same_container)
        earlier.reverse()
        return {
            "podName": pod,
            "containerName": container,
            "before": [component_log_entry(record) for record in earlier],
            "anchor": [component_log_entry(record) for record in at_anchor],
            "after": [component_log_entry(record) for record in later],
            "searched": {"startTime": format_rfc3339(searched_from), "endTime": format_rfc3339(searched_to)},
        }

    @staticmethod
    def _context_lines(arguments: Arguments, name: str) -> int:
        value = arguments.get(name)
        if value is None:
            return CONTEXT_DEFAULT_LINES
        return max(0, min(int(value), CONTEXT_MAX_LINES))

    async def _read_all(self, caller: Subject | None, named: NamedScope, window: TimeRange) -> list[LogRecord]:
        query = LogsQuery(scope=ComponentScope(named.namespace), range=window, limit=MAX_LIMIT, sort="asc")
        return list((await self._query.logs(caller, named, query)).items)

    async def _walk(
        self,
        caller: Subject | None,
        named: NamedScope,
        anchor: int,
        wanted: int,
        sort: SortOrder,
        keep: Callable[[LogRecord], bool],
    ) -> tuple[list[LogRecord], int]:
        """Up to `wanted` lines strictly before (desc) or after (asc) the anchor, nearest first, and how far
        the search reached."""
        found: list[LogRecord] = []
        reached = anchor
        pages = 0
        previous = 0
        for reach in CONTEXT_REACH_NS:
            if len(found) >= wanted or pages >= CONTEXT_MAX_PAGES:
                break
            if sort == "desc":
                window = TimeRange(max(0, anchor - reach), anchor - previous - 1)
                reached = window.start_ns
            else:
                window = TimeRange(anchor + previous + 1, anchor + reach)
                reached = window.end_ns
            previous = reach
            cursor = ""
            while len(found) < wanted and pages < CONTEXT_MAX_PAGES:
                query = LogsQuery(
                    scope=ComponentScope(named.namespace), range=window, limit=CONTEXT_PAGE, sort=sort, cursor=cursor
                )
                page = await self._query.logs(caller, named, query)
                pages += 1
                found += [record for record in page.items if keep(record)][: wanted - len(found)]
                cursor = page.next_cursor
                if not cursor:
                    break
        return found, reached


# ----------------------------------------------------------------------------------------------- the app


class McpApp:
    """The ASGI app for /mcp, and the session manager whose lifetime the host app must span.

    Mount it with `mount_mcp` (so both `/mcp` and `/mcp/` are served, without a redirect) and enter
    `lifespan()` in the host app's lifespan: the streamable HTTP session manager runs its sessions in a task
    group that must exist before the first request and can be started only once per McpApp.
    """

    def __init__(self, server: Server[Any], session_manager: StreamableHTTPSessionManager, tools: ObserverTools):
        self.server = server
        self.session_manager = session_manager
        self.tools = tools

    def lifespan(self) -> AbstractAsyncContextManager[None]:
        return self.session_manager.run()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.session_manager.handle_request(scope, receive, send)


def build_mcp_app(query: QueryService, alerts: AlertQueries | None = None, *, extended: bool = False) -> McpApp:
    """The MCP server over `query` (and `alerts`, for query_alerts and query_incidents), serving streamable
    HTTP with stateful sessions (`Mcp-Session-Id`). `extended` adds the tools beyond upstream's 13."""
    tools = ObserverTools(query, alerts, extended=extended)
    listing = types.ListToolsResult(tools=[spec.tool() for spec in tools.specs])

    async def list_tools(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        # No per-subject filtering: every caller sees every tool, and authorization is decided per call.
        return listing

    async def call_tool(ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams) -> types.CallToolResult:
        spec = tools.by_name.get(params.name)
        if spec is None:
            raise MCPError(types.INVALID_PARAMS, f"unknown tool: {params.name}")
        arguments = params.arguments or {}
        spec.check(arguments)
        try:
            return _success(await spec.handler(caller_of(ctx), arguments))
        except ToolError as error:
            return _failure(error.message)
        except ApiError as error:
            return _failure(_api_error_text(error))
        except Exception:
            log.exception("MCP tool %s failed", spec.name)
            return _failure(f"{spec.name} failed due to an internal error")

    def input_schema(name: str) -> Mapping[str, Any] | None:
        spec = tools.by_name.get(name)
        return spec.input_schema() if spec else None

    server: Server[Any] = Server(
        SERVER_NAME,
        version=SERVER_VERSION,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        get_tool_input_schema=input_schema,
    )
    # Behind the public port's authentication and CORS, like every other route: the SDK's own DNS-rebinding
    # guard (meant for unauthenticated localhost servers) would only refuse legitimate Host names here.
    session_manager = StreamableHTTPSessionManager(app=server, json_response=False, stateless=False)
    return McpApp(server, session_manager, tools)


def mount_mcp(app: Starlette, mcp: McpApp, path: str = "/mcp") -> None:
    """Serves `mcp` at exactly `path` and at `path/`. A Starlette Mount would answer `/mcp` with a redirect
    to `/mcp/`, which MCP clients configured with `/mcp` (OpenChoreo's e2e, the Go SDK) do not expect."""
    for route_path in (path, path.rstrip("/") + "/"):
        app.router.routes.append(Route(route_path, mcp, include_in_schema=False))
