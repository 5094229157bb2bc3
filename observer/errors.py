"""The contract's error body `{title, errorCode, message}` and the exceptions that produce it.

Every failure a user can cause becomes an ApiError with a 4xx status and a message saying what to change; a
500 means a bug here, and its message never carries internals.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from observer.responses import FastJSONResponse as JSONResponse

log = logging.getLogger(__name__)

_TITLES = {
    400: "badRequest",
    401: "unauthorized",
    403: "forbidden",
    404: "notFound",
    409: "conflict",
    501: "notImplemented",
}


class ApiError(Exception):
    def __init__(self, status: int, message: str, error_code: str = "", title: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_code = error_code
        self.title = title or _TITLES.get(status, "internalServerError")


def bad_request(message: str, error_code: str = "") -> ApiError:
    return ApiError(400, message, error_code)


def error_body(title: str, error_code: str, message: str) -> dict[str, str]:
    return {"title": title, "errorCode": error_code, "message": message}


def error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(error_body(error.title, error.error_code, error.message), status_code=error.status)


def describe_validation_error(exc: RequestValidationError) -> str:
    """"Invalid request format" (the contract's text) followed by the first problem, in the user's terms."""
    details = []
    for problem in exc.errors()[:3]:
        location = ".".join(str(part) for part in problem.get("loc", ()) if part != "body")
        if problem.get("type") == "json_invalid":
            details.append("the body is not valid JSON")
        elif location:
            details.append(f"{location}: {problem.get('msg', 'invalid value')}")
        else:
            details.append(problem.get("msg", "invalid body"))
    return "Invalid request format" + (": " + "; ".join(details) if details else "")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _bind_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(bad_request(describe_validation_error(exc)))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body("internalServerError", "", "internal server error"), status_code=500)
