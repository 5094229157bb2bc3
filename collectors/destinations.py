"""Where the collector's buffered batches go: one Destination per backend that keeps a part of each batch
(adapters/registry.py decides which backend keeps which signal, exactly as for `observer up`), or the OTLP
forwarder taking everything. Each destination is drained by its own export loop (collectors/pipeline.py), so
one that is slow or down delays only itself.
"""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

from adapters import registry
from collectors.config import LEGACY_EXPORTER_KEYS, ExporterConfig
from collectors.destination import SIGNALS, Destination
from collectors.exporters.otlp import OtlpExporter

if TYPE_CHECKING:
    from collectors.telemetry import CollectorTelemetry

log = logging.getLogger(__name__)

__all__ = ["ConfigError", "Destination", "build_destinations"]


class ConfigError(ValueError):
    """The configuration cannot work; the message says what to set."""


async def build_destinations(
    config: ExporterConfig, stack: AsyncExitStack, telemetry: CollectorTelemetry | None = None
) -> list[Destination]:
    """The configured backends, built and started (OpenSearch's templates installed) and closed when `stack`
    unwinds; or the OTLP forwarder alone. `telemetry` is the collector's own (what a destination refuses is
    counted by the export loops, from each write's result)."""
    if config.otlp is not None:
        return [Destination("otlp", otlp_forwarder(config, stack), SIGNALS)]
    context = registry.Context("write")
    plane = await registry.build_plane(context, registry.enabled(context, configured=config.backends))
    stack.push_async_callback(plane.close)
    await plane.start()
    destinations = [Destination(each.name, each.sink, each.signals) for each in plane.destinations()]
    kept = frozenset().union(*(destination.signals for destination in destinations))
    if "audit" not in kept:  # a backend without an audit store: the trail is not kept, which must not be silent
        log.warning("exporter: no configured backend stores audit records; audit records are not kept")
    if kept | {"audit"} != SIGNALS:
        raise ConfigError(
            "the exporter needs somewhere for logs, events and spans (exporter.opensearch or exporter.data_dir) and"
            " for metrics (exporter.prometheus or exporter.data_dir)"
        )
    for destination in destinations:
        log.info("exporter: %s to %s", ", ".join(sorted(destination.signals)), destination.name)
    return destinations


def otlp_forwarder(config: ExporterConfig, stack: AsyncExitStack) -> OtlpExporter:
    """The OTLP/HTTP forwarding exporter. It takes every signal, so another destination next to it would be
    ambiguous (which one gets what?): that is a configuration error rather than a guess."""
    assert config.otlp is not None
    others = [_shown(name) for name in reversed(_configured(config))]
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
        audit_token=otlp.audit_token,
        audit_token_file=otlp.audit_token_file,
        ca_file=otlp.ca_file,
        tls_skip_verify=otlp.tls_skip_verify,
        timeout_s=otlp.timeout_s,
        max_request_bytes=otlp.max_request_bytes,
    )
    stack.push_async_callback(exporter.aclose)
    log.info("exporter: forwarding over OTLP/HTTP to %s", exporter.shown_endpoint)
    return exporter


def _configured(config: ExporterConfig) -> list[str]:
    """The backends the exporter's settings turn on, in ascending priority."""
    return [entry.name for entry, _ in registry.enabled(registry.Context("write"), configured=config.backends)]


def _shown(name: str) -> str:
    """How a message names a backend's configuration: its YAML key and the variable that turns it on
    (`exporter.opensearch (OPENSEARCH_ADDRESS)`, `exporter.data_dir (OBSERVER_DATA_DIR)`)."""
    entry = registry.entries()[name]
    first = next(iter(entry.settings.model_fields))
    key = next(
        (key for key, (backend, field) in LEGACY_EXPORTER_KEYS.items() if (backend, field) == (name, first)), name
    )
    return f"exporter.{key} ({registry.env_names(entry.settings, first)[0]})"
