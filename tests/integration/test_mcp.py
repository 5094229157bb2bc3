"""MCP at /mcp over real HTTP: the official `mcp` client against the public app served by uvicorn on loopback,
over a real embedded backend.

What is held here: tools/list is exactly upstream's 15 tools with their required arguments and pinned
descriptions, server instructions and an output schema per tool; every tool answers the same JSON as its REST
endpoint on the same server; the same bad input gets REST's message as a tool error (in the tool's argument
names), an unknown argument is refused by name, and only an unknown tool is a protocol error; no answer
exceeds what one MCP message may carry (a page too large is cut and continues with its cursor); the caller
is the subject of the HTTP request carrying each call (a decision or a token that changes mid-session applies
to the next call), and a denied caller costs no backend or resolver call; the extended tools page and read log
context. A last test runs the real authentication middleware in front of /mcp.

Authentication is stood in for by a small ASGI layer that turns an `x-test-subject` header into the Subject,
exactly where the real middleware puts it (`scope["state"]["subject"]`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
import httpx2
import pytest
from jsonschema import Draft202012Validator
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.types.version import MODERN_PROTOCOL_VERSIONS
from sqlalchemy import insert
from starlette.types import ASGIApp, Receive, Scope, Send

from access.model import PermissionDenied, Resource, Subject
from access.settings import AuthSettings
from adapters.embedded.backend import EmbeddedBackend
from devservers.local import serving
from devservers.sample import BASE_NS, COMPONENTS, ENVIRONMENTS, NS, PROJECT_UID, identity, platform_points
from domain.audit import Actor, AuditRecord
from domain.model import EventRecord, Identity, LogRecord
from domain.timeutil import format_rfc3339
from observer.alerting.db import open_engine
from observer.alerting.entries import EntryStore
from observer.alerting.service import AlertService
from observer.alerting.tables import alert_entries, incident_entries
from observer.app import create_public_app
from observer.mcp import build_mcp_app
from observer.mcp.server import CONTRACT_TOOLS, EXTENDED_TOOLS
from observer.mcp.tools import ObserverTools
from observer.routers import alerts as alerts_router
from observer.service import QueryService
from tests.contract.data import span as make_span

SECOND = 10**9
MINUTE = 60 * SECOND
START = format_rfc3339(BASE_NS - 20 * MINUTE)
END = format_rfc3339(BASE_NS + 20 * MINUTE)
CART = {"namespace": NS, "project": "shop", "component": "cart", "environment": "prod"}
TRACE = f"{0xABC:032x}"
RUN = "build-42"
MAIN_LINES = 150
#: Lines of the cart component in prod: two pods' main containers, and one sidecar line.
CART_LINES = 2 * MAIN_LINES + 1

FORBIDDEN = "insufficient permissions to perform this action"

#: Lines of the payments component too large together for one MCP message (25 minutes after the other data,
#: outside every other test's window), and one line of frontend too large on its own (35 minutes after).
BIG_LINES = 1200
BIG_AT, HUGE_AT = BASE_NS + 25 * MINUTE, BASE_NS + 35 * MINUTE
BIG = {
    "namespace": NS,
    "project": "shop",
    "component": "payments",
    "environment": "prod",
    "start_time": format_rfc3339(BIG_AT),
    "end_time": format_rfc3339(BIG_AT + 5 * MINUTE),
}
HUGE = {
    "namespace": NS,
    "project": "shop",
    "component": "frontend",
    "environment": "prod",
    "start_time": format_rfc3339(HUGE_AT),
    "end_time": format_rfc3339(HUGE_AT + MINUTE),
}


def _window(**extra: Any) -> dict[str, Any]:
    return {"start_time": START, "end_time": END, **extra}


def big_line(i: int) -> str:
    return f'{i:04d} "quoted" back\\slash \x01\x02 ' + "é" * 200 + "x" * 2800


#: The required arguments of each tool, as contract notes §3 pins them. All arguments are the contract's, plus
#: `cursor` on the logs and events tools (REST's paging extension: a page cut to fit one message continues there).
REQUIRED = {
    "query_component_logs": {"namespace", "start_time", "end_time"},
    "query_workflow_logs": {"namespace", "start_time", "end_time"},
    "query_component_events": {"namespace", "start_time", "end_time"},
    "query_workflow_events": {"namespace", "start_time", "end_time"},
    "query_resource_metrics": {"namespace", "start_time", "end_time"},
    "query_http_metrics": {"namespace", "start_time", "end_time"},
    "query_traces": {"namespace", "start_time", "end_time"},
    "query_trace_spans": {"trace_id", "namespace", "start_time", "end_time"},
    "get_span_details": {"trace_id", "span_id"},
    "query_alerts": {"namespace", "start_time", "end_time"},
    "query_incidents": {"namespace", "start_time", "end_time"},
    "query_costs": {"namespace", "environment", "start_time", "end_time"},
    "query_recommendations": {"namespace", "environment", "start_time", "end_time"},
    "query_platform_logs": {"start_time", "end_time"},
    "query_audit_logs": {"start_time", "end_time"},
}
ALL_ARGUMENTS = {
    "query_component_logs": {
        "namespace",
        "project",
        "component",
        "environment",
        "start_time",
        "end_time",
        "search_phrase",
        "log_levels",
        "limit",
        "sort_order",
        "cursor",
    },
    "query_workflow_logs": {
        "namespace",
        "workflow_run_name",
        "task_name",
        "start_time",
        "end_time",
        "search_phrase",
        "log_levels",
        "limit",
        "sort_order",
        "cursor",
    },
    "query_component_events": {
        "namespace",
        "project",
        "component",
        "environment",
        "start_time",
        "end_time",
        "limit",
        "sort_order",
        "cursor",
    },
    "query_workflow_events": {
        "namespace",
        "workflow_run_name",
        "start_time",
        "end_time",
        "limit",
        "sort_order",
        "cursor",
    },
    "query_resource_metrics": {"namespace", "project", "component", "environment", "start_time", "end_time", "step"},
    "query_http_metrics": {"namespace", "project", "component", "environment", "start_time", "end_time", "step"},
    "query_traces": {
        "namespace",
        "project",
        "component",
        "environment",
        "start_time",
        "end_time",
        "limit",
        "sort_order",
    },
    "query_trace_spans": {
        "trace_id",
        "namespace",
        "project",
        "component",
        "environment",
        "start_time",
        "end_time",
        "limit",
        "sort_order",
    },
    "get_span_details": {"trace_id", "span_id"},
    "query_alerts": {
        "namespace",
        "project",
        "component",
        "environment",
        "start_time",
        "end_time",
        "limit",
        "sort_order",
    },
    "query_incidents": {
        "namespace",
        "project",
        "component",
        "environment",
        "start_time",
        "end_time",
        "limit",
        "sort_order",
    },
    "query_costs": {"namespace", "environment", "project", "component", "start_time", "end_time", "granularity"},
    "query_recommendations": {"namespace", "environment", "project", "component", "start_time", "end_time"},
    "query_platform_logs": {
        "start_time",
        "end_time",
        "cluster_instance",
        "namespace",
        "pod_name",
        "container_name",
        "labels",
        "search_phrase",
        "log_levels",
        "limit",
        "sort_order",
        "cursor",
    },
    "query_audit_logs": {
        "start_time",
        "end_time",
        *(f"actor_{name}" for name in ("id", "type", "issuer", "session_id", "entitlements")),
        *(
            f"resource_{name}"
            for name in ("type", "namespace", "environment", "project", "component", "resource", "name")
        ),
        "action",
        "category",
        "result",
        "surface",
        "producer",
        "operation_id",
        "request_id",
        "event_id",
        "source_ip",
        "user_agent",
        "search_phrase",
        "limit",
        "sort_order",
        "include_timeline",
        "timeline_interval",
        "cursor",
    },
}
#: Arguments of the newer tools that are not strings: lists of alternatives, a label map, a switch.
NOT_STRINGS = {"labels": "object", "include_timeline": "boolean"}


# ----------------------------------------------------------------------------------------------- the plane


class Counting:
    """The embedded backend (or its name registry) with every read counted into `calls`, to show which calls
    reach them."""

    def __init__(self, target: Any, calls: dict[str, int]) -> None:
        self._target = target
        self.calls = calls

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._target, name)
        if not (name.startswith(("query_", "get_")) or name == "resolve"):
            return target

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            return await target(*args, **kwargs)

        return counted


@dataclass
class SwitchableAuthorizer:
    """A real decision point whose policy a test changes between calls: `allowed` None lets everyone in,
    otherwise only subjects whose first entitlement value is in it. Every question is recorded."""

    allowed: set[str] | None = None
    asked: list[tuple[Subject | None, str, Resource]] = field(default_factory=list)

    async def authorize(self, subject: Subject | None, action: str, resource: Resource) -> None:
        self.asked.append((subject, action, resource))
        if self.allowed is None:
            return
        if subject is None or subject.entitlement_values[0] not in self.allowed:
            raise PermissionDenied()


class HeaderSubject:
    """Stands in for the authentication middleware: `x-test-subject: alice` becomes a user Subject in
    `scope["state"]["subject"]`, the place the real middleware uses."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for key, value in scope["headers"]:
                if key == b"x-test-subject":
                    name = value.decode()
                    scope.setdefault("state", {})["subject"] = Subject("user", "groups", (name,), token=f"t-{name}")
        await self.app(scope, receive, send)


