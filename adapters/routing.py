"""One sink in front of several backends, each signal delivered to the backend that keeps it.

Collectors see a single `TelemetrySink`; with OpenSearch configured, logs, events and spans go there while
metrics stay with the metrics backend. The metrics backend also gets the spans when it derives the runtime
topology from them (the embedded one does: client/server span pairs are its call graph). Both halves run at once and the write succeeds only when both did, so
a collector retries the whole batch; that is safe, because each backend makes a redelivered batch a no-op
(batch ids in the embedded store, deterministic document ids in OpenSearch).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

from adapters.model import EventRecord, Identity, LogRecord, MetricPoint, SpanRecord
from adapters.protocols import TelemetrySink


class Learner(Protocol):
    async def learn(self, identities: Sequence[Identity]) -> None: ...


class SplitSink:
    def __init__(
        self,
        records: TelemetrySink,
        metrics: TelemetrySink,
        registry: Learner | None = None,
        spans_feed_metrics: bool = False,
    ):
        self.records = records
        self.metrics = metrics
        self.spans_feed_metrics = spans_feed_metrics
        self.registry = registry  # learns names and UIDs from records that bypass it (the embedded registry)

    async def write(
        self,
        *,
        batch_id: str,
        logs: Sequence[LogRecord] = (),
        events: Sequence[EventRecord] = (),
        spans: Sequence[SpanRecord] = (),
        metrics: Sequence[MetricPoint] = (),
    ) -> None:
        work = []
        if logs or events or spans:
            work.append(self.records.write(batch_id=batch_id, logs=logs, events=events, spans=spans))
            if self.registry is not None:
                work.append(self.registry.learn([r.identity for group in (logs, events, spans) for r in group]))
        topology_spans = spans if self.spans_feed_metrics else ()
        if metrics or topology_spans:
            work.append(self.metrics.write(batch_id=batch_id, spans=topology_spans, metrics=metrics))
        await asyncio.gather(*work)
