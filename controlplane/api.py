"""The control plane's REST API: one generic CRUD router, generated from the kinds table, at openchoreo-api.yaml's paths.

For every kind: list `GET` (labelSelector, limit 1..100 default 20, cursor, and the kind's own filters such as
`?project=` for components), create `POST` (201), get (200), replace `PUT` (200) and delete (204). Objects are
whole CRD-shaped documents (`apiVersion, kind, metadata, spec, status`); the store (controlplane/store.py) keeps
the Kubernetes semantics. Anything the caller got wrong is a 4xx ErrorResponse naming the field: an unknown query
parameter is refused rather than ignored, so a misspelt filter never returns everything.

Secrets (core v1, stored so plane CRs and channels can point at them) are written through the API like any kind but
never read back: every answer carries their `data` keys with empty values (Judgement: secret values never leave
the control plane through the API; the reconcilers read them in-process with `Store.secret_value`).

Access (controlplane/auth.py): `create_app(store, middleware=access.middleware(), guard=access.guard)`. The
middleware authenticates; the guard asks `<kind>:<verb>` on the object's scope before every CRUD call (the list's
scope for a list) and is None when JWT_DISABLED=true. Authz* writes are also checked by controlplane/authz.py
`check` (unknown actions, conditions the model cannot hold: 400 naming the field) whatever the guard. OpenChoreo's
authz API (`/api/v1/authz/evaluates`, `/profile`, `/actions`) is served over the guard's authorizer.
"""

from __future__ import annotations

import copy
import json
import os
import platform
from collections.abc import Awaitable, Callable, Sequence
from enum import Enum
from importlib import metadata as package_metadata
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from access.casbin_pdp import CasbinAuthorizer
from access.model import Resource
from controlplane import authz, errors, kinds, schema
from controlplane.auth import Guard, action, list_resource, resource_for
from controlplane.errors import Invalid, NotFound, TooLarge
from controlplane.proxy_client import Transport
from controlplane.reconcile.tree import release_tree
from controlplane.store import Store

MAX_BODY_BYTES = 1024 * 1024
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
_LIST_PARAMS = ("labelSelector", "limit", "cursor")

Endpoint = Callable[[Request], Awaitable[Response]]


class _BodyTooLarge(Exception):
    pass


class BodyLimit:
    """Refuse request bodies over `limit` bytes with 413, by Content-Length up front or by counting a chunked
    body as it is read, so no request can make the server buffer more than the limit."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for key, value in scope.get("headers", []):
            if key == b"content-length" and value.isdigit() and int(value) > self.limit:
                await self._refuse(send)
                return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _BodyTooLarge
            return message

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, sending)
        except _BodyTooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(TooLarge(self.limit).body()).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _only(request: Request, allowed: Sequence[str]) -> dict[str, str]:
    """The query parameters, each at most once; any other parameter is Invalid naming it."""
    problems: list[tuple[str, str]] = []
    values: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        if key not in allowed:
            known = ", ".join(allowed) or "none"
            problems.append((key, f"unknown query parameter (accepted: {known})"))
        elif key in values:
            problems.append((key, "given more than once"))
        else:
            values[key] = value
    if problems:
        raise Invalid(problems)
    return values


def _limit(text: str | None) -> int:
    if text is None:
        return DEFAULT_LIMIT
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_LIMIT or not text.strip().lstrip("+").isdigit():
        raise Invalid([("limit", f"Invalid value: {text!r}: must be an integer between 1 and {MAX_LIMIT}")])
    return value


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise Invalid([("body", "is not valid JSON")]) from None
    if not isinstance(value, dict):
        raise Invalid([("body", "must be a JSON object")])
    return value


def _fill(row: kinds.Kind, document: dict[str, Any], namespace: str | None, name: str | None) -> dict[str, Any]:
    """`apiVersion`, `kind`, `metadata.namespace` and (on PUT) `metadata.name` come from the URL when the body
    leaves them out; a body that says otherwise is Invalid naming the field (it was sent to the wrong URL)."""
    problems: list[tuple[str, str]] = []
    for key, expected in (("apiVersion", row.api_version), ("kind", row.kind)):
        given = document.setdefault(key, expected)
        if given != expected:
            problems.append((key, f"Invalid value: {given!r}: this URL serves {row.kind} ({expected})"))
    meta = document.setdefault("metadata", {})
    if isinstance(meta, dict):
        for key, expected_value in (("namespace", namespace), ("name", name)):
            if expected_value is None:
                continue
            given_value = meta.setdefault(key, expected_value)
            if given_value != expected_value:
                problems.append((f"metadata.{key}", f"Invalid value: {given_value!r}: the URL says {expected_value!r}"))
    if problems:
        raise Invalid(problems)
    return document


def _shown(row: kinds.Kind, document: dict[str, Any]) -> dict[str, Any]:
    """The object as the API may show it: a Secret's values blanked (its keys stay, so a client sees what is set)."""
    if row.kind != "Secret":
        return document
    shown = {key: value for key, value in document.items() if key != "stringData"}
    shown["data"] = {key: "" for key in document.get("data") or {}}
    return shown


