"""Small files replaced durably: the tail's checkpoint, the buffer's ack log and marks, the events checkpoint.

A crash leaves the old file or the new one, never a mix, and once `replace_file` returns the new one (and its
name) is on disk.
"""

from __future__ import annotations

import os
from pathlib import Path

fdatasync = getattr(os, "fdatasync", os.fsync)  # macOS has no fdatasync; fsync is the safe stand-in


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def sync_directory(directory: Path) -> None:
    """Makes created, renamed and deleted names in the directory durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_file(path: Path, data: bytes, *, tmp: Path | None = None, fsync: bool = True, mode: int = 0o644) -> None:
    """Writes `data` to a temporary file beside `path` and renames it over `path`."""
    tmp = tmp or path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        write_all(fd, data)
        if fsync:
            fdatasync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if fsync:
        sync_directory(path.parent)
