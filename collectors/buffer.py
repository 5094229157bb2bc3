"""The collector's durable buffer: receivers append batches, an exporter reads and acknowledges them.

It decouples accepting telemetry from storing it. A receiver can answer "accepted" as soon as a batch is on the
local disk, and the exporter delivers at its own pace, across backend outages and process restarts.

On disk (one directory, owned by one process at a time through an advisory lock):

- `<first seq, 20 digits>.seg`: append-only segment files of frames `u32 length | u32 crc32(payload) | payload`,
  the payload being `collectors.codec.encode(batch)`. A batch's sequence number is its segment's first seq plus
  its position in the segment, so frames carry no seq of their own. Each process appends to a fresh segment, and
  a segment is rotated when the next frame would take it past `segment_bytes`.
- `acks.log`: 13-byte records `u8 kind | u64 seq | u32 crc32`. Each ack appends `A seq` with one unbuffered
  write(2) before `ack` returns. When the log grows it is rewritten (a temporary file, then a rename) as what is
  still unacknowledged: `U seq` for each such batch, then `H next_seq`, meaning every seq below it that is not
  listed is acknowledged. So the log's size follows the backlog, not the history, even when one old batch is
  never acknowledged.
- `marks`: the newest mark of each producer whose segment was deleted, as one CRC-checked record, replaced
  atomically (a temporary file, then a rename). A producer may store a *mark* with a batch (the tail stores its
  checkpoint): it is part of the batch's frame, so it is durable exactly when the batch is. When a segment is
  deleted, the newest marks it held move to this file first, so `mark` still knows them once their batches are
  delivered and gone.

Guarantees:

- **Durable on return.** `append` and `append_async` return after the frame is written and fdatasync'ed (with
  `fsync=True`), and a new segment's directory entry is synced too. Concurrent appends share one fdatasync (a
  group commit), whether they come from threads or from tasks on the event loop.
- **Nothing accepted is dropped.** Frames are only deleted as whole segments whose every batch is acknowledged.
  A failed write is rolled back so the segment stays well-formed; a full disk answers like a full buffer.
- **Crash recovery.** On open, every frame is checked (length and CRC). A torn or corrupt frame ends its segment:
  it and whatever follows in that file are truncated and counted in `recovery`, and earlier frames are kept. A
  crash can only tear frames at the end of the segment being appended to, and only frames whose append had not
  returned (a kill mid-write(2), or a power loss before their fdatasync).
- **At-least-once, with a known window.** After a restart every unacknowledged batch is handed out again. After
  SIGKILL (or any crash of the process alone) no acknowledged batch is redelivered: an ack is in the kernel's page
  cache before `ack` returns. After a power loss or kernel crash, acks from the last `ACK_SYNC_INTERVAL_S`
  (1 s; the ack log is fdatasync'ed at most that often, on the next ack, and on close) may be redelivered.
  Redelivery is harmless: sinks store a batch id once (`TelemetrySink`).
- **Bounded.** `max_bytes` bounds the unacknowledged bytes (frames with their headers). An append that would pass
  it raises `BufferFull` with a suggested wait, computed from the recent ack rate, so a receiver can answer 429 or
  503 with Retry-After and a tailer can pause. Space on disk is reclaimed per segment, so the files may hold up
  to about one `segment_bytes` more than `max_bytes` when acks come in order (more if one old batch is never
  acknowledged, since it pins its segment).
- **Order.** `next` hands out batches in seq order, each once per process lifetime until it is acknowledged, and
  only once it is durable, so an exporter never delivers what a crash could still take back.
- **Marks.** `mark(producer)` is the mark stored with that producer's latest batch, or None. After a crash it is
  the mark of the latest batch that survived, whether still buffered or already delivered and deleted: a
  producer that resumes from it neither loses nor repeats a batch.

The disk copy is for recovery; the exporter is normally handed the very batch that was appended. Up to
`memory_bytes` of batches (counted by their frame sizes) stay in memory from `append` until `next` hands them
out, so the common case, an exporter keeping up, never reads or decodes what was just encoded; past that (a
backlog during a backend outage) batches are read back from disk. `append` takes ownership of the batch: the
caller must not change it afterwards.

Threads and the event loop: all state is under one lock, held only for bookkeeping, a write(2) of one frame or a
pread(2) of one frame, never for a segment's fsync (only the two small files, acks and marks, are rewritten and
synced under it, rarely). `append` blocks its caller for one fdatasync (0.2 ms to tens of ms, by
disk and load), so on the event loop use `append_async`: it never waits for a flush on the loop, and many
producers share each flush (measured here with 100-record batches: about 2x the batches/s of one `append` per
export with 8 producers, about 3x with 32). `next` and `ack` are meant for one exporter task on the event loop; they
do no fsync but one ack-log fdatasync a second, a rare rewrite of the ack log, and a rewrite of the marks file
when a segment holding a newer mark is deleted (once per `segment_bytes` of a producer's batches). `next` decodes
on the loop when the batch is not in memory (about 1-2 ms for 1,000 log records): a thread would not help,
decoding holds the GIL.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import fcntl
import logging
import os
import struct
import threading
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import msgpack

from adapters.protocols import BackendUnavailable
from collectors.codec import Batch, CodecError, Mark, decode, encode, read_mark
from collectors.durable import fdatasync, replace_file, sync_directory, write_all

__all__ = ["Batch", "BatchTooLarge", "BufferClosed", "BufferFull", "BufferLocked", "DiskBuffer", "Recovery"]

log = logging.getLogger(__name__)

_FRAME_HEADER = struct.Struct("<II")  # payload length, crc32(payload)
_ACK_RECORD = struct.Struct("<BQI")  # kind, seq, crc32(kind and seq)
_ACK, _UNACKED, _HIGH = ord("A"), ord("U"), ord("H")
_SEGMENT_SUFFIX = ".seg"
_ACK_LOG, _ACK_TMP, _LOCK_FILE = "acks.log", "acks.tmp", "lock"
_MARKS, _MARKS_TMP = "marks", "marks.tmp"

#: The ack log is fdatasync'ed at most this often; acks younger than this may be redelivered after a power loss.
ACK_SYNC_INTERVAL_S = 1.0
#: The ack log is rewritten compactly once it is this large and twice its compact size.
_ACK_LOG_COMPACT_BYTES = 256 * 1024
#: Suggested waits for a full buffer: without a recent ack rate, and the range any estimate is held to.
DEFAULT_RETRY_AFTER_S = 2.0
_RETRY_AFTER_RANGE_S = (0.25, 30.0)
#: The ack rate behind a `BufferFull` suggestion is measured over this many recent seconds.
_DRAIN_WINDOW_S = 10.0

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
    """What opening the directory found: segments and frames kept, frames still to deliver, and damage repaired
    (segments cut at a torn or corrupt frame, and the bytes cut)."""

    segments: int = 0
    frames: int = 0
    unacked: int = 0
    truncated_segments: int = 0
    truncated_bytes: int = 0


class _Segment:
    """One segment file, open for the buffer's life. `live` counts its unacknowledged frames; at zero (and no
    longer the active segment) the file is deleted. The segment's own lock keeps a group commit's fdatasync from
    racing the close that follows its deletion."""

    __slots__ = ("first_seq", "path", "fd", "size", "frames", "live", "dirty", "closed", "lock", "marks")

    def __init__(self, first_seq: int, path: Path, fd: int, size: int = 0) -> None:
        self.first_seq, self.path, self.fd, self.size = first_seq, path, fd, size
        self.frames = 0  # frames in the file (acknowledged or not)
        self.live = 0
        #: The newest mark of each producer among this segment's frames: (seq, mark).
        self.marks: dict[str, tuple[int, bytes]] = {}
        self.dirty = False  # written since the last fdatasync
        self.closed = False
        self.lock = threading.Lock()

    def sync(self) -> None:
        with self.lock:
            if not self.closed:
                fdatasync(self.fd)

    def close(self) -> None:
        with self.lock:
            if not self.closed:
                self.closed = True
                os.close(self.fd)

    def delete(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)


@dataclass(slots=True)
class _Frame:
    """Where an unacknowledged batch is, and the batch itself while it is held in memory for `next`."""

    segment: _Segment
    offset: int
    size: int  # header and payload
    batch: Batch | None = None


class DiskBuffer:
    """Durable FIFO of batches with acknowledgements; see the module docstring for the guarantees."""

    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int = 256 * 1024 * 1024,
        segment_bytes: int = 16 * 1024 * 1024,
        fsync: bool = True,
        memory_bytes: int = 32 * 1024 * 1024,
    ) -> None:
        self._dir = Path(directory)
        self._max_bytes, self._segment_bytes, self._fsync = max_bytes, segment_bytes, fsync
        self._memory_bytes = memory_bytes
        self._held = 0  # frame bytes of the batches held in memory until handed out
        self._lock = threading.Lock()  # all state below
        self._sync_lock = threading.Lock()  # one group commit at a time
        self._frames: dict[int, _Frame] = {}  # unacknowledged, in seq order
        self._segments: dict[int, _Segment] = {}  # by first seq, in order
        self._used = 0
        self._next_seq = 0  # the seq the next append gets
        self._durable = 0  # every seq below is durable (and may be handed out)
        self._cursor = 0  # the next seq `next` may hand out
        self._dirty: list[_Segment] = []
        self._dir_dirty = False
        self._closed = False
        self._failed: BaseException | None = None
        self._drain = _DrainRate()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready: asyncio.Event | None = None
        self._commit: asyncio.Future[None] | None = None  # the group commit in flight for `append_async`
        self._active: _Segment  # set by _open, like the ack log
        self._acks: _AckLog
        self._marks: dict[str, tuple[int, bytes]] = {}  # the newest mark of each producer: (seq, mark)
        self._kept_marks: dict[str, tuple[int, bytes]] = {}  # what the marks file holds
        self.recovery = Recovery()

        self._dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = _lock_directory(self._dir)
        try:
            self._open()
        except BaseException:
            for segment in self._segments.values():
                segment.close()
            self._release()
            raise

    # ------------------------------------------------------------------------------------------- public

    @property
    def used_bytes(self) -> int:
        """Bytes of unacknowledged frames (headers included): what `max_bytes` bounds."""
        return self._used

    @property
    def backlog(self) -> int:
        """Batches not yet acknowledged (handed out or not)."""
        return len(self._frames)

    def mark(self, producer: str) -> bytes | None:
        """The mark `producer` stored with its latest batch (see the module docstring), or None."""
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
                self._commit = asyncio.ensure_future(asyncio.to_thread(self._sync_through, seq))
            # Shielded: a cancelled producer must not cancel the others' commit. Its own frame still becomes
            # durable and is delivered; the producer, told nothing, retries, and the sink dedupes the batch id.
            await asyncio.shield(self._commit)
        return seq

    async def next(self) -> tuple[int, Batch]:
        """The oldest durable batch not yet handed out in this process, waiting until there is one. Raises
        BufferClosed when the buffer is closed."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._loop is not loop:
                self._loop, self._ready = loop, asyncio.Event()
            ready = self._ready
        assert ready is not None
        while True:
            ready.clear()  # before looking, so an append published after the look still wakes us
            taken = self._take()
            if taken is not None:
                return taken
            await ready.wait()

    def ack(self, seq: int) -> None:
        """The batch is stored downstream: forget it. Acknowledging twice is a no-op; a seq that was never durable
        (so never handed out) is a caller's bug and raises ValueError."""
        with self._lock:
            self._check_open()
            if seq >= self._durable or seq < 0:
                raise ValueError(f"seq {seq} was never handed out")  # and must not be stored as acknowledged
            frame = self._frames.pop(seq, None)
            if frame is None:
                return
            self._used -= frame.size
            if frame.batch is not None:  # acknowledged without being handed out (a caller's shortcut)
                self._held -= frame.size
            self._drain.note(frame.size)
            self._acks.record(seq)
            segment = frame.segment
            segment.live -= 1
            if segment.live == 0 and segment is not self._active:
                self._drop(segment)
            if self._acks.needs_compaction:
                self._compact_acks()

    def close(self) -> None:
        """Syncs what was written, closes the files and releases the directory; waiting `next` calls raise
        BufferClosed. Idempotent."""
        with self._sync_lock, self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                if self._fsync and self._failed is None:
                    for segment in self._dirty:
                        segment.sync()
                    self._acks.sync()
                if self._failed is None:
                    self._durable = self._next_seq  # appenders queued for a group commit return: it is done
            finally:
                self._dirty.clear()
                for segment in self._segments.values():
                    segment.close()
                self._acks.close()
                self._release()
        self._wake()

    def __enter__(self) -> DiskBuffer:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------- appending

    def _frame(self, batch: Batch, mark: Mark | None) -> bytes:
        frame = _framed(encode(batch, mark))
        if len(frame) > self._max_bytes:
            raise BatchTooLarge(f"batch {batch.batch_id!r} is {len(frame)} bytes; the buffer holds {self._max_bytes}")
        return frame

    def _append_frame(self, frame: bytes, batch: Batch, mark: Mark | None) -> int:
        """Writes the frame if it fits and returns its seq; durable already only with fsync off. Keeps the batch
        in memory for `next` while that stays within `memory_bytes`."""
        with self._lock:
            self._check_open()
            if self._used + len(frame) > self._max_bytes:
                raise BufferFull(self._drain.wait_for(self._used + len(frame) - self._max_bytes))
            seq = self._write(frame, mark)
            if self._held + len(frame) <= self._memory_bytes:
                self._frames[seq].batch = batch
                self._held += len(frame)
            if not self._fsync:
                self._publish(self._next_seq)
            return seq

    def _write(self, frame: bytes, mark: Mark | None = None) -> int:
        """Writes one frame to the active segment (rotating first if it would overflow) and indexes it. Under
        the lock. A failed write is cut back off, so the segment never holds half a frame we know of."""
        active = self._active
        if active.size and active.size + len(frame) > self._segment_bytes:
            active = self._rotate()
        offset = active.size
        try:
            _pwrite_all(active.fd, frame, offset)
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
        self._frames[seq] = _Frame(active, offset, len(frame))
        self._used += len(frame)
        if mark is not None:
            producer, value = mark
            active.marks[producer] = self._marks[producer] = (seq, bytes(value))
        if self._fsync and not active.dirty:
            active.dirty = True
            self._dirty.append(active)
        return seq

    def _rotate(self) -> _Segment:
        """A new active segment. The old one stays until all its batches are acknowledged (and goes now if they
        already are); its pending fdatasync, if any, is still the next group commit's job."""
        old = self._active
        self._active = self._new_segment(self._next_seq)
        if old.live == 0 and not old.dirty:
            self._drop(old)
        return self._active

    def _new_segment(self, first_seq: int) -> _Segment:
        path = self._dir / f"{first_seq:020d}{_SEGMENT_SUFFIX}"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        segment = _Segment(first_seq, path, fd)
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
        """Wakes a waiting `next`, from whichever thread published."""
        loop, ready = self._loop, self._ready
        if loop is not None and ready is not None:
            try:
                loop.call_soon_threadsafe(ready.set)
            except RuntimeError:  # that loop is closed: nobody is waiting on it any more
                pass

    # ------------------------------------------------------------------------------------------- reading

    def _take(self) -> tuple[int, Batch] | None:
        """Hands out the next durable, unacknowledged batch, or None: the appended batch itself when it is held
        in memory, else read back from disk. Frames that fail their CRC now (the disk changed under us after they
        were verified) are logged and skipped: there is nothing to deliver."""
        while True:
            with self._lock:
                self._check_open()
                seq = self._cursor
                while seq < self._durable and seq not in self._frames:
                    seq += 1
                self._cursor = seq
                if seq >= self._durable:
                    return None
                self._cursor = seq + 1
                frame = self._frames[seq]
                held = frame.batch
                if held is not None:
                    frame.batch = None
                    self._held -= frame.size
                    return seq, held
                data = os.pread(frame.segment.fd, frame.size, frame.offset)
            payload = _verified_payload(data)
            if payload is not None:
                try:
                    return seq, decode(payload)
                except CodecError as exc:
                    log.error("disk buffer %s: batch %d does not decode, skipping it: %s", self._dir, seq, exc)
            else:
                log.error("disk buffer %s: batch %d changed on disk since it was written, skipping it", self._dir, seq)
            self.ack(seq)

    # ------------------------------------------------------------------------------------------- opening

    def _open(self) -> None:
        """Loads the acks, checks every segment, deletes those fully acknowledged, starts a new active segment
        and rewrites the ack log compactly."""
        (self._dir / _ACK_TMP).unlink(missing_ok=True)
        (self._dir / _MARKS_TMP).unlink(missing_ok=True)
        acks = _AckState.read(self._dir / _ACK_LOG)
        self._kept_marks = _read_marks(self._dir / _MARKS)
        self._marks = dict(self._kept_marks)
        next_seq = max(acks.next_seq(), max((seq + 1 for seq, _ in self._marks.values()), default=0))
        for first_seq, path in _segment_paths(self._dir):
            segment = self._recover_segment(first_seq, path, acks)
            next_seq = max(next_seq, first_seq + segment.frames)
        self._next_seq = self._durable = next_seq
        self._cursor = next(iter(self._frames), next_seq)
        for segment in list(self._segments.values()):
            if segment.live == 0:
                self._drop(segment)
        self._active = self._new_segment(next_seq)
        self._acks = _AckLog(self._dir / _ACK_LOG, self._fsync, list(self._frames), next_seq)
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

    def _recover_segment(self, first_seq: int, path: Path, acks: _AckState) -> _Segment:
        """Indexes a segment's valid frames, cutting the file at the first invalid one."""
        fd = os.open(path, os.O_RDWR)
        segment = _Segment(first_seq, path, fd)
        self._segments[first_seq] = segment
        with open(fd, "rb", closefd=False) as file:
            data = file.read()
        view = memoryview(data)
        offset = 0
        while offset < len(data):
            size = _valid_frame_size(view, offset)
            if size is None:
                self.recovery.truncated_segments += 1
                self.recovery.truncated_bytes += len(data) - offset
                os.ftruncate(fd, offset)
                break
            seq = first_seq + segment.frames
            segment.frames += 1
            self._recover_mark(segment, seq, view[offset + _FRAME_HEADER.size : offset + size])
            if not acks.acked(seq):
                self._frames[seq] = _Frame(segment, offset, size)
                self._used += size
                segment.live += 1
            offset += size
        segment.size = offset
        if self._fsync:  # what a crashed process left in the page cache is handed out only once it is on disk
            fdatasync(fd)
        self.recovery.segments += 1
        self.recovery.frames += segment.frames
        return segment

    def _recover_mark(self, segment: _Segment, seq: int, payload: memoryview) -> None:
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

    def _drop(self, segment: _Segment) -> None:
        """Deletes a segment whose every batch is acknowledged (so durable), keeping first the newest marks it
        holds. Under the lock (or while opening). If the marks cannot be kept, the file stays until the next
        open tries again: deleting it would forget how far a producer got."""
        newer = {
            producer: found
            for producer, found in segment.marks.items()
            if found[0] > self._kept_marks.get(producer, (-1, b""))[0]
        }
        if newer:
            try:
                _write_marks(self._dir, {**self._kept_marks, **newer}, self._fsync)
            except OSError as exc:
                log.error("disk buffer %s: cannot keep the marks of %s, so keeping it: %s", self._dir, segment.path,
                          exc)
                return
            self._kept_marks.update(newer)
        del self._segments[segment.first_seq]
        segment.delete()

    def _compact_acks(self) -> None:
        self._acks.rewrite(list(self._frames), self._next_seq)

    # ------------------------------------------------------------------------------------------- misc

    def _check_open(self) -> None:
        if self._closed:
            raise BufferClosed(f"the buffer {self._dir} is closed")
        if self._failed is not None:
            raise BufferClosed(f"the buffer {self._dir} failed an fsync: {self._failed}")

    def _release(self) -> None:
        os.close(self._lock_fd)  # closing the descriptor drops the flock


