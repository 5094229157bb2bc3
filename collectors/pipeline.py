"""The collector's pipelines: receivers put batches into the durable buffer, one exporter per destination takes
them out.

    tail -> enrich -> DiskBuffer -+-> export loop "opensearch" -> logs, events, spans
    OTLP receiver ---^            +-> export loop "prometheus" -> metrics
                                  (or one loop "otlp" forwarding everything, or "embedded", ...)

Delivery is at-least-once end to end and each step only lets go of data once the next one holds it:

- the tail commits a file offset only after the buffer accepted the batch (durably);
- each destination acknowledges its own cursor in the buffer (`ack(seq, destination)`) once its part of a batch
  is stored, and the buffer forgets a batch once every destination has acknowledged it;
- a redelivered batch is harmless downstream (batch ids, deterministic document ids, identical samples).

Destinations are isolated: each export loop writes only its part of each batch (`Destination.signals`) and
retries only its own head batch, so a slow or dead Prometheus delays metrics alone while logs keep flowing to
OpenSearch; the batches it has not taken stay in the buffer, whose `max_bytes` bounds how far behind it may fall.
A write that comes back `dropped` (the destination refused the batch as a whole, for good) is counted on
/metrics (`collector_records_dropped_total{pipeline=<destination>, reason}`), logged, and acknowledged, so it
cannot wedge the batches behind it; records refused one by one within a delivered batch are counted the same way.

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

Audit records ride in the same batches (`Batch.audit`), a part of their own that only destinations serving the
`audit` role take: the tail puts there the audit lines of configured trusted producers (collectors/audit.py),
the OTLP receiver those of requests carrying the internal token; both are counted on
`collector_audit_records_total{pipeline}`. Every record also carries the collector's cluster (`ClusterStamp`).

Backpressure runs the other way: a full buffer makes the tail stop reading and the OTLP receiver answer 503
with Retry-After; an unavailable backend makes its export loop retry the same batch with backoff (or after the
wait the backend asked for), which fills the buffer, which pauses the producers. Nothing accepted is dropped
except what a destination refuses for good, and that is counted.

Memory stays bounded whatever the ratio of tail to export speed: the buffer keeps batches in memory for the
exporters only within `memory_bytes` and `memory_records`; the rest waits on disk and is read back when its turn
comes. The tail, whose files hold its lines durably anyway, does better than spill: while every exporter is
behind on the batches held in memory it waits for them (`wait_for_memory`) instead of reading on, so a slow but
working destination paces the tail and every batch is handed over in memory (it is still written to disk, for
durability, but not read back and decoded). An exporter that takes nothing for `TAIL_MEMORY_PATIENCE_S` (an outage) stops holding the tail
back, and the disk buffer absorbs the backlog up to `max_bytes`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
import uuid
from collections.abc import Sequence
from typing import Any

from adapters.protocols import TelemetrySink, WriteResult
from collectors.audit import AuditRouter
from collectors.buffer import DEFAULT_CONSUMER, BufferFull, DiskBuffer
from collectors.codec import Batch
from collectors.destination import SIGNALS, Destination
from collectors.enrich import Enricher
from collectors.tail.checkpoint import encode_checkpoint
from collectors.tail.tailer import Tailer
from collectors.telemetry import CollectorTelemetry
from domain.audit import AuditRecord
from domain.model import EventRecord, Identity, LogRecord, MetricPoint, SpanRecord

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 30.0
#: The longest wait a destination's Retry-After may impose on its loop before the batch is tried again.
MAX_RETRY_AFTER_S = 120.0
#: The buffer mark under which the tail's checkpoint travels with its batches.
TAIL_PRODUCER = "tail"
#: How long the tail waits for room in the buffer's memory while no exporter takes or acknowledges anything,
#: before it appends to disk only (DiskBuffer.wait_for_memory): longer than a bulk request to a loaded backend
#: takes, much shorter than an outage the disk buffer is there to absorb.
TAIL_MEMORY_PATIENCE_S = 10.0


class BufferSink:
    """The TelemetrySink receivers write to: the batch is durable in the buffer when `write` returns. A full
    buffer raises BufferFull, a BackendUnavailable, which the OTLP receiver answers with 503 and Retry-After."""

    def __init__(self, buffer: DiskBuffer, telemetry: CollectorTelemetry, pipeline: str = "otlp", cluster: str = ""):
        self.buffer = buffer
        self.telemetry = telemetry
        self.pipeline = pipeline
        self.cluster = cluster  # given to every record whose identity names no cluster (ClusterStamp)

    async def write(
        self,
        *,
        batch_id: str,
        logs: Sequence[LogRecord] = (),
        events: Sequence[EventRecord] = (),
        spans: Sequence[SpanRecord] = (),
        metrics: Sequence[MetricPoint] = (),
        audit: Sequence[AuditRecord] = (),
    ) -> WriteResult:
        batch = Batch(
            batch_id=batch_id,
            logs=list(logs),
            events=list(events),
            spans=list(spans),
            metrics=list(metrics),
            audit=list(audit),
        )
        if self.cluster:
            ClusterStamp(self.cluster).batch(batch)
        await self.buffer.append_async(batch)
        if audit:
            self.telemetry.audit_records.labels(self.pipeline).inc(len(audit))
        self.telemetry.records_in.labels(self.pipeline).inc(len(batch))
        self.telemetry.buffer_state(self.buffer.used_bytes, self.buffer.held_bytes)
        return WriteResult.delivered()


class ClusterStamp:
    """Gives records whose identity names no cluster the collector's own (`cluster`, CLUSTER_NAME): placement
    on every record the collector ships, whichever receiver took it. Records from a collector of another
    cluster, forwarded over OTLP, keep theirs. One replaced identity per distinct identity of a batch."""

    def __init__(self, cluster: str) -> None:
        self.cluster = cluster
        self._stamped: dict[Identity, Identity] = {}

    def identity(self, identity: Identity) -> Identity:
        if identity.cluster:
            return identity
        found = self._stamped.get(identity)
        if found is None:
            found = self._stamped[identity] = dataclasses.replace(identity, cluster=self.cluster)
        return found

    def batch(self, batch: Batch) -> None:
        for records in (batch.logs, batch.events, batch.spans, batch.metrics):
            for record in records:
                if not record.identity.cluster:
                    record.identity = self.identity(record.identity)


async def tail_pipeline(
    tailer: Tailer,
    enricher: Enricher,
    buffer: DiskBuffer,
    telemetry: CollectorTelemetry,
    producer: str = TAIL_PRODUCER,
    memory_patience_s: float = TAIL_MEMORY_PATIENCE_S,
    audit: AuditRouter | None = None,
) -> None:
    """Reads, enriches and buffers container logs, each batch with the checkpoint right after it; commits the
    tail's offsets once the buffer holds them. Resumes from the checkpoint of the last buffered batch when that
    is newer than the tail's own (see the module docstring). `producer` names the mark: one per tail. Waits for
    room in the buffer's memory while the exporters are behind, up to `memory_patience_s` without progress.
    `audit` routes the audit lines of trusted producers into the batch's audit records (collectors/audit.py);
    without it every line is a log line."""
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
            audited: list[AuditRecord] = []
            if audit is not None:
                logs, audited = audit.split(tailed.records, logs)
            batch = Batch(batch_id=uuid.uuid4().hex, logs=logs, events=[], spans=[], metrics=[], audit=audited)
            checkpoint = (producer, encode_checkpoint(tailed.checkpoint))
            if await buffer.wait_for_memory(len(batch), memory_patience_s):
                telemetry.backpressure_waits.labels("tail", "memory").inc()
            while True:
                try:
                    await buffer.append_async(batch, checkpoint)
                    break
                except BufferFull as full:  # stop reading until the exporters make room
                    telemetry.backpressure_waits.labels("tail", "full").inc()
                    await asyncio.sleep(full.retry_after_s)
            telemetry.records_in.labels("tail").inc(len(batch))
            if audited:
                telemetry.audit_records.labels("tail").inc(len(audited))
            telemetry.buffer_state(buffer.used_bytes, buffer.held_bytes)
        await tailer.commit(tailed.checkpoint)


async def export_pipelines(
    buffer: DiskBuffer, destinations: Sequence[Destination], telemetry: CollectorTelemetry
) -> None:
    """One export loop per destination, each on its own cursor of the buffer (opened with these consumers)."""
    await asyncio.gather(*(export_loop(buffer, destination, telemetry) for destination in destinations))


async def export_pipeline(
    buffer: DiskBuffer, sink: TelemetrySink, telemetry: CollectorTelemetry, name: str = DEFAULT_CONSUMER
) -> None:
    """A single destination taking every signal, on the buffer's default consumer."""
    await export_loop(buffer, Destination(name, sink, SIGNALS), telemetry)


