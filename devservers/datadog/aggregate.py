"""Logs Aggregate and Spans Aggregate: the count of what a search with the same filter would find.

`POST /api/v2/logs/analytics/aggregate` and `POST /api/v2/spans/analytics/aggregate` take a filter (query,
from, to) and computes; the fake answers the one compute the backend asks for, a `count` of type `total` with no
`group_by`, over exactly the records `_search` in app.py would match (the same `compile_query`, the same
`from <= timestamp < to`), so a total and the pages it counts never disagree. Anything else (other
aggregations, groups, timeseries) is refused with 400 rather than answered wrongly: the fake does not implement it.

The answers keep Datadog's two documented shapes: logs put buckets under `data.buckets[].computes`, spans
answer `data[]` of `{"type": "bucket", "attributes": {"by": {}, "compute": {"c0": n}}}`; with nothing
matched, both still answer one bucket whose count is 0, as a total with no groups does.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from devservers.datadog.models import BadRequest
from devservers.datadog.paging import parse_time
from devservers.datadog.query import QueryError, compile_query


class Timed(Protocol):
    timestamp_ms: int


def count(source: Iterable[Any], body: dict[str, Any], lock: Any) -> int:
    """How many of `source` the aggregate body's filter matches (its computes checked first)."""
    computes = body.get("compute") or [{"aggregation": "count", "type": "total"}]
    if body.get("group_by") or len(computes) != 1:
        raise BadRequest("The fake aggregates one count without groups only")
    compute = computes[0]
    if compute.get("aggregation") != "count" or compute.get("type", "total") != "total" or compute.get("metric"):
        raise BadRequest("The fake aggregates one count without groups only")
    spec = body.get("filter") or {}
    try:
        matches: Callable[[Any], bool] = compile_query(spec.get("query") or "*")
    except QueryError as error:
        raise BadRequest(f"Invalid query: {error}") from None
    start, end = parse_time(spec.get("from"), "now-15m"), parse_time(spec.get("to"), "now")
    with lock:
        return sum(1 for record in source if start <= record.timestamp_ms < end and matches(record))


def _meta(began: float) -> dict[str, Any]:
    return {"elapsed": int((time.monotonic() - began) * 1000), "request_id": uuid.uuid4().hex, "status": "done"}


def logs_answer(total: int, began: float) -> dict[str, Any]:
    """A `LogsAggregateResponse` holding one total."""
    return {"data": {"buckets": [{"by": {}, "computes": {"c0": total}}]}, "meta": _meta(began)}


def spans_answer(total: int, began: float) -> dict[str, Any]:
    """A `SpansAggregateResponse` holding one total."""
    bucket = {"id": uuid.uuid4().hex, "type": "bucket", "attributes": {"by": {}, "compute": {"c0": total}}}
    return {"data": [bucket], "meta": _meta(began)}
