"""Metrics: `POST /api/v2/series` points, and the v2 timeseries query over them (the subset a backend needs).

Query form: `<space_aggr>:<metric>{<filter>}[ by {<tag>,...}][.rollup(<method>[, <seconds>])][.as_count()|.as_rate()]`
with space_aggr in avg, sum, min, max; the filter `*` or tags joined by `,` or ` AND ` (`key:value`, `key:val*`,
`!key:value`). Each series (a metric and its exact tag set) is first rolled up per interval (the rollup method,
by default `sum` for counts and rates and `avg` for gauges, as Datadog does), then the series of each group are
combined per interval with the space aggregator. The answer is Datadog's columnar shape: `times` (ms, interval
starts), one `series` entry per group with its `group_tags`, and `values` aligned with both (null where a group
has no point).

Formulas: query names, numbers, `+ - * /` and parentheses (`a / b * 100`), evaluated per interval and per
group (groups pair by equal group tags; an ungrouped series pairs with every group; x/0 is null). Anything
else (functions such as `top()`) is a 400 from the fake rather than a wrong number.
"""

from __future__ import annotations

import fnmatch
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from devservers.datadog.models import BadRequest
from devservers.datadog.store import MetricPoint, Store, normalize_tag

COUNT, RATE = 1, 2
_QUERY = re.compile(
    r"\s*(?P<aggr>avg|sum|min|max):(?P<metric>[A-Za-z0-9_.]+)\{(?P<filter>[^}]*)\}"
    r"(?:\s+by\s+\{(?P<by>[^}]*)\})?"
    r"(?:\.rollup\(\s*(?P<rollup>avg|sum|min|max|count)\s*(?:,\s*(?P<seconds>\d+)\s*)?\))?"
    r"(?:\.as_(?:count|rate)\(\))?\s*"
)
_REDUCE: dict[str, Callable[[list[float]], float]] = {
    "avg": lambda v: sum(v) / len(v),
    "sum": sum,
    "min": min,
    "max": max,
    "count": lambda v: float(len(v)),
}


def ingest(store: Store, series: list[dict[str, Any]]) -> None:
    """Stores the points of a checked `MetricPayload` body, tags normalized as Datadog does. Datadog ignores
    points more than an hour old or ten minutes ahead; the fake keeps them, so tests may use fixed times."""
    points = [
        MetricPoint(
            metric=s["metric"],
            type=int(s.get("type") or 0),
            tags=tuple(normalize_tag(t) for t in s.get("tags") or ()),
            timestamp_s=int(p["timestamp"]),
            value=float(p["value"]),
        )
        for s in series
        for p in s["points"]
    ]
    with store.lock:
        store.points.extend(points)


@dataclass(frozen=True)
class MetricQuery:
    aggr: str
    metric: str
    filters: tuple[Callable[[tuple[str, ...]], bool], ...]
    by: tuple[str, ...]
    rollup: str | None
    rollup_seconds: int | None


def _tag_filter(term: str) -> Callable[[tuple[str, ...]], bool]:
    negate = term.startswith("!")
    pattern = term[1:] if negate else term
    if pattern.startswith("!"):
        raise BadRequest(f"Invalid tag filter {term!r}")
    if negate:
        return lambda tags: not any(fnmatch.fnmatchcase(t, pattern) for t in tags)
    return lambda tags: any(fnmatch.fnmatchcase(t, pattern) for t in tags)


def parse_query(text: str) -> MetricQuery:
    match = _QUERY.fullmatch(text)
    if match is None:
        raise BadRequest(f"Error parsing query: {text!r}")
    raw_filter = match["filter"].strip()
    terms = [] if raw_filter in ("", "*") else [t.strip() for t in re.split(r",|\s+AND\s+", raw_filter) if t.strip()]
    by = tuple(t.strip() for t in (match["by"] or "").split(",") if t.strip())
    seconds = int(match["seconds"]) if match["seconds"] else None
    return MetricQuery(
        match["aggr"], match["metric"], tuple(_tag_filter(t) for t in terms), by, match["rollup"], seconds
    )


def _group_tags(tags: tuple[str, ...], by: tuple[str, ...]) -> tuple[str, ...]:
    found = []
    for key in by:
        value = next((t.split(":", 1)[1] for t in tags if t.startswith(key + ":")), "N/A")
        found.append(f"{key}:{value}")
    return tuple(found)


