"""The `resource` and `http` metric families through Datadog's v2 timeseries query, one request per family.

`POST /api/v2/query/timeseries` takes several metric queries in one body, so each family is one request:
Datadog does the filtering, the per-step rollups, the space aggregation over pods and the grouping; what is
left here is arithmetic on the handful of aggregated series it returns (per-second rates, sum / count, the
status split and the quantiles), each formula naming one query, so no formula syntax has to be trusted. The
series are the OTel metrics our intake ships (adapters/datadog/intake.py; names from domain/semconv.py) with
the scope as tags (adapters/datadog/fields.py), computed as the embedded backend computes them
(adapters/embedded/metrics.py), so backends agree:

- a gauge (`cpuUsage`, limits, requests) is averaged per series within a step and summed over series:
  `sum:<metric>{scope}.rollup(avg, <step>)`;
- a counter (network and disk bytes) is its increase within a step per second: our intake sends deltas as
  Datadog `count` points, so `sum:<metric>{scope,<direction>}.rollup(sum, <step>)` divided by the step;
- `http` comes from the server duration histogram, which our intake ships as three count metrics:
  `<name>.count`, `<name>.sum` and `<name>.bucket` (per-bucket deltas, tagged `upper_bound:<le>`, `inf` for
  the last). Request rates are the count per second, split by `http.response.status_code` (grouped by that
  tag, then added up here: successful < 400 <= unsuccessful); the mean latency is sum / count; p50/p90/p99
  are interpolated from the bucket counts of each step, as Prometheus' histogram_quantile does.

Time alignment: our point at t covers (t - step, t], with t = start + k*step. Datadog's rollup buckets are
[b, b + step), so a bucket starting at b is reported at b + step, and the request starts one step early.
Datadog aligns buckets to its own grid (multiples of the interval) and may coarsen a step that would return
too many points; a range whose start is not a multiple of the step is then shifted to that grid (a documented
difference). Steps are whole seconds.

Every value from the query reaches Datadog only as a tag value of the scope, which must be a plain tag value
(names and UIDs are); anything else is refused with a ValueError rather than escaped, since
metric queries have no quoting.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from adapters.datadog import fields
from domain import semconv
from domain.model import ComponentScope, MetricSeries, MetricsQuery

TIMESERIES_PATH = "/api/v2/query/timeseries"
#: Why Datadog does not serve runtime topology (the plane then derives it from spans in the embedded store,
#: whose sink gets them: adapters/registry.py `topology_from_spans`).
TOPOLOGY_UNSUPPORTED = (
    "runtime topology is not read from Datadog: its service map is keyed by Datadog `service`, not by our "
    "component UIDs, has no per-edge latency percentiles, and deriving client -> server pairs from the Spans "
    "API (300 requests per hour) would fetch spans wholesale; the embedded store derives it from our spans"
)
#: Histogram parts as our intake names them.
COUNT_SUFFIX, SUM_SUFFIX, BUCKET_SUFFIX = ".count", ".sum", ".bucket"
UPPER_BOUND_TAG = "upper_bound"
_QUANTILES = (("latencyP50", 0.5), ("latencyP90", 0.9), ("latencyP99", 0.99))
#: The `http` family's queries, combined into its series here.
_COUNT, _SUM, _BY_STATUS, _BUCKETS = "count", "sum", "byStatus", "buckets"
_NS_PER_MS = 1_000_000
_TAG_VALUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")


class Poster(Protocol):
    """What this module needs of the Datadog client (adapters/datadog/client.py DatadogClient.post): rate
    limits, timeouts and failures are its business."""

    async def post(self, path: str, body: dict[str, Any], what: str) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class Formula:
    """One query of a family's request, named alone in its formula: `per_second` divides it by the step here,
    `group_by` is the tag its groups are combined by here (status codes, bucket bounds)."""

    key: str
    formula: str
    group_by: str = ""
    per_second: bool = False


@dataclass(frozen=True, slots=True)
class Plan:
    """A family's request: the body to send and which formula is which series."""

    body: dict[str, Any]
    formulas: tuple[Formula, ...]
    step_ms: int


# ================================================================================================ building


