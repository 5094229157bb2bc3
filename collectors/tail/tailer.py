"""Follows every container log file matching some globs and hands out batches of messages, pull by pull.

What it does, and why that way:

- **Polling, no inotify** (as OpenChoreo's Fluent Bit runs, `Inotify_Watcher false`): inotify watches run out
  and miss events on some file systems. Open files are read whenever the consumer asks for a batch, or every
  `poll_interval` when idle; the globs are re-expanded every `refresh_interval` (Fluent Bit's `Refresh_Interval`)
  to find new files and notice rotated or deleted ones.
- **Pull**: a batch is read only when the consumer asks for the next one (`async for batch in batches()`), so a
  slow consumer slows the reading and nothing piles up in memory. The reading and parsing run in a worker
  thread, off the event loop.
- **Rotation** (kubelet: `0.log` renamed to `0.log.<timestamp>`, a new `0.log` created; or `1.log` after a
  restart): files are identified by (device, inode). A file no globbed path leads to any more is still read
  through its open descriptor. The runtime writes to a renamed file until it reopens (the kubelet renames,
  then asks it to), so such a file is *detached* only once the runtime has let it go: a newer file of the same
  container (the same pod directory and container) is followed, or the file is deleted. A detached file is read
  to the end, and only then the newer files of its container, so messages of one container come out in order;
  if it ends unfinished (a P without its F, a line without its newline), the newer files also wait for it to be
  flushed. It is closed `rotate_wait` seconds (Fluent Bit's `Rotate_Wait`) after it was detached, once its last
  messages are committed. A file that the tail was following when it stopped and that was rotated meanwhile is
  found again under `<path>.*`, and so is one rotated between the scan that stat'ed it and its open. A file
  created and rotated away between two scans (scans happen only as the consumer pulls, so a consumer stalled on
  a slow disk spaces them out) is found under `<path>.*` too, when the next file at its path turns up: a
  rotated file there that was written since the last scan the tail knew of (its first, or the one the
  checkpoint it resumed from records), that the tail neither follows nor has released, is one it missed, and
  it is read before the new file. So are files rotated away while the tail was down after one its checkpoint
  knew, and a new container's files rotated away while it was down. Limits of polling: a file the kubelet
  compressed (`.gz`) before any scan saw it is not read, nor is any rotated file after a start without a
  checkpoint (it may have been read by a tail before, and nothing says).
- **Truncation** (copytruncate): a file shorter than what was read, or whose first bytes changed, is read again
  from 0 (follower.py).
- **Checkpoints** (checkpoint.py): every batch carries the position of every followed file right after it;
  `commit` makes it durable. A new Tailer over the same checkpoint file resumes exactly after the last committed
  batch: committed messages are not delivered again, uncommitted ones are (at-least-once), and unfinished P
  sequences are rebuilt by re-reading, not persisted (assembler.py explains how). A consumer that stores each
  batch's checkpoint atomically with the batch (`encode_checkpoint`) hands the newest one it holds to `adopt`
  before the first batch; the Tailer then resumes from it when it is newer than the file, which makes the tail
  exactly-once into that consumer.
- **Limits**: `max_lines` messages and `max_bytes` bytes read per batch; `max_line_bytes` per message.

Within one Tailer a batch is delivered once, committed or not: a consumer that fails to store a batch retries
it itself (or restarts the tail from the checkpoint). Committing a batch also commits every batch before it.
A batch may hold no records: it then carries only a checkpoint that lets a drained rotated file be released;
commit it like any other.
"""

from __future__ import annotations

import asyncio
import fnmatch
import glob
import logging
import os
import stat
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

from collectors.tail.assembler import Sink
from collectors.tail.checkpoint import CheckpointStore, decode_checkpoint
from collectors.tail.follower import Follower
from collectors.tail.model import Checkpoint, FileKey, FilePosition, TailBatch
from collectors.tail.paths import PodContainer, is_argo_helper, natural_key, source_of

log = logging.getLogger(__name__)

