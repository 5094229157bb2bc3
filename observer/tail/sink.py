"""The seam between ingest and the tails: a TelemetrySink in front of the plane's own.

A batch is offered to the tails once the sink behind has delivered it, so a line a tail shows is a line a
query will find (a batch the backend could not take, and that the sender will retry, is shown once, when it
is taken). A redelivered batch (same batch id, which the stores make a no-op) is not shown twice, as long as
its id is among the last `remembered` ones.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence

from adapters.protocols import TelemetrySink, WriteResult
from domain.audit import AuditRecord
from domain.model import EventRecord, LogRecord, MetricPoint, SpanRecord
from observer.tail.hub import TailHub

log = logging.getLogger(__name__)


class TailingSink:
    """Delegates every write to `inner`, then hands the delivered log records to `hub.publish` (which never
    waits). Works in front of any backend: the tails see what this process ingests, not what a store holds."""

    def __init__(self, inner: TelemetrySink, hub: TailHub, remembered: int = 4096) -> None:
        self.inner = inner
        self.hub = hub
        self._remembered = remembered
        self._seen: OrderedDict[str, None] = OrderedDict()

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
        # `audit` passed on only when there is some, so an inner sink written before audit records still works
        extra = {"audit": audit} if audit else {}
        result = await self.inner.write(
            batch_id=batch_id, logs=logs, events=events, spans=spans, metrics=metrics, **extra
        )
        if logs and result.outcome == "delivered" and len(self.hub) and self._first_time(batch_id):
            try:
                self.hub.publish(logs)
            except Exception:  # a bug in a tail must never fail ingest: the batch is stored either way
                log.exception("live tail: publishing a batch failed; the batch is stored, the tails miss it")
        return result

    def _first_time(self, batch_id: str) -> bool:
        if batch_id in self._seen:
            return False
        self._seen[batch_id] = None
        if len(self._seen) > self._remembered:
            self._seen.popitem(last=False)
        return True
