"""`observer collect`: the collector process, wired from its configuration.

Receivers (container-log tail, OTLP/HTTP, Kubernetes events) feed one durable buffer; one exporter drains it
into the configured backends; `/metrics` and `/health` report on it. See collectors/pipeline.py for the delivery
guarantees, and collectors/kubernetes/ for what comes from the Kubernetes API (pod metadata, events).
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

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
from collectors.exporters.otlp import OtlpExporter
from collectors.otlp.receiver import build_otlp_app
from collectors.pipeline import BufferSink, export_pipeline, tail_pipeline
from collectors.tail.tailer import TailConfig, Tailer
from collectors.telemetry import CollectorTelemetry
from observer.runtime import run_servers, server

if TYPE_CHECKING:
    from collectors.kubernetes.pods import PodCache

log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """The configuration cannot work; the message says what to set."""


async def exporter_sink(
    config: ExporterConfig, stack: AsyncExitStack, telemetry: CollectorTelemetry | None = None
) -> TelemetrySink:
    """Where buffered batches go: everything over OTLP to another collector or the all-in-one (`exporter.otlp`,
    then the only destination), or records to OpenSearch or the embedded store and metrics to Prometheus or
    the embedded store. Backends are closed when `stack` unwinds; `telemetry` counts what a destination
    refuses for good."""
    if config.otlp is not None:
        return otlp_forwarder(config, stack, telemetry)
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


def otlp_forwarder(
    config: ExporterConfig, stack: AsyncExitStack, telemetry: CollectorTelemetry | None
) -> OtlpExporter:
    """The OTLP/HTTP forwarding exporter. It takes every signal, so another destination next to it would be
    ambiguous (which one gets what?): that is a configuration error rather than a guess."""
    assert config.otlp is not None
    others = [
        name
        for name, value in (
            ("exporter.opensearch (OPENSEARCH_ADDRESS)", config.opensearch),
            ("exporter.prometheus (PROMETHEUS_ADDRESS)", config.prometheus),
            ("exporter.data_dir (OBSERVER_DATA_DIR)", config.data_dir),
        )
        if value
    ]
    if others:
        raise ConfigError(
            "exporter.otlp forwards logs, events, spans and metrics to another collector and is then the only"
            f" destination; remove {' and '.join(others)}, or exporter.otlp to export to those backends directly"
        )
    otlp = config.otlp
    exporter = OtlpExporter(
        otlp.endpoint,
        headers=otlp.headers,
        bearer_token=otlp.bearer_token,
        bearer_token_file=otlp.bearer_token_file,
        ca_file=otlp.ca_file,
        tls_skip_verify=otlp.tls_skip_verify,
        timeout_s=otlp.timeout_s,
        max_request_bytes=otlp.max_request_bytes,
        on_dropped=telemetry.count_export_dropped if telemetry is not None else None,
    )
    stack.push_async_callback(exporter.aclose)
    log.info("exporter: forwarding over OTLP/HTTP to %s", exporter.shown_endpoint)
    return exporter


async def kubernetes_sources(config: CollectorConfig, stack: AsyncExitStack) -> tuple[Any, PodCache | None]:
    """The Kubernetes API client and this node's pod cache (collectors/kubernetes/), each only when the
    configuration needs it: the cache when `metadata.kubernetes.node_name` is set, the client for it and for
    the events receiver. The `kubernetes` package is imported only then, as most collectors never use it."""
    kubernetes = config.metadata.kubernetes
    wants_pods = kubernetes is not None and bool(kubernetes.node_name)
    if not wants_pods and config.receivers.kubernetes_events is None:
        return None, None
    if wants_pods and config.metadata.file:
        raise ConfigError(
            "pod metadata comes either from the Kubernetes API (metadata.kubernetes.node_name, NODE_NAME) or from"
            " a file (metadata.file, COLLECTOR_METADATA_FILE); remove one"
        )
    from collectors.kubernetes.pods import PodCache
    from collectors.kubernetes.watch import api_client

    api = api_client(kubernetes.kubeconfig if kubernetes else None)
    stack.callback(api.close)
    if not wants_pods:
        return api, None
    assert kubernetes is not None
    pods = PodCache(api, kubernetes.node_name, wait_s=kubernetes.pod_wait_s)
    await pods.start()
    stack.push_async_callback(pods.stop)
    return api, pods


async def collect(config: CollectorConfig) -> None:
    telemetry = CollectorTelemetry()
    buffer = DiskBuffer(config.buffer.directory, max_bytes=config.buffer.max_bytes)
    async with AsyncExitStack() as stack:
        stack.callback(buffer.close)
        sink = await exporter_sink(config.exporter, stack, telemetry)
        tasks = [asyncio.create_task(export_pipeline(buffer, sink, telemetry))]
        servers = [server(telemetry.app(), config.telemetry.host, config.telemetry.port)]
        receivers = config.receivers
        kube_api, pods = await kubernetes_sources(config, stack)
        if receivers.tail is not None:
            metadata = pods or (FileMetadata(config.metadata.file) if config.metadata.file else None)
            tailer = Tailer(
                TailConfig(
                    checkpoint_path=receivers.tail.checkpoint,
                    globs=tuple(receivers.tail.paths),
                    refresh_interval=receivers.tail.refresh_s,
                    # a tail batch must always fit the buffer, however small it is configured
                    max_bytes=min(4 << 20, config.buffer.max_bytes // 4),
                )
            )
            tasks.append(asyncio.create_task(tail_pipeline(tailer, Enricher(metadata), buffer, telemetry)))
        if receivers.otlp is not None:
            otlp = build_otlp_app(
                BufferSink(buffer, telemetry),
                max_body_bytes=receivers.otlp.max_body_bytes,
                on_refused=telemetry.count_otlp_refused,
                on_rejected=telemetry.count_otlp_rejected,
            )
            servers.append(server(otlp, receivers.otlp.host, receivers.otlp.port))
        if receivers.kubernetes_events is not None:
            from collectors.kubernetes.events import EventsReceiver

            events = EventsReceiver(
                kube_api,
                BufferSink(buffer, telemetry, "kubernetes_events"),
                receivers.kubernetes_events.checkpoint,
                namespaces=receivers.kubernetes_events.namespaces,
                pods=pods,
            )
            tasks.append(asyncio.create_task(events.run()))
        log.info("collector running: %d pipelines, buffer %s", len(tasks), config.buffer.directory)
        await run_servers(servers, *tasks)
