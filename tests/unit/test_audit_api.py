"""The audit trail over REST on the embedded backend, in upstream's shapes: records in their one (snake_case) JSON
shape, filters named as the record names them (the old camelCase names refused, pointing at the new), paging, an
exact total, the timeline (contiguous over the window, its default interval, a fine one coarsened and reported),
filter values with the own-selection rule, and every 400 a caller can cause."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest

from adapters.embedded.backend import EmbeddedBackend
from devservers.sample import BASE_NS
from domain.audit import Actor, AuditRecord, AuditResource, audit_document
from domain.model import TOTAL_CAP
from domain.timeutil import format_rfc3339, parse_go_duration
from observer.app import create_public_app
from observer.durations import go_duration
from observer.service import QueryService

SECOND = 10**9
MINUTE = 60 * SECOND
START, END = format_rfc3339(BASE_NS), format_rfc3339(BASE_NS + 3600 * SECOND)
QUERY = "/api/v1alpha1/audit-logs/query"
VALUES = "/api/v1alpha1/audit-logs/filter-values"


def record(number: int, minute: int, actor: str, action: str, result: str, surface: str = "rest") -> AuditRecord:
    return AuditRecord(
        event_id=f"evt-{number:03d}",
        time_ns=BASE_NS + minute * MINUTE + number,
        actor=Actor("user", actor, "https://idp.example", f"sess-{actor}", (("groups", ("platform-admins",)),)),
        action=action,
        category="management" if result != "denied" else "authorization",
        result=result,
        surface=surface,
        producer="observer",
        request_id=f"req-{number}",
        source_ip="10.1.2.3",
        user_agent="curl/8.5",
        http_method="PUT" if surface == "rest" else "",
        http_path=f"/api/v1alpha1/incidents/inc-{number}" if surface == "rest" else "",
        resource=AuditResource(type="incident", namespace="acme", name=f"inc-{number}"),
    )


RECORDS = [
    record(1, 1, "alice", "incident.update", "success"),
    record(2, 2, "bob", "incident.update", "denied"),
    record(3, 3, "alice", "mcp.query_component_logs", "success", "mcp"),
    record(4, 31, "carol", "alertrule.apply", "failure"),
    record(5, 32, "bob", "mcp.query_audit_logs", "denied", "mcp"),
]


def service(backend: EmbeddedBackend, *, audit: bool = True) -> QueryService:
    return QueryService(
        backend.registry,
        logs=backend,
        events=backend,
        traces=backend,
        metrics=backend,
        audit=backend if audit else None,
    )


@pytest.fixture
async def client(backend: EmbeddedBackend) -> AsyncIterator[httpx.AsyncClient]:
    await backend.write(batch_id="audit-seed", audit=RECORDS)
    app = create_public_app(service(backend))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://observer") as http:
        yield http


def window(**fields: object) -> dict[str, object]:
    return {"startTime": START, "endTime": END, "sortOrder": "asc", **fields}


async def ids(client: httpx.AsyncClient, **fields: object) -> list[str]:
    response = await client.post(QUERY, json=window(**fields))
    assert response.status_code == 200, response.text
    return [each["event_id"] for each in response.json()["records"]]


async def test_records_come_back_in_their_one_json_shape(client: httpx.AsyncClient) -> None:
    response = await client.post(QUERY, json=window(event_id=["evt-001"]))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["records"] == [audit_document(RECORDS[0])]
    [shown] = body["records"]
    assert shown["event_id"] == "evt-001" and shown["actor"]["session_id"] == "sess-alice"
    assert shown["actor"]["entitlements"] == {"groups": ["platform-admins"]} and shown["source_ip"] == "10.1.2.3"
    assert body["total"] == 1 and isinstance(body["tookMs"], int)
    assert "timeline" not in body and "nextCursor" not in body


async def test_filters_match_any_value_and_all_filters(client: httpx.AsyncClient) -> None:
    assert await ids(client) == ["evt-001", "evt-002", "evt-003", "evt-004", "evt-005"]
    assert await ids(client, sortOrder="desc", limit=2) == ["evt-005", "evt-004"]
    assert await ids(client, actor={"id": ["bob", "carol"]}) == ["evt-002", "evt-004", "evt-005"]
    assert await ids(client, result=["denied"], surface=["mcp"]) == ["evt-005"]
    assert await ids(client, resource={"name": ["inc-3", "inc-4"]}, category=["management"]) == ["evt-003", "evt-004"]
    assert await ids(client, searchPhrase="alertrule") == ["evt-004"]
    assert await ids(client, request_id=["req-2"], user_agent=["curl/8.5"]) == ["evt-002"]
    assert await ids(client, actor={"session_id": ["sess-carol"], "entitlements": ["platform-admins"]}) == ["evt-004"]
    assert await ids(client, source_ip=["10.9.9.9"]) == []


async def test_pages_follow_the_cursor(client: httpx.AsyncClient) -> None:
    first = (await client.post(QUERY, json=window(limit=3))).json()
    assert [each["event_id"] for each in first["records"]] == ["evt-001", "evt-002", "evt-003"]
    assert first["total"] == 5 and first["nextCursor"]
    rest = (await client.post(QUERY, json=window(limit=3, cursor=first["nextCursor"]))).json()
    assert [each["event_id"] for each in rest["records"]] == ["evt-004", "evt-005"] and "nextCursor" not in rest


async def test_the_timeline_counts_per_result(client: httpx.AsyncClient) -> None:
    answer = (await client.post(QUERY, json=window(includeTimeline=True, timelineInterval="30m", limit=1))).json()
    timeline = answer["timeline"]
    assert timeline["interval"] == "30m"
    assert [bucket["startTime"] for bucket in timeline["buckets"]] == [START, format_rfc3339(BASE_NS + 30 * MINUTE)]
    assert [bucket["total"] for bucket in timeline["buckets"]] == [3, 2]
    assert timeline["buckets"][0]["counts"] == {"success": 2, "denied": 1}
    assert timeline["buckets"][1]["counts"] == {"failure": 1, "denied": 1}
    default = (await client.post(QUERY, json=window(includeTimeline=True))).json()["timeline"]
    assert default["interval"] == "1m"  # an hour in at most 100 buckets
    assert len(default["buckets"]) == 60 and sum(bucket["total"] for bucket in default["buckets"]) == 5


async def test_the_timeline_covers_the_window_with_empty_buckets(client: httpx.AsyncClient) -> None:
    """Upstream: buckets with no records are present with zero counts, from startTime on, ascending whatever
    the sort order; an empty bucket's `counts` is left out (an absent key means zero)."""
    body = await client.post(QUERY, json=window(includeTimeline=True, timelineInterval="10m", sortOrder="desc"))
    buckets = body.json()["timeline"]["buckets"]
    assert [bucket["startTime"] for bucket in buckets] == [format_rfc3339(BASE_NS + n * 10 * MINUTE) for n in range(6)]
    assert [bucket["total"] for bucket in buckets] == [3, 0, 0, 2, 0, 0]
    assert buckets[1] == {"startTime": format_rfc3339(BASE_NS + 10 * MINUTE), "total": 0}
    nothing = (await client.post(QUERY, json=window(includeTimeline=True, actor={"id": ["nobody"]}))).json()
    assert nothing["total"] == 0 and len(nothing["timeline"]["buckets"]) == 60
    assert all(bucket["total"] == 0 for bucket in nothing["timeline"]["buckets"])


