"""The contract's validation and error table: each bad request, its status, errorCode and message."""

from __future__ import annotations

import json

import pytest

from observer.errors import INVALID_REQUEST

START, END = "2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z"
SCOPE = {"namespace": "acme", "project": "shop", "component": "cart", "environment": "prod"}
LOGS = "/api/v1/logs/query"
EVENTS = "/api/v1/events/query"
METRICS = "/api/v1/metrics/query"
TOPOLOGY = "/api/v1alpha1/metrics/runtime-topology"
TRACES = "/api/v1alpha1/traces/query"
SPANS = "/api/v1alpha1/traces/4bf92f3577b34da6a3ce929d0e0e4736/spans/query"


def body(**fields):
    base = {"startTime": START, "endTime": END, "searchScope": SCOPE}
    base.update(fields)
    return {key: value for key, value in base.items() if value is not ...}


RFC3339_PREFIX = "startTime must be in RFC3339 format (e.g., 2024-01-01T00:00:00Z): "

CASES = [
    # path, request body, expected message (prefix match when it ends with "..."), errorCode
    (LOGS, body(searchScope=...), "searchScope is required", ""),
    (LOGS, body(searchScope=None), "searchScope is required", ""),
    (LOGS, body(searchScope={"project": "shop"}), "searchScope.namespace is required", ""),
    (LOGS, body(searchScope={"namespace": "   "}), "searchScope.namespace is required", ""),
    (
        LOGS,
        body(searchScope={"namespace": "acme", "component": "cart"}),
        "searchScope.project is required when searchScope.component is provided",
        "",
    ),
    (
        LOGS,
        body(searchScope={"namespace": "acme", "workflowRunName": "r1", "project": "p"}),
        "Invalid request format...",
        INVALID_REQUEST,
    ),
    (LOGS, body(startTime=...), "startTime is required", ""),
    (LOGS, body(startTime="yesterday"), RFC3339_PREFIX + "...", ""),
    (LOGS, body(startTime="2026-01-01 00:00:00Z"), RFC3339_PREFIX + "...", ""),
    (LOGS, body(startTime="2026-02-30T00:00:00Z"), RFC3339_PREFIX + "...", ""),
    (LOGS, body(endTime=...), "endTime is required", ""),
    (LOGS, body(endTime="1700000000"), "endTime must be in RFC3339 format (e.g., 2024-01-01T00:00:00Z): ...", ""),
    (LOGS, body(endTime="2025-12-31T23:59:59Z"), "endTime must be after startTime", ""),
    (LOGS, body(endTime="2026-02-01T00:00:01Z"), "query time range cannot exceed 30 days", ""),
    (LOGS, body(limit=-1), "limit must be a positive integer", ""),
    (LOGS, body(limit=1001), "limit cannot exceed 1000", ""),
    (LOGS, body(limit="5"), "Invalid request format...", INVALID_REQUEST),
    (LOGS, body(limit=5.5), "Invalid request format...", INVALID_REQUEST),
    (LOGS, body(limit=True), "Invalid request format...", INVALID_REQUEST),
    (LOGS, body(sortOrder="up"), "sortOrder must be either 'asc' or 'desc'", ""),
    (LOGS, body(sortOrder="DESC"), "sortOrder must be either 'asc' or 'desc'", ""),
    (LOGS, body(logLevels=["TRACE"]), "invalid log level 'TRACE'; valid levels are: DEBUG, INFO, WARN, ERROR", ""),
    (LOGS, body(logLevels=["info"]), "invalid log level 'info'; valid levels are: DEBUG, INFO, WARN, ERROR", ""),
    (LOGS, body(logLevels=["INFO", "INFO"]), "duplicate log level 'INFO' is not allowed", ""),
    (LOGS, body(logLevels="ERROR"), "Invalid request format...", INVALID_REQUEST),
    (LOGS, body(searchPhrase=7), "Invalid request format...", INVALID_REQUEST),
    # Order: the scope is checked before the times, the times before the limit, the limit before the sort order.
    (LOGS, body(searchScope={}, startTime="bad"), "searchScope.namespace is required", ""),
    (LOGS, body(startTime="bad", limit=5000), RFC3339_PREFIX + "...", ""),
    (LOGS, body(limit=5000, sortOrder="x"), "limit cannot exceed 1000", ""),
    (LOGS, body(sortOrder="x", logLevels=["X"]), "sortOrder must be either 'asc' or 'desc'", ""),
    (EVENTS, body(searchScope=...), "searchScope is required", ""),
    (EVENTS, body(limit=-5), "limit must be a positive integer", ""),
    (EVENTS, body(endTime="2026-03-01T00:00:00Z"), "query time range cannot exceed 30 days", ""),
    (METRICS, body(), "metric is required", ""),
    (METRICS, body(metric="cpu"), "metric must be either resource or http", ""),
    (METRICS, body(metric="http", startTime=...), "startTime is required", ""),
    (METRICS, body(metric="http", searchScope={}), "searchScope.namespace is required", ""),
    (
        METRICS,
        body(metric="http", searchScope={"namespace": "acme", "component": "c"}),
        "searchScope.project is required when searchScope.component is provided",
        "",
    ),
    (
        METRICS,
        body(metric="http", step="1d"),
        'step must be a valid duration (e.g. 1m, 5m, 15m, 30m, 1h): time: invalid duration "1d"',
        "",
    ),
    (METRICS, body(metric="http", step="0"), "step must be greater than 0", ""),
    (METRICS, body(metric="http", step="-1m"), "step must be greater than 0", ""),
    (METRICS, body(metric="http", step="abc"), "step must be a valid duration (e.g. 1m, 5m, 15m, 30m, 1h): ...", ""),
    (
        METRICS,
        body(metric="http", step="100ms"),
        "step 100ms gives 36001 points per series over this range; at most 11000...",
        "",
    ),
    (METRICS, body(metric="resource", step=60), "Invalid request format...", INVALID_REQUEST),
    (TOPOLOGY, body(searchScope={"project": "shop", "environment": "prod"}), "searchScope.namespace is required", ""),
    (TOPOLOGY, body(searchScope={"namespace": "acme", "environment": "prod"}), "searchScope.project is required", ""),
    (TOPOLOGY, body(searchScope={"namespace": "acme", "project": "shop"}), "searchScope.environment is required", ""),
    (
        TOPOLOGY,
        body(endTime="2026-01-01T00:00:00.5Z", startTime="2026-01-01T00:00:01Z"),
        "endTime must be after startTime",
        "",
    ),
    (TOPOLOGY, body(includeGateways="yes"), "Invalid request format...", INVALID_REQUEST),
    (TRACES, body(searchScope={}), "searchScope.namespace is required", "OBS-V1-T-06"),
    (TRACES, body(limit=0), "limit must be a positive integer greater than zero", "OBS-V1-T-06"),
    (TRACES, body(limit=-1), "limit must be a positive integer greater than zero", "OBS-V1-T-06"),
    (TRACES, body(limit=1001), "limit cannot exceed 1000", "OBS-V1-T-06"),
    (TRACES, body(sortOrder="newest"), "sortOrder must be either 'asc' or 'desc'", "OBS-V1-T-06"),
    (TRACES, body(startTime="2026-01-01T00:00:00"), RFC3339_PREFIX + "...", "OBS-V1-T-06"),
    (TRACES, body(includeAttributes="true"), "Invalid request format...", INVALID_REQUEST),
    (SPANS, body(limit=0), "limit must be a positive integer greater than zero", "OBS-V1-T-06"),
    (SPANS, body(endTime="2026-06-01T00:00:00Z"), "query time range cannot exceed 30 days", "OBS-V1-T-06"),
]


