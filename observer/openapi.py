"""The document at `/openapi.json`: what FastAPI generates, completed so a client generator can trust it.

FastAPI knows the request models (observer/wire.py) but not what the handlers answer: they return prebuilt
JSON, so every 200 would say "any JSON", the alerts, incidents and rule routes (which bind their own bodies)
would have no request schema, and every operation would document a 422 that is never sent. This module:

- takes each operation's success responses, and the request body where ours has none, from OpenChoreo's
  observer-api.yaml (observer/openapi_upstream.json, data loaded once), with its component schemas;
- makes every error response the contract's ErrorResponse, drops FastAPI's 422, and documents the 400 of a
  request that does not bind, the 413 of the body cap and a 500 on every operation;
- marks our extensions (`x-observer-extension`): every property a schema of ours has and its upstream namesake
  lacks (the request `cursor`), and the `nextCursor` of paged answers;
- declares the bearer authentication of the public port, as upstream does.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from access.middleware import PUBLIC_PATHS

ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}
EXTENSION = "x-observer-extension"
_METHODS = ("get", "put", "post", "delete", "patch")
_ERROR_DESCRIPTIONS = {
    "400": "Bad request: the message names the field or parameter to fix",
    "401": "Unauthorized",
    "403": "Forbidden",
    "404": "Not found",
    "409": "Conflict",
    "413": "The request body is larger than this route accepts (OBS-V1-PAYLOAD-TOO-LARGE)",
    "500": "Internal server error",
    "501": "Not implemented",
    "503": "A backend, the name resolver or the authorizer is unavailable; retry shortly",
}
#: The JWT layer answers 401 in OpenChoreo's own other shape (contract notes §0), not ErrorResponse.
AUTH_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "The 401 of the authentication layer: `error` is MISSING_TOKEN, INVALID_TOKEN or INVALID_CLAIMS "
    "(and 503 AUTHENTICATION_UNAVAILABLE when the issuer cannot be reached).",
    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
    "required": ["error", "message"],
}
#: Paged answers carry the cursor of the next page, an extension of ours (pass it back as `cursor`).
PAGED = ("LogsQueryResponse", "EventsQueryResponse", "TracesQueryResponse", "TraceSpansQueryResponse")
NEXT_CURSOR: dict[str, Any] = {
    "type": "string",
    "description": "Present when more records match than this page holds: send it back as `cursor` (with the "
    "same query) for the next page.",
    EXTENSION: True,
}


def _load_upstream() -> tuple[dict[str, Any], dict[tuple[str, str], dict[str, Any]]]:
    data = json.loads((Path(__file__).parent / "openapi_upstream.json").read_text(encoding="utf-8"))
    operations = {(op.pop("path"), op.pop("method")): op for op in data["operations"]}
    return data["schemas"], operations


#: The upstream component schemas, and per (path, method) its request body and success responses.
SCHEMAS, OPERATIONS = _load_upstream()


def install_openapi(app: FastAPI, *, bearer_auth: bool) -> None:
    """Replaces `app.openapi` with one that builds the completed document once and keeps it."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            app.openapi_schema = complete(document, bearer_auth=bearer_auth)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def complete(document: dict[str, Any], *, bearer_auth: bool) -> dict[str, Any]:
    """`document` (FastAPI's) completed as the module docstring says; returns it, changed in place."""
    schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in SCHEMAS.items():
        if name in schemas:
            _mark_extensions(schemas[name], schema)
        else:
            schemas[name] = copy.deepcopy(schema)
    schemas["AuthErrorResponse"] = copy.deepcopy(AUTH_ERROR_SCHEMA)
    for name in PAGED:
        schemas[name].setdefault("properties", {})["nextCursor"] = dict(NEXT_CURSOR)
    for path, item in document.get("paths", {}).items():
        for method in _METHODS:
            if method in item:
                _complete_operation(path, method, item[method], bearer_auth)
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    if bearer_auth:
        document["components"]["securitySchemes"] = {
            "BearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
        }
        document["security"] = [{"BearerAuth": []}]
    return document


def _mark_extensions(ours: dict[str, Any], upstream: dict[str, Any]) -> None:
    """Flags the properties of one of our schemas that its upstream namesake does not have."""
    known = _property_names(upstream)
    for name, prop in ours.get("properties", {}).items():
        if name not in known:
            prop[EXTENSION] = True


def _property_names(schema: dict[str, Any]) -> set[str]:
    """The property names of an upstream schema, through its $ref, allOf, oneOf and anyOf."""
    if "$ref" in schema:
        return _property_names(SCHEMAS.get(schema["$ref"].rsplit("/", 1)[-1], {}))
    names = set(schema.get("properties", {}))
    for key in ("allOf", "oneOf", "anyOf"):
        for member in schema.get(key, []):
            names |= _property_names(member)
    return names


def _complete_operation(path: str, method: str, operation: dict[str, Any], bearer_auth: bool) -> None:
    upstream = OPERATIONS.get((path, method), {})
    responses: dict[str, Any] = operation.setdefault("responses", {})
    responses.pop("422", None)
    if "requestBody" not in operation and "requestBody" in upstream:
        operation["requestBody"] = copy.deepcopy(upstream["requestBody"])
    if upstream.get("responses"):
        for status in [status for status in responses if status.startswith("2")]:
            del responses[status]
        responses.update(copy.deepcopy(upstream["responses"]))
    takes_input = "requestBody" in operation or bool(operation.get("parameters"))
    wanted = {"500"} | ({"400"} if takes_input else set()) | ({"413"} if "requestBody" in operation else set())
    for status in wanted:
        responses.setdefault(status, {})
    for status, response in responses.items():
        if status[0] in "45" and not (path == "/health" and status == "503"):
            response["description"] = _ERROR_DESCRIPTIONS.get(status, response.get("description") or "Error")
            schema = (
                {"anyOf": [ERROR_REF, {"$ref": "#/components/schemas/AuthErrorResponse"}]}
                if (status == "401" and bearer_auth)
                else ERROR_REF
            )
            response["content"] = {"application/json": {"schema": schema}}
    if bearer_auth and path in PUBLIC_PATHS:
        operation["security"] = []
    operation["responses"] = dict(sorted(responses.items()))


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """Every (path, method, operation) of a document, for the tests and for whoever walks it."""
    return [
        (path, method, item[method])
        for path, item in document.get("paths", {}).items()
        for method in _METHODS
        if method in item
    ]
