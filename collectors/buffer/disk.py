"""`DiskBuffer`: the durable FIFO the collector's receivers append to and its exporters read from, one cursor per
consumer. The design, the on-disk format and the guarantees are in docs/collector-buffer.md."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from adapters.protocols import BackendUnavailable
from collectors.buffer.acklog import LEGACY_ACK_LOG, AckLog, AckState, ack_log_path, remove_temporaries
from collectors.buffer.drain import DrainRate
from collectors.buffer.frames import (
    FRAME_HEADER,
    Segment,
    framed,
    pwrite_all,
    segment_paths,
    valid_frame_size,
    verified_payload,
)
from collectors.buffer.hold import MAX_BYTES as MEMORY_BYTES
from collectors.buffer.hold import MAX_RECORDS as MEMORY_RECORDS
from collectors.buffer.hold import Hold
from collectors.buffer.marks import MARKS, MARKS_TMP, Marks, read_marks, write_marks
from collectors.codec import Batch, CodecError, Mark, decode, encode, read_mark
from collectors.durable import fdatasync, sync_directory
from serving.waiting import wait_at_most

log = logging.getLogger(__name__)

_LOCK_FILE = "lock"
#: The consumer of a buffer opened without naming any (a single exporter).
DEFAULT_CONSUMER = "export"
#: `append_async` encodes and writes batches of up to this many records on the event loop (about 0.3 ms), larger
#: ones in a worker thread, where the thread hop costs less than the loop would stall.
_INLINE_ENCODE_RECORDS = 256


class BufferFull(BackendUnavailable):
    """The buffer holds `max_bytes` of unacknowledged batches (or the disk is full); try again in `retry_after_s`.

    A `BackendUnavailable`, so the OTLP receiver already answers it with 503 and Retry-After, and the exporter
    retries the same body later."""

    def __init__(self, retry_after_s: float, message: str = "the buffer is full") -> None:
        super().__init__(f"{message}; retry in {retry_after_s:.2f}s")
        self.retry_after_s = retry_after_s


class BatchTooLarge(ValueError):
    """A batch larger than `max_bytes` could never be accepted, however long the caller waits."""


class BufferClosed(RuntimeError):
    """The buffer was closed (or failed an fsync, after which nothing written can be trusted durable)."""


class BufferLocked(RuntimeError):
    """Another live process (or another DiskBuffer in this one) has the directory open."""


@dataclass(slots=True)
class Recovery:
    """What opening the directory found: segments and frames kept, frames still to deliver (to some consumer),
    and damage repaired (segments cut at a torn or corrupt frame, and the bytes cut)."""

    segments: int = 0
    frames: int = 0
    unacked: int = 0
    truncated_segments: int = 0
    truncated_bytes: int = 0


@dataclass(slots=True)
class _Frame:
    """Where a batch some consumer still needs is, and the batch itself while it is held in memory for `next`.
    `waiting` counts the consumers that have not acknowledged it, `untaken` those that were not handed it yet
    while it is held (the last one to take it releases the memory)."""

    segment: Segment
    offset: int
    size: int  # header and payload
    waiting: int
    untaken: int = 0
    batch: Batch | None = None


@dataclass(slots=True)
class _Consumer:
    """One consumer's cursor: the seqs it has not acknowledged, in order, and the next one it may be handed."""

    name: str
    acks: AckLog | None = None
    unacked: dict[int, None] = field(default_factory=dict)  # an ordered set
    cursor: int = 0
    loop: asyncio.AbstractEventLoop | None = None
    ready: asyncio.Event | None = None


