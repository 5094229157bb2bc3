"""Durations as the API writes them back: Go's duration syntax, compact (`90s` -> `1m30s`, `1h`, `250ms`).

A timeline interval or a patterns step the observer chose itself is answered in the same syntax the caller
would have sent (domain.timeutil.parse_go_duration reads it back to the same nanoseconds)."""

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


#: Bucket sizes a chosen default comes from: the smallest that gives few enough buckets.
NICE_STEPS_NS = tuple(
    seconds * 10**9
    for seconds in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
)


def nice_step(span_ns: int, most: int) -> int:
    """The smallest of NICE_STEPS_NS dividing `span_ns` into at most `most` steps (whole seconds above a day)."""
    for step in NICE_STEPS_NS:
        if -(-span_ns // step) <= most:
            return step
    return -(-span_ns // most // 10**9) * 10**9
