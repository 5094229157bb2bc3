"""The http backend's settings and roles: OpenChoreo's variable names and timeout defaults, each role optional.
(No server needed; kept beside the other http adapter tests.)"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from adapters import registry
from adapters.http.plugin import Settings


def settings(environ: dict[str, str]) -> Settings:
    entry = registry.entries()["http"]
    value = registry.settings_from(entry.settings, {}, environ)
    assert isinstance(value, Settings)
    return value


def test_openchoreos_names_and_defaults():
    got = settings(
        {
            "LOGS_ADAPTER_URL": "http://logs-adapter:9098/",
            "TRACING_ADAPTER_URL": "http://tracing-adapter:9100",
            "METRICS_ADAPTER_URL": "http://metrics-adapter:9099",
            "TRACING_ADAPTER_TIMEOUT": "1m30s",
            "METRICS_ADAPTER_TIMEOUT": "12.5",
        }
    )
    assert (got.logs_url, got.tracing_url, got.metrics_url) == (
        "http://logs-adapter:9098",  # trailing slash stripped, as OpenChoreo does for metrics
        "http://tracing-adapter:9100",
        "http://metrics-adapter:9099",
    )
    assert (got.logs_timeout_s, got.tracing_timeout_s, got.metrics_timeout_s) == (30.0, 90.0, 12.5)


@pytest.mark.parametrize(
    "environ",
    [{"LOGS_ADAPTER_URL": "logs-adapter:9098"}, {"LOGS_ADAPTER_TIMEOUT": "0s"}, {"LOGS_ADAPTER_TIMEOUT": "soon"}],
)
def test_bad_settings_are_refused(environ):
    with pytest.raises((ValidationError, ValueError)):
        settings(environ)


async def test_each_role_is_optional_and_only_a_url_turns_it_on():
    entry = registry.entries()["http"]
    assert not entry.enabled(settings({}), registry.Context())
    only_metrics = settings({"METRICS_ADAPTER_URL": "http://metrics-adapter:9099"})
    assert entry.enabled(only_metrics, registry.Context())
    backend = entry.create(only_metrics, registry.Context())
    try:
        roles = backend.roles
        assert roles.metrics is not None and roles.topology is roles.metrics
        assert (roles.logs, roles.events, roles.traces, roles.sink, roles.names) == (None,) * 5
        assert backend.health() == "metrics and runtime topology from the adapter at http://metrics-adapter:9099"
    finally:
        await backend.close()


async def test_an_adapter_serves_its_roles_over_the_other_backends(tmp_path):
    """Logs from an adapter, everything else (and the name registry) from the embedded store."""
    environ = {"LOGS_ADAPTER_URL": "http://logs-adapter:9098", "OBSERVER_DATA_DIR": str(tmp_path)}
    chosen = registry.enabled(registry.Context("write"), shared=environ)
    plane = await registry.build_plane(registry.Context("write"), chosen)
    try:
        assert plane.chosen("logs").name == "http" and plane.chosen("events").name == "http"
        assert plane.chosen("traces").name == "embedded" and plane.chosen("names").name == "embedded"
    finally:
        await plane.close()


def test_native_backends_keep_their_roles_and_the_adapter_takes_the_embedded_stores():
    """OpenChoreo's chart values carry adapter URLs beside OPENSEARCH_ADDRESS: the native backend keeps its role."""
    known = registry.entries()
    assert known["embedded"].priority < known["http"].priority
    assert all(known["http"].priority < known[name].priority for name in ("opensearch", "prometheus", "datadog"))
