"""The query API over a real embedded backend: shapes, filters, paging and names resolved to UIDs."""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest

from devservers.sample import BASE_NS, COMPONENTS, ENVIRONMENTS, NS, PROJECT_UID, identity
from domain.model import EventRecord, Identity, LogRecord, SpanRecord
from domain.timeutil import format_rfc3339

SECOND = 10**9
START = format_rfc3339(BASE_NS - 60 * SECOND)
END = format_rfc3339(BASE_NS + 3600 * SECOND)
CART = {"namespace": NS, "project": "shop", "component": "cart", "environment": "prod"}
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"

TRICKY_PHRASES = ['say "hi"', "50%", "a_b", "it's", "x*y", "NEAR", "A OR B", "^start", "(paren", "-minus"]


@pytest.fixture
async def seeded(backend):
    cart, frontend = identity("cart"), identity("frontend")
    logs = [
        LogRecord(ts_ns=BASE_NS + 123_456_789, body="Starting HTTP server on :8080", level="INFO", identity=cart),
        LogRecord(
            ts_ns=BASE_NS + 2 * SECOND,
            body="cache miss for cart 42",
            level="DEBUG",
            identity=cart,
            trace_id=TRACE,
            span_id="00f067aa0ba902b7",
        ),
        LogRecord(ts_ns=BASE_NS + 3 * SECOND, body="slow checkout: 812ms", level="WARN", identity=cart),
        LogRecord(ts_ns=BASE_NS + 4 * SECOND, body="payment declined: card expired", level="ERROR", identity=cart),
        LogRecord(ts_ns=BASE_NS + 5 * SECOND, body="panic: nil map", level="FATAL", identity=cart),
        LogRecord(ts_ns=BASE_NS + 6 * SECOND, body="frontend says hello", level="INFO", identity=frontend),
        LogRecord(ts_ns=BASE_NS + 7 * SECOND, body="dev cart", level="INFO", identity=identity("cart", "dev")),
    ]
    logs += [
        LogRecord(ts_ns=BASE_NS + (10 + i) * SECOND, body=f"tricky {phrase} end", level="INFO", identity=cart)
        for i, phrase in enumerate(TRICKY_PHRASES)
    ]
    build = Identity(
        namespace=NS,
        pod="build-7-abc",
        pod_namespace=f"workflows-{NS}",
        container="main",
        workflow_run="build-7",
        task="compile",
    )
    logs.append(LogRecord(ts_ns=BASE_NS + 30 * SECOND, body="compiling", level="INFO", identity=build))
    events = [
        EventRecord(
            ts_ns=BASE_NS + SECOND,
            message="Successfully assigned pod",
            identity=cart,
            type="Normal",
            reason="Scheduled",
            object_kind="Pod",
            object_name="cart-prod-0",
            object_namespace="dp-acme-prod",
        ),
        EventRecord(
            ts_ns=BASE_NS + 9 * SECOND,
            message="Back-off restarting",
            identity=cart,
            type="Warning",
            reason="BackOff",
            object_kind="Pod",
            object_name="cart-prod-0",
            object_namespace="dp-acme-prod",
        ),
        EventRecord(
            ts_ns=BASE_NS + 31 * SECOND,
            message="Job completed",
            identity=build,
            type="Normal",
            reason="SawCompletedJob",
        ),
    ]
    spans = [
        SpanRecord(
            TRACE,
            "a000000000000001",
            "",
            "GET /checkout",
            "Server",
            BASE_NS,
            BASE_NS + 90_000_000,
            frontend,
            status_code="error",
            attributes={"http.response.status_code": 502},
            resource={"service.name": "frontend"},
        ),
        SpanRecord(
            TRACE,
            "a000000000000002",
            "a000000000000001",
            "POST cart",
            "Client",
            BASE_NS + 1_000_000,
            BASE_NS + 80_000_000,
            frontend,
        ),
        SpanRecord(
            TRACE,
            "a000000000000003",
            "a000000000000002",
            "POST /cart/checkout",
            "Server",
            BASE_NS + 2_000_000,
            BASE_NS + 79_000_000,
            cart,
            status_code="ok",
            attributes={"http.route": "/cart/checkout"},
        ),
    ]
    await backend.write(batch_id="seed", logs=logs, events=events, spans=spans)
    return backend


def window(**extra):
    return {"startTime": START, "endTime": END, "searchScope": CART, **extra}


