"""Alert rules reconciled into real backends: rule files in the session's real Prometheus (loaded, restored after
drift, removed), alerts travelling Prometheus -> Alertmanager -> the observer's webhook, and our own evaluator
counting logs in a real embedded backend and a real OpenSearch.

Times never come from the wall clock where an assertion depends on them: the evaluator is driven with explicit
`now` values, and waits on live servers are bounded guards against a hang, not timing assertions.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from adapters.embedded.backend import EmbeddedBackend
from adapters.opensearch.backend import OpenSearchBackend
from adapters.opensearch.client import OpenSearchConfig
from adapters.opensearch.monitors import alerting_plugin_installed, logs_rule_target
from adapters.prometheus.backend import PrometheusBackend
from adapters.prometheus.client import PrometheusClient, PrometheusConfig
from adapters.prometheus.otel import OtelScheme
from adapters.prometheus.remote_write import RemoteWriter
from adapters.prometheus.rules import PrometheusRuleTarget, RuleSyncError, alertmanager_config, value_expr
from alert_rules.evaluator import RuleEvaluator, delivery_key
from alert_rules.reconciler import Reconciler, sync_response
from devservers.local import serving
from devservers.opensearch_layout import drop_layout, unique_layout
from devservers.sample import BASE_NS, COMPONENTS, ENVIRONMENTS, PROJECT_UID, identity
from domain import semconv
from domain.alerting import AlertFiring, AlertRule, rule_from_resource
from domain.model import ComponentScope, LogRecord, LogsQuery, MetricKind, MetricPoint, TimeRange
from observer.alerting.db import open_engine
from observer.alerting.payloads import firings_from
from observer.alerting.resources import ResourceStore

pytestmark = pytest.mark.integration

S = 1_000_000_000
MINUTE = 60 * S
#: An evaluation slot on a whole minute, with the sample data around it (never the wall clock).
T = (BASE_NS // MINUTE + 10) * MINUTE
DELAY_S = 5.0
CART_PROD = {
    "openchoreo.dev/project": "shop",
    "openchoreo.dev/project-uid": PROJECT_UID,
    "openchoreo.dev/component": "cart",
    "openchoreo.dev/component-uid": COMPONENTS["cart"],
    "openchoreo.dev/environment": "prod",
    "openchoreo.dev/environment-uid": ENVIRONMENTS["prod"],
}
NULL_ALERTMANAGER = 'route:\n  receiver: "null"\nreceivers:\n  - name: "null"\n'


def unique_namespace() -> str:
    return f"ns{uuid.uuid4().hex[:10]}"


def make_rule(
    name: str,
    namespace: str,
    *,
    scope_namespace: str | None = None,
    source: dict[str, Any] | None = None,
    operator: str = "gt",
    threshold: float = 80,
    window: str = "5m",
    interval: str = "1m",
    enabled: bool = True,
) -> AlertRule:
    labels = {**CART_PROD, "openchoreo.dev/namespace": scope_namespace or namespace}
    return rule_from_resource(
        {
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {
                "name": name,
                "enabled": enabled,
                "source": source or {"type": "metric", "metric": "cpu_usage"},
                "condition": {"window": window, "interval": interval, "operator": operator, "threshold": threshold},
                "actions": {"notifications": {"channels": ["ops"]}},
            },
        }
    )


def log_rule(name: str, namespace: str, phrase: str = "payment failed", **condition: Any) -> AlertRule:
    return make_rule(name, namespace, source={"type": "log", "query": phrase}, **condition)


OPS_CHANNEL = {
    "kind": "ObservabilityAlertsNotificationChannel",
    "metadata": {"name": "ops", "namespace": "ops"},
    "spec": {"environment": "prod", "type": "webhook", "webhookConfig": {"url": "http://127.0.0.1:9/"}},
}


@pytest.fixture
async def store(tmp_path: Path) -> ResourceStore:
    """The alert store, holding the "ops" channel every rule here names (a missing one would be reported)."""
    resources = ResourceStore(open_engine(str(tmp_path / "alerts.db")))
    await resources.put_channel(OPS_CHANNEL)
    return resources


async def prometheus_rules(url: str) -> dict[str, dict[str, Any]]:
    """The alerting rule groups Prometheus runs, by name."""
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        response = await http.get("/api/v1/rules", params={"type": "alert"})
    return {group["name"]: group for group in response.json()["data"]["groups"]}


@pytest.fixture
async def prometheus_target(prometheus_server) -> AsyncIterator[PrometheusRuleTarget]:
    """A target with an owner prefix of its own, so tests on the shared Prometheus never see each other's rules."""
    owner = f"test{uuid.uuid4().hex[:8]}--"
    target = PrometheusRuleTarget(prometheus_server.rules_dir, prometheus_server.url, OtelScheme(), owner=owner)
    yield target
    for path in prometheus_server.rules_dir.glob(f"{owner}*"):
        path.unlink()
    prometheus_server.reload()
    await target.close()


