"""Log patterns: how fast domain/drain.py extracts templates (lines/s on one core) next to a plain `str.split`
pass and the masking alone, and the embedded backend's patterns query over a 1,000,000-line scope next to a
`count(*)` of the same range and the plain logs query of the scope, all in the same run."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable

from adapters.embedded import logs as embedded_logs
from adapters.embedded.backend import EmbeddedBackend
from adapters.embedded.patterns import EmbeddedPatterns
from bench import data, logs_query
from bench.harness import CACHE, interleaved, report
from domain.drain import Drain, DrainSettings, mask
from domain.model import ComponentScope, LogsQuery, TimeRange
from domain.patterns import PatternsQuery

LINES = 100_000
RECORDS = logs_query.RECORDS
END_NS = logs_query.END_NS
DATASET = CACHE / f"bench-patterns-{RECORDS}-v1"
HOUR_NS = 3600 * 10**9


def lines_per_s(work: Callable[[str], object], bodies: list[str], rounds: int = 3) -> float:
    """Lines per second of one core: CPU time of a pass over the lines on this thread (the best of a few
    rounds, so a busy neighbour does not count against it)."""
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        for body in bodies:
            work(body)
        best = min(best, time.process_time() - started)
    return len(bodies) / best


def extraction() -> dict[str, float]:
    bodies = [record.body for record in data.log_records(LINES, END_NS, seed=20)]
    drain = Drain()
    rates = {
        "split": lines_per_s(str.split, bodies),
        "mask": lines_per_s(mask, bodies),
        "drain": lines_per_s(drain.add, bodies),
        # every line masked, routed and compared with its leaf's templates: no cache of masked lines
        "drain_uncached": lines_per_s(Drain(DrainSettings(cache_size=1)).add, bodies),
    }
    return {**rates, "templates": len(drain.clusters)}


def assignment(lines: int = 100_000) -> dict[str, float]:
    """Storing lines (the baseline) and then assigning them templates behind ingest, in a fresh store: lines/s
    of each, wall clock (the assigner's SQL included)."""
    with tempfile.TemporaryDirectory() as directory:
        backend = EmbeddedBackend(directory)
        patterns = EmbeddedPatterns(backend.store)
        records = list(data.log_records(lines, END_NS, seed=21))
        started = time.perf_counter()
        for number in range(0, lines, 10_000):
            with backend.store.transaction() as conn:
                backend.apply(conn, f"assign-{number}", records[number : number + 10_000], (), (), ())
        stored = time.perf_counter() - started

        async def assign() -> int:
            total = 0
            while count := await patterns.assign_pending(20_000):
                total += count
            return total

        started = time.perf_counter()
        assert asyncio.run(assign()) == lines
        assigned = time.perf_counter() - started
        backend.close()
    return {"store": lines / stored, "assign": lines / assigned}


def build_dataset() -> float:
    """The logs bench's 1,000,000 lines (built there, cached) copied here with every line assigned a template
    (cached across runs); returns the assignment rate in lines/s (store included), 0 when cached."""
    logs_query.build_dataset()
    if (DATASET / "complete").exists():
        return 0.0
    shutil.rmtree(DATASET, ignore_errors=True)
    DATASET.mkdir(parents=True)
    source = sqlite3.connect(f"file:{logs_query.DATASET / 'telemetry.db'}?mode=ro", uri=True)
    target = sqlite3.connect(DATASET / "telemetry.db")
    source.backup(target)
    source.close()
    target.close()
    backend = EmbeddedBackend(DATASET)
    patterns = EmbeddedPatterns(backend.store)

    async def assign() -> int:
        total = 0
        while count := await patterns.assign_pending(50_000):
            total += count
        return total

    started = time.perf_counter()
    assigned = asyncio.run(assign())
    rate = assigned / (time.perf_counter() - started)
    backend.close()
    (DATASET / "complete").write_text("ok")
    return rate


def run(repeat: int = 30) -> None:
    rates = extraction()
    behind_ingest = assignment()
    assign_rate = build_dataset()
    scope = ComponentScope(data.NAMESPACE)  # every stream of the dataset: 1,000,000 lines
    window = TimeRange(END_NS - 24 * HOUR_NS, END_NS)
    backend = EmbeddedBackend(DATASET)
    patterns = EmbeddedPatterns(backend.store)
    conn = backend.store.reader()
    scope_lines = embedded_logs.count_logs(conn, LogsQuery(scope, window))
    query = PatternsQuery(scope, window, HOUR_NS)
    answer = patterns._query(conn, query)
    assert answer.total_lines == scope_lines == RECORDS and not answer.sampled, answer
    timings = interleaved(
        {
            "count": lambda: embedded_logs.count_logs(conn, LogsQuery(scope, window)),
            "logs": lambda: embedded_logs.query_logs(conn, LogsQuery(scope, window, 100)),
            "patterns": lambda: patterns._query(conn, query),
        },
        repeat,
        warmup=3,
    )
    backend.close()
    count_ms, logs_ms, patterns_ms = timings["count"], timings["logs"], timings["patterns"]
    report(
        "patterns",
        [
            ("str.split (lines/s, one core)", f"{rates['split']:,.0f}", "baseline"),
            ("masking alone (lines/s)", f"{rates['mask']:,.0f}", ""),
            ("Drain, masking included (lines/s)", f"{rates['drain']:,.0f}", "target >= 50,000"),
            ("Drain without its line cache (lines/s)", f"{rates['drain_uncached']:,.0f}", ""),
            ("templates found (8 generated)", f"{rates['templates']:.0f}", "8"),
            ("embedded store, lines written (lines/s)", f"{behind_ingest['store']:,.0f}", "baseline"),
            ("embedded assignment behind ingest (lines/s)", f"{behind_ingest['assign']:,.0f}", ""),
            ("scope lines", f"{scope_lines:,}", ""),
            ("SELECT count(*) of the range p50 / p99 (ms)", f"{count_ms['p50_ms']} / {count_ms['p99_ms']}", "baseline"),
            ("logs query of the scope p50 / p99 (ms)", f"{logs_ms['p50_ms']} / {logs_ms['p99_ms']}", ""),
            (
                "patterns query p50 / p99 (ms)",
                f"{patterns_ms['p50_ms']} / {patterns_ms['p99_ms']}",
                "target p99 <= 500",
            ),
        ],
        {
            "extraction": rates,
            "behind_ingest": behind_ingest,
            "dataset_assign_rate": assign_rate,
            "scope_lines": scope_lines,
            "query": timings,
        },
    )


if __name__ == "__main__":
    run()
