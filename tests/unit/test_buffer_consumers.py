"""The buffer's named consumers (one per destination) and the export loops over them: each cursor is independent
and durable, a segment goes only when every consumer is done with it, a consumer that is behind holds disk within
`max_bytes`, a buffer from before named consumers opens with its acks intact, and a dropped batch is counted and
acknowledged instead of wedging the loop.

The sinks here are small TelemetrySinks of our own (the protocol the loops are written against); the loops against
real OpenSearch and Prometheus are in tests/integration/test_delivery_isolation.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from adapters.protocols import WriteResult
from collectors.buffer import Batch, BufferFull, DiskBuffer
from collectors.destination import SIGNALS, Destination
from collectors.pipeline import export_pipelines
from collectors.telemetry import CollectorTelemetry
from devservers.sample import BASE_NS, identity
from domain.model import LogRecord, MetricKind, MetricPoint

CART = identity("cart")


def batch(n: int, size: int = 50) -> Batch:
    return Batch(
        f"b{n}",
        logs=[LogRecord(BASE_NS + n, f"{n} ".ljust(size, "."), CART)],
        metrics=[MetricPoint("m", MetricKind.GAUGE, BASE_NS + n, CART, value=float(n))],
    )


async def take(buffer: DiskBuffer, consumer: str, count: int) -> list[int]:
    return [(await asyncio.wait_for(buffer.next(consumer), 5))[0] for _ in range(count)]


def segments(directory: Path) -> int:
    return len(list(directory.glob("*.seg")))


async def test_each_consumer_reads_and_acknowledges_on_its_own_cursor(tmp_path: Path) -> None:
    with DiskBuffer(tmp_path, consumers=["fast", "slow"], segment_bytes=400) as buffer:
        for n in range(6):
            buffer.append(batch(n))
        for seq in await take(buffer, "fast", 6):
            buffer.ack(seq, "fast")
        assert (buffer.backlog_of("fast"), buffer.backlog_of("slow"), buffer.backlog) == (0, 6, 6)
        held = segments(tmp_path)
        assert held > 1  # the slow consumer holds every segment
        assert await take(buffer, "slow", 2) == [0, 1]
        buffer.ack(0, "slow")
        buffer.ack(1, "slow")
        assert buffer.backlog == 4
    with DiskBuffer(tmp_path, consumers=["fast", "slow"], segment_bytes=400) as buffer:  # both cursors durable
        assert buffer.backlog_of("fast") == 0
        assert await take(buffer, "slow", 4) == [2, 3, 4, 5]
        for seq in (2, 3, 4, 5):
            buffer.ack(seq, "slow")
        assert buffer.backlog == 0 and buffer.used_bytes == 0
    assert segments(tmp_path) == 1  # only the next process's fresh active segment


async def test_a_consumer_that_is_behind_fills_the_buffer_and_producers_are_told_to_wait(tmp_path: Path) -> None:
    with DiskBuffer(tmp_path / "probe") as probe:  # the size of one batch's frame
        probe.append(batch(0))
        frame = probe.used_bytes
    with DiskBuffer(tmp_path / "buffer", consumers=["ok", "dead"], max_bytes=3 * frame) as buffer:
        for n in range(3):
            buffer.append(batch(n))
        for seq in await take(buffer, "ok", 3):
            buffer.ack(seq, "ok")
        with pytest.raises(BufferFull):
            buffer.append(batch(3))
        buffer.ack(0, "dead")
        buffer.append(batch(3))  # room again once the last consumer let go of a batch


def test_a_buffer_from_before_named_consumers_keeps_its_acks(tmp_path: Path) -> None:
    """A collector upgraded in place: the single ack log becomes every destination's starting cursor."""
    with DiskBuffer(tmp_path) as old:
        for n in range(4):
            old.append(batch(n))
        old.ack(0)
        old.ack(2)
    (tmp_path / "acks.export.log").rename(tmp_path / "acks.log")  # the same record format the old code wrote

    async def check() -> None:
        with DiskBuffer(tmp_path, consumers=["opensearch", "prometheus"]) as buffer:
            assert await take(buffer, "opensearch", 2) == [1, 3]
            assert await take(buffer, "prometheus", 2) == [1, 3]
        assert not (tmp_path / "acks.log").exists()

    asyncio.run(check())


