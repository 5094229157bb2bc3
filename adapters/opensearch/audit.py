"""The audit trail as query DSL, and its answers read back. Pure functions.

An audit document is domain.audit.audit_document's JSON (upstream's snake_case keys), `_id` its `event_id`, in
daily indices of its own prefix (layout.py), with one field of ours (documents.audit_source). Every filter is a
`terms` clause on a keyword (`actor.entitlements` on our flattened `entitlementValues`, so a record matches when
any value of any claim is listed); the phrase a case-sensitive substring of any of fields.AUDIT_PHRASE_PATHS
(queries.contains, escaped). Records sort by (event_time, event_id): both have doc values, so `search_after` on
the pair pages exactly without timeline.py's help. The total is exact (`track_total_hits: true`: upstream wants
no understated count of what happened). The timeline is a `date_histogram` over every match (not only the page)
whose `offset` starts the buckets at the window's start, as domain.audit.timeline_start does.
"""

from __future__ import annotations

from typing import Any

from adapters.opensearch import facets, fields, queries
from adapters.protocols import NotSupportedByBackend
from domain.audit import RESULTS, AuditQuery, AuditRecord, TimelineBucket, audit_from_document
from domain.platform import FilterValuesQuery

_MS = 1_000_000
#: The error code of a timeline interval a date histogram cannot express.
TIMELINE_INTERVAL_CODE = "OBS-AUDIT-TIMELINE-INTERVAL"


def filter_path(name: str) -> str:
    """The document path of an AuditQuery filter name."""
    if name not in fields.AUDIT_FILTER_PATHS:
        raise ValueError(f"unknown audit filter {name!r}")
    return fields.AUDIT_FILTER_PATHS[name]


def audit_filters(query: AuditQuery) -> list[queries.Clause]:
    filters = [queries.time_range(fields.AUDIT_TIME, query.range)]
    filters += [{"terms": {filter_path(name): list(wanted)}} for name, wanted in query.filters if wanted]
    if query.phrase:
        filters.append(queries.any_of(*(queries.contains(path, query.phrase) for path in fields.AUDIT_PHRASE_PATHS)))
    return filters


def audit_sort(query: AuditQuery) -> list[queries.Clause]:
    return queries.time_sort(fields.AUDIT_TIME, query.sort, fields.AUDIT_EVENT_ID)


def search_body(query: AuditQuery, after: tuple[int, str] | None) -> dict[str, Any]:
    """One page (one record more than the limit, to know whether another follows), the exact total and, when
    asked for, the timeline."""
    body = queries.search_body(audit_filters(query), [], audit_sort(query), query.limit + 1)
    body["track_total_hits"] = True
    if after is not None:
        body["search_after"] = list(after)
    if query.timeline_interval_ns > 0:
        body["aggs"] = {"timeline": timeline_agg(query.timeline_interval_ns, query.range.start_ns)}
    return body


def timeline_agg(interval_ns: int, origin_ns: int) -> dict[str, Any]:
    """Counts per bucket and per result, buckets starting at `origin_ns` (the window's start; an `offset` moves a
    histogram's buckets off the epoch). A date histogram works in milliseconds: an interval that is not a whole
    number of them is refused (no one reads a sub-millisecond histogram of an audit trail), and a window starting
    inside a millisecond has its buckets start at that millisecond (read_timeline names them by the window's
    start, as every other backend does)."""
    if interval_ns % _MS:
        raise NotSupportedByBackend(
            TIMELINE_INTERVAL_CODE, "the OpenSearch audit timeline needs an interval of whole milliseconds"
        )
    return {
        "date_histogram": {
            "field": fields.AUDIT_TIME,
            "fixed_interval": f"{interval_ns // _MS}ms",
            "offset": f"+{origin_ns // _MS % (interval_ns // _MS)}ms",
            "min_doc_count": 1,
        },
        "aggs": {"results": {"terms": {"field": fields.AUDIT_RESULT, "size": len(RESULTS)}}},
    }


def read_records(response: dict[str, Any], limit: int) -> tuple[list[AuditRecord], int, tuple[int, str] | None]:
    """(records of the page, exact total, the last one's position when another page follows)."""
    hits = response.get("hits", {}).get("hits", [])
    records = [audit_from_document(hit["_source"]) for hit in hits[:limit]]
    total = int(response["hits"]["total"]["value"])
    if len(hits) > limit:
        ts_ns, event_id = hits[limit - 1]["sort"]
        return records, total, (int(ts_ns), str(event_id))
    return records, total, None


def read_timeline(response: dict[str, Any], query: AuditQuery) -> list[TimelineBucket]:
    """The non-empty buckets, ascending, each named by its start in the window (domain.audit.timeline_start): the
    histogram's keys are epoch milliseconds, whole intervals from the window's start millisecond."""
    origin_ms = query.range.start_ns // _MS
    aggregations = response.get("aggregations") or {}
    buckets = (aggregations.get("timeline") or {}).get("buckets", [])
    return [
        TimelineBucket(
            start_ns=query.range.start_ns + (int(bucket["key"]) - origin_ms) * _MS,
            total=int(bucket["doc_count"]),
            counts={str(each["key"]): int(each["doc_count"]) for each in bucket["results"]["buckets"]},
        )
        for bucket in buckets
        if bucket["doc_count"] > 0
    ]


def filter_values_body(query: FilterValuesQuery[AuditQuery]) -> dict[str, Any]:
    """Counts of `query.filter`'s values among the records `query.query` selects (its own selection already
    cleared by the caller)."""
    return {
        "size": 0,
        "track_total_hits": False,
        "query": {"bool": {"filter": audit_filters(query.query)}},
        "aggs": facets.values_aggs(filter_path(query.filter), query.value_search, query.max_values),
    }
