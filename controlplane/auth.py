"""Authentication and authorization of the control plane's REST API.

Authentication is the observer's (access/authn.py, settings from the environment by access/settings.py:
`JWT_DISABLED`, `JWKS_URL`, `JWT_ISSUER`, `JWT_AUDIENCE`, ...): every request needs a valid bearer token except
`GET`/`HEAD` of `/health`, `/ready` and `/version` (openchoreo-api.yaml gives those `security: []`). A refusal is
OpenChoreo's ErrorResponse `{"error": ..., "code": "UNAUTHORIZED"}` (401), or 503 when the issuer's keys cannot
be fetched, so every answer of this API has one shape.

Authorization is the control plane's own engine (controlplane/authz.py `store_authorizer`, the Authz* documents of
the store): every CRUD call asks `<kind>:view|create|update|delete` (`project:create`, `component:view`, ...) on
the object's scope, and a refusal is 403 `{"error": "forbidden: <action> on <scope>", "code": "FORBIDDEN"}`.
The scope (`resource_for`) is the namespace, narrowed to the project and component where the kind has them
(a Project is its own project; a Component's project is `spec.owner.projectName`; a Workload's and a
ReleaseBinding's are `spec.owner.projectName` / `spec.owner.componentName`, and a ReleaseBinding carries its
`spec.environment`). A Namespace is asked on itself; a cluster-scoped kind on the whole cluster (`*`), which only
a ClusterAuthzRoleBinding without `scope.namespace` covers. A list needs `<kind>:view` on the namespace (the
cluster for cluster kinds), or on the project when it is filtered by `?project=`: lists are refused, never
filtered, so a page never silently hides what the caller cannot see.

Bootstrap: a fresh control plane holds no Authz* documents, so nobody could write the first binding. The groups in
`CONTROLPLANE_ADMIN_GROUPS` (comma list of `groups` claim values; empty by default: the references name no
upstream default) may do everything: their CRUD calls are not asked (break glass: no deny binding can lock them
out of the API), and the policy grants them `*` on `*` so `/api/v1/authz/evaluates` and `/profile` (and so the
observer in AUTHZ_MODE=remote) say the same.

`JWT_DISABLED=true` (explicitly) turns both off: the API is open and the startup line says so.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from access.authn import Authenticator
from access.casbin_pdp import CasbinAuthorizer
from access.model import (
    AuthenticationFailed,
    AuthenticationUnavailable,
    AuthorizationUnavailable,
    NotAuthenticated,
    PermissionDenied,
    Resource,
    Subject,
)
from access.resources import COMPONENT, NAMESPACE, PROJECT, resource_path
from access.settings import AuthSettings
from controlplane import kinds
from controlplane.authz import AuthzStore, store_authorizer
from controlplane.errors import ApiError

log = logging.getLogger(__name__)

ADMIN_GROUPS_VARIABLE = "CONTROLPLANE_ADMIN_GROUPS"
#: Served without a token (GET/HEAD only): liveness, readiness and the build, as upstream.
PUBLIC_PATHS = frozenset({"/health", "/ready", "/version"})
_READ_METHODS = frozenset({"GET", "HEAD"})
_MAX_ADMIN_GROUPS = 100


class Forbidden(ApiError):
    """403: the caller is authenticated but the policy does not allow `action` on the scope."""

    def __init__(self, action: str, resource: Resource) -> None:
        where = (
            "the cluster" if resource_path(resource) == "*" else resource_path(resource).replace("ns/", "namespace/", 1)
        )
        super().__init__(403, "FORBIDDEN", f"forbidden: {action} on {where}")
        self.action = action


def admin_groups_from(text: str) -> tuple[str, ...]:
    """`a, b,,c` -> ("a", "b", "c"); ValueError past a sane bound (a typo'd list must not grant half a directory)."""
    groups = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if len(groups) > _MAX_ADMIN_GROUPS:
        raise ValueError(f"{ADMIN_GROUPS_VARIABLE} names {len(groups)} groups; at most {_MAX_ADMIN_GROUPS}")
    return groups


@dataclass(frozen=True)
class AccessSettings:
    """The API's access settings: authentication (access/settings.py) and the bootstrap admin groups."""

    auth: AuthSettings
    admin_groups: tuple[str, ...] = ()

    @property
    def enabled(self) -> bool:
        return self.auth.enabled

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AccessSettings:
        """From the environment; AuthConfigError / ValueError name the variable to fix."""
        env = os.environ if environ is None else environ
        return cls(AuthSettings.from_env(env), admin_groups_from(env.get(ADMIN_GROUPS_VARIABLE, "")))


# ------------------------------------------------------------------------------------------- authentication


def _refusal(status: int, code: str, message: str) -> tuple[dict[str, Any], bytes]:
    body = orjson.dumps({"error": message, "code": code})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    if status == 503:
        headers.append((b"retry-after", b"5"))
    return {"type": "http.response.start", "status": status, "headers": headers}, body


class Authentication:
    """ASGI middleware: verifies the bearer token of every request but the public ones and puts the Subject in
    `request.state.subject` (as access/middleware.py does for the observer); refusals are ErrorResponses."""

    def __init__(self, app: ASGIApp, authenticator: Authenticator) -> None:
        self.app = app
        self.authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope.get("method") in _READ_METHODS and scope.get("path", "") in PUBLIC_PATHS):
            await self.app(scope, receive, send)
            return
        values = [value.decode("latin-1") for key, value in scope.get("headers", ()) if key.lower() == b"authorization"]
        try:
            subject = await self.authenticator.authenticate(values)
        except AuthenticationFailed as failure:
            log.debug("401 %s on %s %s: %s", failure.code, scope.get("method"), scope.get("path"), failure.reason)
            await self._refuse(send, 401, "UNAUTHORIZED", failure.message or "authentication required")
            return
        except AuthenticationUnavailable as exc:
            log.warning("503 on %s %s: %s", scope.get("method"), scope.get("path"), exc)
            await self._refuse(send, 503, "SERVICE_UNAVAILABLE", "authentication is temporarily unavailable")
            return
        scope.setdefault("state", {})["subject"] = subject
        await self.app(scope, receive, send)

    @staticmethod
    async def _refuse(send: Send, status: int, code: str, message: str) -> None:
        start, body = _refusal(status, code, message)
        await send(start)
        await send({"type": "http.response.body", "body": body})