def seed_records() -> dict[str, Any]:
    cart0, cart1 = identity("cart", pod="cart-prod-0"), identity("cart", pod="cart-prod-1")
    sidecar = replace(cart0, container="istio-proxy")
    build = Identity(
        namespace=NS,
        pod=f"{RUN}-compile-1",
        pod_namespace=f"workflows-{NS}",
        container="main",
        workflow_run=RUN,
        task="compile",
    )
    logs = [
        LogRecord(
            ts_ns=BASE_NS + i * SECOND,
            body=f"main line {i:03d}",
            level="ERROR" if i % 10 == 0 else "INFO",
            identity=cart0,
        )
        for i in range(MAIN_LINES)
    ]
    logs += [
        LogRecord(
            ts_ns=BASE_NS + i * SECOND + SECOND // 2, body=f"other pod line {i:03d}", level="INFO", identity=cart1
        )
        for i in range(MAIN_LINES)
    ]
    logs.append(
        LogRecord(ts_ns=BASE_NS + 10 * SECOND, body="sidecar at the same instant", level="INFO", identity=sidecar)
    )
    logs += [
        LogRecord(ts_ns=BASE_NS + i * SECOND, body=f"frontend {i}", level="WARN", identity=identity("frontend"))
        for i in range(5)
    ]
    logs += [
        LogRecord(ts_ns=BASE_NS + (200 + i) * SECOND, body=f"compile step {i}", level="INFO", identity=build)
        for i in range(6)
    ]
    logs += [
        LogRecord(ts_ns=BIG_AT + i * 10**6, body=big_line(i), level="INFO", identity=identity("payments"))
        for i in range(BIG_LINES)
    ]
    logs.append(LogRecord(ts_ns=HUGE_AT, body="huge " + "y" * 3_000_000, level="INFO", identity=identity("frontend")))
    events = [
        EventRecord(
            ts_ns=BASE_NS + i * SECOND,
            message=f"cart event {i}",
            identity=cart0,
            type="Normal",
            reason="Scheduled",
            object_kind="Pod",
            object_name="cart-prod-0",
            object_namespace=f"dp-{NS}-prod",
        )
        for i in range(5)
    ]
    events += [
        EventRecord(
            ts_ns=BASE_NS + (210 + i) * SECOND,
            message=f"job event {i}",
            identity=build,
            type="Normal",
            reason="SawCompletedJob",
        )
        for i in range(2)
    ]
    spans = [
        make_span(NS, 0xABC, 1, None, 0, 120, component="frontend"),
        make_span(NS, 0xABC, 2, 1, 10, 80, component="cart", status="error", kind="Client"),
        make_span(NS, 0xABC, 3, 2, 20, 40, component="cart"),
    ]
    audit = [
        AuditRecord(
            event_id="evt-seed-1",
            time_ns=BASE_NS,
            actor=Actor("user", "alice"),
            action="incident.update",
            category="management",
            result="success",
            surface="rest",
        )
    ]
    return {
        "logs": logs,
        "events": events,
        "spans": spans,
        "metrics": platform_points(NS, BASE_NS - 20 * MINUTE),
        "audit": audit,
    }


def seed_alerts(entries: EntryStore) -> None:
    """Alert and incident rows of the cart component in prod, as the webhook intake stores them."""
    scope = {
        "namespace_name": NS,
        "project_name": "shop",
        "component_name": "cart",
        "environment_name": "prod",
        "project_id": PROJECT_UID,
        "component_id": COMPONENTS["cart"],
        "environment_id": ENVIRONMENTS["prod"],
    }
    with entries.engine.begin() as conn:
        for i in range(3):
            conn.execute(
                insert(alert_entries).values(
                    id=f"00000000-0000-4000-8000-00000000000{i}",
                    timestamp_ns=BASE_NS + i * MINUTE,
                    alert_rule_name="high-error-rate",
                    alert_value=f"{12.5 + i}",
                    incident_enabled=i < 2,
                    severity="critical",
                    description="errors above 5%",
                    source_type="log",
                    source_query="ERROR",
                    condition_operator="gt",
                    condition_threshold=5.0,
                    condition_window="5m",
                    condition_interval="1m",
                    **scope,
                )
            )
        for i in range(2):
            conn.execute(
                insert(incident_entries).values(
                    id=f"00000000-0000-4000-9000-00000000000{i}",
                    alert_id=f"00000000-0000-4000-8000-00000000000{i}",
                    timestamp_ns=BASE_NS + i * MINUTE,
                    status="active",
                    triggered_at_ns=BASE_NS + i * MINUTE,
                    **scope,
                )
            )


