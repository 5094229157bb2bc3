"""Request validation in the contract's order, with the contract's messages.

Each `validate_*` takes a bound request and returns what the query service needs (the scope as the user named
it, and the checked request without a scope, `observer.requests`, which the service completes once the guard
has resolved the names), or raises a 400 ApiError naming the field to fix. The order of checks matters: clients
match on the first message, so it follows observer-contract-notes §1.2-1.8 exactly, after the checks of the
request's form (`observer.request_form`: unknown fields, text) that stand where the contract's "Invalid request
format" stands. The limits beyond the contract's (phrase length, name length, id forms, the int64 range of
times and steps) are checked last, so a request the contract refuses still gets the contract's message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import BaseModel

from domain.echo import shown
from domain.loglevel import API_LEVELS
from domain.model import SortOrder, TimeRange, WorkflowScope
from domain.timeutil import parse_go_duration, parse_rfc3339
from observer.errors import ApiError, bad_request
from observer.log_context import LogContextRequest as CheckedLogContext
from observer.request_form import BIND_PREFIX, check_body, check_text
from observer.requests import (
    EventsRequest,
    LogsRequest,
    MetricsRequest,
    SpansRequest,
    TopologyRequest,
    TracesRequest,
)
from observer.wire import (
    CONTEXT_DEFAULT_LINES,
    CONTEXT_MAX_LINES,
    MAX_MIN_DURATION_MS,
    MAX_PHRASE_CHARS,
    ComponentSearchScope,
    EventsQueryRequest,
    LogContextRequest,
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
#: The longest scope name: OpenChoreo's names are Kubernetes object names (DNS subdomains, at most 253).
MAX_NAME_CHARS = 253


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


def _names(scope: BaseModel, fields: tuple[str, ...]) -> tuple[str, ...]:
    values = tuple(_text(getattr(scope, field)) for field in fields)
    for field, value in zip(fields, values, strict=True):
        check_text(f"searchScope.{field}", value)
    return values


def _short_names(named: dict[str, str]) -> None:
    for field, value in named.items():
        if len(value) > MAX_NAME_CHARS:
            raise bad_request(
                f"searchScope.{field} is {len(value)} characters long; names are at most {MAX_NAME_CHARS}"
            )


def component_scope(scope: ComponentSearchScope | None) -> NamedScope:
    scope = scope or ComponentSearchScope()
    fields = ("namespace", "project", "component", "environment")
    named = NamedScope(*_names(scope, fields))
    if not named.namespace:
        raise bad_request("searchScope.namespace is required")
    if named.component and not named.project:
        raise bad_request("searchScope.project is required when searchScope.component is provided")
    _short_names({field: getattr(named, field) for field in fields})
    return named


def workflow_scope(scope: WorkflowSearchScope) -> WorkflowScope:
    namespace, run, task = _names(scope, ("namespace", "workflowRunName", "taskName"))
    if not namespace:
        raise bad_request("searchScope.namespace is required")
    _short_names({"namespace": namespace, "workflowRunName": run, "taskName": task})
    return WorkflowScope(namespace, run, task)


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
            raise bad_request(f"invalid log level '{shown(level)}'; valid levels are: {', '.join(API_LEVELS)}")
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
    span = window.end_ns - window.start_ns
    points = span // chosen + 1 + (1 if span % chosen else 0)  # a partial last step is one more point
    if points > MAX_POINTS:
        smallest = -(-span // (MAX_POINTS - 2))  # leaves room for a partial last step's point
        raise bad_request(
            f"step {shown(step)} gives {points} points per series over this range; at most {MAX_POINTS} are allowed,"
            f" so use a step of at least {max(1, -(-smallest // 10**9))}s"
        )
    return chosen


def search_phrase(phrase: str | None) -> str:
    phrase = phrase or ""
    if len(phrase) > MAX_PHRASE_CHARS:
        raise bad_request(f"searchPhrase is {len(phrase)} characters long; at most {MAX_PHRASE_CHARS} are allowed")
    return phrase


def log_trace_id(value: str | None) -> str:
    """The logs query's `traceId` filter (an extension): absent or "" for any trace, else a trace id in
    OpenTelemetry's form, lower-cased as every backend stores it."""
    if value is None or value == "":
        return ""
    if not _TRACE_ID.fullmatch(value) or not value.strip("0"):
        raise bad_request(
            f"traceId must be 32 hexadecimal digits, not all zero (OpenTelemetry's form); got '{shown(value)}'"
        )
    return value.lower()


