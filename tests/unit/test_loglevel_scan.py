"""`detect_level` scans a line once (a prefilter for declared levels, one expression for bare words); it must
answer exactly what the plain definition answers: the declared-field expression on every line, then the klog
header, then each bare word tried in order with its own expression. The plain definition is kept here."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from domain.loglevel import _DECLARED, _KLOG, _KLOG_LEVELS, detect_level, normalize_level

_PLAIN_WORDS = [
    (re.compile(rf"(?<![A-Z0-9_]){word}(?![A-Z0-9_])(?!\s*=)"), level)
    for word, level in (
        ("ERROR", "ERROR"),
        ("FATAL", "FATAL"),
        ("SEVERE", "SEVERE"),
        ("WARNING", "WARN"),
        ("WARN", "WARN"),
        ("INFO", "INFO"),
        ("DEBUG", "DEBUG"),
    )
]


def plain_detect_level(line: str) -> str:
    declared = _DECLARED.search(line)
    if declared:
        return normalize_level(declared.group(1))
    klog = _KLOG.match(line)
    if klog:
        return _KLOG_LEVELS[klog.group(1)]
    upper = line.upper()
    for pattern, level in _PLAIN_WORDS:
        if pattern.search(upper):
            return level
    return "INFO"


PIECES = st.sampled_from(
    [
        *("level", "LEVEL", "Lvl", "severity", "\u017feverity", "Severity_Text", "levelname", "@l", "@L"),
        *("error", "ERROR", "Err", "warn", "WARNING", "info", "Info", "debug", "fatal", "crit", "severe", "trace"),
        *("=", ":", " ", '"', "{", ",", "_", "1", "x", "-", "\u0130", "E1204 12:00:00", "W0101 00:00:00"),
    ]
)


@given(st.lists(PIECES, max_size=10).map("".join))
def test_the_one_scan_answers_what_the_plain_definition_answers(line: str) -> None:
    assert detect_level(line) == plain_detect_level(line)


@given(st.text(max_size=60))
def test_any_text_gets_the_plain_definitions_level(line: str) -> None:
    assert detect_level(line) == plain_detect_level(line)
