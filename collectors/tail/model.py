"""What the tail hands its consumer: lines, batches of them, and the opaque checkpoint a batch carries."""

from __future__ import annotations

from dataclasses import dataclass, field

from collectors.tail.paths import PodContainer

#: A file, independent of its name: the kubelet renames files when it rotates them.
FileKey = tuple[int, int]  # (st_dev, st_ino)


@dataclass(slots=True)
class TailedLine:
    """One log message, reassembled from its P/F chunks.

    `ts_ns` is the time of its first chunk. `offset` is where that chunk starts in the file; with the source's
    pod UID, container and stream and `ts_ns` it identifies the message, so a consumer can derive a
    deterministic id and store a re-delivered message once.
    """

    ts_ns: int
    stream: str  # stdout | stderr
    body: str
    source: PodContainer
    offset: int

    @property
    def namespace(self) -> str:
        return self.source.namespace

    @property
    def pod(self) -> str:
        return self.source.pod

    @property
    def pod_uid(self) -> str:
        return self.source.pod_uid

    @property
    def container(self) -> str:
        return self.source.container


@dataclass(frozen=True, slots=True)
class FilePosition:
    """How far one file has been consumed.

    `resume` is where reading must restart so that every message not yet delivered is read whole: the start of
    the oldest unfinished P sequence (or overlong line) if there is one, else `delivered`. `delivered` is the
    offset up to which every message that ends there or earlier has been delivered; on a restart, messages that
    end at or before it are read again (to rebuild unfinished sequences) but not delivered again. `head` is the
    file's first bytes, to tell a truncated-and-rewritten (or inode-reusing) file from the one checkpointed.
    """

    dev: int
    ino: int
    path: str
    resume: int
    delivered: int
    head: bytes = b""

    @property
    def key(self) -> FileKey:
        return (self.dev, self.ino)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The positions of every followed file right after a batch was cut. Opaque to consumers: pass it to
    `Tailer.commit` once the batch is stored. `seq` orders them, so committing an older one is a no-op.
    `scanned_ns` is the wall-clock time the last scan before it started: a rotated file last written before
    then that it does not name was either finished or there before the tail, while one written later may be a
    file no scan saw (tailer.py)."""

    seq: int
    files: tuple[FilePosition, ...]
    scanned_ns: int = 0


@dataclass(slots=True)
class TailBatch:
    """Messages in file order per file, plus counts of lines dropped (`rejected`) or altered (`repaired`:
    `invalid_utf8`, `truncated`) while reading them, by reason (formats.REJECT_REASONS, REPAIR_REASONS)."""

    records: list[TailedLine]
    checkpoint: Checkpoint
    rejected: dict[str, int] = field(default_factory=dict)
    repaired: dict[str, int] = field(default_factory=dict)
