"""Quantiles of classic-histogram buckets computed here (adapters/prometheus/quantile.py): Prometheus's
BucketQuantile case by case, and the fast path of a range answer giving what the exact port gives per step.
(tests/integration/test_i14p_prometheus_quantiles.py holds them against Prometheus's own histogram_quantile.)"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.prometheus.quantile import bucket_quantile, parse_bound, quantile_series

INF = math.inf

#: (buckets as (upper bound, cumulative count), q, expected): what promql/quantile.go returns.
CASES = [
    # linear interpolation within the bucket the rank falls in: 0.1 + 0.4 * (50 - 40) / (80 - 40)
    ([(0.1, 40.0), (0.5, 80.0), (INF, 100.0)], 0.5, 0.2),
    # the lowest bucket interpolates from 0
    ([(0.1, 40.0), (0.5, 80.0), (INF, 100.0)], 0.25, 0.0625),
    # the rank in +Inf: the upper bound of the second highest bucket
    ([(0.1, 40.0), (0.5, 80.0), (INF, 100.0)], 0.99, 0.5),
    # order does not matter: buckets are sorted by bound
    ([(INF, 100.0), (0.5, 80.0), (0.1, 40.0)], 0.5, 0.2),
    # q = 0 and q = 1
    ([(0.1, 40.0), (0.5, 80.0), (INF, 100.0)], 0.0, 0.0),
    ([(0.1, 40.0), (0.5, 80.0), (INF, 100.0)], 1.0, 0.5),
    # a lowest bound <= 0 is returned as it is when the rank falls in its bucket
    ([(-1.0, 10.0), (1.0, 20.0), (INF, 20.0)], 0.25, -1.0),
    ([(0.0, 10.0), (1.0, 20.0), (INF, 20.0)], 0.25, 0.0),
    # fewer than two buckets, no +Inf bucket, no observations: NaN
    ([(INF, 10.0)], 0.5, math.nan),
    ([(0.1, 5.0), (1.0, 10.0)], 0.5, math.nan),
    ([(0.1, 0.0), (INF, 0.0)], 0.5, math.nan),
    # buckets of the same bound (le="1" and le="1.0") are one: [(1, 15), (2, 20), (+Inf, 30)]
    ([(1.0, 10.0), (1.0, 5.0), (2.0, 20.0), (INF, 30.0)], 0.6, 1.6),
    # a decrease is flattened: [20, 20, 60, 100], so 0.5 + 0.5 * (50 - 20) / (60 - 20)
    ([(0.1, 20.0), (0.5, 10.0), (1.0, 60.0), (INF, 100.0)], 0.5, 0.875),
    # q = 0 with an empty lowest bucket: 0 / 0 in the interpolation, NaN (Python would raise)
    ([(0.1, 0.0), (INF, 10.0)], 0.0, math.nan),
    # a negative count (a gauge, not a rate) is below the rank 0: the rank falls in +Inf
    ([(0.1, -5.0), (INF, 10.0)], 0.0, 0.1),
    # q outside [0, 1] and NaN
    ([(0.1, 40.0), (INF, 100.0)], -0.1, -INF),
    ([(0.1, 40.0), (INF, 100.0)], 1.1, INF),
    ([(0.1, 40.0), (INF, 100.0)], math.nan, math.nan),
]


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


@pytest.mark.parametrize(("buckets", "q", "expected"), CASES)
def test_bucket_quantile_is_prometheus_case_by_case(buckets, q, expected):
    assert same(bucket_quantile(q, buckets), expected)


def test_differences_within_the_tolerance_are_float_noise():
    """[10, 10 + 4e-12, 20 + 8e-12, ...]: the second count is within 1e-12 (relative) of the first and taken as
    equal to it, so the median (rank 10 + 4e-12) falls in the third bucket, not at the top of the second."""
    counts = [10.0, 10.0 + 4e-12, 20.0 + 8e-12, 20.0 + 8e-12]
    rank = 0.5 * counts[-1]
    expected = 0.5 + (1.0 - 0.5) * ((rank - 10.0) / (counts[2] - 10.0))
    assert bucket_quantile(0.5, list(zip([0.1, 0.5, 1.0, INF], counts, strict=True))) == expected
    assert expected != 0.5  # what the same buckets give without the tolerance (Prometheus before 2.47)


@pytest.mark.parametrize(
    ("text", "bound"),
    [
        ("0.25", 0.25),
        ("1", 1.0),
        ("1e3", 1000.0),
        ("+Inf", INF),
        ("inf", INF),
        ("-Infinity", -INF),
        ("0x1p-2", 0.25),
        ("", None),
        ("abc", None),
        (" 1", None),
        ("1_000", None),
        ("0x10", None),
        ("1e400", None),
    ],
)
def test_le_is_read_as_go_parses_floats(text, bound):
    assert parse_bound(text) == bound


def series(le: str, samples: list[tuple[int, float]]) -> tuple[dict[str, str], tuple[int, ...], list[float]]:
    """A bucket series as the client reads it (client.query_range_columns)."""
    return ({"le": le}, tuple(ts for ts, _ in samples), [value for _, value in samples])


def test_steps_without_a_quantile_are_left_out_and_unparseable_buckets_skipped():
    answer = [
        series("0.1", [(1, 40.0), (2, 0.0), (3, 8.0)]),
        series("+Inf", [(1, 100.0), (2, 0.0), (3, 10.0)]),
        series("junk", [(1, 1e9), (2, 1e9), (3, 1e9)]),
    ]
    got = quantile_series(answer, {"p50": 0.5, "p99": 0.99, "out": 2.0})
    # step 2 has no observations (NaN), q = 2 is +Inf at every step: both left out; at step 1 the median falls
    # in +Inf (the bound below it), at step 3 inside the first bucket: 0.1 * 5 / 8
    assert got == {"p50": [(1, 0.1), (3, 0.0625)], "p99": [(1, 0.1), (3, 0.1)]}


def test_no_buckets_or_no_inf_bucket_gives_no_series():
    assert quantile_series([], {"p50": 0.5}) == {}
    assert quantile_series([series("0.1", [(1, 1.0)]), series("1", [(1, 2.0)])], {"p50": 0.5}) == {}


def test_buckets_missing_at_some_steps_are_taken_as_present():
    """A bucket series without a sample at a step (a gap): that step's quantile is over the buckets present."""
    answer = [
        series("0.1", [(1, 40.0), (3, 40.0)]),
        series("0.5", [(1, 80.0), (2, 80.0), (3, 80.0)]),
        series("+Inf", [(1, 100.0), (2, 100.0), (3, 100.0)]),
    ]
    got = quantile_series(answer, {"p50": 0.5})
    assert got == {
        "p50": [
            (1, bucket_quantile(0.5, [(0.1, 40.0), (0.5, 80.0), (INF, 100.0)])),
            (2, bucket_quantile(0.5, [(0.5, 80.0), (INF, 100.0)])),
            (3, bucket_quantile(0.5, [(0.1, 40.0), (0.5, 80.0), (INF, 100.0)])),
        ]
    }


