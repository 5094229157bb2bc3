"""The embedded backend: every protocol of `adapters.protocols` over one SQLite file."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

from adapters.embedded import audit as audit_log
from adapters.embedded import logs, metrics, platform, topology, traces
from adapters.embedded.registry import EmbeddedRegistry
from adapters.embedded.store import Store
from adapters.protocols import WriteResult
from domain.audit import AuditPage, AuditQuery, AuditRecord
from domain.log_batch import LogBatch
from domain.model import (
    EventRecord,
    EventsQuery,
    Identity,
    LogRecord,
    LogsQuery,
    MetricPoint,
    MetricSeries,
    MetricsQuery,
    Page,
    SpanRecord,
    SpansQuery,
    Topology,
    TopologyQuery,
    TracesQuery,
    TraceSummary,
)
from domain.platform import FilterValues, FilterValuesQuery, PlatformLogsQuery
from domain.timeutil import now_ns

#: Rows deleted per transaction by retention, so ingest and queries are never blocked for long.
_PRUNE_CHUNK = 5_000


class EmbeddedBackend:
    def __init__(self, data_dir: Path | str):
        self.store = Store(data_dir)
        self.registry = EmbeddedRegistry(self.store)
        self.last_write = 0.0  # time.monotonic() of the last ingest, so background work can yield to it

    # ------------------------------------------------------------------------------------------- queries

    async def query_logs(self, query: LogsQuery) -> Page[LogRecord]:
        return await self.store.read(lambda conn: logs.query_logs(conn, query))

    async def count_logs(self, query: LogsQuery) -> int:
        return await self.store.read(lambda conn: logs.count_logs(conn, query))

    async def query_platform_logs(self, query: PlatformLogsQuery) -> Page[LogRecord]:
        return await self.store.read(lambda conn: platform.query_platform_logs(conn, query))

    async def platform_filter_values(self, query: FilterValuesQuery[PlatformLogsQuery]) -> FilterValues:
        return await self.store.read(lambda conn: platform.platform_filter_values(conn, query))

    async def query_audit(self, query: AuditQuery) -> AuditPage:
        return await self.store.read(lambda conn: audit_log.query_audit(conn, query))

    async def audit_filter_values(self, query: FilterValuesQuery[AuditQuery]) -> FilterValues:
        return await self.store.read(lambda conn: audit_log.audit_filter_values(conn, query))

    async def query_events(self, query: EventsQuery) -> Page[EventRecord]:
        return await self.store.read(lambda conn: logs.query_events(conn, query))

    async def query_traces(self, query: TracesQuery) -> Page[TraceSummary]:
        return await self.store.read(lambda conn: traces.query_traces(conn, query))

    async def query_spans(self, query: SpansQuery) -> Page[SpanRecord]:
        return await self.store.read(lambda conn: traces.query_spans(conn, query))

    async def get_span(self, trace_id: str, span_id: str) -> SpanRecord:
        return await self.store.read(lambda conn: traces.get_span(conn, trace_id, span_id))

    async def query_metrics(self, query: MetricsQuery) -> MetricSeries:
        return await self.store.read(lambda conn: metrics.query_metrics(conn, query))

    async def query_topology(self, query: TopologyQuery) -> Topology:
        return await self.store.read(lambda conn: topology.query_topology(conn, query))

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
        """One transaction per batch (audit records included); a batch id seen before is a no-op. A local database
        either takes the batch or fails with an exception (disk full, a bug), which callers retry like any other."""
        self.last_write = time.monotonic()
        await self.store.write(lambda conn: self.apply(conn, batch_id, logs, events, spans, metrics, audit))
        return WriteResult.delivered()

    def apply(
        self,
        conn: sqlite3.Connection,
        batch_id: str,
        log_records: Sequence[LogRecord],
        event_records: Sequence[EventRecord],
        span_records: Sequence[SpanRecord],
        metric_points: Sequence[MetricPoint],
        audit_records: Sequence[AuditRecord] = (),
    ) -> bool:
        """Applies one batch inside the caller's transaction; False when the batch was applied before."""
        if batch_id:
            seen = conn.execute("SELECT 1 FROM applied_batches WHERE batch_id = ?", (batch_id,)).fetchone()
            if seen:
                return False
            conn.execute("INSERT INTO applied_batches (batch_id, applied_ns) VALUES (?, ?)", (batch_id, now_ns()))
        logs.insert_logs(self.store, conn, log_records)
        logs.insert_events(self.store, conn, event_records)
        traces.insert_spans(self.store, conn, span_records)
        metrics.insert_metric_points(self.store, conn, metric_points)
        audit_log.insert_audit(conn, audit_records)
        self.registry.learn(conn, _identities(log_records, event_records, span_records, metric_points), now_ns())
        return True

    async def learn(self, identities: Sequence[Identity]) -> None:
        """Teaches the registry the names and UIDs of records stored elsewhere (OpenSearch)."""
        if not self.registry.knows_all(identities):
            await self.store.write(lambda conn: self.registry.learn(conn, identities, now_ns()))

    async def index_logs(self, max_rows: int = 20_000) -> int:
        """Indexes a chunk of new log lines for phrase search; returns how many (0 when caught up)."""
        return await self.store.write(lambda conn: logs.index_pending(conn, max_rows))

    async def unindexed_logs(self) -> int:
        """How many log lines (about) wait for the phrase index: queries scan them one by one."""
        pending: int
        (pending,) = await self.store.read(
            lambda conn: conn.execute(
                "SELECT coalesce((SELECT max(id) FROM logs), 0) - (SELECT indexed_upto FROM fts_state)"
            ).fetchone()
        )
        return pending

    # ------------------------------------------------------------------------------------------- retention

    async def prune(self, older_than_ns: int) -> int:
        """Deletes records older than the cut-off, a chunk per transaction; returns how many went."""
        # Each inner SELECT walks the (stream or series, time) index of every stream, so only old rows are read.
        statements = (
            "DELETE FROM logs WHERE id IN (SELECT id FROM logs"
            " WHERE stream_id IN (SELECT id FROM streams) AND ts_ns < ? LIMIT ?)",
            "DELETE FROM events WHERE id IN (SELECT id FROM events"
            " WHERE stream_id IN (SELECT id FROM streams) AND ts_ns < ? LIMIT ?)",
            "DELETE FROM spans WHERE (trace_id, span_id) IN (SELECT trace_id, span_id FROM spans"
            " WHERE stream_id IN (SELECT id FROM streams) AND start_ns < ? LIMIT ?)",
            "DELETE FROM metric_points WHERE (series_id, ts_ns) IN (SELECT series_id, ts_ns FROM metric_points"
            " WHERE series_id IN (SELECT id FROM metric_series) AND ts_ns < ? LIMIT ?)",
            "DELETE FROM metric_buckets WHERE (series_id, ts_ns, le) IN (SELECT series_id, ts_ns, le FROM"
            " metric_buckets WHERE series_id IN (SELECT id FROM metric_series) AND ts_ns < ? LIMIT ?)",
            "DELETE FROM audit_records WHERE id IN (SELECT id FROM audit_records WHERE time_ns < ? LIMIT ?)",
            "DELETE FROM applied_batches WHERE batch_id IN"
            " (SELECT batch_id FROM applied_batches WHERE applied_ns < ? LIMIT ?)",
        )
        removed = 0
        for statement in statements:

            def delete_chunk(conn: sqlite3.Connection, sql: str = statement) -> int:
                return conn.execute(sql, (older_than_ns, _PRUNE_CHUNK)).rowcount

            while True:
                count = await self.store.write(delete_chunk)
                removed += count
                if count < _PRUNE_CHUNK:
                    break
        return removed

    def close(self) -> None:
        self.store.close()


def _identities(
    log_records: Sequence[LogRecord], *others: Sequence[EventRecord | SpanRecord | MetricPoint]
) -> list[Identity]:
    """The identities a batch's records carry, once per object: records of one source share one Identity
    object, and hashing an identity (17 fields) per record costs more than telling objects apart. Equal
    identities of different objects are left for the registry, which compares by value."""
    by_object: dict[int, Identity] = {}
    if isinstance(log_records, LogBatch):
        by_object.update((id(identity), identity) for identity in log_records.identities())
    else:
        by_object.update((id(record.identity), record.identity) for record in log_records)
    for records in others:
        by_object.update((id(record.identity), record.identity) for record in records)
    return list(by_object.values())