@dataclass
class Plane:
    url: str
    extended_url: str
    backend: Counting
    authorizer: SwitchableAuthorizer


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    """Two public apps over one backend, decision point and alert store: the default tool set (with the alert
    service) and the extended one (without it, to show what an observer without alerting answers)."""
    data = tmp_path_factory.mktemp("mcp")
    backend = EmbeddedBackend(data / "data")
    asyncio.run(backend.write(batch_id="seed", **seed_records()))
    entries = EntryStore(open_engine(str(data / "alerts.db")))
    seed_alerts(entries)
    calls: dict[str, int] = {}
    counting, resolver = Counting(backend, calls), Counting(backend.registry, calls)
    authorizer = SwitchableAuthorizer()
    service = QueryService(
        resolver,
        logs=counting,
        events=counting,
        traces=counting,
        metrics=counting,
        authorizer=authorizer,
        platform_logs=counting,
        audit=counting,
    )
    alert_service = AlertService(entries, resolver, authorizer)
    app = create_public_app(service, mcp=build_mcp_app(service, alert_service))
    app.include_router(alerts_router.router)  # the REST side of the comparison
    app.state.alert_service = alert_service
    extended = create_public_app(service, mcp=build_mcp_app(service, extended=True))
    with (
        serving(HeaderSubject(app), lifespan="on") as url,
        serving(HeaderSubject(extended), lifespan="on") as extended_url,
    ):
        yield Plane(url, extended_url, counting, authorizer)
    backend.close()
    entries.engine.dispose()


@pytest.fixture(autouse=True)
def open_policy(plane: Plane) -> Iterator[None]:
    plane.authorizer.allowed = None
    yield
    plane.authorizer.allowed = None


@contextlib.asynccontextmanager
async def mcp_client(
    base_url: str, subject: str = "alice", mode: str = "legacy"
) -> AsyncIterator[tuple[Client, httpx2.AsyncClient]]:
    """The official client over streamable HTTP at exactly `/mcp`. `legacy` is the initialize handshake with an
    `Mcp-Session-Id` session, as OpenChoreo's Go clients speak it; the HTTP client is yielded so a test can
    change the caller's headers mid-session."""
    http = httpx2.AsyncClient(headers={"x-test-subject": subject}, timeout=httpx2.Timeout(30, read=60))
    async with http, Client(streamable_http_client(f"{base_url}/mcp", http_client=http), mode=mode) as client:
        yield client, http


def text_of(result: Any) -> str:
    assert len(result.content) == 1 and result.content[0].type == "text", result
    return result.content[0].text


def ok(result: Any) -> dict[str, Any]:
    """A successful result's JSON, after checking that text and structuredContent carry the same object."""
    assert not result.is_error, text_of(result)
    body = json.loads(text_of(result))
    assert result.structured_content == body
    return body


def error_text(result: Any) -> str:
    assert result.is_error, text_of(result)
    return text_of(result)


async def rest(base_url: str, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base_url, headers={"x-test-subject": "alice"}, timeout=30) as http:
        response = await http.request(method, path, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def without(body: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key not in keys}


# ----------------------------------------------------------------------------------------------- tools/list


async def test_tools_list_is_exactly_the_contracts_15(plane: Plane) -> None:
    async with mcp_client(plane.url) as (client, _):
        assert client.server_info is not None
        assert (client.server_info.name, client.server_info.version) == ("openchoreo-observer", "1.0.0")
        caps = client.server_capabilities
        assert caps.tools is not None and caps.resources is None and caps.prompts is None
        tools = (await client.list_tools()).tools

    assert [tool.name for tool in tools] == list(CONTRACT_TOOLS)
    assert set(CONTRACT_TOOLS) == set(REQUIRED)
    descriptions = set()
    for tool in tools:
        schema = tool.input_schema
        assert schema["type"] == "object"
        assert set(schema["required"]) == REQUIRED[tool.name], tool.name
        assert set(schema["properties"]) == ALL_ARGUMENTS[tool.name], tool.name
        assert len(tool.description or "") >= 20
        descriptions.add(tool.description)
        for name, prop in schema["properties"].items():
            assert prop.get("description"), (tool.name, name)
            if name == "limit":
                assert prop["type"] == "number"
                expected = (
                    "Maximum number of log entries to return. Default: 100"
                    if tool.name.endswith("_logs")
                    else "Maximum number of entries to return. Default: 100"
                )
                if tool.name == "query_audit_logs":
                    expected = "Maximum number of records to return. Default: 100, at most 1000"
                assert prop["description"] == expected
            elif name == "sort_order":
                assert prop == {
                    "type": "string",
                    "description": "Sort order by timestamp: 'asc' (oldest first) or 'desc' (newest first)."
                    " Default: 'desc'",
                    "enum": ["asc", "desc"],
                }
            elif name == "log_levels":
                assert prop["type"] == "array" and prop["items"] == {
                    "type": "string",
                    "enum": ["DEBUG", "INFO", "WARN", "ERROR"],
                }
            elif tool.name in ("query_platform_logs", "query_audit_logs") and prop["type"] != "string":
                assert prop["type"] == NOT_STRINGS.get(name, "array"), (tool.name, name)
            else:
                assert prop["type"] == "string", (tool.name, name)
    assert len(descriptions) == len(tools)


async def test_the_server_explains_itself_and_every_tool_declares_its_output(plane: Plane) -> None:
    """`instructions` say what the tools are for and how scope, time and paging work; every tool refuses
    arguments it does not declare (in its schema too) and declares an output schema (valid JSON Schema)."""
    async with mcp_client(plane.url) as (client, _):
        instructions = client.instructions or ""
        tools = (await client.list_tools()).tools
    for words in ("namespace", "RFC3339", "30 days", "nextCursor", "cursor", "limit", "insufficient permissions"):
        assert words in instructions, words
    for tool in tools:
        assert tool.input_schema["additionalProperties"] is False, tool.name
        assert tool.output_schema and tool.output_schema["type"] == "object", tool.name
        Draft202012Validator.check_schema(tool.output_schema)
        assert tool.annotations is not None and tool.annotations.read_only_hint


VALID_CALLS = [
    ("query_component_logs", {**CART, **_window(limit=3)}),
    ("query_workflow_logs", {"namespace": NS, "workflow_run_name": RUN, **_window()}),
    ("query_component_events", {**CART, **_window()}),
    ("query_workflow_events", {"namespace": NS, "workflow_run_name": RUN, **_window()}),
    ("query_resource_metrics", {**CART, **_window()}),
    ("query_http_metrics", {**CART, **_window()}),
    ("query_traces", {**CART, **_window()}),
    ("query_trace_spans", {"trace_id": TRACE, "namespace": NS, **_window()}),
    ("get_span_details", {"trace_id": TRACE, "span_id": f"{2:016x}"}),
    ("query_alerts", {**CART, **_window()}),
    ("query_incidents", {**CART, **_window()}),
    ("query_platform_logs", {"pod_name": ["cart-prod-0"], **_window(limit=3)}),
    ("query_audit_logs", _window()),
]
EXTENDED_CALLS = [
    ("query_runtime_topology", {"namespace": NS, "project": "shop", "environment": "prod", **_window()}),
    (
        "get_log_context",
        {
            **CART,
            "timestamp": format_rfc3339(BASE_NS + 10 * SECOND),
            "container_name": "main",
            "pod_name": "cart-prod-0",
        },
    ),
    ("query_log_patterns", {**CART, **_window()}),
]


async def test_every_answer_validates_against_its_tools_output_schema(plane: Plane) -> None:
    """Every tool that can answer (the cost tools cannot until a cost backend exists) does, with data, and
    its structuredContent satisfies the outputSchema it lists (the official client checks that too)."""
    for url, calls in ((plane.url, VALID_CALLS), (plane.extended_url, EXTENDED_CALLS)):
        async with mcp_client(url) as (client, _):
            schemas = {tool.name: tool.output_schema for tool in (await client.list_tools()).tools}
            for tool, arguments in calls:
                body = ok(await client.call_tool(tool, arguments))
                assert any(body.values()), tool
                Draft202012Validator(schemas[tool]).validate(body)
    answered = {tool for tool, _ in VALID_CALLS + EXTENDED_CALLS}
    assert answered == set(CONTRACT_TOOLS + EXTENDED_TOOLS) - {"query_costs", "query_recommendations"}


async def test_the_same_list_for_every_subject_and_on_the_modern_protocol(plane: Plane) -> None:
    """No visibility filter (O3: an unbound subject sees all 15), and the 2026 per-request protocol, which the
    SDK client negotiates by default, serves the same tools."""
    plane.authorizer.allowed = {"nobody"}
    async with mcp_client(plane.url, subject="unbound", mode="auto") as (client, _):
        assert client.protocol_version in MODERN_PROTOCOL_VERSIONS
        tools = (await client.list_tools()).tools
        assert [tool.name for tool in tools] == list(CONTRACT_TOOLS)
        assert (
            error_text(await client.call_tool("query_component_logs", {**CART, "start_time": START, "end_time": END}))
            == FORBIDDEN
        )


async def test_exactly_slash_mcp_opens_a_stateful_session(plane: Plane) -> None:
    """Raw streamable HTTP at `/mcp` (no trailing slash, no redirect): initialize answers an Mcp-Session-Id,
    and the session serves the next request."""
    headers = {
        "accept": "application/json, text/event-stream",
        "content-type": "application/json",
        "x-test-subject": "alice",
    }
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}},
    }
    async with httpx.AsyncClient(base_url=plane.url, headers=headers, timeout=30) as http:
        response = await http.post("/mcp", json=initialize)
        assert response.status_code == 200, response.text
        session = response.headers["mcp-session-id"]
        assert "openchoreo-observer" in response.text
        session_headers = {"mcp-session-id": session, "mcp-protocol-version": "2025-06-18"}
        notified = await http.post(
            "/mcp", headers=session_headers, json={"jsonrpc": "2.0", "method": "notifications/initialized"}
        )
        assert notified.status_code == 202
        listed = await http.post(
            "/mcp", headers=session_headers, json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
        )
        assert listed.status_code == 200
        assert all(name in listed.text for name in CONTRACT_TOOLS)
        unknown = await http.post(
            "/mcp",
            headers={**session_headers, "mcp-session-id": "not-a-session"},
            json={"jsonrpc": "2.0", "id": 3, "method": "tools/list"},
        )
        assert unknown.status_code == 404
        assert (await http.delete("/mcp", headers=session_headers)).status_code == 200