@pytest.mark.parametrize("path,request_body,message,code", CASES)
async def test_bad_requests_get_the_contract_400(client, path, request_body, message, code):
    response = await client.post(path, json=request_body)
    assert response.status_code == 400, response.text
    error = response.json()
    assert set(error) == {"title", "errorCode", "message"}
    assert error["title"] == "badRequest"
    assert error["errorCode"] == code
    if message.endswith("..."):
        assert error["message"].startswith(message[:-3]), error["message"]
    else:
        assert error["message"] == message


@pytest.mark.parametrize("path", [LOGS, EVENTS, METRICS, TOPOLOGY, TRACES, SPANS])
@pytest.mark.parametrize(
    "raw,content_type",
    [
        (b"{not json", "application/json"),
        (b"", "application/json"),
        (b"[1,2,3]", "application/json"),
        (b'"just a string"', "application/json"),
        (json.dumps(body(metric="http")).encode(), "text/plain"),
        (b"\xff\xfe\x00garbage", "application/json"),
    ],
)
async def test_unbindable_bodies_are_invalid_request_format(client, path, raw, content_type):
    response = await client.post(path, content=raw, headers={"Content-Type": content_type})
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["title"] == "badRequest"
    assert error["message"].startswith("Invalid request format"), error["message"]


async def test_missing_span_is_404_with_its_code(client):
    response = await client.get("/api/v1alpha1/traces/0af7651916cd43dd8448eb211c80319c/spans/b7ad6b7169203331")
    assert response.status_code == 404
    assert response.json() == {"title": "notFound", "errorCode": "OBS-V1-T-07", "message": "Span not found"}


async def test_unknown_scope_name_is_400_that_names_it(client):
    """The caller's mistake, as the alerts' SCOPE_NOT_FOUND (observer/guard.py), with the logs resolver code."""
    response = await client.post(LOGS, json=body())
    assert response.status_code == 400
    error = response.json()
    assert error["title"] == "badRequest"
    assert error["errorCode"] == "OBS-V1-L-04"
    assert "namespace 'acme' not found" in error["message"]


async def test_health_needs_nothing(client):
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "healthy"
