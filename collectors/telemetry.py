"""The collector's own telemetry, served on `/metrics` in the Prometheus text format: what came in, went out,
was dropped or retried per pipeline, how full the buffer is, and how long exports take.

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


class CollectorTelemetry:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ["pipeline"]
        self.records_in = Counter("collector_records_in", "Records accepted into the buffer", labels, registry=self.registry)
        self.records_out = Counter("collector_records_out", "Records delivered to the exporter's backend", labels, registry=self.registry)
        self.dropped = Counter(
            "collector_records_dropped", "Input rejected (malformed, oversized), by reason", [*labels, "reason"], registry=self.registry
        )
        self.retried = Counter("collector_export_retries", "Export attempts that failed and were retried", labels, registry=self.registry)
        self.buffer_bytes = Gauge("collector_buffer_bytes", "Unacknowledged bytes in the durable buffer", registry=self.registry)
        self.export_seconds = Histogram(
            "collector_export_duration_seconds", "Time to deliver one batch, retries included", labels, registry=self.registry
        )

    def app(self) -> Starlette:
        async def metrics(_: Request) -> Response:
            return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

        async def health(_: Request) -> Response:
            return Response('{"status":"healthy"}', media_type="application/json")

        return Starlette(routes=[Route("/metrics", metrics), Route("/health", health)])