def snapshot(reconciler: Reconciler, target: PrometheusRuleTarget | None = None) -> tuple[int, ...]:
    c = reconciler.counters
    return (c.created, c.updated, c.deleted, c.status_writes, c.purged, target.reloads if target else 0)


# ================================================================================================ Prometheus


async def test_rule_is_applied_with_status_and_a_second_pass_writes_nothing(
    store, prometheus_target, prometheus_server
):
    namespace = unique_namespace()
    await store.put_rule(make_rule("cpu-high", namespace))
    reconciler = Reconciler(store, [prometheus_target])

    results = await reconciler.reconcile()
    assert [(r.logical_id, r.action, r.ok) for r in results] == [(f"{namespace}/cpu-high", "created", True)]
    group = (await prometheus_rules(prometheus_server.url))[f"{namespace}/cpu-high"]
    (loaded,) = group["rules"]
    assert group["interval"] == 60 and loaded["name"] == "cpu-high"
    assert loaded["labels"] == {
        "openchoreo_alert": "true",
        "openchoreo_rule_name": "cpu-high",
        "openchoreo_rule_namespace": namespace,
    }
    assert loaded["annotations"]["alert_value"] == "{{ $value }}"
    assert loaded["query"].endswith("> 80")

    stored = await store.get_rule(namespace, "cpu-high")
    path = prometheus_target.path_for(f"{namespace}/cpu-high")
    assert stored.status.phase == "Ready" and stored.status.observed_generation == 1
    assert stored.status.backend_monitor_id == path.name
    assert stored.status.last_sync_time and stored.status.last_reconcile_time
    synced, channels = stored.status.conditions
    assert (synced.type, synced.status, synced.reason) == ("Synced", "True", "SyncSucceeded")
    assert (channels.type, channels.status, channels.reason) == ("ChannelsReady", "True", "ChannelsFound")
    assert synced.message == f"Alert rule {namespace}/cpu-high created in backend"

    before, mtime = snapshot(reconciler, prometheus_target), path.stat().st_mtime_ns
    results = await reconciler.reconcile()
    assert [(r.action, r.ok, r.backend_id) for r in results] == [("unchanged", True, path.name)]
    assert snapshot(reconciler, prometheus_target) == before  # no file, no reload, no status write
    assert path.stat().st_mtime_ns == mtime
    assert (await store.get_rule(namespace, "cpu-high")).status == stored.status


