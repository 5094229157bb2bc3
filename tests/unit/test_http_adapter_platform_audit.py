"""`observer adapter serve`'s platform-logs and audit operations in process (observer/adapter_serve.py): what a
caller can get wrong is a 400 in the logs contract's error body, naming the field; a filter-values call clears
the listed filter's own selection before the backend sees it; a plane without the role answers 501."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from domain.audit import AuditPage, AuditQuery
from domain.model import LogRecord, Page
from domain.platform import FilterValues, FilterValuesQuery, PlatformLogsQuery
from observer.adapter_serve import logs_app

WINDOW = {"startTime": "2026-03-01T09:00:00Z", "endTime": "2026-03-01T10:00:00Z"}


class Asked:
    """A platform-logs and audit backend that answers nothing and keeps what it was asked."""

    def __init__(self) -> None:
        self.asked: list[Any] = []

    async def query_logs(self, query: Any) -> Page[LogRecord]:
        return Page([], 0, 0)

    async def query_platform_logs(self, query: PlatformLogsQuery) -> Page[LogRecord]:
        self.asked.append(query)
        return Page([], 0, 0)

    async def platform_filter_values(self, query: FilterValuesQuery[PlatformLogsQuery]) -> FilterValues:
        self.asked.append(query)
        return FilterValues(query.filter)

    async def query_audit(self, query: AuditQuery) -> AuditPage:
        self.asked.append(query)
        return AuditPage([], 0, 0, "", [] if query.timeline_interval_ns else None)

    async def audit_filter_values(self, query: FilterValuesQuery[AuditQuery]) -> FilterValues:
        self.asked.append(query)
        return FilterValues(query.filter)


async def post(app: Any, path: str, body: Any) -> tuple[int, Any]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://adapter") as client:
        answer = await client.post(path, json=body)
        return answer.status_code, answer.json()


@pytest.mark.parametrize(
    ("path", "body", "says"),
    [
        ("/api/v1alpha1/platform-logs/query", {**WINDOW, "endTime": "2026-03-01T08:00:00Z"}, "endTime must be after"),
        ("/api/v1alpha1/platform-logs/query", {**WINDOW, "labels": {"bad key": "x"}}, "valid Kubernetes label key"),
        ("/api/v1alpha1/platform-logs/query", {**WINDOW, "limit": 5000}, "limit must be an integer"),
        ("/api/v1alpha1/platform-logs/query", {**WINDOW, "cluster": ["a"]}, "unknown field cluster"),
        ("/api/v1alpha1/platform-logs/query", [1, 2], "must be a JSON object"),
        ("/api/v1alpha1/platform-logs/filter-values", {"query": WINDOW, "filter": "node"}, "filter must be one of"),
        ("/api/v1alpha1/audit-logs/query", {**WINDOW, "category": ["everything"]}, "category: unknown value"),
        ("/api/v1alpha1/audit-logs/query", {**WINDOW, "sortOrder": "random"}, "sortOrder: unknown value"),
        ("/api/v1alpha1/audit-logs/filter-values", {"query": WINDOW, "filter": "event_id"}, "filter must be one of"),
        ("/api/v1alpha1/audit-logs/filter-values", {"query": {**WINDOW, "x": 1}, "filter": "action"}, "unknown field"),
    ],
)
async def test_a_request_the_contract_refuses_is_a_400_naming_the_field(path: str, body: Any, says: str) -> None:
    backend = Asked()
    status, answer = await post(logs_app(backend, None, backend, backend), path, body)
    assert status == 400
    assert answer["title"] == "badRequest" and answer["errorCode"]
    assert says in answer["message"]
    assert backend.asked == []


async def test_a_body_that_is_not_json_is_a_400() -> None:
    backend = Asked()
    app = logs_app(backend, None, backend, backend)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://adapter") as client:
        answer = await client.post("/api/v1alpha1/audit-logs/query", content=b"{not json")
    assert answer.status_code == 400 and answer.json()["title"] == "badRequest"


async def test_filter_values_clear_the_listed_filters_own_selection() -> None:
    backend = Asked()
    app = logs_app(backend, None, backend, backend)
    query = {**WINDOW, "podName": ["a"], "containerName": ["c"], "labels": {"app": "x", "tier": "y"}}
    assert (await post(app, "/api/v1alpha1/platform-logs/filter-values", {"query": query, "filter": "podName"}))[
        0
    ] == 200
    assert (await post(app, "/api/v1alpha1/platform-logs/filter-values", {"query": query, "filter": "labels.app"}))[
        0
    ] == 200
    pods, app_label = backend.asked
    assert (pods.query.pods, pods.query.containers) == ((), ("c",))
    assert app_label.query.labels == (("tier", "y"),)
    audit = {**WINDOW, "actor": {"id": ["alice"]}, "result": ["denied"]}
    status, answer = await post(app, "/api/v1alpha1/audit-logs/filter-values", {"query": audit, "filter": "result"})
    assert status == 200 and answer == {"filter": "result", "values": [], "totalValues": 0, "tookMs": 0}
    assert backend.asked[-1].query.filters == (("actor.id", ("alice",)),)


async def test_an_audit_timeline_covers_the_window_in_the_width_used() -> None:
    backend = Asked()
    body = {**WINDOW, "includeTimeline": True, "timelineInterval": "10m"}
    status, answer = await post(logs_app(backend, None, backend, backend), "/api/v1alpha1/audit-logs/query", body)
    assert status == 200
    assert answer["timeline"]["interval"] == "10m"
    assert [bucket["total"] for bucket in answer["timeline"]["buckets"]] == [0] * 6  # 09:00 .. 09:50
    assert backend.asked[0].timeline_interval_ns == 600 * 10**9
    assert (answer["records"], answer["total"]) == ([], 0)


async def test_without_the_role_each_operation_answers_501() -> None:
    app = logs_app(Asked(), None)
    for path, body in (
        ("/api/v1alpha1/platform-logs/query", WINDOW),
        ("/api/v1alpha1/platform-logs/filter-values", {"query": WINDOW, "filter": "podName"}),
        ("/api/v1alpha1/audit-logs/query", WINDOW),
        ("/api/v1alpha1/audit-logs/filter-values", {"query": WINDOW, "filter": "action"}),
    ):
        status, answer = await post(app, path, body)
        assert (status, answer["title"], answer["errorCode"]) == (501, "notImplemented", "OBS-V1-L-OBSERVER-501")
