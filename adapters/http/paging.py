"""Cursor paging over an adapter contract that has none.

Our adapter server pages itself (the `cursor` / `nextCursor` extension, adapters/http_contract/wire.py): its cursors pass
through untouched. A foreign adapter answers `limit` records and a `total`, nothing more; for it the cursor is
emulated here, marked `e.` so the two never mix:

- a cursor holds the last page's last timestamp L, how many records at exactly L were already returned (k), the
  first page's total and how many records were returned so far;
- the next page asks for the same query with its range cut at L (`[start, L]` descending, `[L, end]` ascending)
  and `limit + k` records, and drops the first k records at L.

What it costs, and where it is weaker than a real cursor: every page after the first asks for k more records than
it returns (k is usually 0 or 1); records at one timestamp must come back in the same order every time (adapters
sort by time alone; a tie reordered between two pages can repeat or skip a record at that timestamp); more than
MAX_LIMIT records at one timestamp end the walk there; and each page's `total` is the first page's (a cut range
would count fewer).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from adapters.cursor import decode_cursor, encode_cursor, fingerprint
from domain.model import TOTAL_CAP, Page, SortOrder, TimeRange

log = logging.getLogger(__name__)

T = TypeVar("T")
#: The contract's largest `limit`.
MAX_LIMIT = 1000
EMULATED = "e."
_SHAPE = (int, int, int, int)

Fetch = Callable[[TimeRange, int, str], Awaitable[Page[T]]]


async def page_through(
    key: tuple[object, ...],
    range_: TimeRange,
    sort: SortOrder,
    limit: int,
    cursor: str,
    fetch: Fetch[T],
    time_of: Callable[[T], int],
) -> Page[T]:
    """One page of the query `key` identifies (its scope and filters); `fetch(range, limit, cursor)` asks the
    adapter. InvalidCursor for an emulated cursor of another query or one we never issued."""
    query_print = fingerprint("http-emulated", key, range_, sort)
    if not cursor.startswith(EMULATED):
        page = await fetch(range_, limit, cursor)
        if page.next_cursor or cursor:
            return page  # the adapter pages itself
        return _with_cursor(query_print, page.items, page.total, page.took_ms, limit, time_of, None, 0, 0)
    last, skip, total, seen = decode_cursor(cursor[len(EMULATED) :], query_print, _SHAPE)
    cut = TimeRange(range_.start_ns, last) if sort == "desc" else TimeRange(last, range_.end_ns)
    page = await fetch(cut, min(limit + skip, MAX_LIMIT), "")
    items, dropped = [], 0
    for record in page.items:
        if dropped < skip and time_of(record) == last:
            dropped += 1
            continue
        items.append(record)
    return _with_cursor(query_print, items[:limit], total, page.took_ms, limit, time_of, last, skip, seen)


def _with_cursor(
    query_print: str,
    items: list[T],
    total: int,
    took_ms: int,
    limit: int,
    time_of: Callable[[T], int],
    previous_last: int | None,
    previous_skip: int,
    seen: int,
) -> Page[T]:
    seen += len(items)
    if len(items) < limit or not items or (total < TOTAL_CAP and seen >= total):
        return Page(items, total, took_ms)
    last = time_of(items[-1])
    skip = sum(1 for record in items if time_of(record) == last)
    if last == previous_last:
        skip += previous_skip
    if skip >= MAX_LIMIT:
        log.warning("more than %d records at one timestamp: emulated paging stops there", MAX_LIMIT)
        return Page(items, total, took_ms)
    return Page(items, total, took_ms, EMULATED + encode_cursor(query_print, [last, skip, total, seen]))