async def test_drift_behind_our_back_is_repaired_on_the_next_pass(store, prometheus_target, prometheus_server):
    namespace = unique_namespace()
    rule_id = f"{namespace}/cpu-high"
    await store.put_rule(make_rule("cpu-high", namespace))
    reconciler = Reconciler(store, [prometheus_target])
    await reconciler.reconcile()
    path = prometheus_target.path_for(rule_id)
    wanted = path.read_text()

    # 1. The file deleted and Prometheus reloaded: the rule is gone everywhere, and comes back.
    path.unlink()
    prometheus_server.reload()
    assert rule_id not in await prometheus_rules(prometheus_server.url)
    assert [r.action for r in await reconciler.reconcile()] == ["created"]
    assert path.read_text() == wanted and rule_id in await prometheus_rules(prometheus_server.url)

    # 2. The file edited (threshold) and loaded: the content hash differs, our version is written back.
    path.write_text(wanted.replace("> 80", "> 99"))
    prometheus_server.reload()
    assert (await prometheus_rules(prometheus_server.url))[rule_id]["rules"][0]["query"].endswith("> 99")
    assert [r.action for r in await reconciler.reconcile()] == ["updated"]
    assert path.read_text() == wanted
    assert (await prometheus_rules(prometheus_server.url))[rule_id]["rules"][0]["query"].endswith("> 80")

    # 3. The file deleted without a reload: Prometheus still runs it, the file is restored.
    path.unlink()
    assert [r.action for r in await reconciler.reconcile()] == ["updated"]
    assert path.read_text() == wanted

    # 4. A correct file Prometheus has not loaded: reloaded (same content: a restore, not an update).
    path.unlink()
    prometheus_server.reload()
    path.write_text(wanted)
    restored = reconciler.counters.restored
    assert [r.action for r in await reconciler.reconcile()] == ["updated"]
    assert reconciler.counters.restored == restored + 1
    assert rule_id in await prometheus_rules(prometheus_server.url)

    # 5. A foreign file under our prefix (not a group we wrote) is removed.
    junk = path.with_name(f"{prometheus_target.owner}junk.yml")
    junk.write_text("groups: [")
    await reconciler.reconcile()
    assert not junk.exists() and path.read_text() == wanted

    before = snapshot(reconciler, prometheus_target)
    assert [r.action for r in await reconciler.reconcile()] == ["unchanged"]
    assert snapshot(reconciler, prometheus_target) == before


async def test_updated_rule_is_rewritten_and_deleted_rule_removed(store, prometheus_target, prometheus_server):
    namespace = unique_namespace()
    rule_id = f"{namespace}/mem-high"
    await store.put_rule(make_rule("mem-high", namespace, source={"type": "metric", "metric": "memory_usage"}))
    reconciler = Reconciler(store, [prometheus_target])
    await reconciler.reconcile()

    await store.put_rule(
        make_rule(
            "mem-high", namespace, source={"type": "metric", "metric": "memory_usage"}, operator="gte", threshold=95.5
        )
    )
    assert [r.action for r in await reconciler.reconcile()] == ["updated"]
    assert (await prometheus_rules(prometheus_server.url))[rule_id]["rules"][0]["query"].endswith(">= 95.5")
    status = (await store.get_rule(namespace, "mem-high")).status
    assert status.observed_generation == 2 and status.conditions[0].message.endswith("updated in backend")

    assert await store.delete_rule(namespace, "mem-high")
    results = await reconciler.reconcile()
    assert [(r.logical_id, r.action, r.ok) for r in results] == [(rule_id, "deleted", True)]
    assert rule_id not in await prometheus_rules(prometheus_server.url)
    assert not prometheus_target.path_for(rule_id).exists()
    assert await store.deleted_rules() == [] and await store.get_rule(namespace, "mem-high") is None


async def test_disabled_rules_leave_prometheus_and_budget_rules_fail_clearly(
    store, prometheus_target, prometheus_server
):
    namespace = unique_namespace()
    await store.put_rule(make_rule("cpu-high", namespace))
    await store.put_rule(make_rule("budget", namespace, source={"type": "budget"}, window="24h", interval="1h"))
    reconciler = Reconciler(store, [prometheus_target])
    await reconciler.reconcile()

    budget = (await store.get_rule(namespace, "budget")).status
    assert budget.phase == "Error" and budget.conditions[0].reason == "SyncFailed"
    assert "cost backend" in budget.conditions[0].message
    assert f"{namespace}/budget" not in await prometheus_rules(prometheus_server.url)

    await store.put_rule(make_rule("cpu-high", namespace, enabled=False))
    results = {r.name: r for r in await reconciler.reconcile()}
    assert (results["cpu-high"].action, results["cpu-high"].ok) == ("deleted", True)
    assert f"{namespace}/cpu-high" not in await prometheus_rules(prometheus_server.url)
    disabled = (await store.get_rule(namespace, "cpu-high")).status
    assert disabled.phase == "Ready" and "disabled" in disabled.conditions[0].message
    assert disabled.backend_monitor_id == "" and disabled.observed_generation == 2

    before = snapshot(reconciler, prometheus_target)
    await reconciler.reconcile()  # the budget failure is retried, but says nothing new: nothing is written
    assert snapshot(reconciler, prometheus_target) == before


