"""The control plane's errors, and the FastAPI handlers that render every failure as OpenChoreo's ErrorResponse.

The store raises these exceptions and the REST API renders them, so a caller sees the same body whether the
problem was found in the router (a bad `limit`), the schema (a missing `spec.owner`) or the database (a name
taken): `{"error": text, "code": "NOT_FOUND"|..., "details"?: [{"field", "message"}]}` (openchoreo-api.yaml
ErrorResponse). Bad input is always a 4xx: only a bug in our own code answers 500.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

FieldError = tuple[str, str]


class ApiError(Exception):
    """A failure with its HTTP status, ErrorResponse code, message and (field, message) details."""

    def __init__(self, status: int, code: str, message: str, details: Iterable[FieldError] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details: list[FieldError] = list(details)

    def body(self) -> dict[str, Any]:
        """The ErrorResponse document; `details` only when there are some (it is optional in the spec)."""
        out: dict[str, Any] = {"error": self.message, "code": self.code}
        if self.details:
            out["details"] = [{"field": field, "message": message} for field, message in self.details]
        return out


class NotFound(ApiError):
    """404: the object, its namespace or the route does not exist."""

    def __init__(self, message: str) -> None:
        super().__init__(404, "NOT_FOUND", message)


class Conflict(ApiError):
    """409: the name is taken, the resourceVersion is stale, or a namespace still holds objects."""

    def __init__(self, message: str) -> None:
        super().__init__(409, "CONFLICT", message)


class Invalid(ApiError):
    """400 with details naming each field at fault (`spec.owner.projectName`, `limit`, `labelSelector`)."""

    def __init__(self, details: Sequence[FieldError], message: str = "") -> None:
        if not message:
            first = details[0] if details else ("", "invalid")
            message = f"Invalid request: {first[0]}: {first[1]}" if first[0] else f"Invalid request: {first[1]}"
        super().__init__(400, "BAD_REQUEST", message, details)


class TooLarge(ApiError):
    """413: a request body over the limit. The spec has no code of its own for it; BAD_REQUEST is the nearest."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, "BAD_REQUEST", f"request body larger than {limit} bytes")


def _field(loc: Sequence[Any]) -> str:
    """A pydantic error location as a field name: ("query", "limit") -> "limit", ("body", "spec", 0) -> "spec[0]"."""
    parts = list(loc[1:]) if loc and loc[0] in ("query", "path", "body", "header") else list(loc)
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse(exc.body(), status_code=exc.status)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = [(_field(error.get("loc", ())), str(error.get("msg", "invalid"))) for error in exc.errors()]
    return JSONResponse(Invalid(details).body(), status_code=400)


_CODES = {400: "BAD_REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND", 409: "CONFLICT"}


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        message = "route not found"
    elif exc.status_code == 405:
        message = "method not allowed"
    else:
        message = str(exc.detail)
    code = _CODES.get(exc.status_code, "INTERNAL_ERROR" if exc.status_code >= 500 else "BAD_REQUEST")
    return JSONResponse({"error": message, "code": code}, status_code=exc.status_code, headers=exc.headers)


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error", exc_info=exc)
    return JSONResponse({"error": "internal error", "code": "INTERNAL_ERROR"}, status_code=500)


def install(app: FastAPI) -> None:
    """Render every failure of `app` as an ErrorResponse: our ApiErrors, FastAPI's request validation, unknown
    routes and methods, and (as a last resort, logged) anything unexpected."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
