"""Configuration from the environment, with OpenChoreo's variable names where OpenChoreo has one."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from adapters.opensearch.client import OpenSearchConfig


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    host: str = Field("127.0.0.1", validation_alias=AliasChoices("OBSERVER_HOST", "HOST"))
    port: int = Field(8080, validation_alias=AliasChoices("SERVER_PORT", "PORT"))
    internal_port: int = Field(8081, validation_alias=AliasChoices("SERVER_INTERNAL_PORT", "INTERNAL_PORT"))
    otlp_port: int = Field(4318, validation_alias=AliasChoices("OTLP_HTTP_PORT", "OTLP_PORT"))
    data_dir: Path = Field(Path("data"), validation_alias="OBSERVER_DATA_DIR")
    registry_file: Path | None = Field(None, validation_alias="OBSERVER_REGISTRY_FILE")
    retention_hours: float = Field(168.0, validation_alias="OBSERVER_RETENTION_HOURS")
    log_level: str = Field("info", validation_alias="LOG_LEVEL")
    cors_allowed_origins: str = Field("", validation_alias="CORS_ALLOWED_ORIGINS")
    otlp_max_body_bytes: int = Field(8 * 1024 * 1024, validation_alias="OTLP_MAX_BODY_BYTES")

    # Names -> UIDs from an OpenChoreo-compatible API instead of the embedded registry (contract notes §6).
    resolver_api_url: str = Field("", validation_alias="UID_RESOLVER_OPENCHOREO_API_URL")
    resolver_token_url: str = Field("", validation_alias="UID_RESOLVER_OAUTH_TOKEN_URL")
    resolver_client_id: str = Field("", validation_alias="UID_RESOLVER_OAUTH_CLIENT_ID")
    resolver_client_secret: SecretStr = Field(SecretStr(""), validation_alias="UID_RESOLVER_OAUTH_CLIENT_SECRET")
    resolver_scope: str = Field("", validation_alias="UID_RESOLVER_OAUTH_SCOPE")
    resolver_timeout_s: float = Field(30.0, validation_alias="UID_RESOLVER_TIMEOUT_SECONDS")
    resolver_max_auth_retry: int = Field(2, validation_alias="UID_RESOLVER_MAX_AUTH_RETRY")
    resolver_tls_insecure_skip_verify: bool = Field(False, validation_alias="UID_RESOLVER_TLS_INSECURE_SKIP_VERIFY")

    # OpenSearch for logs, events and traces (OpenChoreo's variable names); empty keeps them embedded.
    opensearch_address: str = Field("", validation_alias="OPENSEARCH_ADDRESS")
    opensearch_username: str = Field("", validation_alias="OPENSEARCH_USERNAME")
    opensearch_password: SecretStr = Field(SecretStr(""), validation_alias="OPENSEARCH_PASSWORD")
    opensearch_tls_skip_verify: bool = Field(False, validation_alias="OPENSEARCH_TLS_SKIP_VERIFY")
    opensearch_ca_file: str = Field("", validation_alias="OPENSEARCH_CA_FILE")
    opensearch_timeout_s: float = Field(10.0, validation_alias="OPENSEARCH_TIMEOUT_SECONDS")
    opensearch_logs_prefix: str = Field("container-logs-", validation_alias="OPENSEARCH_INDEX_PREFIX")
    opensearch_events_prefix: str = Field("k8s-events-", validation_alias="OPENSEARCH_EVENTS_INDEX_PREFIX")
    opensearch_traces_prefix: str = Field("otel-traces-", validation_alias="OPENSEARCH_TRACES_INDEX_PREFIX")

    # Prometheus for metrics (and, with the kubernetes scheme, runtime topology); empty keeps them embedded.
    prometheus_address: str = Field("", validation_alias="PROMETHEUS_ADDRESS")
    prometheus_timeout_s: float = Field(10.0, validation_alias="PROMETHEUS_TIMEOUT_SECONDS")
    metrics_scheme: Literal["otel", "kubernetes"] = Field("otel", validation_alias="OBSERVER_METRICS_SCHEME")

    def opensearch(self) -> "OpenSearchConfig | None":
        """The OpenSearch connection, or None when logs, events and traces stay in the embedded backend."""
        if not self.opensearch_address:
            return None
        from adapters.opensearch.client import OpenSearchConfig
        from adapters.opensearch.layout import IndexLayout

        return OpenSearchConfig(
            address=self.opensearch_address,
            username=self.opensearch_username,
            password=self.opensearch_password.get_secret_value(),
            tls_skip_verify=self.opensearch_tls_skip_verify,
            ca_file=self.opensearch_ca_file,
            timeout_s=self.opensearch_timeout_s,
            layout=IndexLayout(self.opensearch_logs_prefix, self.opensearch_events_prefix, self.opensearch_traces_prefix),
        )
