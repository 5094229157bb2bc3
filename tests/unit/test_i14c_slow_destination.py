"""The collector's memory stays bounded whatever the ratio of source to destination speed (issue 14).

Between the tail and an export loop, batches live in the durable buffer: in memory only up to `memory_bytes` of
frames and `memory_records` records, on disk up to `max_bytes`. The tail, ahead of every exporter, waits for room
in memory rather than reading on (`wait_for_memory`); an exporter that stalls lets it fill the disk instead, and
a full disk buffer holds it back too. These tests put destinations slower than the tail behind the real pipeline
and check the bounds at every write, that the tail is held back, and that every line arrives exactly once, in
order. No timing is asserted: the destinations are held shut and let through by the test.
"""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from adapters.protocols import WriteResult
from collectors.buffer import Batch, DiskBuffer
from collectors.buffer.hold import RECORD_OVERHEAD_BYTES
from collectors.enrich import Enricher
from collectors.pipeline import export_pipeline, tail_pipeline
from collectors.tail.checkpoint import CheckpointStore
from collectors.tail.formats import cri_line
from collectors.tail.tailer import TailConfig, Tailer
from collectors.telemetry import CollectorTelemetry
from devservers.sample import BASE_NS, identity
from domain.model import EventRecord, LogRecord, MetricPoint, SpanRecord

CART = identity("cart")
POD_DIR = "dp-acme-prod_cart-7d9f-abcde_0b9e4c1a-1111-4a2b-9c3d-123456789abc/main"
GUARD_S = 60  # only ends a hang; never reached when things work


# ----------------------------------------------------------------------------------------- the memory bound


def test_short_lines_held_in_memory_stay_within_the_record_bound(tmp_path: Path) -> None:
    """A short line's record objects weigh many times its encoding (about 200 bytes against 15), so a hold
    counted in frame bytes alone would take several times `memory_bytes` of memory. `memory_records` caps it:
    what the buffer keeps stays under `memory_bytes + memory_records * RECORD_OVERHEAD_BYTES`."""
    memory_bytes, memory_records = 1 << 20, 5_000
    slack = 512 * 1024  # the buffer's own index of 100 frames, the ack logs, the interpreter's noise
    with DiskBuffer(tmp_path, memory_bytes=memory_bytes, memory_records=memory_records, fsync=False) as buffer:
        tracemalloc.start()
        try:
            for n in range(100):  # 100,000 records that nobody takes
                buffer.append(Batch(f"b{n}", logs=[LogRecord(BASE_NS + i, f"ok {i}", CART) for i in range(1_000)]))
            traced, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert buffer.held_records <= memory_records
        assert buffer.held_bytes <= memory_bytes
        assert traced <= memory_bytes + memory_records * RECORD_OVERHEAD_BYTES + slack
        assert buffer.backlog == 100  # all of it is still there, on disk


async def test_batches_past_the_record_bound_are_read_back_from_disk_unchanged(tmp_path: Path) -> None:
    """The count bound decides what is held; the rest comes back from disk equal to what was appended."""
    appended = [
        Batch(f"b{n}", logs=[LogRecord(BASE_NS + n * 10 + i, f"{n}:{i}", CART) for i in range(4)]) for n in range(5)
    ]
    with DiskBuffer(tmp_path, memory_records=8) as buffer:
        for batch in appended:
            buffer.append(batch)
        assert (buffer.held_records, buffer.backlog) == (8, 5)
        handed = [(await asyncio.wait_for(buffer.next(), GUARD_S))[1] for _ in appended]
        assert [got is sent for got, sent in zip(handed, appended, strict=True)] == [True, True, False, False, False]
        assert handed == appended
        assert (buffer.held_records, buffer.held_bytes) == (0, 0)


# ----------------------------------------------------------------------------------------- waiting for memory


def batch_of(n: int, records: int = 2) -> Batch:
    return Batch(f"b{n}", logs=[LogRecord(BASE_NS + n * 10 + i, f"{n}:{i}", CART) for i in range(records)])


async def pending(task: asyncio.Task[bool]) -> bool:
    """Whether the task is still waiting after the loop has had every chance to run it."""
    for _ in range(20):
        await asyncio.sleep(0)
    return not task.done()


async def test_a_producer_waits_for_memory_until_the_consumer_takes_a_held_batch(tmp_path: Path) -> None:
    with DiskBuffer(tmp_path, memory_records=4) as buffer:
        assert await buffer.wait_for_memory(2, patience_s=GUARD_S) is False  # room: no wait
        buffer.append(batch_of(0))
        buffer.append(batch_of(1))
        waiting = asyncio.ensure_future(buffer.wait_for_memory(2, patience_s=GUARD_S))
        assert await pending(waiting)
        await buffer.next()  # handed over: the batch leaves memory
        assert await asyncio.wait_for(waiting, GUARD_S) is True
        assert buffer.held_records == 2


