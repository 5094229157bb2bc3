"""The query extensions through the REST API (in process, embedded backend): `traceId` on logs, `minDurationMs`
and `errorsOnly` on the trace list; strict validation naming the field; documented as extensions. And the
metrics answers: every key even when empty, and the step bound counting a partial last step's point."""

from __future__ import annotations

import pytest

from domain import semconv
from domain.timeutil import format_rfc3339
from observer.app import create_public_app
from observer.openapi import EXTENSION
from tests.conftest import service_over
from tests.unit.test_query_api import TRACE, seeded, window  # noqa: F401  (seeded is a fixture)

LOGS, TRACES, METRICS = "/api/v1/logs/query", "/api/v1alpha1/traces/query", "/api/v1/metrics/query"
PROJECT = {"namespace": "acme", "project": "shop"}


def _bad(response, field: str, code: str) -> str:
    assert response.status_code == 400, response.text
    error = response.json()
    assert (error["title"], error["errorCode"]) == ("badRequest", code)
    assert field in error["message"]
    return str(error["message"])


async def test_logs_of_a_trace(client, seeded):
    body = (await client.post(LOGS, json=window(traceId=TRACE))).json()
    assert [entry["log"] for entry in body["logs"]] == ["cache miss for cart 42"]
    assert body["total"] == 1 and body["logs"][0]["traceId"] == TRACE
    upper = (await client.post(LOGS, json=window(traceId=TRACE.upper()))).json()
    assert upper["total"] == 1
    assert (await client.post(LOGS, json=window(traceId=""))).json()["total"] > 1  # "" is no filter


@pytest.mark.parametrize("bad", ["abc", "0" * 32, "g" * 32, TRACE + "0", "4bf92f35-77b3-4da6-a3ce-929d0e0e4736"])
async def test_a_malformed_trace_id_is_a_400_naming_the_field(client, seeded, bad):
    message = _bad(
        await client.post(LOGS, json=window(traceId=bad)), "traceId", ""
    )  # logs validation errors carry no code, as upstream
    assert "32 hexadecimal digits" in message


async def test_trace_id_of_the_wrong_type_is_invalid_format(client, seeded):
    response = await client.post(LOGS, json=window(traceId=42))
    assert response.status_code == 400 and "traceId" in response.json()["message"]


async def test_trace_list_filters(client, seeded):
    # The one trace lasts 90 ms and its root span failed.
    scope = window(searchScope=PROJECT)
    assert (await client.post(TRACES, json={**scope, "errorsOnly": True})).json()["total"] == 1
    assert (await client.post(TRACES, json={**scope, "minDurationMs": 90})).json()["total"] == 1
    longer = (await client.post(TRACES, json={**scope, "minDurationMs": 91})).json()
    assert (longer["traces"], longer["total"]) == ([], 0)
    assert (await client.post(TRACES, json={**scope, "minDurationMs": 0, "errorsOnly": False})).json()["total"] == 1


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"minDurationMs": -1}, "minDurationMs"),
        ({"minDurationMs": 30 * 24 * 3600 * 1000 + 1}, "minDurationMs"),
        ({"minDurationMs": "5"}, "minDurationMs"),
        ({"minDurationMs": 1.5}, "minDurationMs"),
        ({"errorsOnly": "true"}, "errorsOnly"),
    ],
)
async def test_bad_trace_filters_are_400s_naming_the_field(client, seeded, extra, field):
    response = await client.post(TRACES, json={**window(), **extra})
    assert response.status_code == 400, response.text
    assert field in response.json()["message"]


@pytest.mark.parametrize("extra", [{"minDurationMs": 5}, {"errorsOnly": True}])
async def test_the_spans_of_a_trace_refuse_the_list_filters(client, seeded, extra):
    response = await client.post(f"/api/v1alpha1/traces/{TRACE}/spans/query", json={**window(), **extra})
    _bad(response, next(iter(extra)), "OBS-V1-T-06")


async def test_the_filters_are_documented_extensions(backend):
    schemas = create_public_app(service_over(backend)).openapi()["components"]["schemas"]
    assert schemas["LogsQueryRequest"]["properties"]["traceId"][EXTENSION] is True
    traces = schemas["TracesQueryRequest"]["properties"]
    assert traces["minDurationMs"][EXTENSION] is True and traces["errorsOnly"][EXTENSION] is True
    assert traces["minDurationMs"]["minimum"] == 0


async def test_an_empty_metrics_answer_has_every_key(client, seeded):
    scope = {"namespace": "acme", "project": "shop", "component": "cart"}
    for metric, keys in (("resource", [spec.key for spec in semconv.RESOURCE_SERIES]), ("http", semconv.HTTP_SERIES)):
        body = (await client.post(METRICS, json=window(metric=metric, step="1m", searchScope=scope))).json()
        assert body == {key: [] for key in keys}


async def test_the_step_bound_counts_a_partial_last_step(client, seeded):
    start = 1_700_000_000 * 10**9
    span = 10_999 * 10**9 + 5 * 10**8  # 10,999.5 s: 11,000 aligned points at 1 s, and the partial one
    body = {
        "metric": "resource",
        "step": "1s",
        "startTime": format_rfc3339(start),
        "endTime": format_rfc3339(start + span),
        "searchScope": {"namespace": "acme"},
    }
    response = await client.post(METRICS, json=body)
    assert response.status_code == 400 and "11001 points" in response.json()["message"]
    suggested = response.json()["message"].rsplit("at least ", 1)[1].rstrip("s")
    assert (await client.post(METRICS, json={**body, "step": f"{suggested}s"})).status_code == 200
