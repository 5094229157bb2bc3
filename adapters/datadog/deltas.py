"""Cumulative sums and histograms turned into deltas before they reach Datadog, the way Datadog's own OTel
exporter does by default (`cumulative_monotonic_mode: to_delta`) and the embedded store does at write time:
Datadog's `count` type holds increases, and the metrics queries (metrics.py) sum them per step.

The previous sample of each series is kept in memory, so a process restart makes the first sample of a series
count in full (as the embedded store counts a series' first sample), and a new `start_ns` or a decrease counts
in full too (the producer restarted). A sample at or before the series' last one is a retry or arrived late:
it adds nothing. State moves on only when the caller commits, after Datadog accepted the batch, so a batch
that must be retried is converted the same way again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from domain.model import MetricKind, MetricPoint

SeriesKey = tuple[str, object, tuple[tuple[str, str], ...]]


@dataclass(frozen=True, slots=True)
class _Last:
    ts_ns: int
    start_ns: int
    value: float
    count: float
    sum: float
    bounds: tuple[float, ...]
    buckets: tuple[float, ...]


def running_total(point: MetricPoint) -> bool:
    """A cumulative sum or histogram (a gauge is a level whatever its temporality flag says)."""
    return point.cumulative and point.kind != MetricKind.GAUGE


class DeltaConverter:
    def __init__(self) -> None:
        self._last: dict[SeriesKey, _Last] = {}

    def convert(self, points: Sequence[MetricPoint]) -> tuple[list[MetricPoint], dict[SeriesKey, _Last]]:
        """The points as deltas (cumulative=False) and the state to `commit` once they are delivered."""
        pending: dict[SeriesKey, _Last] = {}
        out: list[MetricPoint] = []
        for point in sorted(points, key=lambda p: p.ts_ns):
            if not running_total(point):
                out.append(point)
                continue
            key = (point.name, point.identity, tuple(sorted(point.attributes.items())))
            last = pending.get(key) or self._last.get(key)
            if last is not None and point.ts_ns <= last.ts_ns:
                continue  # a retry, or late: the later sample's delta already covers it
            out.append(_delta(point, last))
            pending[key] = _Last(
                point.ts_ns, point.start_ns, point.value, point.count, point.sum, point.bounds, point.bucket_counts
            )
        return out, pending

    def commit(self, pending: dict[SeriesKey, _Last]) -> None:
        self._last.update(pending)


def _delta(point: MetricPoint, last: _Last | None) -> MetricPoint:
    full = dataclasses.replace(point, cumulative=False, start_ns=last.ts_ns if last else point.start_ns)
    if last is None or point.start_ns != last.start_ns:
        return full
    if point.kind == MetricKind.SUM:
        if point.value < last.value:
            return full
        return dataclasses.replace(full, value=point.value - last.value)
    reset = (
        point.count < last.count
        or point.bounds != last.bounds
        or any(now < before for now, before in zip(point.bucket_counts, last.buckets, strict=False))
    )
    if reset:
        return full
    return dataclasses.replace(
        full,
        count=point.count - last.count,
        sum=point.sum - last.sum,
        bucket_counts=tuple(now - before for now, before in zip(point.bucket_counts, last.buckets, strict=False)),
    )
