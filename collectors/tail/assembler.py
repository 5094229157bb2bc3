"""From the physical lines of one file to messages: P/F reassembly, the length limit, and replay after a restart.

Each file has its own `Assembler`, and within a file each stream its own unfinished sequence, since the runtime
interleaves stdout and stderr lines (a stdout P ... F sequence may have stderr lines between its chunks).

Checkpoints and unfinished sequences. We do not persist the chunks of an unfinished sequence; instead a file's
position has two offsets (model.FilePosition): `resume`, the start of the oldest unfinished sequence, where a
restarted tail reads again to rebuild it, and `delivered`, the end of the last line processed. Every message
is emitted at a deterministic *completion offset* (the end of its F chunk, or where it hit the length limit),
so a restarted tail can re-read from `resume` and suppress exactly the messages that complete at or before
`delivered`: they were in a committed batch. That keeps the checkpoint small (two integers a file, however long
the unfinished line), and committed messages are neither lost nor delivered twice even when a batch was cut in
the middle of a sequence with lines of the other stream after its start.

The length limit applies to a message's content in bytes (after reassembly). A message that outgrows it is
emitted at once, cut at a character boundary with formats.TRUNCATION_MARKER appended, and the rest of its chunks
are skipped as they arrive, so an endless P sequence neither holds memory nor holds up the lines after it.
"""

from __future__ import annotations

from collectors.tail.formats import (
    INVALID_UTF8,
    TRUNCATED,
    TRUNCATION_MARKER,
    Fragment,
    Rejected,
    cut_text,
    cut_utf8,
    decode_content,
    parse_cri,
    parse_cri_whole,
    parse_docker,
    parse_line,
    text_size,
)
from collectors.tail.model import TailedLine
from collectors.tail.paths import PodContainer


