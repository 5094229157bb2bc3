"""The alert APIs as a client uses them: rule CRUD and the webhook on the internal port, alert and incident
queries and incident updates on the public one, over a real embedded backend and a real SQLite alert store; the
webhook's notifications reach a real HTTP receiver."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest

from access.model import AllowAll
from adapters.embedded.backend import EmbeddedBackend
from devservers.receivers import WebhookReceiver
from domain.model import Identity, LogRecord
from domain.timeutil import now_ns
from observer.alerting.outbox import notification_status
from observer.alerting.plane import build_alerting
from observer.app import create_internal_app, create_public_app
from observer.service import QueryService

PROJECT, COMPONENT, ENV = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
WINDOW = {"startTime": "2026-01-01T00:00:00Z", "endTime": "2026-01-20T00:00:00Z"}


def rule_body(name="high-errors", source=None, **condition):
    return {
        "metadata": {
            "name": name,
            "namespace": "acme",
            "projectUid": PROJECT,
            "environmentUid": ENV,
            "componentUid": COMPONENT,
        },
        "source": source or {"type": "log", "query": "ERROR"},
        "condition": {"enabled": True, "window": "5m", "interval": "1m", "operator": "gt", "threshold": 10} | condition,
    }


def manifest(hook_url: str, incident: bool = True) -> list[dict]:
    labels = {
        "openchoreo.dev/namespace": "acme",
        "openchoreo.dev/project": "shop",
        "openchoreo.dev/component": "cart",
        "openchoreo.dev/environment": "prod",
        "openchoreo.dev/project-uid": PROJECT,
        "openchoreo.dev/component-uid": COMPONENT,
        "openchoreo.dev/environment-uid": ENV,
    }
    return [
        {
            "kind": "ObservabilityAlertRule",
            "metadata": {"name": "cart-errors", "namespace": "acme", "labels": labels},
            "spec": {
                "name": "cart-errors",
                "severity": "critical",
                "description": "too many errors",
                "source": {"type": "log", "query": "ERROR"},
                "condition": {"window": "5m", "interval": "1m", "operator": "gt", "threshold": 10},
                "actions": {"notifications": {"channels": ["ops"]}, "incident": {"enabled": incident}},
            },
        },
        {
            "kind": "ObservabilityAlertsNotificationChannel",
            "metadata": {"name": "ops", "namespace": "acme"},
            "spec": {"environment": "prod", "type": "webhook", "webhookConfig": {"url": hook_url}},
        },
    ]


@pytest.fixture
async def plane(tmp_path: Path):
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
    service = QueryService(backend.registry, logs=backend, events=backend, traces=backend, metrics=backend)
    internal = httpx.AsyncClient(
        transport=httpx.ASGITransport(create_internal_app(alerting)), base_url="http://internal"
    )
    public = httpx.AsyncClient(
        transport=httpx.ASGITransport(create_public_app(service, alert_service=alerting.service)),
        base_url="http://public",
    )
    # names the public queries resolve: learn them the way ingest does
    await backend.write(
        batch_id="names",
        logs=[
            LogRecord(
                now_ns(),
                "hello",
                Identity(
                    namespace="acme",
                    project="shop",
                    project_uid=PROJECT,
                    component="cart",
                    component_uid=COMPONENT,
                    environment="prod",
                    environment_uid=ENV,
                    pod="cart-1",
                    container="app",
                ),
            )
        ],
    )
    yield alerting, internal, public
    for task in tasks:
        task.cancel()
    await internal.aclose()
    await public.aclose()
    await alerting.close()
    backend.close()


# ----------------------------------------------------------------------------------------------- rule CRUD


async def test_rule_crud_round_trip(plane):
    _, internal, _ = plane
    created = await internal.post("/api/v1alpha1/alerts/sources/log/rules", json=rule_body())
    assert created.status_code == 201
    assert created.json() | {"lastSyncedAt": ""} == {
        "action": "created",
        "status": "synced",
        "ruleLogicalId": "acme/high-errors",
        "ruleBackendId": "evaluator:acme/high-errors",
        "lastSyncedAt": "",
    }
    again = await internal.post("/api/v1alpha1/alerts/sources/log/rules", json=rule_body())
    assert (again.status_code, again.json()["errorCode"]) == (409, "ALREADY_EXISTS")
    got = await internal.get("/api/v1alpha1/alerts/sources/log/rules/high-errors")
    assert got.json()["condition"] == {
        "enabled": True,
        "window": "5m",
        "interval": "1m",
        "operator": "gt",
        "threshold": 10.0,
    }
    same = await internal.put("/api/v1alpha1/alerts/sources/log/rules/high-errors", json=rule_body())
    assert same.json()["action"] == "unchanged"
    changed = await internal.put("/api/v1alpha1/alerts/sources/log/rules/high-errors", json=rule_body(threshold=20))
    assert (changed.status_code, changed.json()["action"], changed.json()["status"]) == (200, "updated", "synced")
    deleted = await internal.delete("/api/v1alpha1/alerts/sources/log/rules/high-errors")
    assert deleted.json()["action"] == "deleted"
    gone = await internal.get("/api/v1alpha1/alerts/sources/log/rules/high-errors")
    assert (gone.status_code, gone.json()["errorCode"]) == (404, "NOT_FOUND")


@pytest.mark.parametrize(
    "path_type, body, status, code, message",
    [
        ("disk", rule_body(), 400, "INVALID_SOURCE_TYPE", 'sourceType "disk" is invalid'),
        ("log", "not json", 400, "INVALID_REQUEST_BODY", "invalid request body"),
        (
            "log",
            rule_body() | {"metadata": rule_body()["metadata"] | {"componentUid": "nope"}},
            400,
            "INVALID_REQUEST_BODY",
            "componentUid",
        ),
        ("log", rule_body(name=" "), 400, "VALIDATION_ERROR", "metadata.name is required"),
        ("log", rule_body(source={"type": "log"}), 400, "VALIDATION_ERROR", "source.query is required"),
        ("metric", rule_body(source={"type": "metric", "metric": "disk"}), 400, "VALIDATION_ERROR", "source.metric"),
        ("log", rule_body(threshold=0), 400, "VALIDATION_ERROR", "greater than 0"),
        ("log", rule_body(operator="about"), 400, "VALIDATION_ERROR", "condition.operator"),
        ("log", rule_body(window="5m", interval="10m"), 400, "VALIDATION_ERROR", "longer than"),
        ("log", rule_body(window="banana"), 400, "VALIDATION_ERROR", "condition.window"),
        # upstream answers these two with a 500; they are the caller's mistake
        ("log", rule_body(window="30s", interval="30s"), 400, "VALIDATION_ERROR", "whole minutes or hours"),
        ("log", rule_body(window="1m30s", interval="1m"), 400, "VALIDATION_ERROR", "whole minutes or hours"),
        (
            "metric",
            rule_body(),
            400,
            "SOURCE_TYPE_MISMATCH",
            'path sourceType "metric" does not match body source.type "log"',
        ),
        ("budget", rule_body(source={"type": "budget"}), 501, "NOT_IMPLEMENTED", "cost backend"),
    ],
)
async def test_rule_api_rejects_bad_input_with_the_documented_code(plane, path_type, body, status, code, message):
    _, internal, _ = plane
    kwargs = {"content": body} if isinstance(body, str) else {"json": body}
    response = await internal.post(f"/api/v1alpha1/alerts/sources/{path_type}/rules", **kwargs)
    assert (response.status_code, response.json()["errorCode"]) == (status, code)
    assert message in response.json()["message"]


# ----------------------------------------------------------------------------------------------- webhook


async def test_webhook_records_alert_incident_and_notifies_once(plane):
    alerting, internal, public = plane
    async with WebhookReceiver() as hook:
        await alerting.resources.apply(manifest(hook.url))
        fired = await internal.post(
            "/api/v1alpha1/alerts/webhook",
            json={
                "ruleName": "cart-errors",
                "ruleNamespace": "acme",
                "alertValue": 12.5,
                "alertTimestamp": "2026-01-10T10:00:00Z",
            },
        )
        assert fired.status_code == 200 and fired.json()["message"].startswith("alert acknowledged, alertID: ")
        alert_id = fired.json()["message"].rsplit(" ", 1)[1]
        for _ in range(200):
            if hook.requests:
                break
            await asyncio.sleep(0.05)
        [request] = hook.requests
        payload = request.json()
        assert (payload["alertName"], payload["alertValue"], payload["alertSeverity"], payload["alertId"]) == (
            "cart-errors",
            "12.5",
            "critical",
            alert_id,
        )
        assert payload["alertTimestamp"] == "2026-01-10T10:00:00Z"
        assert request.header("X-OpenChoreo-Idempotency-Key") == payload["idempotencyKey"]

        # Suppression looks back from now over alerts stored with their source's timestamp (as upstream): the
        # January firing is long past; a firing now is recorded, and the next one within the hour is not.
        recorded_now = await internal.post(
            "/api/v1alpha1/alerts/webhook", json={"ruleName": "cart-errors", "ruleNamespace": "acme", "alertValue": 13}
        )
        assert "alertID" in recorded_now.json()["message"]
        suppressed = await internal.post(
            "/api/v1alpha1/alerts/webhook", json={"ruleName": "cart-errors", "ruleNamespace": "acme", "alertValue": 14}
        )
        assert suppressed.json()["message"] == "alert suppressed: duplicate within suppression window"

    scope = {"namespace": "acme", "project": "shop", "component": "cart"}
    alerts = (await public.post("/api/v1alpha1/alerts/query", json=WINDOW | {"searchScope": scope})).json()
    assert alerts["total"] == 1
    [alert] = alerts["alerts"]
    assert alert["alertId"] == alert_id and alert["alertValue"] == "12.5" and alert["notificationChannels"] == ["ops"]
    assert alert["metadata"]["alertRule"]["condition"] == {
        "operator": "gt",
        "threshold": 10.0,
        "window": "5m0s",
        "interval": "1m0s",
    }
    incidents = (await public.post("/api/v1alpha1/incidents/query", json=WINDOW | {"searchScope": scope})).json()
    [incident] = incidents["incidents"]
    assert (incident["alertId"], incident["status"], incident["description"]) == (alert_id, "active", "too many errors")

    path = f"/api/v1alpha1/incidents/{incident['incidentId']}"
    acknowledged = await public.put(path, json={"status": "acknowledged", "notes": "on it"})
    assert acknowledged.status_code == 200 and acknowledged.json()["notes"] == "on it"
    backwards = await public.put(path, json={"status": "active"})
    assert (backwards.status_code, backwards.json()["errorCode"]) == (400, "INVALID_STATUS_TRANSITION")
    unknown = await public.put(f"/api/v1alpha1/incidents/{uuid.uuid4()}", json={"status": "resolved"})
    assert (unknown.status_code, unknown.json()["errorCode"]) == (404, "INCIDENT_NOT_FOUND")
    invalid = await public.put(path, json={"status": "closed"})
    assert (invalid.status_code, invalid.json()["errorCode"]) == (400, "VALIDATION_ERROR")
    [status] = notification_status(alerting.resources.engine, alert_id)
    assert status.state == "delivered"


async def test_alertmanager_redelivery_creates_nothing_new(plane):
    alerting, internal, public = plane
    await alerting.resources.apply(manifest("http://127.0.0.1:9/unused", incident=False))
    body = {
        "version": "4",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "cart-errors"},
                "fingerprint": "f00d",
                "annotations": {"rule_name": "cart-errors", "rule_namespace": "acme", "alert_value": "42.00"},
                "startsAt": "2026-01-10T10:00:00Z",
            }
        ],
    }
    first = await internal.post("/api/v1alpha1/alerts/webhook", json=body)
    second = await internal.post("/api/v1alpha1/alerts/webhook", json=body)
    assert first.json() == second.json() and "alertID" in first.json()["message"]
    alerts = (
        await public.post("/api/v1alpha1/alerts/query", json=WINDOW | {"searchScope": {"namespace": "acme"}})
    ).json()
    assert alerts["total"] == 1 and alerts["alerts"][0]["alertValue"] == "42"


@pytest.mark.parametrize(
    "body, status, code",
    [
        ("{", 400, "INVALID_REQUEST_BODY"),
        ("", 400, "INVALID_REQUEST_BODY"),
        ({"ruleNamespace": "acme"}, 400, "MISSING_RULE_NAME"),
        ({"ruleName": "cart-errors"}, 400, "MISSING_RULE_NAMESPACE"),
        ({"ruleName": "nope", "ruleNamespace": "acme", "alertValue": 1}, 404, "RULE_NOT_FOUND"),
        ({"alerts": [{"status": "firing", "annotations": {}}]}, 400, "MISSING_RULE_NAME"),
    ],
)
async def test_webhook_bad_input(plane, body, status, code):
    _, internal, _ = plane
    kwargs = {"content": body} if isinstance(body, str) else {"json": body}
    response = await internal.post("/api/v1alpha1/alerts/webhook", **kwargs)
    assert (response.status_code, response.json()["errorCode"]) == (status, code)


@pytest.mark.parametrize(
    "body, message",
    [
        ({"endTime": "2026-01-02T00:00:00Z", "searchScope": {"namespace": "acme"}}, "startTime is required"),
        (
            WINDOW | {"searchScope": {"namespace": "acme"}, "limit": 0},
            "limit must be a positive integer greater than zero",
        ),
        (WINDOW | {"searchScope": {"namespace": "acme"}, "limit": 1001}, "limit cannot exceed 1000"),
        (WINDOW | {"searchScope": {"namespace": "acme"}, "sortOrder": "up"}, "sortOrder"),
        (WINDOW | {"searchScope": {"namespace": "acme", "component": "cart"}}, "project is required"),
        (WINDOW, "searchScope is required"),
    ],
)
async def test_alert_query_validation(plane, body, message):
    _, _, public = plane
    response = await public.post("/api/v1alpha1/alerts/query", json=body)
    assert (response.status_code, response.json()["errorCode"]) == (400, "VALIDATION_ERROR")
    assert message in response.json()["message"]


async def test_alert_query_of_an_unknown_project_is_scope_not_found(plane):
    _, _, public = plane
    response = await public.post(
        "/api/v1alpha1/alerts/query", json=WINDOW | {"searchScope": {"namespace": "acme", "project": "nope"}}
    )
    assert (response.status_code, response.json()["errorCode"]) == (400, "SCOPE_NOT_FOUND")


async def test_an_opensearch_monitor_payload_is_the_contract_payload_with_extra_keys(plane):
    """What an OpenSearch Alerting monitor's mustache template renders (adapters-notes §1.5): the contract's keys
    plus the three UIDs, with a numeric value and the period start as the time."""
    alerting, internal, public = plane
    await alerting.resources.apply(manifest("http://127.0.0.1:9/unused", incident=False))
    fired = await internal.post(
        "/api/v1alpha1/alerts/webhook",
        json={
            "ruleName": "cart-errors",
            "ruleNamespace": "acme",
            "componentUid": COMPONENT,
            "projectUid": PROJECT,
            "environmentUid": ENV,
            "alertValue": 17,
            "alertTimestamp": "2026-01-10T10:00:00.123Z",
        },
    )
    assert fired.status_code == 200 and "alertID" in fired.json()["message"]
    alerts = (
        await public.post("/api/v1alpha1/alerts/query", json=WINDOW | {"searchScope": {"namespace": "acme"}})
    ).json()
    assert [(a["alertValue"], a["timestamp"]) for a in alerts["alerts"]] == [("17", "2026-01-10T10:00:00.123Z")]