# Counts as a range answer has them: mostly increasing with the bound, but with ties, decreases, zeros, tiny
# (relative 1e-13) differences, infinities and NaN now and then.
_count = st.one_of(
    st.floats(min_value=0, max_value=1e6, allow_nan=False),
    st.sampled_from([0.0, 1.0, 10.0, 10.0 + 1e-12, 10.0 - 1e-12, 1e-310, INF, math.nan]),
)
_bounds = st.lists(
    st.one_of(st.floats(min_value=-10, max_value=10, allow_nan=False, allow_infinity=False), st.just(0.0)),
    min_size=0,
    max_size=8,
    unique=True,
)
_qs = st.lists(
    st.one_of(st.floats(min_value=0, max_value=1), st.sampled_from([0.0, 0.5, 0.9, 0.99, 1.0])), min_size=1, max_size=4
)


@given(bounds=_bounds, rows=st.lists(st.lists(_count, min_size=9, max_size=9), min_size=1, max_size=6), qs=_qs)
def test_a_range_answer_gives_the_exact_port_at_every_step(bounds, rows, qs):
    """The fast path (every bucket at every step) against bucket_quantile per step: the very same floats."""
    all_bounds = [*bounds, INF]
    answer = [
        series(repr(bound) if bound != INF else "+Inf", [(step, row[i]) for step, row in enumerate(rows)])
        for i, bound in enumerate(all_bounds)
    ]
    keys = {f"q{i}": q for i, q in enumerate(qs)}
    got = quantile_series(answer, keys)
    for key, q in keys.items():
        expected = []
        for step, row in enumerate(rows):
            value = bucket_quantile(q, list(zip(all_bounds, row, strict=False)))
            if math.isfinite(value):
                expected.append((step, value))
        assert got.get(key, []) == expected, key


@pytest.mark.parametrize(
    "shape",
    [
        # lower buckets rising at every step, the top ones equal to the one below at every step
        lambda step, i: [0.5, 1.0, 2.5, 4.0, 4.0, 4.0][i] * (1 + step % 5),
        # every bucket rising at every step
        lambda step, i: (i + 1) * (step + 1) * 0.3,
        # one bucket within the tolerance of the one below at every step (float noise: taken as equal)
        lambda step, i: [1.0, 1.0 + 1e-13, 3.0, 3.0 + 2e-12, 5.0, 7.0][i] * (step + 1),
        # one bucket below the one below at every step (flattened), and zeros at the bottom
        lambda step, i: [0.0, 0.0, 2.0, 1.5, 4.0, 4.0][i] * (step + 1),
    ],
)
def test_whole_columns_decided_at_once_give_the_exact_port(shape):
    """The column-at-once cases of the envelope (every step equal, every step a clear rise) and the per-step
    ones, over a day of steps, against bucket_quantile at each step."""
    bounds = [0.005, 0.01, 0.1, 0.5, 1.0, INF]
    rows = [[shape(step, i) for i in range(len(bounds))] for step in range(1440)]
    answer = [
        series("+Inf" if bound == INF else repr(bound), [(step, row[i]) for step, row in enumerate(rows)])
        for i, bound in enumerate(bounds)
    ]
    keys = {"p50": 0.5, "p90": 0.9, "p99": 0.99}
    got = quantile_series(answer, keys)
    for key, q in keys.items():
        want = [(step, bucket_quantile(q, list(zip(bounds, row, strict=True)))) for step, row in enumerate(rows)]
        assert got[key] == [(step, value) for step, value in want if math.isfinite(value)]