class Sink:
    """Collects one batch: messages, counts by reason, and the bytes read for it, which bound a batch's work
    even when every line is garbage or replayed."""

    __slots__ = ("records", "rejected", "repaired", "bytes", "max_lines", "max_bytes")

    def __init__(self, max_lines: int, max_bytes: int) -> None:
        self.records: list[TailedLine] = []
        self.rejected: dict[str, int] = {}
        self.repaired: dict[str, int] = {}
        self.bytes = 0
        self.max_lines = max_lines
        self.max_bytes = max_bytes

    @property
    def full(self) -> bool:
        return len(self.records) >= self.max_lines or self.bytes >= self.max_bytes

    @property
    def empty(self) -> bool:
        return not (self.records or self.rejected or self.repaired)

    def reject(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1

    def repair(self, reason: str) -> None:
        self.repaired[reason] = self.repaired.get(reason, 0) + 1


class _Pending:
    """An unfinished P sequence of one stream."""

    __slots__ = ("start", "ts_ns", "parts", "size", "cut", "invalid", "skipping")

    def __init__(self, start: int, ts_ns: int) -> None:
        self.start = start
        self.ts_ns = ts_ns
        self.parts: list[bytes | str] = []
        self.size = 0
        self.cut = False
        self.invalid = False
        self.skipping = False  # already emitted (overlong): drop chunks up to and including the F


class Assembler:
    """Turns one file's physical lines, fed in file order with their offsets, into messages."""

    def __init__(self, source: PodContainer, max_line_bytes: int, *, delivered: int = 0, replay_until: int = 0):
        self.source = source
        self.max_line_bytes = max_line_bytes
        #: Lines up to here have been processed (see module docstring).
        self.delivered = delivered
        #: Messages completing at or before here were delivered (and committed) by an earlier run.
        self.replay_until = replay_until
        self._pending: dict[str, _Pending] = {}

    # -- positions ---------------------------------------------------------------------------------------

    def delivered_offset(self) -> int:
        """`delivered` for a checkpoint: while a restarted tail re-reads what an earlier run delivered, the
        earlier run's mark still holds (those messages are committed even though not yet re-read)."""
        return max(self.delivered, self.replay_until)

    def resume_offset(self) -> int:
        if not self._pending:
            return self.delivered
        return min(self.delivered, min(p.start for p in self._pending.values()))

    @property
    def has_pending(self) -> bool:
        return bool(self._pending)

    def reset(self) -> bool:
        """The file was truncated: forget everything. True when an unfinished sequence was lost with it."""
        lost = any(not p.skipping for p in self._pending.values())
        self._pending.clear()
        self.delivered = 0
        self.replay_until = 0
        return lost

    # -- feeding -----------------------------------------------------------------------------------------

    def feed(self, lines: list[bytes], index: int, offset: int, physical_limit: int, sink: Sink) -> tuple[int, int]:
        """Processes `lines[index:]` (complete lines without their newlines; the first starts at file offset
        `offset`) until the list ends or the sink is full. Returns the index and offset of the first line not
        processed. A line longer than `physical_limit` is cut there first (see `feed_cut`).

        The loop is written for speed: a complete CRI line of a stream with no unfinished sequence (nearly all of
        them) is parsed by `parse_cri_whole` and decoded and appended without any further call or object."""
        records = sink.records
        max_lines, max_bytes = sink.max_lines, sink.max_bytes
        read = sink.bytes
        source, limit, replay, pending = self.source, self.max_line_bytes, self.replay_until, self._pending
        n = len(lines)
        first = offset
        try:
            while index < n and len(records) < max_lines and read < max_bytes:
                raw = lines[index]
                start = offset
                offset += len(raw) + 1
                index += 1
                read += len(raw) + 1
                if len(raw) > physical_limit:
                    self.feed_cut(raw[:physical_limit], start, sink)
                    continue
                whole = parse_cri_whole(raw) if raw and raw[0] != 0x7B else None
                if whole is not None:
                    ts_ns, stream, data = whole
                    if len(data) <= limit and not (pending and stream in pending):
                        if offset > replay:
                            records.append(TailedLine(ts_ns, stream, _text(data, sink), source, start))
                        continue
                frag = parse_cri(raw) if raw and raw[0] != 0x7B else parse_line(raw)
                if isinstance(frag, Rejected):
                    if offset > replay:
                        sink.reject(frag.reason)
                    continue
                content = frag.content
                if (
                    frag.partial
                    or not isinstance(content, bytes)
                    or len(content) > limit
                    or (pending and frag.stream in pending)
                ):
                    self._fragment(frag, start, offset, False, sink)
                elif offset > replay:
                    records.append(TailedLine(frag.ts_ns, frag.stream, _text(content, sink), source, start))
        finally:
            sink.bytes = read
            if offset != first:
                self.delivered = offset
        return index, offset

    def feed_cut(self, head: bytes, start: int, sink: Sink) -> None:
        """The first `physical_limit` bytes of a line that goes on longer. The message completes at
        `start + len(head)` whether the rest of the line was already read or not, so a replay decides the same
        way however the reads fell. The caller skips the rest of the line and sets `delivered` past it."""
        completion = start + len(head)
        frag = parse_docker(head, cut=True) if head[:1] == b"{" else parse_cri(head)
        if isinstance(frag, Rejected):
            if completion > self.replay_until:
                sink.reject(frag.reason)
        else:
            self._fragment(frag, start, completion, True, sink)
        self.delivered = completion

    def skip_to(self, offset: int) -> None:
        """The rest of a cut line, up to and including its newline, was dropped."""
        self.delivered = offset

    def flush(self, completion: int, sink: Sink) -> None:
        """Emits every unfinished sequence as it stands: the file will not grow any more (rotated away or
        deleted). A sequence continued in the next file (the runtime reopened mid-sequence) thus becomes two
        messages, as in Fluent Bit."""
        if not self._pending:
            return
        for stream, pend in sorted(self._pending.items(), key=lambda item: item[1].start):
            if not pend.skipping:
                self._emit(pend.ts_ns, stream, _join(pend.parts), pend.start, completion, pend.cut, pend.invalid, sink)
        self._pending.clear()
        self.delivered = max(self.delivered, completion)

    # -- the general path --------------------------------------------------------------------------------

    def _fragment(self, frag: Fragment, start: int, completion: int, cut: bool, sink: Sink) -> None:
        pend = self._pending.get(frag.stream)
        if pend is None:
            if not frag.partial:
                self._emit(frag.ts_ns, frag.stream, frag.content, start, completion, cut, frag.invalid_utf8, sink)
                return
            pend = self._pending[frag.stream] = _Pending(start, frag.ts_ns)
        if pend.skipping:
            if not frag.partial:
                del self._pending[frag.stream]
            return
        content = frag.content
        pend.parts.append(content)
        pend.size += len(content) if isinstance(content, bytes) else text_size(content)
        pend.cut |= cut
        pend.invalid |= frag.invalid_utf8
        if pend.size > self.max_line_bytes:
            self._emit(pend.ts_ns, frag.stream, _join(pend.parts), pend.start, completion, True, pend.invalid, sink)
            if frag.partial:
                pend.skipping, pend.parts = True, []
            else:
                del self._pending[frag.stream]
        elif not frag.partial:
            del self._pending[frag.stream]
            self._emit(pend.ts_ns, frag.stream, _join(pend.parts), pend.start, completion, pend.cut, pend.invalid, sink)

    def _emit(
        self,
        ts_ns: int,
        stream: str,
        content: bytes | str,
        start: int,
        completion: int,
        cut: bool,
        invalid: bool,
        sink: Sink,
    ) -> None:
        if completion <= self.replay_until:
            return
        limit = self.max_line_bytes
        if isinstance(content, bytes):
            if len(content) > limit:
                content, cut = cut_utf8(content, limit), True
            body, bad = decode_content(content)
            invalid |= bad
        else:
            body = content
            if len(body) > limit // 4:
                cut_body = cut_text(body, limit)
                cut |= cut_body is not body
                body = cut_body
        if cut:
            body += TRUNCATION_MARKER
            sink.repair(TRUNCATED)
        if invalid:
            sink.repair(INVALID_UTF8)
        sink.records.append(TailedLine(ts_ns, stream, body, self.source, start))


def _join(parts: list[bytes | str]) -> bytes | str:
    if all(isinstance(part, bytes) for part in parts):
        return b"".join(parts)  # type: ignore[arg-type]
    return "".join(part if isinstance(part, str) else part.decode("utf-8", "replace") for part in parts)


def _text(data: bytes, sink: Sink) -> str:
    """A whole line's message as text; invalid UTF-8 is replaced and counted as a repair."""
    body, invalid = decode_content(data)
    if invalid:
        sink.repair(INVALID_UTF8)
    return body
