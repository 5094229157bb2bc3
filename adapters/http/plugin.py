"""OpenChoreo's HTTP adapters as a registry entry: any of the fourteen community adapters (OpenSearch,
OpenObserve, CloudWatch, X-Ray, Azure, GCP, Dynatrace ...) or our own `observer adapter serve`, one per signal.

The settings are OpenChoreo's observer's own names (observer-contract-notes §5): `LOGS_ADAPTER_URL` (logs and
events), `TRACING_ADAPTER_URL` (traces), `METRICS_ADAPTER_URL` (metrics), each with its `*_TIMEOUT` (a Go
duration such as `30s`, or seconds; default 30s, OpenChoreo's). Each role is optional and only a URL that is set
turns it on, so the URLs have no default here (OpenChoreo's in-cluster defaults, `http://logs-adapter:9098`,
`http://tracing-adapter:9100`, `http://metrics-adapter:9099`, would turn every role on everywhere): logs from a
CloudWatch adapter and metrics from Prometheus combine. Its priority is below every native backend's and above
the embedded store's: a role an explicitly configured backend (OpenSearch, Prometheus, Datadog) serves stays
with it, so OpenChoreo's values carried over beside `OPENSEARCH_ADDRESS` change nothing, and the adapter takes
what the embedded store would otherwise serve. It keeps no records (OpenChoreo's collectors feed the adapter's backend), so
it has no sink, and it resolves no names (the plane's name registry or OpenChoreo's API does, before the call).
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from adapters.registry import BackendEntry, Context, Roles, RuleTargetContext
from domain.timeutil import parse_go_duration

DEFAULT_TIMEOUT_S = 30.0


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    logs_url: str = Field("", validation_alias="LOGS_ADAPTER_URL")
    logs_timeout_s: float = Field(DEFAULT_TIMEOUT_S, validation_alias="LOGS_ADAPTER_TIMEOUT")
    tracing_url: str = Field("", validation_alias="TRACING_ADAPTER_URL")
    tracing_timeout_s: float = Field(DEFAULT_TIMEOUT_S, validation_alias="TRACING_ADAPTER_TIMEOUT")
    metrics_url: str = Field("", validation_alias="METRICS_ADAPTER_URL")
    metrics_timeout_s: float = Field(DEFAULT_TIMEOUT_S, validation_alias="METRICS_ADAPTER_TIMEOUT")

    @field_validator("logs_timeout_s", "tracing_timeout_s", "metrics_timeout_s", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        """OpenChoreo writes timeouts as Go durations (`30s`); plain numbers are seconds."""
        if isinstance(value, str) and value.strip() and not value.strip().replace(".", "", 1).isdigit():
            return parse_go_duration(value.strip()) / 1e9
        return value

    @field_validator("logs_timeout_s", "tracing_timeout_s", "metrics_timeout_s")
    @classmethod
    def _positive(cls, value: float) -> float:
        if not value > 0:
            raise ValueError("an adapter timeout must be positive")
        return value

    @field_validator("logs_url", "tracing_url", "metrics_url")
    @classmethod
    def _absolute(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("an adapter URL must be an absolute http(s) URL")
        return value


class HttpAdapters:
    name = "http"

    def __init__(self, settings: Settings, context: Context) -> None:
        from adapters.http.backend import HttpLogs, HttpMetrics, HttpTraces
        from adapters.http.client import AdapterClient
        from adapters.http.platform import HttpAudit, HttpPlatformLogs

        self.settings = settings
        self.clients: list[AdapterClient] = []
        logs = traces = metrics = None
        platform: HttpPlatformLogs | None = None
        audit: HttpAudit | None = None
        if settings.logs_url:
            self.clients.append(AdapterClient("logs", settings.logs_url, settings.logs_timeout_s))
            logs = HttpLogs(self.clients[-1])
            platform, audit = HttpPlatformLogs(self.clients[-1]), HttpAudit(self.clients[-1])
        if settings.tracing_url:
            self.clients.append(AdapterClient("tracing", settings.tracing_url, settings.tracing_timeout_s))
            traces = HttpTraces(self.clients[-1])
        if settings.metrics_url:
            self.clients.append(AdapterClient("metrics", settings.metrics_url, settings.metrics_timeout_s))
            metrics = HttpMetrics(self.clients[-1])
        self.logs, self.traces, self.metrics = logs, traces, metrics
        # Topology comes from the metrics adapter, as in OpenChoreo; one that has none answers 501 (passed on).
        # Platform logs and the audit trail come from the logs adapter too (a 501 where it lacks them); the
        # audit role only reads: with no sink here, audit records are written by a backend that has one.
        self.roles = Roles(
            logs=logs,
            platform_logs=platform,
            audit=audit,
            events=logs,
            traces=traces,
            metrics=metrics,
            topology=metrics,
            rule_target=self._rule_target if logs is not None or metrics is not None else None,
        )

    async def _rule_target(self, context: RuleTargetContext) -> Any:
        """Log rules through the logs adapter's rule endpoints, metric rules through the metrics adapter's
        (rules.py). Firings come back the way the adapter posts them: to the observer URL the adapter itself is
        configured with (its OBSERVER_URL), which must be our internal port (`context.webhook_url`); the contract
        cannot tell the adapter where."""
        from adapters.http.rules import AdapterRuleTarget, AdapterRuleTargets

        parts = []
        if self.logs is not None:
            parts.append(AdapterRuleTarget(self.logs.client, "log"))
        if self.metrics is not None:
            parts.append(AdapterRuleTarget(self.metrics.client, "metric"))
        return AdapterRuleTargets(parts)

    async def start(self) -> None:
        """Nothing to check: an adapter that is down answers 503 per query, and may come up later."""

    def tasks(self) -> list[Coroutine[Any, Any, None]]:
        return []

    def health(self) -> str:
        return _describe(self.settings)

    async def close(self) -> None:
        for client in self.clients:
            await client.close()


def _describe(settings: Settings) -> str:
    parts = [
        f"{what} from the adapter at {url}"
        for what, url in (
            ("logs, events, platform logs and the audit trail (read only)", settings.logs_url),
            ("traces", settings.tracing_url),
            ("metrics and runtime topology", settings.metrics_url),
        )
        if url
    ]
    return "; ".join(parts)


ENTRY = BackendEntry(
    name="http",
    settings=Settings,
    create=HttpAdapters,
    enabled=lambda settings, context: bool(settings.logs_url or settings.tracing_url or settings.metrics_url),
    priority=5,
    describe=_describe,
)
