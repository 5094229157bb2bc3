"""Time bounds as Datadog reads them, and opaque cursors that page by position, not by offset.

A cursor names the last record a page returned, as (timestamp, sequence) in the page's sort order, the time
bounds the first page resolved (`now-15m` must not slide between pages), and a digest of the query text and
sort it belongs to: the next page starts strictly after that record, so records arriving meanwhile never shift
a page (no duplicates, nothing skipped), and a cursor replayed with another query is refused.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

from devservers.datadog.models import BadRequest

_UNITS_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_MATH = re.compile(r"now(?:([+-])(\d+)([smhdw]))?")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def parse_time(value: str | int | None, default: str) -> int:
    """Epoch milliseconds from `now`, `now-15m` date math, epoch ms digits, or ISO-8601."""
    if value is None:
        value = default
    if isinstance(value, int):
        return value
    text = value.strip()
    if text.isdigit():
        return int(text)
    match = _MATH.fullmatch(text)
    if match:
        sign, amount, unit = match.groups()
        offset = int(amount) * _UNITS_MS[unit] if amount else 0
        return now_ms() + (offset if sign == "+" else -offset)
    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        raise BadRequest(f"Invalid time {text!r}") from None


class Positioned(Protocol):
    seq: int

    @property
    def timestamp_ms(self) -> int: ...


R = TypeVar("R", bound=Positioned)


def digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Position:
    """Where a cursor points: after (timestamp, sequence), within the time bounds of its first page."""

    timestamp_ms: int
    seq: int
    start_ms: int
    end_ms: int


def encode_cursor(record: Positioned, query_digest: str, start_ms: int, end_ms: int) -> str:
    fields = {"t": record.timestamp_ms, "s": record.seq, "f": start_ms, "u": end_ms, "q": query_digest}
    return base64.urlsafe_b64encode(json.dumps(fields).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, query_digest: str) -> Position:
    """The position a cursor names; BadRequest for a forged one or one issued for another query."""
    try:
        fields = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        position = Position(int(fields["t"]), int(fields["s"]), int(fields["f"]), int(fields["u"]))
        same_query = fields["q"] == query_digest
    except (ValueError, KeyError, TypeError):
        raise BadRequest("Invalid cursor") from None
    if not same_query:
        raise BadRequest("The cursor does not belong to this query")
    return position


def page(
    records: Sequence[R],
    *,
    descending: bool,
    limit: int,
    after: Position | None,
    query_digest: str,
    bounds: tuple[int, int],
) -> tuple[list[R], str | None]:
    """One page of `records` (already filtered, within `bounds`) in order, and the next page's cursor (None at
    the end). A page after the first starts strictly after the record its cursor names."""
    ordered = sorted(records, key=lambda r: (r.timestamp_ms, r.seq), reverse=descending)
    if after is not None:
        mark = (after.timestamp_ms, after.seq)
        if descending:
            ordered = [r for r in ordered if (r.timestamp_ms, r.seq) < mark]
        else:
            ordered = [r for r in ordered if (r.timestamp_ms, r.seq) > mark]
    chosen = ordered[:limit]
    more = len(ordered) > limit
    return chosen, (encode_cursor(chosen[-1], query_digest, *bounds) if more and chosen else None)