class BrokenScheme:
    """Our own scheme producing PromQL Prometheus refuses: what a bug in a scheme would look like."""

    name = "broken"

    def family(self, family: str, scope: ComponentScope, step_ns: int) -> dict[str, str]:
        return {"cpuUsage": "sum(", "cpuLimits": "1", "memoryUsage": "sum(", "memoryLimits": "1"}

    def topology(self, query: Any) -> Any:
        raise NotImplementedError


async def test_a_refused_rule_file_is_rolled_back_and_reported(store, tmp_path, prometheus_target, prometheus_server):
    namespace = unique_namespace()
    good = make_rule("cpu-high", namespace)
    await store.put_rule(good)
    await Reconciler(store, [prometheus_target]).reconcile()

    # Owners must not be prefixes of one another (each treats unknown files under its prefix as its own junk).
    broken = PrometheusRuleTarget(
        prometheus_server.rules_dir, prometheus_server.url, BrokenScheme(), owner=f"broken{uuid.uuid4().hex[:8]}--"
    )
    other_store = ResourceStore(open_engine(str(tmp_path / "other.db")))
    await other_store.put_rule(make_rule("bad", namespace))
    try:
        with pytest.raises(RuleSyncError, match="refused"):
            await broken.upsert(make_rule("bad", namespace))
        (result,) = await Reconciler(other_store, [broken]).reconcile()
    finally:
        await broken.close()
    assert not result.ok and "refused" in result.message
    status = (await other_store.get_rule(namespace, "bad")).status
    assert status.phase == "Error" and status.conditions[0].reason == "SyncFailed"
    assert not broken.path_for(f"{namespace}/bad").exists()
    assert f"{namespace}/cpu-high" in await prometheus_rules(prometheus_server.url)  # the others keep running
    async with httpx.AsyncClient(base_url=prometheus_server.url, timeout=10) as http:
        runtime = (await http.get("/api/v1/status/runtimeinfo")).json()["data"]
    assert runtime["reloadConfigSuccess"] is True


def gauges(
    namespace: str, at_ns: int, usage: tuple[float, float], limit: float, metric: str = "cpu"
) -> list[MetricPoint]:
    """Two cart pods: usage (cores or bytes) per pod and a limit per container, for the 4 minutes up to at_ns."""
    usage_name = semconv.CPU_USAGE[0] if metric == "cpu" else semconv.MEMORY_USAGE[0]
    limit_name = semconv.CPU_LIMIT[0] if metric == "cpu" else semconv.MEMORY_LIMIT[0]
    points = []
    for step in range(17):
        ts = at_ns - 240 * S + step * 15 * S
        for pod, used in zip(("cart-prod-0", "cart-prod-1"), usage):
            who = identity("cart", "prod", pod, namespace)
            points.append(
                MetricPoint(usage_name, MetricKind.GAUGE, ts, who, value=used, unit=semconv.UNITS[usage_name])
            )
            points.append(
                MetricPoint(limit_name, MetricKind.GAUGE, ts, who, value=limit, unit=semconv.UNITS[limit_name])
            )
    return points


async def test_metric_expression_and_evaluator_agree_on_real_prometheus(prometheus_server):
    namespace = unique_namespace()
    at = _wall_ns() // S * S
    sink = PrometheusBackend(PrometheusConfig(prometheus_server.url), OtelScheme(), RemoteWriter(prometheus_server.url))
    await sink.write(batch_id="cpu", metrics=gauges(namespace, at, (0.3, 0.6), 0.5))
    await sink.close()
    rule = make_rule("cpu-high", namespace, window="2m")

    client = PrometheusClient(PrometheusConfig(prometheus_server.url))
    reader = PrometheusBackend(PrometheusConfig(prometheus_server.url), OtelScheme())
    try:
        ((_, value),) = await client.query(value_expr(rule, OtelScheme()), at)
        fired: list[AlertFiring] = []
        evaluator = RuleEvaluator(_collect(fired), metrics=reader)
        assert await evaluator.value_at(rule, at) == pytest.approx(90.0)
    finally:
        await client.close()
        await reader.close()
    assert value == pytest.approx(90.0)  # 100 * (0.3 + 0.6) / (0.5 + 0.5)


