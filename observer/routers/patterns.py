"""REST route of log patterns (an extension): the templates of a component scope's lines, authorized and resolved
exactly as a logs query of that scope (`logs:view`)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from adapters.protocols import collecting_warnings
from observer.responses import FastJSONResponse
from observer.routers.queries import _ERRORS, caller, query_service, require_json, warned
from observer.service import QueryService
from observer.validate_patterns import validate_patterns
from observer.wire_patterns import PATTERNS_RESPONSE, PatternsQueryRequest, patterns_body

router = APIRouter(dependencies=[Depends(require_json)], responses=_ERRORS, default_response_class=FastJSONResponse)


@router.post(
    "/api/v1alpha1/logs/patterns",
    tags=["Logs"],
    operation_id="queryLogPatterns",
    summary="Log patterns: the kinds of lines a scope prints (extension)",
    description="The templates of a scope's log lines in a range (numbers, ids, addresses and quoted strings"
    " masked), each with its count, a sparkline per step, an example line, the levels seen and whether it is new"
    " (absent from the window of the same length just before). `sampled` says when counts come from a bounded"
    " sample. Authorized as a logs query (`logs:view`) on the scope.",
    responses={200: {"description": "The patterns", "content": {"application/json": {"schema": PATTERNS_RESPONSE}}}},
    openapi_extra={"x-observer-extension": True},
)
async def query_log_patterns(
    request: Request, body: PatternsQueryRequest, service: QueryService = Depends(query_service)
) -> FastJSONResponse:
    scope, checked = validate_patterns(body)
    with collecting_warnings() as warnings:
        result = await service.patterns(caller(request), scope, checked)
    return warned(FastJSONResponse(patterns_body(result, checked.step)), warnings)
