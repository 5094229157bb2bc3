"""Checking an audit-trail request (and its filter-values companion) into the domain query, or a 400 naming the
field to fix: the form, the range (end after start, at most 30 days), enum values (category, result, surface:
an unknown one is refused, never matched against nothing), bounds on every list and on `limit`, and the
timeline's interval (a Go duration giving at most domain.audit.MAX_TIMELINE_BUCKETS buckets)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from domain.audit import (
    AUDIT_FILTERS,
    CATEGORIES,
    DEFAULT_AUDIT_LIMIT,
    MAX_AUDIT_LIMIT,
    MAX_TIMELINE_BUCKETS,
    RESULTS,
    SURFACES,
    AuditQuery,
    timeline_start,
)
from domain.echo import shown
from domain.model import TimeRange
from domain.platform import FilterValuesQuery
from domain.timeutil import parse_go_duration
from observer.durations import go_duration, nice_step
from observer.errors import bad_request
from observer.strict_form import check_form
from observer.validate_platform import max_values, value_search
from observer.validation import search_phrase, sort_order, time_range
from observer.wire_audit import AuditFilterValuesRequest, AuditLogsQueryRequest
from observer.wire_platform import MAX_FILTER_ITEMS

ENDPOINT = "audit logs"
#: A default timeline has at most this many buckets.
DEFAULT_TIMELINE_BUCKETS = 100
#: The longest single filter value (an id, a user agent, an action).
MAX_VALUE_CHARS = 1024

#: The request's list fields -> the AuditQuery filter name each fills, and the enum it must keep to.
_TOP: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("action", "action", ()),
    ("category", "category", CATEGORIES),
    ("result", "result", RESULTS),
    ("surface", "surface", SURFACES),
    ("producer", "producer", ()),
    ("operationId", "operation_id", ()),
    ("requestId", "request_id", ()),
    ("eventId", "event_id", ()),
    ("sourceIp", "source_ip", ()),
    ("userAgent", "user_agent", ()),
)
_ACTOR = (
    ("id", "id"),
    ("type", "type"),
    ("issuer", "issuer"),
    ("sessionId", "session_id"),
    ("entitlements", "entitlements"),
)
_RESOURCE = tuple(
    (name, name) for name in ("type", "namespace", "environment", "project", "component", "resource", "name")
)


@dataclass(frozen=True, slots=True)
class CheckedAudit:
    """The domain query, and the timeline interval as the answer writes it ("" without a timeline)."""

    query: AuditQuery
    interval: str = ""


def _values(field: str, values: list[str] | None, enum: tuple[str, ...] = ()) -> tuple[str, ...]:
    values = values or []
    if len(values) > MAX_FILTER_ITEMS:
        raise bad_request(f"{field} has {len(values)} values; at most {MAX_FILTER_ITEMS} are allowed")
    for index, value in enumerate(values):
        if enum and value not in enum:
            raise bad_request(f"{field}[{index}]: '{shown(value)}' is not one of {', '.join(enum)}")
        if not value:
            raise bad_request(f"{field}[{index}] is empty; leave the value out to match every one")
        if len(value) > MAX_VALUE_CHARS:
            raise bad_request(f"{field}[{index}] is {len(value)} characters long; at most {MAX_VALUE_CHARS}")
    return tuple(dict.fromkeys(values))


def _filters(body: AuditLogsQueryRequest) -> tuple[tuple[str, tuple[str, ...]], ...]:
    chosen: dict[str, tuple[str, ...]] = {}
    for field, name, enum in _TOP:
        chosen[name] = _values(field, getattr(body, field), enum)
    for prefix, part, fields in (("actor", body.actor, _ACTOR), ("resource", body.resource, _RESOURCE)):
        if part is None:
            continue
        for field, attribute in fields:
            chosen[f"{prefix}.{attribute}"] = _values(f"{prefix}.{field}", getattr(part, field))
    return tuple(sorted((name, values) for name, values in chosen.items() if values))


def audit_limit(limit: int | None) -> int:
    if not limit:
        return DEFAULT_AUDIT_LIMIT
    if not 1 <= limit <= MAX_AUDIT_LIMIT:
        raise bad_request(f"limit must be a whole number from 1 to {MAX_AUDIT_LIMIT}")
    return limit


def buckets(window: TimeRange, interval_ns: int) -> int:
    """How many epoch-aligned buckets of `interval_ns` the range touches (domain.audit.timeline_start)."""
    first = timeline_start(window.start_ns, interval_ns)
    last = timeline_start(window.end_ns, interval_ns)
    return (last - first) // interval_ns + 1


def timeline_interval(include: bool | None, text: str | None, window: TimeRange) -> tuple[int, str]:
    """(nanoseconds, as written) of the timeline's bucket; (0, "") when no timeline is asked for."""
    if not include:
        if text:
            raise bad_request("timelineInterval needs includeTimeline: true")
        return 0, ""
    if not text:
        chosen = nice_step(window.end_ns - window.start_ns, DEFAULT_TIMELINE_BUCKETS - 1)
        return chosen, go_duration(chosen)
    try:
        interval = parse_go_duration(text)
    except ValueError as exc:
        raise bad_request(f"timelineInterval must be a Go duration (e.g. 1m, 15m, 1h): {exc}") from None
    if interval <= 0:
        raise bad_request("timelineInterval must be greater than 0")
    count = buckets(window, interval)
    if count > MAX_TIMELINE_BUCKETS:
        span = window.end_ns - window.start_ns
        smallest = max(1, -(-span // (MAX_TIMELINE_BUCKETS - 1) // 10**9))
        raise bad_request(
            f"timelineInterval {shown(text)} gives {count} buckets over this range; at most {MAX_TIMELINE_BUCKETS}"
            f" are allowed, so use an interval of at least {smallest}s"
        )
    return interval, text


def audit_query(body: AuditLogsQueryRequest, *, paged: bool = True) -> CheckedAudit:
    """With `paged` False (filter values), limit, sortOrder, cursor and the timeline are ignored, not checked."""
    window = time_range(body.startTime, body.endTime)
    query = AuditQuery(range=window, filters=_filters(body), phrase=search_phrase(body.searchPhrase))
    if not paged:
        return CheckedAudit(query)
    interval_ns, interval = timeline_interval(body.includeTimeline, body.timelineInterval, window)
    query = replace(
        query,
        limit=audit_limit(body.limit),
        sort=sort_order(body.sortOrder),
        cursor=body.cursor or "",
        timeline_interval_ns=interval_ns,
    )
    return CheckedAudit(query, interval)


def validate_audit_logs(body: AuditLogsQueryRequest) -> CheckedAudit:
    check_form(body, ENDPOINT)
    return audit_query(body)


def audit_filter(name: str | None) -> str:
    if not name:
        raise bad_request(f"filter is required: one of {', '.join(AUDIT_FILTERS)}")
    if name not in AUDIT_FILTERS:
        raise bad_request(f"filter '{shown(name)}' is not an audit filter; use one of {', '.join(AUDIT_FILTERS)}")
    return name


def validate_audit_filter_values(body: AuditFilterValuesRequest) -> FilterValuesQuery[AuditQuery]:
    """The question, its query NOT yet cleared of the filter's own selection (the service does that)."""
    check_form(body, ENDPOINT)
    if body.query is None:
        raise bad_request("query is required: the audit query whose values to list")
    return FilterValuesQuery(
        query=audit_query(body.query, paged=False).query,
        filter=audit_filter(body.filter),
        value_search=value_search(body.valueSearch),
        max_values=max_values(body.maxValues),
    )
