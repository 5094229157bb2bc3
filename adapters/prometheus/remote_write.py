"""Metric points into Prometheus through its remote-write receiver (remote write 1.0, `/api/v1/write`).

Three steps, each small enough to test alone:

1. `Accumulator.series` turns points into Prometheus series, named the way the OpenTelemetry Collector's
   `prometheusremotewrite` exporter names them (`naming.py`): a gauge is one sample, a sum `<name>_total`, a
   histogram its `_bucket{le=...}` (cumulative counts), `_sum` and `_count`. Prometheus only understands running
   totals, so delta sums and histograms are added up per series here. The totals live in memory: after a restart
   they start from 0 again, which Prometheus's `rate()`/`increase()` read as a counter reset, i.e. harmlessly.
2. `encode_write_request` writes the `WriteRequest` protobuf by hand (four tiny messages; no generated code, no
   dependency on Prometheus's .proto files), and the body is snappy block-compressed (`cramjam`).
3. `RemoteWriter` posts it, at most `max_samples_per_request` samples per request, retrying what may heal.

What Prometheus does with bad samples (measured on 2.42, with and without `out_of_order_time_window`; the
windowed cases are in `tests/integration/test_prometheus_remote_write.py`):

- It appends a request's samples one by one and, at the first it refuses, rolls the whole request back: none of
  the request is kept, and the answer (a 400: "out of order sample", "duplicate sample for timestamp", "out of
  bounds") does not say which sample it was. 2.42 answers 500 for "too old sample" (older than the out-of-order
  window) and "invalid sample"; they are refusals all the same and are not retried. `RemoteWriter._send` halves a
  refused request until the refused samples stand alone, so one stale sample does not cost its neighbours.
- An exact duplicate (same timestamp, same value) of the newest sample of a series is a no-op (204). With the
  out-of-order window on, so is a duplicate of an older sample; a *different* value at an older timestamp is
  dropped silently (204, the first value stays), and only a different value at the newest timestamp is refused.
  So a redelivered batch is harmless. Without the window every re-sent sample but the newest is "out of order":
  such a batch is refused, logged and not raised, which is also what redelivery needs; but new samples sent in
  the same request as many re-sent ones may be refused with them once the splitting gives up
  (`MAX_SPLIT_REQUESTS`). Run Prometheus with `out_of_order_time_window` (as `tests/servers` does).
- Within one request, a sample older than an earlier one of its series is dropped silently without the window
  (204): samples go out in time order.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import struct
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from itertools import accumulate

import cramjam
import httpx

from adapters.prometheus.naming import identity_labels, label_name, metric_name
from adapters.protocols import BackendUnavailable, WriteResult
from domain import semconv
from domain.model import MetricKind, MetricPoint

log = logging.getLogger(__name__)

#: A series' labels, sorted by name, `__name__` among them; and one sample, (timestamp ms, value).
Labels = tuple[tuple[str, str], ...]
Sample = tuple[int, float]
Series = tuple[Labels, list[Sample]]

#: Running totals untouched this long are forgotten (pods come and go); a series that comes back starts again
#: from 0, which reads as a counter reset.
IDLE_TOTALS_S = 3600.0

#: How many requests a refused request may be split into (see `RemoteWriter._send`).
MAX_SPLIT_REQUESTS = 64
_REFUSALS_AS_500 = ("too old sample", "invalid sample")
#: Drop reasons in write results (the `reason` label of the collector's dropped-records counter); counts are samples.
DROPPED_INVALID = "destination_invalid"  # every sample of the batch refused
DROPPED_SAMPLES = "destination_samples_refused"  # some samples refused, the rest stored

_HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}

# ----------------------------------------------------------------------------------------------- encoding

_DOUBLE = struct.Struct("<d")
_UINT64 = (1 << 64) - 1


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _length_delimited(tag: bytes, payload: bytes) -> bytes:
    return tag + _varint(len(payload)) + payload


def _encode_labels(labels: Labels) -> bytes:
    """The `labels` fields of a TimeSeries: Label{string name = 1; string value = 2} each, as field 1."""
    return b"".join(
        _length_delimited(b"\x0a", _length_delimited(b"\x0a", name.encode()) + _length_delimited(b"\x12", v.encode()))
        for name, v in labels
    )


def _encode_sample(ts_ms: int, value: float) -> bytes:
    """A `samples` field of a TimeSeries (field 2): Sample{double value = 1; int64 timestamp = 2}. A negative
    int64 is its two's complement as a 10-byte varint, as protobuf has it."""
    timestamp = _varint(ts_ms & _UINT64)
    # The body is at most 1 + 8 + 1 + 10 bytes, so its length is one byte.
    return b"\x12" + bytes((10 + len(timestamp),)) + b"\x09" + _DOUBLE.pack(value) + b"\x10" + timestamp


