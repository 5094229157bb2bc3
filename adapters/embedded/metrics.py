"""Metrics in the embedded backend: OTel points in, Prometheus-style range series out.

Sums and histograms are stored as deltas (the increase since the previous sample), whatever temporality the
producer used, so every rate below is SUM(delta) / step and no query ever has to reason about counter resets.
The cumulative-to-delta conversion happens once, at write time, against the `last_*` columns of the series.

Queries follow Prometheus range-query alignment so a Prometheus backend can return the same timestamps: output
points sit at t_k = start + k*step (k >= 0, t_k <= end) and the value at t_k covers samples with
t_k - step < ts <= t_k. All grouping by step, by series and by bucket runs in SQL.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from adapters.embedded.scope import streams_in_scope
from adapters.embedded.store import Store
from domain import semconv
from domain.model import MetricKind, MetricPoint, MetricSeries, MetricsQuery
from domain.timeutil import MIN_NS as _MIN_NS

_NS_PER_SECOND = 1_000_000_000
#: Quantiles of the `http` family, as (series key, q).
_QUANTILES = (("latencyP50", 0.5), ("latencyP90", 0.9), ("latencyP99", 0.99))
#: The response status as an integer, or NULL when the series has none (stored as text or number by producers).
_STATUS_SQL = f"CAST(json_extract(s.attributes, '$.\"{semconv.HTTP_STATUS_ATTRIBUTE}\"') AS INTEGER)"


# ================================================================================================== writing


@dataclass(slots=True)
class _Series:
    """A metric_series row: its id and the previous cumulative sample, `fresh` when created by this point."""

    id: int
    fresh: bool
    start_ns: int
    value: float
    count: float
    sum: float
    buckets: tuple[tuple[float, float], ...]  # (le, count) pairs of the previous cumulative sample


@dataclass(frozen=True, slots=True)
class _Delta:
    """What one point adds to its series: the gauge value or sum increase, histogram count, sum and buckets."""

    value: float
    count: float
    sum: float
    buckets: tuple[tuple[float, float], ...]


def insert_metric_points(store: Store, conn: sqlite3.Connection, points: Sequence[MetricPoint]) -> None:
    """Stores points inside the caller's transaction, converting cumulative sums and histograms to deltas.

    Points are applied in time order, because a delta is taken against the series' previous sample. A point
    whose (series, ts) is already stored is a retry and changes nothing. A cumulative point older than the
    series' newest stored point (a batch retried after a later one got through) is dropped: the later sample's
    delta already covers its increase, and taking a delta against a newer sample would look like a reset.

    Series ids are not cached: the row has to be read anyway for the `last_*` sample, and an uncached lookup
    cannot go stale when a transaction rolls back (the unique index makes it one B-tree seek).
    """
    for point in sorted(points, key=lambda p: p.ts_ns):
        series = _series(store, conn, point)
        running = _is_running_total(point)
        if running and not series.fresh and _is_late(conn, series.id, point.ts_ns):
            continue
        delta = _delta(point, series) if running else _Delta(point.value, point.count, point.sum, _buckets(point))
        if _insert_point(conn, series.id, point.ts_ns, delta) and running:
            _remember(conn, series.id, point)


def _is_running_total(point: MetricPoint) -> bool:
    """A cumulative sum or histogram, which needs the previous sample to become a delta. (Gauges are levels
    whatever their temporality flag says.)"""
    return point.cumulative and point.kind != MetricKind.GAUGE


def _canonical(attributes: dict[str, str]) -> str:
    return json.dumps(attributes, sort_keys=True, separators=(",", ":"), default=str)


def _series(store: Store, conn: sqlite3.Connection, point: MetricPoint) -> _Series:
    """The series row of a point, created on first sight (`fresh`)."""
    key = (point.name, store.stream_id(conn, point.identity), _canonical(point.attributes))
    select = (
        "SELECT id, last_start_ns, last_value, last_count, last_sum, last_buckets FROM metric_series"
        " WHERE name = ? AND stream_id = ? AND attributes = ?"
    )
    row = conn.execute(select, key).fetchone()
    fresh = row is None
    if fresh:
        conn.execute(
            "INSERT INTO metric_series (name, kind, stream_id, attributes) VALUES (?, ?, ?, ?)",
            (key[0], MetricKind(point.kind).value, key[1], key[2]),
        )
        row = conn.execute(select, key).fetchone()
    return _Series(row[0], fresh, row[1], row[2], row[3], row[4], _decode_buckets(row[5]))


def _is_late(conn: sqlite3.Connection, series_id: int, ts_ns: int) -> bool:
    """True when the series already holds a point after `ts_ns` (an index seek on the primary key)."""
    (newest,) = conn.execute("SELECT max(ts_ns) FROM metric_points WHERE series_id = ?", (series_id,)).fetchone()
    return newest is not None and ts_ns < newest


def _buckets(point: MetricPoint) -> tuple[tuple[float, float], ...]:
    """(le, count) per bucket; the extra last count is the overflow bucket, le = +Inf."""
    bounds = (*point.bounds, math.inf)
    return tuple(zip(bounds, point.bucket_counts, strict=False))


def _delta(point: MetricPoint, last: _Series) -> _Delta:
    """The increase a cumulative point adds since `last`. The full value counts on the first sample of a
    series, on a new `start_ns` (the producer restarted) and on any decrease (a counter reset)."""
    buckets = _buckets(point)
    full = _Delta(point.value, point.count, point.sum, buckets)
    if last.fresh or point.start_ns != last.start_ns:
        return full
    if point.kind == MetricKind.SUM:
        return full if point.value < last.value else _Delta(point.value - last.value, 0.0, 0.0, ())
    if _histogram_reset(point, buckets, last):
        return full
    return _Delta(
        0.0,
        point.count - last.count,
        point.sum - last.sum,
        tuple((le, n - previous) for (le, n), (_, previous) in zip(buckets, last.buckets)),
    )


def _histogram_reset(point: MetricPoint, buckets: tuple[tuple[float, float], ...], last: _Series) -> bool:
    """A histogram restarted when its count or any bucket went down, or its bucket layout changed.
    (The sum alone may go down: observations can be negative.)"""
    if point.count < last.count:
        return True
    if [le for le, _ in buckets] != [le for le, _ in last.buckets]:
        return True
    return any(n < previous for (_, n), (_, previous) in zip(buckets, last.buckets))


def _insert_point(conn: sqlite3.Connection, series_id: int, ts_ns: int, delta: _Delta) -> bool:
    """Stores a delta; False when (series, ts) was already stored, i.e. the point is a retry."""
    inserted = conn.execute(
        "INSERT OR IGNORE INTO metric_points (series_id, ts_ns, value, count, sum) VALUES (?, ?, ?, ?, ?)",
        (series_id, ts_ns, delta.value, delta.count, delta.sum),
    ).rowcount
    if not inserted:
        return False
    conn.executemany(
        "INSERT OR IGNORE INTO metric_buckets (series_id, ts_ns, le, count) VALUES (?, ?, ?, ?)",
        [(series_id, ts_ns, le, n) for le, n in delta.buckets],
    )
    return True


def _remember(conn: sqlite3.Connection, series_id: int, point: MetricPoint) -> None:
    """Keeps this cumulative sample as the base of the next delta."""
    conn.execute(
        "UPDATE metric_series SET last_start_ns = ?, last_value = ?, last_count = ?, last_sum = ?, last_buckets = ?"
        " WHERE id = ?",
        (point.start_ns, point.value, point.count, point.sum, _encode_buckets(_buckets(point)), series_id),
    )


def _encode_buckets(buckets: Iterable[tuple[float, float]]) -> str:
    """JSON [[le, count], ...]; +Inf is written as null, since JSON has no infinity."""
    return json.dumps([[None if math.isinf(le) else le, n] for le, n in buckets])


def _decode_buckets(text: str) -> tuple[tuple[float, float], ...]:
    return tuple((math.inf if le is None else le, n) for le, n in json.loads(text))


# ================================================================================================== reading


@dataclass(frozen=True, slots=True)
class _Window:
    """The aligned steps of a range query. Output points sit at t_k = start + k*step for k >= 0 and
    t_k <= end; the value at t_k covers samples with t_k - step < ts <= t_k. So the samples read are those with
    start - step < ts <= `until` (the last t_k, not `end`: a sample after it would belong to a step past the
    end), and a sample's step is k = ceil((ts - start) / step)."""

    start_ns: int
    step_ns: int
    until_ns: int

    @classmethod
    def of(cls, query: MetricsQuery) -> _Window:
        start, step = query.range.start_ns, query.step_ns
        if step <= 0:
            raise ValueError("step must be greater than 0")
        last_k = max(query.range.end_ns - start, -1) // step  # -1 when the range is empty
        return cls(start, step, start + last_k * step)

    @property
    def empty(self) -> bool:
        return self.until_ns < self.start_ns

    @property
    def base_ns(self) -> int:
        """The earliest sample read, clamped to the earliest int64 nanosecond (no sample is older, and SQLite
        cannot bind anything lower) so a range starting at the very edge of the int64 range still works."""
        return max(self.start_ns - self.step_ns + 1, _MIN_NS)

    @property
    def seconds(self) -> float:
        return self.step_ns / _NS_PER_SECOND

    def timestamp(self, k: int) -> int:
        return self.start_ns + k * self.step_ns


