"""Our backend protocols over OpenChoreo's adapter contracts: logs and events from a logs adapter, traces from a
tracing adapter, metrics from a metrics adapter (each optional; adapters/http/plugin.py says which are set).

Queries arrive with names already resolved to UIDs (observer/guard.py), which is what the contract expects. The
extensions the contract cannot express are emulated: cursor paging (adapters/http/paging.py) and the exact count
a log alert compares (`count_logs`, below); log context needs nothing more, being built from `query_logs`.

The contracts have no trace filter on logs and no duration or error filter on traces (our extensions), so they are
applied here to what the adapter answers, within a bound, and a notice says so (adapters/http/errors.py): the
logs of a trace from the first TRACE_SCAN_PAGES pages of the range's lines, the trace filters over the first
MAX_LIMIT traces; `total` is what passed within the bound. The trace's logs page by a cursor of ours; the
filtered trace list is one page, as every trace list is.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, TypeVar
from urllib.parse import quote

from adapters.cursor import decode_cursor, encode_cursor, fingerprint
from adapters.http.client import AdapterClient
from adapters.http.errors import AdapterError, AdapterNotFound, notice
from adapters.http.paging import MAX_LIMIT, page_through
from adapters.http_contract import wire
from adapters.protocols import InvalidCursor, SpanNotFound
from domain import semconv
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

log = logging.getLogger(__name__)

T = TypeVar("T")
#: `count_logs` past the contract's cap walks pages of MAX_LIMIT lines, at most this many; beyond it the count
#: is a lower bound (MAX_COUNT_PAGES * MAX_LIMIT lines), which still decides a "more than" threshold below it.
MAX_COUNT_PAGES = 50
#: The cursors of the trace-filtered logs (`_trace_logs`), told apart from the adapter's and the emulated ones.
_TRACE_CURSOR = "t."
#: The logs of one trace are looked for in at most this many pages of MAX_LIMIT lines of the range.
TRACE_SCAN_PAGES = 10


def parsed_answer(what: str, parse: Callable[[Mapping[str, Any]], T], answer: Any) -> T:
    """An adapter answer the spec accepted but the codec cannot read (a time that is not RFC3339): a broken
    contract, reported as the adapter's."""
    try:
        return parse(answer)
    except (KeyError, ValueError, TypeError) as exc:
        raise AdapterError(200, "", f"{what}: answer not understood ({type(exc).__name__}: {exc})") from None


class HttpLogs:
    """LogsBackend and EventsBackend over a logs adapter (`/api/v1/logs/query`, `/api/v1/events/query`)."""

    def __init__(self, client: AdapterClient) -> None:
        self.client = client

    async def query_logs(self, query: LogsQuery) -> Page[LogRecord]:
        if query.trace_id:
            return await self._trace_logs(query)
        key = ("logs", query.scope, query.levels, query.phrase)

        async def fetch(range_: TimeRange, limit: int, cursor: str) -> Page[LogRecord]:
            ask = LogsQuery(query.scope, range_, limit, query.sort, query.levels, query.phrase, cursor)
            answer = await self.client.call(
                "POST",
                "/api/v1/logs/query",
                body=wire.logs_request(ask),
                request_schema="LogsQueryRequest",
                response_schema="LogsQueryResponse",
            )
            return parsed_answer("logs query", wire.parse_logs_response, answer)

        return await page_through(key, query.range, query.sort, query.limit, query.cursor, fetch, _log_time)

    async def count_logs(self, query: LogsQuery) -> int:
        """Exact below the contract's cap of TOTAL_CAP; above it, the lines counted page by page (MAX_LIMIT at a
        time, at most MAX_COUNT_PAGES pages: a lower bound past that)."""
        first = await self.query_logs(replace(query, limit=1, sort="asc", cursor=""))
        if first.total < TOTAL_CAP:
            return first.total
        counted, cursor = 0, ""
        for _ in range(MAX_COUNT_PAGES):
            page = await self.query_logs(replace(query, limit=MAX_LIMIT, sort="asc", cursor=cursor))
            counted += len(page.items)
            cursor = page.next_cursor
            if not cursor:
                return counted
        log.warning("count_logs stopped at %d lines (%d pages): a lower bound", counted, MAX_COUNT_PAGES)
        return counted

    async def _trace_logs(self, query: LogsQuery) -> Page[LogRecord]:
        """The lines of one trace: the query without the trace filter, walked page by page in the asked order
        (at most TRACE_SCAN_PAGES pages), keeping the trace's lines; a notice when the walk stopped before the
        end of the range, as lines after it were not looked at. Paged by a cursor of ours holding how many of
        the trace's lines earlier pages showed (each page walks again from the start: bounded by the scan)."""
        key = fingerprint("http-trace-logs", query.scope, query.range, query.sort, query.levels, query.phrase)
        key = fingerprint(key, query.trace_id)
        if query.cursor and not query.cursor.startswith(_TRACE_CURSOR):
            raise InvalidCursor("a cursor of another query")
        shown = int(decode_cursor(query.cursor[len(_TRACE_CURSOR) :], key, (int,))[0]) if query.cursor else 0
        started = time.monotonic()
        walk = replace(query, trace_id="", limit=MAX_LIMIT, cursor="")
        found: list[LogRecord] = []
        cursor = ""
        for _ in range(TRACE_SCAN_PAGES):
            page = await self.query_logs(replace(walk, cursor=cursor))
            found += [record for record in page.items if record.trace_id == query.trace_id]
            cursor = page.next_cursor
            if not cursor:
                break
        if cursor:
            notice(
                self.client.base_url,
                f"traceId: the logs adapter cannot filter by trace; the observer looked at the first"
                f" {TRACE_SCAN_PAGES * MAX_LIMIT} lines of the range only (narrow the range to the trace's)",
            )
        items = found[shown : shown + query.limit]
        more = shown + len(items) < len(found)
        following = _TRACE_CURSOR + encode_cursor(key, [shown + len(items)]) if more else ""
        return Page(items, len(found), round((time.monotonic() - started) * 1000), following)

    async def query_events(self, query: EventsQuery) -> Page[EventRecord]:
        key = ("events", query.scope)

        async def fetch(range_: TimeRange, limit: int, cursor: str) -> Page[EventRecord]:
            ask = EventsQuery(query.scope, range_, limit, query.sort, cursor)
            answer = await self.client.call(
                "POST",
                "/api/v1/events/query",
                body=wire.events_request(ask),
                request_schema="EventsQueryRequest",
                response_schema="EventsQueryResponse",
            )
            return parsed_answer("events query", wire.parse_events_response, answer)

        return await page_through(key, query.range, query.sort, query.limit, query.cursor, fetch, _event_time)


