"""RFC3339 with nanoseconds, both ways.

Python's datetime stops at microseconds, and OpenChoreo clients send nanosecond fractions
(`2026-01-01T10:00:01.123456789Z`), so times are parsed straight into integer nanoseconds and never lose a digit.
"""

from __future__ import annotations

import calendar
import re
import time
from functools import lru_cache

from domain.echo import shown

_RFC3339 = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})\Z")
_NS = 1_000_000_000


#: The instants int64 nanoseconds since the epoch can hold, which every backend and the contract's `durationNs` use.
MIN_NS, MAX_NS = -(2**63), 2**63 - 1
SUPPORTED_RANGE = "1677-09-21T00:12:43.145224192Z to 2262-04-11T23:47:16.854775807Z"


def parse_rfc3339(text: str) -> int:
    """Nanoseconds since the epoch. Raises ValueError with a reason a person can act on, also for a time the
    grammar allows but int64 nanoseconds cannot hold (years before 1677 or after 2262)."""
    # Fast path for the form every backend returns (UTC, `Z`): documents of a page share their seconds.
    if len(text) >= 20 and text[-1] == "Z" and text[10] == "T":
        fraction = text[19:-1]
        if not fraction or (fraction[0] == "." and 1 < len(fraction) <= 10 and fraction[1:].isdigit()):
            return _in_range(text, _utc_second(text[:19]) * _NS + (int(fraction[1:].ljust(9, "0")) if fraction else 0))
    return _in_range(text, _parse(text))


def _in_range(text: str, ts_ns: int) -> int:
    if not MIN_NS <= ts_ns <= MAX_NS:
        raise ValueError(f'parsing time "{shown(text)}": outside the supported range {SUPPORTED_RANGE}')
    return ts_ns


@lru_cache(maxsize=4096)
def _utc_second(text: str) -> int:
    return _parse(text + "Z") // _NS


def _parse(text: str) -> int:
    match = _RFC3339.match(text)
    if match is None:
        raise ValueError(f'parsing time "{shown(text)}": expected a time like 2024-01-01T00:00:00Z')
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction, offset = match.group(7) or "", match.group(8)
    if not 1677 <= year <= 2262:
        # Checked before the calendar, which knows no year 0; the exact bounds are checked on the result.
        raise ValueError(f'parsing time "{shown(text)}": outside the supported range {SUPPORTED_RANGE}')
    if not (1 <= month <= 12) or not (1 <= day <= calendar.monthrange(year, month)[1]):
        raise ValueError(f'parsing time "{shown(text)}": day out of range')
    if hour > 23 or minute > 59 or second > 59:
        raise ValueError(f'parsing time "{shown(text)}": hour, minute or second out of range')
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    if offset != "Z":
        sign = 1 if offset[0] == "+" else -1
        off_h, off_m = int(offset[1:3]), int(offset[4:6])
        if off_h > 23 or off_m > 59:
            raise ValueError(f'parsing time "{shown(text)}": time zone offset out of range')
        seconds -= sign * (off_h * 3600 + off_m * 60)
    return seconds * _NS + int(fraction.ljust(9, "0") if fraction else 0)


def format_rfc3339(ts_ns: int) -> str:
    """UTC, with the fraction kept to the nanosecond and trailing zeros trimmed (Go's RFC3339Nano)."""
    seconds, nanos = divmod(ts_ns, _NS)
    base = _second(seconds)
    if nanos:
        return f"{base}.{nanos:09d}".rstrip("0") + "Z"
    return base + "Z"


def format_rfc3339_exact(ts_ns: int) -> str:
    """UTC with all nine fractional digits: a range bound for servers that read a time without a fraction as
    the whole second (OpenSearch rounds an `lte` bound up to .999999999)."""
    seconds, nanos = divmod(ts_ns, _NS)
    return f"{_second(seconds)}.{nanos:09d}Z"


def _second(seconds: int) -> str:
    """`YYYY-MM-DDTHH:MM:SS`: the date once per day (cached), the time of day by arithmetic, because a
    day of metrics at a 1 m step is 1,440 different seconds."""
    day, in_day = divmod(seconds, 86_400)
    hours, rest = divmod(in_day, 3600)
    return f"{_date(day)}T{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"


@lru_cache(maxsize=1024)
def _date(day: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(day * 86_400))


def now_ns() -> int:
    return time.time_ns()


def elapsed_ms(started: float) -> int:
    """Whole milliseconds since `started`, a time.perf_counter() reading."""
    return int((time.perf_counter() - started) * 1000)


_DURATION_PART = re.compile(r"(\d*)(?:\.(\d*))?(ns|us|µs|μs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 10**3, "µs": 10**3, "μs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
#: More digits than this cannot be a duration int64 nanoseconds hold (2**63 has 19), whatever the unit.
_MAX_DIGITS = 20


def parse_go_duration(text: str) -> int:
    """A Go duration string (`1m`, `1h30m`, `0.5s`) in nanoseconds; ValueError otherwise. Days are not a unit.

    Computed in integers, as Go does, so `0.1s` is exactly 100ms, and refused like Go's "invalid duration"
    when the total does not fit in int64 nanoseconds (a float would overflow or silently lose digits)."""
    body = text[1:] if text[:1] in "+-" else text
    if body == "0":
        return 0
    if not body:
        raise ValueError(f'time: invalid duration "{shown(text)}"')
    position, total = 0, 0
    while position < len(body):
        match = _DURATION_PART.match(body, position)
        whole, fraction, unit = match.groups() if match else ("", "", "")
        if match is None or not (whole or fraction) or len(whole) > _MAX_DIGITS:
            raise ValueError(f'time: invalid duration "{shown(text)}"')
        fraction = (fraction or "")[:_MAX_DIGITS]  # digits beyond a nanosecond of an hour change nothing
        scale = _UNIT_NS[unit]
        total += int(whole or "0") * scale + int(fraction or "0") * scale // 10 ** len(fraction)
        if total > MAX_NS + (text[:1] == "-"):
            raise ValueError(f'time: invalid duration "{shown(text)}": larger than int64 nanoseconds can hold')
        position = match.end()
    return -total if text.startswith("-") else total