# ----------------------------------------------------------------------------------------------- same data as REST


REST_CASES = [
    pytest.param(
        "query_component_logs",
        {**CART, **_window(limit=40, sort_order="asc", log_levels=["ERROR", "INFO"])},
        (
            "POST",
            "/api/v1/logs/query",
            {
                "searchScope": CART,
                "startTime": START,
                "endTime": END,
                "limit": 40,
                "sortOrder": "asc",
                "logLevels": ["ERROR", "INFO"],
            },
        ),
        id="component-logs",
    ),
    pytest.param(
        "query_component_logs",
        {"namespace": NS, "project": "shop", **_window(search_phrase="line 04")},
        (
            "POST",
            "/api/v1/logs/query",
            {
                "searchScope": {"namespace": NS, "project": "shop"},
                "startTime": START,
                "endTime": END,
                "searchPhrase": "line 04",
            },
        ),
        id="project-logs-phrase",
    ),
    pytest.param(
        "query_workflow_logs",
        {"namespace": NS, "workflow_run_name": RUN, "task_name": "compile", **_window()},
        (
            "POST",
            "/api/v1/logs/query",
            {
                "searchScope": {"namespace": NS, "workflowRunName": RUN, "taskName": "compile"},
                "startTime": START,
                "endTime": END,
            },
        ),
        id="workflow-logs",
    ),
    pytest.param(
        "query_component_events",
        {**CART, **_window(limit=3)},
        ("POST", "/api/v1/events/query", {"searchScope": CART, "startTime": START, "endTime": END, "limit": 3}),
        id="component-events",
    ),
    pytest.param(
        "query_workflow_events",
        {"namespace": NS, "workflow_run_name": RUN, **_window(sort_order="asc")},
        (
            "POST",
            "/api/v1/events/query",
            {
                "searchScope": {"namespace": NS, "workflowRunName": RUN},
                "startTime": START,
                "endTime": END,
                "sortOrder": "asc",
            },
        ),
        id="workflow-events",
    ),
    pytest.param(
        "query_resource_metrics",
        {**CART, **_window(step="1m")},
        (
            "POST",
            "/api/v1/metrics/query",
            {"metric": "resource", "searchScope": CART, "startTime": START, "endTime": END, "step": "1m"},
        ),
        id="resource-metrics",
    ),
    pytest.param(
        "query_http_metrics",
        {"namespace": NS, "project": "shop", "environment": "prod", **_window()},
        (
            "POST",
            "/api/v1/metrics/query",
            {
                "metric": "http",
                "startTime": START,
                "endTime": END,
                "searchScope": {"namespace": NS, "project": "shop", "environment": "prod"},
            },
        ),
        id="http-metrics",
    ),
    pytest.param(
        "query_traces",
        {"namespace": NS, "project": "shop", **_window(limit=10)},
        (
            "POST",
            "/api/v1alpha1/traces/query",
            {"searchScope": {"namespace": NS, "project": "shop"}, "startTime": START, "endTime": END, "limit": 10},
        ),
        id="traces",
    ),
    pytest.param(
        "query_trace_spans",
        {"trace_id": TRACE.upper(), "namespace": NS, "project": "shop", **_window()},
        (
            "POST",
            f"/api/v1alpha1/traces/{TRACE}/spans/query",
            {
                "searchScope": {"namespace": NS, "project": "shop"},
                "startTime": START,
                "endTime": END,
                "includeAttributes": True,
            },
        ),
        id="trace-spans-with-attributes",
    ),
    pytest.param(
        "query_alerts",
        {**CART, **_window(limit=2, sort_order="asc")},
        (
            "POST",
            "/api/v1alpha1/alerts/query",
            {"searchScope": CART, "startTime": START, "endTime": END, "limit": 2, "sortOrder": "asc"},
        ),
        id="alerts",
    ),
    pytest.param(
        "query_incidents",
        {"namespace": NS, "project": "shop", **_window()},
        (
            "POST",
            "/api/v1alpha1/incidents/query",
            {"searchScope": {"namespace": NS, "project": "shop"}, "startTime": START, "endTime": END},
        ),
        id="incidents",
    ),
    pytest.param(
        "get_span_details",
        {"trace_id": TRACE, "span_id": f"{2:016x}"},
        ("GET", f"/api/v1alpha1/traces/{TRACE}/spans/{2:016x}", None),
        id="span-details",
    ),
]


