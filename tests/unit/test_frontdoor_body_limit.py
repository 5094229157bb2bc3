"""The body cap: over the limit is a 413 in the contract's shape, decided from Content-Length without reading
the body, or while a chunked body streams in; under it, requests pass untouched. The alert webhook keeps a
larger cap, so a big Alertmanager notification is still accepted."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from starlette.types import Receive, Scope, Send

from access.model import AllowAll
from adapters.embedded.backend import EmbeddedBackend
from observer.alerting.plane import build_alerting
from observer.app import WEBHOOK_PATH, create_internal_app, create_public_app
from observer.body_limit import DEFAULT_MAX_BODY_BYTES, BodyLimitMiddleware
from observer.errors import PAYLOAD_TOO_LARGE
from tests.conftest import service_over

LIMIT = 1000


class Echo:
    """An ASGI app that reads the whole body and answers with its size; counts how often it was called."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls += 1
        size, more = 0, True
        while more:
            message = await receive()
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": str(size).encode()})


class Swallower(Echo):
    """Like an ASGI app of someone else's (the MCP transport): catches any error reading and answers 400."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except Exception:
            await send({"type": "http.response.start", "status": 400, "headers": []})
            await send({"type": "http.response.body", "body": b"parse error"})


def client_for(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t")


async def chunks(count: int, size: int, pulled: list[int]) -> AsyncIterator[bytes]:
    for _ in range(count):
        pulled.append(size)
        yield b"x" * size


async def pieces(raw: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(raw), size):
        yield raw[start : start + size]


def is_413(response: httpx.Response) -> bool:
    body = response.json()
    return (
        response.status_code == 413
        and body["errorCode"] == PAYLOAD_TOO_LARGE
        and set(body) == {"title", "errorCode", "message"}
        and str(LIMIT) in body["message"]
    )


async def test_declared_length_over_the_cap_is_refused_without_calling_the_app():
    app = Echo()
    async with client_for(BodyLimitMiddleware(app, LIMIT)) as client:
        response = await client.post("/x", content=b"x" * (LIMIT + 1))
    assert is_413(response)
    assert app.calls == 0


async def test_chunked_body_is_cut_off_while_streaming():
    app, pulled = Echo(), []
    async with client_for(BodyLimitMiddleware(app, LIMIT)) as client:
        response = await client.post("/x", content=chunks(1000, 100, pulled))
    assert "content-length" not in response.request.headers
    assert is_413(response)
    assert sum(pulled) <= LIMIT + 2 * 100  # refused as soon as it passed the cap, not after 100 KB


async def test_an_app_that_swallows_the_error_still_answers_413():
    async with client_for(BodyLimitMiddleware(Swallower(), LIMIT)) as client:
        response = await client.post("/x", content=chunks(50, 100, []))
    assert is_413(response)


async def test_bodies_within_the_cap_pass_untouched():
    app = Echo()
    async with client_for(BodyLimitMiddleware(app, LIMIT, per_path={"/big": 10 * LIMIT})) as client:
        exact = await client.post("/x", content=b"x" * LIMIT)
        streamed = await client.post("/x", content=chunks(10, 100, []))
        big = await client.post("/big", content=b"x" * (5 * LIMIT))
    assert (exact.status_code, exact.text) == (200, str(LIMIT))
    assert (streamed.status_code, streamed.text) == (200, "1000")
    assert (big.status_code, big.text) == (200, str(5 * LIMIT))


def test_a_cap_must_be_positive():
    with pytest.raises(ValueError):
        BodyLimitMiddleware(Echo(), 0)


async def test_the_public_port_refuses_a_huge_query_with_the_contract_413(backend):
    phrase = "a" * (DEFAULT_MAX_BODY_BYTES + 1)
    body = {
        "startTime": "2026-01-01T00:00:00Z",
        "endTime": "2026-01-01T01:00:00Z",
        "searchScope": {"namespace": "acme"},
        "searchPhrase": phrase,
    }
    async with client_for(create_public_app(service_over(backend))) as client:
        declared = await client.post("/api/v1/logs/query", json=body)
        raw = orjson.dumps(body)
        streamed = await client.post(
            "/api/v1/logs/query", content=pieces(raw, 65536), headers={"content-type": "application/json"}
        )
    for response in (declared, streamed):
        assert response.status_code == 413, response.text
        assert response.json()["errorCode"] == PAYLOAD_TOO_LARGE


@pytest.fixture
async def internal(tmp_path: Path):
    backend = EmbeddedBackend(tmp_path / "data")
    alerting = build_alerting(
        dsn=str(tmp_path / "alerts.db"),
        suppression_window="1h",
        resolver=backend.registry,
        authorizer=AllowAll(),
        logs=backend,
        metrics=backend,
    )
    async with client_for(create_internal_app(alerting)) as client:
        yield client
    await alerting.close()
    backend.close()


async def test_the_webhook_accepts_a_large_alertmanager_notification(internal):
    # Alertmanager sends every alert of a group, with all labels and annotations: here ~1.5 MB of them.
    alert = {
        "status": "resolved",
        "labels": {f"label_{i}": "v" * 40 for i in range(20)},
        "annotations": {"rule_name": "r", "rule_namespace": "acme", "alert_value": "1", "text": "t" * 400},
        "startsAt": "2026-01-01T00:00:00Z",
        "fingerprint": "abc",
    }
    payload = orjson.dumps({"version": "4", "status": "resolved", "alerts": [alert] * 1000})
    assert len(payload) > DEFAULT_MAX_BODY_BYTES
    response = await internal.post(WEBHOOK_PATH, content=payload, headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "success"


async def test_the_rule_routes_keep_the_default_cap(internal):
    body = b"{" + b" " * DEFAULT_MAX_BODY_BYTES
    response = await internal.post("/api/v1alpha1/alerts/sources/log/rules", content=body)
    assert response.status_code == 413
    assert response.json()["errorCode"] == PAYLOAD_TOO_LARGE
