"""Log levels: detecting one in a raw line, and what a level filter matches.

Detection follows OpenChoreo's logs adapter (a declared `level=`/`"level":` field, then a klog header, then a
bare level word), so a line gets the same level whichever collector or backend saw it. The difference is where
it runs: we detect once at ingest and store the result, instead of on every read.
"""

from __future__ import annotations

import re

#: The levels the API accepts in `logLevels`, in the order the contract lists them.
API_LEVELS = ("DEBUG", "INFO", "WARN", "ERROR")

#: A filter level matches these stored levels; FATAL and SEVERE are errors too.
FILTER_MATCHES: dict[str, tuple[str, ...]] = {
    "DEBUG": ("DEBUG",),
    "INFO": ("INFO",),
    "WARN": ("WARN",),
    "ERROR": ("ERROR", "FATAL", "SEVERE"),
}

_DECLARED = re.compile(
    r'(?:^|[\s,{])"?(?:lvl|level|severity_?text|severity|levelname|@l)"?\s*[=:]\s*"?([a-z]+)', re.IGNORECASE
)


def _may_declare(line: str) -> bool:
    """False only when `_DECLARED` cannot match: every key it knows contains `lvl`, `level`, `severity` or `@l`
    in some case, and lines without any (most) skip the expression. Non-ASCII lines always go to it: its
    IGNORECASE also matches letters such as U+017F for `s`, which `lower()` does not turn into them. Most lines
    that declare a level spell the key in lower case: found as it is, the line needs no lower-cased copy.
    (Spelt out rather than a loop over the keys: this runs on every line, and a generator costs more.)"""
    if "lvl" in line or "level" in line or "severity" in line or "@l" in line or not line.isascii():
        return True
    lower = line.lower()
    return "lvl" in lower or "level" in lower or "severity" in lower or "@l" in lower


_KLOG = re.compile(r"^([IWEF])\d{4} \d{2}:\d{2}:\d{2}")
_KLOG_LEVELS = {"I": "INFO", "W": "WARN", "E": "ERROR", "F": "FATAL"}
_NORMALIZED = {
    **dict.fromkeys(("ERROR", "ERR"), "ERROR"),
    **dict.fromkeys(("FATAL", "CRITICAL", "CRIT", "PANIC", "DPANIC", "EMERG", "EMERGENCY", "ALERT"), "FATAL"),
    "SEVERE": "SEVERE",
    **dict.fromkeys(("WARN", "WARNING"), "WARN"),
    **dict.fromkeys(("INFO", "INFORMATION", "NOTICE", "CONFIG"), "INFO"),
    **dict.fromkeys(("DEBUG", "TRACE", "VERBOSE", "FINE", "FINER", "FINEST", "SILLY"), "DEBUG"),
}
# A bare level word, not part of a longer word, and not a key (`error=timeout` names a field, it is no level).
# One scan finds them all (matches cannot overlap: each needs a non-word character on both sides); the first
# in this order wins, wherever it stands in the line.
_BARE_ORDER = ("ERROR", "FATAL", "SEVERE", "WARNING", "WARN", "INFO", "DEBUG")
_BARE_LEVEL = {"ERROR": "ERROR", "FATAL": "FATAL", "SEVERE": "SEVERE", "WARNING": "WARN", "WARN": "WARN"}
_BARE_WORD = re.compile(rf"(?<![A-Z0-9_])({'|'.join(_BARE_ORDER)})(?![A-Z0-9_])(?!\s*=)")


def normalize_level(word: str) -> str:
    """Maps any common level spelling to DEBUG|INFO|WARN|ERROR|FATAL|SEVERE; unknown words are INFO."""
    return _NORMALIZED.get(word.upper(), "INFO")


def detect_level(line: str) -> str:
    """The level of a raw log line; INFO when the line does not say."""
    declared = _may_declare(line) and _DECLARED.search(line)
    if declared:
        return normalize_level(declared.group(1))
    klog = _KLOG.match(line)
    if klog:
        return _KLOG_LEVELS[klog.group(1)]
    found = {match.group(1) for match in _BARE_WORD.finditer(line.upper())}
    for word in _BARE_ORDER:
        if word in found:
            return _BARE_LEVEL.get(word, word)
    return "INFO"


def severity_number_level(number: int) -> str:
    """OTLP SeverityNumber (1-24) to a level: 1-4 TRACE, 5-8 DEBUG, 9-12 INFO, 13-16 WARN, 17-20 ERROR, 21-24 FATAL."""
    if number <= 0:
        return ""
    return ("DEBUG", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")[min((number - 1) // 4, 5)]


def stored_levels(filter_levels: tuple[str, ...]) -> tuple[str, ...]:
    """The stored level values a `logLevels` filter selects."""
    return tuple(stored for level in filter_levels for stored in FILTER_MATCHES[level])
