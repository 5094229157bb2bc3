"""Each consumer's durable acknowledgements: one append-only log per consumer, `acks.<consumer>.log`, of 13-byte
records `u8 kind | u64 seq | u32 crc32`.

Each ack appends `A seq` with one unbuffered write(2). When the log grows it is rewritten (a temporary file, then
a rename) as what is still unacknowledged: `U seq` for each such batch, then `H next_seq`, meaning every seq below
it that is not listed is acknowledged. So a log's size follows its consumer's backlog, not the history.

A buffer written before consumers had names kept one `acks.log`; a consumer without a log of its own starts from
it (see `LEGACY_ACK_LOG`), so a collector upgraded in place neither loses nor repeats a batch beyond
at-least-once.
"""

from __future__ import annotations

import os
import re
import struct
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from collectors.durable import fdatasync, replace_file, write_all

_RECORD = struct.Struct("<BQI")  # kind, seq, crc32(kind and seq)
_ACK, _UNACKED, _HIGH = ord("A"), ord("U"), ord("H")

#: The single ack log of a buffer from before named consumers.
LEGACY_ACK_LOG = "acks.log"
#: A consumer's log is fdatasync'ed at most this often; acks younger than this may be redelivered after a power loss.
ACK_SYNC_INTERVAL_S = 1.0
#: A log is rewritten compactly once it is this large and twice its compact size.
COMPACT_BYTES = 256 * 1024
#: Consumer names become file names.
_CONSUMER_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")


def ack_log_path(directory: Path, consumer: str) -> Path:
    if not _CONSUMER_NAME.fullmatch(consumer) or consumer.startswith("."):
        raise ValueError(f"a buffer consumer's name must be 1 to 100 of A-Z a-z 0-9 _ . - (got {consumer!r})")
    return directory / f"acks.{consumer}.log"


def remove_temporaries(directory: Path) -> None:
    """Rewrites a crash interrupted: the logs they were to replace are still whole."""
    for path in directory.glob("acks*.tmp"):
        path.unlink(missing_ok=True)


@dataclass(slots=True)
class AckState:
    """What an ack log says: every seq below `high` not in `holes` is acknowledged, and so is every seq in
    `acks`."""

    high: int = 0
    holes: set[int] = field(default_factory=set)
    acks: set[int] = field(default_factory=set)

    @classmethod
    def read(cls, path: Path) -> AckState | None:
        """None when there is no such log. Reading stops at a torn or corrupt record (a crash mid-write): at
        worst what follows is redelivered."""
        state = cls()
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        for offset in range(0, len(data) - _RECORD.size + 1, _RECORD.size):
            kind, seq, crc = _RECORD.unpack_from(data, offset)
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


class AckLog:
    """The append-only log of one consumer's acknowledgements. Each record is one write(2), so it survives the
    process; an fdatasync at most every ACK_SYNC_INTERVAL_S bounds what a power loss can take back."""

    def __init__(self, path: Path, fsync: bool, unacked: Sequence[int], high: int) -> None:
        self._path, self._fsync = path, fsync
        self._fd = -1
        self.rewrite(unacked, high)

    @property
    def needs_compaction(self) -> bool:
        return self.size > self._compact_at

    def record(self, seq: int) -> None:
        write_all(self._fd, _record(_ACK, seq))
        self.size += _RECORD.size
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
        records = b"".join([*(_record(_UNACKED, seq) for seq in unacked), _record(_HIGH, high)])
        replace_file(self._path, records, tmp=self._path.with_name(self._path.name + ".tmp"), fsync=self._fsync)
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = os.open(self._path, os.O_WRONLY | os.O_APPEND)
        self.size = _RECORD.size * (1 + len(unacked))
        self._compact_at = max(COMPACT_BYTES, 2 * self.size)
        self._unsynced = False
        self._synced_at = time.monotonic()

    def close(self) -> None:
        os.close(self._fd)


def _record(kind: int, seq: int) -> bytes:
    head = struct.pack("<BQ", kind, seq)
    return head + struct.pack("<I", zlib.crc32(head))
