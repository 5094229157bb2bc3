"""Who may see what, end to end: real tokens from a real OIDC issuer, the embedded Casbin policy, and every REST
endpoint and MCP tool, for six kinds of caller and scopes inside and outside their grants.

The expectation comes from a small oracle written from the policy's prose (docs/authz-policy.md), not from the
code under test. A denied call must never reach a resolver or a backend: spies count every call. Two
endpoints read before they can judge, by design (observer/service.py `span`, observer/alerting/service.py
`update_incident`): a span or an incident is looked up by id to learn its scope, and a denied caller still gets
nothing of it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from sqlalchemy import insert

from access.casbin_pdp import CasbinAuthorizer
from access.policy_sources import FilePolicySource
from access.settings import AuthSettings
from adapters.embedded.backend import EmbeddedBackend
from devservers.local import serving
from devservers.sample import BASE_NS, COMPONENTS, ENVIRONMENTS, PROJECT_UID, identity, platform_points
from domain.model import EventRecord, LogRecord
from domain.timeutil import format_rfc3339
from observer.alerting.db import open_engine
from observer.alerting.entries import EntryStore
from observer.alerting.service import AlertService
from observer.alerting.tables import alert_entries, incident_entries
from observer.app import create_public_app
from observer.mcp import build_mcp_app
from observer.service import QueryService
from tests.contract.data import span as make_span

MINUTE = 60 * 10**9
START, END = format_rfc3339(BASE_NS - 20 * MINUTE), format_rfc3339(BASE_NS + 20 * MINUTE)
TRACE = f"{0xABC:032x}"
INCIDENT = "00000000-0000-4000-9000-000000000001"
RUN = "build-42"

VIEW = ("logs:view", "events:view", "metrics:view", "traces:view", "alerts:view", "incidents:view")
DEVELOP = VIEW + ("incidents:update",)
POLICY = """
roles:
  admin: ["*"]
  viewer: [logs:view, events:view, metrics:view, traces:view, alerts:view, incidents:view]
  developer: ["logs:*", "events:*", "metrics:*", "traces:*", "alerts:*", "incidents:*"]
bindings:
  - {name: admins, role: admin, groups: [platform-admins]}
  - {name: acme-viewers, role: viewer, groups: [acme-viewers], namespace: acme}
  - {name: shop-devs, role: developer, groups: [shop-devs], namespace: acme, project: shop}
  - {name: cart-devs, role: developer, groups: [cart-devs], namespace: acme, project: shop, component: cart}
  - {name: prod-viewers, role: viewer, groups: [prod-viewers], namespace: acme, environments: [prod]}
"""


@dataclass(frozen=True)
class Grant:
    actions: tuple[str, ...]
    namespace: str = ""
    project: str = ""
    component: str = ""
    environments: tuple[str, ...] = ()


#: The oracle: each caller's group and what its binding grants.
CALLERS = {
    "platform-admins": Grant(("*",)),
    "acme-viewers": Grant(VIEW, "acme"),
    "shop-devs": Grant(DEVELOP, "acme", "shop"),
    "cart-devs": Grant(DEVELOP, "acme", "shop", "cart"),
    "prod-viewers": Grant(VIEW, "acme", environments=("prod",)),
    "strangers": None,
}


@dataclass(frozen=True)
class Scope:
    namespace: str
    project: str = ""
    component: str = ""
    environment: str = ""

    def body(self) -> dict[str, str]:
        return {
            k: v
            for k, v in {
                "namespace": self.namespace,
                "project": self.project,
                "component": self.component,
                "environment": self.environment,
            }.items()
            if v
        }


CART_PROD = Scope("acme", "shop", "cart", "prod")
SCOPES = {
    "cart/prod": CART_PROD,
    "cart/dev": Scope("acme", "shop", "cart", "dev"),
    "frontend/prod": Scope("acme", "shop", "frontend", "prod"),
    "acme (all environments)": Scope("acme"),
    "another namespace": Scope("globex", "shop", "cart", "prod"),
}
WORKFLOW = Scope("acme")  # a workflow run sits right under its namespace, with no environment


def allowed(group: str, action: str, scope: Scope) -> bool:
    grant = CALLERS[group]
    if grant is None:
        return False
    if "*" not in grant.actions and action not in grant.actions:
        return False
    for have, want in (
        (grant.namespace, scope.namespace),
        (grant.project, scope.project),
        (grant.component, scope.component),
    ):
        if have and have != want:
            return False
    return not grant.environments or scope.environment in grant.environments


# ----------------------------------------------------------------------------------------------- spies


class Counted:
    """Counts every awaited call of the wrapped object's coroutine methods."""

    def __init__(self, inner: Any):
        self._inner = inner
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if not callable(attribute) or name.startswith("_"):
            return attribute

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return await attribute(*args, **kwargs)

        return counted


