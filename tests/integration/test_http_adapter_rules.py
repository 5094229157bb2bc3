"""Alert rules through OpenChoreo adapters' rule endpoints (adapters/http/rules.py) against the strict adapter,
driven by our reconciler; and a firing the adapter posts to our internal webhook, as it posts to OpenChoreo's,
reaching an alert and an incident."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters import registry
from adapters.registry import RuleTargetContext
from adapters.rule_targets import UnsupportedRule
from alert_rules.reconciler import Reconciler
from devservers.local import serving
from devservers.strict_adapter import BUDGET_501, StrictState, strict_adapter_app
from domain.alerting import AlertRule, rule_from_resource
from domain.model import ComponentScope
from observer.alerting.db import open_engine
from observer.alerting.resources import ResourceStore

SCOPE = {
    "openchoreo.dev/project-uid": "6f1c1f0e-0000-4000-8000-000000000001",
    "openchoreo.dev/component-uid": "6f1c1f0e-0000-4000-8000-000000000002",
    "openchoreo.dev/environment-uid": "6f1c1f0e-0000-4000-8000-000000000003",
}
OPS_CHANNEL = {
    "kind": "ObservabilityAlertsNotificationChannel",
    "metadata": {"name": "ops", "namespace": "team-a"},
    "spec": {"environment": "prod", "type": "webhook", "webhookConfig": {"url": "http://127.0.0.1:9/"}},
}


def make_rule(name: str, source: dict[str, Any], threshold: float = 80, incident: bool = False) -> AlertRule:
    return rule_from_resource(
        {
            "metadata": {"name": name, "namespace": "team-a", "labels": {**SCOPE, "openchoreo.dev/namespace": "acme"}},
            "spec": {
                "name": name,
                "source": source,
                "condition": {"window": "5m", "interval": "1m", "operator": "gt", "threshold": threshold},
                "actions": {"notifications": {"channels": ["ops"]}, "incident": {"enabled": incident}},
            },
        }
    )


def cpu_rule(name: str = "cpu-high", **kwargs: Any) -> AlertRule:
    return make_rule(name, {"type": "metric", "metric": "cpu_usage"}, **kwargs)


def log_rule(name: str = "oom", **kwargs: Any) -> AlertRule:
    return make_rule(name, {"type": "log", "query": "out of memory"}, **kwargs)


@pytest.fixture
def strict() -> Iterator[dict[str, tuple[StrictState, str]]]:
    logs, metrics = StrictState(), StrictState()
    with serving(strict_adapter_app("logs", logs)) as logs_url, serving(strict_adapter_app("metrics", metrics)) as url:
        yield {"logs": (logs, logs_url), "metrics": (metrics, url)}


@pytest.fixture
async def target(strict: dict[str, tuple[StrictState, str]]) -> AsyncIterator[Any]:
    entry = registry.entries()["http"]
    backend = entry.create(
        entry.settings(logs_url=strict["logs"][1], metrics_url=strict["metrics"][1]), registry.Context("serve")
    )
    assert backend.roles.rule_target is not None
    yield await backend.roles.rule_target(
        RuleTargetContext("http://observer-internal:8081/api/v1alpha1/alerts/webhook")
    )
    await backend.close()


async def test_each_rule_goes_to_the_adapter_of_its_kind(target, strict):
    assert await target.upsert(cpu_rule()) == "backend-cpu-high"
    assert await target.upsert(log_rule()) == "backend-oom"
    logs, metrics = strict["logs"][0], strict["metrics"][0]
    assert set(logs.rules) == {"oom"} and set(metrics.rules) == {"cpu-high"}
    sent = logs.requests[-1][1]
    assert sent["metadata"] == {
        "name": "oom",
        "namespace": "team-a",
        "projectUid": SCOPE["openchoreo.dev/project-uid"],
        "environmentUid": SCOPE["openchoreo.dev/environment-uid"],
        "componentUid": SCOPE["openchoreo.dev/component-uid"],
    }
    assert sent["source"] == {"query": "out of memory"}
    assert sent["condition"] == {
        "enabled": True,
        "window": "5m0s",
        "interval": "1m0s",
        "operator": "gt",
        "threshold": 80,
    }
    assert metrics.requests[-1][1]["source"] == {"metric": "cpu_usage"}


async def test_create_list_rewrite_and_delete_are_idempotent(target, strict):
    rule = cpu_rule()
    await target.upsert(rule)
    held = await target.list_managed()
    # the adapter writes durations back as "300s": compared by meaning, the rule is unchanged
    assert strict["metrics"][0].rules["cpu-high"]["condition"]["window"] == "300s"
    assert held["team-a/cpu-high"].content_hash == target.content_hash(rule)
    await target.upsert(rule)  # exists: 409 -> PUT
    assert [path for path, _ in strict["metrics"][0].requests].count("/api/v1alpha1/alerts/rules/cpu-high") == 1
    changed = cpu_rule(threshold=95)
    assert target.content_hash(changed) != target.content_hash(rule)
    await target.upsert(changed)
    assert strict["metrics"][0].rules["cpu-high"]["condition"]["threshold"] == 95
    await target.delete("team-a/cpu-high")
    await target.delete("team-a/cpu-high")  # missing: done already
    assert await target.list_managed() == {} and strict["metrics"][0].rules == {}


async def test_a_rule_the_adapter_cannot_keep_is_unsupported(target):
    """A 501 (GCP metrics adapter on a budget rule) is UnsupportedRule with the adapter's code."""
    with pytest.raises(UnsupportedRule, match=BUDGET_501):
        await target.upsert(make_rule("spend", {"type": "budget"}))