def encode_write_request(series: Iterable[Series]) -> bytes:
    """WriteRequest{repeated TimeSeries timeseries = 1}, each TimeSeries{repeated Label labels = 1; repeated Sample
    samples = 2}. Labels are written in the order given: Prometheus wants them sorted by name."""
    return b"".join(
        _length_delimited(b"\x0a", _encode_labels(labels) + b"".join(_encode_sample(t, v) for t, v in samples))
        for labels, samples in series
    )


@lru_cache(maxsize=4096)
def format_le(bound: float) -> str:
    """A bucket bound as the Collector writes it (Go's `FormatFloat(b, 'f', -1, 64)`): the shortest digits that
    read back as the same float, never an exponent (`0.005`, `1`, `2.5`, `1000000`), and `+Inf`."""
    if math.isinf(bound):
        return "+Inf" if bound > 0 else "-Inf"
    text = format(Decimal(repr(bound)).normalize(), "f")
    return "0" if text == "-0" else text


# ----------------------------------------------------------------------------------------------- series


@dataclass(slots=True)
class _Total:
    """The running total of one delta series: the sum (or a histogram's sum, count and per-bound cumulative
    counts) and the time of the last delta added, which a later delta must be newer than."""

    ts_ns: int
    value: float = 0.0
    count: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)  # bound (inf for +Inf) -> observations <= bound

    def copy(self) -> _Total:
        return _Total(self.ts_ns, self.value, self.count, dict(self.buckets))


@dataclass(slots=True)
class Conversion:
    """Series to write, the running totals to keep once they are written, and how many delta points were skipped
    as not newer than their series' last one (a redelivered batch, or a delta too late to add)."""

    series: list[Series]
    totals: dict[tuple[str, Labels], _Total]
    skipped: int = 0

    @property
    def samples(self) -> int:
        return sum(len(samples) for _, samples in self.series)


class Accumulator:
    """Points to Prometheus series, keeping the running totals that delta points add to.

    `series()` does not change the totals; `commit()` keeps those of a conversion once it is written, so a write
    that failed and is retried adds its deltas once. Points are applied in time order; a delta point whose time is
    not after the last one applied to its series is skipped: at-least-once delivery re-sends batches, and adding a
    redelivered delta again would count it twice (a late delta cannot be inserted into a running total without
    rewriting the samples after it, either).
    """

    def __init__(self) -> None:
        self._totals: dict[tuple[str, Labels], _Total] = {}
        self._swept = time.monotonic()

    def series(self, points: Sequence[MetricPoint]) -> Conversion:
        out: dict[Labels, list[Sample]] = {}
        totals: dict[tuple[str, Labels], _Total] = {}
        skipped = 0
        for point in sorted(points, key=lambda p: p.ts_ns):
            name = metric_name(point.name, point.unit or semconv.UNITS.get(point.name, ""), point.kind)
            labels = _point_labels(point)
            ts_ms = point.ts_ns // 1_000_000
            if point.kind is MetricKind.GAUGE:
                _add(out, name, labels, ts_ms, point.value)
                continue
            total = None
            if not point.cumulative:
                key = (name, labels)
                total = totals.get(key) or (self._totals[key].copy() if key in self._totals else None)
                if total is not None and point.ts_ns <= total.ts_ns:
                    skipped += 1
                    continue
                total = totals[key] = _accumulate(total, point)
            if point.kind is MetricKind.SUM:
                _add(out, name, labels, ts_ms, total.value if total else point.value)
            else:
                _histogram(out, name, labels, ts_ms, point, total)
        return Conversion([(labels, samples) for labels, samples in out.items()], totals, skipped)

    def commit(self, conversion: Conversion) -> None:
        self._totals.update(conversion.totals)
        now = time.monotonic()
        if now - self._swept > IDLE_TOTALS_S / 4:
            self._swept = now
            oldest = time.time_ns() - int(IDLE_TOTALS_S * 1e9)
            self._totals = {key: total for key, total in self._totals.items() if total.ts_ns >= oldest}