def test_consumer_names_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="name"):
        DiskBuffer(tmp_path / "a", consumers=["../escape"])
    with pytest.raises(ValueError, match="each named once"):
        DiskBuffer(tmp_path / "b", consumers=["x", "x"])


# ----------------------------------------------------------------------------------------------- export loops


class Recording:
    """Stores what it is given; `outcomes` scripts the first results (then it delivers)."""

    def __init__(self, *outcomes: WriteResult) -> None:
        self.outcomes = list(outcomes)
        self.got: list[tuple[str, int, int]] = []  # batch id, logs, metrics

    async def write(
        self,
        *,
        batch_id: str,
        logs: Sequence[object] = (),
        events: Sequence[object] = (),
        spans: Sequence[object] = (),
        metrics: Sequence[object] = (),
    ) -> WriteResult:
        result = self.outcomes.pop(0) if self.outcomes else WriteResult.delivered()
        if result.outcome == "delivered":
            self.got.append((batch_id, len(logs), len(metrics)))
        return result


class Dead:
    """A destination that never comes back."""

    async def write(self, **_: object) -> WriteResult:
        return WriteResult.retry(0.05, "connection refused")


async def wait_for(check: object, within_s: float = 10) -> None:
    for _ in range(int(within_s / 0.02)):
        if check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.02)
    raise AssertionError("not in time")


async def test_a_dead_destination_delays_only_itself(tmp_path: Path) -> None:
    logs = Recording()
    telemetry = CollectorTelemetry()
    destinations = [
        Destination("logs", logs, frozenset({"logs"})),
        Destination("metrics", Dead(), frozenset({"metrics"})),
    ]
    with DiskBuffer(tmp_path, consumers=["logs", "metrics"]) as buffer:
        task = asyncio.create_task(export_pipelines(buffer, destinations, telemetry))
        try:
            for n in range(5):
                buffer.append(batch(n))
            await wait_for(lambda: len(logs.got) == 5)
            assert logs.got == [(f"b{n}", 1, 0) for n in range(5)]  # its part only
            assert buffer.backlog_of("logs") == 0 and buffer.backlog_of("metrics") == 5
            assert telemetry.registry.get_sample_value(
                "collector_destination_export_retries_total", {"destination": "metrics"}
            )
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_a_dropped_batch_is_counted_and_acknowledged_and_the_next_ones_arrive(tmp_path: Path) -> None:
    sink = Recording(WriteResult.retry(0.01, "busy"), WriteResult.dropped("destination_invalid", 2))
    telemetry = CollectorTelemetry()
    with DiskBuffer(tmp_path) as buffer:
        task = asyncio.create_task(export_pipelines(buffer, [Destination("export", sink, SIGNALS)], telemetry))
        try:
            for n in range(3):
                buffer.append(batch(n))
            await wait_for(lambda: buffer.backlog == 0)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert [batch_id for batch_id, _, _ in sink.got] == ["b1", "b2"]
    value = telemetry.registry.get_sample_value
    assert value("collector_records_dropped_total", {"pipeline": "export", "reason": "destination_invalid"}) == 2
    assert (
        value("collector_destination_records_dropped_total", {"destination": "export", "reason": "destination_invalid"})
        == 2
    )
    assert value("collector_export_retries_total", {"pipeline": "export"}) == 1


def test_a_destination_takes_only_its_signals() -> None:
    whole = batch(1)
    part = Destination("m", Recording(), frozenset({"metrics"})).part(whole)
    assert (part.batch_id, part.logs, part.metrics) == ("b1", [], whole.metrics)
    assert Destination("all", Recording(), SIGNALS).part(whole) is whole
    with pytest.raises(ValueError):
        Destination("x", Recording(), frozenset({"profiles"}))
