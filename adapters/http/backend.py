"""Our backend protocols over OpenChoreo's adapter contracts: logs and events from a logs adapter, traces from a
tracing adapter, metrics from a metrics adapter (each optional; adapters/http/plugin.py says which are set).

Queries arrive with names already resolved to UIDs (observer/guard.py), which is what the contract expects. The
extensions the contract cannot express are emulated: cursor paging (adapters/http/paging.py) and the exact count
a log alert compares (`count_logs`, below); log context needs nothing more, being built from `query_logs`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import quote

from adapters.http.client import AdapterClient
from adapters.http.errors import AdapterError, AdapterNotFound
from adapters.http.paging import MAX_LIMIT, page_through
from adapters.http_contract import wire
from adapters.protocols import SpanNotFound
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


def _parsed(what: str, parse: Callable[[Mapping[str, Any]], T], answer: Any) -> T:
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
            return _parsed("logs query", wire.parse_logs_response, answer)

        return await page_through(key, query.range, query.sort, query.limit, query.cursor, fetch, _log_time)

    async def count_logs(self, query: LogsQuery) -> int:
        """Exact below the contract's cap of TOTAL_CAP; above it, the lines counted page by page (MAX_LIMIT at a
        time, at most MAX_COUNT_PAGES pages: a lower bound past that)."""
        first = await self.query_logs(LogsQuery(query.scope, query.range, 1, "asc", query.levels, query.phrase))
        if first.total < TOTAL_CAP:
            return first.total
        counted, cursor = 0, ""
        for _ in range(MAX_COUNT_PAGES):
            page = await self.query_logs(
                LogsQuery(query.scope, query.range, MAX_LIMIT, "asc", query.levels, query.phrase, cursor)
            )
            counted += len(page.items)
            cursor = page.next_cursor
            if not cursor:
                return counted
        log.warning("count_logs stopped at %d lines (%d pages): a lower bound", counted, MAX_COUNT_PAGES)
        return counted

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
            return _parsed("events query", wire.parse_events_response, answer)

        return await page_through(key, query.range, query.sort, query.limit, query.cursor, fetch, _event_time)


class HttpTraces:
    """TracesBackend over a tracing adapter (the public observer's own trace paths, UIDs in the scope)."""

    def __init__(self, client: AdapterClient) -> None:
        self.client = client

    async def query_traces(self, query: TracesQuery) -> Page[TraceSummary]:
        answer = await self.client.call(
            "POST",
            "/api/v1alpha1/traces/query",
            body=wire.traces_request(query),
            request_schema="TracesQueryRequest",
            response_schema="TracesListResponse",
        )
        return _parsed("traces query", wire.parse_traces_response, answer)

    async def query_spans(self, query: SpansQuery) -> Page[SpanRecord]:
        answer = await self.client.call(
            "POST",
            f"/api/v1alpha1/traces/{quote(query.trace_id, safe='')}/spans/query",
            body=wire.spans_request(query),
            request_schema="TracesQueryRequest",
            response_schema="TraceSpansListResponse",
        )
        return _parsed("spans query", lambda body: wire.parse_spans_response(query.trace_id, body), answer)

    async def get_span(self, trace_id: str, span_id: str) -> SpanRecord:
        try:
            answer = await self.client.call(
                "GET",
                f"/api/v1alpha1/traces/{quote(trace_id, safe='')}/spans/{quote(span_id, safe='')}",
                response_schema="TraceSpanDetailsResponse",
            )
        except AdapterNotFound:
            raise SpanNotFound(f"span {span_id} of trace {trace_id}") from None
        return _parsed("span details", lambda body: wire.parse_span_entry(trace_id, body), answer)


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
        return _parsed("metrics query", wire.parse_metrics_response, answer)

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
        return _parsed("runtime topology", wire.parse_topology_response, answer)


def _log_time(record: LogRecord) -> int:
    return record.ts_ns


def _event_time(record: EventRecord) -> int:
    return record.ts_ns