def _wall_ns() -> int:
    """Sample timestamps for a live Prometheus (it evaluates rules at its own, current time)."""
    return time.time_ns()


@pytest.fixture
def webhook_receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A local HTTP server standing in for the observer's internal webhook: it records what Alertmanager posts."""
    received: list[dict[str, Any]] = []
    app = FastAPI()

    @app.post("/api/v1alpha1/alerts/webhook")
    async def webhook(request: Request) -> dict[str, str]:
        received.append(await request.json())
        return {"status": "success"}

    with serving(app) as url:
        yield url, received


async def test_firing_rule_reaches_the_webhook_through_alertmanager(
    store, prometheus_target, prometheus_server, webhook_receiver
):
    url, received = webhook_receiver
    prometheus_server.configure_alertmanager(
        alertmanager_config(f"{url}/api/v1alpha1/alerts/webhook", group_wait="1s", group_interval="1s")
    )
    namespace = unique_namespace()
    name = "cpu-{{hot}}"  # template syntax in a label value: Prometheus must hand it on literally
    await store.put_rule(make_rule(name, namespace, window="1m", interval="1m", threshold=50))
    sink = PrometheusBackend(PrometheusConfig(prometheus_server.url), OtelScheme(), RemoteWriter(prometheus_server.url))

    async def feed() -> None:  # live samples, so whenever Prometheus evaluates, the last minute has data
        while True:
            await sink.write(batch_id="", metrics=gauges(namespace, _wall_ns(), (0.3, 0.6), 0.5)[-4:])
            await asyncio.sleep(5)

    feeding = asyncio.create_task(feed())
    try:
        await Reconciler(store, [prometheus_target]).reconcile()
        # Prometheus evaluates a 1m group within a minute of loading it; the bound only guards against a hang.
        for _ in range(360):
            if received:
                break
            await asyncio.sleep(0.5)
    finally:
        feeding.cancel()
        await asyncio.gather(feeding, return_exceptions=True)
        await sink.close()
        prometheus_server.configure_alertmanager(NULL_ALERTMANAGER)
    assert received, "no notification reached the webhook"
    (firing, *_) = firings_from(received[0])
    assert (firing.rule_namespace, firing.rule_name) == (namespace, name)
    assert firing.value == pytest.approx(90.0)
    assert firing.delivery_key.startswith("alertmanager:")
    alert = received[0]["alerts"][0]
    assert alert["labels"]["openchoreo_rule_name"] == name and alert["labels"]["alertname"] == name


# ================================================================================================ evaluator


def _collect(into: list[AlertFiring]):
    async def fire(firing: AlertFiring) -> None:
        into.append(firing)

    return fire


def logs_for(namespace: str) -> list[LogRecord]:
    """13 matching lines in (T - 5m, T] of cart/prod, and lines that must not count."""
    cart = identity("cart", "prod", namespace=namespace)
    lines = [LogRecord(T - 4 * MINUTE + i * S, f"order {i}: payment failed", cart) for i in range(12)]
    lines.append(LogRecord(T, "payment failed at the edge", cart))  # the window's end is included
    lines.append(LogRecord(T - 5 * MINUTE, "payment failed, too early", cart))  # its start is not
    lines += [LogRecord(T - 6 * MINUTE + i * S, "payment failed", cart) for i in range(3)]  # before the window
    lines += [LogRecord(T - MINUTE, "payment failed", identity("cart", "dev", namespace=namespace))]  # other env
    lines += [LogRecord(T - MINUTE, "payment failed", identity("frontend", "prod", namespace=namespace))]
    lines += [LogRecord(T - MINUTE, "payment failed", identity("cart", "prod", namespace="elsewhere"))]
    lines += [LogRecord(T - MINUTE, "Payment Failed", cart), LogRecord(T - MINUTE, "payment ok", cart)]
    return lines


