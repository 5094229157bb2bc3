"""Backfilled metrics for the demo: what each pod's SDK instruments would have exported over the past minutes.

The SDK stamps metric points when its reader collects, so history cannot be recorded through instruments: the
demo (observer/demo.py) feeds the requests it backfills to a `PodHistory` per pod instead, and at every export
tick of the simulated past builds the points its instruments would have produced then, the same names, units,
attributes and temporalities (cumulative sums and histograms from the start of the history, gauges as
levels), as the SDK's own data classes. They leave through the SDK's own OTLP/HTTP metric exporter, with the
pod's Resource, so the receiver sees exactly what a live collection sends, only earlier.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from domain import semconv

_CUMULATIVE = AggregationTemporality.CUMULATIVE


@dataclass(frozen=True, slots=True)
class PodShape:
    """What a pod declares and how it behaves: its container requests and limits (cores, bytes), the memory it
    idles at and the bounds usage stays within, and the latency histogram's bucket bounds (seconds)."""

    cpu_request: float
    cpu_limit: float
    memory_request: float
    memory_limit: float
    memory_base: float
    memory_range: tuple[float, float]
    cpu_range: tuple[float, float]
    latency_bounds: tuple[float, ...]


@dataclass(slots=True)
class _Latency:
    """One attribute set's cumulative histogram."""

    buckets: list[int]
    count: int = 0
    total: float = 0.0
    low: float = float("inf")
    high: float = float("-inf")

    def record(self, seconds: float, bounds: tuple[float, ...]) -> None:
        index = next((i for i, bound in enumerate(bounds) if seconds <= bound), len(bounds))
        self.buckets[index] += 1
        self.count += 1
        self.total += seconds
        self.low, self.high = min(self.low, seconds), max(self.high, seconds)


@dataclass(slots=True)
class PodHistory:
    """One pod's instruments over the backfilled past: fed each request as `served`, read at each tick."""

    shape: PodShape
    start_ns: int
    seed: int
    _rng: random.Random = field(init=False)
    _latency: dict[tuple[int, str, str], _Latency] = field(init=False, default_factory=dict)
    _memory: float = field(init=False)
    _requests: int = field(init=False, default=0)
    _io: dict[str, int] = field(init=False)
    _last_tick: tuple[int, int] = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._memory = self.shape.memory_base
        self._io = dict.fromkeys(("receive", "transmit", "read", "write"), 0)
        self._last_tick = (self.start_ns, 0)

    def served(
        self,
        status: int,
        route: str,
        method: str,
        seconds: float,
        received: int,
        transmitted: int,
        read: int,
        written: int,
    ) -> None:
        """One request this pod served: a latency observation and its network and disk bytes."""
        key = (status, route, method)
        latency = self._latency.get(key)
        if latency is None:
            latency = self._latency[key] = _Latency([0] * (len(self.shape.latency_bounds) + 1))
        latency.record(seconds, self.shape.latency_bounds)
        self._requests += 1
        for direction, amount in (("receive", received), ("transmit", transmitted), ("read", read), ("write", written)):
            self._io[direction] += amount

    def metrics(self, at_ns: int) -> list[Metric]:
        """The points a collection at `at_ns` would export: as `register_resource_instruments` and the latency
        histogram of observer/demo.py report them."""
        then, count = self._last_tick
        rate = (self._requests - count) / max((at_ns - then) / 1e9, 0.001)
        self._last_tick = (at_ns, self._requests)
        cpu = min(max(0.05 + 0.05 * rate + self._rng.gauss(0, 0.01), self.shape.cpu_range[0]), self.shape.cpu_range[1])
        self._memory += self._rng.gauss(0, 2 * 1024 * 1024) + 0.1 * (self.shape.memory_base - self._memory)
        self._memory = min(max(self._memory, self.shape.memory_range[0]), self.shape.memory_range[1])

        def gauge(name: str, unit: str, value: float) -> Metric:
            return Metric(name, None, unit, Gauge([NumberDataPoint({}, self.start_ns, at_ns, value)]))

        def counter(name: str, attribute: str, directions: tuple[str, ...]) -> Metric:
            points = [NumberDataPoint({attribute: d}, self.start_ns, at_ns, self._io[d]) for d in directions]
            return Metric(name, None, "By", Sum(points, _CUMULATIVE, True))

        shape = self.shape
        metrics = [
            gauge(semconv.CPU_USAGE[0], "{cpu}", cpu),
            gauge(semconv.MEMORY_USAGE[0], "By", self._memory),
            gauge(semconv.CPU_REQUEST[0], "{cpu}", shape.cpu_request),
            gauge(semconv.CPU_LIMIT[0], "{cpu}", shape.cpu_limit),
            gauge(semconv.MEMORY_REQUEST[0], "By", shape.memory_request),
            gauge(semconv.MEMORY_LIMIT[0], "By", shape.memory_limit),
            counter(semconv.NETWORK_IO[0], semconv.NETWORK_DIRECTION_ATTRIBUTE, ("receive", "transmit")),
            counter(semconv.DISK_IO[0], semconv.DISK_DIRECTION_ATTRIBUTE, ("read", "write")),
        ]
        if self._latency:
            points = [
                HistogramDataPoint(
                    {semconv.HTTP_STATUS_ATTRIBUTE: status, "http.route": route, "http.request.method": method},
                    self.start_ns,
                    at_ns,
                    latency.count,
                    latency.total,
                    list(latency.buckets),
                    list(shape.latency_bounds),
                    latency.low,
                    latency.high,
                )
                for (status, route, method), latency in self._latency.items()
            ]
            metrics.append(
                Metric(semconv.HTTP_SERVER_DURATION, "HTTP server latency", "s", Histogram(points, _CUMULATIVE))
            )
        return metrics


def export_data(resource: Resource, scope_name: str, collections: list[list[Metric]]) -> MetricsData:
    """One pod's collections, oldest first, as the SDK hands points to its exporter: one metric per name holding
    the points of every collection in time order (the SDK's encoder keeps one metric per name and scope)."""
    merged: dict[str, Metric] = {}
    for metrics in collections:
        for metric in metrics:
            known = merged.get(metric.name)
            merged[metric.name] = metric if known is None else _joined(known, metric)
    scope = ScopeMetrics(InstrumentationScope(scope_name), list(merged.values()), "")
    return MetricsData([ResourceMetrics(resource, [scope], "")])


def _joined(first: Metric, then: Metric) -> Metric:
    """`first` with the data points of `then` after its own (the same name, kind and temporality)."""
    data = first.data
    points = [*data.data_points, *then.data.data_points]
    if isinstance(data, Gauge):
        return Metric(first.name, first.description, first.unit, Gauge(points))
    if isinstance(data, Sum):
        return Metric(first.name, first.description, first.unit, Sum(points, data.aggregation_temporality, True))
    assert isinstance(data, Histogram)
    return Metric(first.name, first.description, first.unit, Histogram(points, data.aggregation_temporality))
