"""Tallying lines (or stored counts) by template into a patterns answer: counts, sparklines, levels, examples,
and which templates are new. Every backend builds its answer through this, so they rank, bucket and describe
patterns alike; what differs is only where the counts come from (stored per minute, or a sample of lines).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

from domain.patterns import MAX_PATTERN_STEPS, Pattern, PatternsQuery, PatternsResult

#: Levels are listed in this order (unknown ones after, alphabetically).
_LEVEL_ORDER = {level: rank for rank, level in enumerate(("DEBUG", "INFO", "WARN", "ERROR", "FATAL", "SEVERE"))}


def step_count(query: PatternsQuery) -> int:
    """The sparkline's length: range / step, rounded up, at least 1 and at most MAX_PATTERN_STEPS."""
    length = max(0, query.range.end_ns - query.range.start_ns)
    if query.step_ns <= 0:
        return 1
    return max(1, min(MAX_PATTERN_STEPS, -(-length // query.step_ns)))


def step_index(query: PatternsQuery, ts_ns: int, steps: int) -> int:
    """The sparkline point a time falls in (clamped to the sparkline)."""
    if query.step_ns <= 0:
        return 0
    return max(0, min(steps - 1, (ts_ns - query.range.start_ns) // query.step_ns))


def ordered_levels(levels: Iterable[str]) -> list[str]:
    """Levels by severity, unknown ones last; empty ones (undetectable) left out."""
    return sorted((level for level in set(levels) if level), key=lambda level: (_LEVEL_ORDER.get(level, 99), level))


@dataclass(slots=True)
class _Entry:
    template: str
    count: int = 0
    sparkline: list[int] = field(default_factory=list)
    levels: set[str] = field(default_factory=set)
    example: str = ""
    example_rank: int = -1  # the example kept is the one of the highest rank (newest)


class PatternTally:
    """Counts per template key (a cluster id, or anything hashable) for one query, and the keys seen in the
    previous window."""

    def __init__(self, query: PatternsQuery):
        self.query = query
        self.steps = step_count(query)
        self.entries: dict[Hashable, _Entry] = {}
        self.previous: set[Hashable] = set()

    def add(
        self,
        key: Hashable,
        template: str,
        *,
        step: int,
        level: str,
        count: int = 1,
        example: str = "",
        example_rank: int = -1,
    ) -> None:
        """Counts `count` lines of a template at a sparkline point; offers an example (newest kept)."""
        entry = self.entries.get(key)
        if entry is None:
            entry = self.entries[key] = _Entry(template, sparkline=[0] * self.steps)
        entry.count += count
        entry.sparkline[max(0, min(self.steps - 1, step))] += count
        if level:
            entry.levels.add(level)
        if example_rank > entry.example_rank:
            entry.example, entry.example_rank = example, example_rank

    def add_line(self, key: Hashable, template: str, ts_ns: int, level: str, body: str) -> None:
        """Counts one line of the window; the newest line of a template is its example."""
        self.add(
            key, template, step=step_index(self.query, ts_ns, self.steps), level=level, example=body, example_rank=ts_ns
        )

    def top(self) -> list[tuple[Hashable, _Entry]]:
        """The most frequent templates first (then by template text), at most the query's limit."""
        ranked = sorted(self.entries.items(), key=lambda item: (-item[1].count, item[1].template))
        return ranked[: max(0, self.query.limit)]

    def result(self, *, total_lines: int, sampled_lines: int, sampled: bool, took_ms: int = 0) -> PatternsResult:
        patterns = [
            Pattern(
                template=entry.template,
                count=entry.count,
                sparkline=entry.sparkline,
                example=entry.example,
                levels=ordered_levels(entry.levels),
                new=key not in self.previous,
            )
            for key, entry in self.top()
        ]
        return PatternsResult(
            patterns=patterns,
            total_lines=total_lines,
            sampled_lines=sampled_lines,
            sampled=sampled,
            took_ms=took_ms,
        )
