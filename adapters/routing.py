"""One sink in front of several backends, each signal delivered to the backend that keeps it.

Collectors see a single `TelemetrySink`. With OpenSearch and Prometheus configured, logs, events and spans go
to OpenSearch and metrics to Prometheus; the embedded store may still get a copy of the spans (it derives the
runtime topology from them when no metrics scheme provides one) and learns names and UIDs from everything.
All deliveries run at once and the write succeeds only when all did, so a collector retries the whole batch;
that is safe, because each backend makes a redelivered batch a no-op (batch ids in the embedded store,
deterministic document ids in OpenSearch, identical samples in Prometheus).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

from domain.model import EventRecord, Identity, LogRecord, MetricPoint, SpanRecord
from adapters.protocols import TelemetrySink


class Learner(Protocol):
    async def learn(self, identities: Sequence[Identity]) -> None: ...


class SplitSink:
    def __init__(
        self,
        records: TelemetrySink,
        metrics: TelemetrySink,
        span_copies: TelemetrySink | None = None,
        registry: Learner | None = None,
    ):
        self.records = records  # logs, events, spans
        self.metrics = metrics
        self.span_copies = span_copies  # also gets the spans (topology derived from them)
        self.registry = registry  # learns names and UIDs of records stored elsewhere

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
        if metrics:
            work.append(self.metrics.write(batch_id=batch_id, metrics=metrics))
        if spans and self.span_copies is not None:
            work.append(self.span_copies.write(batch_id=f"{batch_id}/spans", spans=spans))
        if self.registry is not None:
            identities = [r.identity for group in (logs, events, spans, metrics) for r in group]
            if identities:
                work.append(self.registry.learn(identities))
        await asyncio.gather(*work)