async def export_loop(buffer: DiskBuffer, destination: Destination, telemetry: CollectorTelemetry) -> None:
    """Delivers the destination's part of each buffered batch in order, each until the destination stores it or
    refuses it for good, and acknowledges it on the destination's own cursor."""
    name = destination.name
    while True:
        seq, batch = await buffer.next(name)
        part = destination.part(batch)
        started = time.monotonic()
        if len(part):
            await _deliver(destination, part, telemetry)
        buffer.ack(seq, name)
        telemetry.count_delivered(name, len(part), time.monotonic() - started, buffer.backlog_of(name))
        telemetry.buffer_state(buffer.used_bytes, buffer.held_bytes)


def sink_arguments(batch: Batch) -> dict[str, Any]:
    """`TelemetrySink.write`'s keyword arguments for a batch. `audit` only when the batch has audit records, so
    a sink written before audit records existed still takes every other batch."""
    arguments: dict[str, Any] = {
        "batch_id": batch.batch_id,
        "logs": batch.logs,
        "events": batch.events,
        "spans": batch.spans,
        "metrics": batch.metrics,
    }
    if batch.audit:
        arguments["audit"] = batch.audit
    return arguments


async def _deliver(destination: Destination, part: Batch, telemetry: CollectorTelemetry) -> None:
    """Writes until the result is final (delivered or dropped), counting what was refused for good. An exception
    (an outage a sink reports by raising, or a bug) is retried like `retry`: the batch stays until it gets
    through."""
    name = destination.name
    attempt = 0
    while True:
        try:
            result = await destination.sink.write(**sink_arguments(part))
        except Exception as exc:
            result = WriteResult.retry(reason=f"{type(exc).__name__}: {exc}")
        if result.outcome != "retry":
            break
        attempt += 1
        telemetry.count_retry(name)
        backoff = min(MAX_BACKOFF_S, 0.2 * 2 ** min(attempt, 8)) * random.uniform(0.5, 1.0)
        delay = max(backoff, min(result.retry_after_s, MAX_RETRY_AFTER_S))
        log.warning(
            "export of batch %s to %s failed (%s); retry %d in %.1fs",
            part.batch_id,
            name,
            result.reason,
            attempt,
            delay,
        )
        await asyncio.sleep(delay)
    if result.count:
        reason = result.reason or "destination_refused"
        telemetry.count_export_dropped(name, reason, result.count)
        verb = "dropped the batch" if result.outcome == "dropped" else "stored the rest of the batch"
        log.error(
            "export of batch %s to %s: %d records refused for good (%s); %s",
            part.batch_id,
            name,
            result.count,
            reason,
            verb,
        )
