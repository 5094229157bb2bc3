"""What a request was, in an audit record's words: its action (`incident.update`), category, resource and
operation id, and whether it changes state at all. One describer per plane, both reading only what routing left
in the ASGI scope (the matched route, its path parameters): never a body.

- `describe_observer`: the observer's two ports. Its state changes are few and named in OBSERVER_CHANGES by
  operation id; everything else that is not a read (a future route) is still recorded, under a name derived
  from its path. Reads: GET/HEAD/OPTIONS, and the POST queries (`.../query`, `/filter-values`, `/patterns`, the
  tail, log context, topology); MCP (`/mcp`) is recorded per tool call by the MCP server instead; reads of the
  trail itself (`/api/v1alpha1/audit-logs/...`) are recorded, category `access`.
- `describe_controlplane`: the control plane's CRUD routes (named `create Component`, `replace Component`, ...
  by controlplane/api.py): `component.create`, `.update`, `.delete`, category `authorization` for the Authz*
  kinds (roles and bindings) and `management` for the rest; `POST /api/v1/authz/evaluates` is a read.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.routing import compile_path

from domain.audit import AuditResource

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
AUDIT_LOGS_PREFIX = "/api/v1alpha1/audit-logs"
#: POST paths that only read (or stream telemetry back): queries are not state changes.
READ_SUFFIXES = ("/query", "/filter-values", "/patterns", "/logs/tail", "/logs/context", "/runtime-topology")
MAX_NAME_CHARS = 253


@dataclass(frozen=True, slots=True)
class Described:
    action: str
    category: str  # access | authorization | management
    resource: AuditResource | None = None
    operation_id: str = ""
    changes_state: bool = False
    reads_trail: bool = False


Describer = Callable[[Mapping[str, Any]], Described]


@dataclass(frozen=True, slots=True)
class _Change:
    action: str
    type: str
    name_param: str = ""


#: The observer's state-changing operations (by operation id) and the resource each acts on.
OBSERVER_CHANGES: dict[str, _Change] = {
    "updateIncident": _Change("incident.update", "incident", "incidentId"),
    "createAlertRule": _Change("alertrule.create", "alertrule"),
    "updateAlertRule": _Change("alertrule.update", "alertrule", "ruleName"),
    "deleteAlertRule": _Change("alertrule.delete", "alertrule", "ruleName"),
    "putAlertRuleResource": _Change("alertrule.apply", "alertrule", "name"),
    "deleteAlertRuleResource": _Change("alertrule.delete", "alertrule", "name"),
    "putNotificationChannel": _Change("notificationchannel.apply", "notificationchannel", "name"),
    "deleteNotificationChannel": _Change("notificationchannel.delete", "notificationchannel", "name"),
    "handleAlertWebhook": _Change("alerts.webhook", "alert"),
}
_VERBS = {"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update", "PATCH": "update", "DELETE": "delete"}
_CP_VERBS = {"create": "create", "replace": "update", "delete": "delete", "get": "get", "list": "list"}


@dataclass(frozen=True, slots=True)
class RouteFacts:
    """What a describer reads of the route that served (or would have served) a request."""

    path_format: str
    operation_id: str = ""
    name: str = ""
    param_names: tuple[str, ...] = ()  # in path order


def _facts(route: Any, path_format: str | None = None) -> RouteFacts:
    path = path_format or str(getattr(route, "path_format", "") or getattr(route, "path", "") or "")
    convertors = getattr(route, "param_convertors", None) or compile_path(path)[2] if path else {}
    return RouteFacts(
        path_format=path,
        operation_id=str(getattr(route, "operation_id", "") or ""),
        name=str(getattr(route, "name", "") or ""),
        param_names=tuple(convertors or ()),
    )


def _flat_routes(app: Any) -> list[tuple[Any, str, frozenset[str]]]:
    """Every endpoint route of an app with its full path and methods, through FastAPI's included routers."""
    routes = list(getattr(getattr(app, "router", None), "routes", ()))
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # an older FastAPI, or plain Starlette: the routes are flat already
        return [(r, str(getattr(r, "path", "")), frozenset(getattr(r, "methods", None) or ())) for r in routes]
    return [
        (ctx.original_route, str(ctx.path_format or ctx.path or ""), frozenset(ctx.methods or ()))
        for ctx in iter_route_contexts(routes)
    ]


