"""The collector's pipelines: receivers put batches into the durable buffer, one exporter takes them out.

    tail -> enrich -> DiskBuffer -> exporter -> backend (embedded, OpenSearch + Prometheus, ...)
    OTLP receiver ---^

Delivery is at-least-once end to end and each step only lets go of data once the next one holds it:

- the tail commits a file offset only after the buffer accepted the batch (durably);
- the buffer forgets a batch only after the backend accepted it (`ack`);
- a redelivered batch is harmless downstream (batch ids, deterministic document ids, identical samples).

Tailed lines are exactly-once into every exporter, not only into those with content-derived ids. The danger is
a crash after a batch is in the buffer but before the tail's checkpoint file says so: a tail resuming from the
file would read those lines again into a new batch, under a new batch id, which a sink that dedupes by batch id
(the embedded store) would store a second time. So the checkpoint travels with its batch: `tail_pipeline`
appends each batch together with the tail's checkpoint as the buffer's *mark* for the producer "tail", in the
same frame, so both are durable or neither is. The buffer keeps the newest mark even after that batch has been
delivered and its segment deleted (collectors/buffer.py). On start, the tail resumes from the newer of its
checkpoint file and that mark (`Tailer.adopt`; checkpoint seqs count on across restarts, so "newer" is
well-defined). Then no line is ever appended twice: after any crash the tail resumes exactly after the last
batch the buffer holds, and the buffer redelivers that batch, if it was not acknowledged, under its own batch id.
The checkpoint file is still committed after each append; it serves the tail alone (releasing rotated files)
and as the fallback when the buffer directory is new or lost.

Backpressure runs the other way: a full buffer makes the tail stop reading and the OTLP receiver answer 503
with Retry-After; an unavailable backend makes the exporter retry the same batch with backoff, which fills
the buffer, which pauses the producers. Nothing accepted is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Sequence

from domain.model import EventRecord, LogRecord, MetricPoint, SpanRecord
from adapters.protocols import TelemetrySink
from collectors.buffer import BufferFull, DiskBuffer
from collectors.codec import Batch
from collectors.enrich import Enricher
from collectors.tail.checkpoint import encode_checkpoint
from collectors.tail.tailer import Tailer
from collectors.telemetry import CollectorTelemetry

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 30.0
#: The buffer mark under which the tail's checkpoint travels with its batches.
TAIL_PRODUCER = "tail"


class BufferSink:
    """The TelemetrySink receivers write to: the batch is durable in the buffer when `write` returns. A full
    buffer raises BufferFull, a BackendUnavailable, which the OTLP receiver answers with 503 and Retry-After."""

    def __init__(self, buffer: DiskBuffer, telemetry: CollectorTelemetry, pipeline: str = "otlp"):
        self.buffer = buffer
        self.telemetry = telemetry
        self.pipeline = pipeline

    async def write(
        self,
        *,
        batch_id: str,
        logs: Sequence[LogRecord] = (),
        events: Sequence[EventRecord] = (),
        spans: Sequence[SpanRecord] = (),
        metrics: Sequence[MetricPoint] = (),
    ) -> None:
        batch = Batch(batch_id=batch_id, logs=list(logs), events=list(events), spans=list(spans), metrics=list(metrics))
        await self.buffer.append_async(batch)
        self.telemetry.records_in.labels(self.pipeline).inc(len(logs) + len(events) + len(spans) + len(metrics))
        self.telemetry.buffer_bytes.set(self.buffer.used_bytes)


async def tail_pipeline(
    tailer: Tailer,
    enricher: Enricher,
    buffer: DiskBuffer,
    telemetry: CollectorTelemetry,
    producer: str = TAIL_PRODUCER,
) -> None:
    """Reads, enriches and buffers container logs, each batch with the checkpoint right after it; commits the
    tail's offsets once the buffer holds them. Resumes from the checkpoint of the last buffered batch when that
    is newer than the tail's own (see the module docstring). `producer` names the mark: one per tail."""
    mark = buffer.mark(producer)
    if mark is not None:
        tailer.adopt(mark)
    async for tailed in tailer.batches():
        for reason, count in tailed.rejected.items():
            telemetry.dropped.labels("tail", reason).inc(count)
        for reason, count in tailed.repaired.items():  # kept, but changed (invalid UTF-8, cut to the limit)
            telemetry.repaired.labels("tail", reason).inc(count)
        if tailed.records:
            await enricher.prepare(tailed.records)  # label changes; a brief wait for pods not known yet
            logs = enricher.records(tailed.records)
            batch = Batch(batch_id=uuid.uuid4().hex, logs=logs, events=[], spans=[], metrics=[])
            checkpoint = (producer, encode_checkpoint(tailed.checkpoint))
            while True:
                try:
                    await buffer.append_async(batch, checkpoint)
                    break
                except BufferFull as full:  # stop reading until the exporter makes room
                    await asyncio.sleep(full.retry_after_s)
            telemetry.records_in.labels("tail").inc(len(logs))
            telemetry.buffer_bytes.set(buffer.used_bytes)
        await tailer.commit(tailed.checkpoint)


async def export_pipeline(buffer: DiskBuffer, sink: TelemetrySink, telemetry: CollectorTelemetry, name: str = "export") -> None:
    """Delivers buffered batches in order, each until the backend accepts it, then acknowledges it."""
    while True:
        seq, batch = await buffer.next()
        started = time.monotonic()
        attempt = 0
        while True:
            try:
                await sink.write(
                    batch_id=batch.batch_id, logs=batch.logs, events=batch.events, spans=batch.spans, metrics=batch.metrics
                )
                break
            except Exception as exc:  # outages, and bugs: either way the batch stays until it gets through
                attempt += 1
                telemetry.retried.labels(name).inc()
                delay = min(MAX_BACKOFF_S, 0.2 * 2 ** min(attempt, 8)) * random.uniform(0.5, 1.0)
                log.warning("export of batch %s failed (%s: %s); retry %d in %.1fs", batch.batch_id, type(exc).__name__, exc, attempt, delay)
                await asyncio.sleep(delay)
        buffer.ack(seq)
        telemetry.records_out.labels(name).inc(len(batch.logs) + len(batch.events) + len(batch.spans) + len(batch.metrics))
        telemetry.export_seconds.labels(name).observe(time.monotonic() - started)
        telemetry.buffer_bytes.set(buffer.used_bytes)
