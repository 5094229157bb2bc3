"""`observer collect`: the collector process, wired from its configuration.

Receivers (container-log tail, OTLP/HTTP, Kubernetes events) feed one durable buffer; one export loop per
destination (collectors/destinations.py) drains it, each on its own cursor; `/metrics` and `/health` report on
it. See collectors/pipeline.py for the delivery guarantees, and collectors/kubernetes/ for what comes from the
Kubernetes API (pod metadata, events).
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from collectors.audit import AuditRouter, TrustedProducer
from collectors.buffer import DiskBuffer
from collectors.config import CollectorConfig
from collectors.destinations import ConfigError, build_destinations
from collectors.enrich import Enricher, FileMetadata
from collectors.otlp.receiver import build_otlp_app
from collectors.pipeline import BufferSink, export_pipelines, tail_pipeline
from collectors.runtime_tuning import tune_runtime
from collectors.tail.tailer import TailConfig, Tailer
from collectors.telemetry import CollectorTelemetry
from serving import run_servers, server

if TYPE_CHECKING:
    from collectors.kubernetes.pods import PodCache

__all__ = ["ConfigError", "collect", "kubernetes_sources"]

log = logging.getLogger(__name__)


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
    tune_runtime()  # the garbage collector and malloc would cost the most CPU (collectors/runtime_tuning.py)
    telemetry = CollectorTelemetry()
    async with AsyncExitStack() as stack:
        destinations = await build_destinations(config.exporter, stack, telemetry)
        buffer = DiskBuffer(
            config.buffer.directory,
            max_bytes=config.buffer.max_bytes,
            consumers=[destination.name for destination in destinations],
        )
        stack.callback(buffer.close)
        tasks = [asyncio.create_task(export_pipelines(buffer, destinations, telemetry))]
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
            router = AuditRouter(
                TrustedProducer(producer.namespace, producer.container, producer.pod_prefix)
                for producer in config.audit.trusted_producers
            )
            enricher = Enricher(metadata, cluster=config.cluster)
            tasks.append(asyncio.create_task(tail_pipeline(tailer, enricher, buffer, telemetry, audit=router)))
        if receivers.otlp is not None:
            otlp = build_otlp_app(
                BufferSink(buffer, telemetry, cluster=config.cluster),
                audit_token=receivers.otlp.audit_token,
                max_body_bytes=receivers.otlp.max_body_bytes,
                on_refused=telemetry.count_otlp_refused,
                on_rejected=telemetry.count_otlp_rejected,
                default_namespace=receivers.otlp.default_namespace,
            )
            servers.append(server(otlp, receivers.otlp.host, receivers.otlp.port))
        if receivers.kubernetes_events is not None:
            from collectors.kubernetes.events import EventsReceiver

            events = EventsReceiver(
                kube_api,
                BufferSink(buffer, telemetry, "kubernetes_events", cluster=config.cluster),
                receivers.kubernetes_events.checkpoint,
                namespaces=receivers.kubernetes_events.namespaces,
                pods=pods,
            )
            tasks.append(asyncio.create_task(events.run()))
        log.info("collector running: %d pipelines, buffer %s", len(tasks), config.buffer.directory)
        await run_servers(servers, *tasks)
