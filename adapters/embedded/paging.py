"""One paged, scoped, time-ordered SELECT, shared by logs, platform logs and events.

Everything is pushed into SQL: the scope or the platform placement (as a stream-id subquery), the inclusive time
range, the extra filters, the order (time, then id as the tiebreaker), the limit and the capped count.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from adapters.cursor import decode_cursor, encode_cursor
from adapters.embedded.scope import streams_in_scope
from domain.model import TOTAL_CAP, Scope, SortOrder, TimeRange


@dataclass(frozen=True, slots=True)
class PagedSelect:
    table: str  # alias `r`; joined with streams as `s`
    columns: str  # select list over r.* and s.*
    scope: Scope | None  # None: `streams` names the streams to read
    range: TimeRange
    sort: SortOrder
    limit: int
    cursor: str
    fingerprint: str
    where: tuple[str, ...] = ()
    params: tuple[object, ...] = ()
    #: Optional `SELECT id ...` of the only rows worth looking at (a selective index's answer). The query then
    #: loops over these ids instead of over the scope's time index.
    candidates: str = ""
    candidate_params: tuple[object, ...] = ()
    #: Without a scope, the `SELECT id FROM streams ...` of the streams to read and its parameters (a platform
    #: placement filter: scope.streams_in_placement).
    streams: str = ""
    stream_params: tuple[object, ...] = ()


@dataclass(slots=True)
class PagedRows:
    rows: list[tuple[Any, ...]]
    total: int
    next_cursor: str


def filtered(select: PagedSelect) -> tuple[str, list[object], list[str], list[object]]:
    """(FROM source, its parameters, WHERE clauses, their parameters) for the scope, range and filters."""
    if select.scope is not None:
        streams_sql, stream_params = streams_in_scope(select.scope)
    else:
        streams_sql, stream_params = select.streams, list(select.stream_params)
    where = [f"r.stream_id IN ({streams_sql})", "r.ts_ns >= ?", "r.ts_ns <= ?", *select.where]
    params: list[object] = [*stream_params, select.range.start_ns, select.range.end_ns, *select.params]

    source, source_params = select.table + " r", []
    if select.candidates:
        # CROSS JOIN fixes the loop order: candidates outside, rows looked up by primary key.
        source = f"({select.candidates}) c CROSS JOIN {select.table} r ON r.id = c.id"
        source_params = list(select.candidate_params)
    return source, source_params, where, params


def count_all(conn: sqlite3.Connection, select: PagedSelect) -> int:
    """The exact number of rows `run_paged` would page through (no cap): what an alert rule compares."""
    source, source_params, where, params = filtered(select)
    (total,) = conn.execute(
        f"SELECT count(*) FROM {source} WHERE {' AND '.join(where)}", [*source_params, *params]
    ).fetchone()
    return int(total)


def run_paged(conn: sqlite3.Connection, select: PagedSelect) -> PagedRows:
    """Rows of one page (the last two columns of each row are ts_ns and id), the capped total and the cursor
    for the next page ("" when this page is the last)."""
    source, source_params, where, params = filtered(select)
    (total,) = conn.execute(
        f"SELECT count(*) FROM (SELECT 1 FROM {source} WHERE {' AND '.join(where)} LIMIT {TOTAL_CAP})",
        [*source_params, *params],
    ).fetchone()

    direction = "DESC" if select.sort == "desc" else "ASC"
    if select.cursor:
        last_ts, last_id = decode_cursor(select.cursor, select.fingerprint, shape=(int, int))
        beyond = "<" if select.sort == "desc" else ">"
        where.append(f"(r.ts_ns {beyond} ? OR (r.ts_ns = ? AND r.id {beyond} ?))")
        params += [last_ts, last_ts, last_id]
    rows = conn.execute(
        f"SELECT {select.columns}, r.ts_ns, r.id FROM {source} JOIN streams s ON s.id = r.stream_id"
        f" WHERE {' AND '.join(where)} ORDER BY r.ts_ns {direction}, r.id {direction} LIMIT ?",
        [*source_params, *params, select.limit + 1],
    ).fetchall()

    next_cursor = ""
    if len(rows) > select.limit:
        rows = rows[: select.limit]
        next_cursor = encode_cursor(select.fingerprint, [rows[-1][-2], rows[-1][-1]])
    return PagedRows(rows=rows, total=total, next_cursor=next_cursor)