class _DrainRate:
    """The recent ack rate, for a `BufferFull` that says how long to wait rather than a fixed guess: a client
    told too little retries into a still-full buffer, one told too much leaves the exporter idle."""

    def __init__(self) -> None:
        self._acks: collections.deque[tuple[float, int]] = collections.deque()  # (when, bytes)
        self._bytes = 0

    def note(self, size: int) -> None:
        now = time.monotonic()
        self._acks.append((now, size))
        self._bytes += size
        self._forget(now)

    def wait_for(self, needed: int) -> float:
        """Seconds until `needed` more bytes are likely acknowledged, held to a sane range."""
        now = time.monotonic()
        self._forget(now)
        if not self._acks:  # nothing acknowledged lately: the exporter is stuck or just started
            return DEFAULT_RETRY_AFTER_S
        rate = self._bytes / max(now - self._acks[0][0], 0.1)
        low, high = _RETRY_AFTER_RANGE_S
        return min(max(needed / rate, low), high)

    def _forget(self, now: float) -> None:
        while self._acks and self._acks[0][0] < now - _DRAIN_WINDOW_S:
            self._bytes -= self._acks.popleft()[1]


@dataclass(slots=True)
class _AckState:
    """What the ack log says: every seq below `high` not in `holes` is acknowledged, and so is every seq in
    `acks`."""

    high: int = 0
    holes: set[int] = field(default_factory=set)
    acks: set[int] = field(default_factory=set)

    @classmethod
    def read(cls, path: Path) -> _AckState:
        """Reading stops at a torn or corrupt record (a crash mid-write): at worst what follows is redelivered."""
        state = cls()
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return state
        for offset in range(0, len(data) - _ACK_RECORD.size + 1, _ACK_RECORD.size):
            kind, seq, crc = _ACK_RECORD.unpack_from(data, offset)
            if zlib.crc32(data[offset : offset + 9]) != crc:
                break
            if kind == _ACK:
                state.acks.add(seq)
            elif kind == _UNACKED:
                state.holes.add(seq)
            elif kind == _HIGH:
                state.high = max(state.high, seq)
            else:
                break
        return state

    def acked(self, seq: int) -> bool:
        return seq in self.acks or (seq < self.high and seq not in self.holes)

    def next_seq(self) -> int:
        """The lowest seq that can be given to a new batch: one no ack record could be taken to cover."""
        return max(self.high, max(self.acks, default=-1) + 1, max(self.holes, default=-1) + 1)


