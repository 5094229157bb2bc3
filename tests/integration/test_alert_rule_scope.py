"""Alert rules say what they will do: a rule's scope is required (or explicitly namespace-wide), names in its scope
resolve to UIDs for the backends, the alerts and suppression, and a missing notification channel shows on the
rule's status until it is applied. Over a real embedded backend (its registry is the resolver) and a real SQLite
alert store, as a client drives them (rules apply, the webhook, the public queries)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest

from alert_rules.evaluator import RuleEvaluator
from alert_rules.reconciler import Reconciler
from devservers.receivers import WebhookReceiver
from domain.alerting import InvalidResource
from domain.timeutil import format_rfc3339, now_ns
from observer.alerting.outbox import notification_status
from observer.resolver_http import OpenChoreoResolver
from tests.integration.test_alert_api import COMPONENT, ENV, PROJECT, plane, rule_body  # noqa: F401 (the fixture)

NAMES = {
    "openchoreo.dev/namespace": "acme",
    "openchoreo.dev/project": "shop",
    "openchoreo.dev/component": "cart",
    "openchoreo.dev/environment": "prod",
}


def rule_doc(
    name: str = "cart-errors",
    labels: dict[str, str] | None = None,
    channels: tuple[str, ...] = ("ops",),
    incident: bool = True,
) -> dict[str, Any]:
    return {
        "kind": "ObservabilityAlertRule",
        "metadata": {"name": name, "namespace": "acme", "labels": NAMES if labels is None else labels},
        "spec": {
            "name": name,
            "severity": "critical",
            "source": {"type": "log", "query": "ERROR"},
            "condition": {"window": "5m", "interval": "1m", "operator": "gt", "threshold": 10},
            "actions": {"notifications": {"channels": list(channels)}, "incident": {"enabled": incident}},
        },
    }


def channel_doc(url: str, name: str = "ops") -> dict[str, Any]:
    return {
        "kind": "ObservabilityAlertsNotificationChannel",
        "metadata": {"name": name, "namespace": "acme"},
        "spec": {"environment": "prod", "type": "webhook", "webhookConfig": {"url": url}},
    }


async def fire(internal, name: str = "cart-errors", value: float = 13) -> str:
    response = await internal.post(
        "/api/v1alpha1/alerts/webhook", json={"ruleName": name, "ruleNamespace": "acme", "alertValue": value}
    )
    assert response.status_code == 200, response.text
    return response.json()["message"]


# ----------------------------------------------------------------------------------------------- scope required


async def test_a_rule_without_scope_labels_is_refused_naming_the_labels(plane):
    alerting, _, _ = plane
    with pytest.raises(InvalidResource, match="metadata.labels must scope the rule.*observer.openchoreo.dev/scope"):
        await alerting.resources.apply([rule_doc(labels={"openchoreo.dev/namespace": "acme"})])
    assert await alerting.resources.list_rules() == []


@pytest.mark.parametrize(
    "labels, message",
    [
        ({"observer.openchoreo.dev/scope": "cluster"}, "must be 'namespace'"),
        ({"observer.openchoreo.dev/scope": "namespace", "openchoreo.dev/project": "shop"}, "cannot be combined"),
        ({"openchoreo.dev/component": "cart"}, "openchoreo.dev/project is required"),
    ],
)
async def test_contradictory_or_unresolvable_scopes_are_refused(plane, labels, message):
    alerting, _, _ = plane
    with pytest.raises(InvalidResource, match=message):
        await alerting.resources.apply([rule_doc(labels=labels)])


async def test_namespace_wide_is_explicit_and_its_repeats_are_suppressed(plane):
    alerting, internal, public = plane
    wide = {"openchoreo.dev/namespace": "acme", "observer.openchoreo.dev/scope": "namespace"}
    await alerting.resources.apply([rule_doc("acme-errors", wide, incident=False), channel_doc("http://127.0.0.1:9/")])
    [result] = await alerting.reconciler.reconcile()
    assert result.ok and result.target == "evaluator"
    [plan] = (await alerting.evaluator.list_managed()).values()
    assert plan.logical_id == "acme/acme-errors"

    assert (await fire(internal, "acme-errors")).startswith("alert acknowledged")
    assert await fire(internal, "acme-errors") == "alert suppressed: duplicate within suppression window"


# ----------------------------------------------------------------------------------------------- names -> UIDs


async def test_a_rule_scoped_by_names_is_evaluated_on_its_component_only(plane):
    alerting, _, _ = plane
    await alerting.resources.apply([rule_doc(), channel_doc("http://127.0.0.1:9/")])
    [result] = await alerting.reconciler.reconcile()
    assert result.ok
    stored = await alerting.resources.get_rule("acme", "cart-errors")
    assert stored.component_uid == ""  # the stored rule keeps the names the user wrote
    # The evaluator holds (by its content hash over the scope it counts in) the rule with the names' UIDs.
    uids = {
        "openchoreo.dev/project-uid": PROJECT,
        "openchoreo.dev/component-uid": COMPONENT,
        "openchoreo.dev/environment-uid": ENV,
    }
    [held] = (await alerting.evaluator.list_managed()).values()
    assert held.content_hash == alerting.evaluator.content_hash(replace(stored, labels=dict(stored.labels) | uids))
    assert held.content_hash != alerting.evaluator.content_hash(stored)  # not the namespace-wide count


async def test_alerts_of_a_rule_scoped_by_names_carry_uids_and_are_found_by_component(plane):
    alerting, internal, public = plane
    await alerting.resources.apply([rule_doc(), channel_doc("http://127.0.0.1:9/")])
    message = await fire(internal)
    alert_id = message.rsplit(" ", 1)[1]

    scope = {"namespace": "acme", "project": "shop", "component": "cart", "environment": "prod"}
    day = _around_now()
    alerts = (await public.post("/api/v1alpha1/alerts/query", json=day | {"searchScope": scope})).json()
    assert [a["alertId"] for a in alerts["alerts"]] == [alert_id]
    labels = alerts["alerts"][0]["metadata"]["labels"]
    assert (labels["componentUid"], labels["projectUid"], labels["environmentUid"]) == (COMPONENT, PROJECT, ENV)
    incidents = (await public.post("/api/v1alpha1/incidents/query", json=day | {"searchScope": scope})).json()
    assert [i["alertId"] for i in incidents["incidents"]] == [alert_id]


async def test_repeats_of_a_rule_scoped_by_names_are_suppressed(plane):
    alerting, internal, public = plane
    async with WebhookReceiver() as hook:
        await alerting.resources.apply([rule_doc(), channel_doc(hook.url)])
        first = await fire(internal)
        second = await fire(internal, value=20)
        assert (
            first.startswith("alert acknowledged") and second == "alert suppressed: duplicate within suppression window"
        )
        for _ in range(200):
            if hook.requests:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        assert len(hook.requests) == 1
        assert hook.requests[0].json()["componentId"] == COMPONENT
    incidents = (
        await public.post("/api/v1alpha1/incidents/query", json=_around_now() | {"searchScope": {"namespace": "acme"}})
    ).json()
    assert incidents["total"] == 1
    assert [s.state for s in notification_status(alerting.resources.engine, first.rsplit(" ", 1)[1])] == ["delivered"]


async def test_a_scope_naming_what_does_not_exist_is_in_no_backend_and_says_so(plane):
    alerting, _, _ = plane
    labels = NAMES | {"openchoreo.dev/component": "no-such-component"}
    await alerting.resources.apply([rule_doc(labels=labels), channel_doc("http://127.0.0.1:9/")])
    [result] = await alerting.reconciler.reconcile()
    assert not result.ok and await alerting.evaluator.list_managed() == {}  # not namespace-wide instead
    status = (await alerting.resources.get_rule("acme", "cart-errors")).status
    synced = status.conditions[0]
    assert (status.phase, synced.status, synced.reason) == ("Error", "False", "ScopeNotFound")
    assert "no-such-component" in synced.message


# ----------------------------------------------------------------------------------------------- channels


async def test_a_missing_channel_shows_on_the_status_until_it_is_applied(plane):
    alerting, _, _ = plane
    lines = await alerting.resources.apply([rule_doc(channels=("ops", "pager"))])
    assert lines[0] == "observabilityalertrule/cart-errors created"
    assert 'warning: observabilityalertrule/cart-errors: notification channel "ops", "pager" not found' in lines[1]

    await alerting.reconciler.reconcile()
    status = (await alerting.resources.get_rule("acme", "cart-errors")).status
    synced, channels = status.conditions
    assert status.phase == "Error" and synced.reason == "SyncSucceeded"  # it runs: alerts are still recorded
    assert (channels.type, channels.status, channels.reason) == ("ChannelsReady", "False", "ChannelNotFound")
    assert '"ops", "pager"' in channels.message

    # Applied in any order: the channels arriving later clear the condition on the next pass.
    assert await alerting.resources.apply(
        [channel_doc("http://127.0.0.1:9/"), channel_doc("http://127.0.0.1:9/", "pager")]
    )
    await alerting.reconciler.reconcile()
    status = (await alerting.resources.get_rule("acme", "cart-errors")).status
    assert status.phase == "Ready"
    assert [(c.type, c.status, c.reason) for c in status.conditions] == [
        ("Synced", "True", "SyncSucceeded"),
        ("ChannelsReady", "True", "ChannelsFound"),
    ]
    writes = alerting.reconciler.counters.status_writes
    await alerting.reconciler.reconcile()
    assert alerting.reconciler.counters.status_writes == writes  # nothing new: no write


async def test_a_manifest_with_rule_and_channel_does_not_warn(plane):
    alerting, _, _ = plane
    lines = await alerting.resources.apply([rule_doc(), channel_doc("http://127.0.0.1:9/")])
    assert lines == [
        "observabilityalertrule/cart-errors created",
        "observabilityalertsnotificationchannel/ops configured",
    ]


async def test_the_background_reconciler_clears_the_condition_when_the_channel_appears(plane):
    alerting, _, _ = plane
    await alerting.resources.apply([rule_doc()])
    assert await _eventually(alerting, "ChannelNotFound")
    await alerting.resources.apply([channel_doc("http://127.0.0.1:9/")])
    assert await _eventually(alerting, "ChannelsFound")  # woken by the channel write, not the 30 s interval


async def _eventually(alerting, reason: str) -> bool:
    for _ in range(200):
        rule = await alerting.resources.get_rule("acme", "cart-errors")
        if any(c.reason == reason for c in rule.status.conditions):
            return True
        await asyncio.sleep(0.05)
    return False


def _around_now() -> dict[str, str]:
    day = 24 * 3600 * 10**9
    return {"startTime": format_rfc3339(now_ns() - day), "endTime": format_rfc3339(now_ns() + day)}


async def test_a_resolver_outage_leaves_the_backends_as_they_were(plane):
    alerting, _, _ = plane
    await alerting.resources.apply([rule_doc(), channel_doc("http://127.0.0.1:9/")])
    await alerting.reconciler.reconcile()
    held = await alerting.evaluator.list_managed()
    assert list(held) == ["acme/cart-errors"]

    unreachable = OpenChoreoResolver("http://127.0.0.1:9", timeout_s=2)  # nothing listens there
    try:
        [result] = await Reconciler(alerting.resources, [alerting.evaluator], resolver=unreachable).reconcile()
    finally:
        await unreachable.aclose()
    assert not result.ok and "could not resolve" in result.message
    assert await alerting.evaluator.list_managed() == held  # not deleted, not widened


async def test_without_a_resolver_a_rule_scoped_by_names_is_not_widened(plane):
    alerting, _, _ = plane
    await alerting.resources.apply([rule_doc(), channel_doc("http://127.0.0.1:9/")])
    evaluator = RuleEvaluator(alerting.intake.accept, logs=alerting.evaluator.logs)  # not the plane's: no race
    [result] = await Reconciler(alerting.resources, [evaluator]).reconcile()
    assert not result.ok and "-uid labels" in result.message
    assert await evaluator.list_managed() == {}


async def test_the_rule_api_scoping_a_namespace_wide_rule_by_uids_makes_it_narrow(plane):
    alerting, internal, _ = plane
    wide = {"openchoreo.dev/namespace": "acme", "observer.openchoreo.dev/scope": "namespace"}
    await alerting.resources.apply([rule_doc("high-errors", wide), channel_doc("http://127.0.0.1:9/")])
    response = await internal.put("/api/v1alpha1/alerts/sources/log/rules/high-errors", json=rule_body())
    assert (response.status_code, response.json()["status"]) == (200, "synced"), response.text
    labels = (await alerting.resources.get_rule("acme", "high-errors")).labels
    assert "observer.openchoreo.dev/scope" not in labels and labels["openchoreo.dev/component-uid"] == COMPONENT