async def test_component_logs_carry_metadata_and_keep_nanoseconds(client, seeded):
    response = await client.post("/api/v1/logs/query", json=window(sortOrder="asc", limit=2))
    assert response.status_code == 200
    body = response.json()
    assert body["total"] == 4 + 1 + len(TRICKY_PHRASES)
    assert isinstance(body["tookMs"], int)
    first = body["logs"][0]
    assert first == {
        "timestamp": "2026-09-21T14:13:20.123456789Z",
        "log": "Starting HTTP server on :8080",
        "level": "INFO",
        "metadata": {
            "componentName": "cart",
            "projectName": "shop",
            "environmentName": "prod",
            "namespaceName": NS,
            "componentUid": COMPONENTS["cart"],
            "projectUid": PROJECT_UID,
            "environmentUid": ENVIRONMENTS["prod"],
            "containerName": "main",
            "podName": "cart-prod-0",
            "podNamespace": "dp-acme-prod",
        },
    }
    assert body["logs"][1]["traceId"] == TRACE
    assert body["nextCursor"]


async def test_level_filter_treats_fatal_as_error(client, seeded):
    response = await client.post("/api/v1/logs/query", json=window(logLevels=["ERROR"]))
    assert [entry["log"] for entry in response.json()["logs"]] == ["panic: nil map", "payment declined: card expired"]
    response = await client.post("/api/v1/logs/query", json=window(logLevels=["DEBUG", "WARN"]))
    assert {entry["level"] for entry in response.json()["logs"]} == {"DEBUG", "WARN"}


@pytest.mark.parametrize("phrase", TRICKY_PHRASES)
async def test_phrases_match_literally(client, seeded, phrase):
    response = await client.post("/api/v1/logs/query", json=window(searchPhrase=phrase))
    assert response.status_code == 200, response.text
    assert [entry["log"] for entry in response.json()["logs"]] == [f"tricky {phrase} end"]


async def test_phrase_is_case_sensitive_and_short_phrases_work(client, seeded):
    logs = (await client.post("/api/v1/logs/query", json=window(searchPhrase="Payment"))).json()["logs"]
    assert logs == []
    logs = (await client.post("/api/v1/logs/query", json=window(searchPhrase="42"))).json()["logs"]
    assert [entry["log"] for entry in logs] == ["cache miss for cart 42"]


async def test_cursor_pages_through_everything_once(client, seeded):
    seen, cursor = [], None
    while True:
        response = await client.post(
            "/api/v1/logs/query", json=window(limit=3, **({"cursor": cursor} if cursor else {}))
        )
        body = response.json()
        seen += [entry["log"] for entry in body["logs"]]
        cursor = body.get("nextCursor")
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == body["total"]


async def test_cursor_of_another_query_is_refused(client, seeded):
    cursor = (await client.post("/api/v1/logs/query", json=window(limit=1))).json()["nextCursor"]
    response = await client.post("/api/v1/logs/query", json=window(limit=1, searchPhrase="cart", cursor=cursor))
    assert response.status_code == 400
    assert "different query" in response.json()["message"]


async def test_project_and_namespace_scopes_widen(client, seeded):
    project = {"namespace": NS, "project": "shop"}
    body = (await client.post("/api/v1/logs/query", json=window(searchScope=project, limit=1000))).json()
    assert {entry["metadata"]["componentName"] for entry in body["logs"]} == {"cart", "frontend"}
    assert {entry["metadata"]["environmentName"] for entry in body["logs"]} == {"prod", "dev"}


async def test_workflow_logs_have_only_timestamp_and_log(client, seeded):
    scope = {"namespace": NS, "workflowRunName": "build-7", "taskName": "comp"}
    body = (await client.post("/api/v1/logs/query", json=window(searchScope=scope))).json()
    assert body["logs"] == [{"timestamp": format_rfc3339(BASE_NS + 30 * SECOND), "log": "compiling"}]


