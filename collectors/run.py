"""`observer collect`: the collector process, wired from its configuration.

Receivers (container-log tail, OTLP/HTTP) feed one durable buffer; one exporter drains it into the configured
backends; `/metrics` and `/health` report on it. See collectors/pipeline.py for the delivery guarantees.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack

from adapters.embedded.backend import EmbeddedBackend
from adapters.opensearch.backend import OpenSearchBackend
from adapters.opensearch.client import OpenSearchConfig
from adapters.opensearch.layout import IndexLayout
from adapters.prometheus.backend import PrometheusBackend
from adapters.prometheus.client import PrometheusConfig
from adapters.prometheus.otel import OtelScheme
from adapters.prometheus.remote_write import RemoteWriter
from adapters.protocols import TelemetrySink
from adapters.routing import SplitSink
from collectors.buffer import DiskBuffer
from collectors.config import CollectorConfig, ExporterConfig
from collectors.enrich import Enricher, FileMetadata
from collectors.otlp.receiver import build_otlp_app
from collectors.pipeline import BufferSink, export_pipeline, tail_pipeline
from collectors.tail.tailer import TailConfig, Tailer
from collectors.telemetry import CollectorTelemetry
from observer.runtime import run_servers, server

log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """The configuration cannot work; the message says what to set."""


async def exporter_sink(config: ExporterConfig, stack: AsyncExitStack) -> TelemetrySink:
    """Where buffered batches go: records to OpenSearch or the embedded store, metrics to Prometheus or the
    embedded store. Backends are closed when `stack` unwinds."""
    embedded = None
    if config.data_dir:
        embedded = EmbeddedBackend(config.data_dir)
        stack.callback(embedded.close)
    opensearch = None
    if config.opensearch:
        opensearch = OpenSearchBackend(
            OpenSearchConfig(
                address=config.opensearch,
                username=config.opensearch_username,
                password=config.opensearch_password,
                tls_skip_verify=config.opensearch_tls_skip_verify,
                layout=IndexLayout(config.logs_index_prefix, config.events_index_prefix, config.traces_index_prefix),
            )
        )
        stack.push_async_callback(opensearch.close)
        await opensearch.install(retention_days=30)
    prometheus = None
    if config.prometheus:
        prometheus = PrometheusBackend(PrometheusConfig(config.prometheus), OtelScheme(), RemoteWriter(config.prometheus))
        stack.push_async_callback(prometheus.close)
    records, metrics = opensearch or embedded, prometheus or embedded
    if records is None or metrics is None:
        raise ConfigError(
            "the exporter needs somewhere for logs, events and spans (exporter.opensearch or exporter.data_dir) and"
            " for metrics (exporter.prometheus or exporter.data_dir)"
        )
    if records is metrics:
        return records
    return SplitSink(records=records, metrics=metrics)


async def collect(config: CollectorConfig) -> None:
    telemetry = CollectorTelemetry()
    buffer = DiskBuffer(config.buffer.directory, max_bytes=config.buffer.max_bytes)
    async with AsyncExitStack() as stack:
        stack.callback(buffer.close)
        sink = await exporter_sink(config.exporter, stack)
        tasks = [asyncio.create_task(export_pipeline(buffer, sink, telemetry))]
        servers = [server(telemetry.app(), config.telemetry.host, config.telemetry.port)]
        receivers = config.receivers
        if receivers.tail is not None:
            metadata = FileMetadata(config.metadata.file) if config.metadata.file else None
            tailer = Tailer(
                TailConfig(
                    checkpoint_path=receivers.tail.checkpoint,
                    globs=tuple(receivers.tail.paths),
                    refresh_interval=receivers.tail.refresh_s,
                )
            )
            tasks.append(asyncio.create_task(tail_pipeline(tailer, Enricher(metadata), buffer, telemetry)))
        if receivers.otlp is not None:
            otlp = build_otlp_app(BufferSink(buffer, telemetry))
            servers.append(server(otlp, receivers.otlp.host, receivers.otlp.port))
        log.info("collector running: %d pipelines, buffer %s", len(tasks), config.buffer.directory)
        await run_servers(servers, *tasks)
