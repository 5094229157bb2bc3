"""The audit trail over the logs-adapter contract, both ways: `POST /api/v1alpha1/audit-logs/query` and
`/api/v1alpha1/audit-logs/filter-values` (OpenChoreo's `AuditLogsQueryRequest`, `AuditLogsResponse`,
`AuditLogFilterValuesRequest`; names as OpenChoreo's generated adapter code has them).

The contract's record (`AuditLogRecord`) is the published, frozen line a SIEM consumes: its keys are
snake_case (`event_id`, `event_time`, `actor.session_id`, `operation_id` ...) while the envelope is camelCase,
and a query names each filter exactly as the record nests it (`actor.id` under `actor`, `operation_id` at the
top). So a filter's domain name (domain.audit.AUDIT_FILTERS, `request_id`, `event_id`) is its path in the
request. `actor.entitlements` is a map of claim -> values in the record; ours is one list, sent under the
claim a subject of its type draws them from (`groups` for a user, `sub` for a service account) and read back
as every claim's values.

The timeline: the contract's buckets cover the window contiguously (empty ones with zero counts), at most
MAX_BUCKETS of them (a finer interval is coarsened, not refused, and the width used is reported), widths in
`<count><unit>` with m, h, d or w. Our backends count non-empty buckets aligned to the epoch
(domain.audit.timeline_start); the server fills the gaps from the bucket holding `startTime` on, and the client
drops the empty ones again. A width that is not whole minutes is sent in seconds (`30s`, an extension a foreign
adapter refuses).
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
    Actor,
    AuditPage,
    AuditQuery,
    AuditRecord,
    AuditResource,
    Collected,
    TimelineBucket,
    timeline_start,
)
from domain.model import TimeRange
from domain.platform import MAX_FILTER_VALUES, FilterValuesQuery
from domain.timeutil import format_rfc3339, parse_rfc3339

#: The most buckets a timeline answer holds (the contract's 500: a finer interval is coarsened).
MAX_BUCKETS = 500
_UNITS_NS = (("w", 604_800 * 10**9), ("d", 86_400 * 10**9), ("h", 3600 * 10**9), ("m", 60 * 10**9), ("s", 10**9))
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
    """A bucket width in the contract's `<count><unit>` (the largest whole unit; seconds as our extension)."""
    for unit, size in _UNITS_NS:
        if interval_ns % size == 0:
            return f"{interval_ns // size}{unit}"
    return f"{max(1, interval_ns // 10**9)}s"


def parse_interval(text: str) -> int:
    """`<count><unit>` (m, h, d, w; and s, our extension) as nanoseconds; RequestInvalid otherwise."""
    sizes = dict(_UNITS_NS)
    count, unit = text[:-1], text[-1:]
    if unit not in sizes or not count.isdigit() or not 0 < int(count) <= 10_000:
        raise RequestInvalid(
            f"timelineInterval: {text[:40]!r} is not a count and a unit (m, h, d or w), such as 5m or 1h"
        )
    return int(count) * sizes[unit]


