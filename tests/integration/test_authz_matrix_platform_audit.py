"""Who may read platform logs and the audit trail, end to end: real tokens from a real OIDC issuer, the embedded
Casbin policy, every REST route and MCP tool of both families.

`platformlogs:view` and `auditlogs:view` are cluster-scoped: only a grant over every namespace covers them. A
caller granted them within one namespace, or granted everything on one component, is refused (403 with the
contract's body over REST, upstream's text over MCP), a refused call never reaches a backend, and the refused
attempt is in the audit trail.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from access.casbin_pdp import CasbinAuthorizer
from access.policy_sources import FilePolicySource
from access.settings import AuthSettings
from adapters.embedded.backend import EmbeddedBackend
from audit.trail import AuditTrail, SinkWriter
from devservers.local import serving
from devservers.sample import BASE_NS
from domain.audit import Actor, AuditRecord, AuditResource
from domain.model import Identity, LogRecord
from domain.timeutil import format_rfc3339, now_ns
from observer.app import create_public_app
from observer.mcp import build_mcp_app
from observer.service import QueryService

MINUTE = 60 * 10**9
START, END = format_rfc3339(BASE_NS - 20 * MINUTE), format_rfc3339(BASE_NS + 20 * MINUTE)
POLICY = """
roles:
  admin: ["*"]
  platform-reader: [platformlogs:view, auditlogs:view]
  auditor: [auditlogs:view]
bindings:
  - {name: admins, role: admin, groups: [platform-admins]}
  - {name: platform-readers, role: platform-reader, groups: [platform-readers]}
  - {name: auditors, role: auditor, groups: [auditors]}
  - {name: acme-platform, role: platform-reader, groups: [acme-platform], namespace: acme}
  - {name: cart-admins, role: admin, groups: [cart-admins], namespace: acme, project: shop, component: cart}
"""
#: The oracle: which of the two actions each caller holds cluster-wide (a namespaced grant counts for nothing).
HOLDS = {
    "platform-admins": {"platformlogs:view", "auditlogs:view"},
    "platform-readers": {"platformlogs:view", "auditlogs:view"},
    "auditors": {"auditlogs:view"},
    "acme-platform": set(),
    "cart-admins": set(),
    "strangers": set(),
}
FORBIDDEN = "insufficient permissions to perform this action"
WINDOW = {"startTime": START, "endTime": END}
REST = [
    ("platformlogs:view", "POST", "/api/v1alpha1/platform-logs/query", WINDOW | {"namespace": ["acme"]}),
    ("platformlogs:view", "POST", "/api/v1alpha1/platform-logs/filter-values", {"query": WINDOW, "filter": "podName"}),
    ("platformlogs:view", "GET", f"/api/v1alpha1/platform-logs?startTime={START}&endTime={END}", None),
    ("auditlogs:view", "POST", "/api/v1alpha1/audit-logs/query", WINDOW | {"resource": {"namespace": ["acme"]}}),
    ("auditlogs:view", "POST", "/api/v1alpha1/audit-logs/filter-values", {"query": WINDOW, "filter": "actor.id"}),
]
TOOLS = [
    ("platformlogs:view", "query_platform_logs", {"start_time": START, "end_time": END, "namespace": ["acme"]}),
    ("auditlogs:view", "query_audit_logs", {"start_time": START, "end_time": END, "resource_namespace": ["acme"]}),
]


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
    backend: Counted


@pytest.fixture(scope="module")
def signing_key(oidc_issuer):
    oidc_issuer.reset()
    key = oidc_issuer.new_key("ES256")
    oidc_issuer.publish(key)
    return key


@pytest.fixture(scope="module")
def plane(tmp_path_factory, oidc_issuer, signing_key) -> Iterator[Plane]:
    root = tmp_path_factory.mktemp("authz-platform-audit")
    embedded = EmbeddedBackend(root / "data")
    pod = Identity(cluster="east", pod_namespace="acme", pod="api-0", container="api", labels=(("app", "api"),))
    record = AuditRecord(
        event_id="evt-1",
        time_ns=BASE_NS,
        actor=Actor("user", "alice"),
        action="incident.update",
        category="management",
        result="success",
        surface="rest",
        resource=AuditResource(type="incident", namespace="acme", name="inc-1"),
    )
    asyncio.run(embedded.write(batch_id="seed", logs=[LogRecord(BASE_NS, "api ready", pod, "INFO")], audit=[record]))
    policy = root / "policy.yaml"
    policy.write_text(POLICY)
    authorizer = CasbinAuthorizer(FilePolicySource(policy))
    backend = Counted(embedded)
    service = QueryService(
        embedded.registry,
        logs=backend,
        events=backend,
        traces=backend,
        metrics=backend,
        authorizer=authorizer,
        platform_logs=backend,
        audit=backend,
    )
    auth = AuthSettings(
        jwks_url=oidc_issuer.jwks_url,
        issuer=oidc_issuer.url,
        audiences=("observer-api",),
        auth_server_base_url=oidc_issuer.url,
    )
    app = create_public_app(service, "", auth, mcp=build_mcp_app(service, None))
    with serving(app, lifespan="on") as url:
        yield Plane(url, backend)
    embedded.close()


@pytest.mark.parametrize("group", list(HOLDS))
async def test_only_cluster_wide_grants_read_platform_logs_and_the_trail(plane, oidc_issuer, signing_key, group):
    token = oidc_issuer.mint(signing_key, groups=[group])
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=plane.url, headers=headers, timeout=30) as http:
        for action, method, path, body in REST:
            before = plane.backend.calls
            response = await http.request(method, path, json=body)
            where = f"{group} {method} {path}"
            if action in HOLDS[group]:
                assert response.status_code == 200, f"{where}: {response.text}"
            else:
                assert (response.status_code, response.json()) == (
                    403,
                    {"title": "forbidden", "errorCode": "", "message": "Access denied"},
                ), where
                assert plane.backend.calls == before, f"{where}: a denied call reached the backend"

    http2 = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=60))
    async with http2, Client(streamable_http_client(f"{plane.url}/mcp", http_client=http2), mode="legacy") as client:
        for action, tool, arguments in TOOLS:
            before = plane.backend.calls
            result = await client.call_tool(tool, arguments)
            text = result.content[0].text
            where = f"{group} {tool}"
            if action in HOLDS[group]:
                assert not result.is_error, f"{where}: {text}"
                answer = json.loads(text)
                assert answer["total"] == 1, where
            else:
                assert result.is_error and text == FORBIDDEN, f"{where}: {text}"
                assert plane.backend.calls == before, f"{where}: a denied call reached the backend"


async def test_the_allowed_answers_hold_the_seeded_line_and_record(plane, oidc_issuer, signing_key):
    token = oidc_issuer.mint(signing_key, groups=["platform-readers"])
    async with httpx.AsyncClient(base_url=plane.url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        logs = (await http.post(REST[0][2], json=REST[0][3])).json()
        trail = (await http.post("/api/v1alpha1/audit-logs/query", json=WINDOW)).json()
    assert [entry["log"] for entry in logs["logs"]] == ["api ready"]
    assert logs["logs"][0]["namespaceName"] == "acme" and logs["logs"][0]["labels"] == {"app": "api"}
    assert [each["event_id"] for each in trail["records"]] == ["evt-1"]


# ----------------------------------------------------------------------------------------------- the trail


@pytest.fixture(scope="module")
def audited(tmp_path_factory, oidc_issuer, signing_key) -> Iterator[str]:
    """The same policy, with the observer's audit trail writing into the embedded backend it queries."""
    root = tmp_path_factory.mktemp("authz-platform-audit-trail")
    embedded = EmbeddedBackend(root / "data")
    policy = root / "policy.yaml"
    policy.write_text(POLICY)
    authorizer = CasbinAuthorizer(FilePolicySource(policy))
    trail = AuditTrail("observer", [SinkWriter(embedded)])
    service = QueryService(
        embedded.registry,
        logs=embedded,
        events=embedded,
        traces=embedded,
        metrics=embedded,
        authorizer=authorizer,
        platform_logs=embedded,
        audit=embedded,
    )
    auth = AuthSettings(
        jwks_url=oidc_issuer.jwks_url,
        issuer=oidc_issuer.url,
        audiences=("observer-api",),
        auth_server_base_url=oidc_issuer.url,
    )
    app = create_public_app(service, "", auth, mcp=build_mcp_app(service, None, audit=trail), audit=trail)
    with serving(app, lifespan="on") as url:
        yield url
    embedded.close()


