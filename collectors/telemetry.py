"""The collector's own telemetry, served on `/metrics` in the Prometheus text format: what came in, went out,
was dropped or retried per pipeline, how full the buffer is, and how long exports take.

- `collector_records_dropped_total{pipeline, reason}`: records not kept. `tail`: lines rejected by the tail
  (collectors/tail/formats.py REJECT_REASONS: `malformed`, `bad_timestamp`, ...); `otlp`: items an export left
  out (partial success, by collectors/otlp/mapping.py's codes); `export`: records a destination refused for good
  (`destination_invalid`: a whole batch refused, `destination_item_refused`, ...).
- `collector_destination_records_out_total{destination}`, `collector_destination_records_dropped_total{destination,
  reason}`, `collector_destination_export_retries_total{destination}`, `collector_destination_backlog_batches
  {destination}`: the same per destination (one export loop each, collectors/pipeline.py), so an operator sees
  which backend is behind or refusing; the `pipeline="export"` series above are their sums.
- `collector_records_repaired_total{pipeline, reason}`: records kept, but changed on the way in (`invalid_utf8`
  replaced, `truncated` at the line limit).
- `collector_otlp_requests_refused_total{signal, status, reason}`: OTLP exports refused whole (400 invalid
  protobuf/JSON/gzip, 413 too large, 415 media type, 429 busy, 503 buffer full or backend unavailable).

prometheus_client rather than code of ours: its exposition format, histogram buckets and label escaping are
what every scraper expects.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

#: The `pipeline` label of everything the export loops count, whichever destination.
EXPORT = "export"


class CollectorTelemetry:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ["pipeline"]
        self.records_in = Counter(
            "collector_records_in", "Records accepted into the buffer", labels, registry=self.registry
        )
        self.records_out = Counter(
            "collector_records_out", "Records delivered to the exporter's backend", labels, registry=self.registry
        )
        self.dropped = Counter(
            "collector_records_dropped",
            "Input rejected (malformed, oversized), by reason",
            [*labels, "reason"],
            registry=self.registry,
        )
        self.repaired = Counter(
            "collector_records_repaired",
            "Input kept but changed (invalid UTF-8 replaced, cut to the limit), by reason",
            [*labels, "reason"],
            registry=self.registry,
        )
        self.retried = Counter(
            "collector_export_retries", "Export attempts that failed and were retried", labels, registry=self.registry
        )
        self.otlp_refused = Counter(
            "collector_otlp_requests_refused",
            "OTLP exports refused whole (nothing of them stored), by signal, HTTP status and reason",
            ["signal", "status", "reason"],
            registry=self.registry,
        )
        self.destination_out = Counter(
            "collector_destination_records_out",
            "Records settled by each destination",
            ["destination"],
            registry=self.registry,
        )
        self.destination_dropped = Counter(
            "collector_destination_records_dropped",
            "Records each destination refused for good, by reason",
            ["destination", "reason"],
            registry=self.registry,
        )
        self.destination_retries = Counter(
            "collector_destination_export_retries",
            "Failed export attempts, retried, by destination",
            ["destination"],
            registry=self.registry,
        )
        self.destination_backlog = Gauge(
            "collector_destination_backlog_batches",
            "Buffered batches each destination has not acknowledged",
            ["destination"],
            registry=self.registry,
        )
        self.buffer_bytes = Gauge(
            "collector_buffer_bytes", "Unacknowledged bytes in the durable buffer", registry=self.registry
        )
        self.buffer_memory_bytes = Gauge(
            "collector_buffer_memory_bytes",
            "Frame bytes of the batches the buffer keeps in memory for the exporters (bounded by its memory_bytes)",
            registry=self.registry,
        )
        self.backpressure_waits = Counter(
            "collector_backpressure_waits",
            "Times a producer waited for the exporters: for room in the buffer's memory (reason memory, the tail "
            "only) or on disk (full)",
            [*labels, "reason"],
            registry=self.registry,
        )
        self.audit_records = Counter(
            "collector_audit_records",
            "Audit records accepted from trusted producers (the tail) or from internal-token OTLP requests (otlp)",
            labels,
            registry=self.registry,
        )
        self.export_seconds = Histogram(
            "collector_export_duration_seconds",
            "Time to deliver one batch, retries included",
            labels,
            registry=self.registry,
        )

    def buffer_state(self, used_bytes: int, memory_bytes: int) -> None:
        """How full the buffer is: unacknowledged bytes on disk, and the part of them held in memory."""
        self.buffer_bytes.set(used_bytes)
        self.buffer_memory_bytes.set(memory_bytes)

    def count_otlp_refused(self, signal: str, status: int, reason: str) -> None:
        """The OTLP receiver's `on_refused`: a request it answered 4xx/5xx, which the sender may retry (429,
        503) or must fix (400, 413, 415)."""
        self.otlp_refused.labels(signal, str(status), reason).inc()

    def count_otlp_rejected(self, signal: str, reason: str, count: int) -> None:
        """The OTLP receiver's `on_rejected`: items of an accepted export left out (OTLP partial success)."""
        self.dropped.labels("otlp", reason).inc(count)

    def count_delivered(self, destination: str, records: int, seconds: float, backlog: int) -> None:
        """A destination's part of a batch is settled (stored, or refused for good and counted)."""
        self.records_out.labels(EXPORT).inc(records)
        self.export_seconds.labels(EXPORT).observe(seconds)
        self.destination_out.labels(destination).inc(records)
        self.destination_backlog.labels(destination).set(backlog)

    def count_retry(self, destination: str) -> None:
        self.retried.labels(EXPORT).inc()
        self.destination_retries.labels(destination).inc()

    def count_export_dropped(self, destination: str, reason: str, count: int) -> None:
        """Records a destination refused for good (they are not retried)."""
        self.dropped.labels(EXPORT, reason).inc(count)
        self.destination_dropped.labels(destination, reason).inc(count)

    def app(self) -> Starlette:
        async def metrics(_: Request) -> Response:
            return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

        async def health(_: Request) -> Response:
            return Response('{"status":"healthy"}', media_type="application/json")

        return Starlette(routes=[Route("/metrics", metrics), Route("/health", health)])