@dataclass(frozen=True, slots=True)
class _Samples:
    """SQL for the samples (or bucket rows) of some metrics in a scope and window: `step` is the step index
    expression and `source` the FROM ... WHERE clause, with the series aliased `s` and the sample `p`. Every
    query below is built on it, so scope filtering and time alignment live in one place.

    `series_from` replaces the plain series table when a query needs to join something to the series first;
    the name filter stays, so SQLite still seeks the series' unique index by name and stream."""

    step: str
    source: str
    params: tuple[object, ...]  # those of `step`, then those of `source`

    @classmethod
    def of(
        cls,
        query: MetricsQuery,
        window: _Window,
        names: Sequence[str],
        table: str = "metric_points",
        series_from: str = "metric_series s",
        series_params: Sequence[object] = (),
    ) -> _Samples:
        streams_sql, stream_params = streams_in_scope(query.scope)
        marks = ",".join("?" * len(names))
        source = (
            f"FROM {series_from} JOIN {table} p ON p.series_id = s.id"
            f" WHERE s.name IN ({marks}) AND s.stream_id IN ({streams_sql}) AND p.ts_ns >= ? AND p.ts_ns <= ?"
        )
        params = (
            window.start_ns,
            window.start_ns,
            window.step_ns,
            *series_params,
            *names,
            *stream_params,
            window.base_ns,
            window.until_ns,
        )
        # k = ceil((ts - start) / step): 0 for the samples at or before start (the WHERE keeps only those after
        # start - step); written so that no intermediate value leaves int64 whatever the start and step.
        return cls("(CASE WHEN p.ts_ns <= ? THEN 0 ELSE (p.ts_ns - ? - 1) / ? + 1 END)", source, params)