class _AckLog:
    """The append-only log of acknowledgements. Each record is one write(2), so it survives the process; an
    fdatasync at most every ACK_SYNC_INTERVAL_S bounds what a power loss can take back."""

    def __init__(self, path: Path, fsync: bool, unacked: Sequence[int], high: int) -> None:
        self._path, self._fsync = path, fsync
        self._fd = -1
        self.rewrite(unacked, high)

    @property
    def needs_compaction(self) -> bool:
        return self.size > self._compact_at

    def record(self, seq: int) -> None:
        write_all(self._fd, _ack_record(_ACK, seq))
        self.size += _ACK_RECORD.size
        self._unsynced = True
        if self._fsync and time.monotonic() - self._synced_at >= ACK_SYNC_INTERVAL_S:
            self.sync()

    def sync(self) -> None:
        if self._unsynced:
            fdatasync(self._fd)
            self._unsynced = False
        self._synced_at = time.monotonic()

    def rewrite(self, unacked: Sequence[int], high: int) -> None:
        """Replaces the log with `U` for each unacknowledged seq and `H high`, atomically: a crash leaves the old
        log or the new one, and both say the same."""
        records = b"".join([*(_ack_record(_UNACKED, seq) for seq in unacked), _ack_record(_HIGH, high)])
        replace_file(self._path, records, tmp=self._path.with_name(_ACK_TMP), fsync=self._fsync)
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = os.open(self._path, os.O_WRONLY | os.O_APPEND)
        self.size = _ACK_RECORD.size * (1 + len(unacked))
        self._compact_at = max(_ACK_LOG_COMPACT_BYTES, 2 * self.size)
        self._unsynced = False
        self._synced_at = time.monotonic()

    def close(self) -> None:
        os.close(self._fd)