async def test_a_component_scoped_callers_denied_attempts_appear_in_the_trail(audited, oidc_issuer, signing_key):
    denied = oidc_issuer.mint(signing_key, groups=["cart-admins"])
    reader = oidc_issuer.mint(signing_key, groups=["platform-readers"])
    hour = 3600 * 10**9
    now = {"startTime": format_rfc3339(now_ns() - hour), "endTime": format_rfc3339(now_ns() + hour)}
    async with httpx.AsyncClient(base_url=audited, headers={"Authorization": f"Bearer {denied}"}, timeout=30) as http:
        for _, method, path, body in (REST[0], REST[3]):
            assert (await http.request(method, path, json=body)).status_code == 403
    http2 = httpx2.AsyncClient(headers={"Authorization": f"Bearer {denied}"}, timeout=httpx2.Timeout(30, read=60))
    async with http2, Client(streamable_http_client(f"{audited}/mcp", http_client=http2), mode="legacy") as client:
        result = await client.call_tool(TOOLS[0][1], TOOLS[0][2])
        assert result.is_error and result.content[0].text == FORBIDDEN
    async with httpx.AsyncClient(base_url=audited, headers={"Authorization": f"Bearer {reader}"}, timeout=30) as http:
        answer = await http.post(
            "/api/v1alpha1/audit-logs/query", json=now | {"result": ["denied"], "sortOrder": "asc"}
        )
    assert answer.status_code == 200, answer.text
    records = answer.json()["records"]
    rest = [record for record in records if record.get("surface") == "rest"]
    assert {record["http"]["path"] for record in rest} == {REST[0][2], REST[3][2]}
    assert all(record["actor"]["entitlements"] == {"groups": ["cart-admins"]} for record in records), records
    assert [record["action"] for record in records if record.get("surface") == "mcp"] == ["mcp.query_platform_logs"]