def scope_filter(scope: ComponentScope, *extra: str) -> str:
    """`{tag:value,...}` for the scope (commas are AND); a value that is not a plain tag value is refused,
    because a metric query cannot quote it."""
    pairs = [(fields.NAMESPACE, scope.namespace)]
    pairs += [(tag, getattr(scope, attribute)) for attribute, tag in fields.SCOPE_UID_TAGS.items()]
    parts = []
    for key, value in pairs:
        if not value:
            continue
        if not _TAG_VALUE.match(value):
            raise ValueError(f"{key} {value[:64]!r} is not a Datadog tag value")
        parts.append(f"{key}:{value}")
    return "{" + ",".join([*parts, *extra]) + "}"


def step_seconds(step_ns: int) -> int:
    return max(1, step_ns // 1_000_000_000)


def plan(query: MetricsQuery) -> Plan:
    """The one timeseries request for the query's family."""
    step_s = step_seconds(query.step_ns)
    step_ms = step_s * 1000
    scope = query.scope
    queries: list[dict[str, str]] = []
    formulas: list[Formula] = []

    def add(metric_query: str) -> str:
        name = f"q{len(queries)}"
        queries.append({"data_source": "metrics", "name": name, "query": metric_query})
        return name

    if query.family == "resource":
        for spec in semconv.RESOURCE_SERIES:
            extra = (f"{spec.attribute}:{spec.attribute_value}",) if spec.attribute else ()
            rollup = "avg" if spec.how == "level" else "sum"
            name = add(f"sum:{spec.names[0]}{scope_filter(scope, *extra)}.rollup({rollup}, {step_s})")
            formulas.append(Formula(spec.key, name, per_second=spec.how == "rate"))
    else:
        base, where = semconv.HTTP_SERVER_DURATION, scope_filter(scope)
        status = semconv.HTTP_STATUS_ATTRIBUTE
        formulas += [
            Formula(_COUNT, add(f"sum:{base}{COUNT_SUFFIX}{where}.rollup(sum, {step_s})")),
            Formula(_SUM, add(f"sum:{base}{SUM_SUFFIX}{where}.rollup(sum, {step_s})")),
            Formula(
                _BY_STATUS, add(f"sum:{base}{COUNT_SUFFIX}{where} by {{{status}}}.rollup(sum, {step_s})"), status, True
            ),
            Formula(
                _BUCKETS,
                add(f"sum:{base}{BUCKET_SUFFIX}{where} by {{{UPPER_BOUND_TAG}}}.rollup(sum, {step_s})"),
                UPPER_BOUND_TAG,
            ),
        ]
    body = {
        "data": {
            "type": "timeseries_request",
            "attributes": {
                "from": (query.range.start_ns // _NS_PER_MS) - step_ms,
                "to": query.range.end_ns // _NS_PER_MS,
                "interval": step_ms,
                "queries": queries,
                "formulas": [{"formula": f.formula} for f in formulas],
            },
        }
    }
    return Plan(body, tuple(formulas), step_ms)


# ================================================================================================ shaping


def shape(query: MetricsQuery, built: Plan, response: Mapping[str, Any]) -> MetricSeries:
    """The response's columnar series as our series: every key of the family (an empty list where there is no
    data), points at the end of each bucket within the range, and of the bucket holding a partial last step."""
    attributes = (response.get("data") or {}).get("attributes") or {}
    times = [int(t) for t in attributes.get("times") or []]
    columns = attributes.get("values") or []
    grouped: dict[int, list[tuple[dict[str, str], list[float | None]]]] = defaultdict(list)
    for series, values in zip(attributes.get("series") or [], columns):
        tags = _group_tags(series.get("group_tags"))
        grouped[int(series.get("query_index", 0))].append((tags, list(values)))

    start, end = query.range.start_ns, query.range.end_ns
    stamps = [(t + built.step_ms) * _NS_PER_MS for t in times]
    # A bucket that starts before the range's end and ends after it holds the partial last step (the request
    # stops at `end`): it is kept, at its own end on Datadog's grid, as every bucket is (tests/contract DIFFERS).
    keep = [i for i, ts in enumerate(stamps) if start <= ts and times[i] * _NS_PER_MS < end]

    out: MetricSeries = {}

    def put(key: str, values: Sequence[float | None]) -> None:
        points = [(stamps[i], v) for i in keep if i < len(values) and (v := _num(values[i])) is not None]
        if points:
            out[key] = points

    step_s = built.step_ms / 1000
    raw: dict[str, list[float | None]] = {}
    for index, formula in enumerate(built.formulas):
        groups = grouped.get(index, [])
        if formula.group_by == semconv.HTTP_STATUS_ATTRIBUTE:
            ok, failed = _split_by_status(groups, len(times))
            put("successfulRequestCount", _per_second(ok, step_s))
            put("unsuccessfulRequestCount", _per_second(failed, step_s))
        elif formula.group_by == UPPER_BOUND_TAG:
            for key, q in _QUANTILES:
                put(key, _quantiles(groups, len(times), q))
        else:
            values = [_num(v) for v in groups[0][1]] if groups else []
            raw[formula.key] = values
            if query.family == "resource":
                put(formula.key, _per_second(values, step_s) if formula.per_second else values)
    if query.family == "http":
        counts, sums = raw.get(_COUNT, []), raw.get(_SUM, [])
        put("requestCount", _per_second(counts, step_s))
        put("meanLatency", [_ratio(t, c) for t, c in zip(sums, counts)])
    return semconv.with_every_key(query.family, {key: out.get(key, []) for key in _order(query)})


def _order(query: MetricsQuery) -> list[str]:
    if query.family == "resource":
        return [spec.key for spec in semconv.RESOURCE_SERIES]
    return list(semconv.HTTP_SERIES)


def _group_tags(raw: Any) -> dict[str, str]:
    tags: dict[str, str] = {}
    for tag in raw or []:
        key, _, value = str(tag).partition(":")
        tags[key] = value
    return tags


def _per_second(values: Sequence[float | None], step_s: float) -> list[float | None]:
    return [None if v is None else v / step_s for v in values]


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    """sum / count of a step; no value where nothing was counted (as PromQL's 0/0 leaves no point)."""
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def _num(value: Any) -> float | None:
    """A finite number from the response, else None (Datadog writes a step without data as null)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _split_by_status(
    groups: Sequence[tuple[dict[str, str], list[float | None]]], size: int
) -> tuple[list[float | None], list[float | None]]:
    """Per-status request rates added up into successful (< 400) and unsuccessful (>= 400); a step where no
    status has data stays empty. A series without a status code counts as successful, as elsewhere."""
    ok: list[float | None] = [None] * size
    failed: list[float | None] = [None] * size
    for tags, values in groups:
        code = tags.get(semconv.HTTP_STATUS_ATTRIBUTE, "")
        target = failed if code.isdigit() and semconv.is_unsuccessful(int(code)) else ok
        for i, raw in enumerate(values[:size]):
            value = _num(raw)
            if value is not None:
                target[i] = (target[i] or 0.0) + value
    for i in range(size):  # a step with traffic of one kind only is 0 for the other
        if ok[i] is not None or failed[i] is not None:
            ok[i] = ok[i] or 0.0
            failed[i] = failed[i] or 0.0
    return ok, failed


def _bound(text: str) -> float | None:
    if text in ("inf", "+inf", "Inf", "+Inf"):
        return math.inf
    try:
        return float(text)
    except ValueError:
        return None


def _quantiles(groups: Sequence[tuple[dict[str, str], list[float | None]]], size: int, q: float) -> list[float | None]:
    """The q-quantile of each step from per-bucket counts, interpolated linearly within the bucket as
    Prometheus' histogram_quantile does (the +Inf bucket answers its lower bound)."""
    buckets = sorted(
        (bound, values) for tags, values in groups if (bound := _bound(tags.get(UPPER_BOUND_TAG, ""))) is not None
    )
    out: list[float | None] = [None] * size
    for i in range(size):
        counts = [(bound, c) for bound, v in buckets if i < len(v) and (c := _num(v[i])) is not None]
        total = sum(count for _, count in counts)
        if total <= 0:
            continue
        rank, seen, lower = q * total, 0.0, 0.0
        for bound, count in counts:
            if count > 0 and seen + count >= rank:
                if math.isinf(bound):
                    out[i] = lower
                else:
                    out[i] = lower + (bound - lower) * (rank - seen) / count
                break
            seen += count
            lower = bound if not math.isinf(bound) else lower
    return out


# ================================================================================================ running


async def query_metrics(client: Poster, query: MetricsQuery) -> MetricSeries:
    """The family's series, in one timeseries request (the backend's `query_metrics`)."""
    built = plan(query)
    response = await client.post(TIMESERIES_PATH, built.body, f"querying {query.family} metrics")
    return shape(query, built, response)
