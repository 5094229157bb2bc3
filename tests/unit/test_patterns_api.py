"""Log patterns over REST on the embedded backend: the scope named and checked as component logs name it, the
step and limit bounds, and the answer: templates with counts, sparklines, examples, levels, and which is new."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from adapters.embedded.backend import EmbeddedBackend
from devservers.sample import BASE_NS, NS, identity
from domain.model import LogRecord
from domain.timeutil import format_rfc3339
from observer.app import create_public_app
from observer.service import QueryService

SECOND = 10**9
MINUTE = 60 * SECOND
START, END = format_rfc3339(BASE_NS), format_rfc3339(BASE_NS + 10 * MINUTE)
PATTERNS = "/api/v1alpha1/logs/patterns"
CART = {"namespaceName": NS, "projectName": "shop", "componentName": "cart", "environmentName": "prod"}


@pytest.fixture
async def client(backend: EmbeddedBackend) -> AsyncIterator[httpx.AsyncClient]:
    """The window before START holds only logins; the window itself logins and, new, disk warnings."""
    cart = identity("cart")
    lines = [
        LogRecord(BASE_NS - 5 * MINUTE + i * SECOND, f"user {100 + i} logged in from 10.0.0.{i}", cart, "INFO")
        for i in range(20)
    ]
    lines += [
        LogRecord(BASE_NS + i * 20 * SECOND, f"user {200 + i} logged in from 10.0.1.{i}", cart, "INFO")
        for i in range(30)
    ]
    lines += [
        LogRecord(BASE_NS + 5 * MINUTE + i * SECOND, f"disk {i} of volume {700 + i} is {80 + i}% full", cart, "WARN")
        for i in range(6)
    ]
    await backend.write(batch_id="patterns-seed", logs=lines)
    service = QueryService(backend.registry, logs=backend, events=backend, traces=backend, metrics=backend)
    app = create_public_app(service)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://observer") as http:
        yield http


def request(**fields: object) -> dict[str, object]:
    return {**CART, "startTime": START, "endTime": END, **fields}


async def test_templates_with_counts_sparklines_and_what_is_new(client: httpx.AsyncClient) -> None:
    response = await client.post(PATTERNS, json=request(step="1m"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["step"] == "1m" and body["totalLines"] == 36 and body["sampled"] is False
    assert body["sampledLines"] == 36 and isinstance(body["tookMs"], int)
    logins, disks = body["patterns"]
    assert logins["count"] == 30 and "logged in from" in logins["template"] and logins["new"] is False
    assert disks["count"] == 6 and "full" in disks["template"] and disks["new"] is True
    assert disks["levels"] == ["WARN"] and disks["example"].startswith("disk ")
    assert len(logins["sparkline"]) == 10 and sum(logins["sparkline"]) == 30
    assert disks["sparkline"][5] == 6


async def test_the_default_step_gives_sixty_points(client: httpx.AsyncClient) -> None:
    body = (await client.post(PATTERNS, json=request(limit=1, logLevels=["WARN"]))).json()
    assert body["step"] == "10s" and len(body["patterns"]) == 1
    assert len(body["patterns"][0]["sparkline"]) == 60


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"namespaceName": ""}, "namespaceName is required"),
        ({"projectName": None}, "projectName is required when componentName is provided"),
        ({"step": "1s"}, "at most 500 are allowed"),
        ({"step": "-1m"}, "step must be greater than 0"),
        ({"step": "fortnight"}, "step must be a Go duration"),
        ({"limit": 501}, "limit must be a whole number from 1 to 500"),
        ({"endTime": START}, "endTime must be after startTime"),
        ({"logLevels": ["TRACE"]}, "invalid log level"),
        ({"searchScope": {"namespace": NS}}, "unknown field searchScope"),
        ({"component": "cart"}, "did you mean componentName?"),
    ],
)
async def test_bad_requests_are_400(client: httpx.AsyncClient, fields: dict, words: str) -> None:
    response = await client.post(PATTERNS, json=request(**fields))
    assert response.status_code == 400, response.text
    assert words in response.json()["message"]


async def test_an_unknown_scope_is_the_logs_querys_400(client: httpx.AsyncClient) -> None:
    response = await client.post(PATTERNS, json=request(componentName="nope"))
    assert response.status_code == 400 and response.json()["errorCode"] == "OBS-V1-L-04"
