"""REST routes of platform logs: the query and its filter values, as POSTs with the adapters' bodies and as the
GETs the Backstage portal sends (observer/platform_query_string.py), all through one validation and the same
QueryService methods (cluster-scoped `platformlogs:view`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from adapters.protocols import collecting_warnings
from domain.model import LogRecord, Page
from observer.platform_query_string import bind, query_body
from observer.responses import FastJSONResponse
from observer.routers.queries import _ERRORS, caller, query_service, require_json, warned
from observer.service import QueryService
from observer.validate_platform import validate_platform_filter_values, validate_platform_logs
from observer.wire import ErrorResponse
from observer.wire_platform import (
    FILTER_VALUES_RESPONSE,
    PLATFORM_LOGS_RESPONSE,
    PlatformFilterValuesRequest,
    PlatformLogsQueryRequest,
    filter_values_body,
    platform_log_entry,
)

router = APIRouter(dependencies=[Depends(require_json)], responses=_ERRORS, default_response_class=FastJSONResponse)

_AUTHZ = " Cluster-scoped: needs `platformlogs:view` granted over every namespace."
_501: dict[int | str, dict[str, Any]] = {
    501: {"model": ErrorResponse, "description": "No configured backend serves platform logs"}
}


def _ok(schema: dict[str, Any], description: str) -> dict[int | str, dict[str, Any]]:
    return {200: {"description": description, "content": {"application/json": {"schema": schema}}}, **_501}


def _string_list(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description + " Repeat the parameter or separate values with commas.",
        "schema": {"type": "array", "items": {"type": "string"}},
        "style": "form",
        "explode": True,
    }


def _text(name: str, description: str, required: bool = False, **schema: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": {"type": "string", **schema},
    }


QUERY_PARAMETERS = [
    _text("startTime", "Start of the time range, RFC3339; inclusive.", True, format="date-time"),
    _text(
        "endTime", "End of the time range, RFC3339; after startTime, at most 30 days later.", True, format="date-time"
    ),
    _string_list("clusterInstance", "Only lines of these cluster instances."),
    _string_list("namespace", "Only lines of these Kubernetes namespaces."),
    _string_list("podName", "Only lines of these pods."),
    _string_list("containerName", "Only lines of these containers."),
    _text("labels", "A label selector of key=value pairs separated by commas: only pods carrying all of them."),
    _string_list("label", "One key=value pair (repeatable): only pods carrying it."),
    _string_list("logLevels", "Only lines of these levels (DEBUG, INFO, WARN, ERROR)."),
    _text("searchPhrase", "Only lines containing this text (literal, case-sensitive)."),
    {**_text("limit", "The most lines, 1 to 1000 (default 100)."), "schema": {"type": "integer"}},
    _text("sortOrder", "desc (newest first, the default) or asc.", enum=["asc", "desc"]),
    _text("cursor", "Extension: the nextCursor of the previous page, with every other parameter unchanged."),
]
VALUES_PARAMETERS = [
    *QUERY_PARAMETERS[:10],
    _text(
        "filter",
        "Which filter's values: clusterInstance, namespace, podName, containerName, level or labels.<key>.",
        True,
    ),
    _text("valueSearch", "Only values containing this text (case-insensitive)."),
    {**_text("maxValues", "The most values, 1 to 1000 (default 100)."), "schema": {"type": "integer"}},
]


def _page(page: Page[LogRecord]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "logs": [platform_log_entry(record) for record in page.items],
        "total": page.total,
        "tookMs": page.took_ms,
    }
    if page.next_cursor:
        body["nextCursor"] = page.next_cursor
    return body


async def _query(request: Request, body: PlatformLogsQueryRequest, service: QueryService) -> FastJSONResponse:
    query = validate_platform_logs(body)
    with collecting_warnings() as warnings:
        page = await service.platform_logs(caller(request), query)
    return warned(FastJSONResponse(_page(page)), warnings)


async def _values(request: Request, body: PlatformFilterValuesRequest, service: QueryService) -> FastJSONResponse:
    question = validate_platform_filter_values(body)
    with collecting_warnings() as warnings:
        values = await service.platform_filter_values(caller(request), question)
    return warned(FastJSONResponse(filter_values_body(values)), warnings)


@router.post(
    "/api/v1alpha1/platform-logs/query",
    tags=["Platform logs"],
    operation_id="queryPlatformLogs",
    summary="Platform logs by Kubernetes placement",
    description="Log lines of any pod the collectors read (the control plane, system and third-party workloads"
    " included), by cluster, namespace, pod, container and pod labels." + _AUTHZ,
    responses=_ok(PLATFORM_LOGS_RESPONSE, "A page of platform log lines"),
)
async def query_platform_logs(
    request: Request, body: PlatformLogsQueryRequest, service: QueryService = Depends(query_service)
) -> FastJSONResponse:
    return await _query(request, body, service)


@router.get(
    "/api/v1alpha1/platform-logs",
    tags=["Platform logs"],
    operation_id="getPlatformLogs",
    summary="Platform logs, as query parameters",
    description="The query of POST /api/v1alpha1/platform-logs/query as query parameters (the Backstage portal's"
    " call)." + _AUTHZ,
    responses=_ok(PLATFORM_LOGS_RESPONSE, "A page of platform log lines"),
    openapi_extra={"parameters": QUERY_PARAMETERS},
)
async def get_platform_logs(request: Request, service: QueryService = Depends(query_service)) -> FastJSONResponse:
    body = bind(PlatformLogsQueryRequest, query_body(request.query_params.multi_items()))
    return await _query(request, body, service)


@router.post(
    "/api/v1alpha1/platform-logs/filter-values",
    tags=["Platform logs"],
    operation_id="queryPlatformLogFilterValues",
    summary="The values of one platform-logs filter, with counts",
    description="The values one filter takes among the lines the query selects once that filter's own selection"
    " is cleared, most frequent first (a facet picker)." + _AUTHZ,
    responses=_ok(FILTER_VALUES_RESPONSE, "The filter's values"),
)
async def query_platform_filter_values(
    request: Request, body: PlatformFilterValuesRequest, service: QueryService = Depends(query_service)
) -> FastJSONResponse:
    return await _values(request, body, service)


@router.get(
    "/api/v1alpha1/platform-logs/filter-values",
    tags=["Platform logs"],
    operation_id="getPlatformLogFilterValues",
    summary="The values of one platform-logs filter, as query parameters",
    description="POST /api/v1alpha1/platform-logs/filter-values as query parameters (the Backstage portal's"
    " call)." + _AUTHZ,
    responses=_ok(FILTER_VALUES_RESPONSE, "The filter's values"),
    openapi_extra={"parameters": VALUES_PARAMETERS},
)
async def get_platform_filter_values(
    request: Request, service: QueryService = Depends(query_service)
) -> FastJSONResponse:
    body = bind(PlatformFilterValuesRequest, query_body(request.query_params.multi_items(), filter_values=True))
    return await _values(request, body, service)
