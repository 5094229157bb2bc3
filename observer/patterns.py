"""Log patterns for backends that cannot compute them where the lines live (OpenSearch, Datadog, the HTTP
adapters): the newest lines of the range, at most a bounded sample, clustered here with domain/drain.py, and
the answer honest about it (`sampled`, `sampled_lines` of `total_lines`; counts are the sample's).

Only the LogsBackend protocol is used (query_logs pages, count_logs), so any logs backend will do.
"""

from __future__ import annotations

import time

from adapters.protocols import LogsBackend
from domain.drain import Drain
from domain.model import LogRecord, LogsQuery, TimeRange
from domain.pattern_tally import PatternTally
from domain.patterns import PatternsQuery, PatternsResult
from domain.timeutil import elapsed_ms

#: Lines asked of the backend per page (the contract's largest logs page).
PAGE_LINES = 1_000
DEFAULT_SAMPLE_LINES = 10_000


async def _newest_lines(
    logs: LogsBackend, query: PatternsQuery, window: TimeRange, sample_lines: int
) -> list[LogRecord]:
    """At most `sample_lines` of the window's newest lines, page after page."""
    lines: list[LogRecord] = []
    cursor = ""
    while len(lines) < sample_lines:
        page = await logs.query_logs(
            LogsQuery(
                query.scope,
                window,
                min(PAGE_LINES, sample_lines - len(lines)),
                "desc",
                query.levels,
                query.phrase,
                cursor,
            )
        )
        lines += page.items
        cursor = page.next_cursor
        if not cursor or not page.items:
            break
    return lines[:sample_lines]


async def sampled_patterns(
    logs: LogsBackend, query: PatternsQuery, *, sample_lines: int = DEFAULT_SAMPLE_LINES
) -> PatternsResult:
    """Patterns of the newest `sample_lines` lines of the range; templates absent from the newest
    `sample_lines` of the previous window are new. `total_lines` comes from count_logs."""
    started = time.perf_counter()
    sample_lines = max(1, sample_lines)
    lines = await _newest_lines(logs, query, query.range, sample_lines)
    total = await logs.count_logs(LogsQuery(query.scope, query.range, 1, "desc", query.levels, query.phrase))
    # The previous window stops where this one starts (its end instant belongs to this one).
    previous_range = TimeRange(query.previous.start_ns, query.previous.end_ns - 1)
    before = await _newest_lines(logs, query, previous_range, sample_lines)

    drain = Drain()
    tally = PatternTally(query)
    for line in reversed(lines):  # oldest first: templates grow as the lines came
        cluster = drain.add(line.body)
        tally.add_line(cluster.id, cluster.template, line.ts_ns, line.level, line.body)
    tally.previous.update(drain.add(line.body).id for line in before)
    for key, entry in tally.entries.items():  # templates as they stand after every line
        entry.template = drain.clusters[int(key)].template  # type: ignore[call-overload]
    total = max(total, len(lines))
    return tally.result(
        total_lines=total, sampled_lines=len(lines), sampled=len(lines) < total, took_ms=elapsed_ms(started)
    )