# ------------------------------------------------------------------------------------------- authorization


def action(kind: str, verb: str) -> str:
    """`Project`, `create` -> `project:create` (the names controlplane/authz.py's catalogue lists)."""
    return f"{kind.lower()}:{verb}"


def _owner(document: Mapping[str, Any] | None) -> tuple[str, str]:
    spec = (document or {}).get("spec")
    owner = spec.get("owner") if isinstance(spec, dict) else None
    if not isinstance(owner, dict):
        return "", ""
    project, component = owner.get("projectName"), owner.get("componentName")
    return (project if isinstance(project, str) else ""), (component if isinstance(component, str) else "")


def resource_for(
    row: kinds.Kind, namespace: str | None, name: str = "", document: Mapping[str, Any] | None = None
) -> Resource:
    """The scope a CRUD call on one object of `row` is asked on (module docstring). `document` is the object
    (the stored one, or the body of a create); without it (an object that does not exist) the scope is what the
    URL alone says: the object's own level for a Namespace or a Project, the namespace otherwise."""
    if row.kind == "Namespace":
        return Resource(NAMESPACE, name, name)
    if not row.namespaced or not namespace:
        return Resource(NAMESPACE, "", "")
    if row.kind == "Project":
        return Resource(PROJECT, name, namespace, name) if name else Resource(NAMESPACE, namespace, namespace)
    project, component = _owner(document)
    if row.kind == "Component":
        component = name
    environment = ""
    if row.kind == "ReleaseBinding":
        spec = (document or {}).get("spec")
        value = spec.get("environment") if isinstance(spec, dict) else None
        environment = value if isinstance(value, str) else ""
    if project and component:
        return Resource(COMPONENT, component, namespace, project, component, environment)
    if project:
        return Resource(PROJECT, project, namespace, project, "", environment)
    return Resource(NAMESPACE, namespace, namespace, "", "", environment)


