"""Logs and Kubernetes events in the embedded backend."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass

from adapters.cursor import fingerprint
from adapters.embedded.inserts import insert_rows
from adapters.embedded.paging import PagedRows, PagedSelect, count_all, run_paged
from adapters.embedded.scope import IDENTITY_COLUMNS, IDENTITY_WIDTH, identity_from_row
from adapters.embedded.store import Store
from domain.log_batch import LogBatch
from domain.loglevel import stored_levels
from domain.model import EventRecord, EventsQuery, Identity, LogRecord, LogsQuery, Page
from domain.timeutil import elapsed_ms

#: Trigram search needs at least three characters; shorter phrases are matched by scanning the scope.
_MIN_INDEXED_PHRASE = 3
#: A phrase with at most this many indexed matches in the whole store is searched through the index; a more
#: common one is found faster by walking the scope in time order and testing each line.
_RARE_PHRASE_MATCHES = 5_000


def fts_phrase(phrase: str) -> str:
    """An FTS5 query that matches `phrase` literally: one quoted string, quotes doubled, so operators such as
    NEAR, OR, * and ^ inside it are just characters."""
    return '"' + phrase.replace('"', '""') + '"'


def _rare_phrase_candidates(conn: sqlite3.Connection, phrase: str) -> tuple[str, tuple[object, ...]] | None:
    """The ids that may contain a rare phrase (index matches plus the not-yet-indexed tail), or None when the
    phrase is too short for the index or too common for the index to help. FTS5 reads its query as a C string,
    so a phrase holding NUL cannot be asked of the index at all: it is confirmed by `instr()` alone, which
    compares the whole value, and stays a literal search."""
    if len(phrase) < _MIN_INDEXED_PHRASE or "\x00" in phrase:
        return None
    match = fts_phrase(phrase)
    (matches,) = conn.execute(
        "SELECT count(*) FROM (SELECT rowid FROM logs_fts WHERE logs_fts MATCH ? LIMIT ?)",
        (match, _RARE_PHRASE_MATCHES + 1),
    ).fetchone()
    if matches > _RARE_PHRASE_MATCHES:
        return None
    return (
        "SELECT rowid AS id FROM logs_fts WHERE logs_fts MATCH ?"
        " UNION ALL SELECT id FROM logs WHERE id > (SELECT indexed_upto FROM fts_state)",
        (match,),
    )


#: The columns of a log line: `log_page` reads rows in this order.
LOG_COLUMNS = f"r.body, r.level, r.trace_id, r.span_id, {IDENTITY_COLUMNS}"


@dataclass(frozen=True, slots=True)
class LineFilters:
    """The level and phrase filters of a logs or platform-logs query in SQL (over `logs r`), and the candidate
    ids of a rare phrase (see `_rare_phrase_candidates`)."""

    where: tuple[str, ...]
    params: tuple[object, ...]
    candidates: str = ""
    candidate_params: tuple[object, ...] = ()


def line_filters(conn: sqlite3.Connection, levels: Sequence[str], phrase: str, trace_id: str = "") -> LineFilters:
    where: list[str] = []
    params: list[object] = []
    candidates = None
    if levels:
        stored = stored_levels(tuple(levels))
        where.append(f"r.level IN ({','.join('?' * len(stored))})")
        params += stored
    if trace_id:
        where.append("r.trace_id = ?")
        params.append(trace_id)
    if phrase:
        candidates = _rare_phrase_candidates(conn, phrase)
        where.append("instr(r.body, ?) > 0")  # exact, case-sensitive substring semantics in every plan
        params.append(phrase)
    return LineFilters(
        tuple(where), tuple(params), candidates[0] if candidates else "", candidates[1] if candidates else ()
    )


def _logs_select(conn: sqlite3.Connection, query: LogsQuery) -> PagedSelect:
    """The scoped, filtered SELECT behind both a page of logs and their exact count."""
    filters = line_filters(conn, query.levels, query.phrase, query.trace_id)
    return PagedSelect(
        table="logs",
        columns=LOG_COLUMNS,
        scope=query.scope,
        range=query.range,
        sort=query.sort,
        limit=query.limit,
        cursor=query.cursor,
        fingerprint=fingerprint(
            "logs", query.scope, query.range, query.sort, query.levels, query.phrase, *_trace(query)
        ),
        where=filters.where,
        params=filters.params,
        candidates=filters.candidates,
        candidate_params=filters.candidate_params,
    )


def _trace(query: LogsQuery) -> tuple[str, ...]:
    """The trace filter's part of a cursor's fingerprint: nothing without one, so cursors issued before the
    filter existed stay valid."""
    return (query.trace_id,) if query.trace_id else ()


def count_logs(conn: sqlite3.Connection, query: LogsQuery) -> int:
    """How many log lines match (scope, range, levels, phrase, trace), exactly: limit and cursor are ignored."""
    return count_all(conn, _logs_select(conn, query))


def query_logs(conn: sqlite3.Connection, query: LogsQuery) -> Page[LogRecord]:
    started = time.perf_counter()
    return log_page(run_paged(conn, _logs_select(conn, query)), started)


def log_page(page: PagedRows, started: float) -> Page[LogRecord]:
    """A page of log lines from rows of LOG_COLUMNS (then ts_ns and id), timed from `started`."""
    # A page holds a few streams: one Identity per stream, shared by its lines (it is immutable), rather than
    # one per line; the API then builds each stream's metadata once (observer/wire.py component_log_entries).
    identities: dict[tuple[str, ...], Identity] = {}
    logs = []
    for row in page.rows:
        names = row[4 : 4 + IDENTITY_WIDTH]
        identity = identities.get(names)
        if identity is None:
            identity = identities[names] = identity_from_row(names)
        logs.append(
            LogRecord(ts_ns=row[-2], body=row[0], level=row[1], trace_id=row[2], span_id=row[3], identity=identity)
        )
    return Page(logs, page.total, elapsed_ms(started), page.next_cursor)


def index_pending(conn: sqlite3.Connection, max_rows: int) -> int:
    """Adds up to `max_rows` not-yet-indexed log lines to the phrase index; returns how many. Call inside a
    write transaction."""
    (upto,) = conn.execute("SELECT indexed_upto FROM fts_state").fetchone()
    (last,) = conn.execute(
        "SELECT max(id) FROM (SELECT id FROM logs WHERE id > ? ORDER BY id LIMIT ?)", (upto, max_rows)
    ).fetchone()
    if last is None:
        return 0
    added = conn.execute(
        "INSERT INTO logs_fts (rowid, body) SELECT id, body FROM logs WHERE id > ? AND id <= ?", (upto, last)
    ).rowcount
    conn.execute("UPDATE fts_state SET indexed_upto = ?", (last,))
    return added


def query_events(conn: sqlite3.Connection, query: EventsQuery) -> Page[EventRecord]:
    started = time.perf_counter()
    page = run_paged(
        conn,
        PagedSelect(
            table="events",
            columns=f"r.message, r.type, r.reason, r.object_kind, r.object_name, r.object_namespace,"
            f" {IDENTITY_COLUMNS}",
            scope=query.scope,
            range=query.range,
            sort=query.sort,
            limit=query.limit,
            cursor=query.cursor,
            fingerprint=fingerprint("events", query.scope, query.range, query.sort),
        ),
    )
    events = [
        EventRecord(
            ts_ns=row[-2],
            message=row[0],
            type=row[1],
            reason=row[2],
            object_kind=row[3],
            object_name=row[4],
            object_namespace=row[5],
            identity=identity_from_row(row[6 : 6 + IDENTITY_WIDTH]),
        )
        for row in page.rows
    ]
    return Page(events, page.total, elapsed_ms(started), page.next_cursor)


_INSERT_LOGS = "INSERT INTO logs (stream_id, ts_ns, level, body, trace_id, span_id)"


def insert_logs(store: Store, conn: sqlite3.Connection, logs: Sequence[LogRecord]) -> None:
    if isinstance(logs, LogBatch):
        # A run's rows are already the columns: one stream lookup per run, not one per line.
        for identity, _, rows in logs.groups():
            insert_rows(conn, _INSERT_LOGS, rows, first=store.stream_id(conn, identity))
        return
    stream_id = store.stream_id
    insert_rows(
        conn,
        _INSERT_LOGS,
        [(stream_id(conn, log.identity), log.ts_ns, log.level, log.body, log.trace_id, log.span_id) for log in logs],
    )


def insert_events(store: Store, conn: sqlite3.Connection, events: Sequence[EventRecord]) -> None:
    insert_rows(
        conn,
        "INSERT INTO events (stream_id, ts_ns, type, reason, message, object_kind, object_name, object_namespace)",
        [
            (
                store.stream_id(conn, event.identity),
                event.ts_ns,
                event.type,
                event.reason,
                event.message,
                event.object_kind,
                event.object_name,
                event.object_namespace,
            )
            for event in events
        ],
    )
