"""The audit trail in Datadog: records are logs of their own source (domain.audit.AUDIT_SOURCE), written by
the sink (records.audit_entry), read back through Logs Search and counted through Logs Aggregate.

Datadog's intake has no idempotency key, so a record delivered twice (a retried batch) is kept twice. The trail
still shows it once: every count is a `cardinality` of the record's `event_id` (the total, each filter value,
each timeline bucket), and a page drops a repeated event id. Datadog documents cardinality as approximate on
large sets (HyperLogLog); on an audit trail's volumes per filter it is exact in practice, and `total` is not
capped (upstream wants it exact). A duplicate that falls on both sides of a page boundary can still show on both
pages.

Order: Logs Search sorts by Datadog's millisecond timestamp; within a page the records are put in the
contract's order (time in nanoseconds, then event id), which only differs across a page boundary for records
within one millisecond.

The timeline (when asked for) is one more aggregate in the same round trip: distinct event ids per point of
Datadog's `timeseries` compute per `result`, summed into buckets from the window's start
(domain.audit.timeline_start). Datadog's points start at multiples of their interval (from the epoch), so the
points are asked at the largest width dividing both the interval and the window start's distance from such a
multiple (`grid_ms`): every point then lies inside one bucket. A window starting at an odd millisecond would
need more points than TIMELINE_MAX_POINTS: its timeline is left out (upstream lets an adapter omit one it cannot
compute), with a warning; empty buckets are left out.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from adapters.cursor import decode_cursor, encode_cursor, fingerprint
from adapters.datadog import fields, records
from adapters.datadog import query as dq
from adapters.datadog.platform import ranked
from adapters.protocols import pass_on_warning
from domain.audit import (
    AUDIT_FILTERS,
    AuditPage,
    AuditQuery,
    AuditRecord,
    NotAnAuditRecord,
    TimelineBucket,
    timeline_start,
)
from domain.platform import FilterValues, FilterValuesQuery
from domain.timeutil import parse_rfc3339

if TYPE_CHECKING:
    from adapters.datadog.backend import DatadogBackend

log = logging.getLogger(__name__)

#: What makes two stored copies one record.
EVENT_ID = dq.attribute(fields.AUDIT_ATTRIBUTES["event_id"])
RESULT = dq.attribute(fields.AUDIT_ATTRIBUTES["result"])
#: The most points a timeline asks of Datadog per result (well inside what one aggregate answers).
TIMELINE_MAX_POINTS = 5_000
_MS = 1_000_000


def grid_ms(origin_ns: int, interval_ns: int) -> int:
    """The point width (ms) whose epoch-aligned points each fall inside one bucket of `interval_ns` from
    `origin_ns`: it divides the interval and the origin's offset from the interval's epoch multiples."""
    interval_ms = max(1, interval_ns // _MS)
    return math.gcd(interval_ms, origin_ns // _MS % interval_ms) or interval_ms


async def query_audit(backend: DatadogBackend, query: AuditQuery) -> AuditPage:
    from adapters.datadog.backend import LOGS_SEARCH, PAGE_MAX, _check_complete

    started = time.monotonic()
    key = fingerprint("datadog-audit", query.range, query.sort, query.filters, query.phrase)
    after = decode_cursor(query.cursor, key, shape=(str,))[0] if query.cursor else ""
    search = dq.audit_query(query)
    indexes = backend.indexes
    body = dq.logs_search_body(search, query.range, query.sort, min(query.limit, PAGE_MAX), indexes, after)
    work: list[Any] = [
        backend.client.post(LOGS_SEARCH, body, "searching audit records"),
        backend.aggregate_buckets(dq.distinct_body(search, query.range, indexes, EVENT_ID), "counting audit records"),
    ]
    grid = grid_ms(query.range.start_ns, query.timeline_interval_ns) if query.timeline_interval_ns > 0 else 0
    span_ms = (query.range.end_ns - query.range.start_ns) // _MS + 1
    if grid and span_ms // grid > TIMELINE_MAX_POINTS:
        pass_on_warning("the audit timeline is left out: start the window on a whole second to have one")
        grid = 0
    if grid:
        timeline = dq.timeline_body(search, query.range, indexes, grid * _MS, RESULT, EVENT_ID)
        work.append(backend.aggregate_buckets(timeline, "counting the audit timeline"))
    answers = await asyncio.gather(*work)
    response, counted = answers[0], answers[1]
    _check_complete(response, "searching audit records")
    found = response.get("data") or []
    page = _records(found)
    page.sort(key=lambda record: (record.time_ns, record.event_id), reverse=query.sort == "desc")
    following = ((response.get("meta") or {}).get("page") or {}).get("after") or ""
    next_cursor = encode_cursor(key, [following]) if following and len(found) >= query.limit else ""
    total = _count(counted[0]) if counted else 0
    buckets = _timeline(answers[2], query) if len(answers) > 2 else None
    took = round((time.monotonic() - started) * 1000)
    return AuditPage(page, total, took, next_cursor, buckets)


async def audit_filter_values(backend: DatadogBackend, query: FilterValuesQuery[AuditQuery]) -> FilterValues:
    """Distinct records per value of the filter's attribute (one Logs Aggregate group-by)."""
    started = time.monotonic()
    if query.filter not in AUDIT_FILTERS:
        raise ValueError(f"unknown audit filter {query.filter!r}")
    facet = dq.attribute(fields.AUDIT_ATTRIBUTES[query.filter])
    body = dq.facet_body(dq.audit_query(query.query), query.query.range, backend.indexes, facet, EVENT_ID)
    buckets = await backend.aggregate_buckets(body, "listing audit filter values")
    counted: Counter[str] = Counter()
    for bucket in buckets:
        value = (bucket.get("by") or {}).get(facet)
        if isinstance(value, str | int | float) and str(value):
            counted[str(value)] += _count(bucket)
    if len(buckets) >= dq.FACET_LIMIT:
        pass_on_warning(f"{query.filter}: Datadog listed its first {dq.FACET_LIMIT} values only")
    return ranked(query.filter, counted, query.value_search, query.max_values, started)


