"""The control plane's authorization engine: Authz* documents -> the embedded Casbin policy, and OpenChoreo's
authz API (`/api/v1/authz/evaluates`, `/profile`, `/actions`) over it.

The decision point is access/casbin_pdp.py, unchanged: this module only compiles OpenChoreo's four Authz kinds into
the rules of access/policy_sources.py and serves them.

Compilation (one Casbin role per roleMapping, so every mapping keeps its own scope):

- roleMapping i of AuthzRoleBinding `ns/B` is the role `binding:ns/B#i` (`clusterbinding:B#i` for a
  ClusterAuthzRoleBinding); it gets `p, role, <scope path>, <action>, <envs>, <effect>` for each action of the
  referenced role, and the binding's entitlement `{claim, value}` is linked to it: `g, <claim>:<value>, role`
  (the entitlement the token's subject carries: `groups:<group>` or `sub:<sub>`, access/casbin_pdp.py).
- the scope path: a namespaced binding's own namespace, narrowed by `scope.project` / `scope.component`; a cluster
  binding's `scope.namespace` (or every namespace). A mapping scoped to a `scope.resource` compiles to nothing:
  no action of ours is asked at that level.
- `roleRef`: an AuthzRole of the binding's own namespace or a ClusterAuthzRole. A role that does not exist (yet)
  grants nothing, as in Kubernetes RBAC; creating it later applies on the next call.
- conditions (access/conditions.py): an action a condition names is limited to the condition's environments
  (several conditions on one action: any of them, OR); the role's other actions get every environment. A role
  action that is a wildcard overlapping a condition (`*` with a condition on `logs:view`) is expanded to the
  catalogue's actions, because a Casbin line cannot say "every action but this one". A namespace-prefixed
  environment (`acme/dev`) applies in that namespace only: a binding in another namespace can never match it, and
  a cluster binding places it on `ns/acme`.

Bad input is refused at write time by `check` (400 naming `spec.roleMappings[i].conditions[j].expression` and the
like); `compile_documents` raises PolicyError for anything it cannot compile, so the last good policy stays in force
(all or nothing: skipping a broken deny could widen access).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import SQLAlchemyError

from access.casbin_pdp import CasbinAuthorizer, action_match
from access.conditions import ConditionError, Environment, environments
from access.evaluation import RequestError, capabilities, decide, parse_evaluate_requests
from access.model import ACTIONS, AuthorizationUnavailable, Subject
from access.policy_sources import PolicyError, Rule, validate
from access.resources import scope_path
from controlplane import kinds
from controlplane.errors import ApiError, FieldError, Invalid, TooLarge

log = logging.getLogger(__name__)

ROLE_KINDS = ("AuthzRole", "ClusterAuthzRole")
BINDING_KINDS = ("AuthzRoleBinding", "ClusterAuthzRoleBinding")
AUTHZ_KINDS = (*ROLE_KINDS, *BINDING_KINDS)
EFFECTS = ("allow", "deny")

#: Bounds: a policy is read whole on every change, an evaluates call is decided on the event loop.
MAX_AUTHZ_DOCUMENTS = 50_000
LIST_PAGE = 500
MAX_EVALUATES = 1000
MAX_BODY_BYTES = 1 << 20

# ------------------------------------------------------------------------------------------- the action catalogue

ENVIRONMENT_ATTRIBUTE = {"key": "resource.environment", "description": "Environment associated with the resource"}
_OBSERVER_SCOPES = {
    "logs:view": "component",
    "events:view": "component",
    "metrics:view": "component",
    "traces:view": "component",
    "alerts:view": "component",
    "incidents:view": "component",
    "incidents:update": "namespace",
    "finops:view": "component",
    "platformlogs:view": "cluster",
    "auditlogs:view": "cluster",
}
#: Actions whose requests carry `context.resource.environment` (access/resources.py EMPTY_CONTEXT_ACTIONS).
_OBSERVER_WITH_ENVIRONMENT = frozenset({"logs:view", "events:view", "metrics:view", "traces:view", "finops:view"})
VERBS = ("view", "create", "update", "delete")
_KIND_SCOPES = {"Project": "project", "Component": "component", "Workload": "component", "ReleaseBinding": "component"}
_KINDS_WITH_ENVIRONMENT = frozenset({"ReleaseBinding"})


@dataclass(frozen=True)
class Action:
    """One action: its name, the lowest hierarchy level it is asked at, and whether it carries an environment."""

    name: str
    lowest_scope: str
    environment: bool = False

    def wire(self) -> dict[str, Any]:
        """The ActionInfo schema."""
        out: dict[str, Any] = {"name": self.name, "lowestScope": self.lowest_scope}
        if self.environment:
            out["conditions"] = [dict(ENVIRONMENT_ATTRIBUTE)]
        return out


def _catalogue() -> tuple[Action, ...]:
    actions = [Action(name, _OBSERVER_SCOPES[name], name in _OBSERVER_WITH_ENVIRONMENT) for name in ACTIONS]
    for kind in kinds.KINDS:
        if kind.kind == "Namespace":
            scope = "namespace"
        elif not kind.namespaced:
            scope = "cluster"
        else:
            scope = _KIND_SCOPES.get(kind.kind, "namespace")
        actions.extend(
            Action(f"{kind.kind.lower()}:{verb}", scope, kind.kind in _KINDS_WITH_ENVIRONMENT) for verb in VERBS
        )
    return tuple(actions)


CATALOGUE: tuple[Action, ...] = _catalogue()
ACTION_NAMES: tuple[str, ...] = tuple(action.name for action in CATALOGUE)


def known_action(pattern: str) -> bool:
    """Whether an action pattern matches at least one action of the catalogue (`*`, `logs:*`, `component:view`)."""
    return any(action_match(name, pattern) for name in ACTION_NAMES)


def _overlap(a: str, b: str) -> bool:
    """Whether two action patterns share an action (prefix patterns: one covers the other)."""
    return action_match(a, b) or action_match(b, a)


# ------------------------------------------------------------------------------------------- checking documents


def _meta(document: Mapping[str, Any]) -> tuple[str, str, str]:
    metadata = document.get("metadata") or {}
    kind = str(document.get("kind", ""))
    namespace = str(metadata.get("namespace") or "") if kind in ("AuthzRole", "AuthzRoleBinding") else ""
    return kind, namespace, str(metadata.get("name") or "")


def _strings(value: Any) -> list[str] | None:
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    return None


def check(document: Mapping[str, Any]) -> list[FieldError]:
    """What the API refuses in an Authz* document beyond its CRD schema: unknown actions, conditions this model
    cannot hold, the CRDs' CEL rules on scopes and role kinds. [] for any other kind."""
    kind = document.get("kind")
    spec = document.get("spec")
    if kind not in AUTHZ_KINDS:
        return []
    if not isinstance(spec, dict):
        return [("spec", "is required")]
    if kind in ROLE_KINDS:
        actions = _strings(spec.get("actions"))
        if not actions:
            return [("spec.actions", "must be a non-empty list of actions")]
        return [
            (f"spec.actions[{i}]", f"unknown action {action!r}")
            for i, action in enumerate(actions)
            if not known_action(action)
        ]
    return _binding_problems(str(kind), spec, strict_actions=True)