class DiskBuffer:
    """Durable FIFO of batches with one acknowledgement cursor per consumer; see docs/collector-buffer.md."""

    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int = 256 * 1024 * 1024,
        segment_bytes: int = 16 * 1024 * 1024,
        fsync: bool = True,
        memory_bytes: int = MEMORY_BYTES,
        memory_records: int = MEMORY_RECORDS,
        consumers: Sequence[str] = (DEFAULT_CONSUMER,),
    ) -> None:
        self._dir = Path(directory)
        if not consumers or len(set(consumers)) != len(consumers):
            raise ValueError(f"a buffer needs one or more consumers, each named once (got {list(consumers)})")
        self._consumer_paths = {name: ack_log_path(self._dir, name) for name in consumers}
        self._max_bytes, self._segment_bytes, self._fsync = max_bytes, segment_bytes, fsync
        self._hold = Hold(memory_bytes, memory_records)  # the batches kept in memory until handed out
        self._lock = threading.Lock()  # all state below
        self._sync_lock = threading.Lock()  # one group commit at a time
        self._frames: dict[int, _Frame] = {}  # needed by some consumer, in seq order
        self._consumers = {name: _Consumer(name) for name in consumers}
        self._segments: dict[int, Segment] = {}  # by first seq, in order
        self._used = 0
        self._next_seq = 0  # the seq the next append gets
        self._durable = 0  # every seq below is durable (and may be handed out)
        self._dirty: list[Segment] = []
        self._dir_dirty = False
        self._closed = False
        self._failed: BaseException | None = None
        self._drain = DrainRate()
        self._commit: asyncio.Future[None] | None = None  # the group commit in flight for `append_async`
        self._active: Segment  # set by _open
        self._marks: Marks = {}  # the newest mark of each producer: (seq, mark)
        self._kept_marks: Marks = {}  # what the marks file holds
        self.recovery = Recovery()

        self._dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = _lock_directory(self._dir)
        try:
            self._open()
        except BaseException:
            for segment in self._segments.values():
                segment.close()
            for consumer in self._consumers.values():
                if consumer.acks is not None:
                    consumer.acks.close()
            self._release()
            raise

    # ------------------------------------------------------------------------------------------- public

    @property
    def used_bytes(self) -> int:
        """Bytes of frames some consumer has not acknowledged (headers included): what `max_bytes` bounds."""
        return self._used

    @property
    def backlog(self) -> int:
        """Batches some consumer has not acknowledged (handed out or not)."""
        return len(self._frames)

    @property
    def consumers(self) -> tuple[str, ...]:
        return tuple(self._consumers)

    @property
    def held_bytes(self) -> int:
        """Frame bytes of the batches kept in memory for `next` (at most `memory_bytes`)."""
        return self._hold.bytes

    @property
    def held_records(self) -> int:
        """Records of the batches kept in memory for `next` (at most `memory_records`)."""
        return self._hold.records

    @property
    def producers_waiting(self) -> int:
        """Producers in `wait_for_memory` right now: how often the tail is being held back."""
        return self._hold.waiting

    def backlog_of(self, consumer: str) -> int:
        """Batches `consumer` has not acknowledged."""
        return len(self._consumer(consumer).unacked)

    def mark(self, producer: str) -> bytes | None:
        """The mark `producer` stored with its latest batch (see docs/collector-buffer.md), or None."""
        with self._lock:
            found = self._marks.get(producer)
        return None if found is None else found[1]

    def append(self, batch: Batch, mark: Mark | None = None) -> int:
        """Stores the batch, with the producer's mark if given, and returns its seq once it is durable. Raises
        BufferFull when it does not fit now, BatchTooLarge when it never would, CodecError when a value cannot
        be stored exactly, BufferClosed after close. Thread-safe; callers in different threads share fdatasyncs.
        On the event loop it blocks for one fdatasync: prefer `append_async` there."""
        seq = self._append_frame(self._frame(batch, mark), batch, mark)
        if self._fsync:
            self._sync_through(seq)
        return seq

    async def append_async(self, batch: Batch, mark: Mark | None = None) -> int:
        """`append` for the event loop, which never waits for a disk flush. A small batch is encoded and written on
        the loop (tens of microseconds), and waits for a group commit: one fdatasync in a worker thread covers
        every frame written before it started. A large batch goes whole to a worker thread, where encoding it does
        not stall the loop and `append`'s own group commit applies."""
        if len(batch) > _INLINE_ENCODE_RECORDS:
            return await asyncio.to_thread(self.append, batch, mark)
        seq = self._append_frame(self._frame(batch, mark), batch, mark)
        while self._fsync and self._durable <= seq:
            commit = self._commit
            if commit is None or commit.done() or commit.get_loop() is not asyncio.get_running_loop():
                commit = self._commit = asyncio.ensure_future(asyncio.to_thread(self._sync_through, seq))
            # Shielded: a cancelled producer must not cancel the others' commit. Its own frame still becomes
            # durable and is delivered; the producer, told nothing, retries, and the sink dedupes the batch id.
            await asyncio.shield(commit)
        return seq

    async def wait_for_memory(self, records: int, patience_s: float) -> bool:
        """For a producer whose source keeps its data durably while it waits (the tail: its files): returns once a
        batch of `records` would be kept in memory for the consumers rather than read back from disk, or at once
        when waiting would not help: no consumer is behind on the held batches (a faster one took them and only a
        slower one pins them), none has taken or acknowledged anything for `patience_s` (an outage; the disk then
        absorbs the backlog, up to `max_bytes`), or a backlog larger than what is held is on disk already
        (the consumers are working through it; the producer goes on adding to it). So a producer ahead of every consumer is held back to the
        pace of the fastest, and the hand-off stays in memory. True when it waited. Raises BufferClosed after
        close."""
        loop = asyncio.get_running_loop()
        hold = self._hold
        waited = False
        while True:
            with self._lock:
                self._check_open()
                remaining = hold.worth_waiting(records, patience_s, self._used)
                if remaining <= 0:
                    return waited
                waited = True
                room = hold.waiter(loop)
                room.clear()  # under the lock, before waiting: a release after this look still wakes us
                hold.waiting += 1
            try:  # when the time runs out, looked at again: by now waiting has stopped being worth it
                await wait_at_most(room.wait(), remaining)
            finally:
                with self._lock:
                    hold.waiting -= 1

    async def next(self, consumer: str = DEFAULT_CONSUMER) -> tuple[int, Batch]:
        """The oldest durable batch `consumer` has not acknowledged nor been handed in this process, waiting
        until there is one. Raises BufferClosed when the buffer is closed."""
        loop = asyncio.get_running_loop()
        state = self._consumer(consumer)
        with self._lock:
            if state.loop is not loop:
                state.loop, state.ready = loop, asyncio.Event()
            ready = state.ready
        assert ready is not None
        while True:
            ready.clear()  # before looking, so an append published after the look still wakes us
            taken = self._take(state)
            if taken is not None:
                return taken
            await ready.wait()

    def ack(self, seq: int, consumer: str = DEFAULT_CONSUMER) -> None:
        """`consumer` is done with the batch (stored downstream, or given up and counted): it is forgotten once
        every consumer is. Acknowledging twice is a no-op; a seq that was never durable (so never handed out) is
        a caller's bug and raises ValueError."""
        state = self._consumer(consumer)
        with self._lock:
            self._check_open()
            if seq >= self._durable or seq < 0:
                raise ValueError(f"seq {seq} was never handed out")  # and must not be stored as acknowledged
            if seq in state.unacked:
                del state.unacked[seq]
                self._release_ack(state, seq)
                self._hold.progressed()

    def close(self) -> None:
        """Syncs what was written, closes the files and releases the directory; waiting `next` calls raise
        BufferClosed. Idempotent."""
        with self._sync_lock, self._lock:
            if self._closed:
                return
            self._closed = True
            logs = [c.acks for c in self._consumers.values() if c.acks is not None]
            try:
                if self._fsync and self._failed is None:
                    for segment in self._dirty:
                        segment.sync()
                    for acks in logs:
                        acks.sync()
                if self._failed is None:
                    self._durable = self._next_seq  # appenders queued for a group commit return: it is done
            finally:
                self._dirty.clear()
                for segment in self._segments.values():
                    segment.close()
                for acks in logs:
                    acks.close()
                self._release()
                self._hold.wake()
        self._wake()

    def __enter__(self) -> DiskBuffer:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------- appending

    def _frame(self, batch: Batch, mark: Mark | None) -> bytes:
        frame = framed(encode(batch, mark))
        if len(frame) > self._max_bytes:
            raise BatchTooLarge(f"batch {batch.batch_id!r} is {len(frame)} bytes; the buffer holds {self._max_bytes}")
        return frame

    def _append_frame(self, frame: bytes, batch: Batch, mark: Mark | None) -> int:
        """Writes the frame if it fits and returns its seq; durable already only with fsync off. Keeps the batch
        in memory for `next` while that stays within `memory_bytes` and `memory_records`."""
        with self._lock:
            self._check_open()
            if self._used + len(frame) > self._max_bytes:
                raise BufferFull(self._drain.wait_for(self._used + len(frame) - self._max_bytes))
            seq = self._write(frame, mark)
            if self._hold.fits(len(frame), len(batch)):
                held = self._frames[seq]
                held.batch, held.untaken = batch, len(self._consumers)
                self._hold.keep(len(frame), len(batch))
            if not self._fsync:
                self._publish(self._next_seq)
            return seq

    def _write(self, frame: bytes, mark: Mark | None = None) -> int:
        """Writes one frame to the active segment (rotating first if it would overflow) and indexes it for every
        consumer. Under the lock. A failed write is cut back off, so the segment never holds half a frame we know
        of."""
        active = self._active
        if active.size and active.size + len(frame) > self._segment_bytes:
            active = self._rotate()
        offset = active.size
        try:
            pwrite_all(active.fd, frame, offset)
        except OSError as exc:
            os.ftruncate(active.fd, offset)
            if exc.errno == errno.ENOSPC:
                raise BufferFull(self._drain.wait_for(len(frame)), "the disk is full") from exc
            raise
        seq = self._next_seq
        self._next_seq += 1
        active.size += len(frame)
        active.frames += 1
        active.live += 1
        self._frames[seq] = _Frame(active, offset, len(frame), waiting=len(self._consumers))
        for consumer in self._consumers.values():
            consumer.unacked[seq] = None
        self._used += len(frame)
        if mark is not None:
            producer, value = mark
            active.marks[producer] = self._marks[producer] = (seq, bytes(value))
        if self._fsync and not active.dirty:
            active.dirty = True
            self._dirty.append(active)
        return seq

    def _rotate(self) -> Segment:
        """A new active segment. The old one stays until all its batches are acknowledged (and goes now if they
        already are); its pending fdatasync, if any, is still the next group commit's job."""
        old = self._active
        self._active = self._new_segment(self._next_seq)
        if old.live == 0 and not old.dirty:
            self._drop(old)
        return self._active

    def _new_segment(self, first_seq: int) -> Segment:
        segment = Segment.create(self._dir, first_seq)
        self._segments[first_seq] = segment
        self._dir_dirty = True
        return segment

    def _sync_through(self, seq: int) -> None:
        """Group commit: returns once `seq` is durable. Whoever holds the sync lock syncs every segment written
        so far (and the directory, after a new segment), so callers queued behind it usually find their frame
        already covered."""
        with self._sync_lock:
            with self._lock:
                if self._durable > seq:
                    return
                self._check_open()
                target, dirty, dir_dirty = self._next_seq, self._dirty, self._dir_dirty
                self._dirty, self._dir_dirty = [], False
                for segment in dirty:
                    segment.dirty = False
            try:
                for segment in dirty:
                    segment.sync()
                if dir_dirty:
                    sync_directory(self._dir)
            except OSError as exc:
                # After a failed fsync the kernel may have dropped the dirty pages and a retry can falsely
                # succeed, so nothing written since the last good sync can be promised: stop accepting.
                with self._lock:
                    self._failed = exc
                log.error("disk buffer %s: fsync failed, refusing further appends: %s", self._dir, exc)
                raise
            with self._lock:
                self._publish(target)

    def _publish(self, durable: int) -> None:
        """Seqs below `durable` may now be handed out. Under the lock."""
        if durable > self._durable:
            self._durable = durable
            self._wake()

    def _wake(self) -> None:
        """Wakes every waiting `next`, from whichever thread published."""
        for consumer in self._consumers.values():
            loop, ready = consumer.loop, consumer.ready
            if loop is not None and ready is not None:
                try:
                    loop.call_soon_threadsafe(ready.set)
                except RuntimeError:  # that loop is closed: nobody is waiting on it any more
                    pass

    # ------------------------------------------------------------------------------------------- reading

    def _take(self, consumer: _Consumer) -> tuple[int, Batch] | None:
        """Hands `consumer` its next durable, unacknowledged batch, or None: the appended batch itself when it is
        held in memory, else read back from disk. Frames that fail their CRC now (the disk changed under us after
        they were verified) are logged and skipped: there is nothing to deliver."""
        while True:
            with self._lock:
                self._check_open()
                seq = self._next_unacked(consumer)
                if seq >= self._durable:
                    return None
                consumer.cursor = seq + 1
                frame = self._frames[seq]
                held = frame.batch
                if held is not None:
                    self._untake(frame)
                    return seq, held
                self._hold.progressed()
                data = os.pread(frame.segment.fd, frame.size, frame.offset)
            payload = verified_payload(data)
            if payload is not None:
                try:
                    return seq, decode(payload)
                except CodecError as exc:
                    log.error("disk buffer %s: batch %d does not decode, skipping it: %s", self._dir, seq, exc)
            else:
                log.error("disk buffer %s: batch %d changed on disk since it was written, skipping it", self._dir, seq)
            self.ack(seq, consumer.name)

    def _next_unacked(self, consumer: _Consumer) -> int:
        """The first seq at or after the consumer's cursor that it has not acknowledged. Under the lock. Acks come
        mostly in order, so this is usually the cursor itself."""
        seq = consumer.cursor
        unacked = consumer.unacked
        while seq < self._durable and seq not in unacked:
            seq += 1
        consumer.cursor = seq
        return seq

    def _untake(self, frame: _Frame) -> None:
        """One more consumer has the held batch (or no longer needs it): the last one releases the memory."""
        self._hold.taken(first=frame.untaken == len(self._consumers))
        frame.untaken -= 1
        if frame.untaken <= 0:
            self._unhold(frame)

    def _unhold(self, frame: _Frame) -> None:
        """Lets go of the batch kept in memory for the frame, if any. Under the lock."""
        if frame.batch is not None:
            self._hold.release(frame.size, len(frame.batch), untouched=frame.untaken == len(self._consumers))
            frame.batch = None

    def _release_ack(self, consumer: _Consumer, seq: int) -> None:
        """Records `consumer`'s ack of `seq`, and forgets the frame once no consumer needs it. Under the lock."""
        assert consumer.acks is not None
        consumer.acks.record(seq)
        frame = self._frames[seq]
        if seq >= consumer.cursor and frame.batch is not None:  # acknowledged without being handed out
            self._untake(frame)
        frame.waiting -= 1
        if frame.waiting == 0:
            del self._frames[seq]
            self._used -= frame.size
            self._unhold(frame)
            self._drain.note(frame.size)
            segment = frame.segment
            segment.live -= 1
            if segment.live == 0 and segment is not self._active:
                self._drop(segment)
        if consumer.acks.needs_compaction:
            consumer.acks.rewrite(list(consumer.unacked), self._next_seq)

    def _consumer(self, name: str) -> _Consumer:
        try:
            return self._consumers[name]
        except KeyError:
            raise ValueError(f"the buffer {self._dir} has no consumer {name!r} ({sorted(self._consumers)})") from None

    # ------------------------------------------------------------------------------------------- opening

    def _open(self) -> None:
        """Loads each consumer's acks, checks every segment, deletes those fully acknowledged, starts a new active
        segment and rewrites the ack logs compactly (retiring a legacy single log, now copied into each)."""
        remove_temporaries(self._dir)
        (self._dir / MARKS_TMP).unlink(missing_ok=True)
        legacy_path = self._dir / LEGACY_ACK_LOG
        legacy = AckState.read(legacy_path)
        states = {name: AckState.read(path) or legacy or AckState() for name, path in self._consumer_paths.items()}
        self._kept_marks = read_marks(self._dir / MARKS)
        self._marks = dict(self._kept_marks)
        next_seq = max(
            max(state.next_seq() for state in states.values()),
            max((seq + 1 for seq, _ in self._marks.values()), default=0),
        )
        for first_seq, path in segment_paths(self._dir):
            segment = self._recover_segment(first_seq, path, states)
            next_seq = max(next_seq, first_seq + segment.frames)
        self._next_seq = self._durable = next_seq
        for consumer in self._consumers.values():
            consumer.cursor = next(iter(consumer.unacked), next_seq)
        for segment in list(self._segments.values()):
            if segment.live == 0:
                self._drop(segment)
        self._active = self._new_segment(next_seq)
        for name, consumer in self._consumers.items():
            consumer.acks = AckLog(self._consumer_paths[name], self._fsync, list(consumer.unacked), next_seq)
        if legacy is not None:  # every consumer's own log now says at least as much
            legacy_path.unlink(missing_ok=True)
        if self._fsync:
            sync_directory(self._dir)
        self._dir_dirty = False
        r = self.recovery
        r.unacked = len(self._frames)
        if r.truncated_segments:
            log.warning(
                "disk buffer %s: cut %d bytes of torn or corrupt frames from %d segments",
                self._dir,
                r.truncated_bytes,
                r.truncated_segments,
            )

    def _recover_segment(self, first_seq: int, path: Path, states: dict[str, AckState]) -> Segment:
        """Indexes a segment's valid frames, cutting the file at the first invalid one."""
        fd = os.open(path, os.O_RDWR)
        segment = Segment(first_seq, path, fd)
        self._segments[first_seq] = segment
        with open(fd, "rb", closefd=False) as file:
            data = file.read()
        view = memoryview(data)
        offset = 0
        while offset < len(data):
            size = valid_frame_size(view, offset)
            if size is None:
                self.recovery.truncated_segments += 1
                self.recovery.truncated_bytes += len(data) - offset
                os.ftruncate(fd, offset)
                break
            seq = first_seq + segment.frames
            segment.frames += 1
            self._recover_mark(segment, seq, view[offset + FRAME_HEADER.size : offset + size])
            waiting = [name for name, state in states.items() if not state.acked(seq)]
            if waiting:
                self._frames[seq] = _Frame(segment, offset, size, waiting=len(waiting))
                for name in waiting:
                    self._consumers[name].unacked[seq] = None
                self._used += size
                segment.live += 1
            offset += size
        segment.size = offset
        if self._fsync:  # what a crashed process left in the page cache is handed out only once it is on disk
            fdatasync(fd)
        self.recovery.segments += 1
        self.recovery.frames += segment.frames
        return segment

    def _recover_mark(self, segment: Segment, seq: int, payload: memoryview) -> None:
        try:
            mark = read_mark(payload)
        except CodecError as exc:  # the batch itself will be skipped when handed out; its mark is no use either
            log.error("disk buffer %s: batch %d holds no readable mark: %s", self._dir, seq, exc)
            return
        if mark is not None:
            producer, value = mark
            segment.marks[producer] = (seq, value)
            if seq > self._marks.get(producer, (-1, b""))[0]:
                self._marks[producer] = (seq, value)

    def _drop(self, segment: Segment) -> None:
        """Deletes a segment no consumer needs any more, keeping first the newest marks it holds. Under the lock
        (or while opening). If the marks cannot be kept, the file stays until the next open tries again:
        deleting it would forget how far a producer got."""
        newer = {
            producer: found
            for producer, found in segment.marks.items()
            if found[0] > self._kept_marks.get(producer, (-1, b""))[0]
        }
        if newer:
            try:
                write_marks(self._dir, {**self._kept_marks, **newer}, self._fsync)
            except OSError as exc:
                log.error(
                    "disk buffer %s: cannot keep the marks of %s, so keeping it: %s", self._dir, segment.path, exc
                )
                return
            self._kept_marks.update(newer)
        del self._segments[segment.first_seq]
        segment.delete()

    # ------------------------------------------------------------------------------------------- misc

    def _check_open(self) -> None:
        if self._closed:
            raise BufferClosed(f"the buffer {self._dir} is closed")
        if self._failed is not None:
            raise BufferClosed(f"the buffer {self._dir} failed an fsync: {self._failed}")

    def _release(self) -> None:
        os.close(self._lock_fd)  # closing the descriptor drops the flock


def _lock_directory(directory: Path) -> int:
    """An exclusive flock on the directory's lock file: two processes appending to one buffer would interleave
    frames. The kernel drops it when the process dies, so a SIGKILLed owner never blocks its successor."""
    fd = os.open(directory / _LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise BufferLocked(f"the buffer {directory} is open elsewhere") from None
    return fd
