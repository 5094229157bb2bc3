"""The `marks` file: the newest mark of each producer whose segment was deleted, as one CRC-checked frame,
replaced atomically. A producer (the tail) stores its checkpoint as a mark with each batch; once that batch's
segment is gone, this file is where the buffer still knows how far the producer got (docs/collector-buffer.md).
"""

from __future__ import annotations

import logging
from pathlib import Path

import msgpack

from collectors.buffer.frames import framed, verified_payload
from collectors.durable import replace_file

log = logging.getLogger(__name__)

MARKS, MARKS_TMP = "marks", "marks.tmp"

#: A producer's newest mark: (seq of the batch it came with, the mark).
Marks = dict[str, tuple[int, bytes]]


def read_marks(path: Path) -> Marks:
    """The marks file, or nothing when it is missing or damaged (then producers fall back on their own
    checkpoints: at worst a batch is repeated, never lost)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    payload = verified_payload(data)
    if payload is None:
        log.error("disk buffer %s: the marks file is damaged; ignoring it", path.parent)
        return {}
    try:
        stored = msgpack.unpackb(payload)
        return {str(producer): (int(seq), bytes(value)) for producer, (seq, value) in stored.items()}
    except (ValueError, TypeError, AttributeError, msgpack.UnpackException) as exc:
        log.error("disk buffer %s: the marks file does not decode (%s); ignoring it", path.parent, exc)
        return {}


def write_marks(directory: Path, marks: Marks, fsync: bool) -> None:
    """Replaces the marks file atomically: a crash leaves the old one or the new one."""
    payload = msgpack.packb({producer: [seq, value] for producer, (seq, value) in marks.items()})
    replace_file(directory / MARKS, framed(payload), tmp=directory / MARKS_TMP, fsync=fsync)
