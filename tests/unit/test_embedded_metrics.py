"""The embedded backend's metrics: cumulative-to-delta storage and Prometheus-aligned range series."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.embedded import metrics
from adapters.embedded.backend import EmbeddedBackend
from adapters.embedded.store import Store
from domain import semconv
from domain.model import ComponentScope, Identity, MetricKind, MetricPoint, MetricsQuery, TimeRange

S = 1_000_000_000
T0 = 1_700_000_000 * S
BOUNDS = (0.1, 0.25, 0.5, 1.0)
DURATION = "http.server.request.duration"
RECEIVE = {"network.io.direction": "receive"}

_batches = itertools.count()


def identity(component: str = "cart", pod: str = "cart-1", environment: str = "prod") -> Identity:
    return Identity(
        namespace="acme",
        project="shop",
        project_uid="p-shop",
        component=component,
        component_uid=f"c-{component}",
        environment=environment,
        environment_uid=f"e-{environment}",
        pod=pod,
    )


CART = ComponentScope(namespace="acme", project_uid="p-shop", component_uid="c-cart", environment_uid="e-prod")


def gauge(name: str, ts_ns: int, value: float, who: Identity | None = None) -> MetricPoint:
    return MetricPoint(name, MetricKind.GAUGE, ts_ns, who or identity(), value=value)


def counter(ts_ns: int, value: float, start_ns: int = T0, cumulative: bool = True, **attrs: str) -> MetricPoint:
    return MetricPoint(
        "k8s.pod.network.io",
        MetricKind.SUM,
        ts_ns,
        identity(),
        attributes=attrs or RECEIVE,
        cumulative=cumulative,
        start_ns=start_ns,
        value=value,
    )


def histogram(
    ts_ns: int,
    counts: tuple[float, ...],
    total: float,
    status: str = "200",
    who: Identity | None = None,
    cumulative: bool = False,
    start_ns: int = T0,
) -> MetricPoint:
    return MetricPoint(
        DURATION,
        MetricKind.HISTOGRAM,
        ts_ns,
        who or identity(),
        attributes={"http.response.status_code": status},
        cumulative=cumulative,
        start_ns=start_ns,
        count=sum(counts),
        sum=total,
        bounds=BOUNDS,
        bucket_counts=counts,
    )


@pytest.fixture
def backend(tmp_path):
    backend = EmbeddedBackend(tmp_path)
    yield backend
    backend.close()


async def write(backend: EmbeddedBackend, *points: MetricPoint) -> None:
    await backend.write(batch_id=f"batch-{next(_batches)}", metrics=list(points))


async def series(
    backend: EmbeddedBackend, family: str, start: int, end: int, step: int, scope: ComponentScope = CART
) -> dict[str, list[tuple[int, float]]]:
    """The keys with points only (every answer has every key of its family: `test_every_key_is_answered`)."""
    return {key: points for key, points in (await full(backend, family, start, end, step, scope)).items() if points}


async def full(
    backend: EmbeddedBackend, family: str, start: int, end: int, step: int, scope: ComponentScope = CART
) -> dict[str, list[tuple[int, float]]]:
    return await backend.query_metrics(MetricsQuery(family, scope, TimeRange(start, end), step))


def at(*pairs: tuple[int, float]) -> list[tuple[int, float]]:
    """Expected points, given as (seconds after T0, value)."""
    return [(T0 + seconds * S, value) for seconds, value in pairs]


def near(*pairs: tuple[int, float]) -> list[tuple[int, object]]:
    """Like `at`, with values compared up to floating-point rounding."""
    return [(ts, pytest.approx(value)) for ts, value in at(*pairs)]


# ------------------------------------------------------------------------------------ cumulative -> delta


async def test_cumulative_counter_is_stored_as_deltas_through_restart_reset_and_retry(backend):
    await write(
        backend,
        counter(T0 + 10 * S, 100),  # first point of the series: the full value
        counter(T0 + 20 * S, 150),  # +50
        counter(T0 + 30 * S, 30, start_ns=T0 + 25 * S),  # producer restarted: the full value
        counter(T0 + 40 * S, 10, start_ns=T0 + 25 * S),  # went down with the same start: a reset, full value
        counter(T0 + 50 * S, 25, start_ns=T0 + 25 * S),  # +15
    )
    # A retried point (same series and ts, even with another value) changes nothing, not even the base of
    # the next delta: 40 - 25 = 15, not a reset from 999.
    await write(backend, counter(T0 + 50 * S, 999, start_ns=T0 + 25 * S))
    await write(backend, counter(T0 + 60 * S, 40, start_ns=T0 + 25 * S))

    got = await series(backend, "resource", T0 + 10 * S, T0 + 60 * S, 10 * S)

    # Rates are per second over 10 s steps.
    assert got == {"networkReceiveBytes": at((10, 10.0), (20, 5.0), (30, 3.0), (40, 1.0), (50, 1.5), (60, 1.5))}


async def test_cumulative_point_older_than_the_newest_is_dropped_not_counted_as_a_reset(backend):
    await write(backend, counter(T0 + 10 * S, 10), counter(T0 + 30 * S, 30))
    await write(backend, counter(T0 + 20 * S, 20))  # a batch that arrived late: T0+30s already covers it
    await write(backend, counter(T0 + 40 * S, 45))

    got = await series(backend, "resource", T0 + 10 * S, T0 + 40 * S, 10 * S)

    assert got == {"networkReceiveBytes": at((10, 1.0), (30, 2.0), (40, 1.5))}


async def test_delta_counter_points_are_stored_as_they_are(backend):
    await write(backend, counter(T0 + 10 * S, 7, cumulative=False), counter(T0 + 20 * S, 3, cumulative=False))

    got = await series(backend, "resource", T0 + 10 * S, T0 + 20 * S, 10 * S)

    assert got == {"networkReceiveBytes": at((10, 0.7), (20, 0.3))}


def stored_buckets(backend: EmbeddedBackend) -> dict[int, list[float]]:
    rows = backend.store.reader().execute("SELECT ts_ns, count FROM metric_buckets ORDER BY ts_ns, le").fetchall()
    out: dict[int, list[float]] = {}
    for ts_ns, count in rows:
        out.setdefault((ts_ns - T0) // S, []).append(count)
    return out


def stored_points(backend: EmbeddedBackend) -> dict[int, tuple[float, float]]:
    rows = backend.store.reader().execute("SELECT ts_ns, count, sum FROM metric_points ORDER BY ts_ns").fetchall()
    return {(ts_ns - T0) // S: (count, total) for ts_ns, count, total in rows}


async def test_cumulative_histogram_is_stored_as_count_sum_and_bucket_deltas(backend):
    await write(
        backend,
        histogram(T0 + 10 * S, (1, 2, 0, 0, 0), 0.5, cumulative=True),
        histogram(T0 + 20 * S, (3, 2, 4, 0, 1), 4.5, cumulative=True),
        histogram(T0 + 30 * S, (0, 1, 0, 0, 0), 0.2, cumulative=True),  # count went down: a reset
        histogram(T0 + 40 * S, (0, 1, 0, 0, 0), 0.2, cumulative=True, start_ns=T0 + 35 * S),  # a restart
    )
    relaid = histogram(T0 + 50 * S, (1, 1, 0, 0, 0), 0.3, cumulative=True, start_ns=T0 + 35 * S)
    relaid.bounds = (0.2, 0.5, 1.0, 2.0)  # a new bucket layout: nothing to subtract from, so the full value
    await write(backend, relaid)

    assert stored_points(backend) == {10: (3, 0.5), 20: (7, 4.0), 30: (1, 0.2), 40: (1, 0.2), 50: (2, 0.3)}
    assert stored_buckets(backend) == {
        10: [1, 2, 0, 0, 0],
        20: [2, 0, 4, 0, 1],
        30: [0, 1, 0, 0, 0],
        40: [0, 1, 0, 0, 0],
        50: [1, 1, 0, 0, 0],
    }
    le = backend.store.reader().execute("SELECT max(le) FROM metric_buckets").fetchone()[0]
    assert le == math.inf


async def test_a_histogram_without_buckets_resets_on_its_count(backend):
    def bare(ts_ns: int, count: float, total: float) -> MetricPoint:
        return MetricPoint(DURATION, MetricKind.HISTOGRAM, ts_ns, identity(), start_ns=T0, count=count, sum=total)

    await write(backend, bare(T0 + 10 * S, 5, 1.0), bare(T0 + 20 * S, 8, 1.5), bare(T0 + 30 * S, 2, 0.25))

    assert stored_points(backend) == {10: (5, 1.0), 20: (3, 0.5), 30: (2, 0.25)}


async def test_a_rolled_back_batch_leaves_no_trace_in_later_deltas(backend):
    bad = MetricPoint("k8s.pod.network.io", "bogus", T0 + 20 * S, identity())  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        await write(backend, counter(T0 + 10 * S, 100), bad)
    await write(backend, counter(T0 + 10 * S, 100), counter(T0 + 20 * S, 130))

    got = await series(backend, "resource", T0 + 10 * S, T0 + 20 * S, 10 * S)

    assert got == {"networkReceiveBytes": at((10, 10.0), (20, 3.0))}


# ------------------------------------------------------------------------------------ resource family


async def test_gauges_are_averaged_per_series_within_a_step_then_summed_over_pods(backend):
    pod_a, pod_b = identity(pod="cart-a"), identity(pod="cart-b")
    await write(
        backend,
        gauge("k8s.pod.cpu.usage", T0 + 1 * S, 1.0, pod_a),
        gauge("k8s.pod.cpu.usage", T0 + 5 * S, 3.0, pod_a),  # pod a averages 2.0 in the step
        gauge("k8s.pod.cpu.usage", T0 + 3 * S, 0.5, pod_b),
        gauge("k8s.pod.memory.working_set", T0 + 2 * S, 100.0, pod_a),
        gauge("k8s.pod.memory.working_set", T0 + 4 * S, 300.0, pod_b),
        gauge("k8s.pod.cpu.usage", T0 + 12 * S, 4.0, pod_b),
    )
    await write(backend, gauge("k8s.pod.cpu.usage", T0 + 5 * S, 99.0, pod_a))  # a retry changes nothing

    got = await series(backend, "resource", T0, T0 + 20 * S, 10 * S)

    assert got == {"cpuUsage": at((10, 2.5), (20, 4.0)), "memoryUsage": at((10, 400.0))}


async def test_steps_follow_prometheus_range_alignment(backend):
    start, step, end = T0, 60 * S, T0 + 150 * S
    samples = [
        (start - 60 * S, 1000.0),  # exactly start - step: belongs to no output step
        (start - 59 * S, 1.0),  # (start - step, start] -> t0 = start
        (start, 3.0),
        (start + 1, 10.0),  # one nanosecond later: (start, start + step] -> t1
        (start + 60 * S, 20.0),
        (start + 120 * S, 7.0),  # t2 = start + 120 s, the last t_k <= end
        (start + 121 * S, 500.0),  # would belong to t3 = start + 180 s > end
        (end, 900.0),
    ]
    await write(backend, *(gauge("k8s.pod.cpu.usage", ts, value) for ts, value in samples))

    got = await series(backend, "resource", start, end, step)

    # The partial step after t2 is one more point at the range's end, covering (end - step, end] like any other.
    assert got == {"cpuUsage": at((0, 2.0), (60, 15.0), (120, 7.0), (150, (7.0 + 500.0 + 900.0) / 3))}


async def test_steps_without_samples_are_left_out(backend):
    await write(backend, gauge("k8s.pod.cpu.usage", T0 + 5 * S, 1.0), gauge("k8s.pod.cpu.usage", T0 + 35 * S, 2.0))

    got = await series(backend, "resource", T0, T0 + 60 * S, 10 * S)

    assert got == {"cpuUsage": at((10, 1.0), (40, 2.0))}


async def test_rates_are_split_by_attribute_and_summed_over_pods(backend):
    def io(pod: str, ts: int, value: float, **attrs: str) -> MetricPoint:
        return MetricPoint(
            "k8s.pod.network.io",
            MetricKind.SUM,
            ts,
            identity(pod=pod),
            attributes=attrs,
            cumulative=False,
            value=value,
        )

    await write(
        backend,
        io("cart-a", T0 + 10 * S, 300, **{"network.io.direction": "receive"}),
        io("cart-a", T0 + 20 * S, 600, **{"network.io.direction": "receive"}),
        io("cart-b", T0 + 20 * S, 900, **{"network.io.direction": "receive"}),
        io("cart-a", T0 + 20 * S, 60, **{"network.io.direction": "transmit"}),
        MetricPoint(
            "k8s.pod.disk.io", MetricKind.SUM, T0 + 30 * S, identity(), {"disk.io.direction": "write"}, False, value=30
        ),
    )

    got = await series(backend, "resource", T0, T0 + 30 * S, 30 * S)

    assert got == {
        "networkReceiveBytes": at((30, 60.0)),  # (300 + 600 + 900) bytes / 30 s
        "networkTransmitBytes": at((30, 2.0)),
        "diskWriteBytes": at((30, 1.0)),
    }


async def test_another_components_or_environments_series_never_leak_in(backend):
    await write(
        backend,
        gauge("k8s.pod.cpu.usage", T0 + 5 * S, 1.0),
        gauge("k8s.pod.cpu.usage", T0 + 5 * S, 50.0, identity("payments", pod="payments-1")),
        gauge("k8s.pod.cpu.usage", T0 + 5 * S, 70.0, identity(pod="cart-staging", environment="staging")),
        histogram(T0 + 5 * S, (0, 0, 0, 5, 0), 4.0, who=identity("payments", pod="payments-1")),
    )

    assert await series(backend, "resource", T0, T0 + 10 * S, 10 * S) == {"cpuUsage": at((10, 1.0))}
    assert await series(backend, "http", T0, T0 + 10 * S, 10 * S) == {}
    project = ComponentScope(namespace="acme", project_uid="p-shop", environment_uid="e-prod")
    assert await series(backend, "resource", T0, T0 + 10 * S, 10 * S, project) == {"cpuUsage": at((10, 51.0))}


# ------------------------------------------------------------------------------------ http family


async def test_http_rates_split_by_status_and_mean_latency(backend):
    await write(
        backend,
        histogram(T0 + 5 * S, (10, 10, 5, 5, 0), 6.0, status="200"),
        histogram(T0 + 6 * S, (0, 0, 0, 0, 5), 2.0, status="302"),
        histogram(T0 + 7 * S, (0, 0, 0, 5, 5), 8.0, status="404"),
        histogram(T0 + 8 * S, (0, 0, 0, 0, 5), 4.0, status="503"),
        histogram(T0 + 8 * S, (0, 0, 0, 0, 99), 1.0, who=identity("payments", pod="payments-1")),
        histogram(T0 + 15 * S, (0, 0, 0, 0, 0), 0.0, status="200"),  # a step with no requests
    )

    got = await series(backend, "http", T0, T0 + 20 * S, 10 * S)

    assert got["requestCount"] == at((10, 5.0), (20, 0.0))  # 50 requests / 10 s
    assert got["successfulRequestCount"] == at((10, 3.5), (20, 0.0))
    assert got["unsuccessfulRequestCount"] == at((10, 1.5))  # no status >= 400 series in the second step
    assert got["meanLatency"] == at((10, 20.0 / 50))  # no mean over zero requests


async def test_latency_percentiles_match_prometheus_histogram_quantile(backend):
    await write(
        backend,
        # Step 1: bounds [0.1, 0.25, 0.5, 1], per-bucket counts [10, 20, 30, 40, 0] split over two series,
        # so the buckets must be summed by le. Cumulative: 10, 30, 60, 100, 100.
        histogram(T0 + 5 * S, (10, 20, 10, 0, 0), 20.0, status="200"),
        histogram(T0 + 6 * S, (0, 0, 20, 40, 0), 50.0, status="500"),
        # Step 2: most observations beyond the largest finite bound.
        histogram(T0 + 15 * S, (0, 0, 0, 1, 9), 30.0),
        # Step 3: all in the first bucket, interpolated from 0.
        histogram(T0 + 25 * S, (4, 0, 0, 0, 0), 0.2),
        # Step 4: an empty bucket right after the rank: p50's rank 5 reaches cumulative 5 in the first bucket.
        histogram(T0 + 35 * S, (5, 0, 5, 0, 0), 1.5),
    )

    got = await series(backend, "http", T0, T0 + 40 * S, 10 * S)

    # p50: rank 50 falls in (0.25, 0.5] holding 30 (cumulative 30 -> 60): 0.25 + 0.25 * (50 - 30) / 30.
    # p90: rank 90 in (0.5, 1] holding 40 (60 -> 100): 0.5 + 0.5 * 30 / 40 = 0.875; p99: 0.5 + 0.5 * 39 / 40.
    # Step 2: cumulative 0, 0, 0, 1, 10, so ranks 5, 9 and 9.9 all fall in +Inf: the largest finite bound.
    # Step 3: ranks 2, 3.6 and 3.96 of 4 in (0, 0.1]: 0.1 * rank / 4.
    # Step 4: rank 5 -> 0.1 (not 0.25, the start of the next non-empty bucket); ranks 9 and 9.9 in (0.25, 0.5].
    assert got["latencyP50"] == near((10, 0.25 + 0.25 * 20 / 30), (20, 1.0), (30, 0.05), (40, 0.1))
    assert got["latencyP90"] == near((10, 0.875), (20, 1.0), (30, 0.09), (40, 0.25 + 0.25 * 4 / 5))
    assert got["latencyP99"] == near((10, 0.9875), (20, 1.0), (30, 0.099), (40, 0.25 + 0.25 * 4.9 / 5))


def prometheus_bucket_quantile(q: float, bounds: tuple[float, ...], counts: tuple[float, ...]) -> float:
    """A transcription of Prometheus' bucketQuantile (promql/quantile.go) over cumulative buckets."""
    upper = [*bounds, math.inf]
    cumulative = list(itertools.accumulate(counts))
    observations = cumulative[-1]
    if observations == 0:
        return math.nan
    rank = q * observations
    b = next((i for i in range(len(upper) - 1) if cumulative[i] >= rank), len(upper) - 1)
    if b == len(upper) - 1:
        return upper[-2]
    if b == 0 and upper[0] <= 0:
        return upper[0]
    start, count = 0.0, cumulative[b]
    if b > 0:
        start, count, rank = upper[b - 1], count - cumulative[b - 1], rank - cumulative[b - 1]
    return start + (upper[b] - start) * (rank / count)


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("quantiles"))
    yield store
    store.close()