def query_metrics(conn: sqlite3.Connection, query: MetricsQuery) -> MetricSeries:
    """The series of one family for a scope: every key of the family, an empty list where nothing was measured.

    A range that is not a whole number of steps ends with a partial step after the last aligned point: it gets
    one more point, at the range's end, which like every point covers the step before it (end - step, end], so
    the newest samples of a "last 15 minutes" query are never left out (Prometheus evaluates the same point)."""
    if query.family not in ("resource", "http"):
        raise ValueError(f"unknown metric family {query.family!r}")
    window = _Window.of(query)
    if window.empty:
        return semconv.with_every_key(query.family, {})
    series = _family(conn, query, window)
    if window.until_ns < query.range.end_ns:
        last = _Window(query.range.end_ns, query.step_ns, query.range.end_ns)
        for key, points in _family(conn, query, last).items():
            series.setdefault(key, []).extend(points)
    return semconv.with_every_key(query.family, series)


def _family(conn: sqlite3.Connection, query: MetricsQuery, window: _Window) -> MetricSeries:
    """The family's series over the window's aligned steps; keys without samples are left out."""
    if query.family == "resource":
        return _resource(conn, query, window)
    return _http(conn, query, window)


def _collect(window: _Window, rows: Iterable[tuple[str, int, float | None]]) -> MetricSeries:
    """Rows of (key, step index, value), in step order per key, into series; NULL values (a step where the
    series had nothing to say, e.g. a mean over zero requests) are left out."""
    series: MetricSeries = {}
    for key, k, value in rows:
        if value is not None:
            series.setdefault(key, []).append((window.timestamp(k), float(value)))
    return series


