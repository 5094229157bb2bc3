"""The audit trail over the logs-adapter contract, both ways: `POST /api/v1alpha1/audit-logs/query` and
`/api/v1alpha1/audit-logs/filter-values` (OpenChoreo's `AuditLogsQueryRequest`, `AuditLogsResponse`,
`AuditLogFilterValuesRequest`; names as OpenChoreo's generated adapter code has them).

The contract's record (`AuditLogRecord`) is the published, frozen line a SIEM consumes, and it is our record's
own JSON (domain.audit.audit_document: snake_case keys while the envelope is camelCase, `actor.entitlements` a
claim -> values map). A query names each filter exactly as the record nests it (`actor.id` under `actor`,
`operation_id` at the top), so a filter's domain name (domain.audit.AUDIT_FILTERS, `request_id`, `event_id`)
is its path in the request. A record is read with an open vocabulary (parse_record): `category` and `result` are
open strings in a record (a newer schema's values must not break an older reader), unlike a request's closed filters.

The timeline: the contract's buckets cover the window contiguously from `startTime` (empty ones with zero
counts), at most domain.audit.MAX_TIMELINE_BUCKETS of them (a finer interval is coarsened, not refused, and the
width used is reported: domain.audit.coarsened_interval), widths in `<count><unit>` with m, h, d or w. Our
backends count non-empty buckets from the window's start (domain.audit.timeline_start); the server fills the
gaps (domain.audit.contiguous_timeline), the client drops the empty ones again. A width that is not whole
minutes is sent in seconds (`30s`, an extension a foreign adapter refuses).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from adapters.http_contract.strict import Reader, RequestInvalid
from domain.audit import (
    AUDIT_FILTERS,
    CATEGORIES,
    DEFAULT_AUDIT_LIMIT,
    EXACT_ONLY_FILTERS,
    MAX_AUDIT_LIMIT,
    RESULTS,
    SURFACES,
    AuditPage,
    AuditQuery,
    AuditRecord,
    TimelineBucket,
    audit_document,
    audit_from_document,
    coarsened_interval,
    contiguous_timeline,
)
from domain.audit import format_interval as format_minutes
from domain.audit import parse_interval as parse_minutes
from domain.model import TimeRange
from domain.platform import MAX_FILTER_VALUES, FilterValuesQuery
from domain.timeutil import format_rfc3339, parse_rfc3339

_SECOND = 10**9
#: The closed sets a request is checked against (an unknown value is a 400, not a filter matching nothing).
ENUMS: dict[str, tuple[str, ...]] = {"category": CATEGORIES, "result": RESULTS, "surface": SURFACES}
_ACTOR_FILTERS = ("id", "type", "issuer", "session_id", "entitlements")
_RESOURCE_FILTERS = ("type", "namespace", "environment", "project", "component", "resource", "name")
_TOP_FILTERS = (
    "action",
    "category",
    "result",
    "producer",
    "surface",
    "operation_id",
    "source_ip",
    "user_agent",
    "request_id",
    "event_id",
)
FILTER_NAMES = frozenset(AUDIT_FILTERS) | frozenset(EXACT_ONLY_FILTERS)


# ----------------------------------------------------------------------------------------------- intervals


def format_interval(interval_ns: int) -> str:
    """A bucket width in the contract's `<count><unit>` (domain.audit.format_interval), in seconds (our
    extension) when it is not whole minutes."""
    try:
        return format_minutes(interval_ns)
    except ValueError:
        return f"{max(1, interval_ns // _SECOND)}s"


def parse_interval(text: str) -> int:
    """`<count><unit>` (m, h, d, w; and s, our extension) as nanoseconds; RequestInvalid otherwise."""
    count = text[:-1]
    if text.endswith("s") and count.isdigit() and 0 < int(count) <= 100_000:
        return int(count) * _SECOND
    try:
        return parse_minutes(text)
    except ValueError:
        raise RequestInvalid(
            f"timelineInterval: {text[:40]!r} is not a count and a unit (m, h, d or w), such as 5m or 1h"
        ) from None


# ----------------------------------------------------------------------------------------------- the query


def _place(body: dict[str, Any], name: str, values: tuple[str, ...]) -> None:
    group, dot, leaf = name.partition(".")
    if dot:
        body.setdefault(group, {})[leaf] = list(values)
    else:
        body[name] = list(values)


def audit_request(query: AuditQuery) -> dict[str, Any]:
    body: dict[str, Any] = {
        "startTime": format_rfc3339(query.range.start_ns),
        "endTime": format_rfc3339(query.range.end_ns),
    }
    for name, values in query.filters:
        _place(body, name, values)
    if query.phrase:
        body["searchPhrase"] = query.phrase
    body["limit"] = query.limit
    body["sortOrder"] = query.sort
    if query.timeline_interval_ns > 0:
        body["includeTimeline"] = True
        body["timelineInterval"] = format_interval(query.timeline_interval_ns)
    if query.cursor:
        body["cursor"] = query.cursor
    return body


def read_audit_query(reader: Reader) -> tuple[AuditQuery, bool]:
    """An AuditLogsQueryRequest, strictly, and whether a timeline was asked for (its width resolved into the
    query: requested, or chosen from the window, coarsened to at most MAX_TIMELINE_BUCKETS buckets)."""
    start, end = reader.window()
    filters: dict[str, tuple[str, ...]] = {}
    for group, leaves in (("actor", _ACTOR_FILTERS), ("resource", _RESOURCE_FILTERS)):
        inner = reader.object(group)
        if inner is not None:
            for leaf in leaves:
                filters[f"{group}.{leaf}"] = inner.texts(leaf)
            inner.done()
    for name in _TOP_FILTERS:
        filters[name] = reader.texts(name, ENUMS.get(name, ()))
    window = TimeRange(start, end)
    wants_timeline = reader.flag("includeTimeline")
    requested = reader.text("timelineInterval")
    interval = coarsened_interval(window, parse_interval(requested) if requested else 0) if wants_timeline else 0
    query = AuditQuery(
        range=window,
        filters=tuple(sorted((name, values) for name, values in filters.items() if values)),
        phrase=reader.text("searchPhrase"),
        limit=reader.integer("limit", 1, MAX_AUDIT_LIMIT, DEFAULT_AUDIT_LIMIT),
        sort=reader.choice("sortOrder", ("asc", "desc"), "desc"),  # type: ignore[arg-type]
        cursor=reader.text("cursor"),
        timeline_interval_ns=interval,
    )
    reader.done()
    return query, wants_timeline


def parse_audit_request(body: Any) -> AuditQuery:
    return read_audit_query(Reader(body))[0]


# ----------------------------------------------------------------------------------------------- records


def _mapping(source: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    value = source.get(key)
    return value if isinstance(value, Mapping) else None


def parse_record(body: Mapping[str, Any]) -> AuditRecord:
    """An AuditLogRecord: our record's own document (domain.audit.audit_from_document), read with an open
    vocabulary (a newer schema's categories and results are kept); NotAnAuditRecord (a ValueError) when a
    required field is missing or mistyped."""
    return audit_from_document(body, closed_vocabulary=False)


# ----------------------------------------------------------------------------------------------- the answer


def timeline_json(buckets: list[TimelineBucket], query: AuditQuery) -> dict[str, Any]:
    """Every bucket of the window from its start (domain.audit.contiguous_timeline), the empty ones zero; a
    bucket starting at the window's end itself is sent too when records fall on the end (our ranges include
    it, the contract's `endTime` does not)."""
    interval = query.timeline_interval_ns
    every = contiguous_timeline(query.range, interval, buckets)
    every += [bucket for bucket in buckets if bucket.start_ns >= query.range.end_ns and bucket.total]
    out = []
    for bucket in every:
        entry: dict[str, Any] = {"startTime": format_rfc3339(bucket.start_ns), "total": bucket.total}
        if bucket.counts:
            entry["counts"] = dict(bucket.counts)
        out.append(entry)
    return {"interval": format_interval(interval), "buckets": out}


def audit_response(page: AuditPage, query: AuditQuery) -> dict[str, Any]:
    # the contract's AuditLogRecord is the record's own document
    body: dict[str, Any] = {"records": [audit_document(record) for record in page.records], "total": page.total}
    body["tookMs"] = page.took_ms
    if page.timeline is not None and query.timeline_interval_ns > 0:
        body["timeline"] = timeline_json(page.timeline, query)
    if page.next_cursor:
        body["nextCursor"] = page.next_cursor
    return body


def parse_audit_response(body: Any) -> tuple[AuditPage, str]:
    """The page, and the timeline's interval as the adapter reports it ("" without a timeline). Empty buckets
    are dropped, as our backends leave them out."""
    if not isinstance(body, Mapping) or not isinstance(body.get("records"), list):
        raise ValueError("an AuditLogsResponse has a `records` list")
    records = [parse_record(item) for item in body["records"] if isinstance(item, Mapping)]
    timeline = _mapping(body, "timeline")
    buckets = None
    if timeline is not None:
        buckets = [
            TimelineBucket(
                parse_rfc3339(str(item["startTime"])),
                int(item.get("total") or 0),
                {str(key): int(value) for key, value in (item.get("counts") or {}).items() if value},
            )
            for item in timeline.get("buckets") or []
            if isinstance(item, Mapping) and item.get("total")
        ]
    page = AuditPage(
        records, int(body.get("total") or 0), int(body.get("tookMs") or 0), str(body.get("nextCursor") or ""), buckets
    )
    interval = timeline.get("interval") if timeline is not None else ""
    return page, interval if isinstance(interval, str) else ""


# ----------------------------------------------------------------------------------------------- filter values


def audit_values_request(query: FilterValuesQuery[AuditQuery]) -> dict[str, Any]:
    inner = audit_request(replace(query.query, cursor="", timeline_interval_ns=0))
    body: dict[str, Any] = {"query": inner, "filter": query.filter}
    if query.value_search:
        body["valueSearch"] = query.value_search
    body["maxValues"] = query.max_values
    return body


def parse_audit_values_request(body: Any) -> FilterValuesQuery[AuditQuery]:
    """The request as it came (its filter's own selection NOT cleared yet: the caller does that)."""
    reader = Reader(body)
    name = reader.text("filter")
    if name not in AUDIT_FILTERS:
        raise RequestInvalid(f"filter must be one of {', '.join(AUDIT_FILTERS)}")
    inner = reader.object("query")
    if inner is None:
        raise RequestInvalid("query is required: the audit query the values are listed under")
    query, _ = read_audit_query(inner)
    values = FilterValuesQuery(
        replace(query, timeline_interval_ns=0),
        name,
        reader.text("valueSearch"),
        reader.integer("maxValues", 1, MAX_FILTER_VALUES, 100),
    )
    reader.done()
    return values


def without_audit_selection(query: AuditQuery, name: str) -> AuditQuery:
    """The query with filter `name`'s own selection cleared, and no cursor (the contract's rule)."""
    return replace(query, filters=tuple(pair for pair in query.filters if pair[0] != name), cursor="")
