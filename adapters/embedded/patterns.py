"""Log patterns in the embedded backend: each stored line's template assigned behind ingest, counted per
(stream, minute, template, level), so a patterns query over a million lines sums a few thousand count rows
instead of reading the lines.

Like the phrase index (logs.py `index_pending`), assignment runs behind ingest in bounded chunks: lines with
id > patterns_state.assigned_upto have no counts yet, and a query reads that short tail itself. The Drain tree
(domain/drain.py) lives in memory, rebuilt from `log_templates` on open; the one assigner mutates it, queries
only match against it (under a lock) and cluster what matches nothing in a scratch tree of their own.

A query range rarely starts and ends on a minute: the partial minutes at its edges are read as lines and
matched, so counts are exact. Sparkline steps are exact wherever they hold whole minutes; a minute a step
boundary cuts through is spread over its steps in proportion to the time each covers (sub-minute detail is
smoothed, totals stay exact). Lines read directly (edges, the tail, phrase samples) are placed exactly.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field

from adapters.embedded import logs
from adapters.embedded.scope import streams_in_scope
from adapters.embedded.store import Store
from domain.drain import Cluster, Drain, DrainSettings
from domain.loglevel import stored_levels
from domain.model import LogsQuery, TimeRange
from domain.pattern_tally import PatternTally, step_index
from domain.patterns import PatternsQuery, PatternsResult
from domain.timeutil import elapsed_ms

log = logging.getLogger(__name__)

MINUTE_NS = 60 * 10**9
#: Lines a query reads itself (edges, the unassigned tail, a phrase's matches), at most; past it, the answer
#: says it is sampled. Matching costs about 5 us a line, so that is about a second at worst.
RAW_LIMIT = 200_000
#: The newest lines of a phrase query matched, at most (a phrase has no counts of its own).
PHRASE_SAMPLE = 20_000
#: Lines matched per hold of the lock, so the assigner is never kept waiting long.
_MATCH_BATCH = 2_000
#: While ingest is busy, assignment waits unless this many lines wait for it: a burst up to this size is taken
#: at the rate of storing it, and a query still reads the whole unassigned tail itself (RAW_LIMIT).
BACKLOG_LIMIT = RAW_LIMIT
INGEST_QUIET_S = 1.0
#: How often count rows older than the oldest stored line are deleted (retention deletes the lines).
PRUNE_EVERY_S = 600.0
_PRUNE_CHUNK = 5_000

_DDL = (
    """CREATE TABLE IF NOT EXISTS log_templates (
      id        INTEGER PRIMARY KEY,
      template  TEXT NOT NULL,      -- tokens joined by one space; `<*>` where lines differ
      path      TEXT NOT NULL,      -- JSON list: the leading tokens that route it in the Drain tree
      example   TEXT NOT NULL,      -- the first line it was made from (never shown: it may be another scope's)
      catch_all INTEGER NOT NULL DEFAULT 0
    )""",
    # One row per stream, minute, template and level: a 1,000,000-line scope is a few thousand rows.
    # `example_id` is the newest line of the row: a scope's example comes from the scope's own lines.
    """CREATE TABLE IF NOT EXISTS log_template_counts (
      stream_id   INTEGER NOT NULL,
      minute      INTEGER NOT NULL,   -- ts_ns // 60e9
      template_id INTEGER NOT NULL,
      level       TEXT NOT NULL,
      count       INTEGER NOT NULL,
      example_id  INTEGER NOT NULL,
      PRIMARY KEY (stream_id, minute, template_id, level)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS patterns_state (
      only_row      INTEGER PRIMARY KEY CHECK (only_row = 1),
      assigned_upto INTEGER NOT NULL
    )""",
    "INSERT OR IGNORE INTO patterns_state (only_row, assigned_upto) VALUES (1, 0)",
)

_Row = tuple[int, int, int, str, str]  # id, stream_id, ts_ns, level, body


@dataclass(slots=True)
class _Assigned:
    """One chunk's outcome, computed outside the write transaction."""

    last_id: int
    counts: dict[tuple[int, int, int, str], list[int]] = field(default_factory=dict)  # key -> [count, example]
    templates: list[tuple[int, str, str, str, int]] = field(default_factory=list)


class EmbeddedPatterns:
    """PatternsBackend over the embedded store, and the assigner that keeps its counts."""

    def __init__(self, store: Store, settings: DrainSettings | None = None):
        self.store = store
        self.drain = Drain(settings)
        self.lock = threading.Lock()
        with store.transaction() as conn:
            for statement in _DDL:
                conn.execute(statement)
            rows = conn.execute("SELECT id, template, path, example, catch_all FROM log_templates").fetchall()
        self.drain.restore(
            Cluster(id, template.split(), tuple(json.loads(path)), example, bool(catch_all))
            for id, template, path, example, catch_all in rows
        )

    # ------------------------------------------------------------------------------------------- assigning

    async def assign_pending(self, max_rows: int = 20_000) -> int:
        """Assigns a chunk of not-yet-assigned lines to templates and stores their counts; returns how many
        (0 when caught up). The clustering runs outside the write transaction; only the counts take the
        writer, briefly."""
        rows = await self.store.read(lambda conn: _pending(conn, max_rows))
        if not rows:
            return 0
        assigned = await asyncio.to_thread(self._assign, rows)
        try:
            await self.store.write(lambda conn: _store(conn, assigned, rows[0][0]))
        except BaseException:
            with self.lock:  # persisted next time, with the next chunk
                self.drain.dirty.update(template[0] for template in assigned.templates)
            raise
        return len(rows)

    def _assign(self, rows: Sequence[_Row]) -> _Assigned:
        assigned = _Assigned(last_id=rows[-1][0])
        counts = assigned.counts
        with self.lock:
            for log_id, stream_id, ts_ns, level, body in rows:
                key = (stream_id, ts_ns // MINUTE_NS, self.drain.add(body).id, level)
                entry = counts.get(key)
                if entry is None:
                    counts[key] = [1, log_id]
                else:
                    entry[0] += 1
                    entry[1] = log_id
            assigned.templates = [
                (c.id, c.template, json.dumps(c.path), c.example, int(c.catch_all)) for c in self.drain.take_dirty()
            ]
        return assigned

    async def pending(self) -> int:
        """How many lines (about) wait for a template."""
        count: int = await self.store.read(
            lambda conn: conn.execute(
                "SELECT coalesce((SELECT max(id) FROM logs), 0) - (SELECT assigned_upto FROM patterns_state)"
            ).fetchone()[0]
        )
        return count

    async def prune(self) -> int:
        """Deletes count rows of minutes before the oldest stored line (retention deleted their lines)."""
        removed = 0
        while True:
            count = await self.store.write(_prune_chunk)
            removed += count
            if count < _PRUNE_CHUNK:
                return removed

    # ------------------------------------------------------------------------------------------- querying

    async def query_patterns(self, query: PatternsQuery) -> PatternsResult:
        return await self.store.read(lambda conn: self._query(conn, query))

    def _query(self, conn: sqlite3.Connection, query: PatternsQuery) -> PatternsResult:
        started = time.perf_counter()
        if query.phrase:
            result = self._phrase_sample(conn, query)
            result.took_ms = elapsed_ms(started)
            return result
        owned = not conn.in_transaction
        if owned:
            conn.execute("BEGIN")  # one snapshot: counts and the tail split at the same assigned_upto
        try:
            (upto,) = conn.execute("SELECT assigned_upto FROM patterns_state").fetchone()
            window = _Window(self, conn, query, upto)
            tally = PatternTally(query)
            window.count(query.range, tally)
            window.seen(query.previous, tally.previous)
            window.describe(tally)
        finally:
            if owned:
                conn.execute("COMMIT")
        skipped = window.skipped
        return tally.result(
            total_lines=window.total,
            sampled_lines=window.total - skipped,
            sampled=skipped > 0,
            took_ms=elapsed_ms(started),
        )

    def _phrase_sample(self, conn: sqlite3.Connection, query: PatternsQuery) -> PatternsResult:
        """A phrase has no counts of its own: the newest matching lines (at most PHRASE_SAMPLE) are matched."""
        tally = PatternTally(query)
        scratch = Drain(self.drain.settings)
        current = _logs_query(query, query.range, PHRASE_SAMPLE)
        lines = logs.query_logs(conn, current).items
        total = logs.count_logs(conn, current)
        for line, (key, template) in zip(lines, self.keys(scratch, [line.body for line in lines])):
            tally.add(key, template, step=step_index(query, line.ts_ns, tally.steps), level=line.level,
                      example=line.body, example_rank=line.ts_ns)  # fmt: skip
        before = logs.query_logs(conn, _logs_query(query, _exclusive(query.previous), PHRASE_SAMPLE)).items
        tally.previous.update(key for key, _ in self.keys(scratch, [line.body for line in before]))
        _retemplate(tally, self.drain, scratch)
        return tally.result(total_lines=total, sampled_lines=len(lines), sampled=len(lines) < total)

    def keys(self, scratch: Drain, bodies: Sequence[str]) -> list[tuple[Hashable, str]]:
        """Each line's template key and text: the stored template it matches, else one of the scratch tree's
        (lines the assigner has not seen yet, clustered on the fly without touching the stored tree)."""
        keys: list[tuple[Hashable, str]] = []
        for start in range(0, len(bodies), _MATCH_BATCH):
            batch = bodies[start : start + _MATCH_BATCH]
            with self.lock:
                found = [self.drain.match(body) for body in batch]
            for body, cluster in zip(batch, found):
                if cluster is not None:
                    keys.append((cluster.id, cluster.template))
                else:
                    extra = scratch.add(body)
                    keys.append((("scratch", extra.id), extra.template))
        return keys


class _Window:
    """The reads of one patterns query, within one snapshot: count rows for whole assigned minutes, lines for
    the partial minutes at the edges and for the unassigned tail. Counts how many lines it had to skip."""

    def __init__(self, owner: EmbeddedPatterns, conn: sqlite3.Connection, query: PatternsQuery, upto: int):
        self.owner, self.conn, self.query, self.upto = owner, conn, query, upto
        self.streams, self.stream_params = streams_in_scope(query.scope)
        self.levels = stored_levels(query.levels) if query.levels else []
        self.scratch = Drain(owner.drain.settings)
        self.total = 0
        self.skipped = 0
        self.budget = RAW_LIMIT

    def _level_filter(self) -> str:
        return f" AND level IN ({','.join('?' * len(self.levels))})" if self.levels else ""

    def count(self, window: TimeRange, tally: PatternTally) -> None:
        """Tallies every line of the window: count rows, then the lines read directly."""
        first, last = _whole_minutes(window)
        step = self.query.step_ns if self.query.step_ns > 0 else (window.end_ns - window.start_ns + 1)
        # Step `point` covers [bounds[point], bounds[point + 1]); the last one runs to the window's end.
        bounds = [window.start_ns + point * step for point in range(tally.steps)] + [window.end_ns + 1]
        # One small GROUP BY per step for the minutes wholly inside it, rather than one over every row with the
        # step as a key: SQLite sorts to group, and many small sorts cost half of one big one.
        sql = (
            f"SELECT template_id, level, sum(count), max(example_id) FROM log_template_counts"
            f" WHERE stream_id IN ({self.streams}) AND minute >= ? AND minute < ?{self._level_filter()} GROUP BY 1, 2"
        )
        straddling: set[int] = set()
        for point in range(tally.steps):
            low, high = max(first, -(-bounds[point] // MINUTE_NS)), min(last, bounds[point + 1] // MINUTE_NS)
            boundary = bounds[point + 1]
            if point + 1 < tally.steps and boundary % MINUTE_NS and first <= boundary // MINUTE_NS < last:
                straddling.add(boundary // MINUTE_NS)
            if low >= high:
                continue
            rows = self.conn.execute(sql, (*self.stream_params, low, high, *self.levels)).fetchall()
            for template_id, level, count, example_id in rows:
                tally.add(template_id, "", step=point, level=level, count=count, example_rank=example_id)
                self.total += count
        self._spread(sorted(straddling), bounds, tally)
        for log_id, ts_ns, level, body, key, template in self._lines(window, first, last):
            tally.add(key, template, step=step_index(self.query, ts_ns, tally.steps), level=level, example=body,
                      example_rank=log_id)  # fmt: skip
            self.total += 1

    def _spread(self, minutes: list[int], bounds: list[int], tally: PatternTally) -> None:
        """The count rows of minutes a step boundary cuts through, spread over those steps in proportion to
        the time each covers (rounded so that the parts add up to the count)."""
        for start in range(0, len(minutes), 500):
            chunk = minutes[start : start + 500]
            rows = self.conn.execute(
                f"SELECT minute, template_id, level, sum(count), max(example_id) FROM log_template_counts"
                f" WHERE stream_id IN ({self.streams}) AND minute IN ({','.join('?' * len(chunk))})"
                f"{self._level_filter()} GROUP BY 1, 2, 3",
                (*self.stream_params, *chunk, *self.levels),
            ).fetchall()
            for minute, template_id, level, count, example_id in rows:
                begin = minute * MINUTE_NS
                done = 0
                point = step_index(self.query, begin, tally.steps)
                while done < count:
                    covered = min(MINUTE_NS, bounds[point + 1] - begin)
                    share = count if covered >= MINUTE_NS else (2 * count * covered + MINUTE_NS) // (2 * MINUTE_NS)
                    tally.add(template_id, "", step=point, level=level, count=share - done, example_rank=example_id)
                    done = share
                    point += 1
                self.total += count

    def seen(self, window: TimeRange, keys: set[Hashable]) -> None:
        """The template keys with at least one line in the window (the previous one: its end excluded)."""
        window = _exclusive(window)
        first, last = _whole_minutes(window)
        if first < last:
            rows = self.conn.execute(
                f"SELECT DISTINCT template_id FROM log_template_counts WHERE stream_id IN ({self.streams})"
                f" AND minute >= ? AND minute < ?{self._level_filter()}",
                (*self.stream_params, first, last, *self.levels),
            ).fetchall()
            keys.update(template_id for (template_id,) in rows)
        keys.update(key for *_, key, _ in self._lines(window, first, last, counted=False))

    def _lines(
        self, window: TimeRange, first: int, last: int, *, counted: bool = True
    ) -> Iterable[tuple[int, int, str, str, Hashable, str]]:
        """(id, ts, level, body, template key, template) of the lines without count rows: the assigned ones in
        the partial minutes at the edges, and every unassigned one; newest first, within the budget."""
        segments = [(window.start_ns, window.end_ns)] if first >= last else [
            (window.start_ns, first * MINUTE_NS - 1), (last * MINUTE_NS, window.end_ns)
        ]  # fmt: skip
        levels = self._level_filter()
        selects: list[tuple[str, tuple[object, ...]]] = [
            (
                f"SELECT id, ts_ns, level, body FROM logs WHERE stream_id IN ({self.streams})"
                f" AND ts_ns >= ? AND ts_ns <= ? AND id <= ?{levels} ORDER BY id DESC",
                (*self.stream_params, start, end, self.upto, *self.levels),
            )
            for start, end in segments
            if start <= end
        ]
        # The unassigned tail: walked by id (NOT INDEXED keeps SQLite on the rowid range, the short part).
        selects.append(
            (
                f"SELECT id, ts_ns, level, body FROM logs NOT INDEXED WHERE id > ? AND stream_id IN ({self.streams})"
                f" AND ts_ns >= ? AND ts_ns <= ?{levels} ORDER BY id DESC",
                (self.upto, *self.stream_params, window.start_ns, window.end_ns, *self.levels),
            )
        )
        for sql, params in selects:
            rows = self.conn.execute(f"{sql} LIMIT ?", (*params, self.budget + 1)).fetchall()
            if len(rows) > self.budget:
                if counted:
                    (matching,) = self.conn.execute(f"SELECT count(*) FROM ({sql})", params).fetchone()
                    self.skipped += matching - self.budget
                    self.total += matching - self.budget
                rows = rows[: self.budget]
            self.budget -= len(rows)
            keys = self.owner.keys(self.scratch, [row[3] for row in rows])
            for (log_id, ts_ns, level, body), (key, template) in zip(rows, keys):
                yield log_id, ts_ns, level, body, key, template

    def describe(self, tally: PatternTally) -> None:
        """Current template texts, and examples for the patterns shown whose newest line was counted, not
        read: looked up by id (a line retention removed leaves the template as its own example)."""
        _retemplate(tally, self.owner.drain, self.scratch)
        wanted = {entry.example_rank: entry for _, entry in tally.top() if not entry.example and entry.example_rank > 0}
        ids = list(wanted)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = self.conn.execute(
                f"SELECT id, body FROM logs WHERE id IN ({','.join('?' * len(chunk))})", chunk
            ).fetchall()
            for log_id, body in rows:
                wanted[log_id].example = body
        for entry in wanted.values():
            entry.example = entry.example or entry.template


def _retemplate(tally: PatternTally, drain: Drain, scratch: Drain) -> None:
    """Each entry's template as it stands now (templates generalize while lines are tallied)."""
    for key, entry in tally.entries.items():
        if isinstance(key, tuple):
            entry.template = scratch.clusters[key[1]].template
        else:
            cluster = drain.clusters.get(key) if isinstance(key, int) else None
            entry.template = cluster.template if cluster else entry.template or f"<template {key}>"


def _whole_minutes(window: TimeRange) -> tuple[int, int]:
    """[first, last): the minutes wholly inside the (inclusive) window."""
    first = -(-window.start_ns // MINUTE_NS)
    last = (window.end_ns + 1) // MINUTE_NS
    return first, last


def _exclusive(window: TimeRange) -> TimeRange:
    """A window without its end instant: the previous window stops where the current one starts."""
    return TimeRange(window.start_ns, window.end_ns - 1)


def _logs_query(query: PatternsQuery, window: TimeRange, limit: int) -> LogsQuery:
    return LogsQuery(query.scope, window, limit, "desc", query.levels, query.phrase)


def _pending(conn: sqlite3.Connection, max_rows: int) -> list[_Row]:
    (upto,) = conn.execute("SELECT assigned_upto FROM patterns_state").fetchone()
    return conn.execute(
        "SELECT id, stream_id, ts_ns, level, body FROM logs WHERE id > ? ORDER BY id LIMIT ?", (upto, max_rows)
    ).fetchall()


def _store(conn: sqlite3.Connection, assigned: _Assigned, first_id: int) -> None:
    (upto,) = conn.execute("SELECT assigned_upto FROM patterns_state").fetchone()
    if upto >= first_id:
        raise RuntimeError("patterns assigned twice: another assigner runs on this store")
    conn.executemany(
        "INSERT INTO log_templates (id, template, path, example, catch_all) VALUES (?,?,?,?,?)"
        " ON CONFLICT (id) DO UPDATE SET template = excluded.template",
        assigned.templates,
    )
    conn.executemany(
        "INSERT INTO log_template_counts (stream_id, minute, template_id, level, count, example_id)"
        " VALUES (?,?,?,?,?,?) ON CONFLICT (stream_id, minute, template_id, level)"
        " DO UPDATE SET count = count + excluded.count, example_id = max(example_id, excluded.example_id)",
        [(*key, count, example) for key, (count, example) in assigned.counts.items()],
    )
    conn.execute("UPDATE patterns_state SET assigned_upto = ?", (assigned.last_id,))


def _prune_chunk(conn: sqlite3.Connection) -> int:
    # The oldest line, from each stream's (stream, time) index; no lines at all: nothing to keep.
    (oldest,) = conn.execute(
        "SELECT min((SELECT min(ts_ns) FROM logs WHERE stream_id = s.id)) FROM streams s"
    ).fetchone()
    before = (oldest // MINUTE_NS) if oldest is not None else (1 << 62)
    deleted: int = conn.execute(
        "DELETE FROM log_template_counts WHERE (stream_id, minute, template_id, level) IN"
        " (SELECT stream_id, minute, template_id, level FROM log_template_counts"
        "  WHERE stream_id IN (SELECT id FROM streams) AND minute < ? LIMIT ?)",
        (before, _PRUNE_CHUNK),
    ).rowcount
    return deleted


async def assigning_loop(patterns: EmbeddedPatterns, last_write: Callable[[], float]) -> None:
    """Keeps template assignment caught up, a chunk per transaction; steps aside while ingest is busy unless
    the backlog passes BACKLOG_LIMIT (queries read unassigned lines one by one), and prunes count rows of
    minutes retention emptied now and then."""
    pruned = time.monotonic()
    while True:
        try:
            if time.monotonic() - pruned > PRUNE_EVERY_S:
                await patterns.prune()
                pruned = time.monotonic()
            busy = time.monotonic() - last_write() < INGEST_QUIET_S
            if busy and await patterns.pending() < BACKLOG_LIMIT:
                await asyncio.sleep(0.25)
                continue
            if await patterns.assign_pending():
                continue
        except Exception:
            log.exception("log pattern assignment failed")
        await asyncio.sleep(0.5)
