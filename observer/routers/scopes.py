"""`GET /api/v1alpha1/scopes`: the namespaces, projects, components and environments the caller may query (extension).

What exists comes from the name registry (the embedded one knows every name it was declared or has seen in
telemetry); what is shown is what the authorizer lets the caller query logs of (`logs:view`), asked scope by
scope with the same question a logs query asks, so deny rules below a grant are honoured:

- a component is listed when the caller may query it (in every environment, or in one); a project when it may
  query the project or one of its listed components; a namespace when it may query the namespace or anything
  listed under it;
- an environment when the caller may query the namespace, a listed project or a listed component in it.

A resolver that can only resolve names, not list them (OpenChoreo's API resolver, observer/resolver_http.py),
answers 501 saying so. The answer is cut at MAX_CHECKS authorization questions (`truncated: true`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

from fastapi import APIRouter, Depends, Request

from access import model as authz
from access.model import PermissionDenied, Subject
from access.resources import resource_for
from observer.errors import ApiError
from observer.guard import failures, query_endpoint
from observer.responses import FastJSONResponse
from observer.routers.queries import _ERRORS, caller, query_service
from observer.service import QueryService
from observer.validation import NamedScope

SCOPES = query_endpoint("L", "Failed to list scopes")
#: The most authorization questions one answer asks (a registry of thousands of names stays bounded).
MAX_CHECKS = 20_000
#: Questions asked at once (the embedded decision point answers in microseconds, a remote one over HTTP).
CONCURRENCY = 32


@runtime_checkable
class ScopeLister(Protocol):
    """A resolver that can list what it knows: rows of kind, namespace, name, uid and (components) project."""

    async def entries(self) -> list[dict[str, str]]: ...


@dataclass
class _Namespace:
    projects: dict[str, list[str]] = field(default_factory=dict)  # project -> components
    environments: list[str] = field(default_factory=list)


SCOPES_RESPONSE: dict[str, Any] = {
    "type": "object",
    "required": ["namespaces"],
    "properties": {
        "namespaces": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "projects": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "name": {"type": "string"},
                                "components": {
                                    "type": "array",
                                    "items": {"type": "object", "properties": {"name": {"type": "string"}}},
                                },
                            },
                        },
                    },
                    "environments": {
                        "type": "array",
                        "items": {"type": "object", "properties": {"name": {"type": "string"}}},
                    },
                },
            },
        },
        "truncated": {"type": "boolean", "description": "Present (true) when the listing was cut short."},
    },
}

router = APIRouter(responses={**_ERRORS, 501: _ERRORS[500]}, default_response_class=FastJSONResponse)


@router.get(
    "/api/v1alpha1/scopes",
    tags=["Scopes"],
    operation_id="listScopes",
    summary="The scopes the caller may query (extension)",
    description="The namespaces, projects, components and environments the caller may query logs of"
    " (`logs:view`), from the name registry; sorted by name. 501 when the configured name resolver cannot list.",
    responses={200: {"description": "The scopes", "content": {"application/json": {"schema": SCOPES_RESPONSE}}}},
    openapi_extra={"x-observer-extension": True},
)
async def list_scopes(request: Request, service: QueryService = Depends(query_service)) -> FastJSONResponse:
    lister = service.resolver
    if not isinstance(lister, ScopeLister):
        raise ApiError(
            501,
            "this observer resolves names through OpenChoreo's API, which it cannot list scopes from; pick the"
            " namespace, project, component and environment in OpenChoreo's console instead",
            "SCOPES_NOT_LISTABLE",
        )
    with failures(SCOPES):
        known = _tree(await lister.entries())
        return FastJSONResponse(await _visible(service, caller(request), known))


def _tree(rows: list[dict[str, str]]) -> dict[str, _Namespace]:
    namespaces: dict[str, _Namespace] = {}
    for row in rows:
        kind, ns, name = row.get("kind"), row.get("namespace", ""), row.get("name", "")
        if kind == "namespace":
            namespaces.setdefault(name, _Namespace())
        elif kind == "project":
            namespaces.setdefault(ns, _Namespace()).projects.setdefault(name, [])
        elif kind == "component":
            namespaces.setdefault(ns, _Namespace()).projects.setdefault(row.get("project", ""), []).append(name)
        elif kind == "environment":
            namespaces.setdefault(ns, _Namespace()).environments.append(name)
    return namespaces


class _Checker:
    """Asks the authorizer, within MAX_CHECKS questions, CONCURRENCY at a time, each question once; a denial is
    an answer, not an error."""

    def __init__(self, service: QueryService, who: Subject | None) -> None:
        self.service, self.who = service, who
        self.truncated = False
        self._answers: dict[NamedScope, bool] = {}
        self._gate = asyncio.Semaphore(CONCURRENCY)

    async def may(self, scope: NamedScope) -> bool:
        known = self._answers.get(scope)
        if known is not None:
            return known
        if len(self._answers) >= MAX_CHECKS:
            self.truncated = True
            return False
        self._answers[scope] = False  # claimed, so a concurrent duplicate is not asked again
        async with self._gate:
            try:
                await self.service.authorizer.authorize(self.who, authz.LOGS_VIEW, resource_for(scope))
            except PermissionDenied:
                return False
        self._answers[scope] = True
        return True

    async def any(self, scopes: list[NamedScope]) -> bool:
        """Whether any is allowed, asked a batch at a time, stopping at the first batch with a yes."""
        for start in range(0, len(scopes), CONCURRENCY):
            checks: list[Awaitable[bool]] = [self.may(scope) for scope in scopes[start : start + CONCURRENCY]]
            if any(await asyncio.gather(*checks)):
                return True
        return False


async def _visible(service: QueryService, who: Subject | None, known: dict[str, _Namespace]) -> dict[str, Any]:
    """Each level is asked without an environment first (a grant for every environment), then in each of the
    namespace's environments (a grant limited to some: it holds only for a query naming one of them)."""
    check = _Checker(service, who)
    answer = []
    for ns in sorted(known):
        tree = known[ns]
        envs = sorted(set(tree.environments))

        async def anywhere(scope: NamedScope, envs: list[str] = envs) -> bool:
            return await check.any([scope, *(replace(scope, environment=env) for env in envs)])

        projects: list[str] = []
        listed: list[tuple[str, str]] = []
        for project in sorted(name for name in tree.projects if name):
            components = [c for c in sorted(set(tree.projects[project])) if await anywhere(NamedScope(ns, project, c))]
            listed += [(project, c) for c in components]
            if components or await anywhere(NamedScope(ns, project)):
                projects.append(project)
        environments = []
        for env in envs:
            candidates = [NamedScope(ns, environment=env)]
            candidates += [NamedScope(ns, p, environment=env) for p in projects]
            candidates += [NamedScope(ns, p, c, env) for p, c in listed]
            if await check.any(candidates):
                environments.append({"name": env})
        if projects or environments or await anywhere(NamedScope(ns)):
            shown = [{"name": p, "components": [{"name": c} for q, c in listed if q == p]} for p in projects]
            answer.append({"name": ns, "projects": shown, "environments": environments})
    body: dict[str, Any] = {"namespaces": answer}
    if check.truncated:
        body["truncated"] = True
    return body
