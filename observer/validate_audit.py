"""Checking an audit-trail request (and its filter-values companion) into the domain query, or a 400 naming the
field to fix: the form (unknown fields refused by their full path, upstream's old camelCase spellings pointed at
their snake_case names), the range (end after start, at most 30 days), enum values (category, result, surface:
an unknown one is refused, never matched against nothing), bounds on every list and on `limit`, and the
timeline's interval: `<count><unit>` as upstream writes it; one giving more than
domain.audit.MAX_TIMELINE_BUCKETS buckets is coarsened, not refused (upstream's rule), and the query carries the
width used so the answer can report it."""

from __future__ import annotations

from dataclasses import replace

from domain.audit import (
    AUDIT_FILTERS,
    CATEGORIES,
    DEFAULT_AUDIT_LIMIT,
    MAX_AUDIT_LIMIT,
    RESULTS,
    SURFACES,
    AuditQuery,
    coarsened_interval,
    parse_interval,
)
from domain.echo import shown
from domain.model import TimeRange
from domain.platform import FilterValuesQuery
from observer.errors import bad_request
from observer.strict_form import check_form
from observer.validate_platform import max_values, value_search
from observer.validation import search_phrase, sort_order, time_range
from observer.wire_audit import AuditFilterValuesRequest, AuditLogsQueryRequest
from observer.wire_platform import MAX_FILTER_ITEMS

ENDPOINT = "audit logs"
#: The longest single filter value (an id, a user agent, an action).
MAX_VALUE_CHARS = 1024

#: The request's top-level list fields, each named as the AuditQuery filter it fills (the record's own spelling),
#: with the enum it must keep to.
_TOP: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("action", ()),
    ("category", CATEGORIES),
    ("result", RESULTS),
    ("surface", SURFACES),
    ("producer", ()),
    ("operation_id", ()),
    ("request_id", ()),
    ("event_id", ()),
    ("source_ip", ()),
    ("user_agent", ()),
)
_ACTOR = ("id", "type", "issuer", "session_id", "entitlements")
_RESOURCE = ("type", "namespace", "environment", "project", "component", "resource", "name")


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
    for name, enum in _TOP:
        chosen[name] = _values(name, getattr(body, name), enum)
    for prefix, part, fields in (("actor", body.actor, _ACTOR), ("resource", body.resource, _RESOURCE)):
        if part is None:
            continue
        for field in fields:
            chosen[f"{prefix}.{field}"] = _values(f"{prefix}.{field}", getattr(part, field))
    return tuple(sorted((name, values) for name, values in chosen.items() if values))


def audit_limit(limit: int | None) -> int:
    if not limit:
        return DEFAULT_AUDIT_LIMIT
    if not 1 <= limit <= MAX_AUDIT_LIMIT:
        raise bad_request(f"limit must be a whole number from 1 to {MAX_AUDIT_LIMIT}")
    return limit


def timeline_interval(include: bool | None, text: str | None, window: TimeRange) -> int:
    """The width of the timeline's buckets in nanoseconds, 0 when no timeline is asked for. An interval in another
    notation is refused even without a timeline (it is a mistake either way); one too fine for the window is
    coarsened to at most MAX_TIMELINE_BUCKETS buckets; none gets a width chosen from the window."""
    requested = 0
    if text:
        try:
            requested = parse_interval(text)
        except ValueError as exc:
            raise bad_request(f"timelineInterval '{shown(text)}' is not in the accepted notation: {exc}") from None
    if not include:
        return 0  # upstream: ignored unless includeTimeline is true
    return coarsened_interval(window, requested)


def audit_query(body: AuditLogsQueryRequest, *, paged: bool = True) -> AuditQuery:
    """With `paged` False (filter values), limit, sortOrder, cursor and the timeline are ignored, not checked
    (upstream: accepted and ignored there)."""
    window = time_range(body.startTime, body.endTime)
    query = AuditQuery(range=window, filters=_filters(body), phrase=search_phrase(body.searchPhrase))
    if not paged:
        return query
    return replace(
        query,
        limit=audit_limit(body.limit),
        sort=sort_order(body.sortOrder),
        cursor=body.cursor or "",
        timeline_interval_ns=timeline_interval(body.includeTimeline, body.timelineInterval, window),
    )


def validate_audit_logs(body: AuditLogsQueryRequest) -> AuditQuery:
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
        query=audit_query(body.query, paged=False),
        filter=audit_filter(body.filter),
        value_search=value_search(body.valueSearch),
        max_values=max_values(body.maxValues),
    )
