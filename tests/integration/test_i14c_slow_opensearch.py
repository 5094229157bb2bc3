"""Issue 14 against a real OpenSearch: the real tail and export pipelines deliver to the OpenSearch backend
through a destination slower than the tail (each write waits until the tail itself waits for it). The tail is
paced by the buffer's memory hold, which never passes its bounds, nothing takes the long way through the disk,
and every line is stored exactly once. No timing is asserted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import pytest

from adapters.opensearch.backend import OpenSearchBackend
from adapters.opensearch.client import OpenSearchConfig
from adapters.protocols import WriteResult
from collectors.buffer import DiskBuffer
from collectors.enrich import Enricher
from collectors.pipeline import export_pipeline, tail_pipeline
from collectors.tail.formats import cri_line
from collectors.tail.tailer import TailConfig, Tailer
from collectors.telemetry import CollectorTelemetry
from devservers.opensearch_layout import drop_layout, unique_layout
from devservers.sample import BASE_NS
from domain.model import EventRecord, LogRecord, MetricPoint, SpanRecord

pytestmark = pytest.mark.integration

POD_DIR = "dp-acme-prod_cart-7d9f-abcde_0b9e4c1a-1111-4a2b-9c3d-123456789abc/main"
LINES, BATCH_LINES = 3_000, 100
MEMORY_BYTES, MEMORY_RECORDS = 64 * 1024, 300
GUARD_S = 120  # only ends a hang


@pytest.fixture
async def backend(opensearch_url: str) -> AsyncIterator[OpenSearchBackend]:
    layout = unique_layout("i14c-slow")
    backend = OpenSearchBackend(OpenSearchConfig(address=opensearch_url, layout=layout))
    await backend.install(retention_days=3650)
    yield backend
    await drop_layout(backend.client, layout)
    await backend.close()


class SlowerThanTheTail:
    """The OpenSearch backend behind a write that goes ahead only while the tail waits for it (or has read
    everything): a destination slower than its source by construction. Notes the buffer's hold and how far the
    tail is ahead at every write."""

    def __init__(self, inner: OpenSearchBackend, buffer: DiskBuffer, tailer: Tailer) -> None:
        self.inner, self.buffer, self.tailer = inner, buffer, tailer
        self.delivered = 0
        self.most_held_bytes = self.most_held_records = self.most_ahead = 0

    async def write(
        self,
        *,
        batch_id: str,
        logs: Sequence[LogRecord] = (),
        events: Sequence[EventRecord] = (),
        spans: Sequence[SpanRecord] = (),
        metrics: Sequence[MetricPoint] = (),
    ) -> WriteResult:
        await until(lambda: self.buffer.producers_waiting > 0 or self.tailer.stats.records >= LINES)
        self.most_held_bytes = max(self.most_held_bytes, self.buffer.held_bytes)
        self.most_held_records = max(self.most_held_records, self.buffer.held_records)
        self.most_ahead = max(self.most_ahead, self.tailer.stats.records - self.delivered)
        result = await self.inner.write(batch_id=batch_id, logs=logs, events=events, spans=spans, metrics=metrics)
        self.delivered += len(logs)
        return result


async def until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.005)


async def test_a_slow_opensearch_destination_paces_the_tail_and_stores_every_line_once(
    tmp_path: Path, backend: OpenSearchBackend
) -> None:
    bodies = [f"slow-os {n:06d} level=info {'x' * 80}" for n in range(LINES)]
    log_file = tmp_path / "pods" / POD_DIR / "0.log"
    log_file.parent.mkdir(parents=True)
    log_file.write_bytes(b"".join(cri_line(BASE_NS + n, "stdout", body.encode()) for n, body in enumerate(bodies)))
    buffer = DiskBuffer(tmp_path / "buffer", memory_bytes=MEMORY_BYTES, memory_records=MEMORY_RECORDS)
    tailer = Tailer(
        TailConfig(
            checkpoint_path=tmp_path / "tail.json",
            globs=(str(tmp_path / "pods/*/*/*.log"),),
            refresh_interval=0.05,
            poll_interval=0.01,
            max_lines=BATCH_LINES,
        )
    )
    telemetry = CollectorTelemetry()
    destination = SlowerThanTheTail(backend, buffer, tailer)
    tasks = [
        asyncio.create_task(tail_pipeline(tailer, Enricher(), buffer, telemetry, memory_patience_s=GUARD_S)),
        asyncio.create_task(export_pipeline(buffer, destination, telemetry)),
    ]
    try:
        await asyncio.wait_for(until(lambda: destination.delivered >= LINES and buffer.backlog == 0), GUARD_S)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        tailer.close()
        buffer.close()

    def waits(reason: str) -> float:
        labels = {"pipeline": "tail", "reason": reason}
        return telemetry.registry.get_sample_value("collector_backpressure_waits_total", labels) or 0.0

    assert waits("memory") > 5 and waits("full") == 0  # paced by the memory hold, never by a full disk
    assert destination.most_held_bytes <= MEMORY_BYTES
    assert destination.most_held_records <= MEMORY_RECORDS
    assert destination.most_ahead <= MEMORY_RECORDS + 2 * BATCH_LINES

    pattern = backend.layout.pattern(backend.layout.logs)
    await backend.client.indices.refresh(index=pattern)
    found = await backend.client.search(
        index=pattern, body={"size": LINES + 10, "query": {"match_all": {}}, "_source": ["log"]}
    )
    stored = [hit["_source"]["log"] for hit in found["hits"]["hits"]]
    assert sorted(stored) == bodies  # every line, once
