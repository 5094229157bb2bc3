"""`observer collect` configuration: a YAML file, with environment variables over it for what differs per
node or per secret (the same names as `observer up` where they mean the same thing).

    receivers:
      tail: {paths: ["/var/log/pods/*/*/*.log"], checkpoint: /var/lib/observer/tail.db}
      otlp: {host: 0.0.0.0, port: 4318}
      kubernetes_events: {namespaces: [], checkpoint: /var/lib/observer/k8s-events.json}   # [] = all
    metadata: {file: /etc/observer/pods.yaml}
    # metadata: {kubernetes: {node_name: node-1, kubeconfig: ~/.kube/config}}   # the API; in-cluster without one
    buffer: {directory: /var/lib/observer/buffer, max_bytes: 268435456}
    exporter: {data_dir: /var/lib/observer/data}          # the embedded backend, or:
    # exporter: {opensearch: https://opensearch:9200, prometheus: http://prometheus:9090}
    # exporter: {opensearch: {address: https://opensearch:9200, ca_file: /etc/ca.pem, timeout_s: 5}}
    #   (a backend's key takes its address or its settings: the fields of adapters/<name>/plugin.py Settings,
    #   whose environment variables, the same as `observer up`'s, override them)
    # exporter: {otlp: {endpoint: https://observer.example:4318}}   # forward everything to another collector
    telemetry: {host: 0.0.0.0, port: 2020}
    cluster: prod-eu-1          # (or CLUSTER_NAME) the cluster name every record this collector ships carries
    audit:                      # whose JSON audit lines become audit records (collectors/audit.py); nobody's else
      trusted_producers:
        - {namespace: openchoreo-control-plane, container: controlplane}
        - {namespace: openchoreo-observability-plane, container: observer, pod_prefix: observer-}

Audit records forwarded over OTLP (`exporter.otlp`) travel on requests carrying the internal token
(`exporter.otlp.audit_token`, or OBSERVER_INTERNAL_TOKEN as the agents use it); an OTLP receiver takes them as
audit records only from requests carrying its `receivers.otlp.audit_token` (COLLECTOR_OTLP_AUDIT_TOKEN).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TailConfig(_Strict):
    paths: list[str] = ["/var/log/pods/*/*/*.log"]
    checkpoint: Path = Path("/var/lib/observer/tail.db")
    refresh_s: float = 5.0


class OtlpConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = 4318
    max_body_bytes: int = Field(8 * 1024 * 1024, gt=0)  # per export, as sent and once inflated (413 above)
    # where a plain OpenTelemetry app without `service.namespace` lands: the same setting as `observer up`'s
    default_namespace: str = Field("default", min_length=1, max_length=253)
    # requests carrying `Authorization: Bearer <this>` may deliver audit records (collectors/otlp/receiver.py);
    # empty: none may, and a marked record is an ordinary log line
    audit_token: str = Field("", repr=False)


class KubernetesEventsConfig(_Strict):
    """core/v1 Events from the API that `metadata.kubernetes` connects to (collectors/kubernetes/events.py)."""

    namespaces: list[str] = []  # empty: every namespace, with one cluster-wide watch
    checkpoint: Path = Path("/var/lib/observer/k8s-events.json")  # resourceVersions delivered, for restarts


class Receivers(_Strict):
    tail: TailConfig | None = None
    otlp: OtlpConfig | None = None
    kubernetes_events: KubernetesEventsConfig | None = None


class KubernetesMetadataConfig(_Strict):
    """The Kubernetes API: pod metadata for tailed lines (a watch of `node_name`'s pods,
    collectors/kubernetes/pods.py) and the connection the events receiver uses."""

    node_name: str = ""  # whose pods to cache (the downward API's spec.nodeName); empty: no pod cache
    kubeconfig: Path | None = None  # empty: in-cluster (the pod's service account)
    pod_wait_s: float = Field(2.0, ge=0)  # how long a line of a pod not yet seen waits for the watch

    @field_validator("kubeconfig", mode="before")
    @classmethod
    def _empty_is_in_cluster(cls, value: Any) -> Any:
        return None if value == "" else value  # `KUBECONFIG=` (set, empty) means none, as for kubectl


class MetadataConfig(_Strict):
    file: Path | None = None
    kubernetes: KubernetesMetadataConfig | None = None


class BufferConfig(_Strict):
    directory: Path = Path("/var/lib/observer/buffer")
    max_bytes: int = 256 * 1024 * 1024


class OtlpExporterConfig(_Strict):
    """Forwarding over OTLP/HTTP to another collector or the all-in-one (collectors/exporters/otlp.py)."""

    endpoint: str  # the base URL; /v1/logs, /v1/traces and /v1/metrics are appended
    headers: dict[str, str] = Field(default_factory=dict, repr=False)  # may hold credentials: never shown
    bearer_token: str = Field("", repr=False)  # sent as `Authorization: Bearer ...`
    bearer_token_file: Path | None = None  # or read from this file, again whenever it changes
    # the internal token the requests carrying audit records are sent with (the receiver's audit_token; the
    # observer's OBSERVER_INTERNAL_TOKEN); empty: the bearer token above
    audit_token: str = Field("", repr=False)
    audit_token_file: Path | None = None
    ca_file: Path | None = None
    tls_skip_verify: bool = False
    timeout_s: float = Field(10.0, gt=0)
    max_request_bytes: int = Field(4 * 1024 * 1024, gt=0)  # per export request, before compression

    @field_validator("endpoint")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"must be an http:// or https:// URL, not {value!r}")
        return value

    @field_validator("headers", mode="before")
    @classmethod
    def _headers_from_text(cls, value: Any) -> Any:
        """From the environment, headers come as OpenTelemetry's `OTEL_EXPORTER_OTLP_HEADERS` spells them:
        `key1=value1,key2=value2`, values URL-encoded."""
        if not isinstance(value, str):
            return value
        headers = {}
        for pair in filter(None, (item.strip() for item in value.split(","))):
            key, equals, item = pair.partition("=")
            if not equals or not key.strip():
                raise ValueError("expected key=value pairs separated by commas")
            headers[unquote(key.strip())] = unquote(item.strip())
        return headers


#: The exporter's keys from before backends had sections of their own: key -> (backend, its settings field).
LEGACY_EXPORTER_KEYS: dict[str, tuple[str, str]] = {
    "data_dir": ("embedded", "data_dir"),
    "opensearch_username": ("opensearch", "username"),
    "opensearch_password": ("opensearch", "password"),
    "opensearch_tls_skip_verify": ("opensearch", "tls_skip_verify"),
    "logs_index_prefix": ("opensearch", "logs_prefix"),
    "events_index_prefix": ("opensearch", "events_prefix"),
    "traces_index_prefix": ("opensearch", "traces_prefix"),
}


def exporter_sections(document: Mapping[str, Any]) -> dict[str, Any]:
    """The exporter's YAML as `{otlp, backends: {name: settings values}}`. A backend's key holds its settings
    (the fields of adapters/<name>/plugin.py Settings, the same `observer up` reads from the environment) or,
    as before, just its address (`opensearch: https://...`); the older flat keys still work."""
    document = dict(document)
    backends: dict[str, Any] = {
        name: dict(values) if isinstance(values, Mapping) else values
        for name, values in (document.pop("backends", None) or {}).items()
    }
    out: dict[str, Any] = {"otlp": document.pop("otlp")} if "otlp" in document else {}
    for key, (backend, field) in LEGACY_EXPORTER_KEYS.items():
        if key in document:
            value = document.pop(key)
            if value is not None:
                backends.setdefault(backend, {})[field] = value
    for name, value in document.items():
        if isinstance(value, str):
            value = {"address": value}
        if value is None or (isinstance(value, Mapping) and not value.get("address", True)):
            continue  # `opensearch: ""`: not configured, as before
        section = backends.setdefault(name, {})
        if isinstance(section, Mapping) and isinstance(value, Mapping):
            backends[name] = {**value, **section}
        else:
            backends[name] = value
    out["backends"] = backends
    return out


class ExporterConfig(_Strict):
    """Where batches go: `otlp` (forwarding, then the only destination) or backends by registry name, each
    with that backend's own settings model (adapters/registry.py), so the collector accepts exactly what
    `observer up` does for it."""

    otlp: OtlpExporterConfig | None = None
    backends: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _sections(cls, data: Any) -> Any:
        return exporter_sections(data) if isinstance(data, Mapping) else data

    @field_validator("backends")
    @classmethod
    def _backend_settings(cls, value: dict[str, Any]) -> dict[str, BaseSettings]:
        from adapters import registry

        known = registry.entries()
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise ValueError(f"unknown exporter backend(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return {
            name: values if isinstance(values, BaseSettings) else known[name].settings.model_validate(values)
            for name, values in value.items()
        }


class TrustedProducerConfig(_Strict):
    """A container whose JSON audit lines are audit records: exact namespace and container, optional pod
    name prefix."""

    namespace: str = Field(min_length=1, max_length=253)
    container: str = Field(min_length=1, max_length=253)
    pod_prefix: str = Field("", max_length=253)


class AuditConfig(_Strict):
    trusted_producers: list[TrustedProducerConfig] = Field(default_factory=list, max_length=100)


class TelemetryConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = 2020


class CollectorConfig(_Strict):
    receivers: Receivers = Receivers()
    metadata: MetadataConfig = MetadataConfig()
    buffer: BufferConfig = BufferConfig()
    exporter: ExporterConfig = ExporterConfig()
    telemetry: TelemetryConfig = TelemetryConfig()
    cluster: str = Field("", max_length=253)  # the name of the cluster this collector runs in (CLUSTER_NAME)
    audit: AuditConfig = AuditConfig()


#: Environment variable -> the path of the key it overrides (section, [subsection,] key). The backends' own
#: variables (OPENSEARCH_*, PROMETHEUS_*, OBSERVER_DATA_DIR, ...) are read through their settings models.
ENV_OVERRIDES: dict[str, tuple[str, ...]] = {
    "COLLECTOR_BUFFER_DIR": ("buffer", "directory"),
    "COLLECTOR_BUFFER_MAX_BYTES": ("buffer", "max_bytes"),
    "COLLECTOR_METADATA_FILE": ("metadata", "file"),
    "NODE_NAME": ("metadata", "kubernetes", "node_name"),
    "KUBECONFIG": ("metadata", "kubernetes", "kubeconfig"),
    "COLLECTOR_OTLP_MAX_BODY_BYTES": ("receivers", "otlp", "max_body_bytes"),
    "OBSERVER_DEFAULT_NAMESPACE": ("receivers", "otlp", "default_namespace"),
    "COLLECTOR_EXPORTER_OTLP_ENDPOINT": ("exporter", "otlp", "endpoint"),
    "COLLECTOR_EXPORTER_OTLP_HEADERS": ("exporter", "otlp", "headers"),
    "COLLECTOR_EXPORTER_OTLP_BEARER_TOKEN": ("exporter", "otlp", "bearer_token"),
    "COLLECTOR_EXPORTER_OTLP_BEARER_TOKEN_FILE": ("exporter", "otlp", "bearer_token_file"),
    "COLLECTOR_EXPORTER_OTLP_CA_FILE": ("exporter", "otlp", "ca_file"),
    "COLLECTOR_EXPORTER_OTLP_TLS_SKIP_VERIFY": ("exporter", "otlp", "tls_skip_verify"),
    "COLLECTOR_EXPORTER_OTLP_TIMEOUT_SECONDS": ("exporter", "otlp", "timeout_s"),
    "OBSERVER_INTERNAL_TOKEN": ("exporter", "otlp", "audit_token"),
    "COLLECTOR_EXPORTER_OTLP_AUDIT_TOKEN_FILE": ("exporter", "otlp", "audit_token_file"),
    "COLLECTOR_OTLP_AUDIT_TOKEN": ("receivers", "otlp", "audit_token"),
    "CLUSTER_NAME": ("cluster",),
}
#: Of the variables that set a key in a subsection (`exporter.otlp.*`), those that turn the subsection on when
#: the file leaves it out; the others only adjust a subsection that is on, so a token set for every node does
#: not switch forwarding on where the file configures another exporter.
ENV_ENABLES = frozenset({"COLLECTOR_EXPORTER_OTLP_ENDPOINT", "NODE_NAME", "KUBECONFIG"})


def load(path: Path | None, environ: dict[str, str] | None = None) -> CollectorConfig:
    """The file's settings with the environment's on top; unknown keys are an error that names them."""
    variables: Mapping[str, str] = os.environ if environ is None else environ
    document = (yaml.safe_load(path.read_text()) or {}) if path else {}
    document["exporter"] = _backends_from_env(document.get("exporter") or {}, variables)
    for variable, keys in ENV_OVERRIDES.items():
        value = variables.get(variable)
        if value is None:
            continue
        node = document
        for depth, part in enumerate(keys[:-1]):
            if not isinstance(node.get(part), dict):
                if depth > 0 and part not in node and variable not in ENV_ENABLES:
                    break  # a subsection the file does not turn on
                node[part] = {}  # (`otlp:` left empty in YAML is None, and on)
            node = node[part]
        else:
            node[keys[-1]] = value
    return CollectorConfig.model_validate(document)


def _backends_from_env(exporter: Mapping[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """Every backend's settings from its section with its environment variables over it; a backend none of
    whose variables is set and that has no section stays out."""
    from adapters import registry

    sections = exporter_sections(exporter)
    for name, entry in registry.entries(environ).items():
        values = sections["backends"].get(name)
        variables = {
            variable for field in entry.settings.model_fields for variable in registry.env_names(entry.settings, field)
        }
        if values is None and not any(variable in environ for variable in variables):
            continue
        sections["backends"][name] = registry.settings_from(entry.settings, values or {}, environ)
    return sections
