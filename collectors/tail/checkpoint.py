"""The tail's checkpoint file: the committed position of every followed file, keyed by (device, inode).

A small JSON document, rewritten whole on every commit: write a temporary file next to it, fsync it, rename it
over the old one, fsync the directory. A crash at any point leaves either the old or the new checkpoint, never a
torn one. Keys are (device, inode), not paths, because rotation renames files; the path is kept to find a
file the kubelet rotated while the tail was down (`<path>.<timestamp>`).

A checkpoint that cannot be read is set aside (renamed `.corrupt`) and the tail starts over from the files'
heads: at-least-once delivery makes that a burst of duplicates, which deterministic ids absorb, instead of a
tail that refuses to start.

The document also holds the checkpoint's `seq`, which keeps counting across restarts (a new Tailer continues
from the seq it resumed from). The same document, as bytes (`encode_checkpoint`), is what a consumer may store
next to the batch a checkpoint belongs to; `seq` then tells which of two checkpoints is the newer, so a restarted
tail resumes from whichever of its file and the consumer's copy got further (collectors/pipeline.py). Its
`scanned_ns`, when the tail last looked for files, tells a restarted tail which rotated files were written
after that and may never have been seen (tailer.py).
"""

from __future__ import annotations

import base64
import logging
import os
from pathlib import Path
from typing import Any

import orjson

from collectors.durable import replace_file
from collectors.tail.model import Checkpoint, FilePosition

log = logging.getLogger(__name__)

VERSION = 1


#: Where a tail without any checkpoint starts.
EMPTY = Checkpoint(0, ())


def encode_checkpoint(checkpoint: Checkpoint) -> bytes:
    """The checkpoint as the JSON document the checkpoint file holds."""
    doc: dict[str, Any] = {
        "version": VERSION,
        "seq": checkpoint.seq,
        "scanned_ns": checkpoint.scanned_ns,
        "files": [
            {
                "dev": p.dev,
                "ino": p.ino,
                "path": p.path,
                "resume": p.resume,
                "delivered": p.delivered,
                "head": base64.b64encode(p.head).decode("ascii"),
            }
            for p in checkpoint.files
        ],
    }
    return orjson.dumps(doc)


def decode_checkpoint(raw: bytes) -> Checkpoint:
    """The checkpoint `encode_checkpoint` made (a file written before `seq` or `scanned_ns` existed has 0 for
    it). Raises ValueError for anything else."""
    try:
        doc = orjson.loads(raw)
        if doc.get("version") != VERSION:
            raise ValueError(f"unknown checkpoint version {doc.get('version')!r}")
        positions = tuple(
            FilePosition(
                int(item["dev"]),
                int(item["ino"]),
                str(item["path"]),
                int(item["resume"]),
                int(item["delivered"]),
                base64.b64decode(item.get("head", "")),
            )
            for item in doc["files"]
        )
        return Checkpoint(int(doc.get("seq", 0)), positions, int(doc.get("scanned_ns", 0)))
    except ValueError:
        raise
    except (TypeError, KeyError, AttributeError) as exc:
        raise ValueError(f"not a checkpoint: {exc}") from exc


class CheckpointStore:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def load(self) -> Checkpoint:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return EMPTY
        try:
            return decode_checkpoint(raw)
        except ValueError as exc:
            aside = self.path.with_name(self.path.name + ".corrupt")
            log.warning("tail: checkpoint %s unreadable (%s); moved to %s, starting over", self.path, exc, aside)
            os.replace(self.path, aside)
            return EMPTY

    def save(self, checkpoint: Checkpoint) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(self.path, encode_checkpoint(checkpoint), mode=0o600)