async def test_a_producer_does_not_wait_for_memory_a_slower_consumer_pins(tmp_path: Path) -> None:
    """Once the faster consumer has every held batch, only the slower one keeps them in memory: waiting would
    starve the faster one, so the producer goes ahead (its batch goes to disk for the slower one)."""
    with DiskBuffer(tmp_path, memory_records=4, consumers=("fast", "slow")) as buffer:
        buffer.append(batch_of(0))
        buffer.append(batch_of(1))
        waiting = asyncio.ensure_future(buffer.wait_for_memory(2, patience_s=GUARD_S))
        assert await pending(waiting)
        await buffer.next("fast")
        assert await pending(waiting)  # one held batch nobody has yet
        await buffer.next("fast")
        assert await asyncio.wait_for(waiting, GUARD_S) is True
        assert buffer.held_records == 4  # still held for "slow"


async def test_a_producer_stops_waiting_for_memory_when_no_consumer_progresses(tmp_path: Path) -> None:
    """An exporter that takes nothing (an outage) must not hold the producer back beyond the patience: from then
    on, batches go to the disk buffer, which is there to absorb an outage."""
    with DiskBuffer(tmp_path, memory_records=4) as buffer:
        buffer.append(batch_of(0))
        buffer.append(batch_of(1))
        assert await asyncio.wait_for(buffer.wait_for_memory(2, patience_s=0.05), GUARD_S) is True
        buffer.append(batch_of(2))  # to disk only
        assert (buffer.held_records, buffer.backlog) == (4, 3)
        assert await buffer.wait_for_memory(2, patience_s=0.05) is False  # still no progress: no wait at all


async def test_a_producer_does_not_wait_for_memory_while_a_larger_backlog_is_on_disk(tmp_path: Path) -> None:
    """After an outage the consumers work through a backlog on disk; the memory they free is not what they need
    next, so a tail waiting for it would pause for the whole backlog while its files rotate. It goes on adding
    to the disk backlog instead, bounded by `max_bytes`."""
    with DiskBuffer(tmp_path, memory_records=4) as buffer:
        for n in range(2):
            buffer.append(batch_of(n))  # held: the hold is full
        assert await asyncio.wait_for(buffer.wait_for_memory(2, patience_s=0.05), GUARD_S) is True  # an outage
        frame = buffer.used_bytes // 2
        for n in range(2, 2 + 3 * buffer.held_bytes // frame):  # to disk only: more than the hold, past it
            buffer.append(batch_of(n))
        await buffer.next()  # the consumer is back: progress, and a held batch released
        buffer.append(batch_of(99))  # held again, untouched, behind the backlog on disk
        assert buffer.held_records == 4
        assert await buffer.wait_for_memory(2, patience_s=GUARD_S) is False


# ----------------------------------------------------------------------------------------- slow destinations


class SlowStore:
    """A real destination, slower than the tail: a write goes ahead only once `ready()` says so (the test makes
    it wait until the tail itself waits), then stores records by batch id, once, as sinks that dedupe by batch id
    do. Before each write it notes how far the tail is ahead and what the buffer holds, so the bounds are checked
    at every step of the run, not only at its end."""

    def __init__(self, buffer: DiskBuffer, tailer: Tailer, ready: Callable[[], bool]) -> None:
        self.buffer, self.tailer, self.ready = buffer, tailer, ready
        self.batches: dict[str, list[str]] = {}
        self.writes = 0
        self.most_ahead = self.most_held_bytes = self.most_held_records = self.most_used_bytes = 0

    async def write(
        self,
        *,
        batch_id: str,
        logs: Sequence[LogRecord] = (),
        events: Sequence[EventRecord] = (),
        spans: Sequence[SpanRecord] = (),
        metrics: Sequence[MetricPoint] = (),
    ) -> WriteResult:
        await until(self.ready)
        self._observe()
        self.writes += 1
        self.batches.setdefault(batch_id, [record.body for record in logs])
        return WriteResult.delivered()

    def stored(self) -> int:
        return sum(map(len, self.batches.values()))

    def bodies(self) -> list[str]:
        return [body for bodies in self.batches.values() for body in bodies]

    def _observe(self) -> None:
        buffer = self.buffer
        self.most_ahead = max(self.most_ahead, self.tailer.stats.records - self.stored())
        self.most_held_bytes = max(self.most_held_bytes, buffer.held_bytes)
        self.most_held_records = max(self.most_held_records, buffer.held_records)
        self.most_used_bytes = max(self.most_used_bytes, buffer.used_bytes)


def write_log(path: Path, count: int) -> list[str]:
    """`count` CRI lines of about 100 bytes; returns their bodies."""
    bodies = [f"line {n:06d} level=info {'x' * 80}" for n in range(count)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(cri_line(BASE_NS + n, "stdout", body.encode()) for n, body in enumerate(bodies)))
    return bodies


async def until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.005)


