"""Alert rules as Datadog monitors, against the local Datadog (devservers/datadog), which checks monitor bodies
with the official client's models and parses their queries as Datadog's grammar says: the target creates,
rewrites and deletes idempotently, reports what is really there (edits and deletions behind our back show),
leaves other owners' monitors alone, and the reconciler drives it to Ready with the monitor id on the status,
a second pass writing nothing."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from datadog_api_client import Configuration
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.datadog.monitors import (
    DatadogMonitorTarget,
    MonitorSyncError,
    monitor_body,
    open_target,
    webhook_payload_template,
)
from alert_rules.reconciler import Reconciler
from devservers.local import serving
from domain.alerting import AlertRule, rule_from_resource
from domain.model import ComponentScope
from observer.alerting.db import open_engine
from observer.alerting.resources import ResourceStore

pytestmark = pytest.mark.integration

SCOPE = {
    "openchoreo.dev/project-uid": "6f1c1f0e-0000-4000-8000-000000000001",
    "openchoreo.dev/component-uid": "6f1c1f0e-0000-4000-8000-000000000002",
    "openchoreo.dev/environment-uid": "6f1c1f0e-0000-4000-8000-000000000003",
}
OPS_CHANNEL = {
    "kind": "ObservabilityAlertsNotificationChannel",
    "metadata": {"name": "ops", "namespace": "ops"},
    "spec": {"environment": "prod", "type": "webhook", "webhookConfig": {"url": "http://127.0.0.1:9/"}},
}


def make_rule(
    name: str,
    namespace: str = "team-a",
    *,
    source: dict[str, Any] | None = None,
    threshold: float = 80,
    enabled: bool = True,
    incident: bool = False,
) -> AlertRule:
    return rule_from_resource(
        {
            "metadata": {"name": name, "namespace": namespace, "labels": {**SCOPE, "openchoreo.dev/namespace": "acme"}},
            "spec": {
                "name": name,
                "enabled": enabled,
                "source": source or {"type": "metric", "metric": "cpu_usage"},
                "condition": {"window": "5m", "interval": "1m", "operator": "gt", "threshold": threshold},
                "actions": {"notifications": {"channels": ["ops"]}, "incident": {"enabled": incident}},
            },
        }
    )


def log_rule(name: str, phrase: str = 'payment "failed"', **kwargs: Any) -> AlertRule:
    return make_rule(name, source={"type": "log", "query": phrase}, **kwargs)


@pytest.fixture
async def target(datadog_fake) -> AsyncIterator[DatadogMonitorTarget]:  # noqa: F811
    owner = f"test-{uuid.uuid4().hex[:8]}"
    monitors = DatadogMonitorTarget.connect(datadog_fake.url, datadog_fake.api_key, datadog_fake.app_key, owner=owner)
    yield monitors
    await monitors.close()


@pytest.fixture
async def api(datadog_fake) -> AsyncIterator[httpx.AsyncClient]:  # noqa: F811
    """Someone else's hands on the same organisation (edits behind the target's back)."""
    headers = {"DD-API-KEY": datadog_fake.api_key, "DD-APPLICATION-KEY": datadog_fake.app_key}
    async with httpx.AsyncClient(base_url=datadog_fake.url, headers=headers, timeout=10) as client:
        yield client


async def test_create_list_rewrite_and_delete_are_idempotent(target: DatadogMonitorTarget, api) -> None:
    metric, logs = make_rule("cpu-high"), log_rule("payments-failing")
    assert await target.list_managed() == {}
    metric_id, log_id = await target.upsert(metric), await target.upsert(logs)

    held = await target.list_managed()
    assert set(held) == {"team-a/cpu-high", "team-a/payments-failing"}
    assert held["team-a/cpu-high"].backend_id == metric_id and held["team-a/payments-failing"].backend_id == log_id
    for rule in (metric, logs):
        entry = held[f"{rule.namespace}/{rule.name}"]
        assert entry.content_hash == target.content_hash(rule) and not entry.drifted

    stored = (await api.get(f"/api/v1/monitor/{log_id}")).json()
    assert stored["type"] == "log alert" and stored["query"] == monitor_body(logs, target.owner)["query"]

    assert await target.upsert(metric) == metric_id  # a rewrite keeps the monitor
    raised = make_rule("cpu-high", threshold=95)
    assert await target.upsert(raised) == metric_id
    held = await target.list_managed()
    assert held["team-a/cpu-high"].content_hash == target.content_hash(raised) != target.content_hash(metric)
    assert len(held) == 2

    await target.delete("team-a/cpu-high")
    await target.delete("team-a/cpu-high")  # missing is not an error
    assert set(await target.list_managed()) == {"team-a/payments-failing"}
    assert (await api.get(f"/api/v1/monitor/{metric_id}")).status_code == 404


async def test_edits_and_deletions_behind_our_back_show_and_are_repaired(target: DatadogMonitorTarget, api) -> None:
    rule = make_rule("mem-high", source={"type": "metric", "metric": "memory_usage"})
    monitor_id = await target.upsert(rule)
    wanted = target.content_hash(rule)

    edited = monitor_body(make_rule("mem-high", threshold=50), target.owner)
    assert (
        await api.put(f"/api/v1/monitor/{monitor_id}", json={"query": edited["query"], "options": edited["options"]})
    ).status_code == 200
    assert (await target.list_managed())["team-a/mem-high"].content_hash != wanted
    assert await target.upsert(rule) == monitor_id
    assert (await target.list_managed())["team-a/mem-high"].content_hash == wanted

    assert (await api.put(f"/api/v1/monitor/{monitor_id}", json={"message": "muted by someone"})).status_code == 200
    assert (await target.list_managed())["team-a/mem-high"].content_hash != wanted

    assert (await api.delete(f"/api/v1/monitor/{monitor_id}")).status_code == 200
    recreated = await target.upsert(rule)  # the id it remembered is gone: created again
    assert recreated != monitor_id
    assert (await target.list_managed())["team-a/mem-high"].backend_id == recreated


async def test_other_owners_monitors_are_invisible_and_untouched(datadog_fake, target, api) -> None:  # noqa: F811
    other = DatadogMonitorTarget.connect(datadog_fake.url, datadog_fake.api_key, datadog_fake.app_key, owner="other")
    try:
        theirs = await other.upsert(make_rule("cpu-high"))
        assert await target.list_managed() == {}
        await target.upsert(make_rule("cpu-high"))
        assert set(await other.list_managed()) == {"team-a/cpu-high"}
        assert (await other.list_managed())["team-a/cpu-high"].backend_id == theirs
    finally:
        await other.close()
    untagged = {"name": "hand-made", "type": "query alert", "query": "avg(last_5m):sum:x{*} > 1"}
    assert (await api.post("/api/v1/monitor", json=untagged)).status_code == 200
    assert set(await target.list_managed()) == {"team-a/cpu-high"}


async def test_refusals_and_wrong_keys_are_sync_errors_without_the_keys(datadog_fake) -> None:  # noqa: F811
    wrong = DatadogMonitorTarget.connect(datadog_fake.url, "not-the-key", "not-the-app-key", owner="x")
    try:
        with pytest.raises(MonitorSyncError) as caught:
            await wrong.list_managed()
        assert "403" in str(caught.value) and "not-the-key" not in str(caught.value)
    finally:
        await wrong.close()
    unreachable = DatadogMonitorTarget.connect("http://127.0.0.1:9", "k", "a")
    try:
        with pytest.raises(MonitorSyncError, match="unreachable"):
            await unreachable.list_managed()
    finally:
        await unreachable.close()


async def test_the_reconciler_drives_monitors_to_ready_and_a_second_pass_writes_nothing(
    tmp_path: Path, target: DatadogMonitorTarget, api
) -> None:
    store = ResourceStore(open_engine(str(tmp_path / "alerts.db")))
    await store.put_channel(OPS_CHANNEL)
    await store.put_rule(make_rule("cpu-high"))
    await store.put_rule(log_rule("oom", phrase="out of memory"))
    reconciler = Reconciler(store, [target])

    results = await reconciler.reconcile()
    assert sorted((r.logical_id, r.action, r.ok) for r in results) == [
        ("team-a/cpu-high", "created", True),
        ("team-a/oom", "created", True),
    ]
    held = await target.list_managed()
    stored = await store.get_rule("team-a", "cpu-high")
    assert stored.status.phase == "Ready" and stored.status.backend_monitor_id == held["team-a/cpu-high"].backend_id

    counters = reconciler.counters
    before = (counters.created, counters.updated, counters.deleted, counters.status_writes)
    assert {r.action for r in await reconciler.reconcile()} == {"unchanged"}
    assert (counters.created, counters.updated, counters.deleted, counters.status_writes) == before

    # drift: an edit behind our back is restored by the next pass
    monitor_id = held["team-a/oom"].backend_id
    assert (await api.put(f"/api/v1/monitor/{monitor_id}", json={"name": "renamed"})).status_code == 200
    await reconciler.reconcile()
    assert (await api.get(f"/api/v1/monitor/{monitor_id}")).json()["name"] == "[OpenChoreo] team-a/oom"

    # disabled: the monitor goes; enabled again: it comes back; deleted: gone for good
    await store.put_rule(make_rule("cpu-high", enabled=False))
    await reconciler.reconcile()
    assert set(await target.list_managed()) == {"team-a/oom"}
    await store.put_rule(make_rule("cpu-high"))
    await reconciler.reconcile()
    assert set(await target.list_managed()) == {"team-a/cpu-high", "team-a/oom"}
    await store.delete_rule("team-a", "oom")
    await reconciler.reconcile()
    assert set(await target.list_managed()) == {"team-a/cpu-high"}


# ================================================================================================ the webhook entry
# The shared fake has no Webhooks integration yet, so this file serves the three routes ensure_webhook calls,
# checking bodies with the official client's models as the fake does, and keeping what it was sent.


def webhooks_integration_app(held: dict[str, Any], calls: list[str]) -> Starlette:
    from datadog_api_client.model_utils import validate_and_convert_types
    from datadog_api_client.v1.model.webhooks_integration import WebhooksIntegration
    from datadog_api_client.v1.model.webhooks_integration_custom_variable import WebhooksIntegrationCustomVariable
    from datadog_api_client.v1.model.webhooks_integration_custom_variable_update_request import (
        WebhooksIntegrationCustomVariableUpdateRequest,
    )
    from datadog_api_client.v1.model.webhooks_integration_update_request import WebhooksIntegrationUpdateRequest

    def checked(body: dict[str, Any], model: type) -> dict[str, Any]:
        validate_and_convert_types(body, (model,), ["body"], True, True, Configuration())
        return body

    async def route(request: Request) -> Response:
        calls.append(f"{request.method} {request.url.path}")
        if request.headers.get("dd-api-key") != "k" or request.headers.get("dd-application-key") != "a":
            return JSONResponse({"errors": ["Forbidden"]}, status_code=403)
        kind, name = request.path_params["kind"], request.path_params.get("name")
        store = held.setdefault(kind, {})
        try:
            body = await request.json() if request.method in ("POST", "PUT") else {}
            if request.method == "GET":
                return JSONResponse(store[name]) if name in store else JSONResponse({"errors": ["Not found"]}, 404)
            if request.method == "POST":
                checked(body, WebhooksIntegration if kind == "webhooks" else WebhooksIntegrationCustomVariable)
                store[body["name"]] = body
                return JSONResponse(body)
            if name not in store:
                return JSONResponse({"errors": ["Not found"]}, status_code=404)
            checked(
                body,
                WebhooksIntegrationUpdateRequest
                if kind == "webhooks"
                else WebhooksIntegrationCustomVariableUpdateRequest,
            )
            store[name] = {**store[name], **body}
            return JSONResponse(store[name])
        except Exception as exc:  # a body the client's models refuse: Datadog's 400
            return JSONResponse({"errors": [str(exc)[:200]]}, status_code=400)

    base = "/api/v1/integration/webhooks/configuration/{kind}"
    return Starlette(
        routes=[
            Route(base, route, methods=["POST"]),
            Route(base + "/{name}", route, methods=["GET", "PUT"]),
        ]
    )


async def test_the_webhook_entry_is_created_once_and_repaired_when_it_differs() -> None:
    held: dict[str, Any] = {}
    calls: list[str] = []
    with serving(webhooks_integration_app(held, calls)) as url:
        observer = "https://observer.example:8081/api/v1alpha1/alerts/webhook"
        with pytest.raises(MonitorSyncError, match="403"):
            await open_target(url, "wrong", "keys", observer)
        target = await open_target(url, "k", "a", observer, "t" * 32)  # what the plugin's rule_target does
        try:
            entry = held["webhooks"]["openchoreo-observer"]
            assert entry["url"] == observer and entry["encode_as"] == "json"
            assert json.loads(entry["payload"])["alert_transition"] == "$ALERT_TRANSITION"
            assert json.loads(entry["custom_headers"]) == {"Authorization": "Bearer $OPENCHOREO_OBSERVER_TOKEN"}
            assert held["custom-variables"]["OPENCHOREO_OBSERVER_TOKEN"] == {
                "name": "OPENCHOREO_OBSERVER_TOKEN",
                "value": "t" * 32,
                "is_secret": True,
            }
            assert "t" * 32 not in json.dumps(entry)

            calls.clear()
            await target.ensure_webhook(observer, token="t" * 32)  # unchanged: only the secret is rewritten
            assert [c for c in calls if c.startswith(("POST", "PUT")) and "configuration/webhooks" in c] == []

            held["webhooks"]["openchoreo-observer"]["url"] = "https://elsewhere.example/"
            await target.ensure_webhook(observer, token="t" * 32)
            assert held["webhooks"]["openchoreo-observer"]["url"] == observer

            await target.ensure_webhook(observer)  # the token was unset: the header goes
            assert held["webhooks"]["openchoreo-observer"]["custom_headers"] == ""
        finally:
            await target.close()


# ================================================================================================ a firing comes back


def rendered(template: str, monitor: dict[str, Any], transition: str, value: str, event_id: str) -> dict[str, Any]:
    """The payload Datadog posts for `monitor`: the entry's template with each `$VARIABLE` substituted as the
    Webhooks integration documents them (`$TAGS` the monitor's tags, comma-separated; `$TEXT_ONLY_MSG` the
    message with its template variables rendered)."""
    values = {
        "$ALERT_TITLE": f"[{transition}] {monitor['name']}",
        "$TEXT_ONLY_MSG": monitor["message"].replace("{{value}}", value),
        "$ALERT_ID": str(monitor["id"]),
        "$ALERT_CYCLE_KEY": "4242",
        "$AGGREG_KEY": "agg",
        "$ALERT_TRANSITION": transition,
        "$ALERT_TYPE": "error" if "Trigger" in transition else "success",
        "$ALERT_PRIORITY": "normal",
        "$ALERT_SCOPE": "",
        "$ALERT_METRIC": "logs",
        "$EVENT_TYPE": "log_alert_monitor",
        "$ID": event_id,
        "$HOSTNAME": "",
        "$LINK": "https://app.datadoghq.com/monitors/1",
        "$TAGS": ",".join(monitor["tags"]),
        "$DATE_POSIX": "1767225600",
    }
    doc = json.loads(template)
    return {key: values.get(raw, raw) for key, raw in doc.items()}


async def test_a_datadog_webhook_for_a_monitor_reaches_an_alert_an_incident_and_a_notification(
    tmp_path: Path, target: DatadogMonitorTarget, api
) -> None:
    from access.model import AllowAll
    from adapters.embedded.backend import EmbeddedBackend
    from devservers.receivers import WebhookReceiver
    from observer.alerting.entries import EntriesQuery, EntryStore
    from observer.alerting.outbox import notification_status
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
    internal = httpx.AsyncClient(transport=httpx.ASGITransport(create_internal_app(alerting)), base_url="http://i")
    try:
        async with WebhookReceiver() as hook:
            rule = log_rule("oom", phrase="out of memory", incident=True)
            channel = {**OPS_CHANNEL, "metadata": {"name": "ops", "namespace": "team-a"}}
            channel["spec"] = {**OPS_CHANNEL["spec"], "webhookConfig": {"url": hook.url}}
            await alerting.resources.apply([channel])
            await alerting.resources.put_rule(rule)
            monitor_id = await target.upsert(rule)
            monitor = (await api.get(f"/api/v1/monitor/{monitor_id}")).json()

            template = webhook_payload_template()
            fired = rendered(template, monitor, "Triggered", "17", "900001")
            first = await internal.post("/api/v1alpha1/alerts/webhook", json=fired)
            assert first.status_code == 200 and "alertID" in first.json()["message"], first.text
            again = await internal.post("/api/v1alpha1/alerts/webhook", json=fired)  # Datadog's retry
            assert again.json() == first.json()
            recovered = rendered(template, monitor, "Recovered", "0", "900002")
            quiet = await internal.post("/api/v1alpha1/alerts/webhook", json=recovered)
            assert quiet.status_code == 200 and quiet.json()["message"] == "no firing alerts in the payload"

            for _ in range(200):
                if hook.requests:
                    break
                await asyncio.sleep(0.05)
            [request] = hook.requests
            payload = request.json()
            assert (payload["alertName"], payload["alertValue"]) == ("oom", "17")
            alert_id = first.json()["message"].rsplit(" ", 1)[1]
            [status] = notification_status(alerting.resources.engine, alert_id)
            assert status.state == "delivered"
            everything = EntriesQuery(ComponentScope("acme"), 0, 2**62, 10)
            [incident], total = await EntryStore(alerting.resources.engine).query_incidents(everything)
            assert total == 1 and incident["alertId"] == alert_id and incident["status"] == "active"
    finally:
        for task in tasks:
            task.cancel()
        await internal.aclose()
        await alerting.close()
        backend.close()