async def test_a_fine_interval_over_a_long_window_is_coarsened_and_reported(client: httpx.AsyncClient) -> None:
    month = {"startTime": START, "endTime": format_rfc3339(BASE_NS + 30 * 86400 * SECOND)}
    answer = await client.post(QUERY, json={**month, "includeTimeline": True, "timelineInterval": "1m"})
    assert answer.status_code == 200, answer.text
    timeline = answer.json()["timeline"]
    assert timeline["interval"] == "3h"  # 1m would be 43,200 buckets; 3h is the finest width giving at most 500
    assert len(timeline["buckets"]) == 240 and timeline["buckets"][0] == {
        "startTime": START,
        "total": 5,
        "counts": {"success": 2, "denied": 2, "failure": 1},
    }
    weekly = (await client.post(QUERY, json={**month, "includeTimeline": True, "timelineInterval": "1w"})).json()
    assert weekly["timeline"]["interval"] == "1w" and len(weekly["timeline"]["buckets"]) == 5  # the last one short
    chosen = (await client.post(QUERY, json={**month, "includeTimeline": True})).json()["timeline"]
    assert chosen["interval"] == "12h" and len(chosen["buckets"]) == 60  # the default: at most 100 buckets


async def test_a_record_at_the_end_of_the_window_keeps_its_bucket(backend: EmbeddedBackend) -> None:
    """Our ranges include their end: a record exactly at endTime is counted, so its bucket is kept after the
    window's own buckets and the buckets still add up to the total."""
    at_end = record(9, 60, "zoe", "incident.update", "success")
    await backend.write(batch_id="audit-end", audit=[replace(at_end, time_ns=BASE_NS + 3600 * SECOND)])
    app = create_public_app(service(backend))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://observer") as http:
        body = (await http.post(QUERY, json=window(includeTimeline=True, timelineInterval="30m"))).json()
    starts = [bucket["startTime"] for bucket in body["timeline"]["buckets"]]
    assert starts == [START, format_rfc3339(BASE_NS + 30 * MINUTE), END]
    assert body["total"] == 1 == sum(bucket["total"] for bucket in body["timeline"]["buckets"])


async def test_an_interval_without_include_timeline_is_ignored(client: httpx.AsyncClient) -> None:
    body = (await client.post(QUERY, json=window(timelineInterval="1h"))).json()
    assert body["total"] == 5 and "timeline" not in body


async def test_the_total_is_exact_beyond_the_log_cap(backend: EmbeddedBackend) -> None:
    many = [record(number, number % 60, "eve", "incident.update", "success") for number in range(TOTAL_CAP + 7)]
    await backend.write(batch_id="audit-many", audit=many)
    app = create_public_app(service(backend))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://observer") as http:
        body = (await http.post(QUERY, json=window(limit=1, includeTimeline=True))).json()
    assert body["total"] == TOTAL_CAP + 7 and len(body["records"]) == 1
    assert sum(bucket["total"] for bucket in body["timeline"]["buckets"]) == TOTAL_CAP + 7