DEFAULT_GLOBS = ("/var/log/pods/*/*/*.log",)
#: Room for the CRI or Docker envelope around a message of `max_line_bytes`: a physical line longer than
#: `max_line_bytes + ENVELOPE_BYTES` is cut before it is parsed (follower.py).
ENVELOPE_BYTES = 4096

GroupKey = tuple[str, ...]
#: The kubelet compresses older rotated files: into `<file>.tmp`, renamed `<file>.gz` when done. Neither is CRI.
COMPRESSED = (".gz", ".tmp")


@dataclass(frozen=True, slots=True)
class TailConfig:
    checkpoint_path: str | os.PathLike[str]
    globs: tuple[str, ...] = DEFAULT_GLOBS
    #: fnmatch patterns of paths never to follow (Fluent Bit's `Exclude_Path`).
    exclude_paths: tuple[str, ...] = ()
    #: Containers not to follow, by location; by default Argo's `init` and `wait` in workflow pods.
    exclude: Callable[[PodContainer], bool] | None = is_argo_helper
    refresh_interval: float = 5.0
    poll_interval: float = 0.25
    rotate_wait: float = 5.0
    max_lines: int = 5_000
    max_bytes: int = 4 << 20
    max_line_bytes: int = 1 << 20
    read_chunk: int = 1 << 20
    #: Files found at the first scan with no checkpoint are read from their start (Fluent Bit's
    #: `Read_from_Head On`, as OpenChoreo sets it); False starts them at their current end.
    read_from_head: bool = True


@dataclass(slots=True)
class TailStats:
    """Running totals since the Tailer started, for the pipeline's own metrics."""

    files_opened: int = 0
    files_closed: int = 0
    truncations: int = 0
    records: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    repaired: dict[str, int] = field(default_factory=dict)