# ----------------------------------------------------------------------------------------------- helpers


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


def _read_marks(path: Path) -> dict[str, tuple[int, bytes]]:
    """The marks file, or nothing when it is missing or damaged (then producers fall back on their own
    checkpoints: at worst a batch is repeated, never lost)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    payload = _verified_payload(data)
    if payload is None:
        log.error("disk buffer %s: the marks file is damaged; ignoring it", path.parent)
        return {}
    try:
        stored = msgpack.unpackb(payload)
        return {str(producer): (int(seq), bytes(value)) for producer, (seq, value) in stored.items()}
    except (ValueError, TypeError, AttributeError, msgpack.UnpackException) as exc:
        log.error("disk buffer %s: the marks file does not decode (%s); ignoring it", path.parent, exc)
        return {}


def _write_marks(directory: Path, marks: dict[str, tuple[int, bytes]], fsync: bool) -> None:
    """Replaces the marks file atomically: a crash leaves the old one or the new one."""
    payload = msgpack.packb({producer: [seq, value] for producer, (seq, value) in marks.items()})
    replace_file(directory / _MARKS, _framed(payload), tmp=directory / _MARKS_TMP, fsync=fsync)


def _segment_paths(directory: Path) -> list[tuple[int, Path]]:
    found = []
    for path in directory.glob(f"*{_SEGMENT_SUFFIX}"):
        stem = path.name[: -len(_SEGMENT_SUFFIX)]
        if stem.isdigit():
            found.append((int(stem), path))
    return sorted(found)


def _valid_frame_size(view: memoryview, offset: int) -> int | None:
    """The size of the frame at `offset` if it is whole and its CRC matches; None for a torn or corrupt one. A
    zero length is invalid too: a filesystem may show a crashed file's tail as zeros, which would otherwise pass
    as empty frames with a matching CRC."""
    if offset + _FRAME_HEADER.size > len(view):
        return None
    length, crc = _FRAME_HEADER.unpack_from(view, offset)
    end = offset + _FRAME_HEADER.size + length
    if length == 0 or end > len(view) or zlib.crc32(view[offset + _FRAME_HEADER.size : end]) != crc:
        return None
    return end - offset


def _framed(payload: bytes) -> bytes:
    """The payload behind its frame header (length and CRC), as segments and the marks file hold it."""
    return _FRAME_HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def _verified_payload(frame: bytes) -> memoryview | None:
    view = memoryview(frame)
    size = _valid_frame_size(view, 0)
    return view[_FRAME_HEADER.size :] if size == len(frame) else None


def _ack_record(kind: int, seq: int) -> bytes:
    head = struct.pack("<BQ", kind, seq)
    return head + struct.pack("<I", zlib.crc32(head))


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    """Writes at an explicit offset, so a write cut back after a failure leaves no hole for the next one."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


