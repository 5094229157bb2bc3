"""adapters/embedded/patterns.py: templates assigned behind ingest, counted per minute, queried exactly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.embedded import patterns as embedded_patterns
from adapters.embedded.backend import EmbeddedBackend
from adapters.embedded.patterns import MINUTE_NS, EmbeddedPatterns
from adapters.protocols import PatternsBackend
from devservers.sample import BASE_NS, COMPONENTS, ENVIRONMENTS, NS, PROJECT_UID, identity
from domain.model import ComponentScope, LogRecord, TimeRange
from domain.patterns import PatternsQuery, PatternsResult

T0 = (BASE_NS // MINUTE_NS) * MINUTE_NS  # a whole minute
SECOND = 10**9
CART = ComponentScope(NS, PROJECT_UID, COMPONENTS["cart"], ENVIRONMENTS["prod"])
GET = "GET /api/items/<NUM> returned <NUM> in <DURATION>"
DECLINED = "payment declined for order <NUM>: card expired"


def get(index: int) -> str:
    return f"GET /api/items/{index} returned 200 in {index % 90 + 3}ms"


def declined(index: int) -> str:
    return f"payment declined for order {index}: card expired"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[EmbeddedBackend, EmbeddedPatterns]]:
    backend = EmbeddedBackend(tmp_path / "data")
    yield backend, EmbeddedPatterns(backend.store)
    backend.close()


async def write(
    backend: EmbeddedBackend, batch: str, lines: list[tuple[int, str, str]], component: str = "cart"
) -> None:
    """Lines as (ts_ns, level, body) of one component."""
    records = [LogRecord(ts_ns=ts, body=body, level=level, identity=identity(component)) for ts, level, body in lines]
    assert (await backend.write(batch_id=batch, logs=records)).outcome == "delivered"


async def assign_all(patterns: EmbeddedPatterns) -> int:
    total = 0
    while count := await patterns.assign_pending(max_rows=7):
        total += count
    return total


def query(start: int, end: int, step: int = MINUTE_NS, **extra: object) -> PatternsQuery:
    return PatternsQuery(CART, TimeRange(start, end), step, **extra)  # type: ignore[arg-type]


def summary(result: PatternsResult) -> list[tuple[str, int, list[int], list[str], bool]]:
    return [(p.template, p.count, p.sparkline, p.levels, p.new) for p in result.patterns]


async def test_lines_are_assigned_in_chunks_and_counted(store: tuple[EmbeddedBackend, EmbeddedPatterns]) -> None:
    backend, patterns = store
    assert isinstance(patterns, PatternsBackend)
    await write(backend, "b1", [(T0 + i * SECOND, "INFO", get(i)) for i in range(30)])
    await write(backend, "b2", [(T0 + (30 + i) * SECOND, "ERROR", declined(i)) for i in range(10)])

    assert await patterns.pending() == 40
    assert await assign_all(patterns) == 40
    assert await patterns.pending() == 0 and await patterns.assign_pending() == 0

    result = await patterns.query_patterns(query(T0, T0 + 2 * MINUTE_NS - 1))
    assert summary(result) == [(GET, 30, [30, 0], ["INFO"], True), (DECLINED, 10, [10, 0], ["ERROR"], True)]
    assert (result.total_lines, result.sampled_lines, result.sampled) == (40, 40, False)
    assert result.patterns[0].example == get(29)  # the newest line of the template
    assert result.patterns[1].example == declined(9)


async def test_the_unassigned_tail_is_clustered_on_the_fly(store: tuple[EmbeddedBackend, EmbeddedPatterns]) -> None:
    backend, patterns = store
    lines = [(T0 + i * SECOND, "INFO", get(i)) for i in range(50)]
    lines += [(T0 + i * SECOND + 1, "ERROR", declined(i)) for i in range(0, 150, 3)]
    await write(backend, "b1", lines[:40])
    await assign_all(patterns)
    await write(backend, "b2", lines[40:])  # behind ingest: not assigned yet

    window = query(T0, T0 + 3 * MINUTE_NS - 1)
    before = await patterns.query_patterns(window)
    await assign_all(patterns)
    after = await patterns.query_patterns(window)

    assert summary(before) == summary(after)
    assert summary(after) == [(GET, 50, [50, 0, 0], ["INFO"], True), (DECLINED, 50, [20, 20, 10], ["ERROR"], True)]
    assert before.total_lines == after.total_lines == 100


async def test_partial_minutes_at_the_edges_are_exact(store: tuple[EmbeddedBackend, EmbeddedPatterns]) -> None:
    backend, patterns = store
    await write(backend, "b1", [(T0 + i * 10 * SECOND, "INFO", get(i)) for i in range(24)])  # 4 minutes
    await assign_all(patterns)

    # From 25 s into the first minute to 155 s, 30 s steps: the lines at 30..150 s; the edges read as lines, the
    # whole minute between spread over the three steps it meets (25, 30 and 5 of its 60 s).
    result = await patterns.query_patterns(query(T0 + 25 * SECOND, T0 + 155 * SECOND, step=30 * SECOND))
    assert summary(result) == [(GET, 13, [3, 3, 3, 3, 1], ["INFO"], False)]
    # Steps of whole minutes from a minute: exact.
    aligned = await patterns.query_patterns(query(T0, T0 + 155 * SECOND))
    assert summary(aligned) == [(GET, 16, [6, 6, 4], ["INFO"], True)]
    # Steps shorter than a minute: each minute spread evenly, totals exact.
    fine = await patterns.query_patterns(query(T0, T0 + 2 * MINUTE_NS - 1, step=20 * SECOND))
    assert summary(fine) == [(GET, 12, [2, 2, 2, 2, 2, 2], ["INFO"], True)]


async def test_a_template_only_in_the_current_window_is_new(store: tuple[EmbeddedBackend, EmbeddedPatterns]) -> None:
    backend, patterns = store
    previous = [(T0 + i * SECOND, "INFO", get(i)) for i in range(0, 120, 4)]
    current = [(T0 + 120 * SECOND + i * SECOND, "INFO", get(i)) for i in range(0, 120, 4)]
    current += [(T0 + 150 * SECOND, "ERROR", declined(1)), (T0 + 200 * SECOND, "ERROR", declined(2))]
    await write(backend, "b1", previous + current)
    await assign_all(patterns)

    result = await patterns.query_patterns(query(T0 + 120 * SECOND, T0 + 240 * SECOND - 1))

    assert [(p.template, p.count, p.new) for p in result.patterns] == [(GET, 30, False), (DECLINED, 2, True)]
    # The previous window is what comes just before: with only errors asked, none came before.
    errors = await patterns.query_patterns(query(T0 + 120 * SECOND, T0 + 240 * SECOND - 1, levels=("ERROR",)))
    assert [(p.template, p.count, p.new) for p in errors.patterns] == [(DECLINED, 2, True)]


async def test_other_scopes_lines_are_neither_counted_nor_shown(
    store: tuple[EmbeddedBackend, EmbeddedPatterns],
) -> None:
    backend, patterns = store
    await write(backend, "b1", [(T0 + i * SECOND, "INFO", f"GET /api/items/{i} returned 200 in 5ms") for i in range(5)])
    await write(backend, "b2", [(T0 + 30 * SECOND, "INFO", "GET /api/secret/1 returned 200 in 5ms")], "payments")
    await write(backend, "b3", [(T0 + 40 * SECOND, "INFO", "GET /api/items/777 returned 200 in 9ms")], "payments")
    await assign_all(patterns)

    result = await patterns.query_patterns(query(T0, T0 + MINUTE_NS - 1))

    assert [(p.count, p.example) for p in result.patterns] == [(5, "GET /api/items/4 returned 200 in 5ms")]


async def test_restart_keeps_the_templates(tmp_path: Path) -> None:
    backend = EmbeddedBackend(tmp_path / "data")
    patterns = EmbeddedPatterns(backend.store)
    await write(backend, "b1", [(T0 + i * SECOND, "INFO", f"user session started for {name} from 10.0.0.{i}")
                                for i, name in enumerate(("alice", "bob", "carol"))])  # fmt: skip
    await assign_all(patterns)
    window = query(T0, T0 + MINUTE_NS - 1)
    first = await patterns.query_patterns(window)
    templates = dict(patterns.drain.clusters)
    backend.close()

    backend = EmbeddedBackend(tmp_path / "data")
    reopened = EmbeddedPatterns(backend.store)
    try:
        assert {c.id: c.template for c in reopened.drain.clusters.values()} == {
            c.id: c.template for c in templates.values()
        }
        assert summary(await reopened.query_patterns(window)) == summary(first)
        await write(backend, "b2", [(T0 + 10 * SECOND, "INFO", "user session started for dave from 10.0.0.9")])
        assert await assign_all(reopened) == 1
        assert len(reopened.drain.clusters) == len(templates)  # the same template, not a new one
        result = await reopened.query_patterns(window)
        assert [(p.template, p.count) for p in result.patterns] == [("user session started for <*> from <IP>", 4)]
    finally:
        backend.close()


async def test_a_phrase_reads_the_matching_lines(
    store: tuple[EmbeddedBackend, EmbeddedPatterns], monkeypatch: pytest.MonkeyPatch
) -> None:
    backend, patterns = store
    await write(backend, "b1", [(T0 + i * SECOND, "INFO", get(i)) for i in range(20)])
    await write(backend, "b2", [(T0 + i * SECOND, "ERROR", declined(i)) for i in range(20, 30)])
    await assign_all(patterns)
    window = query(T0, T0 + MINUTE_NS - 1, phrase="returned 200")

    result = await patterns.query_patterns(window)
    assert summary(result) == [(GET, 20, [20], ["INFO"], True)]
    assert (result.total_lines, result.sampled_lines, result.sampled) == (20, 20, False)

    monkeypatch.setattr(embedded_patterns, "PHRASE_SAMPLE", 5)
    sampled = await patterns.query_patterns(window)
    assert (sampled.total_lines, sampled.sampled_lines, sampled.sampled) == (20, 5, True)
    assert sampled.patterns[0].count == 5 and sampled.patterns[0].example == get(19)


async def test_lines_past_the_read_budget_are_counted_and_the_answer_says_sampled(
    store: tuple[EmbeddedBackend, EmbeddedPatterns], monkeypatch: pytest.MonkeyPatch
) -> None:
    backend, patterns = store
    await write(backend, "b1", [(T0 + i * SECOND, "INFO", get(i)) for i in range(40)])
    monkeypatch.setattr(embedded_patterns, "RAW_LIMIT", 15)  # nothing assigned: all 40 wait in the tail

    result = await patterns.query_patterns(query(T0, T0 + MINUTE_NS - 1))

    assert (result.total_lines, result.sampled_lines, result.sampled) == (40, 15, True)
    assert result.patterns[0].count == 15


async def test_limit_keeps_the_most_frequent(store: tuple[EmbeddedBackend, EmbeddedPatterns]) -> None:
    backend, patterns = store
    await write(backend, "b1", [(T0 + i * SECOND, "INFO", get(i)) for i in range(5)])
    await write(backend, "b2", [(T0 + i * SECOND, "ERROR", declined(i)) for i in range(3)])
    await assign_all(patterns)

    result = await patterns.query_patterns(query(T0, T0 + MINUTE_NS - 1, limit=1))

    assert [p.template for p in result.patterns] == [GET] and result.total_lines == 8


async def test_count_rows_of_pruned_lines_go(store: tuple[EmbeddedBackend, EmbeddedPatterns]) -> None:
    backend, patterns = store
    await write(backend, "b1", [(T0 + i * MINUTE_NS, "INFO", get(i)) for i in range(5)])
    await assign_all(patterns)

    await backend.prune(T0 + 3 * MINUTE_NS)
    assert await patterns.prune() == 3

    result = await patterns.query_patterns(query(T0, T0 + 5 * MINUTE_NS - 1))
    assert result.total_lines == 2