class Tailer:
    def __init__(self, config: TailConfig) -> None:
        self.config = config
        self.stats = TailStats()
        self._store = CheckpointStore(config.checkpoint_path)
        loaded = self._store.load()
        self._saved: dict[FileKey, FilePosition] = {position.key: position for position in loaded.files}
        self._followers: dict[FileKey, Follower] = {}
        self._groups: dict[GroupKey, list[Follower]] = {}
        self._ignored: set[tuple[FileKey, str]] = set()
        self._opened = 0  # follower seq
        # Checkpoint seqs continue from the one resumed from, so they order checkpoints across restarts.
        self._seq = loaded.seq
        self._committed_seq = loaded.seq
        self._cursor = 0
        self._last_scan: float | None = None
        #: Wall-clock time of the last scan, and of the earliest scan this tail answers for: that of the checkpoint
        #: it resumed from, else its own first. A rotated file last written before the latter is not missed.
        self._scanned_ns = 0
        self._since_ns = loaded.scanned_ns
        #: Per path the runtime writes to, the rotated files at `<path>.*` this tail read and released, so that
        #: looking for missed files does not read them again; pruned to the files still there at each look.
        self._released: dict[str, set[FileKey]] = {}
        self._closed = False
        self._lock = threading.Lock()  # one fill (worker thread) at a time; close waits for it
        self._commit_lock = asyncio.Lock()

    # -- the consumer's side -----------------------------------------------------------------------------

    async def batches(self) -> AsyncIterator[TailBatch]:
        """Batches as long as the tailer is open; waits (polling) while there is nothing new."""
        while not self._closed:
            batch = await asyncio.to_thread(self._fill)
            if batch is None:
                await asyncio.sleep(self.config.poll_interval)
                continue
            yield batch

    def adopt(self, mark: bytes) -> bool:
        """Resumes from `mark`, a checkpoint `encode_checkpoint` made that the consumer stored with its batch,
        if it is newer than the checkpoint file (the batch was stored, its commit did not happen). Only before
        the first batch. True when adopted; an unreadable mark is logged and ignored (the file still holds)."""
        if self._last_scan is not None:
            raise RuntimeError("adopt() must come before the first batch")
        try:
            checkpoint = decode_checkpoint(mark)
        except ValueError as exc:
            log.warning("tail: the checkpoint stored with the last batch is unreadable (%s); using the file", exc)
            return False
        if checkpoint.seq <= self._seq:
            return False
        log.info(
            "tail: resuming from the checkpoint stored with the last batch (seq %d; file %d)", checkpoint.seq, self._seq
        )
        self._saved = {position.key: position for position in checkpoint.files}
        self._seq = self._committed_seq = checkpoint.seq
        self._since_ns = checkpoint.scanned_ns
        return True

    async def commit(self, checkpoint: Checkpoint) -> None:
        """Makes the positions right after a batch durable; call it once the batch is stored. Older
        checkpoints than one already committed are ignored."""
        async with self._commit_lock:
            if checkpoint.seq <= self._committed_seq:
                return
            await asyncio.to_thread(self._store.save, checkpoint)
            self._committed_seq = checkpoint.seq
            for position in checkpoint.files:
                follower = self._followers.get(position.key)
                if follower is not None and checkpoint.seq > follower.reset_seq:
                    follower.committed = max(follower.committed, position.delivered)

    def close(self) -> None:
        """Closes every file. Uncommitted batches will be delivered again by the next Tailer."""
        with self._lock:
            self._closed = True
            for follower in self._followers.values():
                follower.close()
            self._followers.clear()
            self._groups.clear()

    async def __aenter__(self) -> Tailer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    # -- one batch (in a worker thread) ------------------------------------------------------------------

    def _fill(self) -> TailBatch | None:
        with self._lock:
            if self._closed:
                return None
            now = time.monotonic()
            if self._last_scan is None or now - self._last_scan >= self.config.refresh_interval:
                self._scan(now)
                self._last_scan = now
            sink = Sink(self.config.max_lines, self.config.max_bytes)
            for follower in self._followers.values():
                follower.caught_up = False  # only a file seen at its end in this fill may be retired
                if follower.check(sink):
                    follower.reset_seq = self._seq
                    self.stats.truncations += 1
            self._read(sink)
            waiting = self._retire(now, sink)
            if sink.empty and not waiting:
                return None
            self._seq += 1
            self._count(sink)
            positions = []
            for follower in self._followers.values():
                position = follower.position()
                follower.issued = position.delivered
                positions.append(position)
            checkpoint = Checkpoint(self._seq, tuple(positions), self._scanned_ns)
            return TailBatch(sink.records, checkpoint, sink.rejected, sink.repaired)

    def _read(self, sink: Sink) -> None:
        """Rounds over the containers, one chunk per container per round, until the batch is full or nothing
        is left; the first container served rotates from batch to batch so a busy one cannot starve the rest.
        Within a container, a file is read only once every older one is at its end."""
        groups = list(self._groups.values())
        if not groups:
            return
        self._cursor = (self._cursor + 1) % len(groups)
        groups = groups[self._cursor :] + groups[: self._cursor]
        progressed = True
        while progressed and not sink.full:
            progressed = False
            for group in groups:
                for follower in group:
                    progressed |= follower.pump(sink)
                    if sink.full:
                        return
                    if not follower.caught_up or _holds_back(follower):
                        break

    def _retire(self, now: float, sink: Sink) -> bool:
        """Closes detached files that are drained, waited for and committed. True when one waits only for a
        checkpoint to be handed out (its last bytes produced no message, e.g. the skipped rest of a cut line),
        in which case the batch goes out even without records, so the consumer's commit can release it."""
        waiting = False
        for follower in list(self._followers.values()):
            if follower.detached_at is None or not follower.caught_up:
                continue
            if now - follower.detached_at < self.config.rotate_wait:
                continue
            if not follower.finalized:
                if not sink.full:
                    follower.finalize(sink)
                continue
            delivered = follower.position().delivered
            if follower.committed >= delivered:
                self._forget(follower)
            elif follower.issued < delivered:
                waiting = True
        return waiting

    def _count(self, sink: Sink) -> None:
        self.stats.records += len(sink.records)
        for totals, counts in ((self.stats.rejected, sink.rejected), (self.stats.repaired, sink.repaired)):
            for reason, count in counts.items():
                totals[reason] = totals.get(reason, 0) + count

    # -- files -------------------------------------------------------------------------------------------

    def _scan(self, now: float) -> None:
        """Expands the globs; re-attaches followed files that came back, opens new ones (in natural order, so
        `0.log` before `1.log`), and detaches followed files no path leads to any more once the runtime is done
        with them (`_detach`)."""
        first = self._last_scan is None
        self._scanned_ns = time.time_ns()
        resumed = first and self._since_ns > 0  # from a checkpoint that says when the last tail scanned
        if first and not resumed:
            self._since_ns = self._scanned_ns
        found: dict[FileKey, str] = {}
        for pattern in self.config.globs:
            for path in sorted(glob.glob(pattern), key=natural_key):
                if any(fnmatch.fnmatch(path, excluded) for excluded in self.config.exclude_paths):
                    continue
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode):
                    found.setdefault((st.st_dev, st.st_ino), path)
        for key, follower in self._followers.items():
            if key in found:
                follower.detached_at = None
                follower.path = found[key]
        start_at_end = first and not self.config.read_from_head
        if first:
            self._recover_rotated(found)
        for key, path in found.items():
            if key in self._followers or (key, path) in self._ignored:
                continue
            if not first or (resumed and not start_at_end):  # at a restart, also a container new since
                self._open_missed(path, found)
            if key not in self._followers:  # it may have been rotated since the glob, and just found as missed
                self._open_found(path, key, start_at_end=start_at_end)
        self._detach(found, now)
        # Saved positions serve the files found at start; a file appearing later is new, even if an inode
        # number it reuses was once checkpointed.
        self._saved = {}

    def _recover_rotated(self, found: dict[FileKey, str]) -> None:
        """Files checkpointed under a path that now names another file were most likely rotated while the tail
        was down: the kubelet keeps the last one uncompressed as `<path>.<timestamp>`. Finish those first (the
        files rotated away after them follow, when `_scan` looks for missed files at the new file)."""
        for position in sorted(self._saved.values(), key=lambda p: natural_key(p.path)):
            if position.key not in found:
                self._open_rotated(position.path, position.key, start_at_end=False)

    def _open_found(self, path: str, key: FileKey, *, start_at_end: bool) -> None:
        """Opens a file the scan stat'ed. The kubelet may have rotated it since (the path then names the next
        file, or nothing yet): it is then looked for under `<path>.*` like a file rotated while the tail was
        down. Without that its lines would be lost, and at the first scan its checkpoint with them."""
        if self._open(path, key, start_at_end=start_at_end) is None and (key, path) not in self._ignored:
            self._open_rotated(path, key, start_at_end=start_at_end)

    def _open_rotated(self, path: str, key: FileKey, *, start_at_end: bool) -> Follower | None:
        """Opens the file `key` where the kubelet renames `path` to, if it is there."""
        for sibling, st in _rotated_siblings(path):
            if (st.st_dev, st.st_ino) == key:
                return self._open(sibling, key, start_at_end=start_at_end, group_path=path)
        return None

    def _open_missed(self, path: str, found: dict[FileKey, str]) -> None:
        """A new file is at `path`, or a file checkpointed there was rotated while the tail was down: opens,
        oldest first, the files rotated away from `path` that no scan saw (created and renamed between two
        scans). Without this their lines would be lost. Such a file is at `<path>.*`, not followed, not
        released by this tail, and written since the scan `_since_ns` records. Nothing is looked for when the
        file that was at `path` was not renamed away (it was deleted, or a copytruncate set a copy aside whose
        lines were read from the original)."""
        here = [follower for follower in self._followers.values() if follower.path == path]
        if here and all(follower.key in found or follower.deleted() for follower in here):
            return
        released = self._released.get(path, set())
        present: set[FileKey] = set()
        missed: list[tuple[int, str, FileKey]] = []
        for sibling, st in _rotated_siblings(path):
            key = (st.st_dev, st.st_ino)
            present.add(key)
            if not stat.S_ISREG(st.st_mode) or sibling.endswith(COMPRESSED):
                continue
            if key in self._followers or key in released or st.st_mtime_ns < self._since_ns:
                continue
            missed.append((st.st_mtime_ns, sibling, key))
        if path in self._released:
            self._released[path] = released & present
        for _, sibling, key in sorted(missed):
            log.warning("tail: %s was rotated away between two scans; reading it before the new file", sibling)
            self._open(sibling, key, start_at_end=False, group_path=path)

    def _detach(self, found: dict[FileKey, str], now: float) -> None:
        """Starts `rotate_wait` for a followed file no path leads to once the runtime has let it go: a newer
        file of its container is followed (the runtime reopened) or it is deleted. Until then a renamed file is
        still the runtime's: the kubelet renames, then asks the runtime to reopen (and renames back if that
        fails), and lines written in between, however long it takes, belong to the renamed file."""
        for group in self._groups.values():
            newest = max(follower.seq for follower in group)
            for follower in group:
                if follower.key in found or follower.detached_at is not None:
                    continue
                if follower.seq < newest or follower.deleted():
                    follower.detached_at = now

    def _open(self, path: str, key: FileKey, *, start_at_end: bool, group_path: str = "") -> Follower | None:
        source = source_of(group_path or path)
        if source is None:
            source = PodContainer("", "", "", "")
        if self.config.exclude is not None and self.config.exclude(source):
            self._ignored.add((key, path))
            return None
        limit = self.config.max_line_bytes
        follower = Follower.open(
            path,
            key,
            source,
            self._opened,
            self._saved.get(key),
            start_at_end=start_at_end,
            max_line_bytes=limit,
            read_chunk=self.config.read_chunk,
            physical_limit=limit + ENVELOPE_BYTES,
        )
        if follower is None:
            return None
        log.debug("tail: following %s from offset %d", path, follower.read_pos)
        # Named by the path the runtime wrote it under, which is what a restart looks under for rotated files.
        follower.path = group_path or path
        self._opened += 1
        self.stats.files_opened += 1
        self._followers[key] = follower
        self._groups.setdefault(_group_key(source, group_path or path), []).append(follower)
        return follower

    def _forget(self, follower: Follower) -> None:
        log.debug("tail: released %s", follower.path)
        deleted = follower.deleted()
        follower.close()
        self.stats.files_closed += 1
        del self._followers[follower.key]
        if not deleted:
            self._released.setdefault(follower.path, set()).add(follower.key)
        elif all(other.path != follower.path for other in self._followers.values()):
            self._released.pop(follower.path, None)  # the container's files are gone
        for key, group in self._groups.items():
            if follower in group:
                group.remove(follower)
                if not group:
                    del self._groups[key]
                break


def _rotated_siblings(path: str) -> list[tuple[str, os.stat_result]]:
    """The files at `<path>.*`, where the kubelet renames `path` when it rotates it, in name order."""
    siblings = []
    for sibling in sorted(glob.glob(glob.escape(path) + ".*")):
        try:
            siblings.append((sibling, os.stat(sibling)))
        except OSError:
            continue
    return siblings


def _holds_back(follower: Follower) -> bool:
    """A rotated file that ends unfinished is flushed only after `rotate_wait`; the newer files of its container
    wait for that, so its last message still comes before theirs."""
    return follower.detached_at is not None and not follower.finalized and follower.unfinished


def _group_key(source: PodContainer, path: str) -> GroupKey:
    """The files of one container (all its restarts and rotations) share a key."""
    if source.pod:
        return (source.namespace, source.pod, source.pod_uid, source.container)
    return (str(Path(path).parent),)