@settings(deadline=None)  # examples: the profile (tests/conftest.py)
@given(
    bounds=st.lists(st.floats(0.001, 100, allow_nan=False), min_size=1, max_size=6, unique=True).map(
        lambda values: tuple(sorted(values))
    ),
    data=st.data(),
)
def test_quantiles_agree_with_a_transcription_of_prometheus(shared_store, bounds, data):
    counts = tuple(data.draw(st.lists(st.integers(0, 50), min_size=len(bounds) + 1, max_size=len(bounds) + 1)))
    component = f"example-{next(_batches)}"  # every example in a component of its own
    point = MetricPoint(
        DURATION, MetricKind.HISTOGRAM, T0, identity(component), {}, False, 0, 0.0, sum(counts), 1.0, bounds, counts
    )
    with shared_store.transaction() as conn:
        metrics.insert_metric_points(shared_store, conn, [point])
    scope = ComponentScope("acme", component_uid=f"c-{component}")
    got = metrics.query_metrics(shared_store.reader(), MetricsQuery("http", scope, TimeRange(T0, T0), S))
    for key, q in (("latencyP50", 0.5), ("latencyP90", 0.9), ("latencyP99", 0.99)):
        expected = prometheus_bucket_quantile(q, bounds, counts)
        if math.isnan(expected):
            assert got[key] == []
        else:
            assert got[key] == [(T0, pytest.approx(expected))]


