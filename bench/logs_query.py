"""Component-scoped logs query latency over 1,000,000 stored records: through the Observer (HTTP, the real
process) next to the same query run directly against SQLite in the same run."""

from __future__ import annotations

import asyncio
import itertools
import shutil
import sqlite3
import time
from typing import Any

import httpx

from adapters.embedded import logs as embedded_logs
from adapters.embedded.backend import EmbeddedBackend
from adapters.embedded.patterns import EmbeddedPatterns
from bench import data
from bench.harness import CACHE, interleaved, report
from devservers.observer import observer_up
from domain.model import ComponentScope, LogsQuery, TimeRange
from domain.timeutil import format_rfc3339

RECORDS = 1_000_000
END_NS = 1_790_000_000 * 10**9
DATASET = CACHE / f"bench-logs-{RECORDS}-v3"
#: The dataset's lines are dated before END_NS, which is fixed so that the cache stays valid across runs; on a
#: later day the Observer's retention (7 days by default) would delete them from under the bench, at startup,
#: while the queries are timed. The Observer under test keeps everything for ten years instead.
KEEP_ALL = {"OBSERVER_RETENTION_HOURS": str(10 * 365 * 24)}
QUERIES = [
    ("timeout", ("ERROR", "WARN")),
    ("payment declined", ("ERROR",)),
    ("slow query", ("WARN",)),
    ("cache miss", ("DEBUG",)),
]


def observer_body(window: TimeRange, phrase: str, levels: tuple[str, ...]) -> dict[str, Any]:
    """The Observer logs query every logs bench sends: component `cart` in production, one phrase and levels."""
    return {
        "startTime": format_rfc3339(window.start_ns),
        "endTime": format_rfc3339(window.end_ns),
        "searchScope": {
            "namespace": data.NAMESPACE,
            "project": data.PROJECT,
            "component": "cart",
            "environment": "production",
        },
        "searchPhrase": phrase,
        "logLevels": list(levels),
        "limit": 100,
    }


def stored_records() -> int:
    """How many log lines the cached dataset holds (0 when there is none)."""
    db = DATASET / "telemetry.db"
    if not db.exists():
        return 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        (count,) = conn.execute("SELECT count(*) FROM logs").fetchone()
        return int(count)
    finally:
        conn.close()


def build_dataset() -> float:
    """Writes the records once (cached across runs); returns the load rate in records/s (before phrase
    indexing and template assignment, which follow), or 0 when cached. A cache missing lines (an earlier run's Observer pruned it, or
    a build was interrupted) is built again rather than measured as if it held RECORDS."""
    if (DATASET / "complete").exists() and stored_records() == RECORDS:
        return 0.0
    shutil.rmtree(DATASET, ignore_errors=True)
    backend = EmbeddedBackend(DATASET)
    started = time.perf_counter()
    records = data.log_records(RECORDS, END_NS)
    for number in itertools.count():
        chunk = list(itertools.islice(records, 50_000))
        if not chunk:
            break
        with backend.store.transaction() as conn:
            backend.apply(conn, f"bench-{number}", chunk, (), (), ())
    rate = RECORDS / (time.perf_counter() - started)
    with backend.store.transaction() as conn:
        while embedded_logs.index_pending(conn, 50_000):
            pass
    asyncio.run(_assign_patterns(backend))
    backend.close()
    (DATASET / "complete").write_text("ok")
    return rate


async def _assign_patterns(backend: EmbeddedBackend) -> None:
    """Assigns every line its template, as the Observer does behind ingest: the dataset is what a running
    Observer holds, so the one under test has no backlog to work through while its queries are timed."""
    patterns = EmbeddedPatterns(backend.store)
    while await patterns.assign_pending(50_000):
        pass


def run(repeat: int = 400) -> None:
    load_rate = build_dataset()
    component = data.uid("component", "cart")
    scope = ComponentScope(
        data.NAMESPACE, data.uid("project", data.PROJECT), component, data.uid("environment", "production")
    )
    window = TimeRange(END_NS - 24 * data.HOUR_NS, END_NS)
    # One cycle each, both advanced once per round: in every round both ask the same query.
    sql_queries, api_queries = itertools.cycle(QUERIES), itertools.cycle(QUERIES)

    direct = EmbeddedBackend(DATASET)
    conn = direct.store.reader()

    def sql() -> None:
        phrase, levels = next(sql_queries)
        embedded_logs.query_logs(conn, LogsQuery(scope, window, 100, "desc", levels, phrase))

    with observer_up(DATASET, env=KEEP_ALL) as server, httpx.Client(base_url=server.api, timeout=30) as client:

        def api() -> None:
            phrase, levels = next(api_queries)
            response = client.post(
                "/api/v1/logs/query",
                json=observer_body(window, phrase, levels),
            )
            assert response.status_code == 200 and response.json()["logs"], response.text

        # Round after round, so that both see the same machine (one after the other, the later one met the
        # Observer's page cache and the machine's other work in another state).
        timed = interleaved({"direct": sql, "api": api}, repeat)
    direct.close()
    direct_ms, api_ms = timed["direct"], timed["api"]

    assert stored_records() == RECORDS, "the Observer under test deleted part of the dataset"
    overhead = round(api_ms["p50_ms"] - direct_ms["p50_ms"], 3)
    report(
        "logs_query",
        [
            ("records stored", f"{RECORDS:,}", ""),
            ("dataset load (direct, records/s)", f"{load_rate:,.0f}" if load_rate else "cached", ""),
            ("direct SQL p50 / p99 (ms)", f"{direct_ms['p50_ms']} / {direct_ms['p99_ms']}", "baseline"),
            ("Observer HTTP p50 / p99 (ms)", f"{api_ms['p50_ms']} / {api_ms['p99_ms']}", "target p99 <= 50"),
            ("overhead at p50 (ms)", f"{overhead}", "target <= 3"),
            ("overhead, median of paired differences (ms)", f"{api_ms['paired_p50_over_baseline_ms']}", ""),
        ],
        {"records": RECORDS, "load_rate": load_rate, "direct": direct_ms, "api": api_ms, "overhead_p50_ms": overhead},
    )


if __name__ == "__main__":
    run()
