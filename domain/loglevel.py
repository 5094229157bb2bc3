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
_BARE_WORDS = [
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


def normalize_level(word: str) -> str:
    """Maps any common level spelling to DEBUG|INFO|WARN|ERROR|FATAL|SEVERE; unknown words are INFO."""
    return _NORMALIZED.get(word.upper(), "INFO")


def detect_level(line: str) -> str:
    """The level of a raw log line; INFO when the line does not say."""
    declared = _DECLARED.search(line)
    if declared:
        return normalize_level(declared.group(1))
    klog = _KLOG.match(line)
    if klog:
        return _KLOG_LEVELS[klog.group(1)]
    upper = line.upper()
    for pattern, level in _BARE_WORDS:
        if pattern.search(upper):
            return level
    return "INFO"


def severity_number_level(number: int) -> str:
    """OTLP SeverityNumber (1-24) to a level: 1-4 TRACE, 5-8 DEBUG, 9-12 INFO, 13-16 WARN, 17-20 ERROR, 21-24 FATAL."""
    if number <= 0:
        return ""
    return ("DEBUG", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")[min((number - 1) // 4, 5)]


def stored_levels(filter_levels: tuple[str, ...]) -> tuple[str, ...]:
    """The stored level values a `logLevels` filter selects."""
    return tuple(stored for level in filter_levels for stored in FILTER_MATCHES[level])
