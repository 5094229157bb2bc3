"""The contract's error body `{title, errorCode, message}` and the exceptions that produce it.

Every failure a user can cause becomes an ApiError with a 4xx status and a message saying what to change; a
500 means a bug here, and its message never carries internals.

The contract names codes only for what its handlers raise. What the framework answers before a handler runs
(an unknown route, a method the route does not take, a body that is not JSON or is too large) gets a code of the
contract's shared family (`OBS-V1-<WORDS>`, like its `OBS-V1-SCOPE-AUTH-FAILED`), listed below, so a client can
tell every error apart by `errorCode` without parsing messages. The `title` stays within the contract's enum.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from domain.echo import shown
from observer.responses import FastJSONResponse as JSONResponse

log = logging.getLogger(__name__)

#: No route has this path (on this port).
ROUTE_NOT_FOUND = "OBS-V1-ROUTE-NOT-FOUND"
#: The path exists, the method does not; the answer's `Allow` header lists the methods that do.
METHOD_NOT_ALLOWED = "OBS-V1-METHOD-NOT-ALLOWED"
#: The body is not a JSON document at all: empty, not UTF-8, malformed, or nested too deeply to parse.
INVALID_BODY = "OBS-V1-INVALID-BODY"
#: The body (or a query parameter) is JSON of the wrong shape: a wrong type, a missing or unknown field.
INVALID_REQUEST = "OBS-V1-INVALID-REQUEST"
#: A Content-Type other than application/json on a route that reads JSON.
UNSUPPORTED_MEDIA_TYPE = "OBS-V1-UNSUPPORTED-MEDIA-TYPE"
#: The body is larger than the port accepts (observer/body_limit.py).
PAYLOAD_TOO_LARGE = "OBS-V1-PAYLOAD-TOO-LARGE"
#: A bug: an exception nothing expected. The message says nothing more; the server log has the traceback.
INTERNAL_ERROR = "OBS-V1-INTERNAL-ERROR"

#: Codes of the framework-level answers, by status, for an HTTPException raised without one of ours.
_HTTP_CODES = {404: ROUTE_NOT_FOUND, 405: METHOD_NOT_ALLOWED, 413: PAYLOAD_TOO_LARGE, 415: UNSUPPORTED_MEDIA_TYPE}

_TITLES = {
    400: "badRequest",
    401: "unauthorized",
    403: "forbidden",
    404: "notFound",
    409: "conflict",
    501: "notImplemented",
}

#: The longest message an error carries, whatever it quotes.
MESSAGE_LIMIT = 1000


def title_for(status: int) -> str:
    """The contract's title for a status: its own names where it has one, `badRequest` for any other 4xx
    (405, 413, 415: the caller must change the request) and `internalServerError` for any other 5xx."""
    if status in _TITLES:
        return _TITLES[status]
    return "badRequest" if 400 <= status < 500 else "internalServerError"


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        error_code: str = "",
        title: str | None = None,
        headers: Mapping[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_code = error_code
        self.title = title or title_for(status)
        self.headers = dict(headers or {})


def bad_request(message: str, error_code: str = "") -> ApiError:
    return ApiError(400, message, error_code)


def error_body(title: str, error_code: str, message: str) -> dict[str, str]:
    return {"title": title, "errorCode": error_code, "message": message}


def error_response(error: ApiError) -> JSONResponse:
    message = error.message if len(error.message) <= MESSAGE_LIMIT else shown(error.message, MESSAGE_LIMIT)
    return JSONResponse(
        error_body(error.title, error.error_code, message), status_code=error.status, headers=error.headers or None
    )


def _location(loc: tuple[Any, ...]) -> str:
    """A pydantic error location in the user's terms: `searchScope.namespace`, `logLevels[1]`, `startTime`."""
    text = ""
    for part in loc:
        if part in ("body", "query", "path", "header") and not text:
            continue
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + shown(part)
    return text


def _problem(problem: Mapping[str, Any]) -> tuple[str, bool]:
    """One pydantic problem as a phrase, and whether it means the body is not JSON at all."""
    kind = problem.get("type", "")
    location = _location(tuple(problem.get("loc", ())))
    if kind == "json_invalid":
        reason = (problem.get("ctx") or {}).get("error", "")
        return f"the body is not valid JSON{f' ({reason})' if reason else ''}", True
    if kind == "missing":
        return (f"{location} is required" if location else "the request body is required (a JSON object)"), not location
    if kind == "extra_forbidden":
        return f"{location} is not a known field; remove it or check its spelling", False
    if not location and kind in ("model_attributes_type", "dict_type", "model_type"):
        return "the body must be a JSON object", False
    message = problem.get("msg", "invalid value")
    return (f"{location}: {message}" if location else message), False


def describe_validation_error(exc: RequestValidationError) -> str:
    """ "Invalid request format" (the contract's text) followed by the first problems, in the user's terms."""
    return _describe(exc)[0]


def _describe(exc: RequestValidationError) -> tuple[str, str]:
    phrases: list[str] = []
    not_json = False
    for problem in exc.errors()[:3]:
        phrase, unparsed = _problem(problem)
        phrases.append(phrase)
        not_json = not_json or unparsed
    message = "Invalid request format" + (": " + "; ".join(phrases) if phrases else "")
    return message, INVALID_BODY if not_json else INVALID_REQUEST


def http_error(request: Request, exc: StarletteHTTPException) -> ApiError:
    """What the framework raises before a handler runs (no route, wrong method, a body it could not read), as
    the contract's error. An ApiError-shaped exception (the body limit's) keeps its own code and message."""
    status = exc.status_code
    code = getattr(exc, "error_code", "") or _HTTP_CODES.get(status, f"OBS-V1-HTTP-{status}")
    headers = dict(exc.headers or {})
    method, path = request.method, shown(request.url.path)
    if status == 404:
        message = f"no route {method} {path} on this port; the API is described at /openapi.json"
    elif status == 405:
        allowed = headers.get("Allow") or headers.get("allow") or ""
        message = f"{method} is not allowed on {path}" + (f"; use {allowed}" if allowed else "")
    elif status == 400 and exc.detail == "There was an error parsing the body":
        # FastAPI's answer for a body json.loads cannot take at all: nested too deeply, or not text.
        code = INVALID_BODY
        message = "Invalid request format: the body could not be parsed as JSON (malformed, or nested too deeply)"
    else:
        message = exc.detail if isinstance(exc.detail, str) and exc.detail else title_for(status)
    return ApiError(status, message, code, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _bind_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        message, code = _describe(exc)
        return error_response(bad_request(message, code))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(http_error(request, exc))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body("internalServerError", INTERNAL_ERROR, "internal server error"), status_code=500)