async def test_every_key_is_answered(backend):
    """An empty answer has the keys of a full one, with empty lists, and so has a partly empty one."""
    await write(backend, gauge("k8s.container.cpu.limit", T0 + 5 * S, 2.0))

    resource = await full(backend, "resource", T0, T0 + 10 * S, 10 * S)
    assert list(resource) == [spec.key for spec in semconv.RESOURCE_SERIES]
    assert resource["cpuLimits"] == at((10, 2.0))
    assert all(points == [] for key, points in resource.items() if key != "cpuLimits")
    assert await full(backend, "http", T0, T0 + 10 * S, 10 * S) == {key: [] for key in semconv.HTTP_SERIES}
    # A range shorter than nothing (end before start cannot pass validation, but the store answers it too).
    assert await full(backend, "http", T0, T0 - 1, 10 * S) == {key: [] for key in semconv.HTTP_SERIES}


async def test_a_partial_last_step_gets_a_point_at_the_end(backend):
    """15 minutes at a 4-minute step: points at 0, 4, 8, 12 min and one at 15 min for the newest samples."""
    await write(backend, gauge("k8s.pod.cpu.usage", T0 + 14 * 60 * S, 3.0))

    got = await series(backend, "resource", T0, T0 + 15 * 60 * S, 4 * 60 * S)

    assert got == {"cpuUsage": at((15 * 60, 3.0))}
    whole = await series(backend, "resource", T0, T0 + 16 * 60 * S, 4 * 60 * S)
    assert whole == {"cpuUsage": at((16 * 60, 3.0))}  # a whole number of steps: no extra point
