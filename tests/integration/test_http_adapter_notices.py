"""An OpenChoreo adapter's soft "not implemented" (a 200 with the `X-OpenChoreo-Adapter-Notice` header,
http-adapters-notes §4.5) passed on by the real Observer (`observer up`, METRICS_ADAPTER_URL pointing at
devservers/strict_adapter.py): the REST answer carries it as an `X-Observer-Warning` header, its JSON unchanged,
and the MCP tool result says it in its `note`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
import yaml
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from adapters.protocols import MAX_WARNINGS, WARNING_CHARS, collecting_warnings, pass_on_warning
from devservers.local import serving
from devservers.observer import AllInOne, observer_up
from devservers.strict_adapter import NOTICE, StrictState, strict_adapter_app
from domain import semconv
from domain.timeutil import format_rfc3339
from observer.routers.queries import header_text

NS, PROJECT, COMPONENT, ENVIRONMENT = "notices", "shop", "cart", "prod"
UIDS = {
    "project": "7d3c1e0a-1b2c-4d5e-8f90-123456789abc",
    "component": "5f0c2a8e-3c1b-4d55-9a51-6f1d2a3b4c5d",
    "environment": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
}
SECOND = 10**9
START, END = 1_780_000_000 * SECOND, 1_780_003_600 * SECOND


def registry_file(directory: Path) -> Path:
    document = {
        "namespaces": [
            {
                "name": NS,
                "environments": [{"name": ENVIRONMENT, "uid": UIDS["environment"]}],
                "projects": [
                    {
                        "name": PROJECT,
                        "uid": UIDS["project"],
                        "components": [{"name": COMPONENT, "uid": UIDS["component"]}],
                    }
                ],
            }
        ]
    }
    path = directory / "registry.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.fixture(scope="module")
def observer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AllInOne, StrictState]]:
    """The real Observer with its metrics from the strict adapter (everything else from the embedded store)."""
    workdir = tmp_path_factory.mktemp("notices")
    state = StrictState()
    with (
        serving(strict_adapter_app("metrics", state)) as adapter,
        observer_up(
            workdir / "data", "--registry", str(registry_file(workdir)), env={"METRICS_ADAPTER_URL": adapter}
        ) as server,
    ):
        yield server, state


def metrics_body(metric: str) -> dict[str, Any]:
    return {
        "metric": metric,
        "startTime": format_rfc3339(START),
        "endTime": format_rfc3339(END),
        "step": "1m",
        "searchScope": {"namespace": NS, "project": PROJECT, "component": COMPONENT, "environment": ENVIRONMENT},
    }


def test_the_notice_reaches_the_rest_answer_as_a_header(observer):
    server, state = observer
    response = httpx.post(f"{server.api}/api/v1/metrics/query", json=metrics_body("http"), timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers.get_list("X-Observer-Warning") == [NOTICE]
    # the body is upstream's answer, untouched: every HTTP series, empty, and nothing else
    assert set(response.json()) == set(semconv.HTTP_SERIES) and not any(response.json().values())
    # and the adapter was asked with UIDs, as the contract expects
    path, sent = state.requests[-1]
    assert path == "/api/v1/metrics/query" and sent["searchScope"]["componentUid"] == UIDS["component"]


def test_an_answer_without_a_notice_has_no_warning_header(observer):
    server, _ = observer
    response = httpx.post(f"{server.api}/api/v1/metrics/query", json=metrics_body("resource"), timeout=30)
    assert response.status_code == 200, response.text
    assert "X-Observer-Warning" not in response.headers
    assert response.json()["cpuUsage"][0]["value"] == 0.25


async def call_tool(server: AllInOne, name: str) -> dict[str, Any]:
    arguments = {
        "namespace": NS,
        "project": PROJECT,
        "component": COMPONENT,
        "environment": ENVIRONMENT,
        "start_time": format_rfc3339(START),
        "end_time": format_rfc3339(END),
    }
    http = httpx2.AsyncClient(timeout=httpx2.Timeout(30, read=60))
    async with http, Client(streamable_http_client(f"{server.api}/mcp", http_client=http)) as client:
        result = await client.call_tool(name, arguments)
    assert not result.is_error and len(result.content) == 1, result
    body: dict[str, Any] = json.loads(result.content[0].text)
    assert result.structured_content == body
    return body


async def test_the_notice_reaches_the_mcp_result_as_a_note(observer):
    server, _ = observer
    body = await call_tool(server, "query_http_metrics")
    assert body["note"] == f"The backend warned: {NOTICE}."
    assert not any(value for key, value in body.items() if key != "note")


async def test_a_result_without_a_notice_has_no_note(observer):
    server, _ = observer
    body = await call_tool(server, "query_resource_metrics")
    assert "note" not in body and body["cpuUsage"][0]["value"] == 0.25


# ------------------------------------------------------------------ the backend-neutral channel (no server)


def test_warnings_are_kept_only_while_collecting_bounded_and_once():
    pass_on_warning("nobody listens")  # outside a request: dropped, no error
    with collecting_warnings() as warnings:
        for number in range(MAX_WARNINGS + 3):
            pass_on_warning(f"warning {number}")
            pass_on_warning(f"warning {number}")  # a repeat is kept once
        pass_on_warning("x" * (WARNING_CHARS + 50))
    assert warnings == [f"warning {number}" for number in range(MAX_WARNINGS)]
    with collecting_warnings() as warnings:
        pass_on_warning("x" * (WARNING_CHARS + 50))
    assert warnings == ["x" * WARNING_CHARS]


def test_a_warning_cannot_break_or_split_the_header():
    assert header_text("first\r\nX-Evil: 1\tü") == "first??X-Evil: 1??"