async def test_evaluator_fires_once_per_slot_on_the_embedded_backend(backend: EmbeddedBackend):
    await backend.write(batch_id="logs", logs=logs_for("acme"))
    fired: list[AlertFiring] = []
    evaluator = RuleEvaluator(_collect(fired), logs=backend, delay_s=DELAY_S)
    await evaluator.upsert(log_rule("payments", "acme", threshold=10))
    await evaluator.upsert(log_rule("quiet", "acme", threshold=20))  # never crossed

    # The first evaluation is of the latest slot whose time (plus the delay) has come: at T + 4 s that is T - 1m,
    # whose window (T - 6m, T - 1m] holds 15 matching lines.
    await evaluator.run_due(T + 4 * S)
    assert fired == [AlertFiring("acme", "payments", 15.0, T - MINUTE, delivery_key("acme", "payments", T - MINUTE))]
    fired.clear()
    results = await evaluator.run_due(T + 5 * S)
    assert sorted((r.rule_id, r.value, r.fired) for r in results) == [
        ("acme/payments", 13.0, True),
        ("acme/quiet", 13.0, False),
    ]
    assert fired == [AlertFiring("acme", "payments", 13.0, T, delivery_key("acme", "payments", T))]

    await evaluator.run_due(T + 30 * S)  # the same slot again: nothing
    assert len(fired) == 1

    restarted = RuleEvaluator(_collect(fired), logs=backend, delay_s=DELAY_S)
    await restarted.upsert(log_rule("payments", "acme", threshold=10))
    await restarted.run_due(T + 30 * S)  # a restart re-evaluates the slot: same key, so the intake dedups it
    assert fired[1].delivery_key == fired[0].delivery_key

    fired.clear()
    await evaluator.run_due(T + MINUTE + 5 * S)  # next slot: (T - 4m, T + 1m] loses the line at T - 4m
    assert fired == [AlertFiring("acme", "payments", 12.0, T + MINUTE, delivery_key("acme", "payments", T + MINUTE))]
    assert evaluator.counters.firings == 3 and evaluator.counters.failures == 0


async def test_evaluator_operators_and_empty_scopes(backend: EmbeddedBackend):
    await backend.write(batch_id="logs", logs=logs_for("acme"))
    fired: list[AlertFiring] = []
    evaluator = RuleEvaluator(_collect(fired), logs=backend, delay_s=DELAY_S)
    await evaluator.upsert(log_rule("heartbeat", "acme", phrase="heartbeat", operator="lt", threshold=1))
    await evaluator.upsert(log_rule("exact", "acme", operator="eq", threshold=13))
    await evaluator.upsert(log_rule("lte", "acme", operator="lte", threshold=12))
    await evaluator.run_due(T + 5 * S)
    assert sorted((f.rule_name, f.value) for f in fired) == [("exact", 13.0), ("heartbeat", 0.0)]


async def test_a_failed_fire_is_retried_for_the_same_slot(backend: EmbeddedBackend):
    await backend.write(batch_id="logs", logs=logs_for("acme"))
    delivered: list[AlertFiring] = []
    attempts = 0

    async def flaky(firing: AlertFiring) -> None:  # the intake answers 500 once
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise RuntimeError("webhook intake unavailable")
        delivered.append(firing)

    evaluator = RuleEvaluator(flaky, logs=backend, delay_s=DELAY_S, retry_s=15)
    await evaluator.upsert(log_rule("payments", "acme", threshold=10))
    assert await evaluator.run_due(T + 5 * S) == [] and evaluator.counters.failures == 1
    assert await evaluator.run_due(T + 19 * S) == []  # not before retry_s
    assert evaluator.next_due_ns(T + 19 * S) == T + 20 * S
    await evaluator.run_due(T + 20 * S)
    assert delivered == [AlertFiring("acme", "payments", 13.0, T, delivery_key("acme", "payments", T))]