def _checked(row: kinds.Kind, document: dict[str, Any]) -> dict[str, Any]:
    """An Authz* document as the authorization engine can compile it, or Invalid naming the field. The CRD's own
    rules come first (the store reports those, with their own field names); the engine's only past them."""
    if row.kind in authz.AUTHZ_KINDS:
        shape = copy.deepcopy(document)
        shape.pop("status", None)
        if isinstance(shape.get("metadata"), dict):
            for key in ("uid", "creationTimestamp", "generation", "resourceVersion"):
                shape["metadata"].pop(key, None)
        if schema.validate(row.kind, shape):
            return document
        problems = authz.check(document)
        if problems:
            raise Invalid(problems)
    return document


def _routes(app: FastAPI, store: Store, row: kinds.Kind, guard: Guard | None) -> None:
    """The five CRUD routes of one kind, each asking the guard (when there is one) before it touches the store."""
    collection = (
        f"{kinds.API_PREFIX}/namespaces/{{namespaceName}}/{row.path_segment}"
        if row.namespaced
        else f"{kinds.API_PREFIX}/{row.path_segment}"
    )
    item = f"{collection}/{{{row.path_param}}}"
    list_params = (*_LIST_PARAMS, *row.list_filters)

    def where(request: Request) -> str | None:
        return request.path_params["namespaceName"] if row.namespaced else None

    async def require(request: Request, verb: str, resource: Resource) -> None:
        if guard is not None:
            await guard.require(request, action(row.kind, verb), resource)

    async def stored(request: Request, name: str) -> dict[str, Any] | None:
        return await run_in_threadpool(store.get, row.kind, where(request), name)

    async def list_objects(request: Request) -> Response:
        query = _only(request, list_params)
        filters = {key: query[key] for key in row.list_filters if query.get(key)}
        await require(request, "view", list_resource(row, where(request), filters.get("project", "")))
        page = await run_in_threadpool(
            store.list,
            row.kind,
            where(request),
            selector=query.get("labelSelector", ""),
            filters=filters,
            limit=_limit(query.get("limit")),
            cursor=query.get("cursor", ""),
        )
        pagination: dict[str, Any] = {"remainingCount": page.remaining}
        if page.next_cursor:
            pagination["nextCursor"] = page.next_cursor
        return JSONResponse({"items": [_shown(row, item) for item in page.items], "pagination": pagination})

    async def create_object(request: Request) -> Response:
        _only(request, ())
        document = _fill(row, await _body(request), where(request), None)
        name = str((document.get("metadata") or {}).get("name") or "")
        await require(request, "create", resource_for(row, where(request), name, document))
        _checked(row, document)
        return JSONResponse(_shown(row, await run_in_threadpool(store.create, document)), status_code=201)

    async def get_object(request: Request) -> Response:
        _only(request, ())
        name = request.path_params[row.path_param]
        found = await stored(request, name)
        await require(request, "view", resource_for(row, where(request), name, found))
        if found is None:
            namespace = where(request)
            if namespace is not None and await run_in_threadpool(store.get, "Namespace", None, namespace) is None:
                raise NotFound(f"Namespace '{namespace}' not found")
            raise NotFound(f"{row.kind} '{name}' not found")
        return JSONResponse(_shown(row, found))

    async def replace_object(request: Request) -> Response:
        _only(request, ())
        name = request.path_params[row.path_param]
        document = _fill(row, await _body(request), where(request), name)
        if guard is not None:
            old = resource_for(row, where(request), name, await stored(request, name))
            new = resource_for(row, where(request), name, document)
            await require(request, "update", old)
            if new != old:  # an object moved to another scope needs the right there too
                await require(request, "update", new)
        _checked(row, document)
        return JSONResponse(_shown(row, await run_in_threadpool(store.replace, document)))

    async def delete_object(request: Request) -> Response:
        _only(request, ())
        name = request.path_params[row.path_param]
        if guard is not None:
            await require(request, "delete", resource_for(row, where(request), name, await stored(request, name)))
        await run_in_threadpool(store.delete, row.kind, where(request), name)
        return Response(status_code=204)

    tag: list[str | Enum] = [row.kind]
    app.add_api_route(collection, list_objects, methods=["GET"], name=f"list {row.plural}", tags=tag)
    app.add_api_route(collection, create_object, methods=["POST"], name=f"create {row.kind}", tags=tag)
    app.add_api_route(item, get_object, methods=["GET"], name=f"get {row.kind}", tags=tag)
    app.add_api_route(item, replace_object, methods=["PUT"], name=f"replace {row.kind}", tags=tag)
    app.add_api_route(item, delete_object, methods=["DELETE"], name=f"delete {row.kind}", tags=tag)