@pytest.mark.parametrize(("tool", "arguments", "endpoint"), REST_CASES)
async def test_each_tool_answers_what_its_rest_endpoint_answers(
    plane: Plane, tool: str, arguments: dict[str, Any], endpoint: tuple[str, str, dict[str, Any] | None]
) -> None:
    async with mcp_client(plane.url) as (client, _):
        body = ok(await client.call_tool(tool, arguments))
    expected = await rest(plane.url, *endpoint)
    # tookMs is each call's own; everything else, nextCursor included, is REST's answer.
    assert without(body, "tookMs") == without(expected, "tookMs")
    assert any(value for value in body.values()), body  # the data is really there, not two empty answers


async def test_limit_zero_keeps_the_contracts_meaning_per_tool(plane: Plane) -> None:
    """Logs and events take limit 0 as the default (100), as REST does; traces refuse it, as REST does."""
    async with mcp_client(plane.url) as (client, _):
        defaulted = ok(await client.call_tool("query_component_logs", {**CART, **_window(limit=0)}))
        assert len(defaulted["logs"]) == 100 and defaulted["total"] == CART_LINES
        assert defaulted["nextCursor"]
        refused = error_text(await client.call_tool("query_traces", {**CART, **_window(limit=0)}))
    assert refused == "limit must be a positive integer greater than zero"


# ----------------------------------------------------------------------------------------------- errors


def _rest(**extra: Any) -> dict[str, Any]:
    return {"searchScope": CART, "startTime": START, "endTime": END, **extra}


def _ago(days: int) -> str:
    return format_rfc3339(BASE_NS + 20 * MINUTE - days * 24 * 3600 * SECOND)


LOGS, EVENTS, METRICS = "/api/v1/logs/query", "/api/v1/events/query", "/api/v1/metrics/query"
TRACES, SPANS = "/api/v1alpha1/traces/query", f"/api/v1alpha1/traces/{TRACE}/spans/query"
ALERTS, INCIDENTS = "/api/v1alpha1/alerts/query", "/api/v1alpha1/incidents/query"

#: The same bad input on both surfaces: (tool, its arguments, the REST request carrying the same values, and
#: optionally the exact text the tool must answer, where the contract or an agent depends on the wording).
STRICT_CASES = [
    pytest.param(
        "query_component_logs", {**CART, **_window(limit=5000)}, (LOGS, _rest(limit=5000)), None, id="limit-over-1000"
    ),
    pytest.param(
        "query_component_logs", {**CART, **_window(limit=-5)}, (LOGS, _rest(limit=-5)), None, id="negative-limit"
    ),
    pytest.param(
        "query_component_events",
        {**CART, **_window(limit=2.5)},
        (EVENTS, _rest(limit=2.5)),
        None,
        id="fractional-limit",
    ),
    pytest.param(
        "query_traces", {**CART, **_window(limit=1001)}, (TRACES, _rest(limit=1001)), None, id="traces-limit-over-1000"
    ),
    pytest.param(
        "query_trace_spans",
        {"trace_id": TRACE, **CART, **_window(limit=0)},
        (SPANS, _rest(limit=0)),
        None,
        id="spans-limit-zero",
    ),
    pytest.param("query_alerts", {**CART, **_window(limit=0)}, (ALERTS, _rest(limit=0)), None, id="alerts-limit-zero"),
    pytest.param(
        "query_incidents",
        {**CART, **_window(limit=1001)},
        (INCIDENTS, _rest(limit=1001)),
        None,
        id="incidents-limit-over-1000",
    ),
    pytest.param(
        "query_traces", {**CART, **_window(limit="ten")}, (TRACES, _rest(limit="ten")), None, id="limit-not-a-number"
    ),
    pytest.param(
        "query_component_logs",
        {**CART, "start_time": _ago(31), "end_time": END},
        (LOGS, _rest(startTime=_ago(31))),
        None,
        id="31-day-range",
    ),
    pytest.param(
        "query_traces",
        {**CART, "start_time": _ago(400), "end_time": END},
        (TRACES, _rest(startTime=_ago(400))),
        None,
        id="400-day-range",
    ),
    pytest.param(
        "query_resource_metrics",
        {**CART, "start_time": _ago(31), "end_time": END},
        (METRICS, _rest(metric="resource", startTime=_ago(31))),
        None,
        id="metrics-31-day-range",
    ),
    pytest.param(
        "query_component_logs",
        {**CART, **_window(log_levels=["error"])},
        (LOGS, _rest(logLevels=["error"])),
        None,
        id="lower-case-level",
    ),
    pytest.param(
        "query_component_logs",
        {**CART, **_window(log_levels=["ERROR", "ERROR"])},
        (LOGS, _rest(logLevels=["ERROR", "ERROR"])),
        None,
        id="duplicate-level",
    ),
    pytest.param(
        "query_component_logs",
        {**CART, **_window(log_levels="ERROR")},
        (LOGS, _rest(logLevels="ERROR")),
        None,
        id="levels-not-an-array",
    ),
    pytest.param(
        "query_traces",
        {**CART, **_window(sort_order="sideways")},
        (TRACES, _rest(sortOrder="sideways")),
        "sort_order must be either 'asc' or 'desc'",
        id="sort-order",
    ),
    pytest.param(
        "query_component_logs",
        {**CART, "namespace": "  ", **_window()},
        (LOGS, _rest(searchScope={**CART, "namespace": "  "})),
        "namespace is required",
        id="blank-namespace",
    ),
    pytest.param(
        "query_component_logs",
        {"project": "shop", **_window()},
        (LOGS, _rest(searchScope={"project": "shop"})),
        "namespace is required",
        id="missing-namespace",
    ),
    pytest.param(
        "query_traces",
        {"namespace": NS, "component": "cart", **_window()},
        (TRACES, _rest(searchScope={"namespace": NS, "component": "cart"})),
        "project is required when component is provided",
        id="component-without-project",
    ),
    pytest.param(
        "query_component_events",
        {**CART, "namespace": 5, **_window()},
        (EVENTS, _rest(searchScope={**CART, "namespace": 5})),
        None,
        id="namespace-not-a-string",
    ),
    pytest.param(
        "query_component_logs",
        {**CART, **_window(start_time="yesterday")},
        (LOGS, _rest(startTime="yesterday")),
        None,
        id="logs-start-time",
    ),
    pytest.param(
        "query_component_events",
        {**CART, **_window(end_time="2026-13-01T00:00:00Z")},
        (EVENTS, _rest(endTime="2026-13-01T00:00:00Z")),
        None,
        id="events-end-time",
    ),
    pytest.param(
        "query_trace_spans",
        {"trace_id": TRACE, **CART, **_window(end_time="soon")},
        (SPANS, _rest(endTime="soon")),
        None,
        id="spans-end-time",
    ),
    pytest.param(
        "query_resource_metrics",
        {**CART, **_window(start_time="")},
        (METRICS, _rest(metric="resource", startTime="")),
        "start_time is required",
        id="metrics-empty-time",
    ),
    pytest.param(
        "query_component_logs",
        {"namespace": NS, "project": "shop", "component": "cart"},
        (LOGS, {"searchScope": {"namespace": NS, "project": "shop", "component": "cart"}}),
        "start_time is required",
        id="missing-times",
    ),
    pytest.param(
        "query_alerts",
        {**CART, **_window(start_time="noon")},
        (ALERTS, _rest(startTime="noon")),
        None,
        id="alerts-start-time",
    ),
    pytest.param(
        "query_incidents",
        {**CART, **_window(end_time="later")},
        (INCIDENTS, _rest(endTime="later")),
        None,
        id="incidents-end-time",
    ),
    pytest.param(
        "query_traces",
        {**CART, "start_time": END, "end_time": START},
        (TRACES, _rest(startTime=END, endTime=START)),
        "end_time must be after start_time",
        id="reversed-range",
    ),
    pytest.param(
        "query_http_metrics",
        {**CART, **_window(step="1d")},
        (METRICS, _rest(metric="http", step="1d")),
        None,
        id="metrics-step",
    ),
    pytest.param(
        "query_component_logs",
        {**CART, **_window(log_levels=["VERBOSE"])},
        (LOGS, _rest(logLevels=["VERBOSE"])),
        "invalid log level 'VERBOSE'; valid levels are: DEBUG, INFO, WARN, ERROR",
        id="log-level",
    ),
]

