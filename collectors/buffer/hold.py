"""What the buffer keeps in memory between `append` and `next`, within two bounds, and how a producer that can
wait (the tail) waits for room in it instead of sending its batch the long way round, through the disk.

Why two bounds: a held batch costs its decoded records, not its encoding. A record weighs about its share of
the frame plus `RECORD_OVERHEAD_BYTES` (the record object, its int and str headers, a list slot), so frame bytes
alone understate short lines many times over (a 4-character line: 15 bytes encoded, about 200 in memory).
`max_bytes` bounds the frames, `max_records` the records, and together they bound the memory:
about `max_bytes + max_records * RECORD_OVERHEAD_BYTES`, whatever the lines look like.

Why a producer may wait: a batch that does not fit is still appended, to disk only, and read back and decoded
when its turn comes (about half a microsecond a record, some 5% of what shipping a line costs). A tail that runs
ahead of every destination gains nothing by reading on, since its files already hold the lines durably, so it
waits for the consumers to take held batches (`DiskBuffer.wait_for_memory`). It never waits for nothing: not
when one consumer already took the held batches and only a slower one pins them (the faster one needs the new
batch now), not when no consumer has taken anything for a while (an outage: then the disk buffer does its job
and absorbs the backlog up to its own bound), and not while a backlog larger than what is held is on disk anyway
(after an outage, the consumers work through it from disk, and the tail keeps reading into it rather than
pausing for minutes while its files rotate).

All state is under the owning DiskBuffer's lock; `wake` may be called from any thread.
"""

from __future__ import annotations

import asyncio
import time

#: The defaults: at most about 32 MiB + 150,000 * 210 B, some 64 MiB, in memory. With ~200-byte lines the
#: bytes bind first, with short ones the count.
MAX_BYTES = 32 * 1024 * 1024
MAX_RECORDS = 150_000
#: Bytes a decoded record takes beyond its share of the frame (measured: 200-215 for a LogRecord, CPython 3.11).
RECORD_OVERHEAD_BYTES = 210


class Hold:
    """Counts of the held batches (frame bytes, records, and how many no consumer has taken yet), the bounds,
    when a consumer last made progress, and the producers waiting for room."""

    def __init__(self, max_bytes: int, max_records: int) -> None:
        self.max_bytes, self.max_records = max_bytes, max_records
        self.bytes = 0
        self.records = 0
        self.untouched = 0  # held batches no consumer has been handed yet
        self.progress_at = time.monotonic()  # a consumer last took or acknowledged a batch
        self._bytes_per_record = 0.0  # of the last batch kept or refused, to size one not encoded yet
        self.waiting = 0  # producers in `DiskBuffer.wait_for_memory`
        self._waiters: dict[asyncio.AbstractEventLoop, asyncio.Event] = {}

    def fits(self, size: int, records: int) -> bool:
        """Whether a batch of this frame size and record count may be held now; notes its shape."""
        self._bytes_per_record = size / max(records, 1)
        return self.bytes + size <= self.max_bytes and self.records + records <= self.max_records

    def would_fit(self, records: int) -> bool:
        """`fits` for a batch not encoded yet, sized like the last one."""
        size = int(self._bytes_per_record * records)
        return self.bytes + size <= self.max_bytes and self.records + records <= self.max_records

    def keep(self, size: int, records: int) -> None:
        self.bytes += size
        self.records += records
        self.untouched += 1

    def taken(self, first: bool) -> None:
        """A consumer was handed a held batch (`first`: the first consumer to be)."""
        if first:
            self.untouched -= 1
        self.progressed()

    def release(self, size: int, records: int, untouched: bool) -> None:
        """A held batch leaves memory (every consumer has it, or it was acknowledged without being handed out)."""
        self.bytes -= size
        self.records -= records
        if untouched:
            self.untouched -= 1
        self.wake()

    def progressed(self) -> None:
        self.progress_at = time.monotonic()
        self.wake()

    def worth_waiting(self, records: int, patience_s: float, backlog_bytes: int) -> float:
        """Seconds a producer with a batch of `records` may still wait for room, or 0 when it should append now:
        it fits, or waiting would not help (see the module docstring). `backlog_bytes`: what some consumer has
        not acknowledged, held or not."""
        on_disk_only = backlog_bytes - self.bytes  # in steady pacing, just the batches being delivered
        if self.would_fit(records) or self.untouched == 0 or on_disk_only > self.bytes:
            return 0.0
        return max(0.0, patience_s - (time.monotonic() - self.progress_at))

    def waiter(self, loop: asyncio.AbstractEventLoop) -> asyncio.Event:
        """The event `wake` sets for producers waiting on `loop`."""
        event = self._waiters.get(loop)
        if event is None:
            event = self._waiters[loop] = asyncio.Event()
        return event

    def wake(self) -> None:
        if not self.waiting:
            return
        for loop, event in list(self._waiters.items()):
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # that loop is closed: nobody waits on it any more
                del self._waiters[loop]
