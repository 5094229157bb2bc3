"""Strings in query requests: NUL, lone surrogates, over-long phrases and names, and how messages echo them.

Every case here answered 500 or a 100 KB message before (issue 12); each is driven through the real app on the
embedded backend.
"""

from __future__ import annotations

import json

import pytest

from devservers.sample import BASE_NS, identity
from domain.echo import shown
from domain.model import LogRecord
from tests.unit.test_query_api import CART, END, START, seeded, window  # noqa: F401  (seeded is a fixture)

LOGS = "/api/v1/logs/query"
EVENTS = "/api/v1/events/query"
METRICS = "/api/v1/metrics/query"
TOPOLOGY = "/api/v1alpha1/metrics/runtime-topology"
TRACES = "/api/v1alpha1/traces/query"
SPANS = "/api/v1alpha1/traces/4bf92f3577b34da6a3ce929d0e0e4736/spans/query"

#: A body every route accepts once `metric` is set (extra fields per route are added by `_route_body`).
SCOPED_ROUTES = [LOGS, EVENTS, METRICS, TOPOLOGY, TRACES, SPANS]


async def post(client, path: str, body: dict):
    """JSON with every non-ASCII character escaped, so lone surrogates travel as the `\\udXXX` escapes a client
    would send (httpx's own `json=` encodes UTF-8 and cannot carry them)."""
    return await client.post(path, content=json.dumps(body).encode(), headers={"Content-Type": "application/json"})


def _route_body(path: str, **fields):
    body = window(**fields)
    if path == METRICS:
        body["metric"] = "http"
    return body


def _bad(response, *fragments: str) -> str:
    assert response.status_code == 400, response.text
    error = response.json()
    assert set(error) == {"title", "errorCode", "message"}
    assert error["title"] == "badRequest"
    for fragment in fragments:
        assert fragment in error["message"], error["message"]
    return error["message"]


async def test_nul_in_a_phrase_is_a_literal_search(client, seeded):
    line = LogRecord(ts_ns=BASE_NS + 40 * 10**9, body="before\x00after tail", level="INFO", identity=identity("cart"))
    await seeded.write(batch_id="nul", logs=[line])
    for phrase in ("e\x00a", "before\x00after", "\x00"):
        response = await post(client, LOGS, window(searchPhrase=phrase))
        assert response.status_code == 200, response.text
        assert [entry["log"] for entry in response.json()["logs"]] == ["before\x00after tail"]
    response = await post(client, LOGS, window(searchPhrase="a\x00b"))
    assert response.status_code == 200, response.text
    assert response.json()["logs"] == []


@pytest.mark.parametrize("surrogate", ["\ud800", "\udfff"])
async def test_lone_surrogate_in_the_phrase_is_a_400_naming_it(client, seeded, surrogate):
    message = _bad(await post(client, LOGS, window(searchPhrase=f"x{surrogate}y")), "searchPhrase", "lone surrogate")
    assert f"\\u{ord(surrogate):04x}" in message


@pytest.mark.parametrize("path", SCOPED_ROUTES)
@pytest.mark.parametrize("field", ["component", "environment", "project", "namespace"])
async def test_lone_surrogate_in_a_scope_name_is_a_400_on_every_route(client, seeded, path, field):
    scope = {**CART, field: "ca\ud800rt"}
    response = await post(client, path, _route_body(path, searchScope=scope))
    _bad(response, f"searchScope.{field}", "lone surrogate", "\\ud800")


@pytest.mark.parametrize(
    "fields,name",
    [
        ({"startTime": "2026\udfff"}, "startTime"),
        ({"sortOrder": "\ud800"}, "sortOrder"),
        ({"logLevels": ["INFO", "\ud800"]}, "logLevels[1]"),
        ({"cursor": "\ud800"}, "cursor"),
        ({"searchScope": {"namespace": "acme", "workflowRunName": "\ud800"}}, "searchScope.workflowRunName"),
    ],
)
async def test_every_string_field_is_checked(client, seeded, fields, name):
    _bad(await post(client, LOGS, window(**fields)), name, "lone surrogate")


async def test_surrogate_in_a_metrics_step_is_a_400(client, seeded):
    _bad(await post(client, METRICS, _route_body(METRICS, step="1\ud800m")), "step", "lone surrogate")


async def test_a_phrase_over_the_cap_is_refused_naming_the_limit(client, seeded):
    assert (await post(client, LOGS, window(searchPhrase="x" * 1024))).status_code == 200
    message = _bad(await post(client, LOGS, window(searchPhrase="x" * 1025)), "searchPhrase", "1024")
    assert len(message) < 200


@pytest.mark.parametrize("path", SCOPED_ROUTES)
async def test_a_huge_name_never_comes_back_whole(client, seeded, path):
    scope = {**CART, "component": "c" * 100_000}
    response = await post(client, path, _route_body(path, searchScope=scope))
    message = _bad(response, "searchScope.component", "253")
    assert len(response.content) < 500, message


async def test_an_unknown_long_name_within_the_cap_is_a_short_400(client, seeded):
    scope = {**CART, "component": "q" * 253}
    response = await post(client, LOGS, window(searchScope=scope))
    assert response.status_code == 400
    assert len(response.json()["message"]) < 200


@pytest.mark.parametrize(
    "fields",
    [
        {"sortOrder": "s" * 100_000},
        {"logLevels": ["L" * 100_000]},
        {"startTime": "2" * 100_000},
        {"endTime": "9" * 100_000},
    ],
)
async def test_long_bad_values_are_echoed_short(client, seeded, fields):
    response = await post(client, LOGS, window(**fields))
    assert response.status_code == 400
    assert len(response.content) < 600, response.text[:600]


async def test_long_bad_step_is_echoed_short(client, seeded):
    response = await post(client, METRICS, _route_body(METRICS, step="x" * 100_000))
    assert response.status_code == 400
    assert len(response.content) < 600


def test_shown_cuts_and_escapes():
    assert shown("cart") == "cart"
    assert shown("x" * 64) == "x" * 64
    assert shown("x" * 65) == "x" * 64 + "…"
    assert shown("a\ud800b") == "a\\ud800b"
    assert shown("a\x00b") == "a\\u0000b"
    # Cutting never splits an escape: the limit counts characters of the input.
    assert shown("\x00" * 100) == "\\u0000" * 64 + "…"