class Run:
    """The real tail and export pipelines over one log file, a buffer with small bounds, and a SlowStore."""

    MAX_BYTES, MEMORY_BYTES, MEMORY_RECORDS, BATCH_LINES = 64 * 1024, 16 * 1024, 120, 50

    def __init__(self, root: Path, lines: int, *, paced: bool) -> None:
        self.paced = paced
        self.log_file = root / "pods" / POD_DIR / "0.log"
        self.bodies = write_log(self.log_file, lines)
        self.checkpoint = root / "tail.json"
        self.buffer = DiskBuffer(
            root / "buffer",
            max_bytes=self.MAX_BYTES,
            segment_bytes=16 * 1024,
            memory_bytes=self.MEMORY_BYTES,
            memory_records=self.MEMORY_RECORDS,
        )
        self.tailer = Tailer(
            TailConfig(
                checkpoint_path=self.checkpoint,
                globs=(str(root / "pods/*/*/*.log"),),
                refresh_interval=0.05,
                poll_interval=0.01,
                max_lines=self.BATCH_LINES,
            )
        )
        self.telemetry = CollectorTelemetry()
        self.gate_open = False
        self.store = SlowStore(self.buffer, self.tailer, self._ready)

    def tail_waits(self, reason: str) -> float:
        labels = {"pipeline": "tail", "reason": reason}
        return self.telemetry.registry.get_sample_value("collector_backpressure_waits_total", labels) or 0.0

    def _ready(self) -> bool:
        """Shut until the gate opens. Then, `paced`, slower than the tail by construction: a write goes ahead
        only while the tail waits for it (or has read the whole file)."""
        if not self.paced:
            return self.gate_open
        done = self.tailer.stats.records >= len(self.bodies)
        return self.gate_open and (self.buffer.producers_waiting > 0 or done)

    async def run(self, patience_s: float, scenario: Callable[[], Awaitable[None]]) -> None:
        tasks = [
            asyncio.create_task(
                tail_pipeline(self.tailer, Enricher(), self.buffer, self.telemetry, memory_patience_s=patience_s)
            ),
            asyncio.create_task(export_pipeline(self.buffer, self.store, self.telemetry)),
        ]
        try:
            await asyncio.wait_for(scenario(), GUARD_S)
            await asyncio.wait_for(
                until(lambda: self.store.stored() >= len(self.bodies) and self.buffer.backlog == 0), GUARD_S
            )
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.tailer.close()
            self.buffer.close()
        assert self.store.bodies() == self.bodies  # every line, once, in order
        assert self.store.writes == len(self.store.batches)  # no batch delivered twice
        assert self.store.most_used_bytes <= self.MAX_BYTES
        assert self.store.most_held_bytes <= self.MEMORY_BYTES
        assert self.store.most_held_records <= self.MEMORY_RECORDS


async def test_a_destination_slower_than_the_tail_paces_it_and_gets_every_line_once(tmp_path: Path) -> None:
    """The tail never runs further ahead of the destination than the buffer's memory holds (plus the batch in
    hand and the one being written): it waits for memory, and nothing goes the long way through the disk."""
    run = Run(tmp_path, 3_000, paced=True)

    async def scenario() -> None:
        run.gate_open = True

    await run.run(GUARD_S, scenario)
    assert run.tail_waits("memory") > 10  # paced all along
    assert run.tail_waits("full") == 0  # never ran into the disk bound: the backlog stayed in memory
    assert run.store.most_ahead <= Run.MEMORY_RECORDS + 2 * Run.BATCH_LINES


async def test_a_stalled_destination_lets_the_tail_fill_the_disk_buffer_then_holds_it_back(tmp_path: Path) -> None:
    """An outage: the exporter takes nothing, so after the patience the tail stops waiting for memory and the disk
    buffer absorbs the backlog up to `max_bytes`; then the tail is held back by the full buffer, its checkpoint
    short of what it has not buffered. When the destination comes back, everything arrives, once."""
    run = Run(tmp_path, 4_000, paced=False)  # ~400 kB: six times what the buffer may hold

    async def scenario() -> None:
        await until(lambda: run.tail_waits("full") > 0)
        assert run.store.writes == 0
        assert run.tailer.stats.records < len(run.bodies) / 2  # held back: most of the file is still unread
        committed = CheckpointStore(run.checkpoint).load()
        assert committed.files and committed.files[0].delivered < run.log_file.stat().st_size / 2
        assert run.buffer.used_bytes > Run.MAX_BYTES / 2  # the disk took the backlog, not memory
        run.gate_open = True

    await run.run(0.05, scenario)
