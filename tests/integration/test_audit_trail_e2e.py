"""The audit trail end to end, on the real all-in-one (`observer up`, devservers/observer.py) with real tokens
from a real OIDC issuer (devservers/oidc.py) and the embedded Casbin policy:

- an incident acknowledged over REST (`PUT /api/v1alpha1/incidents/{id}`) is a record naming the admin who did
  it, surface `rest`, result `success`, the incident as its resource;
- an MCP tool call is a record: surface `mcp`, action `mcp.<tool>`, the caller, the scope it asked about;
- a component-scoped caller asking for platform or audit logs gets 403, and the denied attempts are records;
- reading the trail is itself recorded;
all read back through `POST /api/v1alpha1/audit-logs/query`, the way an auditor would. And the standalone control
plane (`observer controlplane`) writes its own records (applies, deletes, authorization changes, denials) as JSON
lines on stdout, for the collector to ship.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import httpx2
import orjson
import pytest
import yaml
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from devservers.controlplane import controlplane_process
from devservers.observer import AllInOne, observer_up
from devservers.oidc import OidcIssuer, SigningKey
from domain.audit import audit_from_document
from domain.model import (
    LABEL_COMPONENT,
    LABEL_COMPONENT_UID,
    LABEL_ENVIRONMENT,
    LABEL_ENVIRONMENT_UID,
    LABEL_NAMESPACE,
    LABEL_PROJECT,
    LABEL_PROJECT_UID,
)
from domain.timeutil import format_rfc3339

AUDIENCE = "observer-api"
PROJECT, COMPONENT, ENVIRONMENT = (str(uuid.uuid4()) for _ in range(3))
CART = {"namespace": "acme", "project": "shop", "component": "cart", "environment": "prod"}
ADMINS, CART_DEVS = "platform-admins", "cart-devs"
SECOND = 10**9


@dataclass
class Running:
    plane: AllInOne
    mint: Any  # (sub, groups) -> bearer token
    issuer: str

    def client(self, sub: str, group: str) -> httpx.Client:
        token = self.mint(sub=sub, groups=[group])
        return httpx.Client(
            base_url=self.plane.api,
            headers={"Authorization": f"Bearer {token}", "User-Agent": f"{sub}-agent/1"},
            timeout=30,
        )


def window(back_s: int = 3600) -> dict[str, str]:
    now = time.time_ns()
    return {"startTime": format_rfc3339(now - back_s * SECOND), "endTime": format_rfc3339(now + 60 * SECOND)}


def rule_manifest() -> str:
    labels = {
        LABEL_NAMESPACE: "acme",
        LABEL_PROJECT: "shop",
        LABEL_COMPONENT: "cart",
        LABEL_ENVIRONMENT: "prod",
        LABEL_PROJECT_UID: PROJECT,
        LABEL_COMPONENT_UID: COMPONENT,
        LABEL_ENVIRONMENT_UID: ENVIRONMENT,
    }
    return yaml.safe_dump_all(
        [
            {
                "apiVersion": "openchoreo.dev/v1alpha1",
                "kind": "ObservabilityAlertRule",
                "metadata": {"name": "cart-errors", "namespace": "acme", "labels": labels},
                "spec": {
                    "name": "cart-errors",
                    "severity": "critical",
                    "description": "too many errors",
                    "source": {"type": "log", "query": "ERROR"},
                    "condition": {"window": "5m", "interval": "1m", "operator": "gt", "threshold": 10},
                    "actions": {"notifications": {"channels": ["nowhere"]}, "incident": {"enabled": True}},
                },
            },
            {  # nobody listens: its sends fail and are retried in the background, which is not this test's business
                "apiVersion": "openchoreo.dev/v1alpha1",
                "kind": "ObservabilityAlertsNotificationChannel",
                "metadata": {"name": "nowhere", "namespace": "acme"},
                "spec": {"environment": "prod", "type": "webhook", "webhookConfig": {"url": "http://127.0.0.1:9/"}},
            },
        ]
    )


def send_log(otlp: str, text: str) -> None:
    """One OTLP/JSON line from the cart's pod: the observer learns the scope's names from it."""
    labels = {
        LABEL_NAMESPACE: "acme",
        LABEL_PROJECT: "shop",
        LABEL_PROJECT_UID: PROJECT,
        LABEL_COMPONENT: "cart",
        LABEL_COMPONENT_UID: COMPONENT,
        LABEL_ENVIRONMENT: "prod",
        LABEL_ENVIRONMENT_UID: ENVIRONMENT,
        "k8s.pod.name": "cart-0",
    }
    attributes = [{"key": key, "value": {"stringValue": value}} for key, value in labels.items()]
    record = {"timeUnixNano": str(time.time_ns() - SECOND), "severityText": "INFO", "body": {"stringValue": text}}
    body = {"resourceLogs": [{"resource": {"attributes": attributes}, "scopeLogs": [{"logRecords": [record]}]}]}
    assert httpx.post(f"{otlp}/v1/logs", json=body, timeout=10).status_code == 200


@pytest.fixture(scope="module")
def signing(oidc_issuer: OidcIssuer) -> tuple[OidcIssuer, SigningKey]:
    """The session's issuer publishing this module's one key (every token here is signed with it)."""
    key = OidcIssuer.new_key("RS256", kid="audit-e2e-1")
    oidc_issuer.reset()
    oidc_issuer.publish(key)
    return oidc_issuer, key


@pytest.fixture(scope="module")
def running(signing: tuple[OidcIssuer, SigningKey], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    oidc_issuer, key = signing
    root = tmp_path_factory.mktemp("audit-e2e")
    policy = root / "policy.yaml"
    policy.write_text(
        yaml.safe_dump(
            {
                "roles": {"admin": ["*"], "viewer": ["logs:view"]},
                "bindings": [
                    {"role": "admin", "groups": [ADMINS]},
                    {
                        "role": "viewer",
                        "groups": [CART_DEVS],
                        "namespace": "acme",
                        "project": "shop",
                        "component": "cart",
                    },
                ],
            }
        )
    )
    data = root / "observer"
    applied = subprocess.run(
        [sys.executable, "-m", "observer.cli", "rules", "apply", "-f", "-", "--data-dir", str(data)],
        input=rule_manifest(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert applied.returncode == 0, applied.stderr
    env = {
        "JWT_DISABLED": "false",
        "JWKS_URL": oidc_issuer.jwks_url,
        "JWT_ISSUER": oidc_issuer.url,
        "JWT_AUDIENCE": AUDIENCE,
        "OBSERVER_AUTHZ_POLICY_FILE": str(policy),
        "AUDIT_LOG": "sink",
    }
    with observer_up(data, env=env) as plane:

        def mint(sub: str, groups: list[str]) -> str:
            return oidc_issuer.mint(key, aud=AUDIENCE, sub=sub, groups=groups)

        send_log(plane.otlp, "cart started")
        yield Running(plane, mint, oidc_issuer.url)


def audit_query(running: Running, **filters: Any) -> list[dict[str, Any]]:
    with running.client("auditor", ADMINS) as auditor:
        answer = auditor.post("/api/v1alpha1/audit-logs/query", json=window() | filters)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["records"])


def test_an_incident_acknowledged_over_rest_is_a_record_of_who_did_it(running: Running) -> None:
    fired = httpx.post(
        f"{running.plane.internal}/api/v1alpha1/alerts/webhook",
        json={"ruleName": "cart-errors", "ruleNamespace": "acme", "alertValue": 12},
        timeout=30,
    )
    assert fired.status_code == 200, fired.text
    with running.client("alice", ADMINS) as alice:
        incidents = alice.post("/api/v1alpha1/incidents/query", json=window() | {"searchScope": CART}).json()
        [incident] = incidents["incidents"]
        acknowledged = alice.put(
            f"/api/v1alpha1/incidents/{incident['incidentId']}",
            json={"status": "acknowledged", "notes": "on it"},
            headers={"X-Request-ID": "ack-1"},
        )
    assert acknowledged.status_code == 200, acknowledged.text
    [record] = audit_query(running, request_id=["ack-1"])
    assert (record["action"], record["category"], record["result"]) == ("incident.update", "management", "success")
    assert (record["surface"], record["producer"], record["operation_id"]) == ("rest", "observer", "updateIncident")
    assert record["actor"] == {
        "type": "user",
        "id": "alice",
        "issuer": running.issuer,
        "entitlements": {"groups": [ADMINS]},
    }
    assert record["resource"] == {"type": "incident", "name": incident["incidentId"]}
    assert record["http"] == {"method": "PUT", "path": f"/api/v1alpha1/incidents/{incident['incidentId']}"}
    assert record["user_agent"] == "alice-agent/1" and record["source_ip"] == "127.0.0.1"
    assert "notes" not in str(record) and "on it" not in str(record)  # no bodies in the trail
    [webhook] = audit_query(running, action=["alerts.webhook"])
    assert (webhook["result"], webhook["actor"]["type"]) == ("success", "anonymous")


async def test_an_mcp_tool_call_is_a_record_with_the_caller_and_the_scope(running: Running) -> None:
    token = running.mint(sub="agent-bob", groups=[ADMINS])
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(30, read=60))
    async with (
        http,
        Client(streamable_http_client(f"{running.plane.api}/mcp", http_client=http), mode="legacy") as client,
    ):
        result = await client.call_tool(
            "query_component_logs",
            {**CART, "start_time": window()["startTime"], "end_time": window()["endTime"]},
        )
    assert not result.is_error, result
    [record] = audit_query(running, actor={"id": ["agent-bob"]}, surface=["mcp"])
    assert (record["action"], record["operation_id"]) == ("mcp.query_component_logs", "query_component_logs")
    assert (record["category"], record["result"], record["producer"]) == ("access", "success", "observer")
    # the environment dual-scoped, as upstream records it
    assert record["resource"] == {"type": "component", "name": "cart", **CART, "environment": "acme/prod"}


async def test_a_tool_call_refused_by_authorization_is_a_denied_mcp_record(running: Running) -> None:
    token = running.mint(sub="agent-erin", groups=[CART_DEVS])
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(30, read=60))
    async with (
        http,
        Client(streamable_http_client(f"{running.plane.api}/mcp", http_client=http), mode="legacy") as client,
    ):
        result = await client.call_tool(
            "query_audit_logs", {"start_time": window()["startTime"], "end_time": window()["endTime"]}
        )
    assert result.is_error, result
    [record] = audit_query(running, actor={"id": ["agent-erin"]})
    assert (record["action"], record["surface"]) == ("mcp.query_audit_logs", "mcp")
    assert (record["category"], record["result"]) == ("authorization", "denied")
    assert record["resource"] == {"type": "auditlogs"}


def test_a_component_scoped_caller_is_denied_platform_and_audit_logs_and_the_attempts_are_recorded(
    running: Running,
) -> None:
    with running.client("carol", CART_DEVS) as carol:
        platform = carol.post("/api/v1alpha1/platform-logs/query", json=window())
        trail = carol.post("/api/v1alpha1/audit-logs/query", json=window())
        own_logs = carol.post("/api/v1/logs/query", json=window() | {"searchScope": CART})
    assert (platform.status_code, trail.status_code, own_logs.status_code) == (403, 403, 200)
    assert trail.json()["message"] == "Access denied"  # the contract's 403
    records = audit_query(running, actor={"id": ["carol"]})
    assert sorted((r["action"], r["category"], r["result"]) for r in records) == [
        ("auditlogs.query", "authorization", "denied"),
        ("platformlogs.query", "authorization", "denied"),
    ]  # her own logs query was a read she may do: no record
    assert {tuple(r["actor"]["entitlements"]["groups"]) for r in records} == {(CART_DEVS,)}


def test_a_request_without_a_valid_token_is_a_denied_record(running: Running) -> None:
    refused = httpx.put(
        f"{running.plane.api}/api/v1alpha1/incidents/{uuid.uuid4()}",
        json={"status": "resolved"},
        headers={"Authorization": "Bearer not-a-token", "X-Request-ID": "forged-1"},
        timeout=10,
    )
    assert refused.status_code == 401
    [record] = audit_query(running, request_id=["forged-1"])
    assert (record["action"], record["result"], record["actor"]) == (
        "incident.update",
        "denied",
        {"type": "anonymous", "id": "anonymous"},
    )


def test_reading_the_trail_is_itself_recorded(running: Running) -> None:
    with running.client("dave", ADMINS) as dave:
        first = dave.post("/api/v1alpha1/audit-logs/query", json=window() | {"action": ["nothing.here"]})
        assert first.status_code == 200 and first.json()["records"] == []
        values = dave.post("/api/v1alpha1/audit-logs/filter-values", json={"query": window(), "filter": "action"})
    assert values.status_code == 200, values.text
    records = audit_query(running, actor={"id": ["dave"]})
    assert sorted((r["action"], r["category"], r["result"]) for r in records) == [
        ("auditlogs.filtervalues", "access", "success"),
        ("auditlogs.query", "access", "success"),
    ]


def test_the_standalone_control_plane_writes_its_records_as_json_lines_on_stdout(
    signing: tuple[OidcIssuer, SigningKey], tmp_path: Path
) -> None:
    oidc_issuer, key = signing
    env = {
        "JWT_DISABLED": "false",
        "JWKS_URL": oidc_issuer.jwks_url,
        "JWT_ISSUER": oidc_issuer.url,
        "JWT_AUDIENCE": AUDIENCE,
        "CONTROLPLANE_ADMIN_GROUPS": ADMINS,
    }

    def bearer(sub: str, group: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {oidc_issuer.mint(key, aud=AUDIENCE, sub=sub, groups=[group])}"}

    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "acme"}}
    role = {
        "apiVersion": "openchoreo.dev/v1alpha1",
        "kind": "AuthzRole",
        "metadata": {"name": "reader", "namespace": "acme"},
        "spec": {"actions": ["logs:view"]},
    }
    with controlplane_process(tmp_path / "cp", env=env) as cp, httpx.Client(base_url=cp.url, timeout=30) as http:
        admin, mallory = bearer("root", ADMINS), bearer("mallory", CART_DEVS)
        assert http.post("/api/v1/namespaces", json=namespace, headers=admin).status_code == 201
        assert http.get("/api/v1/namespaces/acme", headers=admin).status_code == 200  # a read: no record
        assert http.post("/api/v1/namespaces/acme/authzroles", json=role, headers=admin).status_code == 201
        assert http.delete("/api/v1/namespaces/acme/authzroles/reader", headers=mallory).status_code == 403
        assert http.delete("/api/v1/namespaces/acme", headers={"Authorization": "Bearer x"}).status_code == 401
        output = cp.output()
    records = [
        audit_from_document(orjson.loads(line))
        for line in output.splitlines()
        if line.startswith("{") and '"schema_version"' in line
    ]
    assert [(r.action, r.category, r.result, r.actor.id) for r in records] == [
        ("namespace.create", "management", "success", "root"),
        ("authzrole.create", "authorization", "success", "root"),
        ("authzrole.delete", "authorization", "denied", "mallory"),
        ("namespace.delete", "authorization", "denied", "anonymous"),
    ]
    assert {(r.producer, r.surface) for r in records} == {("openchoreo-api", "rest")}
    assert [r.resource.name if r.resource else "" for r in records] == ["acme", "reader", "reader", "acme"]
    assert records[2].actor.entitlements == (("groups", (CART_DEVS,)),) and records[2].actor.issuer == oidc_issuer.url