#: Translates REST's field names into each tool's argument names, as the server does.
TOOLS = ObserverTools(None, None, extended=True)  # type: ignore[arg-type]


async def rest_refusal(base_url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base_url, headers={"x-test-subject": "alice"}, timeout=30) as http:
        response = await http.post(path, json=body)
    assert response.status_code == 400, response.text
    return response.json()


@pytest.mark.parametrize(("tool", "arguments", "endpoint", "exact"), STRICT_CASES)
async def test_mcp_refuses_what_rest_refuses_with_the_same_message(
    plane: Plane, tool: str, arguments: dict[str, Any], endpoint: tuple[str, dict[str, Any]], exact: str | None
) -> None:
    """One validation for both surfaces: the tool error is REST's 400 message, in the tool's argument names
    (`start_time`, not `startTime`); none of these is silently capped, defaulted or widened any more."""
    async with mcp_client(plane.url) as (client, _):
        text = error_text(await client.call_tool(tool, arguments))
    refused = await rest_refusal(plane.url, *endpoint)
    assert text == TOOLS.by_name[tool].vocabulary.speak(refused["message"])
    if exact is not None:
        assert text == exact


async def test_argument_names_in_messages_are_the_tools_own() -> None:
    speak = TOOLS.by_name["query_trace_spans"].vocabulary.speak
    assert speak("searchScope.project is required when searchScope.component is provided") == (
        "project is required when component is provided"
    )
    assert speak("Invalid request format: startTime: Input should be a valid string; traceId is required") == (
        "Invalid request format: start_time: Input should be a valid string; trace_id is required"
    )
    assert speak("sortOrder must be either 'asc' or 'desc'; limit cannot exceed 1000") == (
        "sort_order must be either 'asc' or 'desc'; limit cannot exceed 1000"
    )
    # Only whole names are replaced, and only this tool's names.
    assert speak("mystartTime, startTimes, logLevels") == "mystartTime, startTimes, logLevels"
    assert TOOLS.by_name["query_workflow_logs"].vocabulary.speak("searchScope.workflowRunName") == "workflow_run_name"


@pytest.mark.parametrize(
    ("tool", "arguments", "expected"),
    [
        pytest.param(
            "query_component_logs",
            {**CART, **_window(searchPhrase="line 04")},
            "unknown argument 'searchPhrase' for query_component_logs (did you mean 'search_phrase'?);",
            id="camel-case-phrase",
        ),
        pytest.param(
            "query_traces",
            {**CART, **_window(workflow_run_name=RUN)},
            "unknown argument 'workflow_run_name' for query_traces; it takes: namespace, project,",
            id="argument-of-another-tool",
        ),
        pytest.param(
            "query_component_events",
            {**CART, **_window(compnent="cart")},
            "unknown argument 'compnent' for query_component_events (did you mean 'component'?);",
            id="misspelt-scope",
        ),
        pytest.param(
            "get_span_details",
            {"trace_id": TRACE, "span_id": f"{2:016x}", "x" * 5000: 1},
            "unknown argument '" + "x" * 64 + "…' for get_span_details",
            id="huge-name-cut-short",
        ),
    ],
)
async def test_an_unknown_argument_is_an_error_naming_it(
    plane: Plane, tool: str, arguments: dict[str, Any], expected: str
) -> None:
    """Never ignored: `searchPhrase` used to return unfiltered logs. The message names the argument, the
    closest declared one, and every argument the tool takes."""
    async with mcp_client(plane.url) as (client, _):
        text = error_text(await client.call_tool(tool, arguments))
    assert text.startswith(expected), text
    assert "; it takes: " in text and len(text) < 1000


@pytest.mark.parametrize(
    ("tool", "arguments", "expected"),
    [
        pytest.param(
            "query_trace_spans", {"trace_id": " ", **CART, **_window()}, "trace_id is required", id="blank-trace-id"
        ),
        pytest.param("get_span_details", {"trace_id": TRACE}, "span_id is required", id="missing-span-id"),
        pytest.param(
            "get_span_details", {"trace_id": TRACE, "span_id": "ffffffffffffffff"}, "Span not found", id="unknown-span"
        ),
        pytest.param(
            "query_component_logs",
            {**CART, "project": "no-such-project", **_window()},
            "check the searchScope names",
            id="unknown-name",
        ),
    ],
)
async def test_bad_arguments_are_tool_errors_with_the_documented_text(
    plane: Plane, tool: str, arguments: dict[str, Any], expected: str
) -> None:
    async with mcp_client(plane.url) as (client, _):
        text = error_text(await client.call_tool(tool, arguments))
    assert expected in text, text


COSTS = f"/api/v1alpha1/costs/namespaces/{NS}/environments"


