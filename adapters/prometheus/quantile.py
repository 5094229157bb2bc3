"""`histogram_quantile` over classic-histogram buckets, computed here instead of by Prometheus.

Why: the `http` family asks for three quantiles of the same histogram. Sent as three
`histogram_quantile(q, sum by (le) (rate(..._bucket[step])))` queries, Prometheus computes the bucket rates
(the expensive part: one series per bucket bound) three times and we parse three answers; asking once for
`sum by (le) (rate(..._bucket[step]))` and computing the quantiles from its buckets does that work once.

The answer must not change, so `bucket_quantile` is a line-by-line port of Prometheus's `BucketQuantile`
(promql/quantile.go, 3.x): buckets sorted by upper bound; NaN unless the highest is `+Inf`; equal bounds
coalesced; differences within a relative 1e-12 taken as float noise and decreases flattened (in one pass);
NaN with fewer than two buckets or no observations; the upper bound of the second highest bucket when the rank
falls in `+Inf`; the lowest bound itself when it is <= 0 and the rank falls in it; else linear interpolation
within the bucket, from 0 in the lowest one. The arithmetic is done in the same order on the same float64
values, so the results are Prometheus's to the bit (where its Go binary does not fuse multiply-adds).
Prometheus releases before the tolerance (2.42, which Debian ships and the tests may start, is one) give other
numbers only where neighbouring bucket counts differ by less than that relative 1e-12.

`quantile_series` applies it per step to a range query's buckets, with a fast path for the usual case (every
bucket series has a sample at every step, bounds all distinct, counts not NaN) that gives the same numbers.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Mapping, Sequence

from adapters.prometheus.client import Columns

#: Prometheus's `smallDeltaTolerance`: relative differences between neighbouring bucket counts below this are
#: floating-point noise from summing rates, not a real (non-monotonic) difference.
SMALL_DELTA_TOLERANCE = 1e-12
_MIN_NORMAL = 2.2250738585072014e-308  # the smallest positive normal float64 (Go's almost.Equal uses it)
_MAX_FLOAT = 1.7976931348623157e308
#: Within this of zero, a count is almost.Equal to zero (Go: `diff < epsilon*minNormal` when a or b is 0).
_ZERO_TOLERANCE = SMALL_DELTA_TOLERANCE * _MIN_NORMAL

Points = list[tuple[int, float]]


def parse_bound(text: str) -> float | None:
    """The `le` label as Go's `strconv.ParseFloat` reads it, or None where it fails (Prometheus then skips the
    series): no surrounding spaces or underscores, `[+-]Inf`/`Infinity`/`NaN` in any case, hexadecimal only with
    a `p` exponent, and a finite number too large for a float64 is an error, not an infinity."""
    if not text or not text.isascii() or text != text.strip() or "_" in text:
        return None
    lowered = text.lower()
    try:
        if lowered.lstrip("+-").startswith("0x"):
            value = float.fromhex(text) if "p" in lowered else None
        else:
            value = float(text)
    except (ValueError, OverflowError):
        return None
    if value is not None and math.isinf(value) and "inf" not in lowered:
        return None
    return value


def almost_equal(a: float, b: float, epsilon: float) -> bool:
    """Go's `almost.Equal` (util/almost): relative difference below `epsilon`, both NaN counting as equal."""
    if math.isnan(a) and math.isnan(b):
        return True
    if a == b:
        return True
    abs_sum = abs(a) + abs(b)
    diff = abs(a - b)
    if a == 0 or b == 0 or abs_sum < _MIN_NORMAL:
        return diff < epsilon * _MIN_NORMAL
    return diff / min(abs_sum, _MAX_FLOAT) < epsilon


def bucket_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float:
    """The q-quantile of (upper bound, cumulative count) buckets, in any order: Prometheus's BucketQuantile."""
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    if not buckets:
        return math.nan
    ordered = sorted(buckets, key=lambda bucket: bucket[0])
    if ordered[-1][0] != math.inf:
        return math.nan
    bounds, counts = _coalesced(ordered)
    _monotonic(counts)
    return _interpolate(q, bounds, counts)