def _tree_route(app: FastAPI, store: Store, transport: Transport | None, guard: Guard | None) -> None:
    """`GET .../releasebindings/{name}/k8sresources/tree`: the binding's rendered objects as its planes hold them
    (controlplane/reconcile/tree.py), asked as `releasebinding:view` on the binding's scope, like its get."""
    row = kinds.get("ReleaseBinding")
    path = f"{kinds.API_PREFIX}/namespaces/{{namespaceName}}/{row.path_segment}/{{{row.path_param}}}/k8sresources/tree"

    async def tree(request: Request) -> Response:
        _only(request, ())
        namespace, name = request.path_params["namespaceName"], request.path_params[row.path_param]
        if guard is not None:
            found = await run_in_threadpool(store.get, row.kind, namespace, name)
            await guard.require(request, action(row.kind, "view"), resource_for(row, namespace, name, found))
        return JSONResponse(await release_tree(store, transport, namespace, name))

    tag: list[str | Enum] = [row.kind]
    app.add_api_route(path, tree, methods=["GET"], name="get ReleaseBinding k8s resource tree", tags=tag)


def _authorizer_of(store: Store, guard: Guard | None) -> Callable[[], CasbinAuthorizer]:
    """The authz API's authorizer: the guard's; without a guard (authentication off, so the authz API answers
    401 before it asks) one over the store, built on first use."""
    built: list[CasbinAuthorizer] = []

    def factory() -> CasbinAuthorizer:
        if guard is not None:
            return guard.authorizer
        if not built:
            built.append(authz.store_authorizer(store))
        return built[0]

    return factory


def version_info() -> dict[str, str]:
    """OpenChoreo's VersionResponse; the `go*` fields carry the Python runtime's equivalents."""
    try:
        version = package_metadata.version("observer-plane")
    except package_metadata.PackageNotFoundError:
        version = "0.0.0"
    return {
        "name": "observer-controlplane",
        "version": version,
        "gitRevision": os.environ.get("GIT_REVISION", ""),
        "buildTime": os.environ.get("BUILD_TIME", ""),
        "goOS": platform.system().lower(),
        "goArch": platform.machine(),
        "goVersion": f"python{platform.python_version()}",
    }


def create_app(
    store: Store,
    *,
    middleware: Sequence[Middleware] = (),
    guard: Guard | None = None,
    transport: Transport | None = None,
) -> FastAPI:
    """The REST API over `store`. `middleware` (authentication) runs inside the body-size limit; `guard`
    authorizes every CRUD call (None: no authorization, JWT_DISABLED=true); `transport` (the in-process gateway)
    reads the planes for a binding's resource tree (None: the gateway is off, the tree answers 503)."""
    app = FastAPI(
        title="observer control plane",
        middleware=[Middleware(BodyLimit), *middleware],
        docs_url=None,
        redoc_url=None,
    )
    errors.install(app)

    async def health() -> PlainTextResponse:
        return PlainTextResponse("OK")

    async def ready() -> PlainTextResponse:
        try:
            await run_in_threadpool(store.revision)
        except Exception:  # the database is unreachable: not ready, and says so
            return PlainTextResponse("store unavailable", status_code=503)
        return PlainTextResponse("OK")

    async def version() -> JSONResponse:
        return JSONResponse(version_info())

    app.add_api_route("/health", health, methods=["GET"], include_in_schema=False)
    app.add_api_route("/ready", ready, methods=["GET"], include_in_schema=False)
    app.add_api_route("/version", version, methods=["GET"], include_in_schema=False)
    for row in kinds.KINDS:
        _routes(app, store, row, guard)
    _tree_route(app, store, transport, guard)
    app.include_router(authz.authz_router(_authorizer_of(store, guard)))
    app.state.store = store
    return app
