"""Prometheus as a registry entry: metrics (read through a scheme's PromQL; our collectors' OTLP metrics are
remote-written whatever the scheme), runtime topology with the `kubernetes` scheme (Hubble's series), and
metric rules as rule files Prometheus loads, when OBSERVER_PROMETHEUS_RULES_DIR says where.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from adapters.registry import BackendEntry, Context, Roles, RuleTargetContext


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    address: str = Field("", validation_alias="PROMETHEUS_ADDRESS")  # empty: not used
    timeout_s: float = Field(10.0, validation_alias="PROMETHEUS_TIMEOUT_SECONDS")
    metrics_scheme: Literal["otel", "kubernetes"] = Field("otel", validation_alias="OBSERVER_METRICS_SCHEME")
    # Where Prometheus loads our rule groups from (its rule_files glob must cover <dir>/*.yml); "" -> no
    # Prometheus rules: metric rules are then evaluated by the observer itself.
    rules_dir: str = Field("", validation_alias="OBSERVER_PROMETHEUS_RULES_DIR")


class Prometheus:
    name = "prometheus"

    def __init__(self, settings: Settings, context: Context):
        from adapters.prometheus.backend import PrometheusBackend
        from adapters.prometheus.client import PrometheusConfig
        from adapters.prometheus.kubernetes import KubernetesScheme
        from adapters.prometheus.otel import OtelScheme
        from adapters.prometheus.remote_write import RemoteWriter

        self.settings = settings
        self.scheme = KubernetesScheme() if settings.metrics_scheme == "kubernetes" else OtelScheme()
        config = PrometheusConfig(settings.address, timeout_s=settings.timeout_s)
        self.backend = PrometheusBackend(
            config, self.scheme, RemoteWriter(settings.address, timeout_s=settings.timeout_s)
        )
        backend = self.backend
        self.roles = Roles(
            metrics=backend,
            topology=backend if settings.metrics_scheme == "kubernetes" else None,
            sink=backend,
            rule_target=self._rule_target if settings.rules_dir else None,
        )

    async def start(self) -> None:
        return None

    def tasks(self) -> list[Coroutine[Any, Any, None]]:
        return []

    def health(self) -> str:
        return f"{self.settings.metrics_scheme} scheme"

    async def close(self) -> None:
        await self.backend.close()

    async def _rule_target(self, context: RuleTargetContext) -> Any:
        """Rule files in OBSERVER_PROMETHEUS_RULES_DIR plus `/-/reload`; Alertmanager posts firings back."""
        from adapters.prometheus.rules import PrometheusRuleTarget

        return PrometheusRuleTarget(self.settings.rules_dir, self.settings.address, self.scheme)


ENTRY = BackendEntry(
    name="prometheus",
    settings=Settings,
    create=Prometheus,
    enabled=lambda settings, context: bool(settings.address),
    priority=10,
    describe=lambda settings: f"metrics in Prometheus at {settings.address}",
)
