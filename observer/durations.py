"""Durations as the API writes them back: Go's duration syntax, compact (`90s` -> `1m30s`, `1h`, `250ms`).

A patterns step the observer chose itself is answered in the same syntax the caller would have sent
(domain.timeutil.parse_go_duration reads it back to the same nanoseconds). The audit timeline's interval has its
own notation, upstream's `<count><unit>` (domain.audit.format_interval)."""

from __future__ import annotations

_UNITS = (("h", 3600 * 10**9), ("m", 60 * 10**9), ("s", 10**9), ("ms", 10**6), ("us", 10**3), ("ns", 1))


def go_duration(ns: int) -> str:
    """`ns` (> 0) as the shortest Go duration of whole units: every non-zero unit from hours down."""
    if ns <= 0:
        return "0s"
    parts = []
    for unit, size in _UNITS:
        count, ns = divmod(ns, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