def _binding_problems(kind: str, spec: Mapping[str, Any], strict_actions: bool) -> list[FieldError]:
    errors: list[FieldError] = []
    entitlement = spec.get("entitlement")
    if not isinstance(entitlement, dict):
        errors.append(("spec.entitlement", "is required"))
    else:
        for key in ("claim", "value"):
            if not isinstance(entitlement.get(key), str) or not entitlement[key].strip():
                errors.append((f"spec.entitlement.{key}", "must be a non-empty string"))
    if spec.get("effect", "allow") not in EFFECTS:
        errors.append(("spec.effect", "must be allow or deny"))
    mappings = spec.get("roleMappings")
    if not isinstance(mappings, list) or not mappings:
        return [*errors, ("spec.roleMappings", "must be a non-empty list")]
    for i, mapping in enumerate(mappings):
        errors.extend(_mapping_problems(kind, mapping, f"spec.roleMappings[{i}]", strict_actions))
    return errors


def _mapping_problems(kind: str, mapping: Any, at: str, strict_actions: bool) -> list[FieldError]:
    if not isinstance(mapping, dict):
        return [(at, "must be an object")]
    errors: list[FieldError] = []
    ref = mapping.get("roleRef")
    if not isinstance(ref, dict) or not isinstance(ref.get("name"), str) or not ref["name"]:
        errors.append((f"{at}.roleRef", "must name a role"))
    elif kind == "ClusterAuthzRoleBinding" and ref.get("kind") != "ClusterAuthzRole":
        errors.append((f"{at}.roleRef.kind", "a ClusterAuthzRoleBinding can only reference a ClusterAuthzRole"))
    elif ref.get("kind") not in ROLE_KINDS:
        errors.append((f"{at}.roleRef.kind", "must be AuthzRole or ClusterAuthzRole"))
    scope = mapping.get("scope") or {}
    if not isinstance(scope, dict):
        errors.append((f"{at}.scope", "must be an object"))
        scope = {}
    if scope.get("component") and not scope.get("project"):
        errors.append((f"{at}.scope.component", "scope.component requires scope.project"))
    if scope.get("resource") and not scope.get("project"):
        errors.append((f"{at}.scope.resource", "scope.resource requires scope.project"))
    if scope.get("component") and scope.get("resource"):
        errors.append((f"{at}.scope", "scope.component and scope.resource are mutually exclusive"))
    if kind == "ClusterAuthzRoleBinding" and scope.get("project") and not scope.get("namespace"):
        errors.append((f"{at}.scope.project", "scope.project requires scope.namespace"))
    conditions = mapping.get("conditions") or []
    if not isinstance(conditions, list):
        return [*errors, (f"{at}.conditions", "must be a list")]
    for j, condition in enumerate(conditions):
        where = f"{at}.conditions[{j}]"
        if not isinstance(condition, dict):
            errors.append((where, "must be an object"))
            continue
        actions = _strings(condition.get("actions"))
        if not actions:
            errors.append((f"{where}.actions", "must be a non-empty list of actions"))
        elif strict_actions:
            errors.extend(
                (f"{where}.actions[{k}]", f"unknown action {action!r}")
                for k, action in enumerate(actions)
                if not known_action(action)
            )
        expression = condition.get("expression")
        if not isinstance(expression, str) or not expression.strip():
            errors.append((f"{where}.expression", "must be a non-empty CEL expression"))
            continue
        try:
            environments(expression)
        except ConditionError as exc:
            errors.append((f"{where}.expression", str(exc)))
    return errors


