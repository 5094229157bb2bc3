"""What the framework answers before a handler runs is the contract's `{title, errorCode, message}` on both
ports, with a code: unknown routes, wrong methods, bodies that are not JSON, missing parameters, and bugs."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from observer.app import create_internal_app
from observer.errors import (
    INTERNAL_ERROR,
    INVALID_BODY,
    INVALID_REQUEST,
    METHOD_NOT_ALLOWED,
    ROUTE_NOT_FOUND,
    UNSUPPORTED_MEDIA_TYPE,
    install_error_handlers,
)

LOGS = "/api/v1/logs/query"
START, END = "2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z"


@pytest.fixture
async def internal():
    transport = httpx.ASGITransport(create_internal_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://internal") as client:
        yield client


def contract_error(response: httpx.Response, status: int, code: str) -> dict[str, str]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"title", "errorCode", "message"}, body
    assert body["errorCode"] == code, body
    assert body["message"], body
    return body


async def test_unknown_route_is_the_contract_404_on_both_ports(client, internal):
    for port in (client, internal):
        body = contract_error(await port.get("/api/v1/nothing-here"), 404, ROUTE_NOT_FOUND)
        assert body["title"] == "notFound"
        assert "/api/v1/nothing-here" in body["message"]


async def test_wrong_method_is_405_with_allow_on_both_ports(client, internal):
    response = await client.get(LOGS)
    body = contract_error(response, 405, METHOD_NOT_ALLOWED)
    assert response.headers["allow"] == "POST"
    assert "use POST" in body["message"]
    response = await internal.post("/health")
    contract_error(response, 405, METHOD_NOT_ALLOWED)
    assert "GET" in response.headers["allow"]


async def test_deeply_nested_json_is_a_contract_400(client):
    # json.loads gives up (RecursionError) long before this depth; FastAPI used to answer {"detail": ...}.
    response = await client.post(LOGS, content=b"[" * 100_000, headers={"content-type": "application/json"})
    body = contract_error(response, 400, INVALID_BODY)
    assert body["title"] == "badRequest"
    assert body["message"].startswith("Invalid request format")


@pytest.mark.parametrize("raw", [b"{not json", b"\xff\xfe\x00garbage"])
async def test_unparseable_body_says_it_is_not_json(client, raw):
    body = contract_error(
        await client.post(LOGS, content=raw, headers={"content-type": "application/json"}), 400, INVALID_BODY
    )
    assert body["message"].startswith("Invalid request format: the body is not valid JSON")


async def test_missing_body_is_named(client):
    body = contract_error(await client.post(LOGS), 400, INVALID_BODY)
    assert body["message"] == "Invalid request format: the request body is required (a JSON object)"


async def test_a_body_that_is_not_an_object_says_so(client):
    body = contract_error(await client.post(LOGS, json=[1, 2, 3]), 400, INVALID_REQUEST)
    assert body["message"] == "Invalid request format: the body must be a JSON object"


async def test_a_missing_parameter_is_named_not_field_required(client):
    # startTime is a required query parameter of the costs endpoints.
    response = await client.get("/api/v1alpha1/costs/namespaces/acme/environments/prod", params={"endTime": END})
    body = contract_error(response, 400, INVALID_REQUEST)
    assert body["message"] == "Invalid request format: startTime is required"


async def test_a_wrong_type_names_the_field(client):
    response = await client.post(
        LOGS, json={"startTime": START, "endTime": END, "searchScope": {"namespace": "a"}, "limit": "5"}
    )
    body = contract_error(response, 400, INVALID_REQUEST)
    assert body["message"].startswith("Invalid request format: limit: ")


async def test_messages_quote_user_input_cut_short(client):
    response = await client.get("/" + "x" * 60_000)
    body = contract_error(response, 404, ROUTE_NOT_FOUND)
    assert len(body["message"]) < 400
    assert "x" * 60 + "…" in body["message"]


async def test_a_body_that_is_not_json_by_content_type_is_refused_with_a_code(client):
    content_type = "text/plain; " + "x" * 5000
    response = await client.post(LOGS, content=b"{}", headers={"content-type": content_type})
    body = contract_error(response, 400, UNSUPPORTED_MEDIA_TYPE)
    assert "application/json" in body["message"] and len(body["message"]) < 200


async def test_an_unexpected_exception_is_a_500_with_a_code_and_no_internals():
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    transport = httpx.ASGITransport(app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        body = contract_error(await client.get("/boom"), 500, INTERNAL_ERROR)
    assert body == {"title": "internalServerError", "errorCode": INTERNAL_ERROR, "message": "internal server error"}
