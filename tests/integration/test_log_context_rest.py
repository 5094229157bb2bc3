"""`POST /api/v1alpha1/logs/context` over real HTTP on the embedded backend (issue 13: log context is a query of
the query service, served by REST and by the MCP tool `get_log_context` alike).

The data: one container (`cart-prod-0/main`) logs a line every second, a second pod of the same component logs
between them, and a sidecar logs once at the same instant as one of main's lines, so the anchor alone can be
ambiguous and the walk must skip the other pod's lines.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from access.model import Subject
from adapters.embedded.backend import EmbeddedBackend
from devservers.local import serving
from devservers.sample import BASE_NS, NS, identity
from domain.model import LogRecord
from domain.timeutil import format_rfc3339
from observer.app import create_public_app
from observer.mcp.tools import ObserverTools
from observer.service import QueryService

SECOND = 10**9
MAIN_LINES = 40
PATH = "/api/v1alpha1/logs/context"
SCOPE = {"namespace": NS, "project": "shop", "component": "cart", "environment": "prod"}
ANCHOR = format_rfc3339(BASE_NS + 10 * SECOND)


@dataclass
class Plane:
    url: str
    tools: ObserverTools


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    root: Path = tmp_path_factory.mktemp("log-context")
    backend = EmbeddedBackend(root / "data")
    main, other = identity("cart", pod="cart-prod-0"), identity("cart", pod="cart-prod-1")
    logs = [LogRecord(BASE_NS + i * SECOND, f"main line {i:03d}", main, level="INFO") for i in range(MAIN_LINES)]
    logs += [
        LogRecord(BASE_NS + i * SECOND + SECOND // 2, f"other pod line {i:03d}", other, level="INFO")
        for i in range(MAIN_LINES)
    ]
    logs.append(LogRecord(BASE_NS + 10 * SECOND, "sidecar at the same instant", replace(main, container="istio-proxy")))
    asyncio.run(backend.write(batch_id="seed", logs=logs))
    service = QueryService(backend.registry, logs=backend, events=backend, traces=backend, metrics=backend)
    with serving(create_public_app(service)) as url:
        yield Plane(url, ObserverTools(service, extended=True))
    backend.close()


def post(plane: Plane, body: Any) -> httpx.Response:
    return httpx.post(plane.url + PATH, json=body, timeout=30)


def lines(entries: list[dict[str, Any]]) -> list[str]:
    return [entry["log"] for entry in entries]


def test_reads_the_lines_around_one_line_of_one_container(plane: Plane) -> None:
    response = post(
        plane,
        {
            "searchScope": SCOPE,
            "timestamp": ANCHOR,
            "podName": "cart-prod-0",
            "containerName": "main",
            "before": 5,
            "after": 3,
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["podName"], body["containerName"]) == ("cart-prod-0", "main")
    assert lines(body["before"]) == [f"main line {i:03d}" for i in range(5, 10)]
    assert lines(body["anchor"]) == ["main line 010"]
    assert lines(body["after"]) == ["main line 011", "main line 012", "main line 013"]
    assert body["anchor"][0]["metadata"]["podName"] == "cart-prod-0"  # the contract's ComponentLogEntry
    assert set(body["searched"]) == {"startTime", "endTime"}


def test_the_only_writer_at_the_instant_decides_the_container(plane: Plane) -> None:
    body = post(plane, {"searchScope": SCOPE, "timestamp": ANCHOR, "containerName": "istio-proxy"}).json()
    assert lines(body["anchor"]) == ["sidecar at the same instant"]
    assert body["before"] == [] and body["after"] == []
    last = post(
        plane,
        {
            "searchScope": SCOPE,
            "timestamp": format_rfc3339(BASE_NS + (MAIN_LINES - 2) * SECOND),
            "podName": "cart-prod-0",
            "after": 5,
        },
    ).json()
    assert lines(last["after"]) == [f"main line {MAIN_LINES - 1:03d}"]


def test_around_an_instant_without_a_line_when_the_container_is_named(plane: Plane) -> None:
    between = format_rfc3339(BASE_NS + 10 * SECOND + 1)
    nothing = post(plane, {"searchScope": SCOPE, "timestamp": between})
    assert nothing.status_code == 400 and nothing.json()["message"].startswith("no log line at ")
    around = post(
        plane,
        {
            "searchScope": SCOPE,
            "timestamp": between,
            "podName": "cart-prod-1",
            "containerName": "main",
            "before": 2,
            "after": 2,
        },
    ).json()
    assert lines(around["before"]) == ["other pod line 008", "other pod line 009"]
    assert lines(around["after"]) == ["other pod line 010", "other pod line 011"]


def test_two_writers_at_the_instant_is_a_400_naming_them(plane: Plane) -> None:
    response = post(plane, {"searchScope": SCOPE, "timestamp": ANCHOR})
    assert response.status_code == 400
    error = response.json()
    assert error["title"] == "badRequest"
    assert "2 containers logged at" in error["message"] and "cart-prod-0/istio-proxy" in error["message"]
    assert "pass podName and containerName" in error["message"]


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"searchScope": SCOPE}, 400, "timestamp is required"),
        ({"searchScope": {**SCOPE, "component": ""}, "timestamp": ANCHOR}, 400, "searchScope.component is required"),
        ({"searchScope": {"namespace": NS}, "timestamp": ANCHOR}, 400, "searchScope.project is required"),
        ({"timestamp": ANCHOR}, 400, "searchScope.namespace is required"),
        ({"searchScope": SCOPE, "timestamp": "noon"}, 400, "timestamp must be in RFC3339 format"),
        (
            {"searchScope": SCOPE, "timestamp": ANCHOR, "before": 201},
            400,
            "before must be a whole number from 0 to 200",
        ),
        ({"searchScope": SCOPE, "timestamp": ANCHOR, "after": -1}, 400, "after must be a whole number from 0 to 200"),
        ({"searchScope": SCOPE, "timestamp": ANCHOR, "before": 2.5}, 400, "Invalid request format: before"),
        ({"searchScope": SCOPE, "timestamp": ANCHOR, "lines": 3}, 400, "unknown field lines"),
        (
            {"searchScope": {**SCOPE, "compnent": "cart"}, "timestamp": ANCHOR},
            400,
            "unknown field searchScope.compnent",
        ),
        ({"searchScope": SCOPE, "timestamp": ANCHOR, "podName": "p" * 254}, 400, "podName is 254 characters long"),
    ],
)
def test_validation_is_as_strict_as_the_other_routes(plane: Plane, body: Any, status: int, fragment: str) -> None:
    response = post(plane, body)
    assert response.status_code == status, response.text
    assert fragment in response.json()["message"], response.json()


def test_an_unknown_component_is_the_scope_error_of_every_query(plane: Plane) -> None:
    response = post(plane, {"searchScope": {**SCOPE, "component": "nope"}, "timestamp": ANCHOR})
    assert (response.status_code, response.json()["errorCode"]) == (400, "OBS-V1-L-04")


async def test_the_mcp_tool_answers_what_rest_answers(plane: Plane) -> None:
    """get_log_context calls the same validation and service method: the same body, in the tool's names."""
    spec = plane.tools.by_name["get_log_context"]
    arguments = {
        **SCOPE,
        "timestamp": ANCHOR,
        "pod_name": "cart-prod-0",
        "container_name": "main",
        "before": 4.0,
        "after": 2,
    }
    tool = await spec.handler(Subject("user", "groups", ("dev",)), spec.call(arguments))
    rest = post(
        plane,
        {
            "searchScope": SCOPE,
            "timestamp": ANCHOR,
            "podName": "cart-prod-0",
            "containerName": "main",
            "before": 4,
            "after": 2,
        },
    ).json()
    assert tool == rest