def route_of(scope: Mapping[str, Any]) -> tuple[RouteFacts | None, Mapping[str, str]]:
    """The route that served the request and its path parameters. A request refused before routing (a 401 from
    authentication) is matched against the app's routes here, so its record still names what was attempted."""
    route = scope.get("route")
    if route is not None:
        return _facts(route), scope.get("path_params") or {}
    path, method = str(scope.get("path", "")), str(scope.get("method", ""))
    for candidate, path_format, methods in _flat_routes(scope.get("app")):
        if not path_format or (methods and method not in methods):
            continue
        regex = compile_path(path_format)[0]
        matched = regex.match(path)
        if matched:
            return _facts(candidate, path_format), matched.groupdict()
    return None, {}


def _param(params: Mapping[str, str], *names: str) -> str:
    for name in names:
        value = params.get(name)
        if isinstance(value, str) and value:
            return value[:MAX_NAME_CHARS]
    return ""


def path_action(method: str, path_format: str) -> str:
    """A name for a route no table names: its literal path segments after the API version, joined by dots,
    with the method's verb when the path does not end in one (`/api/v1/logs/query` -> `logs.query`)."""
    segments = [s for s in path_format.strip("/").split("/") if s and not s.startswith("{")]
    while segments and (segments[0] == "api" or re.fullmatch(r"v\d+(alpha\d+|beta\d+)?", segments[0])):
        segments = segments[1:]
    words = [re.sub(r"[^a-z0-9]", "", segment.lower()) for segment in segments] or ["root"]
    last = path_format.rstrip("/").rsplit("/", 1)[-1]
    if method != "POST" or last.startswith("{"):
        words.append(_VERBS.get(method, method.lower()))
    return ".".join(word for word in words if word)


def is_trail_path(path: str) -> bool:
    """A path of the trail's own API: every request to it is recorded, reads included."""
    return path == AUDIT_LOGS_PREFIX or path.startswith(AUDIT_LOGS_PREFIX + "/")


def _is_mcp(path: str) -> bool:
    return path == "/mcp" or path.startswith("/mcp/")


def _is_read(method: str, path: str) -> bool:
    return method in READ_METHODS or path.endswith(READ_SUFFIXES) or _is_mcp(path)


def describe_observer(scope: Mapping[str, Any]) -> Described:
    method, path = str(scope.get("method", "")), str(scope.get("path", ""))
    route, params = route_of(scope)
    operation_id = route.operation_id if route is not None else ""
    path_format = route.path_format if route is not None else path
    if is_trail_path(path):
        action = path_action(method, path_format)
        return Described(action, "access", AuditResource(type="auditlogs"), operation_id, reads_trail=True)
    if _is_mcp(path):  # tool calls are recorded by the MCP server; here only a refused connection is
        return Described("mcp.request", "access")
    change = OBSERVER_CHANGES.get(operation_id)
    if change is not None:
        resource = AuditResource(
            type=change.type,
            namespace=_param(params, "namespace", "namespaceName"),
            name=_param(params, change.name_param) if change.name_param else "",
        )
        return Described(change.action, "management", resource, operation_id, changes_state=True)
    if route is None:  # no such route: nothing was changed (recorded only when it was refused, as a denial)
        return Described(f"http.{method.lower()}", "access")
    read = _is_read(method, path)
    action = path_action(method, path_format)
    return Described(action, "access" if read else "management", None, operation_id, changes_state=not read)


def describe_controlplane(scope: Mapping[str, Any]) -> Described:
    method, path = str(scope.get("method", "")), str(scope.get("path", ""))
    route, params = route_of(scope)
    verb, _, kind = (route.name if route is not None else "").partition(" ")
    if verb in _CP_VERBS and kind and " " not in kind and route is not None:
        names = route.param_names
        own = names[-1] if names and (kind == "Namespace" or names[-1] != "namespaceName") else ""
        resource = AuditResource(
            type=kind.lower(),
            namespace=_param(params, "namespaceName") if own != "namespaceName" else "",
            name=_param(params, own) if own else "",
        )
        category = "authorization" if "Authz" in kind else "management"
        changes = verb in ("create", "replace", "delete")
        action, operation_id = f"{kind.lower()}.{_CP_VERBS[verb]}", verb + kind
        return Described(action, category if changes else "access", resource, operation_id, changes_state=changes)
    if route is None:  # no such route: nothing was changed
        return Described(f"http.{method.lower()}", "access")
    read = method in READ_METHODS or path.endswith("/evaluates")
    return Described(
        path_action(method, route.path_format), "access" if read else "management", None, "", changes_state=not read
    )
