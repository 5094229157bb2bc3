"""Datadog as a registry entry: logs (by component and by Kubernetes placement), the audit trail,
Kubernetes events, traces and metrics answered from a Datadog organisation, alert rules kept as Datadog monitors, and the sink that ships our collector's records to it.
Runtime topology is not served (metrics.TOPOLOGY_UNSUPPORTED): another backend derives it from spans.

Enabled by `DD_API_KEY` (the names Datadog's own client reads: `DD_API_KEY`, `DD_APP_KEY`, and `DATADOG_SITE`
or `DD_SITE`). Queries need the application key as well; a collector only delivers and needs the API key
alone. `DATADOG_API_URL` replaces every Datadog host at once (the API, the logs intake and the OTLP intake):
that is how tests point the backend at the local fake. Its priority is above the embedded store's and
OpenSearch's, so with the keys set Datadog serves the roles it has.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from adapters.datadog import webhook
from adapters.registry import BackendEntry, Context, Roles, RuleTargetContext


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    site: str = Field("datadoghq.com", validation_alias=AliasChoices("DATADOG_SITE", "DD_SITE"))
    api_key: SecretStr = Field(SecretStr(""), validation_alias="DD_API_KEY")
    app_key: SecretStr = Field(SecretStr(""), validation_alias="DD_APP_KEY")
    api_url: str = Field("", validation_alias="DATADOG_API_URL")  # overrides every host (tests, proxies)
    timeout_s: float = Field(10.0, validation_alias="DATADOG_TIMEOUT_SECONDS")
    logs_indexes: str = Field("*", validation_alias="DATADOG_LOGS_INDEXES")  # comma-separated

    def url(self, host: str) -> str:
        """`https://{host}.{site}`, or DATADOG_API_URL when set."""
        return self.api_url.rstrip("/") if self.api_url else f"https://{host}.{self.site}"

    def indexes(self) -> tuple[str, ...]:
        return tuple(part.strip() for part in self.logs_indexes.split(",") if part.strip()) or ("*",)


class Datadog:
    name = "datadog"

    def __init__(self, settings: Settings, context: Context):
        from adapters.datadog.backend import DatadogBackend
        from adapters.datadog.client import DatadogClient, DatadogConfig
        from adapters.datadog.intake import DatadogSink, IntakeConfig

        self.settings = settings
        api_key = settings.api_key.get_secret_value()
        self.sink = DatadogSink(
            IntakeConfig(
                logs_url=settings.url("http-intake.logs"),
                api_url=settings.url("api"),
                otlp_url=settings.url("otlp"),
                api_key=api_key,
                timeout_s=settings.timeout_s,
            )
        )
        # Built whatever the purpose: a collector never queries, but the plane routes each signal to the sink of
        # the backend serving its query role, so the roles must be declared. Without DD_APP_KEY a query
        # answers 503 (Datadog refuses the key), which the banner says.
        client = DatadogClient(
            DatadogConfig(
                base_url=settings.url("api"),
                api_key=api_key,
                app_key=settings.app_key.get_secret_value(),
                timeout_s=settings.timeout_s,
            )
        )
        self.backend = DatadogBackend(client, settings.indexes())
        backend = self.backend
        self.roles = Roles(
            logs=backend,
            platform_logs=backend,
            audit=backend,
            events=backend,
            traces=backend,
            metrics=backend,
            sink=self.sink,
            rule_target=self._rule_target,
        )

    async def start(self) -> None:
        """Nothing to install: Datadog keeps no schema of ours."""

    def tasks(self) -> list[Coroutine[Any, Any, None]]:
        return []

    def health(self) -> str:
        queries = (
            "queries and delivery" if self.settings.app_key.get_secret_value() else "delivery only (no DD_APP_KEY)"
        )
        return f"Datadog at {self.settings.url('api')}: {queries}"

    async def _rule_target(self, context: RuleTargetContext) -> Any:
        """Alert rules as Datadog monitors (monitors.py), whose webhook posts back to `context.webhook_url`."""
        from adapters.datadog.monitors import open_target

        settings = self.settings
        return await open_target(
            settings.url("api"),
            settings.api_key.get_secret_value(),
            settings.app_key.get_secret_value(),
            context.webhook_url,
            context.webhook_token,
            timeout_s=settings.timeout_s,
        )

    async def close(self) -> None:
        await self.sink.close()
        await self.backend.close()


def _describe(settings: Settings) -> str:
    return f"logs, platform logs, the audit trail, events, traces and metrics in Datadog ({settings.api_url or settings.site})"


ENTRY = BackendEntry(
    name="datadog",
    settings=Settings,
    create=Datadog,
    enabled=lambda settings, context: bool(settings.api_key.get_secret_value()),
    priority=20,
    describe=_describe,
    webhook=webhook.decode,
)
