"""One open log file: reading it in large chunks, noticing truncation, and knowing how far it has got.

A follower holds its file descriptor for as long as it follows the file, so a file renamed by the kubelet's
rotation (or deleted with its pod) is still read to its end through the same descriptor. Reads are `pread`s of
`read_chunk` bytes split on `\\n` in one call; there is no syscall per line. Between reads a follower keeps the
lines of the last chunk not yet processed (a batch filled up) and the incomplete last line (`carry`).

A line that grows past the physical limit without a newline (binary garbage, or a runtime writing something
other than CRI lines) is cut there and the rest of it skipped as it arrives, so it neither grows memory nor holds
up the lines after it.
"""

from __future__ import annotations

import logging
import os

from collectors.tail.assembler import Assembler, Sink
from collectors.tail.model import FileKey, FilePosition
from collectors.tail.paths import PodContainer

log = logging.getLogger(__name__)

#: How many leading bytes identify a file's content. A CRI file starts with the nanosecond time of its first
#: line, so two different contents practically never share them; a copytruncate'd file that was rewritten past
#: the old offset between two polls is caught this way, where its size alone would not show it.
HEAD_BYTES = 128

#: Rejected reason for an unfinished P sequence lost because its file was truncated under it.
LOST_PARTIAL = "lost_partial"


