"""The MCP tools of platform logs, the audit trail and log patterns, called as the server calls them
(observer/mcp/server.py `answer`) over the embedded backend: the default list is OpenChoreo's 15, arguments are
as strict as REST (unknown ones refused by name, bad values refused with REST's message in argument names), the
answers are REST's, and a page too large for one message is cut and continues with its cursor."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from adapters.embedded.backend import EmbeddedBackend
from devservers.sample import BASE_NS
from domain.audit import Actor, AuditRecord, AuditResource
from domain.model import Identity, LogRecord
from domain.timeutil import format_rfc3339
from observer.app import create_public_app
from observer.mcp.server import answer
from observer.mcp.tools import CONTRACT_TOOLS, EXTENDED_TOOLS, ObserverTools
from observer.service import QueryService

SECOND = 10**9
START, END = format_rfc3339(BASE_NS), format_rfc3339(BASE_NS + 3600 * SECOND)
WINDOW = {"start_time": START, "end_time": END}
POD = Identity(
    cluster="east", pod_namespace="kube-system", pod="coredns-0", container="coredns", labels=(("app", "dns"),)
)
OTHER = Identity(cluster="west", pod_namespace="ingress", pod="nginx-0", container="controller")


def audit_record(number: int, actor: str, result: str) -> AuditRecord:
    return AuditRecord(
        event_id=f"evt-{number}",
        time_ns=BASE_NS + number * SECOND,
        actor=Actor("user", actor, session_id=f"sid-{actor}"),
        operation_id="UpdateIncident",
        request_id=f"req-{number}",
        source_ip=f"10.0.0.{number}",
        user_agent="agent/1.0",
        action="incident.update",
        category="management",
        result=result,
        surface="mcp",
        resource=AuditResource(type="incident", namespace="acme", name=f"inc-{number}"),
    )


@pytest.fixture
async def service(backend: EmbeddedBackend) -> QueryService:
    logs = [LogRecord(BASE_NS + i * SECOND, f"dns line {i}", POD, "INFO") for i in range(5)]
    logs.append(LogRecord(BASE_NS + 10 * SECOND, "nginx line", OTHER, "ERROR"))
    audit = [audit_record(1, "alice", "success"), audit_record(2, "bob", "denied"), audit_record(3, "bob", "success")]
    await backend.write(batch_id="mcp-seed", logs=logs, audit=audit)
    return QueryService(
        backend.registry,
        logs=backend,
        events=backend,
        traces=backend,
        metrics=backend,
        platform_logs=backend,
        audit=backend,
    )


@pytest.fixture
async def rest(service: QueryService) -> AsyncIterator[httpx.AsyncClient]:
    app = create_public_app(service)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://observer") as http:
        yield http


async def call(service: QueryService, tool: str, arguments: dict[str, Any], *, extended: bool = False) -> Any:
    tools = ObserverTools(service, extended=extended)
    return await answer(tools.by_name[tool], None, arguments)


def ok(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content[0].text
    body = json.loads(result.content[0].text)
    assert body == result.structured_content
    return body


def error(result: Any) -> str:
    assert result.is_error
    return result.content[0].text


def test_the_default_list_is_openchoreos_fifteen(service: QueryService) -> None:
    names = [spec.name for spec in ObserverTools(service).specs]
    assert names == list(CONTRACT_TOOLS) and len(names) == 15
    assert names[-2:] == ["query_platform_logs", "query_audit_logs"]
    extended = [spec.name for spec in ObserverTools(service, extended=True).specs]
    assert extended == [*CONTRACT_TOOLS, *EXTENDED_TOOLS] and "query_log_patterns" in EXTENDED_TOOLS
    by_name = ObserverTools(service, extended=True).by_name
    for spec in (by_name[name] for name in ("query_platform_logs", "query_audit_logs", "query_log_patterns")):
        schema = spec.input_schema()
        assert schema["additionalProperties"] is False and {"start_time", "end_time"} <= set(schema["required"])
        assert all(prop.get("description") for prop in schema["properties"].values()), spec.name
        output = spec.tool().output_schema
        assert output is not None and output["type"] == "object"


async def test_platform_logs_answer_as_rest_does(service: QueryService, rest: httpx.AsyncClient) -> None:
    arguments = {**WINDOW, "namespace": ["kube-system"], "labels": {"app": "dns"}, "sort_order": "asc", "limit": 3}
    body = ok(await call(service, "query_platform_logs", arguments))
    posted = await rest.post(
        "/api/v1alpha1/platform-logs/query",
        json={
            "startTime": START,
            "endTime": END,
            "namespace": ["kube-system"],
            "labels": {"app": "dns"},
            "sortOrder": "asc",
            "limit": 3,
        },
    )
    expected = posted.json()
    assert [entry["log"] for entry in body["logs"]] == ["dns line 0", "dns line 1", "dns line 2"]
    assert body["logs"] == expected["logs"] and body["total"] == expected["total"] == 5
    following = ok(await call(service, "query_platform_logs", {**arguments, "cursor": body["nextCursor"]}))
    assert [entry["log"] for entry in following["logs"]] == ["dns line 3", "dns line 4"]


async def test_audit_logs_answer_with_filters_and_timeline(service: QueryService) -> None:
    body = ok(
        await call(
            service,
            "query_audit_logs",
            {**WINDOW, "actor_id": ["bob"], "result": ["denied", "success"], "include_timeline": True},
        )
    )
    assert [record["event_id"] for record in body["records"]] == ["evt-3", "evt-2"]
    assert body["timeline"]["interval"] == "1m" and len(body["timeline"]["buckets"]) == 60
    assert body["timeline"]["buckets"][0]["counts"] == {"denied": 1, "success": 1}
    assert body["timeline"]["buckets"][1] == {"startTime": format_rfc3339(BASE_NS + 60 * SECOND), "total": 0}
    narrowed = ok(await call(service, "query_audit_logs", {**WINDOW, "resource_name": ["inc-1"]}))
    assert [record["actor"]["id"] for record in narrowed["records"]] == ["alice"]
    coarse = ok(
        await call(service, "query_audit_logs", {**WINDOW, "include_timeline": True, "timeline_interval": "1w"})
    )
    assert coarse["timeline"]["interval"] == "1w" and len(coarse["timeline"]["buckets"]) == 1


async def test_audit_record_filters_reach_rest_under_the_records_names(
    service: QueryService, rest: httpx.AsyncClient
) -> None:
    """Each snake_case argument fills the REST field of the same record-derived name (`operation_id` at the top,
    `actor.session_id` under `actor`), so the tool and REST give the same records."""
    arguments = {
        **WINDOW,
        "operation_id": ["UpdateIncident"],
        "request_id": ["req-2", "req-3"],
        "source_ip": ["10.0.0.3"],
        "user_agent": ["agent/1.0"],
        "actor_session_id": ["sid-bob"],
        "sort_order": "asc",
    }
    body = ok(await call(service, "query_audit_logs", arguments))
    posted = await rest.post(
        "/api/v1alpha1/audit-logs/query",
        json={
            "startTime": START,
            "endTime": END,
            "operation_id": ["UpdateIncident"],
            "request_id": ["req-2", "req-3"],
            "source_ip": ["10.0.0.3"],
            "user_agent": ["agent/1.0"],
            "actor": {"session_id": ["sid-bob"]},
            "sortOrder": "asc",
        },
    )
    assert [record["event_id"] for record in body["records"]] == ["evt-3"]
    assert body["records"] == posted.json()["records"]
    one = ok(await call(service, "query_audit_logs", {**WINDOW, "event_id": ["evt-1"]}))
    assert [record["actor"]["session_id"] for record in one["records"]] == ["sid-alice"]


@pytest.mark.parametrize(
    ("tool", "arguments", "words"),
    [
        ("query_platform_logs", {**WINDOW, "pods": ["a"]}, "unknown argument 'pods' for query_platform_logs"),
        ("query_platform_logs", {**WINDOW, "labels": {"bad key!": "x"}}, "not a valid Kubernetes label key"),
        ("query_platform_logs", {"start_time": END, "end_time": START}, "end_time must be after start_time"),
        ("query_platform_logs", {**WINDOW, "namespace": "kube-system"}, "namespace: Input should be a valid list"),
        ("query_audit_logs", {**WINDOW, "result": ["nope"]}, "result[0]: 'nope' is not one of"),
        (
            "query_audit_logs",
            {**WINDOW, "include_timeline": True, "timeline_interval": "90s"},
            "timeline_interval '90s' is not in the accepted notation",
        ),
        ("query_audit_logs", {**WINDOW, "operationId": ["x"]}, "(did you mean 'operation_id'?)"),
        ("query_audit_logs", {**WINDOW, "actor": ["bob"]}, "unknown argument 'actor' for query_audit_logs"),
        ("query_audit_logs", {**WINDOW, "limit": 5000}, "limit must be a whole number from 1 to 1000"),
    ],
)
async def test_bad_arguments_get_rests_message_in_argument_names(
    service: QueryService, tool: str, arguments: dict[str, Any], words: str
) -> None:
    text = error(await call(service, tool, arguments))
    assert words in text, text


async def test_a_page_too_large_for_one_message_is_cut_and_continues(backend: EmbeddedBackend) -> None:
    big = Identity(cluster="big", pod_namespace="bulk", pod="bulk-0", container="bulk")
    await backend.write(
        batch_id="big",
        logs=[LogRecord(BASE_NS + i * SECOND, f"{i:03d} " + "x" * 100_000, big, "INFO") for i in range(30)],
    )
    service = QueryService(
        backend.registry, logs=backend, events=backend, traces=backend, metrics=backend, platform_logs=backend
    )
    arguments = {**WINDOW, "cluster_instance": ["big"], "sort_order": "asc", "limit": 30}
    first = ok(await call(service, "query_platform_logs", arguments))
    kept = len(first["logs"])
    assert 0 < kept < 30 and "nextCursor" in first and "MCP message" in first["note"]
    rest = ok(await call(service, "query_platform_logs", {**arguments, "cursor": first["nextCursor"]}))
    assert rest["logs"][0]["log"].startswith(f"{kept:03d} ")


async def test_patterns_are_an_extended_tool_with_rests_checks(service: QueryService) -> None:
    assert "query_log_patterns" not in ObserverTools(service).by_name
    text = error(
        await call(service, "query_log_patterns", {"namespace": "acme", **WINDOW, "step": "1s"}, extended=True)
    )
    assert "at most 500 are allowed" in text
    text = error(await call(service, "query_log_patterns", {**WINDOW, "namespace": ""}, extended=True))
    assert text == "namespace is required"
