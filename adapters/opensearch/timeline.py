"""Pages of time-ordered documents (logs, Kubernetes events) in (timestamp, `_id`) order, exactly, while
OpenSearch sorts on the timestamp alone.

Exact paging needs a unique order, and the only unique key every document has, whoever wrote it, is `_id`. But
`_id` has no doc values: sorting on it loads fielddata (deprecated, and a quarter of the search's cost on a
component's logs). Documents rarely share a timestamp (ours are nanoseconds), so OpenSearch is asked to sort by
time alone and the tie-breaking happens here:

- documents that share a timestamp inside a page are put in `_id` order here (OpenSearch compares `_id`s as
  UTF-8 bytes, which orders them as Python orders `str`);
- a page that ends inside a group of documents sharing a timestamp may hold the wrong ones of that group, so
  the group is asked again on its own (one instant: a tiny search, sorted on (timestamp, `_id`));
- the page after a cursor (timestamp, `_id`) is two searches in one `_msearch`: the rest of the cursor's
  instant, by `_id`, and everything after that instant, by time alone.

The lines, their order, the totals and the cursors are exactly those of a (timestamp, `_id`) sort; a test pins
that on a table of queries and on documents that share timestamps.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from adapters.opensearch import fields, queries
from domain.model import SortOrder

Hit = dict[str, Any]
Body = dict[str, Any]
#: Runs searches (one `_search`, or several in one `_msearch`) and returns their responses in order.
Search = Callable[[Sequence[Body]], Awaitable[list[dict[str, Any]]]]


@dataclass(frozen=True)
class Timeline:
    """What to page through: the query's clauses, the order and, after a cursor, where the last page ended."""

    filters: list[queries.Clause]
    must_not: list[queries.Clause]
    order: SortOrder
    limit: int
    after: tuple[int, str] | None = None  # (timestamp ns, `_id`) of the last hit already shown


@dataclass(frozen=True)
class TimelinePage:
    hits: list[Hit]  # at most `limit`, each with `_id`, `_source` and `sort` (the timestamp first)
    more: bool  # another page follows
    total: int  # matches of the whole query, capped by track_total_hits
    took_ms: int


def position(hit: Hit) -> tuple[int, str]:
    """A hit's place in the order: its timestamp (ns, the first sort value) and its `_id`; also the cursor."""
    return hit["sort"][0], hit["_id"]


def first_body(timeline: Timeline) -> Body:
    """The search of a first page (and of what follows a cursor's instant): sorted by time alone."""
    return queries.search_body(
        timeline.filters, timeline.must_not, queries.time_sort(fields.TIMESTAMP, timeline.order), timeline.limit + 1
    )


def _instant_body(timeline: Timeline, ts_ns: int, after_id: str | None) -> Body:
    """The documents of one instant in exact order, optionally only those after an `_id`."""
    body = queries.search_body(
        [*timeline.filters, queries.instant(fields.TIMESTAMP, ts_ns)],
        timeline.must_not,
        queries.time_sort(fields.TIMESTAMP, timeline.order, fields.DOC_ID),
        timeline.limit + 1,
    )
    body["track_total_hits"] = False
    if after_id is not None:
        body["search_after"] = [ts_ns, after_id]
    return body


async def read_page(search: Search, timeline: Timeline) -> TimelinePage:
    size = timeline.limit + 1
    following_body = first_body(timeline)
    bodies = [following_body]
    if timeline.after:
        ts_ns, after_id = timeline.after
        following_body["search_after"] = [ts_ns]  # strictly after the cursor's instant
        bodies.append(_instant_body(timeline, ts_ns, after_id))
    responses = await search(bodies)
    following = _hits(responses[0])
    rest_of_instant = _hits(responses[1]) if timeline.after else []
    took = sum(int(response.get("took", 0)) for response in responses)

    if len(following) == size and len(rest_of_instant) + _last_instant_start(following) < timeline.limit:
        # The page ends inside an instant whose documents OpenSearch picked in no particular order.
        start = _last_instant_start(following)
        (instant,) = await search([_instant_body(timeline, position(following[-1])[0], None)])
        following[start:] = _hits(instant)
        took += int(instant.get("took", 0))
    following.sort(key=position, reverse=timeline.order == "desc")

    hits = (rest_of_instant + following)[:size]
    total = responses[0]["hits"]["total"]["value"]
    return TimelinePage(hits[: timeline.limit], len(hits) > timeline.limit, total, took)


def _hits(response: dict[str, Any]) -> list[Hit]:
    hits: list[Hit] = response.get("hits", {}).get("hits", [])  # filter_path drops what is empty
    return hits


def _last_instant_start(hits: list[Hit]) -> int:
    """Where the run of hits sharing the last hit's timestamp begins (hits sorted by time)."""
    last = hits[-1]["sort"][0]
    start = len(hits) - 1
    while start > 0 and hits[start - 1]["sort"][0] == last:
        start -= 1
    return start