@pytest.mark.parametrize(
    ("tool", "arguments", "path", "params", "status"),
    [
        pytest.param(
            "query_costs",
            {"namespace": NS, "environment": "prod", **_window(granularity="1d")},
            f"{COSTS}/prod",
            {"startTime": START, "endTime": END, "granularity": "1d"},
            501,
            id="costs",
        ),
        pytest.param(
            "query_costs",
            {"namespace": NS, "environment": "prod", **_window(granularity="0d")},
            f"{COSTS}/prod",
            {"startTime": START, "endTime": END, "granularity": "0d"},
            400,
            id="costs-granularity",
        ),
        pytest.param(
            "query_recommendations",
            {"namespace": NS, "environment": " ", **_window()},
            f"{COSTS}/%20/recommendations",
            {"startTime": START, "endTime": END},
            400,
            id="recommendations-environment",
        ),
        pytest.param(
            "query_recommendations",
            {"namespace": NS, "environment": "prod", "component": "cart", **_window()},
            f"{COSTS}/prod/recommendations",
            {"component": "cart", "startTime": START, "endTime": END},
            400,
            id="recommendations-component-without-project",
        ),
        pytest.param(
            "query_costs",
            {"namespace": NS, "environment": "prod", "start_time": START, "end_time": START},
            f"{COSTS}/prod",
            {"startTime": START, "endTime": START},
            400,
            id="costs-empty-window",
        ),
        pytest.param(
            "query_recommendations",
            {"namespace": NS, "environment": "prod", **_window()},
            f"{COSTS}/prod/recommendations",
            {"startTime": START, "endTime": END},
            501,
            id="recommendations",
        ),
    ],
)
async def test_cost_tools_answer_what_the_cost_routes_answer(
    plane: Plane, tool: str, arguments: dict[str, Any], path: str, params: dict[str, str], status: int
) -> None:
    """No FinOps backend: the same checks, in the same order, then the same words as the REST routes."""
    async with mcp_client(plane.url) as (client, _):
        text = error_text(await client.call_tool(tool, arguments))
    async with httpx.AsyncClient(base_url=plane.url, headers={"x-test-subject": "alice"}, timeout=30) as http:
        response = await http.get(path, params=params)
    assert response.status_code == status, response.text
    assert text == TOOLS.by_name[tool].vocabulary.speak(response.json()["message"])


async def test_alert_tools_without_an_alert_service_say_so(plane: Plane) -> None:
    async with mcp_client(plane.extended_url) as (client, _):
        for tool in ("query_alerts", "query_incidents"):
            assert error_text(await client.call_tool(tool, {**CART, **_window()})) == "alerts are not configured"


async def test_only_an_unknown_tool_is_a_protocol_error(plane: Plane) -> None:
    """Argument problems are tool results the model can read and fix (MCP 2025-11-25); a tool that does not
    exist is a JSON-RPC error."""
    async with mcp_client(plane.url) as (client, _):
        with pytest.raises(MCPError) as raised:
            await client.call_tool("query_everything", {})
    assert raised.value.code == -32602
    assert "query_everything" in raised.value.message


# ----------------------------------------------------------------------------------------------- answers that fit


async def test_a_page_too_large_for_one_message_is_cut_and_continues_with_its_cursor(plane: Plane) -> None:
    """limit=1000 of 3 kB lines (quotes, backslashes and control characters included, which grow when the
    JSON is written twice) used to break the official client ("Server-sent event exceeded the 1048576 byte
    limit"). Now each answer fits, says it was cut, and the cursors read every line exactly once."""
    arguments = {**BIG, "limit": 1000, "sort_order": "asc"}
    pages: list[dict[str, Any]] = []
    async with mcp_client(plane.url) as (client, _):
        cursor = None
        while len(pages) < 20:
            body = ok(
                await client.call_tool("query_component_logs", {**arguments, **({"cursor": cursor} if cursor else {})})
            )
            pages.append(body)
            cursor = body.get("nextCursor")
            if not cursor:
                break
    first = pages[0]
    assert 0 < len(first["logs"]) < 1000 and first["total"] == 1000  # the contract caps total at 1000
    assert first["note"].startswith(f"only the first {len(first['logs'])} of the 1000 logs of this page are here")
    assert "nextCursor" in first["note"]
    read = [entry["log"] for page in pages for entry in page["logs"]]
    assert read == [big_line(i) for i in range(BIG_LINES)]


async def test_one_line_too_large_for_a_message_is_shortened_and_says_so(plane: Plane) -> None:
    async with mcp_client(plane.url) as (client, _):
        body = ok(await client.call_tool("query_component_logs", {**HUGE, "limit": 5}))
    (entry,) = body["logs"]
    assert entry["log"].startswith("huge ") and entry["log"].endswith(" more characters cut]")
    assert "shortened" in body["note"]


# ----------------------------------------------------------------------------------------------- the caller


SCOPED_CALLS = [
    ("query_component_logs", {**CART, **_window()}),
    ("query_workflow_logs", {"namespace": NS, "workflow_run_name": RUN, **_window()}),
    ("query_component_events", {**CART, **_window()}),
    ("query_workflow_events", {"namespace": NS, **_window()}),
    ("query_resource_metrics", {**CART, **_window()}),
    ("query_http_metrics", {**CART, **_window()}),
    ("query_traces", {**CART, **_window()}),
    ("query_trace_spans", {"trace_id": TRACE, **CART, **_window()}),
    ("query_alerts", {**CART, **_window()}),
    ("query_incidents", {**CART, **_window()}),
    ("query_costs", {**CART, **_window()}),
    ("query_recommendations", {**CART, **_window()}),
]


async def test_a_denied_caller_gets_the_forbidden_text_and_no_backend_call(plane: Plane) -> None:
    plane.authorizer.allowed = set()
    before = dict(plane.backend.calls)
    async with mcp_client(plane.url) as (client, _):
        for tool, arguments in SCOPED_CALLS:
            assert error_text(await client.call_tool(tool, arguments)) == FORBIDDEN, tool
    assert plane.backend.calls == before  # neither the backend nor the name resolver was asked
    asked = {action for _, action, _ in plane.authorizer.asked[-len(SCOPED_CALLS) :]}
    assert asked == {
        "logs:view",
        "events:view",
        "metrics:view",
        "traces:view",
        "alerts:view",
        "incidents:view",
        "finops:view",
    }


async def test_a_changed_decision_applies_to_the_next_call_on_the_same_session(plane: Plane) -> None:
    """O6: grant, revoke, grant again, all on one session: nothing about the decision is remembered."""
    arguments = {**CART, **_window(limit=1)}
    async with mcp_client(plane.url) as (client, _):
        assert ok(await client.call_tool("query_component_logs", arguments))["logs"]
        plane.authorizer.allowed = set()
        assert error_text(await client.call_tool("query_component_logs", arguments)) == FORBIDDEN
        plane.authorizer.allowed = {"alice"}
        assert ok(await client.call_tool("query_component_logs", arguments))["logs"]
        assert len((await client.list_tools()).tools) == 15