def min_duration_ns(value: int | None) -> int:
    """The trace list's `minDurationMs` filter (an extension), in nanoseconds; absent means any duration."""
    if value is None:
        return 0
    if not 0 <= value <= MAX_MIN_DURATION_MS:
        raise bad_request(f"minDurationMs must be a whole number of milliseconds from 0 to {MAX_MIN_DURATION_MS}")
    return value * 1_000_000


def _traces_code(error: ApiError) -> ApiError:
    error.error_code = TRACES_ERROR_CODE
    return error


# ----------------------------------------------------------------------------------------------- ids

_TRACE_ID = re.compile(r"[0-9a-fA-F]{32}")
_SPAN_ID = re.compile(r"[0-9a-fA-F]{16}")


def trace_id(value: str) -> str:
    """An OpenTelemetry trace id (32 hex digits, not all zero), lower-cased: both backends store that form, so
    anything else could only ever find nothing, and says so instead."""
    return _otel_id("traceId", value, _TRACE_ID, 32)


def span_id(value: str) -> str:
    """An OpenTelemetry span id (16 hex digits, not all zero), lower-cased."""
    return _otel_id("spanId", value, _SPAN_ID, 16)


def _otel_id(field: str, value: str, form: re.Pattern[str], digits: int) -> str:
    if not value.strip():
        raise _traces_code(bad_request(f"{field} is required"))
    if not form.fullmatch(value) or not value.strip("0"):
        raise _traces_code(
            bad_request(
                f"{field} must be {digits} hexadecimal digits, not all zero (OpenTelemetry's form); got '{shown(value)}'"
            )
        )
    return value.lower()


# ----------------------------------------------------------------------------------------------- requests


def validate_logs(body: LogsQueryRequest) -> tuple[NamedScope | WorkflowScope, LogsRequest]:
    check_body(body, "logs", workflow_scopes=True)
    scope = _scope_of(body.searchScope)
    window = time_range(body.startTime, body.endTime)
    limit = plain_limit(body.limit)
    order = sort_order(body.sortOrder)
    levels = log_levels(body.logLevels)
    phrase = search_phrase(body.searchPhrase)
    trace = log_trace_id(body.traceId)
    return scope, LogsRequest(
        range=window,
        limit=limit,
        sort=order,
        levels=levels,
        phrase=phrase,
        cursor=body.cursor or "",
        trace_id=trace,
    )


def validate_events(body: EventsQueryRequest) -> tuple[NamedScope | WorkflowScope, EventsRequest]:
    check_body(body, "events", workflow_scopes=True)
    scope = _scope_of(body.searchScope)
    window = time_range(body.startTime, body.endTime)
    limit = plain_limit(body.limit)
    order = sort_order(body.sortOrder)
    return scope, EventsRequest(range=window, limit=limit, sort=order, cursor=body.cursor or "")


def validate_metrics(body: MetricsQueryRequest) -> tuple[NamedScope, MetricsRequest]:
    check_body(body, "metrics")
    if not body.metric:
        raise bad_request("metric is required")
    if body.metric not in ("resource", "http"):
        raise bad_request("metric must be either resource or http")
    window = time_range(body.startTime, body.endTime)
    scope = component_scope(body.searchScope)
    step = step_ns(body.step, window)
    return scope, MetricsRequest(family=body.metric, range=window, step_ns=step)  # type: ignore[arg-type]


