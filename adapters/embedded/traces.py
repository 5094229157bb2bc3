"""Traces and spans in the embedded backend.

A trace matches a scope when at least one of its spans belongs to the scope and lies wholly inside the time
range (and, with the extensions' filters, when the whole trace lasts long enough or holds an error). Its summary (root span, span count, start, end, errors) is computed over the whole trace, because a
user asking for the traces of `cart` wants to see the request that passed through `cart`, from its root.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from adapters.embedded.inserts import insert_rows
from adapters.embedded.scope import IDENTITY_COLUMNS, IDENTITY_WIDTH, identity_from_row, streams_in_scope
from adapters.embedded.store import Store
from adapters.protocols import SpanNotFound
from domain.model import TOTAL_CAP, Page, SpanRecord, SpansQuery, TracesQuery, TraceSummary
from domain.timeutil import elapsed_ms

_SPAN_COLUMNS = (
    "r.trace_id, r.span_id, r.parent_span_id, r.name, r.kind, r.start_ns, r.end_ns, r.status_code,"
    f" r.status_message, r.attributes, r.resource, {IDENTITY_COLUMNS}"
)


def query_traces(conn: sqlite3.Connection, query: TracesQuery) -> Page[TraceSummary]:
    """Traces ordered by when they first entered the scope within the window (their earliest matching span,
    to the millisecond, as OpenSearch's aggregations see it), then by trace id."""
    started = time.perf_counter()
    streams_sql, stream_params = streams_in_scope(query.scope)
    matched = (
        f"SELECT trace_id, start_ns FROM spans WHERE stream_id IN ({streams_sql}) AND start_ns >= ? AND end_ns <= ?"
    )
    params: list[object] = [*stream_params, query.range.start_ns, query.range.end_ns]
    if query.filtered:
        matched, params = _passing(matched, params, query)
    (total,) = conn.execute(
        f"SELECT count(*) FROM (SELECT DISTINCT trace_id FROM ({matched}) LIMIT {TOTAL_CAP})", params
    ).fetchone()
    direction = "DESC" if query.sort == "desc" else "ASC"
    trace_ids = [
        row[0]
        for row in conn.execute(
            f"SELECT trace_id FROM ({matched}) GROUP BY trace_id"
            f" ORDER BY min(start_ns) / 1000000 {direction}, trace_id {direction} LIMIT ?",
            [*params, query.limit],
        )
    ]
    marks = ",".join("?" * len(trace_ids))
    summaries = {
        row[0]: row[1:]
        for row in conn.execute(
            f"SELECT trace_id, count(*), min(start_ns), max(end_ns), max(status_code = 'error')"
            f" FROM spans WHERE trace_id IN ({marks}) GROUP BY trace_id",
            trace_ids,
        )
    }
    roots = _roots(conn, trace_ids)
    traces = []
    for trace_id in trace_ids:
        span_count, start_ns, end_ns, has_errors = summaries[trace_id]
        root_id, root_name, root_kind = roots[trace_id]
        traces.append(
            TraceSummary(
                trace_id=trace_id,
                name=root_name,
                span_count=span_count,
                root_span_id=root_id,
                root_span_name=root_name,
                root_span_kind=root_kind,
                start_ns=start_ns,
                end_ns=end_ns,
                has_errors=bool(has_errors),
            )
        )
    return Page(traces, total, elapsed_ms(started))


def _passing(matched: str, params: list[object], query: TracesQuery) -> tuple[str, list[object]]:
    """`matched` narrowed to the traces whose whole extent (every span, wherever it lies) passes the filters:
    the summary's duration and error flag, computed in the same SELECT the summaries use."""
    having = ["max(end_ns) - min(start_ns) >= ?"]
    if query.errors_only:
        having.append("max(status_code = 'error') = 1")
    passing = (
        f"SELECT trace_id FROM spans WHERE trace_id IN (SELECT trace_id FROM ({matched}))"
        f" GROUP BY trace_id HAVING {' AND '.join(having)}"
    )
    narrowed = f"SELECT trace_id, start_ns FROM ({matched}) WHERE trace_id IN ({passing})"
    return narrowed, [*params, *params, query.min_duration_ns]


def _roots(conn: sqlite3.Connection, trace_ids: list[str]) -> dict[str, tuple[str, str, str]]:
    """The root span of each trace: its earliest span without a parent, or, while the root has not arrived,
    its earliest span."""
    if not trace_ids:
        return {}
    marks = ",".join("?" * len(trace_ids))
    rows = conn.execute(
        f"SELECT trace_id, span_id, name, kind FROM ("
        f"  SELECT trace_id, span_id, name, kind, row_number() OVER ("
        f"    PARTITION BY trace_id ORDER BY parent_span_id != '', start_ns, span_id) AS rank"
        f"  FROM spans WHERE trace_id IN ({marks})"
        f") WHERE rank = 1",
        trace_ids,
    ).fetchall()
    return {trace_id: (span_id, name, kind) for trace_id, span_id, name, kind in rows}


def query_spans(conn: sqlite3.Connection, query: SpansQuery) -> Page[SpanRecord]:
    started = time.perf_counter()
    streams_sql, stream_params = streams_in_scope(query.scope)
    where = f"r.trace_id = ? AND r.stream_id IN ({streams_sql}) AND r.start_ns >= ? AND r.end_ns <= ?"
    params = [query.trace_id, *stream_params, query.range.start_ns, query.range.end_ns]
    (total,) = conn.execute(f"SELECT count(*) FROM spans r WHERE {where}", params).fetchone()
    direction = "DESC" if query.sort == "desc" else "ASC"
    rows = conn.execute(
        f"SELECT {_SPAN_COLUMNS} FROM spans r JOIN streams s ON s.id = r.stream_id WHERE {where}"
        f" ORDER BY r.start_ns {direction}, r.span_id {direction} LIMIT ?",
        [*params, query.limit],
    ).fetchall()
    return Page([_span(row) for row in rows], total, elapsed_ms(started))


def get_span(conn: sqlite3.Connection, trace_id: str, span_id: str) -> SpanRecord:
    row = conn.execute(
        f"SELECT {_SPAN_COLUMNS} FROM spans r JOIN streams s ON s.id = r.stream_id"
        " WHERE r.trace_id = ? AND r.span_id = ?",
        (trace_id, span_id),
    ).fetchone()
    if row is None:
        raise SpanNotFound(f"span {span_id} not found in trace {trace_id}")
    return _span(row)


def _span(row: tuple[Any, ...]) -> SpanRecord:
    return SpanRecord(
        trace_id=row[0],
        span_id=row[1],
        parent_span_id=row[2],
        name=row[3],
        kind=row[4],
        start_ns=row[5],
        end_ns=row[6],
        status_code=row[7],
        status_message=row[8],
        attributes=json.loads(row[9]),
        resource=json.loads(row[10]),
        identity=identity_from_row(row[11 : 11 + IDENTITY_WIDTH]),
    )


def insert_spans(store: Store, conn: sqlite3.Connection, spans: Sequence[SpanRecord]) -> None:
    """INSERT OR REPLACE on (trace_id, span_id): a span delivered twice is stored once."""
    insert_rows(
        conn,
        "INSERT OR REPLACE INTO spans (trace_id, span_id, parent_span_id, stream_id, name, kind, start_ns, end_ns,"
        " status_code, status_message, attributes, resource)",
        [
            (
                span.trace_id,
                span.span_id,
                span.parent_span_id,
                store.stream_id(conn, span.identity),
                span.name,
                span.kind,
                span.start_ns,
                span.end_ns,
                span.status_code,
                span.status_message,
                json.dumps(span.attributes, separators=(",", ":"), default=str),
                json.dumps(span.resource, separators=(",", ":"), default=str),
            )
            for span in spans
        ],
    )
