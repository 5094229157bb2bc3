"""Segment files and the frames in them: `u32 length | u32 crc32(payload) | payload`, appended, checked on read.

A batch's sequence number is its segment's first seq plus its position in the segment, so frames carry no seq of
their own; a segment is named by its first seq (20 digits) and deleted whole once every consumer acknowledged all
of it (docs/collector-buffer.md).
"""

from __future__ import annotations

import os
import struct
import threading
import zlib
from pathlib import Path

from collectors.durable import fdatasync

FRAME_HEADER = struct.Struct("<II")  # payload length, crc32(payload)
SEGMENT_SUFFIX = ".seg"


class Segment:
    """One segment file, open for the buffer's life. `live` counts its frames some consumer still needs; at zero
    (and no longer the active segment) the file is deleted. The segment's own lock keeps a group commit's
    fdatasync from racing the close that follows its deletion."""

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

    @classmethod
    def create(cls, directory: Path, first_seq: int) -> Segment:
        path = directory / f"{first_seq:020d}{SEGMENT_SUFFIX}"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        return cls(first_seq, path, fd)

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


def segment_paths(directory: Path) -> list[tuple[int, Path]]:
    """The segment files in the directory, by first seq."""
    found = []
    for path in directory.glob(f"*{SEGMENT_SUFFIX}"):
        stem = path.name[: -len(SEGMENT_SUFFIX)]
        if stem.isdigit():
            found.append((int(stem), path))
    return sorted(found)


def valid_frame_size(view: memoryview, offset: int) -> int | None:
    """The size of the frame at `offset` if it is whole and its CRC matches; None for a torn or corrupt one. A
    zero length is invalid too: a filesystem may show a crashed file's tail as zeros, which would otherwise pass
    as empty frames with a matching CRC."""
    if offset + FRAME_HEADER.size > len(view):
        return None
    length: int
    crc: int
    length, crc = FRAME_HEADER.unpack_from(view, offset)  # "<II": two ints
    end = offset + FRAME_HEADER.size + length
    if length == 0 or end > len(view) or zlib.crc32(view[offset + FRAME_HEADER.size : end]) != crc:
        return None
    return end - offset


def framed(payload: bytes) -> bytes:
    """The payload behind its frame header (length and CRC), as segments and the marks file hold it."""
    return FRAME_HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def verified_payload(frame: bytes) -> memoryview | None:
    """The payload of one whole frame, or None when it is torn or corrupt."""
    view = memoryview(frame)
    size = valid_frame_size(view, 0)
    return view[FRAME_HEADER.size :] if size == len(frame) else None


def pwrite_all(fd: int, data: bytes, offset: int) -> None:
    """Writes at an explicit offset, so a write cut back after a failure leaves no hole for the next one."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written