async def test_evaluator_loop_runs_due_slots_and_wakes_for_new_rules(backend: EmbeddedBackend):
    await backend.write(batch_id="logs", logs=logs_for("acme"))
    fired: list[AlertFiring] = []
    evaluator = RuleEvaluator(_collect(fired), logs=backend, delay_s=DELAY_S, clock=lambda: T + 5 * S)
    running = asyncio.create_task(evaluator.run())
    try:
        await evaluator.upsert(log_rule("payments", "acme", threshold=10))
        for _ in range(200):  # the next slot is a (fixed-clock) minute away: only the upsert can wake the loop
            if fired:
                break
            await asyncio.sleep(0.05)
        assert evaluator.next_due_ns(T + 5 * S) == T + MINUTE + 5 * S
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    assert [(f.rule_name, f.value, f.timestamp_ns) for f in fired] == [("payments", 13.0, T)]


async def test_metric_rules_on_the_embedded_backend(backend: EmbeddedBackend):
    await backend.write(
        batch_id="m", metrics=gauges("acme", T, (0.3, 0.6), 0.5) + gauges("acme", T, (1e8, 3e8), 5e8, metric="memory")
    )
    fired: list[AlertFiring] = []
    evaluator = RuleEvaluator(_collect(fired), logs=backend, metrics=backend, delay_s=DELAY_S)
    await evaluator.upsert(make_rule("cpu", "acme", window="2m", threshold=80))
    await evaluator.upsert(
        make_rule("mem", "acme", window="2m", threshold=50, source={"type": "metric", "metric": "memory_usage"})
    )
    await evaluator.upsert(
        make_rule("nolimits", "acme", scope_namespace="other", window="2m", operator="lt", threshold=1)
    )
    results = {r.rule_id: r for r in await evaluator.run_due(T + 5 * S)}
    assert results["acme/cpu"].value == pytest.approx(90.0)
    assert results["acme/mem"].value == pytest.approx(40.0)  # 100 * 4e8 / 1e9: not above 50
    assert results["acme/nolimits"].value is None  # no data is no value, not 0: never fires
    assert [(f.rule_name, round(f.value, 6)) for f in fired] == [("cpu", 90.0)]


async def test_count_logs_is_exact_beyond_the_capped_total(backend: EmbeddedBackend):
    cart = identity("cart", "prod", namespace="acme")
    await backend.write(
        batch_id="many",
        logs=[LogRecord(T - i * 10**6, f"req {i} payment failed", cart) for i in range(1500)]
        + [LogRecord(T - i * 10**6, "all fine", cart) for i in range(300)],
    )
    query = LogsQuery(
        ComponentScope("acme", PROJECT_UID, COMPONENTS["cart"], ENVIRONMENTS["prod"]),
        TimeRange(T - MINUTE, T),
        phrase="payment failed",
    )
    assert (await backend.query_logs(query)).total == 1000  # the API's total stops at the cap
    assert await backend.count_logs(query) == 1500  # unindexed: every line scanned
    while await backend.index_logs():
        pass
    assert await backend.count_logs(query) == 1500  # through the phrase index
    assert await backend.count_logs(LogsQuery(query.scope, query.range)) == 1800


# ================================================================================================ OpenSearch


@pytest.fixture
async def opensearch_logs(opensearch_url: str) -> AsyncIterator[OpenSearchBackend]:
    layout = unique_layout("alerts")
    backend = OpenSearchBackend(OpenSearchConfig(address=opensearch_url, layout=layout), {"refresh": True})
    await backend.install(retention_days=30)
    yield backend
    await drop_layout(backend.client, layout)
    await backend.close()