async def test_the_caller_is_the_subject_of_the_current_http_request(plane: Plane) -> None:
    """A different credential on the same session is the caller of the very next call (the subject is read
    from the request that carries each call, not kept from the one that opened the session)."""
    plane.authorizer.allowed = {"alice"}
    arguments = {**CART, **_window(limit=1)}
    async with mcp_client(plane.url, subject="alice") as (client, http):
        assert ok(await client.call_tool("query_component_logs", arguments))["logs"]
        assert plane.authorizer.asked[-1][0].entitlement_values == ("alice",)
        http.headers["x-test-subject"] = "bob"
        assert error_text(await client.call_tool("query_component_logs", arguments)) == FORBIDDEN
        assert plane.authorizer.asked[-1][0].entitlement_values == ("bob",)
        http.headers["x-test-subject"] = "alice"
        assert ok(await client.call_tool("query_component_logs", arguments))["logs"]
        del http.headers["x-test-subject"]
        assert error_text(await client.call_tool("query_component_logs", arguments)) == FORBIDDEN
        assert plane.authorizer.asked[-1][0] is None


# ----------------------------------------------------------------------------------------------- extended


async def test_extended_mode_lists_the_extras_and_pages_with_cursors(plane: Plane) -> None:
    async with mcp_client(plane.extended_url) as (client, _):
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert list(tools) == [*CONTRACT_TOOLS, *EXTENDED_TOOLS]
        # The contract's tools page the same way in both modes (their cursor is needed to continue a
        # page cut to fit one message).
        for name in ("query_component_logs", "query_workflow_logs", "query_component_events", "query_workflow_events"):
            assert tools[name].input_schema["properties"]["cursor"]["type"] == "string"
        assert "cursor" not in tools["query_traces"].input_schema["properties"]

        arguments = {**CART, **_window(limit=40, sort_order="asc")}
        pages, cursors, cursor = [], [], None
        while True:
            paging = {"cursor": cursor} if cursor else {}
            body = ok(await client.call_tool("query_component_logs", {**arguments, **paging}))
            pages.append(body["logs"])
            cursor = body.get("nextCursor")
            if not cursor:
                break
            cursors.append(cursor)
        everything = ok(await client.call_tool("query_component_logs", {**arguments, "limit": 1000}))
        assert [len(page) for page in pages] == [40] * (CART_LINES // 40) + [CART_LINES % 40]
        assert [entry for page in pages for entry in page] == everything["logs"]

        # A cursor replayed against another query is refused, never silently skipping records.
        replayed = await client.call_tool(
            "query_component_logs", {**arguments, "sort_order": "desc", "cursor": cursors[0]}
        )
        assert error_text(replayed) == "cursor belongs to a different query; repeat the query without it"


async def test_get_log_context_reads_around_one_line_of_one_container(plane: Plane) -> None:
    scope = {**CART}
    anchor = format_rfc3339(BASE_NS + 10 * SECOND)
    async with mcp_client(plane.extended_url) as (client, _):
        ambiguous = error_text(await client.call_tool("get_log_context", {**scope, "timestamp": anchor}))
        assert "2 containers logged at" in ambiguous and "cart-prod-0/istio-proxy" in ambiguous

        body = ok(
            await client.call_tool(
                "get_log_context",
                {
                    **scope,
                    "timestamp": anchor,
                    "pod_name": "cart-prod-0",
                    "container_name": "main",
                    "before": 5,
                    "after": 3,
                },
            )
        )
        assert (body["podName"], body["containerName"]) == ("cart-prod-0", "main")
        assert [entry["log"] for entry in body["before"]] == [f"main line {i:03d}" for i in range(5, 10)]
        assert [entry["log"] for entry in body["anchor"]] == ["main line 010"]
        assert [entry["log"] for entry in body["after"]] == ["main line 011", "main line 012", "main line 013"]

        # The only line at that instant decides the container; near the end of the data fewer lines exist,
        # and the other pod's lines in between are never mistaken for the container's.
        sidecar = ok(
            await client.call_tool("get_log_context", {**scope, "timestamp": anchor, "container_name": "istio-proxy"})
        )
        assert sidecar["anchor"][0]["log"] == "sidecar at the same instant"
        assert sidecar["before"] == [] and sidecar["after"] == []
        last = ok(
            await client.call_tool(
                "get_log_context",
                {**scope, "timestamp": format_rfc3339(BASE_NS + (MAIN_LINES - 2) * SECOND), "after": 5},
            )
        )
        assert [entry["log"] for entry in last["after"]] == [f"main line {MAIN_LINES - 1:03d}"]

        nothing = error_text(
            await client.call_tool("get_log_context", {**scope, "timestamp": format_rfc3339(BASE_NS + 10 * SECOND + 1)})
        )
        assert nothing.startswith("no log line at ")
        around = ok(
            await client.call_tool(
                "get_log_context",
                {
                    **scope,
                    "timestamp": format_rfc3339(BASE_NS + 10 * SECOND + 1),
                    "pod_name": "cart-prod-1",
                    "container_name": "main",
                    "before": 2,
                    "after": 2,
                },
            )
        )
        assert [entry["log"] for entry in around["before"]] == ["other pod line 008", "other pod line 009"]
        assert [entry["log"] for entry in around["after"]] == ["other pod line 010", "other pod line 011"]


async def test_extended_runtime_topology_matches_rest(plane: Plane) -> None:
    scope = {"namespace": NS, "project": "shop", "environment": "prod"}
    async with mcp_client(plane.extended_url) as (client, _):
        body = ok(await client.call_tool("query_runtime_topology", {**scope, **_window()}))
        missing = error_text(
            await client.call_tool(
                "query_runtime_topology", {"namespace": NS, "project": " ", "environment": "prod", **_window()}
            )
        )
    assert missing == "project is required"
    expected = await rest(
        plane.extended_url,
        "POST",
        "/api/v1alpha1/metrics/runtime-topology",
        {"searchScope": scope, "startTime": START, "endTime": END},
    )
    assert without(body, "summary") == without(expected, "summary")
    assert without(body["summary"], "generatedAt") == without(expected["summary"], "generatedAt")


# ----------------------------------------------------------------------------------------------- authentication


async def test_mcp_without_a_token_is_401_with_the_resource_metadata_challenge(backend: EmbeddedBackend) -> None:
    """O1, through the real authentication middleware: a client learns where to get a token from the 401."""
    settings = AuthSettings(jwks_url="http://127.0.0.1:9/jwks", observer_base_url="https://observer.example")
    service = QueryService(backend.registry, logs=backend, events=backend, traces=backend, metrics=backend)
    app = create_public_app(service, auth=settings, mcp=build_mcp_app(service))
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}},
    }
    try:
        with serving(app, lifespan="on") as url:
            async with httpx.AsyncClient(base_url=url, timeout=30) as http:
                for method, path in (("POST", "/mcp"), ("POST", "/mcp/"), ("GET", "/mcp")):
                    response = await http.request(
                        method,
                        path,
                        json=initialize if method == "POST" else None,
                        headers={"accept": "application/json, text/event-stream"},
                    )
                    assert response.status_code == 401, (method, path)
                    assert response.json()["error"] == "MISSING_TOKEN"
                    assert response.headers["www-authenticate"] == (
                        'Bearer resource_metadata="https://observer.example/.well-known/oauth-protected-resource",'
                        ' scope="openid profile email"'
                    )
    finally:
        await app.state.authenticator.close()
