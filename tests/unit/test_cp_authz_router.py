"""The authz routes' own guards, in process (the served behaviour is tests/integration/test_cp_authz.py): without
an authenticated subject every route is a 401 ErrorResponse, and a policy that cannot be loaded is a 500, never a
decision."""

from __future__ import annotations

from collections.abc import Hashable

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.types import ASGIApp, Receive, Scope, Send

from access.casbin_pdp import CasbinAuthorizer
from access.model import Subject
from access.policy_sources import Rule
from controlplane.authz import authz_router

ROUTES = [
    ("POST", "/api/v1/authz/evaluates"),
    ("GET", "/api/v1/authz/profile"),
    ("GET", "/api/v1/authz/actions"),
]


class FlakySource:
    """A policy source whose reload fails unexpectedly once `broken` is set (not a PolicyError: a bug)."""

    def __init__(self) -> None:
        self.broken = False
        self.version = 0

    def describe(self) -> str:
        return "flaky"

    def stamp(self) -> Hashable:
        return self.version

    def rules(self) -> list[Rule]:
        if self.broken:
            raise RuntimeError("boom")
        return []


def _app(authorizer: CasbinAuthorizer, subject: Subject | None) -> FastAPI:
    app = FastAPI()
    app.include_router(authz_router(lambda: authorizer))

    def with_subject(inner: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if subject is not None:
                scope.setdefault("state", {})["subject"] = subject
            await inner(scope, receive, send)

        return middleware

    app.add_middleware(with_subject)  # type: ignore[arg-type]
    return app


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_no_subject_is_401(method, path):
    client = TestClient(_app(CasbinAuthorizer(FlakySource()), None))
    response = client.request(method, path, content=b"[]")
    assert response.status_code == 401
    assert response.json() == {"error": "authentication required", "code": "UNAUTHORIZED"}


def test_a_policy_that_cannot_load_is_500():
    source = FlakySource()
    client = TestClient(
        _app(CasbinAuthorizer(source), Subject("user", "groups", ("devs",))), raise_server_exceptions=False
    )
    source.broken, source.version = True, 1
    response = client.post("/api/v1/authz/evaluates", content=b"[]")
    assert response.status_code == 500
    assert response.json()["code"] == "INTERNAL_ERROR"
    assert client.get("/api/v1/authz/profile").status_code == 500