def _resource(conn: sqlite3.Connection, query: MetricsQuery, window: _Window) -> MetricSeries:
    """Every resource series in one statement. A VALUES table `w` says which metric (and attribute value)
    feeds which key and how it combines: per (key, step, series) the mean (`level`) or the total increase
    (`rate`); then per (key, step) the sum over series, divided by the step in seconds for rates."""
    feeds = [(s.key, name, s.attribute, s.attribute_value, s.how) for s in semconv.RESOURCE_SERIES for name in s.names]
    wanted = ",".join("(?, ?, ?, ?, ?)" for _ in feeds)
    samples = _Samples.of(
        query,
        window,
        sorted({feed[1] for feed in feeds}),
        series_from=(
            f"(VALUES {wanted}) w JOIN metric_series s ON s.name = w.column2 AND (w.column3 = ''"
            " OR json_extract(s.attributes, '$.\"' || w.column3 || '\"') = w.column4)"
        ),
        series_params=[value for feed in feeds for value in feed],
    )
    sql = (
        f"SELECT key, k, sum(CASE how WHEN 'rate' THEN total / ? ELSE mean END) FROM ("
        f" SELECT w.column1 AS key, w.column5 AS how, {samples.step} AS k, avg(p.value) AS mean, sum(p.value) AS total"
        f" {samples.source} GROUP BY key, k, s.id"
        f") GROUP BY key, k ORDER BY key, k"
    )
    return _collect(window, conn.execute(sql, (window.seconds, *samples.params)))


def _http(conn: sqlite3.Connection, query: MetricsQuery, window: _Window) -> MetricSeries:
    series = _http_rates(conn, query, window) | _http_quantiles(conn, query, window)
    return {key: series[key] for key in semconv.HTTP_SERIES if key in series}


def _http_rates(conn: sqlite3.Connection, query: MetricsQuery, window: _Window) -> MetricSeries:
    """Requests per second (all, status < 400, status >= 400) and the mean latency per step, from the count
    and sum deltas of the server duration histogram."""
    samples = _Samples.of(query, window, [semconv.HTTP_SERVER_DURATION])
    keys = ("requestCount", "successfulRequestCount", "unsuccessfulRequestCount", "meanLatency")
    sql = (
        "SELECT k, sum(count) / ?, sum(CASE WHEN status < 400 THEN count END) / ?,"
        " sum(CASE WHEN status >= 400 THEN count END) / ?, sum(sum) / nullif(sum(count), 0)"
        f" FROM (SELECT {samples.step} AS k, p.count AS count, p.sum AS sum, {_STATUS_SQL} AS status"
        f" {samples.source}) GROUP BY k ORDER BY k"
    )
    rows = conn.execute(sql, (window.seconds, window.seconds, window.seconds, *samples.params))
    return _collect(window, ((key, k, value) for k, *values in rows for key, value in zip(keys, values, strict=True)))


def _http_quantiles(conn: sqlite3.Connection, query: MetricsQuery, window: _Window) -> MetricSeries:
    """p50/p90/p99 per step: Prometheus' `histogram_quantile(q, sum by (le) (...))` over the bucket deltas.

    rank = q * total; the answer lies in the first bucket whose cumulative count reaches the rank, linearly
    interpolated between the bucket's lower bound (the previous bound, or 0 for a first bucket with a positive
    bound) and its upper bound. A rank in the +Inf bucket gives the largest finite bound; a first bucket with a
    bound <= 0 gives that bound. A step without observations, or with only the +Inf bucket, has no quantile
    (Prometheus' NaN, which adapters drop).
    """
    samples = _Samples.of(query, window, [semconv.HTTP_SERVER_DURATION], table="metric_buckets")
    quantiles = ",".join("(?, ?)" for _ in _QUANTILES)
    sql = (
        f"WITH per_le AS ("
        f"  SELECT {samples.step} AS k, p.le AS le, sum(p.count) AS n {samples.source} GROUP BY k, le"
        f" ), cumulative AS ("
        f"  SELECT k, le, n, lag(le) OVER steps AS lower, sum(n) OVER (steps ROWS UNBOUNDED PRECEDING) AS upto,"
        f"   sum(n) OVER (PARTITION BY k) AS total"
        f"  FROM per_le WINDOW steps AS (PARTITION BY k ORDER BY le)"
        f" ), hits AS ("
        f"  SELECT q.column1 AS key, c.*, q.column2 * c.total AS rank,"
        f"   row_number() OVER (PARTITION BY q.column1, c.k ORDER BY c.le) AS nth"
        f"  FROM cumulative c, (VALUES {quantiles}) q WHERE c.total > 0 AND c.upto >= q.column2 * c.total"
        f" )"
        f" SELECT key, k, CASE"
        f"  WHEN le = ? THEN lower"
        f"  WHEN lower IS NULL AND le <= 0 THEN le"
        f"  ELSE coalesce(lower, 0) + (le - coalesce(lower, 0)) * (rank - (upto - n)) / n"
        f" END FROM hits WHERE nth = 1 ORDER BY key, k"
    )
    params = (*samples.params, *(value for pair in _QUANTILES for value in pair), math.inf)
    return _collect(window, conn.execute(sql, params))