def evaluate(
    points: list[MetricPoint], query: MetricQuery, start_ms: int, end_ms: int, interval_ms: int
) -> tuple[list[int], list[tuple[tuple[str, ...], list[float | None]]]]:
    """(times, [(group tags, values)]) over [start, end) in steps of the interval."""
    step = max(1000, (query.rollup_seconds * 1000) if query.rollup_seconds else interval_ms)
    first = start_ms - start_ms % step
    times = list(range(first, end_ms, step))
    # per series, per bucket: the raw values
    per_series: dict[tuple[str, ...], dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    kinds: dict[tuple[str, ...], int] = {}
    for point in points:
        ms = point.timestamp_s * 1000
        if point.metric != query.metric or not (start_ms <= ms < end_ms):
            continue
        if not all(f(point.tags) for f in query.filters):
            continue
        key = tuple(sorted(point.tags))
        per_series[key][ms - (ms - first) % step].append(point.value)
        kinds[key] = point.type
    groups: dict[tuple[str, ...], dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for key, buckets in per_series.items():
        method = query.rollup or ("sum" if kinds[key] in (COUNT, RATE) else "avg")
        group = _group_tags(key, query.by)
        for bucket, values in buckets.items():
            groups[group][bucket].append(_REDUCE[method](values))
    combine = _REDUCE[query.aggr]
    answer = [
        (group, [combine(buckets[t]) if buckets.get(t) else None for t in times])
        for group, buckets in sorted(groups.items())
    ]
    return times, answer


Columns = dict[tuple[str, ...], list[float | None]]
_FORMULA_TOKEN = re.compile(r"\s*(?:(?P<number>\d+(?:\.\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<op>[-+*/()]))")


def _apply(op: str, left: float | None, right: float | None) -> float | None:
    if left is None or right is None:
        return None
    if op == "+":
        return left + right
    if op == "-":
        return left - right
    if op == "*":
        return left * right
    return None if right == 0 else left / right


def _combine(op: str, left: Columns | float, right: Columns | float) -> Columns | float:
    """Elementwise arithmetic: a number applies to every group; groups pair by equal group tags, and a
    single ungrouped series pairs with every group of the other side."""
    if isinstance(left, float) and isinstance(right, float):
        if op == "/" and right == 0:
            raise BadRequest("Division by zero in formula")
        return _apply(op, left, right) or 0.0
    if isinstance(left, float):
        return {g: [_apply(op, left, v) for v in col] for g, col in right.items()}  # type: ignore[union-attr]
    if isinstance(right, float):
        return {g: [_apply(op, v, right) for v in col] for g, col in left.items()}
    if list(right) == [()]:
        return {g: [_apply(op, a, b) for a, b in zip(col, right[()], strict=True)] for g, col in left.items()}
    if list(left) == [()]:
        return {g: [_apply(op, a, b) for a, b in zip(left[()], col, strict=True)] for g, col in right.items()}
    return {g: [_apply(op, a, b) for a, b in zip(left[g], right[g], strict=True)] for g in left if g in right}


def evaluate_formula(formula: str, columns: dict[str, Columns], width: int) -> Columns:
    """`a`, `a / b * 100`, `(a + b) / 2`: names of queries, numbers, + - * / and parentheses."""
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(formula.rstrip()):
        match = _FORMULA_TOKEN.match(formula, position)
        if match is None or match.end() == position:
            raise BadRequest(f"Unsupported formula {formula!r}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        position = match.end()
    index = 0

    def peek() -> str | None:
        return tokens[index][1] if index < len(tokens) else None

    def atom() -> Columns | float:
        nonlocal index
        if index >= len(tokens):
            raise BadRequest(f"Unsupported formula {formula!r}")
        kind, text = tokens[index]
        index += 1
        if text == "(":
            value = expression()
            if peek() != ")":
                raise BadRequest(f"Unsupported formula {formula!r}")
            index += 1
            return value
        if kind == "number":
            return float(text)
        if kind == "name" and text in columns:
            return columns[text]
        raise BadRequest(f"Unknown query {text!r} in formula {formula!r}")

    def term() -> Columns | float:
        nonlocal index
        value = atom()
        while peek() in ("*", "/"):
            op = tokens[index][1]
            index += 1
            value = _combine(op, value, atom())
        return value

    def expression() -> Columns | float:
        nonlocal index
        value = term()
        while peek() in ("+", "-"):
            op = tokens[index][1]
            index += 1
            value = _combine(op, value, term())
        return value

    result = expression()
    if index != len(tokens):
        raise BadRequest(f"Unsupported formula {formula!r}")
    return {(): [result] * width} if isinstance(result, float) else result


def timeseries(store: Store, attributes: dict[str, Any]) -> dict[str, Any]:
    """The `TimeseriesFormulaQueryResponse` for checked request attributes: one answer per formula, or per
    query when there are none."""
    start, end = int(attributes["from"]), int(attributes["to"])
    if end <= start:
        raise BadRequest("'to' must be after 'from'")
    interval = int(attributes.get("interval") or max(60_000, (end - start) // 300))
    queries = attributes["queries"]
    for query in queries:
        if query.get("data_source") != "metrics":
            raise BadRequest(f"Unsupported data_source {query.get('data_source')!r}")
    with store.lock:
        points = list(store.points)
    times: list[int] = []
    columns: dict[str, Columns] = {}
    ordered: list[Columns] = []
    for position, query in enumerate(queries):
        times, groups = evaluate(points, parse_query(query["query"]), start, end, interval)
        found = dict(groups)
        ordered.append(found)
        columns[query.get("name") or f"query{position + 1}"] = found
    formulas = attributes.get("formulas") or []
    answers = [evaluate_formula(f["formula"], columns, len(times)) for f in formulas] if formulas else ordered
    series: list[dict[str, Any]] = []
    values: list[list[float | None]] = []
    for query_index, answer in enumerate(answers):
        for group, column in sorted(answer.items()):
            series.append({"group_tags": list(group), "query_index": query_index, "unit": None})
            values.append(column)
    return {"data": {"type": "timeseries_response", "attributes": {"series": series, "times": times, "values": values}}}