@dataclass
class Plane:
    url: str
    policy: Path
    backend: Counted
    resolver: Counted
    entries: Counted

    def calls(self) -> int:
        return self.backend.calls + self.resolver.calls + self.entries.calls


@pytest.fixture(scope="module")
def signing_key(oidc_issuer):
    oidc_issuer.reset()
    key = oidc_issuer.new_key("ES256")
    oidc_issuer.publish(key)
    return key


@pytest.fixture(scope="module")
def plane(tmp_path_factory, oidc_issuer, signing_key) -> Iterator[Plane]:
    root: Path = tmp_path_factory.mktemp("authz-matrix")
    embedded = EmbeddedBackend(root / "data")
    records = {
        "logs": [
            LogRecord(BASE_NS, f"{c} {e} line", identity(c, e), level="INFO")
            for c in ("cart", "frontend")
            for e in ("prod", "dev")
        ]
        + [LogRecord(BASE_NS, "globex line", identity("cart", namespace="globex"))]
        + [LogRecord(BASE_NS, "compile", replace_run(identity("cart")))],
        "events": [
            EventRecord(
                ts_ns=BASE_NS,
                message="scheduled",
                identity=identity("cart"),
                type="Normal",
                reason="Scheduled",
                object_kind="Pod",
                object_name="cart-prod-0",
            )
        ],
        "spans": [make_span("acme", 0xABC, 1, None, 0, 100, component="cart")],
        "metrics": platform_points("acme", BASE_NS - 20 * MINUTE, minutes=5),
    }
    asyncio.run(embedded.write(batch_id="seed", **records))
    entries_engine = open_engine(str(root / "alerts.db"))
    scope_columns = {
        "namespace_name": "acme",
        "project_name": "shop",
        "component_name": "cart",
        "environment_name": "prod",
        "project_id": PROJECT_UID,
        "component_id": COMPONENTS["cart"],
        "environment_id": ENVIRONMENTS["prod"],
    }
    with entries_engine.begin() as conn:
        conn.execute(
            insert(alert_entries).values(
                id="00000000-0000-4000-8000-000000000001",
                timestamp_ns=BASE_NS,
                alert_rule_name="r",
                incident_enabled=True,
                **scope_columns,
            )
        )
        conn.execute(
            insert(incident_entries).values(
                id=INCIDENT,
                alert_id="00000000-0000-4000-8000-000000000001",
                timestamp_ns=BASE_NS,
                status="active",
                triggered_at_ns=BASE_NS,
                **scope_columns,
            )
        )
    policy = root / "policy.yaml"
    policy.write_text(POLICY)
    authorizer = CasbinAuthorizer(FilePolicySource(policy))
    backend, resolver, entries = Counted(embedded), Counted(embedded.registry), Counted(EntryStore(entries_engine))
    service = QueryService(
        resolver, logs=backend, events=backend, traces=backend, metrics=backend, authorizer=authorizer
    )
    alert_service = AlertService(entries, resolver, authorizer)
    auth = AuthSettings(
        jwks_url=oidc_issuer.jwks_url,
        issuer=oidc_issuer.url,
        audiences=("observer-api",),
        auth_server_base_url=oidc_issuer.url,
    )
    app = create_public_app(service, "", auth, mcp=build_mcp_app(service, alert_service), alert_service=alert_service)
    with serving(app, lifespan="on") as url:
        yield Plane(url, policy, backend, resolver, entries)
    embedded.close()


