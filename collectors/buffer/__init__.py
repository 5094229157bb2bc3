"""The collector's durable buffer: receivers append batches, one exporter per destination reads and acknowledges
them with its own cursor, and a batch is forgotten once every destination has it.

The design, the on-disk format and the guarantees (durable on return, crash recovery, at-least-once with a known
window, bounded, ordered, marks) are written down in docs/collector-buffer.md. The modules, one mechanism each:
`frames` (segment files and CRC'd frames), `acklog` (each consumer's acknowledgements), `marks` (producers'
marks kept past their segments), `drain` (the ack rate behind BufferFull's Retry-After), `hold` (what is kept in
memory for the consumers, and producers waiting for room in it), `disk` (DiskBuffer, which ties them together
under one lock).
"""

from collectors.buffer.disk import (
    DEFAULT_CONSUMER,
    BatchTooLarge,
    BufferClosed,
    BufferFull,
    BufferLocked,
    DiskBuffer,
    Recovery,
)
from collectors.codec import Batch

__all__ = [
    "DEFAULT_CONSUMER",
    "Batch",
    "BatchTooLarge",
    "BufferClosed",
    "BufferFull",
    "BufferLocked",
    "DiskBuffer",
    "Recovery",
]
