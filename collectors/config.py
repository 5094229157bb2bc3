"""`observer collect` configuration: a YAML file, with environment variables over it for what differs per
node or per secret (the same names as `observer up` where they mean the same thing).

    receivers:
      tail: {paths: ["/var/log/pods/*/*/*.log"], checkpoint: /var/lib/observer/tail.db}
      otlp: {host: 0.0.0.0, port: 4318}
    metadata: {file: /etc/observer/pods.yaml}
    buffer: {directory: /var/lib/observer/buffer, max_bytes: 268435456}
    exporter: {data_dir: /var/lib/observer/data}          # the embedded backend, or:
    # exporter: {opensearch: https://opensearch:9200, prometheus: http://prometheus:9090}
    telemetry: {host: 0.0.0.0, port: 2020}
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TailConfig(_Strict):
    paths: list[str] = ["/var/log/pods/*/*/*.log"]
    checkpoint: Path = Path("/var/lib/observer/tail.db")
    refresh_s: float = 5.0


class OtlpConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = 4318


class Receivers(_Strict):
    tail: TailConfig | None = None
    otlp: OtlpConfig | None = None


class MetadataConfig(_Strict):
    file: Path | None = None


class BufferConfig(_Strict):
    directory: Path = Path("/var/lib/observer/buffer")
    max_bytes: int = 256 * 1024 * 1024


class ExporterConfig(_Strict):
    data_dir: Path | None = None  # the embedded backend
    opensearch: str = ""
    opensearch_username: str = ""
    opensearch_password: str = Field("", repr=False)
    opensearch_tls_skip_verify: bool = False
    logs_index_prefix: str = "container-logs-"
    events_index_prefix: str = "k8s-events-"
    traces_index_prefix: str = "otel-traces-"
    prometheus: str = ""


class TelemetryConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = 2020


class CollectorConfig(_Strict):
    receivers: Receivers = Receivers()
    metadata: MetadataConfig = MetadataConfig()
    buffer: BufferConfig = BufferConfig()
    exporter: ExporterConfig = ExporterConfig()
    telemetry: TelemetryConfig = TelemetryConfig()


#: Environment variable -> (section, key) it overrides.
ENV_OVERRIDES = {
    "OPENSEARCH_ADDRESS": ("exporter", "opensearch"),
    "OPENSEARCH_USERNAME": ("exporter", "opensearch_username"),
    "OPENSEARCH_PASSWORD": ("exporter", "opensearch_password"),
    "OPENSEARCH_TLS_SKIP_VERIFY": ("exporter", "opensearch_tls_skip_verify"),
    "OPENSEARCH_INDEX_PREFIX": ("exporter", "logs_index_prefix"),
    "OPENSEARCH_EVENTS_INDEX_PREFIX": ("exporter", "events_index_prefix"),
    "OPENSEARCH_TRACES_INDEX_PREFIX": ("exporter", "traces_index_prefix"),
    "PROMETHEUS_ADDRESS": ("exporter", "prometheus"),
    "OBSERVER_DATA_DIR": ("exporter", "data_dir"),
    "COLLECTOR_BUFFER_DIR": ("buffer", "directory"),
    "COLLECTOR_BUFFER_MAX_BYTES": ("buffer", "max_bytes"),
    "COLLECTOR_METADATA_FILE": ("metadata", "file"),
}


def load(path: Path | None, environ: dict[str, str] | None = None) -> CollectorConfig:
    """The file's settings with the environment's on top; unknown keys are an error that names them."""
    document = (yaml.safe_load(path.read_text()) or {}) if path else {}
    for variable, (section, key) in ENV_OVERRIDES.items():
        value = (environ if environ is not None else os.environ).get(variable)
        if value is not None:
            document.setdefault(section, {})[key] = value
    return CollectorConfig.model_validate(document)
