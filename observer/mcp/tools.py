"""The tools: what each one declares, and the handler that answers it through the REST validation.

Every handler follows the REST route it mirrors: the arguments become the route's request body
(observer/mcp/arguments.py), the route's wire model binds it and its `validate_*` checks it, and the same
QueryService (or AlertService) answers; the body is the one REST answers, cut to fit one MCP message when it
would not (observer/mcp/fit.py). Nothing here re-checks what validation.py checks.

The contract's 13 tools keep their names and argument names (contract notes §3); OpenChoreo's newer two,
`query_platform_logs` and `query_audit_logs`, follow them in the default list (observer/mcp/family_tools.py
declares and answers them, and `query_log_patterns`). Beyond it: `cursor` on the
logs and events tools (the answer's `nextCursor`, REST's paging extension, is needed to continue a page cut
to fit), and with `extended=True` (OBSERVER_MCP_EXTENDED_TOOLS) `query_runtime_topology` and `get_log_context`
(REST's `POST /api/v1alpha1/logs/context`: the same validation and QueryService.log_context).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

from mcp import types

from access.model import Subject
from adapters.http_contract.wire import trace_entry
from adapters.protocols import collecting_warnings
from domain.model import Page, WorkflowScope
from domain.timeutil import now_ns
from observer.errors import ApiError
from observer.finops import finops_scope, refuse_finops
from observer.mcp import family_tools, schemas
from observer.mcp.arguments import (
    ToolError,
    Vocabulary,
    bind,
    path_text,
    rest_body,
)
from observer.mcp.fit import CLIENT_EVENT_LIMIT, records_that_fit, series_too_large
from observer.mcp.schemas import Argument, Schema, string
from observer.service import QueryService
from observer.validation import (
    NamedScope,
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
    CONTEXT_DEFAULT_LINES,
    CONTEXT_MAX_LINES,
    EventsQueryRequest,
    LogContextRequest,
    LogsQueryRequest,
    MetricsQueryRequest,
    RuntimeTopologyRequest,
    TracesQueryRequest,
    component_log_entry,
    event_entry,
    log_context_body,
    metric_series_body,
    span_entry,
    topology_body,
    workflow_log_entry,
)

if TYPE_CHECKING:
    from observer.alerting.service import AlertsQuery

ALERTS_NOT_CONFIGURED_TEXT = "alerts are not configured"

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
    "query_platform_logs",
    "query_audit_logs",
)
EXTENDED_TOOLS = ("query_runtime_topology", "get_log_context", "query_log_patterns")

Body = dict[str, Any]
Arguments = Mapping[str, Any]


class AlertQueries(Protocol):
    """What the MCP tools need of observer.alerting.service.AlertService (typed structurally, so this module
    does not depend on the alert store being importable)."""

    async def query_alerts(self, caller: Subject | None, named: NamedScope, query: Any) -> Body: ...

    async def query_incidents(self, caller: Subject | None, named: NamedScope, query: Any) -> Body: ...


@dataclass(frozen=True)
class Call:
    """One tools/call: the arguments as sent, and the REST body they stand for."""

    arguments: Arguments
    body: dict[str, Any]


Handler = Callable[[Subject | None, Call], Awaitable[Body]]


@dataclass(frozen=True)
class ToolSpec:
    """One tool: what tools/list advertises, how its arguments map onto REST, and the coroutine answering it.

    `fixed` are REST fields the tool implies whatever the arguments (the metric family, the scope shape)."""

    name: str
    description: str
    arguments: dict[str, Argument]
    required: tuple[str, ...]
    output: Schema
    handler: Handler = field(repr=False)
    fixed: dict[str, Any] = field(default_factory=dict)

    def input_schema(self) -> Schema:
        return schemas.input_schema(self.arguments, self.required)

    def tool(self) -> types.Tool:
        return types.Tool(
            name=self.name,
            description=self.description,
            input_schema=self.input_schema(),
            output_schema=self.output,
            annotations=types.ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True),
        )

    @cached_property
    def vocabulary(self) -> Vocabulary:
        return Vocabulary(self.arguments)

    def call(self, arguments: Arguments) -> Call:
        return Call(arguments, rest_body(self.arguments, arguments, self.fixed))


def with_note(output: Schema) -> Schema:
    """An output schema that also allows the `note` passing_warnings may add (every answer can carry one; the
    page schemas already do)."""
    properties = output.get("properties", {})
    if output.get("type") != "object" or "note" in properties:
        return output
    return {**output, "properties": {**properties, "note": schemas.NOTE}}


def passing_warnings(handler: Handler) -> Handler:
    """The handler, saying in the result's `note` what the backends warned of while it ran (an OpenChoreo
    adapter's "not implemented" notice, for one): the REST route's X-Observer-Warning header, as text a model
    reads."""

    async def answered(caller: Subject | None, call: Call) -> Body:
        with collecting_warnings() as warnings:
            body = await handler(caller, call)
        if not warnings:
            return body
        said = "The backend warned: " + "; ".join(warnings) + "."
        return {**body, "note": f"{body['note']} {said}" if body.get("note") else said}

    return answered


def _cut_note(kept: int, offered: int, key: str, how_to_continue: str) -> str:
    return (
        f"only the first {kept} of the {offered} {key} of this page are here: all of them would exceed the"
        f" {CLIENT_EVENT_LIMIT} bytes one MCP message may carry. {how_to_continue}"
    )


def cut_to_fit(body: Body, key: str) -> Body:
    """A finished page of a tool without cursors, cut to the records that fit one message, with a note
    saying how to read the rest (a smaller limit, or a narrower window)."""
    items = body[key]
    kept = max(1, records_that_fit(body, key))  # one record too large alone has its strings shortened
    if kept >= len(items):
        return body
    how = f"Ask again with limit {kept}, or narrow start_time and end_time, to read the rest."
    return {**body, key: items[:kept], "note": _cut_note(kept, len(items), key, how)}


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
        required = ("namespace", "start_time", "end_time")
        scope, window, paging = schemas.component_scope, schemas.window, schemas.paging
        logs_extra = {
            "search_phrase": Argument(schemas.SEARCH_PHRASE, "searchPhrase"),
            "log_levels": Argument(schemas.LOG_LEVELS, "logLevels"),
        }
        component: dict[str, Any] = {"searchScope": {}}
        workflow = {"searchScope.workflowRunName": ""}
        specs = [
            ToolSpec(
                "query_component_logs",
                "Query runtime application logs of components (services, APIs, workers, scheduled tasks) deployed"
                " in OpenChoreo. Filters by project, component, environment, time range, log levels and a search"
                " phrase. Returns {logs, total, tookMs, nextCursor?}.",
                {
                    **scope("logs"),
                    **window(),
                    **logs_extra,
                    **schemas.ordering(schemas.plain_limit("log entries")),
                    **paging(),
                },
                required,
                schemas.COMPONENT_LOGS,
                self.component_logs,
                component,
            ),
            ToolSpec(
                "query_workflow_logs",
                "Query CI/CD workflow run logs in OpenChoreo: the build, test and deployment steps of a workflow"
                " run. Filters by workflow run name, task name, time range, log levels and a search phrase.",
                {
                    "namespace": Argument(schemas.NAMESPACE, "searchScope.namespace"),
                    "workflow_run_name": Argument(
                        string("Workflow run name, to read the logs of one CI/CD run"), "searchScope.workflowRunName"
                    ),
                    "task_name": Argument(string("Task (step) name within the workflow run"), "searchScope.taskName"),
                    **window(),
                    **logs_extra,
                    **schemas.ordering(schemas.plain_limit("log entries")),
                    **paging(),
                },
                required,
                schemas.WORKFLOW_LOGS,
                self.workflow_logs,
                workflow,
            ),
            ToolSpec(
                "query_component_events",
                "Query Kubernetes events of components in OpenChoreo (scheduling, scaling, image pulls, probe"
                " failures, job completion). Filters by project, component, environment and time range.",
                {**scope("events"), **window(), **schemas.ordering(schemas.plain_limit("entries")), **paging()},
                required,
                schemas.EVENTS,
                self.component_events,
                component,
            ),
            ToolSpec(
                "query_workflow_events",
                "Query Kubernetes events emitted while CI/CD workflow runs executed in OpenChoreo (pods of build"
                " and deployment steps). Filters by workflow run name and time range.",
                {
                    "namespace": Argument(schemas.NAMESPACE, "searchScope.namespace"),
                    "workflow_run_name": Argument(
                        string("Workflow run name, to read the events of one CI/CD run"), "searchScope.workflowRunName"
                    ),
                    **window(),
                    **schemas.ordering(schemas.plain_limit("entries")),
                    **paging(),
                },
                required,
                schemas.EVENTS,
                self.workflow_events,
                workflow,
            ),
            ToolSpec(
                "query_resource_metrics",
                "Query CPU and memory resource metrics of components in OpenChoreo: time series of usage,"
                " requests and limits (plus network and disk I/O where collected). Useful for capacity planning,"
                " resource constraints and memory leaks.",
                {**scope("metrics"), **window(), "step": Argument(schemas.STEP, "step")},
                required,
                schemas.METRICS,
                self.resource_metrics,
                {**component, "metric": "resource"},
            ),
            ToolSpec(
                "query_http_metrics",
                "Query HTTP request and latency metrics of components in OpenChoreo: time series of request"
                " counts (total, successful, unsuccessful), mean latency and p50/p90/p99 latency in seconds.",
                {**scope("metrics"), **window(), "step": Argument(schemas.STEP, "step")},
                required,
                schemas.METRICS,
                self.http_metrics,
                {**component, "metric": "http"},
            ),
            ToolSpec(
                "query_traces",
                "Query distributed traces of components in OpenChoreo: one summary per trace (trace ID, name,"
                " span count, root span, duration, whether any span failed). Start here to follow a request"
                " across services.",
                {**scope("traces"), **window(), **schemas.ordering(schemas.strict_limit())},
                required,
                schemas.TRACES,
                self.traces,
                component,
            ),
            ToolSpec(
                "query_trace_spans",
                "Query the spans of one distributed trace in OpenChoreo (span ID, name, parent span, kind,"
                " status, timing and attributes). Use a trace_id from query_traces.",
                {
                    "trace_id": Argument(
                        string("Trace ID whose spans to return (required), from query_traces results"),
                        "traceId",
                        in_body=False,
                    ),
                    **scope("spans"),
                    **window(),
                    **schemas.ordering(schemas.strict_limit()),
                },
                ("trace_id", *required),
                schemas.SPANS,
                self.trace_spans,
                component,
            ),
            ToolSpec(
                "get_span_details",
                "Get the full details of one span of a trace in OpenChoreo: attributes, resource attributes,"
                " parent span, status and timing. Use trace_id and span_id from query_trace_spans.",
                {
                    "trace_id": Argument(string("Trace ID containing the span (required)"), "traceId", in_body=False),
                    "span_id": Argument(string("Span ID to return (required)"), "spanId", in_body=False),
                },
                ("trace_id", "span_id"),
                schemas.SPAN_DETAILS,
                self.span_details,
            ),
            ToolSpec(
                "query_alerts",
                "Query alerts that fired in OpenChoreo, with the rule that fired, its value and labels. Filters by"
                " project, component, environment and time range.",
                {**scope("alerts"), **window(), **schemas.ordering(schemas.strict_limit())},
                required,
                schemas.ALERTS,
                self.alerts,
                component,
            ),
            ToolSpec(
                "query_incidents",
                "Query incidents in OpenChoreo and their lifecycle (active, acknowledged, resolved). Every"
                " incident has an alert, but not every alert opens an incident. Filters by project, component,"
                " environment and time range.",
                {**scope("incidents"), **window(), **schemas.ordering(schemas.strict_limit())},
                required,
                schemas.INCIDENTS,
                self.incidents,
                component,
            ),
            ToolSpec(
                "query_costs",
                "Query per-component cost records in OpenChoreo: CPU cost, memory cost and resource efficiency"
                " over a time range, in buckets of the given granularity.",
                {
                    **_costs_scope("costs"),
                    **_url(window()),
                    "granularity": Argument(
                        string(
                            "Bucket size: a whole number of hours, days or weeks matching ^[1-9][0-9]*[hdw]$"
                            " (e.g., '1h', '1d', '1w')"
                        ),
                        "granularity",
                        in_body=False,
                    ),
                },
                ("namespace", "environment", "start_time", "end_time"),
                schemas.COSTS,
                self.costs,
            ),
            ToolSpec(
                "query_recommendations",
                "Query right-sizing recommendations for components in OpenChoreo: current versus recommended CPU"
                " and memory requests and limits, with their costs.",
                {**_costs_scope("recommendations"), **_url(window())},
                ("namespace", "environment", "start_time", "end_time"),
                schemas.RECOMMENDATIONS,
                self.recommendations,
            ),
            ToolSpec(
                "query_platform_logs",
                family_tools.PLATFORM_LOGS_DESCRIPTION,
                family_tools.PLATFORM_LOGS_ARGUMENTS,
                ("start_time", "end_time"),
                family_tools.PLATFORM_LOGS_OUTPUT,
                self.platform_logs,
            ),
            ToolSpec(
                "query_audit_logs",
                family_tools.AUDIT_LOGS_DESCRIPTION,
                family_tools.AUDIT_LOGS_ARGUMENTS,
                ("start_time", "end_time"),
                family_tools.AUDIT_LOGS_OUTPUT,
                self.audit_logs,
            ),
        ]
        if self._extended:
            specs += [
                ToolSpec(
                    "query_runtime_topology",
                    "Query the runtime call graph of a project in one environment: which components, gateways and"
                    " external hosts talk to which, with request counts, error counts and latency per edge.",
                    {
                        "namespace": Argument(schemas.NAMESPACE, "searchScope.namespace"),
                        "project": Argument(string("Project name (required)"), "searchScope.project"),
                        "environment": Argument(string("Environment name (required)"), "searchScope.environment"),
                        "component": Argument(
                            string("Component name, to keep only the edges touching it"), "searchScope.component"
                        ),
                        **window(),
                        "include_gateways": Argument(
                            schemas.boolean("Include gateway nodes and edges. Default: true"), "includeGateways"
                        ),
                        "include_external": Argument(
                            schemas.boolean("Include external hosts called by components. Default: true"),
                            "includeExternal",
                        ),
                    },
                    ("namespace", "project", "environment", "start_time", "end_time"),
                    schemas.TOPOLOGY,
                    self.runtime_topology,
                    component,
                ),
                ToolSpec(
                    "get_log_context",
                    "Get the log lines written just before and just after one log line by the same container"
                    " (pod and container), like `grep -C`. Pass the timestamp of a line from"
                    " query_component_logs (and its podName and containerName when several containers log at"
                    " that instant).",
                    {
                        "namespace": Argument(schemas.NAMESPACE, "searchScope.namespace"),
                        "project": Argument(string("Project name (required)"), "searchScope.project"),
                        "component": Argument(string("Component name (required)"), "searchScope.component"),
                        "environment": Argument(string("Environment name (required)"), "searchScope.environment"),
                        "timestamp": Argument(
                            string("Timestamp of the log line, exactly as query_component_logs returned it"),
                            "timestamp",
                        ),
                        "pod_name": Argument(
                            string("Pod of the log line (metadata.podName), when ambiguous"), "podName"
                        ),
                        "container_name": Argument(
                            string("Container of the log line (metadata.containerName), when ambiguous"),
                            "containerName",
                        ),
                        "before": Argument(
                            schemas.number(
                                f"Lines to return before it. Default: {CONTEXT_DEFAULT_LINES}, at most {CONTEXT_MAX_LINES}",
                                minimum=0,
                                maximum=CONTEXT_MAX_LINES,
                            ),
                            "before",
                        ),
                        "after": Argument(
                            schemas.number(
                                f"Lines to return after it. Default: {CONTEXT_DEFAULT_LINES}, at most {CONTEXT_MAX_LINES}",
                                minimum=0,
                                maximum=CONTEXT_MAX_LINES,
                            ),
                            "after",
                        ),
                    },
                    ("namespace", "project", "component", "environment", "timestamp"),
                    schemas.LOG_CONTEXT,
                    self.log_context,
                    component,
                ),
                ToolSpec(
                    "query_log_patterns",
                    family_tools.PATTERNS_DESCRIPTION,
                    family_tools.PATTERNS_ARGUMENTS,
                    required,
                    family_tools.PATTERNS_OUTPUT,
                    self.log_patterns,
                ),
            ]
        return tuple(
            replace(spec, handler=passing_warnings(spec.handler), output=with_note(spec.output)) for spec in specs
        )

    # ------------------------------------------------------------------------------------ paging

    async def _page(
        self,
        key: str,
        page: Page[Any],
        entry: Callable[[Any], Body],
        refetch: Callable[[int], Awaitable[Page[Any]]] | None,
    ) -> Body:
        """REST's page body, cut to the records that fit one MCP message. A cut page of a tool that pages
        ends with the cursor of its last record (read by asking the same query for that many records, which
        works on every backend), so nothing is lost; the others say how to ask for the rest."""
        items = [entry(record) for record in page.items]
        body: Body = {key: items, "total": page.total, "tookMs": page.took_ms}
        if page.next_cursor:
            body["nextCursor"] = page.next_cursor
        if refetch is None:
            return cut_to_fit(body, key)
        kept = max(1, records_that_fit(body, key))  # one record too large alone has its strings shortened
        if kept >= len(items):
            return body
        shorter = await refetch(kept)
        body = {key: [entry(record) for record in shorter.items], "total": shorter.total, "tookMs": page.took_ms}
        if shorter.next_cursor:
            body["nextCursor"] = shorter.next_cursor
        body["note"] = _cut_note(kept, len(items), key, "Pass nextCursor as cursor to read on from there.")
        return body

    # ------------------------------------------------------------------------------------ logs and events

    async def _logs(self, caller: Subject | None, call: Call) -> Body:
        scope, query = validate_logs(bind(LogsQueryRequest, call.body))
        entry = workflow_log_entry if isinstance(scope, WorkflowScope) else component_log_entry

        async def refetch(limit: int) -> Page[Any]:
            return await self._query.logs(caller, scope, replace(query, limit=limit))

        return await self._page("logs", await self._query.logs(caller, scope, query), entry, refetch)

    async def component_logs(self, caller: Subject | None, call: Call) -> Body:
        return await self._logs(caller, call)

    async def workflow_logs(self, caller: Subject | None, call: Call) -> Body:
        return await self._logs(caller, call)

    async def _events(self, caller: Subject | None, call: Call) -> Body:
        scope, query = validate_events(bind(EventsQueryRequest, call.body))
        with_metadata = not isinstance(scope, WorkflowScope)

        async def refetch(limit: int) -> Page[Any]:
            return await self._query.events(caller, scope, replace(query, limit=limit))

        page = await self._query.events(caller, scope, query)
        return await self._page("events", page, lambda record: event_entry(record, with_metadata), refetch)

    async def component_events(self, caller: Subject | None, call: Call) -> Body:
        return await self._events(caller, call)

    async def workflow_events(self, caller: Subject | None, call: Call) -> Body:
        return await self._events(caller, call)

    # ------------------------------------------------------------------------------------ metrics and traces

    async def _metrics(self, caller: Subject | None, call: Call) -> Body:
        scope, query = validate_metrics(bind(MetricsQueryRequest, call.body))
        body = metric_series_body(await self._query.metrics(caller, scope, query))
        problem = series_too_large(body, query.step_ns)
        if problem:
            raise ToolError(problem)
        return body

    async def resource_metrics(self, caller: Subject | None, call: Call) -> Body:
        return await self._metrics(caller, call)

    async def http_metrics(self, caller: Subject | None, call: Call) -> Body:
        return await self._metrics(caller, call)

    async def traces(self, caller: Subject | None, call: Call) -> Body:
        scope, query = validate_traces(bind(TracesQueryRequest, call.body))
        return await self._page("traces", await self._query.traces(caller, scope, query), trace_entry, None)

    async def trace_spans(self, caller: Subject | None, call: Call) -> Body:
        trace_id = path_text(call.arguments, "trace_id")
        scope, query = validate_spans(trace_id, bind(TracesQueryRequest, call.body))
        page = await self._query.spans(caller, scope, query)
        # Upstream's MCP answer is the service-level response: attributes included whenever they exist.
        return await self._page("spans", page, lambda span: span_entry(span, include_attributes=True), None)

    async def span_details(self, caller: Subject | None, call: Call) -> Body:
        trace, span = validate_span_ids(path_text(call.arguments, "trace_id"), path_text(call.arguments, "span_id"))
        return span_entry(await self._query.span(caller, trace, span), include_attributes=True)

    # ------------------------------------------------------------------------------------ alerts and incidents

    def _alert_query(self, call: Call) -> tuple[NamedScope, AlertsQuery]:
        """REST's own checks for these two (observer/routers/alerts.py), with its INVALID_REQUEST_BODY text for
        a body that does not bind."""
        if self._alerts is None:
            raise ToolError(ALERTS_NOT_CONFIGURED_TEXT)
        from observer.alerting import bodies
        from observer.routers.alerts import AlertsQueryRequest, alerts_query

        try:
            request = bodies.bind(call.body, AlertsQueryRequest)
        except bodies.BodyError as exc:
            raise ApiError(400, f"invalid request body: {exc}", "INVALID_REQUEST_BODY") from None
        return alerts_query(request)

    async def alerts(self, caller: Subject | None, call: Call) -> Body:
        named, query = self._alert_query(call)
        assert self._alerts is not None
        return cut_to_fit(await self._alerts.query_alerts(caller, named, query), "alerts")

    async def incidents(self, caller: Subject | None, call: Call) -> Body:
        named, query = self._alert_query(call)
        assert self._alerts is not None
        return cut_to_fit(await self._alerts.query_incidents(caller, named, query), "incidents")

    # ------------------------------------------------------------------------------------ costs

    async def _no_costs(self, caller: Subject | None, call: Call) -> Body:
        """No cost backend exists: the arguments are checked and the caller authorized exactly as the REST cost
        routes do (observer/finops.py), so an agent learns what it did wrong (or that it may not ask) before it
        learns the data is not there."""
        arguments = call.arguments
        granularity = arguments.get("granularity")
        named = finops_scope(
            path_text(arguments, "namespace"),
            path_text(arguments, "environment"),
            path_text(arguments, "project"),
            path_text(arguments, "component"),
            path_text(arguments, "start_time"),
            path_text(arguments, "end_time"),
            None if granularity is None else path_text(arguments, "granularity"),
        )
        await refuse_finops(self._query.authorizer, caller, named)

    async def costs(self, caller: Subject | None, call: Call) -> Body:
        return await self._no_costs(caller, call)

    async def recommendations(self, caller: Subject | None, call: Call) -> Body:
        return await self._no_costs(caller, call)

    # ------------------------------------------------------------------------------------ extended tools

    async def runtime_topology(self, caller: Subject | None, call: Call) -> Body:
        scope, query = validate_topology(bind(RuntimeTopologyRequest, call.body))
        topology = await self._query.topology(caller, scope, query)
        return topology_body(topology, query.range.start_ns, query.range.end_ns, now_ns())

    async def log_context(self, caller: Subject | None, call: Call) -> Body:
        """REST's `POST /api/v1alpha1/logs/context`: the same validation and the same service method."""
        body = {
            **call.body,
            **{name: _whole(value) for name, value in call.body.items() if name in ("before", "after")},
        }
        scope, request = validate_log_context(bind(LogContextRequest, body))
        return log_context_body(await self._query.log_context(caller, scope, request))

    # ------------------------------------------------------------------------------------ platform, audit, patterns

    async def platform_logs(self, caller: Subject | None, call: Call) -> Body:
        return await family_tools.platform_logs(self._query, caller, call.body)

    async def audit_logs(self, caller: Subject | None, call: Call) -> Body:
        return await family_tools.audit_logs(self._query, caller, call.body)

    async def log_patterns(self, caller: Subject | None, call: Call) -> Body:
        return cut_to_fit(await family_tools.log_patterns(self._query, caller, call.body), "patterns")


def _whole(value: Any) -> Any:
    """A whole number sent as a JSON float (`5.0`, as some clients send every number) is the integer REST's
    strict binding takes; anything else goes on unchanged, for that binding to refuse in its own words."""
    if isinstance(value, float) and math.isfinite(value) and value == int(value):
        return int(value)
    return value


def _costs_scope(what: str) -> dict[str, Argument]:
    """The cost routes take these in the URL (path and query), not in a body."""
    return {
        "namespace": Argument(schemas.NAMESPACE, "namespace", in_body=False),
        "environment": Argument(string("Environment name (required)"), "environment", in_body=False),
        "project": Argument(string(f"Project name to filter {what}"), "project", in_body=False),
        "component": Argument(
            string(f"Component name to filter {what} (requires project)"), "component", in_body=False
        ),
    }


def _url(arguments: dict[str, Argument]) -> dict[str, Argument]:
    return {name: replace(argument, in_body=False) for name, argument in arguments.items()}