async def test_the_reconciler_drives_rules_through_the_adapters(tmp_path: Path, target, strict):
    store = ResourceStore(open_engine(str(tmp_path / "alerts.db")))
    await store.put_channel(OPS_CHANNEL)
    await store.put_rule(cpu_rule())
    await store.put_rule(log_rule())
    reconciler = Reconciler(store, [target])
    results = await reconciler.reconcile()
    assert sorted((r.logical_id, r.action, r.ok) for r in results) == [
        ("team-a/cpu-high", "created", True),
        ("team-a/oom", "created", True),
    ]
    stored = await store.get_rule("team-a", "cpu-high")
    assert stored.status.phase == "Ready" and stored.status.backend_monitor_id == "backend-cpu-high"
    assert {r.action for r in await reconciler.reconcile()} == {"unchanged"}
    # drift: an edit in the backend behind our back is put back by the next pass
    strict["logs"][0].rules["oom"]["condition"]["threshold"] = 1
    await reconciler.reconcile()
    assert strict["logs"][0].rules["oom"]["condition"]["threshold"] == 80
    # removed behind our back: recreated
    del strict["metrics"][0].rules["cpu-high"]
    await reconciler.reconcile()
    assert "cpu-high" in strict["metrics"][0].rules
    await store.delete_rule("team-a", "oom")
    await reconciler.reconcile()
    assert strict["logs"][0].rules == {} and set(await target.list_managed()) == {"team-a/cpu-high"}


async def test_a_firing_the_adapter_posts_reaches_an_alert_and_an_incident(tmp_path: Path, target, strict):
    import httpx

    from access.model import AllowAll
    from adapters.embedded.backend import EmbeddedBackend
    from observer.alerting.entries import EntriesQuery, EntryStore
    from observer.alerting.plane import build_alerting
    from observer.app import create_internal_app

    backend = EmbeddedBackend(tmp_path / "data")
    alerting = build_alerting(
        dsn=str(tmp_path / "alerts.db"),
        suppression_window="1h",
        resolver=backend.registry,
        authorizer=AllowAll(),
        logs=backend,
        metrics=backend,
    )
    tasks = alerting.tasks()
    try:
        rule = log_rule(incident=True)
        await alerting.resources.apply([OPS_CHANNEL])
        await alerting.resources.put_rule(rule)
        await target.upsert(rule)
        with serving(create_internal_app(alerting)) as internal:
            logs = strict["logs"][0]
            logs.observer_url = internal
            async with httpx.AsyncClient(timeout=10) as client:
                # the backend's own alert, to the adapter's webhook; the adapter forwards it to our internal port
                answer = await client.post(
                    strict["logs"][1] + "/api/v1alpha1/alerts/webhook", json={"rule": "oom", "value": 17}
                )
            assert answer.status_code == 200, answer.text
            assert logs.forwarded == [{"ruleName": "oom", "ruleNamespace": "team-a", "alertValue": 17}]
        # the webhook answers 200 only once the alert and its incident are committed (so the adapter's did too)
        everything = EntriesQuery(ComponentScope("acme"), 0, 2**62, 10)
        [incident], total = await EntryStore(alerting.resources.engine).query_incidents(everything)
        assert total == 1 and incident["status"] == "active"
    finally:
        for task in tasks:
            task.cancel()
        await alerting.close()
        backend.close()
