"""Configuration from the environment, with OpenChoreo's variable names where OpenChoreo has one.

These are the process's own settings; each backend declares its own (adapters/<name>/plugin.py, read through
adapters/registry.py). The data directory and registry file are here too because flags set them
(`--data-dir`, `--registry`): the registry hands them to the backend that reads the same variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from access.settings import AuthSettings
from observer.auth.internal import InternalSecurity, internal_security


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    host: str = Field("127.0.0.1", validation_alias=AliasChoices("OBSERVER_HOST", "HOST"))
    port: int = Field(8080, validation_alias=AliasChoices("SERVER_PORT", "PORT"))
    internal_port: int = Field(8081, validation_alias=AliasChoices("SERVER_INTERNAL_PORT", "INTERNAL_PORT"))
    otlp_port: int = Field(4318, validation_alias=AliasChoices("OTLP_HTTP_PORT", "OTLP_PORT"))
    data_dir: Path = Field(Path("data"), validation_alias="OBSERVER_DATA_DIR")  # also the SQLite alert store's
    registry_file: Path | None = Field(None, validation_alias="OBSERVER_REGISTRY_FILE")
    log_level: str = Field("info", validation_alias="LOG_LEVEL")
    cors_allowed_origins: str = Field("", validation_alias="CORS_ALLOWED_ORIGINS")
    otlp_max_body_bytes: int = Field(8 * 1024 * 1024, validation_alias="OTLP_MAX_BODY_BYTES", gt=0)
    # Request bodies on the public and internal ports (a 413 above); the alert webhook takes larger groups.
    max_body_bytes: int = Field(1024 * 1024, validation_alias="OBSERVER_MAX_BODY_BYTES", gt=0)
    webhook_max_body_bytes: int = Field(8 * 1024 * 1024, validation_alias="OBSERVER_WEBHOOK_MAX_BODY_BYTES", gt=0)

    # The namespace a plain OpenTelemetry application (no openchoreo.dev/* attributes) lands in when its resource
    # names no `service.namespace` (domain/identity.py plain_otel_identity).
    default_namespace: str = Field(
        "default", validation_alias="OBSERVER_DEFAULT_NAMESPACE", min_length=1, max_length=253
    )

    # Names -> UIDs from an OpenChoreo-compatible API instead of the embedded registry (contract notes §6).
    resolver_api_url: str = Field("", validation_alias="UID_RESOLVER_OPENCHOREO_API_URL")
    resolver_token_url: str = Field("", validation_alias="UID_RESOLVER_OAUTH_TOKEN_URL")
    resolver_client_id: str = Field("", validation_alias="UID_RESOLVER_OAUTH_CLIENT_ID")
    resolver_client_secret: SecretStr = Field(SecretStr(""), validation_alias="UID_RESOLVER_OAUTH_CLIENT_SECRET")
    resolver_scope: str = Field("", validation_alias="UID_RESOLVER_OAUTH_SCOPE")
    resolver_timeout_s: float = Field(30.0, validation_alias="UID_RESOLVER_TIMEOUT_SECONDS")
    resolver_max_auth_retry: int = Field(2, validation_alias="UID_RESOLVER_MAX_AUTH_RETRY")
    resolver_tls_insecure_skip_verify: bool = Field(False, validation_alias="UID_RESOLVER_TLS_INSECURE_SKIP_VERIFY")

    # Alerting: the store of rules, channels, alerts, incidents and the notification outbox (contract notes §5.4).
    alert_store_backend: Literal["sqlite", "postgresql"] = Field("sqlite", validation_alias="ALERT_STORE_BACKEND")
    alert_store_dsn: str = Field("", validation_alias="ALERT_STORE_DSN")  # "" -> <data_dir>/alerts.db
    alert_suppression_window: str = Field("1h", validation_alias="ALERT_SUPPRESSION_WINDOW")  # "0" turns it off
    rule_reconcile_interval_s: float = Field(30.0, validation_alias="OBSERVER_RULE_RECONCILE_INTERVAL_SECONDS")
    # The webhook URL backends post firing alerts to (OpenSearch monitors' channel; Alertmanager's receiver is
    # configured with the same URL): "" -> http://<host>:<internal_port>/api/v1alpha1/alerts/webhook.
    internal_url: str = Field("", validation_alias="OBSERVER_ALERTING_WEBHOOK_URL")
    # How long a notification being sent is held by its sender; after a crash it is retried once this passes.
    notification_lease_s: float = Field(120.0, validation_alias="OBSERVER_NOTIFICATION_LEASE_SECONDS")

    # MCP: `query_runtime_topology`, `get_log_context`, `query_log_patterns` and cursor paging beyond the 15 tools.
    mcp_extended_tools: bool = Field(False, validation_alias="OBSERVER_MCP_EXTENDED_TOOLS")

    # The internal port is unauthenticated by default, as upstream; these opt into a shared bearer token and/or
    # (mutual) TLS (observer/auth/internal.py). Empty means unset.
    internal_token: SecretStr = Field(SecretStr(""), validation_alias="OBSERVER_INTERNAL_TOKEN")
    internal_tls_cert_file: str = Field("", validation_alias="OBSERVER_INTERNAL_TLS_CERT_FILE")
    internal_tls_key_file: str = Field("", validation_alias="OBSERVER_INTERNAL_TLS_KEY_FILE")
    internal_tls_client_ca_file: str = Field("", validation_alias="OBSERVER_INTERNAL_TLS_CLIENT_CA_FILE")

    def by_variable(self) -> dict[str, object]:
        """Every value under each environment variable that sets it, for the backends that read the same
        variable (adapters/registry.py settings_with): so a flag that changed it reaches them too."""
        values: dict[str, object] = {}
        for name, field in type(self).model_fields.items():
            alias = field.validation_alias
            for variable in alias.choices if isinstance(alias, AliasChoices) else (alias,):
                if isinstance(variable, str):
                    values[variable] = getattr(self, name)
        return values

    def alert_store(self) -> str:
        """The alert store's DSN: ALERT_STORE_DSN, else a SQLite file in the data directory."""
        if self.alert_store_backend == "postgresql" and not self.alert_store_dsn:
            raise ValueError("ALERT_STORE_BACKEND=postgresql needs ALERT_STORE_DSN (postgresql://user:pass@host/db)")
        return self.alert_store_dsn or str(self.data_dir / "alerts.db")

    def internal_security(self) -> InternalSecurity:
        """How the internal port is protected, checked (token length, every TLS file loaded): raises
        InternalPortConfigError naming the variable to fix, so a mistake stops the process before any port opens."""
        return internal_security(
            self.internal_token.get_secret_value(),
            self.internal_tls_cert_file,
            self.internal_tls_key_file,
            self.internal_tls_client_ca_file,
        )

    def auth(self) -> AuthSettings:
        """Authentication, from OpenChoreo's JWT variables (access/settings.py): on unless
        JWT_DISABLED=true, and then JWKS_URL is required. Raises AuthConfigError with the fix."""
        return AuthSettings.from_env()
