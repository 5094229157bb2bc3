"""Request validation in the contract's order, with the contract's messages.

Each `validate_*` takes a bound request and returns what the query service needs (the scope as the user named
it, and a domain query), or raises a 400 ApiError naming the field to fix. The order of checks matters: clients
match on the first message, so it follows observer-contract-notes §1.2-1.8 exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

from adapters.loglevel import API_LEVELS
from adapters.model import (
    ComponentScope,
    EventsQuery,
    LogsQuery,
    MetricsQuery,
    SortOrder,
    SpansQuery,
    TimeRange,
    TopologyQuery,
    TracesQuery,
    WorkflowScope,
)
from adapters.timeutil import parse_go_duration, parse_rfc3339
from observer.errors import ApiError, bad_request
from observer.wire import (
    ComponentSearchScope,
    EventsQueryRequest,
    LogsQueryRequest,
    MetricsQueryRequest,
    RuntimeTopologyRequest,
    TracesQueryRequest,
    WorkflowSearchScope,
)

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
MAX_RANGE_NS = 30 * 24 * 3600 * 10**9
DEFAULT_STEP_NS = 5 * 60 * 10**9
#: The most points one series may have (Prometheus refuses more than 11,000 per query_range series).
MAX_POINTS = 11_000
TRACES_ERROR_CODE = "OBS-V1-T-06"


@dataclass(frozen=True, slots=True)
class NamedScope:
    """A component scope as the user wrote it: names, not UIDs. Authorization is decided on these."""

    namespace: str
    project: str = ""
    component: str = ""
    environment: str = ""


# ----------------------------------------------------------------------------------------------- pieces


def _text(value: str | None) -> str:
    return (value or "").strip()


def component_scope(scope: ComponentSearchScope | None) -> NamedScope:
    scope = scope or ComponentSearchScope()
    named = NamedScope(_text(scope.namespace), _text(scope.project), _text(scope.component), _text(scope.environment))
    if not named.namespace:
        raise bad_request("searchScope.namespace is required")
    if named.component and not named.project:
        raise bad_request("searchScope.project is required when searchScope.component is provided")
    return named


def workflow_scope(scope: WorkflowSearchScope) -> WorkflowScope:
    namespace = _text(scope.namespace)
    if not namespace:
        raise bad_request("searchScope.namespace is required")
    return WorkflowScope(namespace, _text(scope.workflowRunName), _text(scope.taskName))


def time_range(start: str | None, end: str | None) -> TimeRange:
    start_ns = _time("startTime", start)
    end_ns = _time("endTime", end)
    if end_ns < start_ns:
        raise bad_request("endTime must be after startTime")
    if end_ns - start_ns > MAX_RANGE_NS:
        raise bad_request("query time range cannot exceed 30 days")
    return TimeRange(start_ns, end_ns)


def _time(field: str, value: str | None) -> int:
    if not value:
        raise bad_request(f"{field} is required")
    try:
        return parse_rfc3339(value)
    except ValueError as exc:
        raise bad_request(f"{field} must be in RFC3339 format (e.g., 2024-01-01T00:00:00Z): {exc}") from None


def plain_limit(limit: int | None) -> int:
    """Logs and events: absent or 0 means the default."""
    if not limit:
        return DEFAULT_LIMIT
    if limit < 0:
        raise bad_request("limit must be a positive integer")
    if limit > MAX_LIMIT:
        raise bad_request(f"limit cannot exceed {MAX_LIMIT}")
    return limit


def strict_limit(limit: int | None) -> int:
    """Traces and spans: absent means the default, but 0 is an error."""
    if limit is None:
        return DEFAULT_LIMIT
    if limit <= 0:
        raise bad_request("limit must be a positive integer greater than zero")
    if limit > MAX_LIMIT:
        raise bad_request(f"limit cannot exceed {MAX_LIMIT}")
    return limit


def sort_order(value: str | None) -> SortOrder:
    if value in (None, ""):
        return "desc"
    if value not in ("asc", "desc"):
        raise bad_request("sortOrder must be either 'asc' or 'desc'")
    return value  # type: ignore[return-value]


def log_levels(levels: list[str] | None) -> tuple[str, ...]:
    seen: list[str] = []
    for level in levels or []:
        if level not in API_LEVELS:
            raise bad_request(f"invalid log level '{level}'; valid levels are: {', '.join(API_LEVELS)}")
        if level in seen:
            raise bad_request(f"duplicate log level '{level}' is not allowed")
        seen.append(level)
    return tuple(seen)


def step_ns(step: str | None, window: TimeRange) -> int:
    if step is None or step == "":
        chosen = DEFAULT_STEP_NS
    else:
        try:
            chosen = parse_go_duration(step)
        except ValueError as exc:
            raise bad_request(f"step must be a valid duration (e.g. 1m, 5m, 15m, 30m, 1h): {exc}") from None
        if chosen <= 0:
            raise bad_request("step must be greater than 0")
    points = (window.end_ns - window.start_ns) // chosen + 1
    if points > MAX_POINTS:
        smallest = -(-(window.end_ns - window.start_ns) // (MAX_POINTS - 1))
        raise bad_request(
            f"step {step} gives {points} points per series over this range; at most {MAX_POINTS} are allowed,"
            f" so use a step of at least {max(1, -(-smallest // 10**9))}s"
        )
    return chosen


def _traces_code(error: ApiError) -> ApiError:
    error.error_code = TRACES_ERROR_CODE
    return error


# ----------------------------------------------------------------------------------------------- requests


def validate_logs(body: LogsQueryRequest) -> tuple[NamedScope | WorkflowScope, LogsQuery]:
    scope = _scope_of(body.searchScope)
    window = time_range(body.startTime, body.endTime)
    limit = plain_limit(body.limit)
    order = sort_order(body.sortOrder)
    levels = log_levels(body.logLevels)
    return scope, LogsQuery(
        scope=_placeholder(scope),
        range=window,
        limit=limit,
        sort=order,
        levels=levels,
        phrase=body.searchPhrase or "",
        cursor=body.cursor or "",
    )


def validate_events(body: EventsQueryRequest) -> tuple[NamedScope | WorkflowScope, EventsQuery]:
    scope = _scope_of(body.searchScope)
    window = time_range(body.startTime, body.endTime)
    limit = plain_limit(body.limit)
    order = sort_order(body.sortOrder)
    return scope, EventsQuery(
        scope=_placeholder(scope), range=window, limit=limit, sort=order, cursor=body.cursor or ""
    )


def validate_metrics(body: MetricsQueryRequest) -> tuple[NamedScope, MetricsQuery]:
    if not body.metric:
        raise bad_request("metric is required")
    if body.metric not in ("resource", "http"):
        raise bad_request("metric must be either resource or http")
    window = time_range(body.startTime, body.endTime)
    scope = component_scope(body.searchScope)
    step = step_ns(body.step, window)
    return scope, MetricsQuery(family=body.metric, scope=_placeholder(scope), range=window, step_ns=step)  # type: ignore[arg-type]


def validate_topology(body: RuntimeTopologyRequest) -> tuple[NamedScope, TopologyQuery]:
    raw = body.searchScope or ComponentSearchScope()
    for field in ("namespace", "project", "environment"):
        if not _text(getattr(raw, field)):
            raise bad_request(f"searchScope.{field} is required")
    scope = component_scope(raw)
    window = time_range(body.startTime, body.endTime)
    return scope, TopologyQuery(
        scope=_placeholder(scope),
        range=window,
        include_gateways=True if body.includeGateways is None else body.includeGateways,
        include_external=True if body.includeExternal is None else body.includeExternal,
    )


def validate_traces(body: TracesQueryRequest) -> tuple[NamedScope, TracesQuery]:
    try:
        scope = component_scope(body.searchScope)
        window = time_range(body.startTime, body.endTime)
        limit = strict_limit(body.limit)
        order = sort_order(body.sortOrder)
    except ApiError as error:
        raise _traces_code(error) from None
    return scope, TracesQuery(scope=_placeholder(scope), range=window, limit=limit, sort=order)


def validate_spans(trace_id: str, body: TracesQueryRequest) -> tuple[NamedScope, SpansQuery]:
    if not trace_id.strip():
        raise _traces_code(bad_request("traceId is required"))
    scope, traces = validate_traces(body)
    return scope, SpansQuery(
        trace_id=trace_id.strip().lower(), scope=traces.scope, range=traces.range, limit=traces.limit, sort=traces.sort
    )


def _scope_of(scope: ComponentSearchScope | WorkflowSearchScope | None) -> NamedScope | WorkflowScope:
    if scope is None:
        raise bad_request("searchScope is required")
    if isinstance(scope, WorkflowSearchScope):
        return workflow_scope(scope)
    return component_scope(scope)


def _placeholder(scope: NamedScope | WorkflowScope) -> ComponentScope | WorkflowScope:
    """The query's scope until names are resolved: the service swaps in the UIDs after authorization."""
    return scope if isinstance(scope, WorkflowScope) else ComponentScope(namespace=scope.namespace)