def _records(found: list[Any]) -> list[AuditRecord]:
    """The page's records, each event id once; a line under the audit source that is not a record is skipped
    (and logged: only a misconfigured shipper writes one)."""
    page: list[AuditRecord] = []
    seen: set[str] = set()
    for item in found:
        try:
            record = records.audit_from_event(item)
        except NotAnAuditRecord as error:
            log.warning("skipping a log under the audit source that is not an audit record: %s", error)
            continue
        if record.event_id not in seen:
            seen.add(record.event_id)
            page.append(record)
    return page


def _count(bucket: dict[str, Any]) -> int:
    value = (bucket.get("computes") or {}).get("c0", 0)
    return int(value) if isinstance(value, int | float) else 0


def _timeline(buckets: list[dict[str, Any]], query: AuditQuery) -> list[TimelineBucket]:
    """Datadog's points per result, summed into the query's buckets (from the window's start), the non-empty
    ones in ascending order."""
    by_start: dict[int, TimelineBucket] = {}
    for bucket in buckets:
        result = str((bucket.get("by") or {}).get(RESULT) or "")
        points = (bucket.get("computes") or {}).get("c0") or []
        for point in points if isinstance(points, list) else []:
            value = point.get("value") if isinstance(point, dict) else None
            if not isinstance(value, int | float) or value <= 0 or not isinstance(point.get("time"), str):
                continue
            at = max(_point_time(point["time"]), query.range.start_ns)  # a first point from the start's millisecond
            start = timeline_start(at, query.timeline_interval_ns, query.range.start_ns)
            entry = by_start.setdefault(start, TimelineBucket(start, 0))
            entry.total += int(value)
            if result:
                entry.counts[result] = entry.counts.get(result, 0) + int(value)
    return [by_start[start] for start in sorted(by_start)]


def _point_time(text: str) -> int:
    """A point's time: RFC3339 (`Z` or an offset), or epoch milliseconds."""
    if text.isdigit():
        return int(text) * 1_000_000
    return parse_rfc3339(text)
