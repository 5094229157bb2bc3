"""Logs Aggregate and Spans Aggregate: counts and distinct counts of what a search with the same filter would
find, in total, per facet value (`group_by`) and per time bucket (`timeseries`).

`POST /api/v2/logs/analytics/aggregate` (https://docs.datadoghq.com/api/latest/logs/#aggregate-events) takes a
filter (query, from, to), `compute[]` and `group_by[]`; the fake computes, over exactly the records `_search` in
app.py would match (the same `compile_query`, the same `from <= timestamp < to`), so a total and the pages it
counts never disagree:

- computes: `count`, and `cardinality` of a facet (`metric`; exact here, approximate in Datadog), each of
  type `total` (one number) or `timeseries` (`interval` like `5m`, `1h` or milliseconds: points at
  epoch-aligned bucket starts across the window, zero-filled, `{"time", "value"}` each);
- `group_by[]`: a tag or reserved attribute (`kube_namespace`, `status`) or an attribute (`@actor.id`); a
  record with several values of the facet (an array attribute, a repeated tag) counts under each; records
  without it are left out unless `missing` names a value for them; `limit` (default 10, the product of the
  limits at most 10,000, Datadog's documented bound) and `sort` (`alphabetical`, or `measure` on a compute;
  default: the count, descending), ties by value;
- spans aggregate stays one `count` total without groups (all the backend asks of it).

Anything else (other aggregations, histograms) is refused with 400 rather than answered wrongly: the fake does
not implement it. The answers keep Datadog's two documented shapes: logs put buckets under
`data.buckets[].{by, computes}`, spans answer `data[]` of `{"type": "bucket", "attributes": {"by": {},
"compute": {"c0": n}}}`; with nothing matched and no groups, both still answer one bucket whose count is 0.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from devservers.datadog.models import BadRequest
from devservers.datadog.paging import parse_time
from devservers.datadog.query import QueryError, compile_query

#: Datadog's bound on the buckets of one aggregation (the product of the group-by limits).
MAX_BUCKETS = 10_000
DEFAULT_GROUP_LIMIT = 10
#: The most points one timeseries compute answers per group (the fake's bound, to stay finite).
MAX_POINTS = 10_000
_INTERVAL = re.compile(r"(\d+)(ms|s|m|h|d|w)?")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000, None: 1}


class Record(Protocol):
    timestamp_ms: int

    def field(self, key: str) -> list[str]: ...

    def attribute(self, path: str) -> list[str]: ...

    def text(self) -> str: ...


def _matching(source: Iterable[Any], body: dict[str, Any], lock: Any) -> tuple[list[Any], int, int]:
    spec = body.get("filter") or {}
    try:
        matches: Callable[[Any], bool] = compile_query(spec.get("query") or "*")
    except QueryError as error:
        raise BadRequest(f"Invalid query: {error}") from None
    start, end = parse_time(spec.get("from"), "now-15m"), parse_time(spec.get("to"), "now")
    with lock:
        found = [record for record in source if start <= record.timestamp_ms < end and matches(record)]
    return found, start, end


def count(source: Iterable[Any], body: dict[str, Any], lock: Any) -> int:
    """How many of `source` the aggregate body's filter matches: one count of type `total`, no groups (what the
    spans aggregate serves)."""
    computes = body.get("compute") or [{"aggregation": "count", "type": "total"}]
    if body.get("group_by") or len(computes) != 1:
        raise BadRequest("The fake aggregates spans into one count without groups only")
    compute = computes[0]
    if compute.get("aggregation") != "count" or compute.get("type", "total") != "total" or compute.get("metric"):
        raise BadRequest("The fake aggregates spans into one count without groups only")
    return len(_matching(source, body, lock)[0])


def facet_values(record: Record, facet: str) -> list[str]:
    """The values a record has for a facet: `@path` an attribute, anything else a tag or reserved field."""
    values = record.attribute(facet[1:]) if facet.startswith("@") else record.field(facet)
    return list(dict.fromkeys(value for value in values if value != ""))


def interval_ms(text: Any) -> int:
    match = _INTERVAL.fullmatch(str(text or "").strip())
    if match is None or int(match.group(1)) <= 0:
        raise BadRequest(f"Invalid interval {text!r}")
    return int(match.group(1)) * _UNIT_MS[match.group(2)]


class _Compute:
    def __init__(self, spec: dict[str, Any], start: int, end: int) -> None:
        self.aggregation = spec.get("aggregation")
        if self.aggregation not in ("count", "cardinality"):
            raise BadRequest(f"The fake computes count and cardinality only, not {self.aggregation!r}")
        self.metric = str(spec.get("metric") or "")
        if self.aggregation == "cardinality" and not self.metric:
            raise BadRequest("cardinality needs a metric (the facet whose distinct values are counted)")
        self.kind = spec.get("type", "total")
        if self.kind not in ("total", "timeseries"):
            raise BadRequest(f"Unknown compute type {self.kind!r}")
        self.step = interval_ms(spec.get("interval") or "1m") if self.kind == "timeseries" else 0
        if self.step and (end - start) // self.step > MAX_POINTS:
            raise BadRequest(f"More than {MAX_POINTS} points: use a larger interval")
        self.start, self.end = start, end

    def value(self, records: Sequence[Record]) -> float:
        if self.aggregation == "count":
            return len(records)
        return len({value for record in records for value in facet_values(record, self.metric)})

    def result(self, records: Sequence[Record]) -> Any:
        if self.kind == "total":
            return self.value(records)
        first = self.start - self.start % self.step
        by_bucket: dict[int, list[Record]] = {}
        for record in records:
            by_bucket.setdefault(record.timestamp_ms - record.timestamp_ms % self.step, []).append(record)
        return [
            {
                "time": datetime.fromtimestamp(at / 1000, UTC).isoformat(timespec="milliseconds"),
                "value": self.value(by_bucket.get(at, [])),
            }
            for at in range(first, self.end, self.step)
        ]


def _group_limit(group: dict[str, Any]) -> int:
    limit = group.get("limit", DEFAULT_GROUP_LIMIT)
    if not isinstance(limit, int) or limit < 1:
        raise BadRequest("group_by limit must be a positive integer")
    return limit


def _groups(records: list[Record], group_by: list[dict[str, Any]], computes: list[_Compute]) -> list[Any]:
    """Buckets of (by, records), each level's values sorted and cut to its limit."""
    if not group_by:
        return [({}, records)]
    group, rest = group_by[0], group_by[1:]
    if group.get("histogram"):
        raise BadRequest("The fake does not compute histograms")
    facet = str(group.get("facet") or "")
    if not facet:
        raise BadRequest("group_by needs a facet")
    missing = group.get("missing")
    members: dict[str, list[Record]] = {}
    for record in records:
        values = facet_values(record, facet) or ([str(missing)] if missing is not None else [])
        for value in values:
            members.setdefault(value, []).append(record)
    sort = group.get("sort") or {"type": "measure", "aggregation": "count", "order": "desc"}
    descending = sort.get("order", "desc") == "desc"
    if sort.get("type") == "alphabetical":
        ordered = sorted(members, reverse=descending)
    else:
        measure = _measure(sort, computes)
        keyed = {value: measure(found) for value, found in members.items()}
        ordered = sorted(members, key=lambda value: (-keyed[value] if descending else keyed[value], value))
    buckets = []
    for value in ordered[: _group_limit(group)]:
        for by, found in _groups(members[value], rest, computes):
            buckets.append(({facet: value, **by}, found))
    return buckets


