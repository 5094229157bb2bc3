"""observer/patterns.py: patterns from a bounded sample of any logs backend, honest about sampling. The
embedded backend stands in, used only as a plain LogsBackend (query_logs, count_logs)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.embedded.backend import EmbeddedBackend
from adapters.embedded.patterns import EmbeddedPatterns
from adapters.protocols import LogsBackend
from devservers.sample import BASE_NS, COMPONENTS, ENVIRONMENTS, NS, PROJECT_UID, identity
from domain.model import ComponentScope, LogRecord, LogsQuery, Page, TimeRange
from domain.patterns import PatternsQuery
from observer import patterns as sampled
from observer.patterns import sampled_patterns

MINUTE, SECOND = 60 * 10**9, 10**9
T0 = (BASE_NS // MINUTE) * MINUTE
CART = ComponentScope(NS, PROJECT_UID, COMPONENTS["cart"], ENVIRONMENTS["prod"])


class PlainLogs:
    """Only the LogsBackend protocol of a backend, and how many pages it was asked for."""

    def __init__(self, backend: EmbeddedBackend):
        self.backend = backend
        self.pages = 0

    async def query_logs(self, query: LogsQuery) -> Page[LogRecord]:
        self.pages += 1
        return await self.backend.query_logs(query)

    async def count_logs(self, query: LogsQuery) -> int:
        return await self.backend.count_logs(query)


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[EmbeddedBackend]:
    backend = EmbeddedBackend(tmp_path / "data")
    yield backend
    backend.close()


async def fill(backend: EmbeddedBackend) -> None:
    """Before T0+2min: GET lines only; after: GET lines and, new, payment errors."""
    records = [
        LogRecord(T0 + i * SECOND, f"GET /api/items/{i} returned 200 in {i % 50 + 1}ms", identity("cart"), "INFO")
        for i in range(240)
    ]
    records += [
        LogRecord(T0 + 120 * SECOND + i * 4 * SECOND, f"payment declined for order {i}: card expired",
                  identity("cart"), "ERROR")
        for i in range(30)
    ]  # fmt: skip
    records.append(LogRecord(T0 + 130 * SECOND, "elsewhere 1", identity("payments"), "INFO"))
    assert (await backend.write(batch_id="b", logs=records)).outcome == "delivered"


WINDOW = PatternsQuery(CART, TimeRange(T0 + 120 * SECOND, T0 + 240 * SECOND - 1), MINUTE)


async def test_a_sample_holding_every_line_is_the_exact_answer(backend: EmbeddedBackend) -> None:
    await fill(backend)
    logs = PlainLogs(backend)
    assert isinstance(logs, LogsBackend)

    result = await sampled_patterns(logs, WINDOW)

    assert (result.total_lines, result.sampled_lines, result.sampled) == (150, 150, False)
    assert [(p.template, p.count, p.sparkline, p.levels, p.new) for p in result.patterns] == [
        ("GET /api/items/<NUM> returned <NUM> in <DURATION>", 120, [60, 60], ["INFO"], False),
        ("payment declined for order <NUM>: card expired", 30, [15, 15], ["ERROR"], True),
    ]
    assert result.patterns[0].example == "GET /api/items/239 returned 200 in 40ms"
    # The same answer as the embedded backend computes where the lines live.
    patterns = EmbeddedPatterns(backend.store)
    while await patterns.assign_pending():
        pass
    exact = await patterns.query_patterns(WINDOW)
    assert [(p.template, p.count, p.sparkline, p.levels, p.new, p.example) for p in exact.patterns] == [
        (p.template, p.count, p.sparkline, p.levels, p.new, p.example) for p in result.patterns
    ]


async def test_a_smaller_sample_says_so_and_keeps_the_newest_lines(
    backend: EmbeddedBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    await fill(backend)
    monkeypatch.setattr(sampled, "PAGE_LINES", 7)
    logs = PlainLogs(backend)

    result = await sampled_patterns(logs, WINDOW, sample_lines=40)

    assert (result.total_lines, result.sampled_lines, result.sampled) == (150, 40, True)
    assert sum(p.count for p in result.patterns) == 40  # the sample's counts
    assert all(sum(p.sparkline) == p.count for p in result.patterns)
    assert [p.sparkline[0] for p in result.patterns] == [0, 0]  # the newest lines: all in the last minute
    assert logs.pages == 2 * 6  # 40 lines of the window and 40 of the previous one, 7 a page


async def test_phrase_and_levels_narrow_the_sample(backend: EmbeddedBackend) -> None:
    await fill(backend)

    errors = await sampled_patterns(PlainLogs(backend), PatternsQuery(CART, WINDOW.range, MINUTE, levels=("ERROR",)))
    phrase = await sampled_patterns(PlainLogs(backend), PatternsQuery(CART, WINDOW.range, MINUTE, phrase="items/13"))

    assert [(p.count, p.new) for p in errors.patterns] == [(30, True)]
    assert [(p.template, p.count) for p in phrase.patterns] == [
        ("GET /api/items/<NUM> returned <NUM> in <DURATION>", 10)  # items/130 .. items/139
    ]
    assert phrase.total_lines == 10 and not phrase.sampled


async def test_an_empty_range_has_no_patterns(backend: EmbeddedBackend) -> None:
    result = await sampled_patterns(PlainLogs(backend), WINDOW)
    assert (result.patterns, result.total_lines, result.sampled) == ([], 0, False)
