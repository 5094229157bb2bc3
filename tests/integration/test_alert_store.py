"""Alert and incident entries: inclusive time bounds, scope filters, uncapped totals, the forward-only incident
lifecycle, and the firing payloads the webhook accepts."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import insert

from domain.alerting import InvalidResource, go_duration, parse_duration, rule_from_resource
from domain.model import ComponentScope
from observer.alerting.db import open_engine
from observer.alerting.entries import EntriesQuery, EntryStore, IncidentNotFound, InvalidTransition
from observer.alerting.payloads import InvalidPayload, firings_from
from observer.alerting.resources import ResourceStore
from observer.alerting.tables import alert_entries, incident_entries

PROJECT, COMPONENT, ENV = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    """The same cases on both databases the alert store speaks."""
    if request.param == "sqlite":
        return EntryStore(open_engine(str(tmp_path / "alerts.db")))
    return EntryStore(open_engine(request.getfixturevalue("postgres_server").fresh_database()))


def _alert(store: EntryStore, ts_ns: int, namespace="ns", project=PROJECT, component=COMPONENT, env=ENV) -> str:
    alert_id = str(uuid.uuid4())
    with store.engine.begin() as conn:
        conn.execute(
            insert(alert_entries).values(
                id=alert_id,
                timestamp_ns=ts_ns,
                alert_rule_name="high-errors",
                incident_enabled=True,
                namespace_name=namespace,
                project_id=project,
                component_id=component,
                environment_id=env,
                project_name="shop",
                component_name="cart",
                environment_name="prod",
            )
        )
    return alert_id


def _incident(store: EntryStore, ts_ns: int, status="active") -> str:
    incident_id = str(uuid.uuid4())
    with store.engine.begin() as conn:
        conn.execute(
            insert(incident_entries).values(
                id=incident_id,
                alert_id=str(uuid.uuid4()),
                timestamp_ns=ts_ns,
                status=status,
                triggered_at_ns=ts_ns,
                namespace_name="ns",
                project_id=PROJECT,
                component_id=COMPONENT,
                environment_id=ENV,
            )
        )
    return incident_id


SCOPE = ComponentScope("ns", PROJECT, COMPONENT, ENV)


async def test_time_bounds_are_inclusive_at_both_ends(store):
    for ts in (100, 200, 300):
        _alert(store, ts)
    items, total = await store.query_alerts(EntriesQuery(SCOPE, 100, 300, 10, "asc"))
    assert total == 3 and [i["timestamp"][-11:] for i in items] == ["00.0000001Z", "00.0000002Z", "00.0000003Z"]
    items, total = await store.query_alerts(EntriesQuery(SCOPE, 101, 299, 10))
    assert total == 1


async def test_total_is_uncapped_while_rows_follow_the_limit(store):
    for ts in range(1500):
        _alert(store, ts)
    items, total = await store.query_alerts(EntriesQuery(SCOPE, 0, 10_000, 5))
    assert total == 1500 and len(items) == 5
    assert items[0]["timestamp"] > items[-1]["timestamp"]  # desc by default


@pytest.mark.parametrize(
    "scope, expected",
    [
        (ComponentScope("ns"), 3),
        (ComponentScope("ns", PROJECT), 2),
        (ComponentScope("ns", PROJECT, COMPONENT), 1),
        (ComponentScope("ns", PROJECT, COMPONENT, ENV), 1),
        (ComponentScope("other"), 0),
    ],
)
async def test_scope_filters_namespace_by_name_and_the_rest_by_uid(store, scope, expected):
    _alert(store, 1)
    _alert(store, 2, component=str(uuid.uuid4()))
    _alert(store, 3, project=str(uuid.uuid4()))
    _, total = await store.query_alerts(EntriesQuery(scope, 0, 10, 10))
    assert total == expected


async def test_alert_items_carry_labels_and_omit_what_is_empty(store):
    _alert(store, 5)
    [item], _ = await store.query_alerts(EntriesQuery(SCOPE, 0, 10, 10))
    assert item["metadata"]["alertRule"] == {"name": "high-errors"}
    assert item["metadata"]["labels"] == {
        "componentName": "cart",
        "environmentName": "prod",
        "projectName": "shop",
        "namespaceName": "ns",
        "componentUid": COMPONENT,
        "environmentUid": ENV,
        "projectUid": PROJECT,
    }
    assert "notificationChannels" not in item


@pytest.mark.parametrize(
    "start, target, allowed",
    [
        ("active", "acknowledged", True),
        ("active", "resolved", True),
        ("active", "active", True),
        ("acknowledged", "resolved", True),
        ("acknowledged", "acknowledged", True),
        ("acknowledged", "active", False),
        ("resolved", "resolved", True),
        ("resolved", "active", False),
        ("resolved", "acknowledged", False),
    ],
)
async def test_incidents_only_move_forward(store, start, target, allowed):
    incident = _incident(store, 1, start)
    if allowed:
        updated = await store.update_incident(incident, target, None, None)
        assert updated["status"] == target and "timestamp" not in updated
    else:
        with pytest.raises(InvalidTransition, match=f'"{start}" → "{target}"'):
            await store.update_incident(incident, target, None, None)


async def test_incident_timestamps_are_set_once_and_notes_edit_or_clear(store):
    incident = _incident(store, 1)
    acknowledged = await store.update_incident(incident, "acknowledged", "  looking  ", None)
    assert acknowledged["notes"] == "looking" and "acknowledgedAt" in acknowledged
    again = await store.update_incident(incident, "acknowledged", None, "db down")
    assert again["acknowledgedAt"] == acknowledged["acknowledgedAt"] and again["notes"] == "looking"
    resolved = await store.update_incident(incident, "resolved", "", None)
    assert "notes" not in resolved and "resolvedAt" in resolved and resolved["description"] == "db down"
    direct = _incident(store, 2)
    skipped = await store.update_incident(direct, "resolved", None, None)
    assert "acknowledgedAt" not in skipped
    with pytest.raises(IncidentNotFound):
        await store.update_incident(str(uuid.uuid4()), "resolved", None, None)


# ----------------------------------------------------------------------------------------------- channels


async def test_a_channel_is_looked_up_in_its_namespace_then_in_any(store):
    resources = ResourceStore(store.engine)

    def doc(name, namespace, url):
        return {
            "kind": "ObservabilityAlertsNotificationChannel",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"environment": "dev", "type": "webhook", "webhookConfig": {"url": url}},
        }

    for namespace in ("b", "c", "a"):
        await resources.put_channel(doc("ops", namespace, f"http://{namespace}.test"))
    assert (await resources.channel("c", "ops")).webhook.url == "http://c.test"  # its own namespace first
    assert (await resources.channel("z", "ops")).namespace == "a"  # else the first by namespace
    assert await resources.channel("a", "nope") is None


# ----------------------------------------------------------------------------------------------- payloads


def test_contract_payload():
    [firing] = firings_from(
        {"ruleName": "r", "ruleNamespace": "ns", "alertValue": 12.5, "alertTimestamp": "2026-01-01T00:00:00Z"}
    )
    assert (firing.rule_name, firing.rule_namespace, firing.value) == ("r", "ns", 12.5)
    assert firing.timestamp_ns == 1767225600 * 10**9


def test_alertmanager_payload_keeps_only_firing_alerts_and_keys_them():
    body = {
        "version": "4",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {"openchoreo_rule_name": "r", "openchoreo_rule_namespace": "ns"},
                "annotations": {"alert_value": "42.00"},
                "startsAt": "2026-01-01T00:00:00Z",
                "fingerprint": "abc",
            },
            {"status": "resolved", "labels": {}, "annotations": {}},
            {
                "status": "firing",
                "annotations": {"rule_name": "q", "rule_namespace": "ns", "alert_value": "1"},
                "startsAt": "2026-01-01T00:00:00Z",
            },
        ],
    }
    first, second = firings_from(body)
    assert (first.rule_name, first.value, first.delivery_key) == ("r", 42.0, "alertmanager:abc:2026-01-01T00:00:00Z")
    assert (second.rule_name, second.delivery_key) == ("q", "")


@pytest.mark.parametrize(
    "body, code",
    [
        ([], "INVALID_REQUEST_BODY"),
        ({"ruleNamespace": "ns"}, "MISSING_RULE_NAME"),
        ({"ruleName": "r"}, "MISSING_RULE_NAMESPACE"),
        ({"ruleName": "r", "ruleNamespace": "ns", "alertValue": "many"}, "INVALID_REQUEST_BODY"),
        ({"ruleName": "r", "ruleNamespace": "ns", "alertTimestamp": "yesterday"}, "INVALID_REQUEST_BODY"),
        ({"ruleName": 5, "ruleNamespace": "ns"}, "INVALID_REQUEST_BODY"),
        ({"alerts": []}, "INVALID_REQUEST_BODY"),
        (
            {"alerts": [{"status": "firing", "annotations": {"rule_namespace": "ns", "alert_value": "1"}}]},
            "MISSING_RULE_NAME",
        ),
        (
            {"alerts": [{"status": "firing", "annotations": {"rule_name": "r", "rule_namespace": "ns"}}]},
            "INVALID_REQUEST_BODY",
        ),
    ],
)
def test_malformed_payloads_say_what_is_wrong(body, code):
    with pytest.raises(InvalidPayload) as error:
        firings_from(body)
    assert error.value.code == code


# ----------------------------------------------------------------------------------------------- rule model


@pytest.mark.parametrize("text, seconds", [("5m", 300), ("1h", 3600), ("1h30m", 5400), ("90s", 90), ("0.5h", 1800)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("seconds, text", [(300, "5m0s"), (3600, "1h0m0s"), (86400, "24h0m0s"), (45, "45s")])
def test_go_duration_strings(seconds, text):
    assert go_duration(seconds) == text


def _rule_doc(**spec_overrides):
    spec = {
        "name": "r",
        "source": {"type": "log", "query": "error"},
        "condition": {"window": "5m", "interval": "1m", "operator": "gt", "threshold": 10},
        "actions": {"notifications": {"channels": ["c"]}},
    }
    spec.update(spec_overrides)
    return {"kind": "ObservabilityAlertRule", "metadata": {"name": "r-1", "namespace": "ns"}, "spec": spec}


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"condition": {"window": "30s", "interval": "30s", "operator": "gt", "threshold": 1}}, "whole minutes"),
        ({"condition": {"window": "1m30s", "interval": "1m", "operator": "gt", "threshold": 1}}, "whole minutes"),
        ({"condition": {"window": "5m", "interval": "10m", "operator": "gt", "threshold": 1}}, "longer than"),
        ({"condition": {"window": "5m", "interval": "1m", "operator": "gt", "threshold": 0}}, "greater than 0"),
        ({"condition": {"window": "5m", "interval": "1m", "operator": "about", "threshold": 1}}, "operator"),
        ({"source": {"type": "log"}}, "query is required"),
        ({"source": {"type": "metric", "metric": "disk"}}, "cpu_usage or memory_usage"),
        ({"actions": {"notifications": {"channels": []}}}, "at least one channel"),
        (
            {"actions": {"notifications": {"channels": ["c"]}, "incident": {"triggerAiRca": True}}},
            "enabled must be true",
        ),
        (
            {
                "actions": {
                    "notifications": {"channels": ["c"]},
                    "incident": {"enabled": True, "triggerAiCostAnalysis": True},
                }
            },
            "only allowed for budget",
        ),
    ],
)
def test_rule_resources_are_checked_with_a_message_naming_the_field(overrides, message):
    with pytest.raises(InvalidResource, match=message):
        rule_from_resource(_rule_doc(**overrides))