def _point_labels(point: MetricPoint) -> Labels:
    """Identity labels, then the point's attributes under Prometheus label names. An attribute cannot replace an
    identity label, `__name__` or `le`; attributes that sanitise to the same name are joined with `;` in key order
    (as the Collector does); empty values are left out (Prometheus treats an empty label as no label)."""
    labels = dict(identity_labels(point.identity))
    reserved = {*labels, "__name__", "le"}
    for key in sorted(point.attributes):
        name, value = label_name(key), point.attributes[key]
        if not name or not value or name in reserved:
            continue
        labels[name] = f"{labels[name]};{value}" if name in labels else value
    return tuple(sorted(labels.items()))


def _accumulate(total: _Total | None, point: MetricPoint) -> _Total:
    total = total or _Total(point.ts_ns)
    total.ts_ns = point.ts_ns
    if point.kind is MetricKind.SUM:
        total.value += point.value
        return total
    total.value += point.sum
    total.count += point.count
    for bound, running in zip((*point.bounds, math.inf), accumulate(point.bucket_counts)):
        total.buckets[bound] = total.buckets.get(bound, 0.0) + running
    return total


def _add(out: dict[Labels, list[Sample]], name: str, labels: Labels, ts_ms: int, value: float) -> None:
    key = tuple(sorted((*labels, ("__name__", name))))
    out.setdefault(key, []).append((ts_ms, value))


def _histogram(
    out: dict[Labels, list[Sample]], base: str, labels: Labels, ts_ms: int, point: MetricPoint, total: _Total | None
) -> None:
    bounds = (*point.bounds, math.inf)
    if total is None:
        cumulative = list(accumulate(point.bucket_counts))
        value, count = point.sum, point.count
    else:
        cumulative = [total.buckets.get(bound, 0.0) for bound in bounds]
        value, count = total.value, total.count
    for bound, bucket in zip(bounds, cumulative):
        _add(out, f"{base}_bucket", (*labels, ("le", format_le(bound))), ts_ms, bucket)
    _add(out, f"{base}_sum", labels, ts_ms, value)
    _add(out, f"{base}_count", labels, ts_ms, count)


def chunks(series: Sequence[Series], limit: int) -> Iterator[list[Series]]:
    """The series in requests of at most `limit` samples, in order; a long series is split across requests."""
    batch: list[Series] = []
    room = limit
    for labels, samples in series:
        start = 0
        while start < len(samples):
            take = samples[start : start + room]
            batch.append((labels, take))
            start += len(take)
            room -= len(take)
            if room == 0:
                yield batch
                batch, room = [], limit
    if batch:
        yield batch


# ----------------------------------------------------------------------------------------------- writer


