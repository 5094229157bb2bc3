"""Which backend serves which role, which destination takes which signals, and how a fan-out write answers:
the decisions observer/runtime.py and the collector used to make by hand, now the registry's. No server is
contacted (building a backend opens no connection)."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from adapters import registry
from adapters.protocols import WriteResult
from collectors.config import ExporterConfig
from collectors.destinations import ConfigError, build_destinations
from devservers.sample import identity
from domain.model import LogRecord

OS, PROM = "http://127.0.0.1:9", "http://127.0.0.1:9"  # nothing listens: the plane is only built, never used


async def plane_for(tmp_path: Path, **variables: str) -> registry.Plane:
    shared = {"OBSERVER_DATA_DIR": tmp_path / "data", **variables}
    known = registry.entries({})
    chosen = [
        (entry, registry.settings_from(entry.settings, {}, {k: str(v) for k, v in shared.items()}))
        for entry in sorted(known.values(), key=lambda each: each.priority)
    ]
    context = registry.Context("serve")
    return await registry.build_plane(context, [(e, s) for e, s in chosen if e.enabled(s, context)])


def signals(plane: registry.Plane) -> dict[str, set[str]]:
    return {each.name: set(each.signals) for each in plane.destinations()}


async def test_embedded_alone_serves_everything_and_takes_every_signal(tmp_path: Path) -> None:
    plane = await plane_for(tmp_path)
    try:
        assert [backend.name for backend in plane.backends] == ["embedded"]
        assert signals(plane) == {"embedded": {"logs", "events", "spans", "metrics", "audit"}}
        assert plane.sink() is plane.backends[0].roles.sink  # no fan-out in front of a single store
    finally:
        await plane.close()


async def test_opensearch_takes_records_and_the_embedded_store_keeps_metrics_and_spans_for_topology(
    tmp_path: Path,
) -> None:
    plane = await plane_for(tmp_path, OPENSEARCH_ADDRESS=OS)
    try:
        assert {
            role: getattr(plane.chosen(role), "name", None)
            for role in ("logs", "events", "traces", "metrics", "topology", "names")
        } == {
            "logs": "opensearch",
            "events": "opensearch",
            "traces": "opensearch",
            "metrics": "embedded",
            "topology": "embedded",
            "names": "embedded",
        }
        assert signals(plane) == {
            "opensearch": {"logs", "events", "spans", "audit"},
            "embedded": {"metrics", "spans"},
        }
    finally:
        await plane.close()


@pytest.mark.parametrize("scheme, embedded", [("otel", {"spans"}), ("kubernetes", None)])
async def test_prometheus_takes_metrics_and_with_the_kubernetes_scheme_topology(
    tmp_path: Path, scheme: str, embedded
) -> None:
    plane = await plane_for(tmp_path, OPENSEARCH_ADDRESS=OS, PROMETHEUS_ADDRESS=PROM, OBSERVER_METRICS_SCHEME=scheme)
    try:
        assert getattr(plane.chosen("metrics"), "name", None) == "prometheus"
        assert getattr(plane.chosen("topology"), "name", None) == (
            "prometheus" if scheme == "kubernetes" else "embedded"
        )
        expected = {"opensearch": {"logs", "events", "spans", "audit"}, "prometheus": {"metrics"}}
        if embedded:
            expected["embedded"] = embedded
        assert signals(plane) == expected
    finally:
        await plane.close()


def test_an_extra_backend_is_registered_by_the_environment_and_a_bad_one_is_named() -> None:
    known = registry.entries({"OBSERVER_BACKENDS": "tests.registry_example.plugin:ENTRY"})
    assert set(known) == {"embedded", "opensearch", "prometheus", "datadog", "http", "example"}
    with pytest.raises(ValueError, match="OBSERVER_BACKENDS: cannot load backend 'no.such:ENTRY'"):
        registry.entries({"OBSERVER_BACKENDS": "no.such:ENTRY"})
    with pytest.raises(ValueError, match="is not a BackendEntry"):
        registry.entries({"OBSERVER_BACKENDS": "adapters.registry:SIGNALS"})


async def test_an_extra_logs_backend_takes_only_the_logs_and_the_name_registry_learns_their_names(
    tmp_path: Path,
) -> None:
    from tests.registry_example.plugin import ENTRY

    context = registry.Context("serve")
    embedded = registry.entries({})["embedded"]
    plane = await registry.build_plane(
        context, [(embedded, embedded.settings(data_dir=tmp_path / "data")), (ENTRY, ENTRY.settings(enabled=True))]
    )
    try:
        assert signals(plane) == {"example": {"logs"}, "embedded": {"events", "spans", "metrics", "audit"}}
        record = LogRecord(1, "hello", identity("cart"))
        assert (await plane.sink().write(batch_id="b1", logs=[record])).outcome == "delivered"
        assert plane.backends[1].roles.logs.lines[0][2] is record  # type: ignore[union-attr]
        names = plane.served("names")
        assert await names.resolve("acme", "shop", "cart", "prod") == (
            record.identity.project_uid,
            record.identity.component_uid,
            record.identity.environment_uid,
        )
    finally:
        await plane.close()


def test_a_fanned_out_write_answers_the_worst_of_its_parts() -> None:
    combine = registry.combine
    assert combine([WriteResult.delivered(), WriteResult.delivered(2, "x")]) == WriteResult.delivered(2, "x")
    assert combine([WriteResult.dropped("bad", 3), WriteResult.delivered()]).outcome == "dropped"
    retry = combine([WriteResult.dropped("bad", 3), WriteResult.retry(2.0, "down"), WriteResult.retry(5.0)])
    assert (retry.outcome, retry.retry_after_s, retry.reason) == ("retry", 5.0, "down")


async def test_the_collector_gets_one_destination_per_backend_or_says_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OBSERVER_BACKENDS", "tests.registry_example.plugin:ENTRY")
    async with AsyncExitStack() as stack:
        only = await build_destinations(ExporterConfig.model_validate({"data_dir": tmp_path / "a"}), stack)
        assert [(each.name, set(each.signals)) for each in only] == [
            ("embedded", {"logs", "events", "spans", "metrics", "audit"})
        ]
        with pytest.raises(ConfigError, match="for metrics"):
            await build_destinations(ExporterConfig(backends={"example": {"enabled": True}}), stack)
