"""The audit middleware on the real apps (the observer's two ports, the control plane's API), through ASGI:
state changes, denials (401 from authentication, 403 from authorization) and reads of the trail are recorded
before the answer goes out, with the right action, category, result, actor and resource; plain reads are not."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from access.model import AllowAll, Subject
from access.settings import AuthSettings
from adapters.embedded.backend import EmbeddedBackend
from audit.actions import describe_controlplane, describe_observer
from audit.actors import ANONYMOUS, INTERNAL_TOKEN_HOLDER
from audit.middleware import AuditMiddleware
from audit.trail import AuditTrail, SinkWriter
from controlplane.api import create_app as create_controlplane_app
from controlplane.store import Store
from domain.audit import AuditRecord, AuditResource
from observer.alerting.plane import build_alerting
from observer.app import WEBHOOK_PATH, create_internal_app, create_public_app
from tests.conftest import service_over
from tests.unit.test_audit_records import token
from tests.unit.test_audit_trail import Sink

TOKEN = "t" * 32
WINDOW = {"startTime": "2026-01-01T00:00:00Z", "endTime": "2026-01-01T01:00:00Z"}


class Recorded:
    """A trail into an in-memory sink, and what it holds in the order written."""

    def __init__(self, producer: str = "observer", *, trust_forwarded_for: bool = False) -> None:
        self.sink = Sink()
        self.trail = AuditTrail(producer, [SinkWriter(self.sink)], trust_forwarded_for=trust_forwarded_for)

    @property
    def records(self) -> list[AuditRecord]:
        return [records[0] for records in self.sink.stored.values()]

    def only(self) -> AuditRecord:
        assert len(self.records) == 1, self.records
        return self.records[0]


class AsAlice:
    """Authentication stood in for: every request is alice's (the real middleware is in the end-to-end test)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            subject = Subject("user", "groups", ("devs",), token=token(sub="alice", iss="https://idp"))
            scope.setdefault("state", {})["subject"] = subject
        await self.app(scope, receive, send)


def client_for(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[EmbeddedBackend]:
    backend = EmbeddedBackend(tmp_path / "data")
    yield backend
    backend.close()


async def test_reads_are_not_recorded_state_changes_are_with_their_resource(backend):
    recorded = Recorded()
    app = create_public_app(service_over(backend), audit=recorded.trail)
    async with client_for(app) as client:
        assert (await client.post("/api/v1/logs/query", json={})).status_code == 400
        assert (await client.get("/health")).status_code == 200
        assert recorded.records == []
        answer = await client.put(
            "/api/v1alpha1/incidents/inc-7", json={"status": "acknowledged"}, headers={"X-Request-ID": "req-7"}
        )
    record = recorded.only()
    assert answer.status_code == 500  # no alert store here: the call failed, and the record says so
    assert (record.action, record.category, record.result) == ("incident.update", "management", "failure")
    assert record.resource == AuditResource(type="incident", name="inc-7")
    assert (record.surface, record.producer, record.operation_id) == ("rest", "observer", "updateIncident")
    assert (record.request_id, record.http_method, record.http_path) == (
        "req-7",
        "PUT",
        "/api/v1alpha1/incidents/inc-7",
    )
    assert record.actor == ANONYMOUS and record.metadata == {"status": "500"}


async def test_a_401_from_authentication_is_a_denied_record_naming_what_was_attempted(backend):
    recorded = Recorded()
    auth = AuthSettings(jwks_url="http://127.0.0.1:9/jwks")  # never fetched: no request here carries a token
    app = create_public_app(service_over(backend), auth=auth, audit=recorded.trail)
    async with client_for(app) as client:
        answer = await client.post("/api/v1/logs/query", json={}, headers={"User-Agent": "probe/1"})
        missing = await client.get("/api/v1/nowhere")
        assert (await client.get("/health")).status_code == 200
    assert answer.status_code == 401 and missing.status_code == 401
    first, second = recorded.records
    assert (first.action, first.category, first.result) == ("logs.query", "authorization", "denied")
    assert (first.actor, first.user_agent, first.operation_id) == (ANONYMOUS, "probe/1", "queryLogs")
    assert (second.action, second.result, second.http_path) == ("http.get", "denied", "/api/v1/nowhere")


async def test_reads_of_the_trail_are_recorded_with_the_caller(backend):
    recorded = Recorded()
    app = create_public_app(service_over(backend), audit=recorded.trail)
    app.add_middleware(AsAlice)  # outermost: the audit middleware sees its Subject as it would authentication's
    async with client_for(app) as client:
        await client.post("/api/v1alpha1/audit-logs/query", json=WINDOW)
    record = recorded.only()
    assert (record.action, record.category) == ("auditlogs.query", "access")
    assert (record.actor.type, record.actor.id, record.actor.issuer) == ("user", "alice", "https://idp")
    assert record.resource == AuditResource(type="auditlogs")


async def test_a_403_is_denied_whatever_the_route():
    recorded = Recorded()
    app = FastAPI()

    @app.post("/api/v1alpha1/platform-logs/query", operation_id="queryPlatformLogs")
    async def refused() -> None:
        from fastapi import HTTPException

        raise HTTPException(403, "no")

    app.add_middleware(AuditMiddleware, trail=recorded.trail, describe=describe_observer)
    async with client_for(app) as client:
        assert (await client.post("/api/v1alpha1/platform-logs/query", json={})).status_code == 403
    record = recorded.only()
    assert (record.action, record.category, record.result) == ("platformlogs.query", "authorization", "denied")


async def test_an_exception_is_recorded_as_a_failure_then_raised():
    recorded = Recorded()
    app = FastAPI()

    @app.delete("/api/v1alpha1/things/{name}")
    async def broken(name: str) -> None:
        raise RuntimeError("bug")

    app.add_middleware(AuditMiddleware, trail=recorded.trail, describe=describe_observer)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://test"
    ) as client:
        assert (await client.delete("/api/v1alpha1/things/x")).status_code == 500
    record = recorded.only()
    assert (record.action, record.result, record.category) == ("things.delete", "failure", "management")