class HttpTraces:
    """TracesBackend over a tracing adapter (the public observer's own trace paths, UIDs in the scope)."""

    def __init__(self, client: AdapterClient) -> None:
        self.client = client

    async def query_traces(self, query: TracesQuery) -> Page[TraceSummary]:
        """With the extensions' filters, the adapter is asked for MAX_LIMIT traces (the contract cannot filter
        them), and those that pass are the page (a notice when the adapter had more)."""
        ask = replace(query, limit=MAX_LIMIT, min_duration_ns=0, errors_only=False) if query.filtered else query
        answer = await self.client.call(
            "POST",
            "/api/v1alpha1/traces/query",
            body=wire.traces_request(ask),
            request_schema="TracesQueryRequest",
            response_schema="TracesListResponse",
        )
        page = parsed_answer("traces query", wire.parse_traces_response, answer)
        if not query.filtered:
            return page
        if page.total > len(page.items):
            notice(
                self.client.base_url,
                f"minDurationMs/errorsOnly: the tracing adapter cannot filter traces; the observer filtered the"
                f" first {len(page.items)} of {page.total} (narrow the range to see the rest)",
            )
        passing = [summary for summary in page.items if query.keeps(summary)]
        return Page(passing[: query.limit], len(passing), page.took_ms)

    async def query_spans(self, query: SpansQuery) -> Page[SpanRecord]:
        answer = await self.client.call(
            "POST",
            f"/api/v1alpha1/traces/{quote(query.trace_id, safe='')}/spans/query",
            body=wire.spans_request(query),
            request_schema="TracesQueryRequest",
            response_schema="TraceSpansListResponse",
        )
        return parsed_answer("spans query", lambda body: wire.parse_spans_response(query.trace_id, body), answer)

    async def get_span(self, trace_id: str, span_id: str) -> SpanRecord:
        try:
            answer = await self.client.call(
                "GET",
                f"/api/v1alpha1/traces/{quote(trace_id, safe='')}/spans/{quote(span_id, safe='')}",
                response_schema="TraceSpanDetailsResponse",
            )
        except AdapterNotFound:
            raise SpanNotFound(f"span {span_id} of trace {trace_id}") from None
        return parsed_answer("span details", lambda body: wire.parse_span_entry(trace_id, body), answer)


class HttpMetrics:
    """MetricsBackend over a metrics adapter: series (`/api/v1/metrics/query`) and runtime topology."""

    def __init__(self, client: AdapterClient) -> None:
        self.client = client

    async def query_metrics(self, query: MetricsQuery) -> MetricSeries:
        answer = await self.client.call(
            "POST",
            "/api/v1/metrics/query",
            body=wire.metrics_request(query),
            request_schema="MetricsQueryRequest",
            response_schema="MetricsQueryResponse",
        )
        # Every key of the family, an empty list where the adapter had nothing (or left the key out).
        return semconv.with_every_key(query.family, parsed_answer("metrics query", wire.parse_metrics_response, answer))

    async def query_topology(self, query: TopologyQuery) -> Topology:
        """`/api/v1alpha1/metrics/runtime-topology`; an adapter that has none answers 501 (Azure Monitor's
        `OBS-V1-M-AZURE-MON-501`, GCP's `OBS-V1-M-GCP-501`), which passes on as AdapterNotImplemented."""
        answer = await self.client.call(
            "POST",
            "/api/v1alpha1/metrics/runtime-topology",
            body=wire.topology_request(query),
            request_schema="RuntimeTopologyRequest",
            response_schema="RuntimeTopologyResponse",
        )
        return parsed_answer("runtime topology", wire.parse_topology_response, answer)


def _log_time(record: LogRecord) -> int:
    return record.ts_ns


def _event_time(record: EventRecord) -> int:
    return record.ts_ns