async def test_evaluator_on_real_opensearch(opensearch_logs: OpenSearchBackend):
    namespace = unique_namespace()
    await opensearch_logs.write(batch_id="a", logs=logs_for(namespace))
    cart = identity("cart", "prod", namespace=namespace)
    many = [LogRecord(T - 2 * MINUTE + i * 10**6, f"bulk {i} payment failed", cart) for i in range(1500)]
    await opensearch_logs.write(batch_id="b", logs=many)

    scope = ComponentScope(namespace, PROJECT_UID, COMPONENTS["cart"], ENVIRONMENTS["prod"])
    query = LogsQuery(scope, TimeRange(T - 5 * MINUTE + 1, T), phrase="payment failed")
    assert (await opensearch_logs.query_logs(query)).total == 1000
    assert await opensearch_logs.count_logs(query) == 1513

    fired: list[AlertFiring] = []
    evaluator = RuleEvaluator(_collect(fired), logs=opensearch_logs, delay_s=DELAY_S)
    await evaluator.upsert(log_rule("payments", namespace, threshold=1500))
    await evaluator.upsert(log_rule("quiet", namespace, threshold=2000))
    await evaluator.run_due(T + 5 * S)
    await evaluator.run_due(T + 10 * S)
    assert fired == [AlertFiring(namespace, "payments", 1513.0, T, delivery_key(namespace, "payments", T))]


async def test_without_the_alerting_plugin_log_rules_go_to_the_evaluator(opensearch_logs: OpenSearchBackend):
    # The integ-test distribution has no plugins: monitors cannot be tested against a real plugin here.
    assert await alerting_plugin_installed(opensearch_logs.client) is False
    evaluator = RuleEvaluator(_collect([]), logs=opensearch_logs)
    target = await logs_rule_target(
        opensearch_logs.client, evaluator, "http://observer:8081/api/v1alpha1/alerts/webhook"
    )
    assert target is evaluator


# ================================================================================================ reconciler


async def test_reconciler_places_rules_by_kind_and_answers_sync_responses(store, prometheus_target, backend):
    namespace = unique_namespace()
    evaluator = RuleEvaluator(_collect([]), logs=backend)
    reconciler = Reconciler(store, [prometheus_target, evaluator])
    await store.put_rule(make_rule("cpu-high", namespace))
    await store.put_rule(log_rule("payments", namespace))

    created = await reconciler.reconcile_one(namespace, "payments")
    response = sync_response(created)
    assert {k: response[k] for k in ("action", "status", "ruleLogicalId", "ruleBackendId")} == {
        "action": "created",
        "status": "synced",
        "ruleLogicalId": f"{namespace}/payments",
        "ruleBackendId": f"evaluator:{namespace}/payments",
    }
    assert response["lastSyncedAt"].endswith("Z")
    assert set(await evaluator.list_managed()) == {f"{namespace}/payments"}

    results = {r.name: r.action for r in await reconciler.reconcile()}
    assert results == {"cpu-high": "created", "payments": "unchanged"}
    assert f"{namespace}/cpu-high" in await prometheus_target.list_managed()
    assert (await reconciler.reconcile_one(namespace, "payments")).action == "unchanged"

    before = snapshot(reconciler, prometheus_target)
    await reconciler.reconcile()
    assert snapshot(reconciler, prometheus_target) == before

    # A log rule turned into a metric rule moves from the evaluator to Prometheus.
    await store.put_rule(make_rule("payments", namespace))
    moved = await reconciler.reconcile_one(namespace, "payments")
    assert (moved.action, moved.target) == ("created", "prometheus")
    assert await evaluator.list_managed() == {}

    assert await store.delete_rule(namespace, "payments")
    deleted = await reconciler.reconcile_one(namespace, "payments")
    assert sync_response(deleted)["action"] == "deleted" and deleted.ok
    assert f"{namespace}/payments" not in await prometheus_target.list_managed()
    assert await store.deleted_rules() == []
    with pytest.raises(LookupError):
        await reconciler.reconcile_one(namespace, "payments")


async def test_reconciler_run_loop_wakes_on_store_changes(store, backend):
    namespace = unique_namespace()
    evaluator = RuleEvaluator(_collect([]), logs=backend)
    reconciler = Reconciler(store, [evaluator], interval_s=3600)
    running = asyncio.create_task(reconciler.run())
    try:
        await store.put_rule(log_rule("payments", namespace))
        for _ in range(200):  # woken by the store, not by the hour-long interval
            if await evaluator.list_managed():
                break
            await asyncio.sleep(0.05)
        assert set(await evaluator.list_managed()) == {f"{namespace}/payments"}
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
