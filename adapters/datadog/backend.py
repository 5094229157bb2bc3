"""The Datadog backend's queries: logs and workflow logs (Logs Search v2), Kubernetes events (logs with
`source:kubernetes`, see fields.EVENTS_SOURCE for why not the Events API), platform logs and the audit trail
(platform.py, trail.py: Logs Search and Logs Aggregate too), traces and spans (Spans search), and the
`resource` and `http` metric families (v2 timeseries, metrics.py).

Everything is pushed down: the query string, the time range, the order, the page size and the cursor travel in
the request, one request per page. Our cursor wraps Datadog's `meta.page.after` with a fingerprint of the
query (adapters/cursor.py), so a cursor replayed against another query is refused.

`total` is what the contract says, the number of matches capped at TOTAL_CAP: Logs Search and Spans search
return no total, so each page's search goes out together with a count of the same filter (Logs Aggregate,
Spans Aggregate: a `count` of type `total`, computed by Datadog), and the two answers are awaited together, so a
page costs one round trip still, and two requests of the rate limit. `count_logs`, which a log rule needs,
is that count alone, uncapped.

A Logs Search answer with `meta.status: timeout` holds partial results; rather than pass them off as the whole
answer, the query fails with `PartialResults`, a BackendUnavailable (503 with Retry-After), naming Datadog's
warnings.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from adapters.cursor import decode_cursor, encode_cursor, fingerprint
from adapters.datadog import fields, metrics, platform, records, spans, trail
from adapters.datadog import query as dq
from adapters.datadog.client import DatadogClient
from adapters.protocols import BackendUnavailable, SpanNotFound
from domain.audit import AuditPage, AuditQuery
from domain.model import (
    TOTAL_CAP,
    EventRecord,
    EventsQuery,
    LogRecord,
    LogsQuery,
    MetricSeries,
    MetricsQuery,
    Page,
    SpanRecord,
    SpansQuery,
    TimeRange,
    Topology,
    TopologyQuery,
    TracesQuery,
    TraceSummary,
)
from domain.platform import FilterValues, FilterValuesQuery, PlatformLogsQuery
from domain.timeutil import now_ns

log = logging.getLogger(__name__)

T = TypeVar("T")

LOGS_SEARCH = "/api/v2/logs/events/search"
LOGS_AGGREGATE = "/api/v2/logs/analytics/aggregate"
SPANS_SEARCH = "/api/v2/spans/events/search"
SPANS_AGGREGATE = "/api/v2/spans/analytics/aggregate"
#: The most one search page holds (Logs and Spans search alike).
PAGE_MAX = 1000
#: How far around a trace list's window a trace's other spans are looked for (a trace may start before the
#: window or end after it); and how far back a span is looked for by id (Datadog keeps indexed spans 15 days by
#: default; retention filters can keep them longer, and a wider range costs a search nothing).
TRACE_MARGIN_NS = 3600 * 10**9
SPAN_LOOKBACK_NS = 90 * 86400 * 10**9
#: With a trace filter, how many traces are summarised to find the page: their ids make one query string.
FILTERED_CANDIDATES = 200


class PartialResults(BackendUnavailable):
    """Datadog answered `status: timeout`: it searched part of the range only."""


class DatadogBackend:
    def __init__(self, client: DatadogClient, indexes: tuple[str, ...] = ("*",)):
        self.client = client
        self.indexes = indexes

    async def close(self) -> None:
        await self.client.close()

    # ------------------------------------------------------------------------------------------- logs, events

    async def query_logs(self, query: LogsQuery) -> Page[LogRecord]:
        trace = (query.trace_id,) if query.trace_id else ()  # no part without it: earlier cursors stay valid
        key = fingerprint("datadog-logs", query.scope, query.range, query.sort, query.levels, query.phrase, *trace)
        search = dq.logs_query(query.scope, query.levels, query.phrase, query.trace_id)
        return await self.logs_page(
            search, query.range, query.sort, query.limit, query.cursor, key, records.log_from_event
        )

    async def count_logs(self, query: LogsQuery) -> int:
        """Exact, from Logs Aggregate (a count computed by Datadog, not by fetching the logs)."""
        return await self._count(dq.logs_query(query.scope, query.levels, query.phrase, query.trace_id), query.range)

    async def query_events(self, query: EventsQuery) -> Page[EventRecord]:
        key = fingerprint("datadog-events", query.scope, query.range, query.sort)
        search = dq.events_query(query.scope)
        return await self.logs_page(
            search, query.range, query.sort, query.limit, query.cursor, key, records.k8s_event_from_event
        )

    async def logs_page(
        self,
        search: str,
        window: TimeRange,
        sort: Any,
        limit: int,
        cursor: str,
        key: str,
        convert: Callable[[dict[str, Any]], T],
    ) -> Page[T]:
        after = decode_cursor(cursor, key, shape=(str,))[0] if cursor else ""
        body = dq.logs_search_body(search, window, sort, min(limit, PAGE_MAX), self.indexes, after)
        started = time.monotonic()
        response, total = await asyncio.gather(
            self.client.post(LOGS_SEARCH, body, "searching logs"), self._count(search, window)
        )
        took = round((time.monotonic() - started) * 1000)
        _check_complete(response, "searching logs")
        items = [convert(item) for item in response.get("data") or []]
        following = ((response.get("meta") or {}).get("page") or {}).get("after") or ""
        next_cursor = encode_cursor(key, [following]) if following and len(items) >= limit else ""
        return Page(items, min(total, TOTAL_CAP), took, next_cursor)

    async def aggregate_buckets(self, body: dict[str, Any], what: str) -> list[dict[str, Any]]:
        """The buckets of one Logs Aggregate request (`data.buckets`), after the partial-results check."""
        response = await self.client.post(LOGS_AGGREGATE, body, what)
        _check_complete(response, what)
        buckets = (response.get("data") or {}).get("buckets") or []
        return [bucket for bucket in buckets if isinstance(bucket, dict)]

    async def _count(self, search: str, window: TimeRange) -> int:
        response = await self.client.post(
            LOGS_AGGREGATE, dq.logs_count_body(search, window, self.indexes), "counting logs"
        )
        _check_complete(response, "counting logs")
        buckets = (response.get("data") or {}).get("buckets") or []
        return _count_of(buckets[0].get("computes") if buckets else None)

    async def _count_spans(self, search: str, window: TimeRange) -> int:
        """Spans Aggregate: how many spans `search` matches in `window` (one `total` bucket, no groups)."""
        response = await self.client.post(SPANS_AGGREGATE, _spans_count_body(search, window), "counting spans")
        _check_complete(response, "counting spans")
        buckets = response.get("data") or []
        return _count_of((buckets[0].get("attributes") or {}).get("compute") if buckets else None)

    # ------------------------------------------------------------------------------------------- platform, audit

    async def query_platform_logs(self, query: PlatformLogsQuery) -> Page[LogRecord]:
        return await platform.query_platform_logs(self, query)

    async def platform_filter_values(self, query: FilterValuesQuery[PlatformLogsQuery]) -> FilterValues:
        return await platform.platform_filter_values(self, query)

    async def query_audit(self, query: AuditQuery) -> AuditPage:
        return await trail.query_audit(self, query)

    async def audit_filter_values(self, query: FilterValuesQuery[AuditQuery]) -> FilterValues:
        return await trail.audit_filter_values(self, query)

    # ------------------------------------------------------------------------------------------- metrics

    async def query_metrics(self, query: MetricsQuery) -> MetricSeries:
        """One v2 timeseries request per family (metrics.py)."""
        return await metrics.query_metrics(self.client, query)

    async def query_topology(self, query: TopologyQuery) -> Topology:
        """Not from Datadog (metrics.TOPOLOGY_UNSUPPORTED says why): the plane does not choose this backend for
        topology, since its Roles leave it out; a direct call is an error."""
        raise NotImplementedError(metrics.TOPOLOGY_UNSUPPORTED)

    # ------------------------------------------------------------------------------------------- traces

    async def query_traces(self, query: TracesQuery) -> Page[TraceSummary]:
        """Two searches: the spans of the scope in the window (one page, the most recent or oldest 1,000), whose
        traces are ordered by when they first entered the scope; then every span of the first `limit` traces.

        The contract matches a trace by spans wholly inside the window; Spans search can only bound a span's
        start (its timestamp, in whole milliseconds), and a span's end is start + duration, two fields no query
        compares. So the page the search returns is narrowed here to the spans that start and end inside the
        window, which only drops spans at its edges: the traces are ranked from this page in Python anyway.

        The extensions' filters (duration, errors) are on whole traces: with one, up to FILTERED_CANDIDATES
        traces are summarised and the first `limit` that pass are the page, `total` counting those that passed
        (from this one page of spans, as the unfiltered total is)."""
        started = time.monotonic()
        found = await self._spans(dq.spans_scope_query(query.scope), query.range, query.sort, PAGE_MAX)
        window = query.range
        matched = [s for s in found if window.start_ns <= s.start_ns and s.end_ns <= window.end_ns]
        first_seen: dict[str, int] = {}
        for span in matched:
            first_seen[span.trace_id] = min(span.start_ns, first_seen.get(span.trace_id, span.start_ns))
        newest_first = query.sort == "desc"
        ordered = sorted(first_seen, key=lambda trace: (first_seen[trace], trace), reverse=newest_first)
        chosen = ordered[: FILTERED_CANDIDATES if query.filtered else query.limit]
        if not chosen:
            return Page([], 0, _ms_since(started))
        wide = TimeRange(query.range.start_ns - TRACE_MARGIN_NS, query.range.end_ns + TRACE_MARGIN_NS)
        members = await self._spans(dq.trace_ids_query(chosen), wide, "asc", PAGE_MAX)
        by_trace: dict[str, list[SpanRecord]] = {}
        for span in members:
            by_trace.setdefault(span.trace_id, []).append(span)
        items = [spans.summarise(trace, by_trace[trace]) for trace in chosen if trace in by_trace]
        if query.filtered:
            passing = [summary for summary in items if query.keeps(summary)]
            return Page(passing[: query.limit], len(passing), _ms_since(started))
        return Page(items, min(len(first_seen), TOTAL_CAP), _ms_since(started))

    async def query_spans(self, query: SpansQuery) -> Page[SpanRecord]:
        started = time.monotonic()
        search = dq.conjunction([dq.term(fields.SPAN_TRACE_ID, query.trace_id), dq.spans_scope_query(query.scope)])
        found, total = await asyncio.gather(
            self._spans(search, query.range, query.sort, query.limit), self._count_spans(search, query.range)
        )
        return Page(found, min(total, TOTAL_CAP), _ms_since(started))

    async def get_span(self, trace_id: str, span_id: str) -> SpanRecord:
        now = now_ns()
        found = await self._spans(
            dq.span_query(trace_id, span_id), TimeRange(now - SPAN_LOOKBACK_NS, now + TRACE_MARGIN_NS), "desc", 1
        )
        if not found:
            raise SpanNotFound(f"span {span_id} not found in trace {trace_id}")
        return found[0]

    async def _spans(self, search: str, window: TimeRange, sort: Any, limit: int) -> list[SpanRecord]:
        response = await self.client.post(
            SPANS_SEARCH, dq.spans_search_body(search, window, sort, min(limit, PAGE_MAX)), "searching spans"
        )
        _check_complete(response, "searching spans")
        return [spans.span_from_result(item) for item in response.get("data") or []]


def _check_complete(response: dict[str, Any], what: str) -> None:
    meta = response.get("meta") or {}
    if meta.get("status") == "timeout":
        warnings = "; ".join(str(w.get("detail") or w.get("title") or w) for w in meta.get("warnings") or [])[:300]
        log.warning("%s: Datadog returned partial results (timeout): %s", what, warnings)
        raise PartialResults(f"{what}: Datadog timed out and returned partial results ({warnings or 'no detail'})")


def _spans_count_body(search: str, window: TimeRange) -> dict[str, Any]:
    """A Spans Aggregate body (`POST /api/v2/spans/analytics/aggregate`, JSON:API wrapped like Spans search): one
    count of type `total`, no groups; the filter is the one the matching search sends."""
    start, end = dq.millis(window)
    return {
        "data": {
            "type": "aggregate_request",
            "attributes": {
                "compute": [{"aggregation": "count", "type": "total"}],
                "filter": {"query": search, "from": start, "to": end},
            },
        }
    }


def _count_of(computes: Any) -> int:
    """The `c0` of an aggregate bucket's computes; 0 when Datadog answered no bucket (nothing matched)."""
    value = computes.get("c0", 0) if isinstance(computes, dict) else 0
    return int(value) if isinstance(value, int | float) else 0


def _ms_since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