async def test_the_source_address_is_the_proxys_only_when_trusted(backend):
    for trusted, expected in ((False, "127.0.0.1"), (True, "192.0.2.7")):
        recorded = Recorded(trust_forwarded_for=trusted)
        app = create_public_app(service_over(backend), audit=recorded.trail)
        async with client_for(app) as client:
            await client.put("/api/v1alpha1/incidents/i", json={}, headers={"X-Forwarded-For": "6.6.6.6, 192.0.2.7"})
        assert recorded.only().source_ip == expected


@pytest.fixture
async def internal(tmp_path: Path) -> AsyncIterator[tuple[Recorded, httpx.AsyncClient]]:
    backend = EmbeddedBackend(tmp_path / "data")
    alerting = build_alerting(
        dsn=str(tmp_path / "alerts.db"),
        suppression_window="1h",
        resolver=backend.registry,
        authorizer=AllowAll(),
        logs=backend,
        metrics=backend,
    )
    recorded = Recorded()
    async with client_for(create_internal_app(alerting, token=TOKEN, audit=recorded.trail)) as client:
        yield recorded, client
    await alerting.close()
    backend.close()


async def test_the_internal_port_records_rule_changes_the_webhook_and_refused_tokens(internal):
    recorded, client = internal
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert (await client.get("/api/v1alpha1/alerts/sources/log/rules/r1", headers=bearer)).status_code == 404
    assert recorded.records == []  # a read
    gone = await client.delete("/api/v1alpha1/alerts/sources/log/rules/r1", headers=bearer)
    webhook = await client.post(WEBHOOK_PATH, json={"not": "an alert"}, headers=bearer)
    refused = await client.post(WEBHOOK_PATH, json={})
    deleted, fired, denied = recorded.records
    assert gone.status_code == 404 and webhook.status_code == 400 and refused.status_code == 401
    assert (deleted.action, deleted.result, deleted.actor) == ("alertrule.delete", "failure", INTERNAL_TOKEN_HOLDER)
    assert deleted.resource == AuditResource(type="alertrule", name="r1")
    assert (fired.action, fired.category, fired.result) == ("alerts.webhook", "management", "failure")
    assert (denied.action, denied.category, denied.result) == ("alerts.webhook", "authorization", "denied")
    assert denied.actor == ANONYMOUS  # refused: it proved nothing, unlike the callers above


def namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


async def test_the_control_plane_records_applies_deletes_and_authorization_changes(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'cp.db'}")
    recorded = Recorded("openchoreo-api")
    from starlette.middleware import Middleware

    audit = Middleware(AuditMiddleware, trail=recorded.trail, describe=describe_controlplane, names_from_body=True)
    try:
        async with client_for(create_controlplane_app(store, middleware=[audit])) as client:
            assert (await client.post("/api/v1/namespaces", json=namespace("acme"))).status_code == 201
            assert (await client.get("/api/v1/namespaces/acme")).status_code == 200
            assert (await client.get("/api/v1/namespaces")).status_code == 200
            replaced = await client.put("/api/v1/namespaces/acme", json=namespace("acme"))
            role = {
                "apiVersion": "openchoreo.dev/v1alpha1",
                "kind": "AuthzRole",
                "metadata": {"name": "reader", "namespace": "acme"},
                "spec": {"actions": ["logs:view"]},
            }
            created_role = await client.post("/api/v1/namespaces/acme/authzroles", json=role)
            deleted_role = await client.delete("/api/v1/namespaces/acme/authzroles/reader")
            missing = await client.delete("/api/v1/namespaces/acme/authzroles/reader")
    finally:
        store.close()
    assert replaced.status_code == 200 and created_role.status_code == 201, created_role.text
    assert deleted_role.status_code == 204 and missing.status_code == 404
    actions = [(r.action, r.category, r.result) for r in recorded.records]
    assert actions == [
        ("namespace.create", "management", "success"),
        ("namespace.update", "management", "success"),
        ("authzrole.create", "authorization", "success"),
        ("authzrole.delete", "authorization", "success"),
        ("authzrole.delete", "authorization", "failure"),
    ]
    assert recorded.records[0].resource == AuditResource(type="namespace", name="acme")  # a create: from its body
    assert recorded.records[1].resource == AuditResource(type="namespace", name="acme")
    assert recorded.records[2].resource == AuditResource(type="authzrole", namespace="acme", name="reader")
    assert recorded.records[3].resource == AuditResource(type="authzrole", namespace="acme", name="reader")
    assert {r.producer for r in recorded.records} == {"openchoreo-api"}
    assert recorded.records[3].operation_id == "deleteAuthzRole"


async def test_a_path_no_route_serves_changes_nothing_and_is_not_recorded_unless_refused(backend):
    recorded = Recorded()
    app = create_public_app(service_over(backend), audit=recorded.trail)
    async with client_for(app) as client:
        assert (await client.post("/wp-login.php", json={})).status_code == 404
        assert (await client.delete("/api/v1/nothing/here")).status_code == 404
    assert recorded.records == []