async def test_filter_values_clear_their_own_selection(client: httpx.AsyncClient) -> None:
    question = {"query": window(result=["denied"], surface=["rest"], limit=5000), "filter": "result"}
    answer = await client.post(VALUES, json=question)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["filter"] == "result"
    # every result, not only the one chosen; ties by value ascending
    assert body["values"] == [
        {"value": "denied", "count": 1},
        {"value": "failure", "count": 1},
        {"value": "success", "count": 1},
    ]
    assert body["totalValues"] == 3
    actors = (await client.post(VALUES, json={"query": window(), "filter": "actor.id", "valueSearch": "O"})).json()
    assert actors["values"] == [{"value": "bob", "count": 2}, {"value": "carol", "count": 1}]


BAD_QUERIES = [
    ({"startTime": END, "endTime": START}, "endTime must be after startTime"),
    (window(category=["admin"]), "category[0]: 'admin' is not one of access, authorization, management"),
    (window(result=["ok"]), "result[0]: 'ok' is not one of success, failure, denied"),
    (window(surface=["grpc"]), "surface[0]: 'grpc' is not one of rest, mcp"),
    (window(limit=1001), "limit must be a whole number from 1 to 1000"),
    (window(includeTimeline=True, timelineInterval="30s"), "timelineInterval '30s' is not in the accepted notation"),
    (window(includeTimeline=True, timelineInterval="1h30m"), "<count><unit>, the unit one of m, h, d, w"),
    (window(includeTimeline=True, timelineInterval="soon"), "<count><unit>, the unit one of m, h, d, w"),
    (window(includeTimeline=True, timelineInterval="0m"), "<count><unit>, the unit one of m, h, d, w"),
    (window(timelineInterval="PT1H"), "timelineInterval 'PT1H' is not in the accepted notation"),
    (window(operationId=["UpdateIncident"]), "unknown field operationId (did you mean operation_id?)"),
    (window(eventId=["evt-001"]), "unknown field eventId (did you mean event_id?)"),
    (window(requestId=["r"]), "unknown field requestId (did you mean request_id?)"),
    (window(sourceIp=["10.1.2.3"]), "unknown field sourceIp (did you mean source_ip?)"),
    (window(userAgent=["curl"]), "unknown field userAgent (did you mean user_agent?)"),
    (window(actor={"sessionId": ["s"]}), "unknown field actor.sessionId (did you mean session_id?)"),
    (window(search_phrase="x"), "unknown field search_phrase (did you mean searchPhrase?)"),
    (window(actor={"name": ["alice"]}), "unknown field actor.name"),
    (window(resource={"kind": ["x"]}), "unknown field resource.kind"),
    (window(actors=["x"]), "unknown field actors (did you mean actor?)"),
    (window(action="incident.update"), "Input should be a valid list"),
    (window(sortOrder="newest"), "sortOrder must be either"),
]


@pytest.mark.parametrize(("body", "words"), BAD_QUERIES)
async def test_bad_queries_are_400_saying_what_to_fix(client: httpx.AsyncClient, body: dict, words: str) -> None:
    response = await client.post(QUERY, json=body)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["title"] == "badRequest" and words in error["message"], error


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"query": window(), "filter": "actor"}, "not an audit filter"),
        ({"query": window(), "filter": "request_id"}, "not an audit filter"),
        ({"query": window()}, "filter is required"),
        ({"query": window(result=["nope"]), "filter": "action"}, "is not one of success"),
    ],
)
async def test_bad_filter_values_are_400(client: httpx.AsyncClient, body: dict, words: str) -> None:
    response = await client.post(VALUES, json=body)
    assert response.status_code == 400, response.text
    assert words in response.json()["message"]


async def test_without_an_audit_backend_the_answer_is_501(backend: EmbeddedBackend) -> None:
    app = create_public_app(service(backend, audit=False))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://observer") as http:
        response = await http.post(QUERY, json=window())
    assert response.status_code == 501 and response.json()["errorCode"] == "OBS-V1-AL-06"


async def test_the_routes_are_in_the_openapi_document(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    for path in (QUERY, VALUES):
        operation = paths[path]["post"]
        assert "auditlogs:view" in operation["description"]
        assert operation["responses"]["200"]["content"]["application/json"]["schema"]["required"]
        assert operation["requestBody"]["content"]["application/json"]["schema"]
    patterns = paths["/api/v1alpha1/logs/patterns"]["post"]
    assert patterns["x-observer-extension"] is True and "logs:view" in patterns["description"]


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (SECOND, "1s"),
        (90 * SECOND, "1m30s"),
        (3600 * SECOND, "1h"),
        (250_000_000, "250ms"),
        (36 * 3600 * SECOND, "36h"),
    ],
)
def test_chosen_durations_are_written_as_go_durations(ns: int, text: str) -> None:
    assert go_duration(ns) == text and parse_go_duration(text) == ns