async def test_events_shapes(client, seeded):
    body = (await client.post("/api/v1/events/query", json=window())).json()
    assert body["total"] == 2
    assert body["events"][0] == {
        "timestamp": format_rfc3339(BASE_NS + 9 * SECOND),
        "message": "Back-off restarting",
        "type": "Warning",
        "reason": "BackOff",
        "metadata": {
            "componentName": "cart",
            "projectName": "shop",
            "environmentName": "prod",
            "namespaceName": NS,
            "componentUid": COMPONENTS["cart"],
            "projectUid": PROJECT_UID,
            "environmentUid": ENVIRONMENTS["prod"],
            "objectKind": "Pod",
            "objectName": "cart-prod-0",
            "objectNamespace": "dp-acme-prod",
        },
    }
    workflow = {"namespace": NS, "workflowRunName": "build-7"}
    body = (await client.post("/api/v1/events/query", json=window(searchScope=workflow))).json()
    assert body["events"] == [
        {
            "timestamp": format_rfc3339(BASE_NS + 31 * SECOND),
            "message": "Job completed",
            "type": "Normal",
            "reason": "SawCompletedJob",
        }
    ]


async def test_empty_results_are_arrays(client, seeded):
    scope = {"namespace": NS, "project": "shop", "component": "payments"}
    for path, _key in (
        ("/api/v1/logs/query", "logs"),
        ("/api/v1/events/query", "events"),
        ("/api/v1alpha1/traces/query", "traces"),
    ):
        response = await client.post(path, json=window(searchScope=scope))
        assert response.status_code == 400  # payments never reported anything, so its name is unknown
    body = (
        await client.post("/api/v1/logs/query", json=window(searchScope=CART, searchPhrase="nothing like this"))
    ).json()
    assert body == {"logs": [], "total": 0, "tookMs": body["tookMs"]}


async def test_traces_of_a_component_show_the_whole_trace(client, seeded):
    body = (await client.post("/api/v1alpha1/traces/query", json=window())).json()
    assert body["total"] == 1
    assert body["traces"] == [
        {
            "traceId": TRACE,
            "traceName": "GET /checkout",
            "spanCount": 3,
            "rootSpanId": "a000000000000001",
            "rootSpanName": "GET /checkout",
            "rootSpanKind": "Server",
            "startTime": format_rfc3339(BASE_NS),
            "endTime": format_rfc3339(BASE_NS + 90_000_000),
            "durationNs": 90_000_000,
            "hasErrors": True,
        }
    ]


async def test_spans_of_a_trace_and_span_details(client, seeded):
    scope = {"namespace": NS, "project": "shop"}
    body = (
        await client.post(f"/api/v1alpha1/traces/{TRACE}/spans/query", json=window(searchScope=scope, sortOrder="asc"))
    ).json()
    assert [span["spanId"] for span in body["spans"]] == ["a000000000000001", "a000000000000002", "a000000000000003"]
    assert "attributes" not in body["spans"][0]
    assert body["spans"][0]["status"] == {"code": "error"}
    assert "parentSpanId" not in body["spans"][0]
    body = (
        await client.post(
            f"/api/v1alpha1/traces/{TRACE}/spans/query",
            json=window(searchScope=scope, includeAttributes=True, limit=1, sortOrder="asc"),
        )
    ).json()
    assert body["total"] == 3
    assert body["spans"][0]["attributes"] == {"http.response.status_code": 502}
    assert body["spans"][0]["resourceAttributes"] == {"service.name": "frontend"}

    span = (await client.get(f"/api/v1alpha1/traces/{TRACE}/spans/a000000000000003")).json()
    assert span["parentSpanId"] == "a000000000000002"
    assert span["spanKind"] == "Server"
    assert span["durationNs"] == 77_000_000
    assert span["attributes"] == {"http.route": "/cart/checkout"}


async def test_recreated_component_does_not_inherit_old_records(client, backend):
    old = identity("cart")
    new = replace(old, component_uid=str(uuid.uuid4()), pod="cart-prod-new")
    await backend.write(batch_id="old", logs=[LogRecord(ts_ns=BASE_NS, body="old cart", level="INFO", identity=old)])
    await backend.write(
        batch_id="new", logs=[LogRecord(ts_ns=BASE_NS + SECOND, body="new cart", level="INFO", identity=new)]
    )
    body = (await client.post("/api/v1/logs/query", json=window())).json()
    assert [entry["log"] for entry in body["logs"]] == ["new cart"]


async def test_retried_batch_is_stored_once(client, backend):
    record = LogRecord(ts_ns=BASE_NS, body="once", level="INFO", identity=identity("cart"))
    for _ in range(3):
        await backend.write(batch_id="same-batch", logs=[record])
    body = (await client.post("/api/v1/logs/query", json=window())).json()
    assert body["total"] == 1