def resolve_interval(requested_ns: int, window: TimeRange) -> int:
    """The width to use: the requested one, or range / 60 in whole minutes (at least a minute) when none was,
    coarsened until the window holds at most MAX_BUCKETS buckets."""
    span = window.end_ns - window.start_ns
    width = requested_ns or max(60 * 10**9, span // 60 // (60 * 10**9) * 60 * 10**9)
    ladder = [size for _, size in reversed(_UNITS_NS)]
    while -(-span // width) > MAX_BUCKETS:
        coarser = [size for size in ladder if size > width]
        width = coarser[0] if coarser and -(-span // coarser[0]) <= MAX_BUCKETS else width * 2
    return width


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
    query: requested, or chosen from the window, then coarsened to MAX_BUCKETS)."""
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
    interval = resolve_interval(parse_interval(requested) if requested else 0, window) if wants_timeline else 0
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


def _present(values: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value not in ("", None, (), [], {})}


def record_json(record: AuditRecord) -> dict[str, Any]:
    """The contract's AuditLogRecord (snake_case keys, empty optional fields left out)."""
    actor = record.actor
    claim = "sub" if actor.type == "service_account" else "groups"
    body: dict[str, Any] = {
        "schema_version": record.schema_version,
        "event_id": record.event_id,
        "event_time": format_rfc3339(record.time_ns),
        "actor": {
            "type": actor.type,
            "id": actor.id,
            **_present({"issuer": actor.issuer, "session_id": actor.session_id}),
            **({"entitlements": {claim: list(actor.entitlements)}} if actor.entitlements else {}),
        },
        "action": record.action,
        "category": record.category,
        "result": record.result,
    }
    body.update(
        _present(
            {
                "request_id": record.request_id,
                "source_ip": record.source_ip,
                "user_agent": record.user_agent,
                "producer": record.producer,
                "surface": record.surface,
                "operation_id": record.operation_id,
                "metadata": dict(record.metadata),
            }
        )
    )
    if record.http_method or record.http_path:
        body["http"] = _present({"method": record.http_method, "path": record.http_path})
    if record.resource is not None:
        body["resource"] = _present(
            {name: getattr(record.resource, name) for name in AuditResource.__dataclass_fields__}
        )
    if record.collector is not None:
        collected = record.collector
        body["collector"] = _present(
            {"namespaceName": collected.namespace, "podName": collected.pod, "containerName": collected.container}
        )
    return body


def _text(source: Mapping[str, Any], key: str) -> str:
    value = source.get(key)
    return value if isinstance(value, str) else ""


def _mapping(source: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    value = source.get(key)
    return value if isinstance(value, Mapping) else None


def parse_record(body: Mapping[str, Any]) -> AuditRecord:
    """An AuditLogRecord; ValueError (or KeyError) when a required field is missing."""
    actor = _mapping(body, "actor") or {}
    claims = _mapping(actor, "entitlements") or {}
    entitlements = [str(item) for values in claims.values() if isinstance(values, list) for item in values]
    resource = _mapping(body, "resource")
    collector = _mapping(body, "collector")
    http = _mapping(body, "http") or {}
    metadata = _mapping(body, "metadata") or {}
    if not _text(body, "event_id") or not _text(actor, "type"):
        raise ValueError("an audit record has an event_id and an actor type")
    return AuditRecord(
        schema_version=_text(body, "schema_version"),
        event_id=_text(body, "event_id"),
        time_ns=parse_rfc3339(str(body["event_time"])),
        actor=Actor(
            type=_text(actor, "type"),
            id=_text(actor, "id"),
            issuer=_text(actor, "issuer"),
            session_id=_text(actor, "session_id"),
            entitlements=tuple(dict.fromkeys(entitlements)),
        ),
        action=_text(body, "action"),
        category=_text(body, "category"),
        result=_text(body, "result"),
        surface=_text(body, "surface"),
        producer=_text(body, "producer"),
        operation_id=_text(body, "operation_id"),
        request_id=_text(body, "request_id"),
        source_ip=_text(body, "source_ip"),
        user_agent=_text(body, "user_agent"),
        http_method=_text(http, "method"),
        http_path=_text(http, "path"),
        metadata={str(key): str(value) for key, value in metadata.items()},
        resource=None
        if resource is None
        else AuditResource(**{name: _text(resource, name) for name in AuditResource.__dataclass_fields__}),
        collector=None
        if collector is None
        else Collected(
            _text(collector, "namespaceName"), _text(collector, "podName"), _text(collector, "containerName")
        ),
    )


# ----------------------------------------------------------------------------------------------- the answer


def timeline_json(buckets: list[TimelineBucket], query: AuditQuery) -> dict[str, Any]:
    """Contiguous buckets from the one holding the window's start up to its end (exclusive, as the contract's
    `endTime` is; a bucket starting at the end itself is sent only when records fall on the end, our ranges being
    inclusive), the empty ones zero."""
    interval = query.timeline_interval_ns
    found = {bucket.start_ns: bucket for bucket in buckets}
    starts = sorted({*range(timeline_start(query.range.start_ns, interval), query.range.end_ns, interval), *found})
    out = []
    for start in starts:
        bucket = found.get(start)
        entry: dict[str, Any] = {"startTime": format_rfc3339(start), "total": bucket.total if bucket else 0}
        if bucket is not None and bucket.counts:
            entry["counts"] = dict(bucket.counts)
        out.append(entry)
    return {"interval": format_interval(interval), "buckets": out}


def audit_response(page: AuditPage, query: AuditQuery) -> dict[str, Any]:
    body: dict[str, Any] = {"records": [record_json(record) for record in page.records], "total": page.total}
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
    return page, _text(timeline, "interval") if timeline is not None else ""


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