# ------------------------------------------------------------------------------------------- compiling


def compile_documents(documents: Iterable[Mapping[str, Any]]) -> list[Rule]:
    """Every Authz* document of the store -> Casbin rules (module docstring); other kinds are ignored.
    PolicyError names the document and field that cannot be compiled."""
    roles: dict[tuple[str, str, str], list[str]] = {}
    bindings: list[Mapping[str, Any]] = []
    for document in documents:
        kind, namespace, name = _meta(document)
        if kind in ROLE_KINDS:
            spec = document.get("spec") or {}
            roles[(kind, namespace, name)] = _strings(spec.get("actions") if isinstance(spec, dict) else None) or []
        elif kind in BINDING_KINDS:
            bindings.append(document)
    rules: list[list[str]] = []
    where: list[str] = []
    for binding in bindings:
        kind, namespace, name = _meta(binding)
        label = f"{kind} {namespace + '/' if namespace else ''}{name}"
        spec = binding.get("spec")
        problems = _binding_problems(kind, spec, strict_actions=False) if isinstance(spec, dict) else [("spec", "")]
        if problems or not isinstance(spec, dict):
            field, message = problems[0]
            raise PolicyError(f"{label}: {field}: {message}")
        compiled = _compile_binding(kind, namespace, name, spec, roles)
        rules.extend(compiled)
        where.extend([label] * len(compiled))
    return validate(rules, where)