def _coalesced(ordered: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    """Go's coalesceBuckets: buckets with the same bound (`le="1"` and `le="1.0"`) become one, counts added."""
    bounds = [ordered[0][0]]
    counts = [ordered[0][1]]
    for bound, count in ordered[1:]:
        if bound == bounds[-1]:
            counts[-1] += count
        else:
            bounds.append(bound)
            counts.append(count)
    return bounds, counts


def _next(prev: float, curr: float) -> float:
    """One step of Go's ensureMonotonicAndIgnoreSmallDeltas: what a bucket's count becomes after the one
    before it became `prev`. A count within the tolerance of `prev` (either direction) or below it takes its
    value, any other its own. (Go keeps `prev` on a correction and moves it on an accepted increase: either
    way, the next bucket is compared with what this one became.)"""
    if curr == prev or (curr > prev > 0 and _MIN_NORMAL <= prev + curr < math.inf):
        # Equal, or the common case, a rise between positive normal counts, decided with the very expression
        # `almost.Equal` evaluates there (the tolerance check below is the rare path).
        return curr if curr == prev or (curr - prev) / (prev + curr) >= SMALL_DELTA_TOLERANCE else prev
    return prev if almost_equal(prev, curr, SMALL_DELTA_TOLERANCE) or curr < prev else curr


def _monotonic(counts: list[float]) -> None:
    """Go's ensureMonotonicAndIgnoreSmallDeltas, in place."""
    for i in range(1, len(counts)):
        counts[i] = _next(counts[i - 1], counts[i])


def _search(counts: Sequence[float], rank: float) -> int:
    """Go's `sort.Search(len(counts)-1, func(i) bool { return counts[i] >= rank })`, step for step (a NaN
    count or rank makes the predicate non-monotonic, and then only the same bisection gives the same index)."""
    lo, hi = 0, len(counts) - 1
    while lo < hi:
        mid = (lo + hi) >> 1
        if not counts[mid] >= rank:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _interpolate(q: float, bounds: list[float], counts: list[float]) -> float:
    """The rest of BucketQuantile, on coalesced, monotonic buckets whose highest bound is +Inf."""
    n = len(counts)
    if n < 2:
        return math.nan
    observations = counts[-1]
    if observations == 0:
        return math.nan
    rank = q * observations
    return _within(_search(counts, rank), rank, bounds, counts)


def _within(b: int, rank: float, bounds: Sequence[float], counts: Sequence[float]) -> float:
    """The quantile once the rank's bucket `b` is known."""
    n = len(counts)
    if b == n - 1:
        return bounds[n - 2]
    if b == 0 and bounds[0] <= 0:
        return bounds[0]
    bucket_start = 0.0
    bucket_end = bounds[b]
    count = counts[b]
    if b > 0:
        bucket_start = bounds[b - 1]
        count -= counts[b - 1]
        rank -= counts[b - 1]
    return bucket_start + (bucket_end - bucket_start) * _divide(rank, count)


def _divide(a: float, b: float) -> float:
    """a / b as IEEE 754 (and Go) has it, where Python raises on a zero divisor: NaN or a signed infinity."""
    try:
        return a / b
    except ZeroDivisionError:
        if a == 0 or math.isnan(a):
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)