def replace_run(who):
    return replace(
        who,
        project="",
        project_uid="",
        component="",
        component_uid="",
        environment="",
        environment_uid="",
        pod=f"{RUN}-compile-1",
        pod_namespace="workflows-acme",
        workflow_run=RUN,
        task="compile",
    )


# ----------------------------------------------------------------------------------------------- calls

WINDOW = {"startTime": START, "endTime": END}


def rest_calls(scope: Scope) -> list[tuple[str, str, str, dict | None, Scope]]:
    """(action, method, path, body, the scope decided on) for every public REST endpoint."""
    scoped = WINDOW | {"searchScope": scope.body()}
    calls = [
        ("logs:view", "POST", "/api/v1/logs/query", scoped, scope),
        ("events:view", "POST", "/api/v1/events/query", scoped, scope),
        ("metrics:view", "POST", "/api/v1/metrics/query", scoped | {"metric": "resource", "step": "5m"}, scope),
        ("traces:view", "POST", "/api/v1alpha1/traces/query", scoped, scope),
        ("traces:view", "POST", f"/api/v1alpha1/traces/{TRACE}/spans/query", scoped, scope),
        ("alerts:view", "POST", "/api/v1alpha1/alerts/query", scoped, scope),
        ("incidents:view", "POST", "/api/v1alpha1/incidents/query", scoped, scope),
    ]
    if scope.project:  # the topology of a project (it needs one)
        calls.append(("metrics:view", "POST", "/api/v1alpha1/metrics/runtime-topology", scoped, scope))
    if scope == CART_PROD:  # the ones addressed by id are judged on the scope of what they address
        calls += [
            ("traces:view", "GET", f"/api/v1alpha1/traces/{TRACE}/spans/{1:016x}", None, scope),
            ("incidents:update", "PUT", f"/api/v1alpha1/incidents/{INCIDENT}", {"status": "acknowledged"}, scope),
        ]
    workflow = WINDOW | {"searchScope": {"namespace": "acme", "workflowRunName": RUN}}
    if scope.namespace == "acme" and not scope.project:
        calls += [
            ("logs:view", "POST", "/api/v1/logs/query", workflow, WORKFLOW),
            ("events:view", "POST", "/api/v1/events/query", workflow, WORKFLOW),
        ]
    return calls


def mcp_calls(scope: Scope) -> list[tuple[str, str, dict, Scope]]:
    args = {
        "namespace": scope.namespace,
        "project": scope.project,
        "component": scope.component,
        "environment": scope.environment,
        "start_time": START,
        "end_time": END,
    }
    args = {k: v for k, v in args.items() if v}
    calls = [
        ("logs:view", "query_component_logs", args, scope),
        ("events:view", "query_component_events", args, scope),
        ("metrics:view", "query_resource_metrics", args, scope),
        ("metrics:view", "query_http_metrics", args, scope),
        ("traces:view", "query_traces", args, scope),
        ("traces:view", "query_trace_spans", args | {"trace_id": TRACE}, scope),
        ("alerts:view", "query_alerts", args, scope),
        ("incidents:view", "query_incidents", args, scope),
    ]
    if scope.environment:
        calls += [("finops:view", "query_costs", args, scope), ("finops:view", "query_recommendations", args, scope)]
    if scope == CART_PROD:
        calls.append(("traces:view", "get_span_details", {"trace_id": TRACE, "span_id": f"{1:016x}"}, scope))
    if scope.namespace == "acme" and not scope.project:
        workflow = {"namespace": "acme", "workflow_run_name": RUN, "start_time": START, "end_time": END}
        calls += [
            ("logs:view", "query_workflow_logs", workflow, WORKFLOW),
            ("events:view", "query_workflow_events", workflow, WORKFLOW),
        ]
    return calls