def _compile_binding(
    kind: str, namespace: str, name: str, spec: Mapping[str, Any], roles: Mapping[tuple[str, str, str], list[str]]
) -> list[list[str]]:
    member = f"{spec['entitlement']['claim'].strip()}:{spec['entitlement']['value'].strip()}"
    effect = str(spec.get("effect", "allow"))
    prefix = f"binding:{namespace}/{name}" if kind == "AuthzRoleBinding" else f"clusterbinding:{name}"
    rules: list[list[str]] = []
    for i, mapping in enumerate(spec["roleMappings"]):
        ref = mapping["roleRef"]
        actions = roles.get((ref["kind"], namespace if ref["kind"] == "AuthzRole" else "", ref["name"]))
        scope = mapping.get("scope") or {}
        if not actions or scope.get("resource"):
            continue
        base = namespace if kind == "AuthzRoleBinding" else str(scope.get("namespace") or "")
        path = scope_path(base, str(scope.get("project") or ""), str(scope.get("component") or ""))
        conditions = [
            (list(condition["actions"]), environments(condition["expression"]))
            for condition in mapping.get("conditions") or []
        ]
        lines = _lines(actions, conditions, path, base)
        if lines:
            role = f"{prefix}#{i}"
            rules.extend(["p", role, obj, action, envs, effect] for obj, action, envs in lines)
            rules.append(["g", member, role])
    return rules


def _lines(
    actions: Sequence[str], conditions: Sequence[tuple[list[str], frozenset[Environment]]], path: str, namespace: str
) -> list[tuple[str, str, str]]:
    """(scope path, action, environments) for one roleMapping (module docstring, "conditions")."""
    out: list[tuple[str, str, str]] = []
    for action in actions:
        if not any(_overlap(action, pattern) for named, _ in conditions for pattern in named):
            out.append((path, action, "*"))
            continue
        concrete = [name for name in ACTION_NAMES if action_match(name, action)]
        if not concrete and not action.endswith("*"):
            concrete = [action]  # an exact action outside the catalogue is still itself
        for name in concrete:
            matching = [envs for named, envs in conditions if any(action_match(name, pattern) for pattern in named)]
            if not matching:
                out.append((path, name, "*"))
                continue
            for obj, names in _placements(frozenset().union(*matching), path, namespace).items():
                out.append((obj, name, "|".join(sorted(names))))
    return out


def _placements(envs: frozenset[Environment], path: str, namespace: str) -> dict[str, set[str]]:
    """Where each environment of a condition applies: bare names on the mapping's own path; `ns/env` on it when
    the mapping sits in `ns`, nowhere when it sits in another namespace, on `ns/<ns>` when it spans them all."""
    placed: dict[str, set[str]] = {}
    for env in sorted(envs):
        if not env.namespace or env.namespace == namespace:
            placed.setdefault(path, set()).add(env.name)
        elif not namespace:
            placed.setdefault(scope_path(env.namespace), set()).add(env.name)
    return placed


# ------------------------------------------------------------------------------------------- the store as a source


class PageLike(Protocol):
    @property
    def items(self) -> list[dict[str, Any]]: ...
    @property
    def next_cursor(self) -> str: ...


class AuthzStore(Protocol):
    """What StorePolicySource needs of controlplane.store.Store."""

    def list(self, kind: str, namespace: str | None = None, *, limit: int = ..., cursor: str = ...) -> PageLike: ...

    def authz_revision(self) -> int: ...


class StorePolicySource:
    """A policy source (access.casbin_pdp.PolicySource) over the store: the stamp is the store's authz revision,
    bumped in the same transaction as any Authz* write, so a grant or revoke applies to the very next call."""

    def __init__(self, store: AuthzStore, admin_groups: Sequence[str] = ()) -> None:
        self.store = store
        self.admin_groups = tuple(admin_groups)

    def describe(self) -> str:
        return "control plane Authz* resources"

    def stamp(self) -> Hashable:
        try:
            return self.store.authz_revision()
        except SQLAlchemyError as exc:
            # A new stamp makes the next call try to reload, which fails and keeps the last good policy.
            return ("unreadable", type(exc).__name__)

    def rules(self) -> list[Rule]:
        documents: list[dict[str, Any]] = []
        try:
            for kind in AUTHZ_KINDS:
                cursor = ""
                while True:
                    page = self.store.list(kind, None, limit=LIST_PAGE, cursor=cursor)
                    documents.extend(page.items)
                    if len(documents) > MAX_AUTHZ_DOCUMENTS:
                        raise PolicyError(f"more than {MAX_AUTHZ_DOCUMENTS} Authz* documents")
                    cursor = page.next_cursor
                    if not cursor:
                        break
        except SQLAlchemyError as exc:
            raise PolicyError(f"cannot read the store: {type(exc).__name__}") from None
        return admin_rules(self.admin_groups) + compile_documents(documents)


#: The role the bootstrap admin groups are linked to; no compiled binding role has this prefix.
ADMIN_ROLE = "bootstrap:admin-groups"