def list_resource(row: kinds.Kind, namespace: str | None, project: str = "") -> Resource:
    """The scope a list is asked on: the namespace (the cluster for cluster kinds, every namespace for
    Namespace), or the project a `?project=` filter narrows it to."""
    if row.kind == "Namespace" or not row.namespaced or not namespace:
        return Resource(NAMESPACE, "", "")
    if project:
        return Resource(PROJECT, project, namespace, project)
    return Resource(NAMESPACE, namespace, namespace)


class Guard:
    """Asks the authorizer before a CRUD call; admins (by group) pass without asking."""

    def __init__(self, authorizer: CasbinAuthorizer, admin_groups: tuple[str, ...] = ()) -> None:
        self.authorizer = authorizer
        self.admin_groups = frozenset(admin_groups)

    def is_admin(self, subject: Subject) -> bool:
        return subject.entitlement_claim == "groups" and not self.admin_groups.isdisjoint(subject.entitlement_values)

    async def require(self, request: Request, wanted: str, resource: Resource) -> None:
        """Returns when the caller may do `wanted` on `resource`; raises ApiError 401, 403 (Forbidden) or 503."""
        subject: Subject | None = getattr(request.state, "subject", None)
        if subject is None:
            raise ApiError(401, "UNAUTHORIZED", "authentication required")
        if self.is_admin(subject):
            return
        try:
            await self.authorizer.authorize(subject, wanted, resource)
        except NotAuthenticated:
            raise ApiError(401, "UNAUTHORIZED", "authentication required") from None
        except PermissionDenied:
            raise Forbidden(wanted, resource) from None
        except AuthorizationUnavailable:
            raise ApiError(503, "SERVICE_UNAVAILABLE", "the authorization policy could not be loaded") from None


# ------------------------------------------------------------------------------------------- assembly


@dataclass
class ApiAccess:
    """What the API needs from this module: its middleware and its guard (None when JWT_DISABLED=true)."""

    settings: AccessSettings
    authenticator: Authenticator | None = None
    guard: Guard | None = None

    @classmethod
    def open(cls, settings: AccessSettings, store: AuthzStore) -> ApiAccess:
        """The authenticator and the store's authorizer (its first policy load happens here, so a policy that
        cannot load stops the start instead of denying every request)."""
        if not settings.enabled:
            return cls(settings)
        authorizer = store_authorizer(store, admin_groups=settings.admin_groups)
        return cls(settings, Authenticator(settings.auth), Guard(authorizer, settings.admin_groups))

    def middleware(self) -> list[Middleware]:
        """For `create_app(middleware=...)`: the authentication gate, or nothing when it is off."""
        if self.authenticator is None:
            return []
        return [Middleware(Authentication, authenticator=self.authenticator)]

    def describe(self) -> str:
        """For the startup line: how callers are checked."""
        if not self.settings.enabled:
            return "AUTHENTICATION AND AUTHORIZATION OFF (JWT_DISABLED=true): anyone who can reach the API can change everything"
        admins = ", ".join(self.settings.admin_groups) or f"none ({ADMIN_GROUPS_VARIABLE} is not set)"
        return f"bearer tokens from {self.settings.auth.jwks_url}, Authz* policy enforced, admin groups: {admins}"

    async def close(self) -> None:
        if self.authenticator is not None:
            await self.authenticator.close()
