"""Unknown fields, and fields an endpoint does not support, are a 400 naming them, never silently ignored (issue 12:
a misspelt `compnent` used to return every component's logs)."""

from __future__ import annotations

import pytest

from observer.errors import INVALID_REQUEST
from tests.unit.test_query_api import CART, NS, seeded, window  # noqa: F401  (seeded is a fixture)

LOGS = "/api/v1/logs/query"
EVENTS = "/api/v1/events/query"
METRICS = "/api/v1/metrics/query"
TOPOLOGY = "/api/v1alpha1/metrics/runtime-topology"
TRACES = "/api/v1alpha1/traces/query"
SPANS = "/api/v1alpha1/traces/4bf92f3577b34da6a3ce929d0e0e4736/spans/query"


def _message(response) -> str:
    assert response.status_code == 400, response.text
    error = response.json()
    assert set(error) == {"title", "errorCode", "message"} and error["title"] == "badRequest"
    return error["message"]


async def test_misspelt_scope_field_is_named_with_a_suggestion(client, seeded):
    scope = {"namespace": NS, "project": "shop", "compnent": "cart"}
    message = _message(await client.post(LOGS, json=window(searchScope=scope)))
    assert message == "Invalid request format: unknown field searchScope.compnent (did you mean component?)"


async def test_misspelt_top_level_field_is_named_with_a_suggestion(client, seeded):
    message = _message(await client.post(LOGS, json=window(serchPhrase="cart")))
    assert message == "Invalid request format: unknown field serchPhrase (did you mean searchPhrase?)"


async def test_unknown_field_without_a_near_name(client, seeded):
    message = _message(await client.post(EVENTS, json=window(zzz=1)))
    assert message == "Invalid request format: unknown field zzz"


@pytest.mark.parametrize("path", [TRACES, SPANS, METRICS, TOPOLOGY])
async def test_workflow_fields_are_refused_where_only_component_scopes_exist(client, seeded, path):
    body = window(searchScope={**CART, "workflowRunName": "build-7"})
    if path == METRICS:
        body["metric"] = "http"
    message = _message(await client.post(path, json=body))
    assert message.startswith("Invalid request format: unknown field searchScope.workflowRunName"), message
    assert "component scope" in message


@pytest.mark.parametrize(
    "path,field",
    [
        (EVENTS, "searchPhrase"),
        (EVENTS, "logLevels"),
        (TRACES, "searchPhrase"),
        (TRACES, "cursor"),
        (METRICS, "limit"),
        (TOPOLOGY, "step"),
        (LOGS, "includeAttributes"),
    ],
)
async def test_fields_of_other_endpoints_are_named_as_unsupported(client, seeded, path, field):
    body = window(**{field: "x"})
    if path == METRICS:
        body["metric"] = "http"
    message = _message(await client.post(path, json=body))
    assert message.startswith(f"Invalid request format: unknown field {field}"), message
    assert "not supported" in message


async def test_task_name_without_a_workflow_run_is_refused(client, seeded):
    message = _message(await client.post(LOGS, json=window(searchScope={"namespace": NS, "taskName": "compile"})))
    assert message == "Invalid request format: searchScope.taskName needs searchScope.workflowRunName"


async def test_a_workflow_scope_with_a_misspelt_field(client, seeded):
    scope = {"namespace": NS, "workflowRunName": "build-7", "tskName": "compile"}
    message = _message(await client.post(LOGS, json=window(searchScope=scope)))
    assert message == "Invalid request format: unknown field searchScope.tskName (did you mean taskName?)"


async def test_unknown_fields_come_before_other_checks(client, seeded):
    message = _message(await client.post(LOGS, json={"startTime": "bad", "searchScope": {"namespace": NS, "x": 1}}))
    assert message.startswith("Invalid request format: unknown field searchScope.x")


async def test_a_long_unknown_key_is_echoed_short(client, seeded):
    response = await client.post(LOGS, json=window(**{"k" * 100_000: 1}))
    assert _message(response).startswith("Invalid request format: unknown field kkkk")
    assert len(response.content) < 300


async def test_known_fields_still_work(client, seeded):
    body = window(limit=5, sortOrder="asc", logLevels=["INFO"], searchPhrase="cart")
    assert (await client.post(LOGS, json=body)).status_code == 200
    body = window(includeAttributes=True, limit=5, sortOrder="asc")
    assert (await client.post(TRACES, json=body)).status_code == 200
    body = window(includeGateways=False, includeExternal=True)
    assert (await client.post(TOPOLOGY, json=body)).status_code == 200


@pytest.mark.parametrize(
    "scope,message",
    [
        ({"namespace": 5}, "Invalid request format: searchScope.namespace: Input should be a valid string"),
        ({"namespace": NS, "workflowRunName": 7}, "Invalid request format: searchScope.workflowRunName: ..."),
        (
            {"namespace": NS, "workflowRunName": "r", "project": "p"},
            "Invalid request format: searchScope: workflowRunName cannot be combined with project",
        ),
        ("acme", "Invalid request format: searchScope: must be a JSON object (a component or a workflow scope)"),
    ],
)
async def test_scope_shape_problems_are_located_in_the_scope(client, seeded, scope, message):
    got = _message(await client.post(LOGS, json=window(searchScope=scope)))
    assert got.startswith(message[:-3]) if message.endswith("...") else got == message


async def test_form_errors_carry_the_invalid_request_code(client, seeded):
    response = await client.post(LOGS, json=window(compnent="x"))
    assert response.json()["errorCode"] == INVALID_REQUEST
    response = await client.post(TRACES, json=window(searchScope={**CART, "x": 1}))
    assert response.json()["errorCode"] == INVALID_REQUEST  # a form error, not traces' OBS-V1-T-06
