"""Log patterns: "what kinds of lines is this component printing, and which kind is new?"

A pattern is a line's template: its variable parts (numbers, ids, hosts, quoted strings...) masked, lines of
one kind clustered together (domain/drain.py). A patterns answer lists the templates of a scope's lines in a
range, each with its count, counts per step (a sparkline), an example line and the levels seen, and says which
templates are new: seen in this window and not in the one before it of the same length.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from domain.model import Scope, TimeRange

#: The most patterns an answer lists (`limit`), and its default; the most sparkline points (range / step).
MAX_PATTERNS, DEFAULT_PATTERNS = 500, 50
MAX_PATTERN_STEPS = 500


@dataclass(frozen=True, slots=True)
class PatternsQuery:
    scope: Scope
    range: TimeRange
    step_ns: int  # the sparkline's step: range / step <= MAX_PATTERN_STEPS
    levels: tuple[str, ...] = ()
    phrase: str = ""
    limit: int = DEFAULT_PATTERNS  # the most frequent first

    @property
    def previous(self) -> TimeRange:
        """The window a template must be absent from to be new: the same length, just before."""
        length = self.range.end_ns - self.range.start_ns
        return TimeRange(self.range.start_ns - length, self.range.start_ns)


@dataclass(slots=True)
class Pattern:
    template: str  # masked parts shown as <NUM>, <HEX>, <UUID>, <IP>, <HOST>, <STR>, <*> ...
    count: int
    sparkline: list[int]  # counts per step from range.start
    example: str
    levels: list[str]
    new: bool  # absent from the previous window


@dataclass(slots=True)
class PatternsResult:
    """`sampled` is true when the patterns were computed from `sampled_lines` of the `total_lines` lines that
    matched (a backend that reads a bounded sample): counts are then the sample's, and say so."""

    patterns: list[Pattern] = field(default_factory=list)
    total_lines: int = 0
    sampled_lines: int = 0
    sampled: bool = False
    took_ms: int = 0