READS_BEFORE_JUDGING = {"get_span_details", "/spans/0000000000000001", "/incidents/"}


def reads_first(name: str) -> bool:
    return any(marker in name for marker in READS_BEFORE_JUDGING)


FORBIDDEN = "insufficient permissions to perform this action"


@pytest.mark.parametrize("group", list(CALLERS))
@pytest.mark.parametrize("scope_name", list(SCOPES))
async def test_rest_and_mcp_answer_exactly_where_the_policy_allows(plane, oidc_issuer, signing_key, group, scope_name):
    scope = SCOPES[scope_name]
    token = oidc_issuer.mint(signing_key, groups=[group])
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=plane.url, headers=headers, timeout=30) as http:
        for action, method, path, body, judged_on in rest_calls(scope):
            before = plane.calls()
            response = await http.request(method, path, json=body)
            expected = allowed(group, action, judged_on)
            where = f"{group} {method} {path} on {judged_on}"
            if expected:
                assert response.status_code == 200, f"{where}: {response.text}"
            else:
                assert (response.status_code, response.json()) == (
                    403,
                    {"title": "forbidden", "errorCode": "", "message": "Access denied"},
                ), where
                if not reads_first(path):
                    assert plane.calls() == before, f"{where}: a denied call reached a resolver or backend"

    http2 = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=60))
    async with http2, Client(streamable_http_client(f"{plane.url}/mcp", http_client=http2), mode="legacy") as client:
        for action, tool, arguments, judged_on in mcp_calls(scope):
            before = plane.calls()
            result = await client.call_tool(tool, arguments)
            text = result.content[0].text
            expected = allowed(group, action, judged_on)
            where = f"{group} {tool} on {judged_on}"
            if expected:
                assert text != FORBIDDEN, where
                if action != "finops:view":  # no cost backend: an allowed call gets a clear tool error
                    assert not result.is_error, f"{where}: {text}"
                    json.loads(text)
            else:
                assert result.is_error and text == FORBIDDEN, f"{where}: {text}"
                if not reads_first(tool):
                    assert plane.calls() == before, f"{where}: a denied call reached a resolver or backend"


async def test_no_token_is_refused_before_anything_runs(plane):
    before = plane.calls()
    async with httpx.AsyncClient(base_url=plane.url, timeout=30) as http:
        response = await http.post("/api/v1/logs/query", json=WINDOW | {"searchScope": CART_PROD.body()})
        mcp = await http.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert response.status_code == 401 and response.json()["error"] == "MISSING_TOKEN"
    assert mcp.status_code == 401 and mcp.headers["www-authenticate"].startswith("Bearer resource_metadata=")
    assert plane.calls() == before


async def test_a_grant_and_a_revoke_apply_to_the_very_next_mcp_call(plane, oidc_issuer, signing_key):
    """Policy edits reach the next call on an open MCP session: no decision outlives a revoke."""
    token = oidc_issuer.mint(signing_key, groups=["late-joiners"])
    http2 = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(30, read=60))
    arguments = {**CART_PROD.body(), "start_time": START, "end_time": END}
    grant = "  - {name: late, role: viewer, groups: [late-joiners], namespace: acme}\n"
    try:
        async with (
            http2,
            Client(streamable_http_client(f"{plane.url}/mcp", http_client=http2), mode="legacy") as client,
        ):
            denied = await client.call_tool("query_component_logs", arguments)
            assert denied.is_error and denied.content[0].text == FORBIDDEN
            plane.policy.write_text(POLICY + grant)
            granted = await client.call_tool("query_component_logs", arguments)
            assert not granted.is_error and json.loads(granted.content[0].text)["logs"]
            plane.policy.write_text(POLICY)
            revoked = await client.call_tool("query_component_logs", arguments)
            assert revoked.is_error and revoked.content[0].text == FORBIDDEN
    finally:
        plane.policy.write_text(POLICY)