class RemoteWriter:
    """Writes metric points to Prometheus's remote-write receiver (`--web.enable-remote-write-receiver`).

    Connection errors, timeouts, 429 and 5xx are retried with exponential backoff and jitter until
    `retry_deadline_s`, then `write` answers `retry` (the collector answers 503 and its sender retries).
    Samples Prometheus refuses (400, and the 500s that mean the same) are logged and counted in the result, never
    retried: they would be refused again (see the module docstring for what Prometheus refuses).

    Writes run one at a time: each must see the running totals the one before it committed.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 10.0,
        retry_deadline_s: float = 30.0,
        backoff_s: float = 0.1,
        max_backoff_s: float = 5.0,
        max_samples_per_request: int = 10_000,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/") + "/api/v1/write"
        self.retry_deadline_s = retry_deadline_s
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_samples_per_request = max_samples_per_request
        self.accumulator = Accumulator()
        self._http = httpx.AsyncClient(timeout=timeout_s, headers=_HEADERS, transport=transport)
        self._lock = asyncio.Lock()

    async def write(self, points: Sequence[MetricPoint]) -> WriteResult:
        """Retry when Prometheus stayed unreachable or busy past the deadline, or answered another 4xx (the
        running totals are then left as they were, so the same points can be written again). Otherwise
        delivered, counting the samples Prometheus refused; dropped when it refused every one of them (a batch
        it can never take, which must not hold up the ones behind it)."""
        async with self._lock:
            conversion = self.accumulator.series(points)
            if conversion.skipped:
                log.info("skipped %d delta points not newer than their series' last (redelivered?)", conversion.skipped)
            refused = 0
            try:
                for batch in chunks(conversion.series, self.max_samples_per_request):
                    refused += await self._send(batch)
            except BackendUnavailable as exc:
                return WriteResult.retry(reason=str(exc))
            self.accumulator.commit(conversion)
        if not refused:
            return WriteResult.delivered()
        log.warning(
            "Prometheus refused %d of %d samples (out of order, too old, or a different value for a "
            "timestamp it already has)",
            refused,
            conversion.samples,
        )
        if refused == conversion.samples:
            return WriteResult.dropped(DROPPED_INVALID, refused)
        return WriteResult.delivered(refused, DROPPED_SAMPLES)

    async def close(self) -> None:
        await self._http.aclose()

    async def _send(self, batch: list[Series]) -> int:
        """Posts one request; returns how many of its samples Prometheus refused.

        Prometheus refuses a request whole for any one bad sample and keeps none of it, without saying which
        sample it was. So a refused request is halved and each half sent again, oldest first, until each refused
        part is a single sample: the good samples get in at the cost of about 2 x log2(n) requests per bad sample.
        A request that is bad throughout (a redelivered batch, to a Prometheus without an out-of-order window)
        would cost 2n requests; after `MAX_SPLIT_REQUESTS` the parts left are sent once more each, unsplit.
        """
        refused = 0
        requests = 0
        pending = [batch]  # a stack: the older half on top
        while pending:
            part = pending.pop()
            status, text = await self._post(encode_write_request(part))
            requests += 1
            if status < 300:
                continue
            size = sum(len(samples) for _, samples in part)
            if size == 1 or requests >= MAX_SPLIT_REQUESTS:
                log.debug("Prometheus refused %d samples (%s)", size, text.strip()[:200])
                refused += size
                continue
            older, newer = _halves(part, size)
            pending += [newer, older]
        return refused

    async def _post(self, body: bytes) -> tuple[int, str]:
        """Posts until Prometheus answers something final, and returns (status, body): 2xx, or a refusal (400, or
        the 500s that are refusals too). Raises BackendUnavailable when the retry deadline passes or Prometheus
        answers another 4xx (a configuration problem, e.g. a 404 when the remote-write receiver is off)."""
        compressed = bytes(cramjam.snappy.compress_raw(body))
        deadline = time.monotonic() + self.retry_deadline_s
        attempt = 0
        while True:
            try:
                response = await self._http.post(self.url, content=compressed)
                status, text = response.status_code, response.text
                if status < 300 or status == 400 or (status == 500 and _is_refusal(text)):
                    return status, text
                problem = f"answered {status}: {text.strip()[:200]}"
                if status != 429 and status < 500:
                    raise BackendUnavailable(f"Prometheus remote write {problem}")
            except httpx.TransportError as exc:
                problem = f"unreachable ({type(exc).__name__})"
            delay = random.uniform(0.5, 1.0) * min(self.max_backoff_s, self.backoff_s * 2**attempt)
            if time.monotonic() + delay > deadline:
                raise BackendUnavailable(f"Prometheus remote write {problem}; gave up after {attempt + 1} attempts")
            attempt += 1
            await asyncio.sleep(delay)


def _is_refusal(text: str) -> bool:
    """Prometheus 2.42 answers 500, not 400, for a sample older than its out-of-order window ("too old sample")
    and for a malformed one ("invalid sample", e.g. a repeated label name): retrying those can only fail again."""
    return any(reason in text for reason in _REFUSALS_AS_500)


def _halves(batch: list[Series], size: int) -> tuple[list[Series], list[Series]]:
    """A batch split into two of about half the samples each (a series may be cut in two)."""
    room = (size + 1) // 2
    first: list[Series] = []
    rest: list[Series] = []
    for labels, samples in batch:
        taken = samples[:room]
        room -= len(taken)
        if taken:
            first.append((labels, taken))
        if len(taken) < len(samples):
            rest.append((labels, samples[len(taken) :]))
    return first, rest