def quantile_series(buckets: Sequence[Columns], quantiles: Mapping[str, float]) -> dict[str, Points]:
    """Per key of `quantiles` (key -> q), the quantile at every step of `buckets` (one series per `le`, every
    sample kept: the answer to `sum by (le) (...)`), leaving out the steps where it is NaN or infinite, as the
    client does with Prometheus's own answer. Series without a parseable `le` are skipped, as Prometheus does."""
    parsed = [
        (bound, stamps, values)
        for labels, stamps, values in buckets
        if (bound := parse_bound(labels.get("le", ""))) is not None
    ]
    wanted = [(key, q) for key, q in quantiles.items() if 0 <= q <= 1]  # else NaN or an infinity: left out
    if not parsed or not wanted:
        return {}
    parsed.sort(key=lambda item: item[0])
    bounds = [bound for bound, _, _ in parsed]
    out: dict[str, Points] = {key: [] for key, _ in wanted}
    stamps = parsed[0][1]
    if all(tuple(other) == tuple(stamps) for _, other, _ in parsed[1:]) and _distinct(bounds):
        if len(bounds) >= 2 and bounds[-1] == math.inf:  # else NaN at every step
            _aligned(stamps, bounds, [values for _, _, values in parsed], wanted, out)
    else:
        _per_step(parsed, wanted, out)
    return {key: points for key, points in out.items() if points}


def _distinct(bounds: list[float]) -> bool:
    """Sorted bounds without NaN (whose place in Go's sort is unspecified) or repeats (which coalesce)."""
    return not any(map(math.isnan, bounds)) and len(set(bounds)) == len(bounds)


def _aligned(
    stamps: Sequence[int],
    bounds: list[float],
    columns: list[list[float]],
    wanted: list[tuple[str, float]],
    out: dict[str, Points],
) -> None:
    """The usual case: every bucket has a sample at every step, and the bounds are sorted, distinct and end
    with +Inf, so there is nothing to sort or coalesce per step. The envelope is taken a bucket at a time over
    all steps (`_envelope`), and the search is `bisect_left` (in C) where no count is NaN and the rank is not:
    on the non-decreasing counts the envelope leaves, it returns what `sort.Search` does."""
    fixed = [columns[0]]
    for column in columns[1:]:
        fixed.append(_envelope(fixed[-1], column))
    last = len(bounds) - 1
    totals = fixed[last]
    clean = not any(any(map(math.isnan, column)) for column in fixed)
    rows = list(zip(*fixed, strict=True))
    for key, q in wanted:
        points = out[key]
        for step, row, total in zip(stamps, rows, totals, strict=True):
            if total == 0:
                continue  # no observations: NaN, left out
            rank = q * total
            b = bisect_left(row, rank, 0, last) if clean and rank == rank else _search(row, rank)
            value = _within(b, rank, bounds, row)
            if math.isfinite(value):
                points.append((step, value))


def _envelope(prev: list[float], column: list[float]) -> list[float]:
    """`_next` over a column of counts against what the bucket below became, step by step. A column equal to
    the one below (every bucket above a service's slowest request) is kept whole after one comparison in C;
    otherwise the common cases are decided inline with the expressions `almost.Equal` evaluates there: equal
    counts; a rise between positive normal counts by at least the tolerance; a rise from zero past
    `epsilon * minNormal`. (Deciding a column of clear rises in C too, with `map` over `operator`, measured
    slower than this comprehension.)"""
    if column == prev:
        return column
    eps, tiny, inf, normal = SMALL_DELTA_TOLERANCE, _ZERO_TOLERANCE, math.inf, _MIN_NORMAL
    return [
        c
        if c == p or (c > p > 0 and normal <= (s := p + c) < inf and (c - p) / s >= eps) or (p == 0 and c >= tiny)
        else _next(p, c)
        for p, c in zip(prev, column, strict=True)
    ]


def _per_step(
    parsed: list[tuple[float, Sequence[int], list[float]]], wanted: list[tuple[str, float]], out: dict[str, Points]
) -> None:
    """Any other case: the buckets present at each step, through the exact port."""
    at: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for bound, stamps, values in parsed:
        for ts, value in zip(stamps, values, strict=True):
            at[ts].append((bound, value))
    for step in sorted(at):
        for key, q in wanted:
            value = bucket_quantile(q, at[step])
            if math.isfinite(value):
                out[key].append((step, value))
