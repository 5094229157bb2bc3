"""The OpenSearch backend: logs, by component and by Kubernetes placement, Kubernetes events, traces and the audit
trail (LogsBackend, PlatformLogsBackend, EventsBackend, TracesBackend, AuditBackend) and the sink collectors deliver
those signals to (TelemetrySink, metrics excepted: they belong to a metrics backend).

Queries search only the daily indices the time range touches, with `ignore_unavailable`, so a day without
data costs nothing. Logs and events come in (timestamp, `_id`) order, paged exactly by `timeline.py`; the
cursor (timestamp, `_id` of the last line shown) is opaque and bound to the query.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from opensearchpy import AsyncOpenSearch, TransportError

from adapters.cursor import decode_cursor, encode_cursor, fingerprint
from adapters.opensearch import audit as audit_dsl
from adapters.opensearch import documents, facets, fields, platform, queries, timeline
from adapters.opensearch.bulk import BulkWriter, encode_action
from adapters.opensearch.client import OpenSearchConfig, connect, unavailable_on_failure
from adapters.opensearch.layout import IndexLayout, delete_expired, install
from adapters.protocols import BackendUnavailable, SpanNotFound, WriteResult
from domain.audit import AuditPage, AuditQuery, AuditRecord
from domain.model import (
    TOTAL_CAP,
    EventRecord,
    EventsQuery,
    LogRecord,
    LogsQuery,
    MetricPoint,
    Page,
    SpanRecord,
    SpansQuery,
    TracesQuery,
    TraceSummary,
)
from domain.platform import FilterValues, FilterValuesQuery, PlatformLogsQuery
from domain.timeutil import parse_rfc3339

log = logging.getLogger(__name__)

#: Drop reasons in write results (the `reason` label of the collector's dropped-records counter).
DROPPED_INVALID = "destination_invalid"  # the whole bulk request refused with 400
DROPPED_ITEMS = "destination_item_refused"  # single documents refused for good (mapping conflicts, ...)
#: With a trace filter (duration, errors), how many traces of the scope are summarised to find the page.
FILTERED_CANDIDATES = 1000

T = TypeVar("T")

#: Indices that do not exist yet (a quiet day) are skipped, not an error.
_INDICES = {"ignore_unavailable": "true", "allow_no_indices": "true"}
#: Traces and spans: only what is read comes back.
_LENIENT = {**_INDICES, "filter_path": "took,hits.total,hits.hits._source,hits.hits.sort,aggregations"}
#: Pages of logs and events are read whole, with neither `_source` filtering nor `filter_path`: each makes
#: OpenSearch parse and rewrite every hit it returns, which costs it more than shipping the bytes costs us
#: (bench/opensearch_query.py times the variants; a Fluent Bit document's annotations come along too).
_PAGE = _INDICES


class OpenSearchBackend:
    def __init__(self, config: OpenSearchConfig, writer_options: dict[str, Any] | None = None):
        self.config = config
        self.layout: IndexLayout = config.layout
        self.client: AsyncOpenSearch = connect(config)
        self.writer = BulkWriter(self.client, **(writer_options or {}))
        self.ism = False

    async def install(self, retention_days: float) -> None:
        """Index templates and retention policies; safe to run at every start."""
        with unavailable_on_failure("installing index templates"):
            self.ism = await install(self.client, self.layout, retention_days)

    async def prune(self, older_than_ns: int) -> int:
        """Retention where ISM is missing: whole daily indices are deleted once they are past the cut-off."""
        if self.ism:
            return 0
        with unavailable_on_failure("retention"):
            return len(await delete_expired(self.client, self.layout, older_than_ns))

    async def close(self) -> None:
        await self.writer.close()
        await self.client.close()

    async def _search(self, what: str, index: str, body: dict[str, Any]) -> dict[str, Any]:
        with unavailable_on_failure(what):
            result: dict[str, Any] = await self.client.search(index=index, body=body, params=_LENIENT)
            return result

    # ------------------------------------------------------------------------------------------- logs, events

    async def query_logs(self, query: LogsQuery) -> Page[LogRecord]:
        key = fingerprint("logs", query.scope, query.range, query.sort, query.levels, query.phrase, *_trace(query))
        index = self.layout.covering(self.layout.logs, query.range.start_ns, query.range.end_ns)
        logs = log_timeline(query, _after(query.cursor, key))
        page = await timeline.read_page(self._searcher("searching logs", index), logs)
        return _page(page, key, documents.log_from_document)

    async def count_logs(self, query: LogsQuery) -> int:
        """Exact (the `_count` API counts every match, unlike a search's capped total), over the same clauses."""
        body = queries.logs_count_body(query.scope, query.range, query.levels, query.phrase, query.trace_id)
        index = self.layout.covering(self.layout.logs, query.range.start_ns, query.range.end_ns)
        with unavailable_on_failure("counting logs"):
            response = await self.client.count(index=index, body=body, params=_INDICES)
        return int(response["count"])

    async def query_events(self, query: EventsQuery) -> Page[EventRecord]:
        key = fingerprint("events", query.scope, query.range, query.sort)
        filters, must_not = queries.event_filters(query.scope, query.range)
        events = timeline.Timeline(filters, must_not, query.sort, query.limit, after=_after(query.cursor, key))
        index = self.layout.covering(self.layout.events, query.range.start_ns, query.range.end_ns)
        page = await timeline.read_page(self._searcher("searching events", index), events)
        return _page(page, key, documents.event_from_document)

    # ------------------------------------------------------------------------------------------- platform logs

    async def query_platform_logs(self, query: PlatformLogsQuery) -> Page[LogRecord]:
        """Every line in the logs indices by placement, paged as component logs are (timeline.py)."""
        key = _platform_key(query)
        index = self.layout.covering(self.layout.logs, query.range.start_ns, query.range.end_ns)
        lines = platform.platform_timeline(query, _after(query.cursor, key))
        page = await timeline.read_page(self._searcher("searching platform logs", index), lines)
        return _page(page, key, documents.log_from_document)

    async def platform_filter_values(self, query: FilterValuesQuery[PlatformLogsQuery]) -> FilterValues:
        window = query.query.range
        index = self.layout.covering(self.layout.logs, window.start_ns, window.end_ns)
        response = await self._search("counting platform log values", index, platform.filter_values_body(query))
        values, total = facets.read_values(response.get("aggregations"), query.max_values)
        return FilterValues(query.filter, values, total, int(response.get("took", 0)))

    # ------------------------------------------------------------------------------------------- audit trail

    async def query_audit(self, query: AuditQuery) -> AuditPage:
        """One page in (event_time, event_id) order, `search_after` the pair; the exact total and the timeline
        (buckets from the window's start) in the same search."""
        key = fingerprint("audit", query.range, query.filters, query.phrase, query.sort)
        index = self.layout.covering(self.layout.audit, query.range.start_ns, query.range.end_ns)
        body = audit_dsl.search_body(query, _after(query.cursor, key))
        response = await self._search("searching the audit trail", index, body)
        records, total, last = audit_dsl.read_records(response, query.limit)
        return AuditPage(
            records=records,
            total=total,
            took_ms=int(response.get("took", 0)),
            next_cursor=encode_cursor(key, list(last)) if last else "",
            timeline=audit_dsl.read_timeline(response, query) if query.timeline_interval_ns > 0 else None,
        )

    async def audit_filter_values(self, query: FilterValuesQuery[AuditQuery]) -> FilterValues:
        window = query.query.range
        index = self.layout.covering(self.layout.audit, window.start_ns, window.end_ns)
        response = await self._search("counting audit values", index, audit_dsl.filter_values_body(query))
        values, total = facets.read_values(response.get("aggregations"), query.max_values)
        return FilterValues(query.filter, values, total, int(response.get("took", 0)))

    def _searcher(self, what: str, index: str) -> timeline.Search:
        """Runs a timeline's searches on `index`: one `_search`, or an `_msearch` when there are several."""

        async def search(bodies: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
            with unavailable_on_failure(what):
                if len(bodies) == 1:
                    return [await self.client.search(index=index, body=bodies[0], params=_PAGE)]
                lines = [line for body in bodies for line in ({}, body)]
                answer = await self.client.msearch(index=index, body=lines, params=_PAGE)
                responses: list[dict[str, Any]] = answer["responses"]
                for response in responses:
                    if "error" in response:  # one failed search fails the page, as a failed `_search` would
                        error = response["error"]
                        raise TransportError(response.get("status", 500), error.get("type", "error"), error)
                return responses

        return search

    # ------------------------------------------------------------------------------------------- traces

    async def query_traces(self, query: TracesQuery) -> Page[TraceSummary]:
        """The traces of the scope (phase one, an aggregation over the matching spans), each summarised over all
        its spans (phase two). The extensions' filters are on whole traces, which no aggregation over the
        matching spans can see: with a filter, phase one takes up to FILTERED_CANDIDATES traces in order, all
        are summarised, and the first `limit` that pass are the page; `total` counts those that passed, exact
        while the scope has at most FILTERED_CANDIDATES traces in the window, a lower bound beyond."""
        index = self.layout.covering(self.layout.traces, query.range.start_ns, query.range.end_ns)
        size = FILTERED_CANDIDATES if query.filtered else query.limit
        matched = await self._search(
            "searching traces", index, queries.matched_traces_body(query.scope, query.range, query.sort, size)
        )
        aggs = matched["aggregations"]
        trace_ids = [bucket["key"] for bucket in aggs["traces"]["buckets"]]
        total = min(int(aggs["total"]["value"]), TOTAL_CAP)
        took = matched["took"]
        if not trace_ids:
            return Page([], 0 if query.filtered else total, took)
        # The whole of each trace, wherever its spans are: a trace may cross midnight or the window's edges.
        summaries = await self._search(
            "summarising traces", self.layout.pattern(self.layout.traces), queries.trace_summaries_body(trace_ids)
        )
        by_id = {bucket["key"]: _summary(bucket) for bucket in summaries["aggregations"]["traces"]["buckets"]}
        found = [by_id[trace_id] for trace_id in trace_ids if trace_id in by_id]
        took += summaries["took"]
        if query.filtered:
            passing = [summary for summary in found if query.keeps(summary)]
            return Page(passing[: query.limit], len(passing), took)
        return Page(found, total, took)

    async def query_spans(self, query: SpansQuery) -> Page[SpanRecord]:
        index = self.layout.covering(self.layout.traces, query.range.start_ns, query.range.end_ns)
        body = queries.spans_body(query.trace_id, query.scope, query.range, query.sort, query.limit)
        response = await self._search("searching spans", index, body)
        hits = response["hits"]
        spans = [documents.span_from_document(hit["_source"]) for hit in hits.get("hits", [])]
        return Page(spans, min(hits["total"]["value"], TOTAL_CAP), response["took"])

    async def get_span(self, trace_id: str, span_id: str) -> SpanRecord:
        response = await self._search(
            "reading a span", self.layout.pattern(self.layout.traces), queries.span_body(trace_id, span_id)
        )
        hits = response["hits"].get("hits", [])  # filter_path drops an empty list
        if not hits:
            raise SpanNotFound(f"span {span_id} not found in trace {trace_id}")
        return documents.span_from_document(hits[0]["_source"])

    # ------------------------------------------------------------------------------------------- ingest

    async def write(
        self,
        *,
        batch_id: str,
        logs: Sequence[LogRecord] = (),
        events: Sequence[EventRecord] = (),
        spans: Sequence[SpanRecord] = (),
        metrics: Sequence[MetricPoint] = (),
        audit: Sequence[AuditRecord] = (),
    ) -> WriteResult:
        """Delivered once every document is acknowledged or refused one by one (those are counted in the result,
        never retried). Ids are derived from the records (an audit record's is its event id), so a redelivered
        batch overwrites itself: `batch_id` is not needed for idempotence here. Metrics are not kept in OpenSearch; route them to a metrics backend.

        Retry when OpenSearch stayed unreachable or busy past the writer's deadline, or refused our credentials
        (401/403: an operator can fix that, and the data must wait for it). Dropped when it refused the whole
        bulk request with a 400: the same body would be refused forever and hold up everything behind it."""
        layout = self.layout
        encoded = documents.log_actions(layout, logs)  # the bulk of the volume: serialised without dicts
        encoded += [
            encode_action(layout.daily(layout.events, r.ts_ns), documents.event_id(r), documents.event_document(r))
            for r in events
        ]
        encoded += [
            encode_action(layout.daily(layout.traces, r.start_ns), documents.span_id(r), documents.span_document(r))
            for r in spans
        ]
        encoded += [
            encode_action(layout.daily(layout.audit, r.time_ns), documents.audit_id(r), documents.audit_source(r))
            for r in audit
        ]
        if not encoded:
            return WriteResult.delivered()
        try:
            with unavailable_on_failure("indexing"):
                result = await self.writer.index_encoded(encoded)
        except BackendUnavailable as exc:
            return WriteResult.retry(reason=str(exc))
        except TransportError as exc:
            if exc.status_code != 400:
                raise  # 404, 413, ...: a misconfiguration or a bug of ours, retried until someone fixes it
            log.error(
                "OpenSearch refused batch %s (%d documents) as a whole, dropping it: %s",
                batch_id,
                len(encoded),
                str(exc.error)[:200],
            )
            return WriteResult.dropped(DROPPED_INVALID, len(encoded))
        if result.rejected:
            log.warning(
                "OpenSearch refused %d documents of batch %s for good: %s", result.rejected, batch_id, result.reasons
            )
        return WriteResult.delivered(result.rejected, DROPPED_ITEMS)


def log_timeline(query: LogsQuery, after: tuple[int, str] | None = None) -> timeline.Timeline:
    """A logs query's clauses, order and page size: what the log search sends (the bench sends it directly)."""
    filters, must_not = queries.log_filters(
        query.scope, queries.time_range(fields.TIMESTAMP, query.range), query.levels, query.phrase, query.trace_id
    )
    return timeline.Timeline(filters, must_not, query.sort, query.limit, after=after)


def _platform_key(query: PlatformLogsQuery) -> str:
    """What a platform-logs cursor is bound to: everything that selects or orders the lines."""
    return fingerprint(
        "platform-logs",
        query.range,
        query.clusters,
        query.namespaces,
        query.pods,
        query.containers,
        query.labels,
        query.phrase,
        query.levels,
        query.sort,
    )


def _trace(query: LogsQuery) -> tuple[str, ...]:
    """The trace filter's part of a cursor's fingerprint: nothing without one, so earlier cursors stay valid."""
    return (query.trace_id,) if query.trace_id else ()


def _after(cursor: str, key: str) -> tuple[int, str] | None:
    """Where a cursor we issued left off: (timestamp, `_id`) of the last hit it showed."""
    if not cursor:
        return None
    ts_ns, doc_id = decode_cursor(cursor, key, shape=(int, str))
    return ts_ns, doc_id


def _page(page: timeline.TimelinePage, key: str, convert: Callable[[dict[str, Any], int], T]) -> Page[T]:
    items = [convert(hit["_source"], hit["sort"][0]) for hit in page.hits]
    next_cursor = encode_cursor(key, list(timeline.position(page.hits[-1]))) if page.more else ""
    return Page(items, min(page.total, TOTAL_CAP), page.took_ms, next_cursor)


def _summary(bucket: dict[str, Any]) -> TraceSummary:
    earliest = bucket["earliest"]["hits"]["hits"][0]["_source"]
    roots = bucket["root"]["first"]["hits"]["hits"]
    root = roots[0]["_source"] if roots else earliest  # the root has not arrived (yet): the earliest span
    return TraceSummary(
        trace_id=bucket["key"],
        name=root.get(fields.SPAN_NAME, ""),
        span_count=bucket["doc_count"],
        root_span_id=root.get(fields.SPAN_ID, ""),
        root_span_name=root.get(fields.SPAN_NAME, ""),
        root_span_kind=root.get(fields.SPAN_KIND, ""),
        start_ns=parse_rfc3339(earliest[fields.START_TIME]),
        end_ns=parse_rfc3339(bucket["latest"]["hits"]["hits"][0]["_source"][fields.END_TIME]),
        has_errors=bucket["errors"]["doc_count"] > 0,
    )