def validate_topology(body: RuntimeTopologyRequest) -> tuple[NamedScope, TopologyRequest]:
    check_body(body, "runtime topology")
    raw = body.searchScope or ComponentSearchScope()
    for field in ("namespace", "project", "environment"):
        if not _text(getattr(raw, field)):
            raise bad_request(f"searchScope.{field} is required")
    scope = component_scope(raw)
    window = time_range(body.startTime, body.endTime)
    return scope, TopologyRequest(
        range=window,
        include_gateways=True if body.includeGateways is None else body.includeGateways,
        include_external=True if body.includeExternal is None else body.includeExternal,
    )


def validate_traces(body: TracesQueryRequest, endpoint: str = "traces") -> tuple[NamedScope, TracesRequest]:
    check_body(body, endpoint)
    try:
        scope = component_scope(body.searchScope)
        window = time_range(body.startTime, body.endTime)
        limit = strict_limit(body.limit)
        order = sort_order(body.sortOrder)
        min_duration = min_duration_ns(body.minDurationMs)
    except ApiError as error:
        raise _traces_code(error) from None
    errors_only = bool(body.errorsOnly)
    return scope, TracesRequest(
        range=window, limit=limit, sort=order, min_duration_ns=min_duration, errors_only=errors_only
    )


def validate_spans(trace: str, body: TracesQueryRequest) -> tuple[NamedScope, SpansRequest]:
    """The path's trace id first (as upstream checks it before the body), then the body as for traces. The trace
    list's filters say nothing about the spans of one trace: sent here they are refused, not ignored."""
    checked = trace_id(trace)
    for field in ("minDurationMs", "errorsOnly"):
        if getattr(body, field) is not None:
            raise _traces_code(
                bad_request(f"{BIND_PREFIX}: {field} is not supported by spans queries (it filters the trace list)")
            )
    scope, traces = validate_traces(body, "spans")
    return scope, SpansRequest(trace_id=checked, range=traces.range, limit=traces.limit, sort=traces.sort)


def validate_span_ids(trace: str, span: str) -> tuple[str, str]:
    """The path of the span-details route: both ids in OpenTelemetry's form, lower-cased."""
    return trace_id(trace), span_id(span)


def validate_log_context(body: LogContextRequest) -> tuple[NamedScope, CheckedLogContext]:
    """Extension (no contract order to keep): the form, the whole component scope, the anchor's time, then the
    optional container and line counts."""
    check_body(body, "log context")
    raw = body.searchScope or ComponentSearchScope()
    for field in ("namespace", "project", "component", "environment"):
        if not _text(getattr(raw, field)):
            raise bad_request(f"searchScope.{field} is required")
    scope = component_scope(raw)
    anchor = _time("timestamp", body.timestamp)
    pod, container = _text(body.podName), _text(body.containerName)
    for field, value in (("podName", pod), ("containerName", container)):
        if len(value) > MAX_NAME_CHARS:
            raise bad_request(f"{field} is {len(value)} characters long; names are at most {MAX_NAME_CHARS}")
    return scope, CheckedLogContext(
        anchor_ns=anchor,
        before=_context_lines("before", body.before),
        after=_context_lines("after", body.after),
        pod=pod,
        container=container,
    )


def _context_lines(field: str, value: int | None) -> int:
    if value is None:
        return CONTEXT_DEFAULT_LINES
    if not 0 <= value <= CONTEXT_MAX_LINES:
        raise bad_request(f"{field} must be a whole number from 0 to {CONTEXT_MAX_LINES}")
    return value


def _scope_of(scope: ComponentSearchScope | WorkflowSearchScope | None) -> NamedScope | WorkflowScope:
    if scope is None:
        raise bad_request("searchScope is required")
    if isinstance(scope, WorkflowSearchScope):
        return workflow_scope(scope)
    return component_scope(scope)