class Follower:
    """Reads one file for the tailer. Not thread-safe: the tailer calls it from one thread at a time."""

    def __init__(
        self,
        fd: int,
        key: FileKey,
        path: str,
        source: PodContainer,
        seq: int,
        assembler: Assembler,
        *,
        read_pos: int,
        head: bytes,
        read_chunk: int,
        physical_limit: int,
    ) -> None:
        self.fd = fd
        self.key = key
        self.path = path
        self.source = source
        #: Opening order: within one container, older files are read to their end before newer ones.
        self.seq = seq
        self.assembler = assembler
        self.read_pos = read_pos  # the next byte to read
        self.head = head
        self.read_chunk = read_chunk
        self.physical_limit = physical_limit
        self._lines: list[bytes] = []
        self._index = 0
        self._line_offset = read_pos  # file offset of self._lines[self._index]
        self._carry = b""
        self._carry_offset = read_pos
        self._discard_start = -1  # >= 0 while skipping the rest of a cut line
        #: Set by the tailer's scan when no globbed path leads to this file any more and the runtime has let it
        #: go (a newer file of its container is followed, or it is deleted); `rotate_wait` counts from here.
        self.detached_at: float | None = None
        #: The last pump reached the end of the file with nothing left to process.
        self.caught_up = False
        self.finalized = False
        #: The highest `delivered` a commit has made durable, and the checkpoint seq before which commits are
        #: about this file's content before a truncation (and so say nothing about the current content).
        self.committed = -1
        self.reset_seq = -1
        #: `delivered` as of the last checkpoint handed out: a commit can make no more than that durable.
        self.issued = -1

    @classmethod
    def open(
        cls,
        path: str,
        key: FileKey,
        source: PodContainer,
        seq: int,
        saved: FilePosition | None,
        *,
        start_at_end: bool,
        max_line_bytes: int,
        read_chunk: int,
        physical_limit: int,
    ) -> Follower | None:
        """Opens `path` if it is still the file `key` names (it may have been rotated since it was stat'ed),
        resuming from `saved` when that position still fits the file. None when the file is gone or replaced."""
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) != key:
                os.close(fd)
                return None
            read_pos = delivered = 0
            head = b""
            if saved is not None and saved.resume <= st.st_size and os.pread(fd, len(saved.head), 0) == saved.head:
                read_pos, delivered, head = saved.resume, saved.delivered, saved.head
            elif saved is not None:
                log.info("tail: %s changed since it was checkpointed; reading it from the start", path)
            elif start_at_end:
                read_pos = delivered = st.st_size
                head = os.pread(fd, HEAD_BYTES, 0)
        except OSError:
            os.close(fd)
            return None
        assembler = Assembler(source, max_line_bytes, delivered=read_pos, replay_until=delivered)
        follower = cls(
            fd,
            key,
            path,
            source,
            seq,
            assembler,
            read_pos=read_pos,
            head=head,
            read_chunk=read_chunk,
            physical_limit=physical_limit,
        )
        if saved is not None and (read_pos, delivered) == (saved.resume, saved.delivered):
            follower.committed = follower.issued = saved.delivered
        return follower

    # -- state -------------------------------------------------------------------------------------------

    def position(self) -> FilePosition:
        resume = self.assembler.resume_offset()
        if self._discard_start >= 0:
            resume = min(resume, self._discard_start)
        return FilePosition(self.key[0], self.key[1], self.path, resume, self.assembler.delivered_offset(), self.head)

    @property
    def unfinished(self) -> bool:
        """Ends in the middle of something: an incomplete line, a cut line, or an unfinished P sequence."""
        return bool(self._carry) or self._discard_start >= 0 or self.assembler.has_pending

    def deleted(self) -> bool:
        """No name leads to the file any more (its pod was removed): nothing will write to it again."""
        try:
            return os.fstat(self.fd).st_nlink == 0
        except OSError:
            return True

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    # -- reading -----------------------------------------------------------------------------------------

    def check(self, sink: Sink) -> bool:
        """Notices copytruncate: the file is shorter than what was read, or its first bytes changed. Then
        everything restarts at offset 0 (an unfinished sequence is lost and counted). True when it did."""
        try:
            size = os.fstat(self.fd).st_size
            truncated = size < self.read_pos or self._head_changed()
        except OSError:
            return False
        if not truncated:
            return False
        log.info("tail: %s was truncated; reading it again from the start", self.path)
        if self.assembler.reset():
            sink.reject(LOST_PARTIAL)
        self.read_pos = self._line_offset = self._carry_offset = 0
        self._lines, self._index, self._carry, self._discard_start = [], 0, b"", -1
        self.head = b""
        self.caught_up = False
        self.committed = self.issued = -1
        return True

    def _head_changed(self) -> bool:
        if self.read_pos == 0:
            return False
        want = min(HEAD_BYTES, self.read_pos)
        if len(self.head) >= want:
            return os.pread(self.fd, len(self.head), 0) != self.head
        current = os.pread(self.fd, want, 0)
        if current[: len(self.head)] != self.head:
            return True
        self.head = current
        return False

    def pump(self, sink: Sink, reads: int = 1) -> bool:
        """Processes buffered lines, then reads and processes up to `reads` chunks, until the sink is full.
        Returns whether anything was read or processed; `caught_up` tells whether the end was reached."""
        progressed = False
        self.caught_up = False
        while not sink.full:
            if self._index < len(self._lines):
                self._index, self._line_offset = self.assembler.feed(
                    self._lines, self._index, self._line_offset, self.physical_limit, sink
                )
                progressed = True
                continue
            if len(self._carry) > self.physical_limit:
                self._cut_carry(sink)
                progressed = True
                continue
            if reads <= 0:
                return progressed
            reads -= 1
            data = os.pread(self.fd, self.read_chunk, self.read_pos)
            if not data:
                self.caught_up = True
                return progressed
            progressed = True
            self._take(data)
        return progressed

    def _take(self, data: bytes) -> None:
        start = self.read_pos
        self.read_pos += len(data)
        if start == 0 and len(self.head) < HEAD_BYTES:
            self.head = data[:HEAD_BYTES]
        if self._discard_start >= 0:
            newline = data.find(b"\n")
            if newline < 0:
                return
            self._discard_start = -1
            self._carry_offset = start + newline + 1
            self.assembler.skip_to(self._carry_offset)
            data = data[newline + 1 :]
        buf = self._carry + data if self._carry else data
        lines = buf.split(b"\n")
        self._carry = lines.pop()
        self._lines, self._index, self._line_offset = lines, 0, self._carry_offset
        self._carry_offset = self.read_pos - len(self._carry)

    def _cut_carry(self, sink: Sink) -> None:
        """The incomplete line outgrew the limit: emit its head now, skip the rest when it arrives."""
        head = self._carry[: self.physical_limit]
        sink.bytes += len(head)
        self.assembler.feed_cut(head, self._carry_offset, sink)
        self._discard_start = self._carry_offset
        self._carry = b""  # holds no newline, so all of it belongs to the cut line

    def finalize(self, sink: Sink) -> None:
        """The file is rotated away or deleted and has stopped growing: its incomplete last line and any
        unfinished sequence become messages, completing just past the end (as if a newline followed)."""
        end = self.read_pos + 1
        if self._discard_start >= 0:
            self._discard_start = -1
            self.assembler.skip_to(self.read_pos)
        elif self._carry:
            carry, self._carry = self._carry, b""
            self.assembler.feed([carry], 0, self._carry_offset, self.physical_limit, sink)
        self.assembler.flush(end, sink)
        self.finalized = True