def _measure(sort: dict[str, Any], computes: list[_Compute]) -> Callable[[list[Record]], float]:
    aggregation, metric = sort.get("aggregation", "count"), str(sort.get("metric") or "")
    for compute in computes:
        if compute.aggregation == aggregation and compute.metric == metric:
            return compute.value
    if aggregation == "count":
        return len
    raise BadRequest("a group_by sort must name one of the computes")


def logs_aggregate(source: Iterable[Any], body: dict[str, Any], lock: Any, began: float) -> dict[str, Any]:
    """A `LogsAggregateResponse` for the body's computes and groups."""
    records, start, end = _matching(source, body, lock)
    specs = body.get("compute") or [{"aggregation": "count", "type": "total"}]
    computes = [_Compute(spec, start, end) for spec in specs]
    group_by = list(body.get("group_by") or [])
    product = 1
    for group in group_by:
        product *= _group_limit(group)
    if product > MAX_BUCKETS:
        raise BadRequest(f"The product of the group_by limits must not exceed {MAX_BUCKETS}")
    buckets = [
        {"by": by, "computes": {f"c{index}": compute.result(found) for index, compute in enumerate(computes)}}
        for by, found in _groups(records, group_by, computes)
    ]
    return {"data": {"buckets": buckets}, "meta": _meta(began)}


def _meta(began: float) -> dict[str, Any]:
    return {"elapsed": int((time.monotonic() - began) * 1000), "request_id": uuid.uuid4().hex, "status": "done"}


def spans_answer(total: int, began: float) -> dict[str, Any]:
    """A `SpansAggregateResponse` holding one total."""
    bucket = {"id": uuid.uuid4().hex, "type": "bucket", "attributes": {"by": {}, "compute": {"c0": total}}}
    return {"data": [bucket], "meta": _meta(began)}
