"""OpenSearch as a registry entry: logs (by component and by Kubernetes placement), Kubernetes events, traces
and the audit trail (OpenChoreo's variable names; `OPENSEARCH_AUDIT_PREFIX` ours), their sink, and log rules as Alerting-plugin monitors where the cluster has the plugin.

Start installs the index templates (and ISM retention); when OpenSearch is not there yet, serving goes on
(queries answer 503) and a background task retries every INSTALL_RETRY_S, then keeps retention where the
cluster has no ISM. A collector or a setup job that cannot install stops instead: it has nothing else to do.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from adapters.registry import BackendEntry, Context, Roles, RuleTargetContext, retention_loop

log = logging.getLogger(__name__)

INSTALL_RETRY_S = 5.0


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    address: str = Field("", validation_alias="OPENSEARCH_ADDRESS")  # empty: not used
    username: str = Field("", validation_alias="OPENSEARCH_USERNAME")
    password: SecretStr = Field(SecretStr(""), validation_alias="OPENSEARCH_PASSWORD")
    tls_skip_verify: bool = Field(False, validation_alias="OPENSEARCH_TLS_SKIP_VERIFY")
    ca_file: str = Field("", validation_alias="OPENSEARCH_CA_FILE")
    timeout_s: float = Field(10.0, validation_alias="OPENSEARCH_TIMEOUT_SECONDS")
    logs_prefix: str = Field("container-logs-", validation_alias="OPENSEARCH_INDEX_PREFIX")
    events_prefix: str = Field("k8s-events-", validation_alias="OPENSEARCH_EVENTS_INDEX_PREFIX")
    traces_prefix: str = Field("otel-traces-", validation_alias="OPENSEARCH_TRACES_INDEX_PREFIX")
    audit_prefix: str = Field("openchoreo-audit-logs-", validation_alias="OPENSEARCH_AUDIT_PREFIX")
    retention_hours: float = Field(168.0, validation_alias="OBSERVER_RETENTION_HOURS")


class OpenSearch:
    name = "opensearch"

    def __init__(self, settings: Settings, context: Context):
        from adapters.opensearch.backend import OpenSearchBackend
        from adapters.opensearch.client import OpenSearchConfig
        from adapters.opensearch.layout import IndexLayout

        self.settings = settings
        self.context = context
        self.config = OpenSearchConfig(
            address=settings.address,
            username=settings.username,
            password=settings.password.get_secret_value(),
            tls_skip_verify=settings.tls_skip_verify,
            ca_file=settings.ca_file,
            timeout_s=settings.timeout_s,
            layout=IndexLayout(
                settings.logs_prefix, settings.events_prefix, settings.traces_prefix, settings.audit_prefix
            ),
        )
        self.backend = OpenSearchBackend(self.config, {"refresh": True} if context.searchable_writes else None)
        self.installed = False
        backend = self.backend
        self.roles = Roles(
            logs=backend,
            events=backend,
            traces=backend,
            sink=backend,
            rule_target=self._rule_target,
            platform_logs=backend,
            audit=backend,
        )

    async def start(self) -> None:
        from adapters.protocols import BackendUnavailable

        try:
            await self.install()
        except BackendUnavailable as exc:
            if self.context.purpose != "serve":
                raise BackendUnavailable(f"OpenSearch at {self.settings.address} is not usable: {exc}") from exc
            log.warning("OpenSearch not ready, retrying in %s s: %s", INSTALL_RETRY_S, exc)

    async def install(self) -> None:
        """Index templates and retention policies; safe at every start."""
        await self.backend.install(retention_days=self.settings.retention_hours / 24)
        self.installed = True

    def tasks(self) -> list[Coroutine[Any, Any, None]]:
        return [self._upkeep()] if self.context.purpose == "serve" else []

    async def _upkeep(self) -> None:
        """Installs the templates if start could not, then keeps retention where the cluster has no ISM."""
        from adapters.protocols import BackendUnavailable

        while not self.installed:
            await asyncio.sleep(INSTALL_RETRY_S)
            try:
                await self.install()
            except BackendUnavailable as exc:
                log.warning("OpenSearch not ready, retrying in %s s: %s", INSTALL_RETRY_S, exc)
        await retention_loop(self.backend, self.settings.retention_hours)

    def health(self) -> str:
        """After install, what it installed (what `observer opensearch init` prints)."""
        if not self.installed:
            return "installing index templates"
        from adapters.opensearch.layout import template_name

        layout = self.config.layout
        names = ", ".join(f"{template_name(prefix)} ({prefix}*)" for prefix in layout.prefixes)
        retention = (
            "ISM policies installed"
            if self.backend.ism
            else "no ISM plugin; `observer up` deletes expired daily indices"
        )
        return f"index templates installed: {names}\nretention: {retention}"

    async def close(self) -> None:
        await self.backend.close()

    async def _rule_target(self, context: RuleTargetContext) -> Any:
        """Alerting-plugin monitors (posting back to our webhook) when the cluster has the plugin, else None
        (the observer's evaluator keeps log rules)."""
        from adapters.opensearch.monitors import (
            OpenSearchMonitorTarget,
            alerting_plugin_installed,
            ensure_webhook_channel,
        )

        if not await alerting_plugin_installed(self.backend.client):
            return None
        await ensure_webhook_channel(self.backend.client, context.webhook_url, bearer_token=context.webhook_token)
        log.info("OpenSearch Alerting plugin found: log rules become OpenSearch monitors")
        return OpenSearchMonitorTarget(self.backend.client, self.backend.layout)


ENTRY = BackendEntry(
    name="opensearch",
    settings=Settings,
    create=OpenSearch,
    enabled=lambda settings, context: bool(settings.address),
    priority=10,
    describe=lambda settings: f"logs, events, traces and the audit trail in OpenSearch at {settings.address}",
)