def admin_rules(groups: Sequence[str]) -> list[Rule]:
    """Every action everywhere for these `groups` claim values (CONTROLPLANE_ADMIN_GROUPS, controlplane/auth.py),
    so a fresh control plane has someone who can write the first binding, and the authz API says so too."""
    if not groups:
        return []
    lines = [["p", ADMIN_ROLE, "*", "*", "*", "allow"], *(["g", f"groups:{group}", ADMIN_ROLE] for group in groups)]
    return validate(lines, ["CONTROLPLANE_ADMIN_GROUPS"] * len(lines))


def store_authorizer(store: AuthzStore, admin_groups: Sequence[str] = ()) -> CasbinAuthorizer:
    """The control plane's authorizer: the store's Authz* policy (plus the bootstrap admin groups' grant), its
    stamp read off the event loop, and the catalogue's actions known (so CRUD actions raise no typo warnings)."""
    return CasbinAuthorizer(StorePolicySource(store, admin_groups), known=known_action, stamp_in_thread=True)


# ------------------------------------------------------------------------------------------- the REST API


def _error(error: ApiError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status)


def _unauthorized() -> JSONResponse:
    return _error(ApiError(401, "UNAUTHORIZED", "authentication required"))


def _subject_context(subject: Subject) -> dict[str, Any]:
    return {
        "type": subject.type,
        "entitlement_claim": subject.entitlement_claim,
        "entitlement_values": list(subject.entitlement_values),
    }


async def _read_body(request: Request) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise TooLarge(MAX_BODY_BYTES)
        chunks.append(chunk)
    return b"".join(chunks)


def authz_router(authorizer_factory: Callable[[], CasbinAuthorizer]) -> APIRouter:
    """OpenChoreo's three authz routes over the authorizer the factory returns (called per request, so the
    application can build it at startup). Every route needs an authenticated caller: AuthMiddleware
    (access/middleware.py) in front puts the Subject in `request.state.subject`; without one the answer is 401."""
    router = APIRouter()

    async def snapshot_or_error() -> Any:
        try:
            return await authorizer_factory().current()
        except AuthorizationUnavailable:
            return None

    @router.post("/api/v1/authz/evaluates")
    async def evaluates(request: Request) -> Response:
        caller: Subject | None = getattr(request.state, "subject", None)
        if caller is None:
            return _unauthorized()
        try:
            raw = await _read_body(request)
        except TooLarge as exc:
            return _error(exc)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return _error(Invalid([("body", "is not JSON")], "request body is not valid JSON"))
        try:
            questions = parse_evaluate_requests(body, caller, MAX_EVALUATES)
        except RequestError as exc:
            return _error(Invalid(exc.details))
        snapshot = await snapshot_or_error()
        if snapshot is None:
            return _error(ApiError(500, "INTERNAL_ERROR", "the authorization policy could not be loaded"))
        return JSONResponse([decide(snapshot, question).wire() for question in questions])

    @router.get("/api/v1/authz/profile")
    async def profile(
        request: Request, namespace: str = "", project: str = "", component: str = "", resource: str = ""
    ) -> Response:
        caller: Subject | None = getattr(request.state, "subject", None)
        if caller is None:
            return _unauthorized()
        problems: list[FieldError] = []
        if component and not project:
            problems.append(("project", "is required when component is set"))
        if resource and not project:
            problems.append(("project", "is required when resource is set"))
        if component and resource:
            problems.append(("component", "component and resource are mutually exclusive"))
        if project and not namespace:
            problems.append(("namespace", "is required when project is set"))
        if problems:
            return _error(Invalid(problems))
        snapshot = await snapshot_or_error()
        if snapshot is None:
            return _error(ApiError(500, "INTERNAL_ERROR", "the authorization policy could not be loaded"))
        scope = scope_path(namespace, project, component)
        return JSONResponse(
            {
                "user": _subject_context(caller),
                "capabilities": capabilities(snapshot, caller, scope, ACTION_NAMES),
                "evaluatedAt": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        )

    @router.get("/api/v1/authz/actions")
    async def actions(request: Request) -> Response:
        if getattr(request.state, "subject", None) is None:
            return _unauthorized()
        return JSONResponse([action.wire() for action in CATALOGUE])

    return router
