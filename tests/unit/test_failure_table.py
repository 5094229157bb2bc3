"""One failure, one status and one code, whichever way the request came in (issue 13, observer/guard.py).

Each failure the guard's table names is made to happen below the API (the authorizer, the name resolver, the
backend or alert store raises it) and the same request is made over REST to logs, traces, alerts and incidents,
and through the MCP tools that mirror them. Every surface must answer the table's status; each endpoint its own
code of the contract's family (OBS-V1-L-.., OBS-V1-T-.., SCREAMING_SNAKE for the alert store), and an MCP tool
exactly what its REST route answers. The real embedded backend and alert store serve everything else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from access.model import AuthorizationUnavailable, NotAuthenticated, PermissionDenied, Resource, Subject
from adapters.embedded.backend import EmbeddedBackend
from adapters.protocols import (
    BackendUnavailable,
    NotSupportedByBackend,
    ResolverAuthFailed,
    ResolverUnavailable,
    ScopeNotFound,
)
from domain.model import Identity, LogRecord
from domain.timeutil import now_ns
from observer.alerting.db import open_engine
from observer.alerting.entries import EntryStore
from observer.alerting.service import AlertService
from observer.app import create_public_app
from observer.errors import ApiError
from observer.guard import FAILURES, RETRY_AFTER_S
from observer.mcp.arguments import api_error_text
from observer.mcp.tools import ObserverTools
from observer.service import QueryService

SCOPE = {"namespace": "acme", "project": "shop", "component": "cart", "environment": "prod"}
WINDOW = {"startTime": "2026-01-01T00:00:00Z", "endTime": "2026-01-02T00:00:00Z"}
#: A backend that cannot serve a question says so with its own code (an OpenChoreo adapter's 501), kept as it is.
OWN_CODE = "OBS-V1-L-GCP-501"
MCP_WINDOW = {"start_time": WINDOW["startTime"], "end_time": WINDOW["endTime"]}


@dataclass(frozen=True)
class Route:
    """One endpoint, its REST request, the MCP tool that mirrors it, and its codes for the failures below."""

    name: str
    path: str
    tool: str
    codes: dict[str, str]


def _query_codes(letter: str) -> dict[str, str]:
    prefix = f"OBS-V1-{letter}"
    return {
        "authz": f"{prefix}-02",
        "scope": f"{prefix}-04",
        "resolver": f"{prefix}-04",
        "resolver_auth": "OBS-V1-SCOPE-AUTH-FAILED",
        "backend": f"{prefix}-05",
        "bug": f"{prefix}-01",
        "own": OWN_CODE,
    }


ROUTES = (
    Route("logs", "/api/v1/logs/query", "query_component_logs", _query_codes("L")),
    Route("traces", "/api/v1alpha1/traces/query", "query_traces", _query_codes("T")),
    Route(
        "alerts",
        "/api/v1alpha1/alerts/query",
        "query_alerts",
        {
            "authz": "AUTHZ_UNAVAILABLE",
            "scope": "SCOPE_NOT_FOUND",
            "resolver": "RESOLVE_SCOPE_FAILED",
            "resolver_auth": "RESOLVE_SCOPE_FAILED",
            "backend": "QUERY_ALERTS_FAILED",
            "bug": "QUERY_ALERTS_FAILED",
            "own": OWN_CODE,
        },
    ),
    Route(
        "incidents",
        "/api/v1alpha1/incidents/query",
        "query_incidents",
        {
            "authz": "AUTHZ_UNAVAILABLE",
            "scope": "SCOPE_NOT_FOUND",
            "resolver": "QUERY_INCIDENTS_FAILED",
            "resolver_auth": "QUERY_INCIDENTS_FAILED",
            "backend": "QUERY_INCIDENTS_FAILED",
            "bug": "QUERY_INCIDENTS_FAILED",
            "own": OWN_CODE,
        },
    ),
)


@dataclass(frozen=True)
class Case:
    """A failure, where it is raised, and what every surface must answer: a status, which code, a retry."""

    name: str
    where: str  # "authorizer", "resolver" or "store" (the backend for queries, the alert store for alerts)
    failure: Exception
    status: int
    code: str | None  # a key of Route.codes, or None for the contract's empty code
    retry: bool = False


CASES = (
    Case("not authenticated", "authorizer", NotAuthenticated(), 401, None),
    Case("permission denied", "authorizer", PermissionDenied(), 403, None),
    Case("authorizer unavailable", "authorizer", AuthorizationUnavailable("timed out"), 503, "authz", retry=True),
    Case("unknown scope name", "resolver", ScopeNotFound("project", "nope", "acme"), 400, "scope"),
    Case("resolver unavailable", "resolver", ResolverUnavailable("connection refused"), 503, "resolver", retry=True),
    Case("resolver refuses our credentials", "resolver", ResolverAuthFailed("401"), 500, "resolver_auth"),
    Case("backend unavailable", "store", BackendUnavailable("connection refused"), 503, "backend", retry=True),
    Case("a bug below the API", "store", RuntimeError("boom"), 500, "bug"),
    Case("the backend cannot serve it", "store", NotSupportedByBackend(OWN_CODE, "not on GCP"), 501, "own"),
)


class Faults:
    """Where the next failure is raised; None lets every call through to the real thing."""

    def __init__(self) -> None:
        self.failure: Exception | None = None
        self.where = ""

    def check(self, where: str) -> None:
        if self.failure is not None and self.where == where:
            raise self.failure


class Authorizer:
    def __init__(self, faults: Faults) -> None:
        self.faults = faults

    async def authorize(self, subject: Subject | None, action: str, resource: Resource) -> None:
        self.faults.check("authorizer")


class Failing:
    """The real object, except that each coroutine method first raises the armed failure of `where`."""

    def __init__(self, inner: Any, faults: Faults, where: str) -> None:
        self._inner, self._faults, self._where = inner, faults, where

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if not callable(attribute) or name.startswith("_"):
            return attribute

        async def failing(*args: Any, **kwargs: Any) -> Any:
            self._faults.check(self._where)
            return await attribute(*args, **kwargs)

        return failing


@dataclass
class Plane:
    faults: Faults
    client: httpx.AsyncClient
    tools: ObserverTools


@pytest.fixture
async def plane(tmp_path: Path) -> AsyncIterator[Plane]:
    faults = Faults()
    embedded = EmbeddedBackend(tmp_path / "data")
    await embedded.write(
        batch_id="names",
        logs=[
            LogRecord(
                now_ns(),
                "hello",
                Identity(
                    namespace="acme",
                    project="shop",
                    project_uid="p-1",
                    component="cart",
                    component_uid="c-1",
                    environment="prod",
                    environment_uid="e-1",
                    pod="cart-1",
                    container="app",
                ),
            )
        ],
    )
    resolver = Failing(embedded.registry, faults, "resolver")
    backend = Failing(embedded, faults, "store")
    authorizer = Authorizer(faults)
    service = QueryService(
        resolver, logs=backend, events=backend, traces=backend, metrics=backend, authorizer=authorizer
    )
    engine = open_engine(str(tmp_path / "alerts.db"))
    alerts = AlertService(Failing(EntryStore(engine), faults, "store"), resolver, authorizer)
    app = create_public_app(service, alert_service=alerts)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://public") as client:
        yield Plane(faults, client, ObserverTools(service, alerts))
    engine.dispose()
    embedded.close()


async def _rest(plane: Plane, route: Route) -> tuple[int, str, str, str | None]:
    response = await plane.client.post(route.path, json={**WINDOW, "searchScope": SCOPE})
    body = response.json()
    assert set(body) == {"title", "errorCode", "message"}, body
    return response.status_code, body["errorCode"], body["message"], response.headers.get("retry-after")


async def _mcp(plane: Plane, route: Route) -> ApiError:
    spec = plane.tools.by_name[route.tool]
    with pytest.raises(ApiError) as raised:
        await spec.handler(Subject("user", "groups", ("dev",)), spec.call({**SCOPE, **MCP_WINDOW}))
    return raised.value


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
async def test_every_surface_maps_a_failure_to_the_same_status_and_code(plane: Plane, case: Case) -> None:
    plane.faults.failure, plane.faults.where = case.failure, case.where
    answers: dict[str, tuple[int, str]] = {}
    for route in ROUTES:
        expected_code = route.codes[case.code] if case.code else ""
        status, code, message, retry_after = await _rest(plane, route)
        assert (status, code) == (case.status, expected_code), (route.name, message)
        assert retry_after == (str(RETRY_AFTER_S) if case.retry else None), route.name
        tool = await _mcp(plane, route)
        assert (tool.status, tool.error_code, tool.message) == (status, code, message), route.tool
        assert api_error_text(tool, plane.tools.by_name[route.tool].vocabulary)  # what the agent reads
        answers[route.name] = (status, code)
    assert len({status for status, _ in answers.values()}) == 1, answers


def test_the_table_covers_every_case_here_and_ends_with_a_catch_all() -> None:
    kinds = [kind for kind, _ in FAILURES]
    assert kinds[-1] is Exception
    for case in CASES:
        assert any(isinstance(case.failure, kind) for kind in kinds[:-1]) or case.code == "bug", case.name


async def test_with_no_failure_every_route_answers(plane: Plane) -> None:
    """The harness itself lets requests through: the failures above are the only reason for the errors."""
    for route in ROUTES:
        response = await plane.client.post(route.path, json={**WINDOW, "searchScope": SCOPE})
        assert response.status_code == 200, (route.name, response.text)
