"""REST routes of the audit trail: the query (with its optional timeline) and its filter values, authorized as the
cluster-scoped `auditlogs:view` (observer/service.py). Reads of the trail are themselves recorded by the audit
middleware, not here."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from adapters.protocols import collecting_warnings
from observer.responses import FastJSONResponse
from observer.routers.queries import _ERRORS, caller, query_service, require_json, warned
from observer.service import QueryService
from observer.validate_audit import validate_audit_filter_values, validate_audit_logs
from observer.wire import ErrorResponse
from observer.wire_audit import AUDIT_LOGS_RESPONSE, AuditFilterValuesRequest, AuditLogsQueryRequest, audit_page_body
from observer.wire_platform import FILTER_VALUES_RESPONSE, filter_values_body

router = APIRouter(dependencies=[Depends(require_json)], responses=_ERRORS, default_response_class=FastJSONResponse)

_AUTHZ = (
    " Cluster-scoped: needs `auditlogs:view` granted over every namespace; naming a namespace in a filter"
    " narrows the answer, it grants nothing."
)


def _ok(schema: dict[str, Any], description: str) -> dict[int | str, dict[str, Any]]:
    return {
        200: {"description": description, "content": {"application/json": {"schema": schema}}},
        501: {"model": ErrorResponse, "description": "No configured backend keeps the audit trail"},
    }


@router.post(
    "/api/v1alpha1/audit-logs/query",
    tags=["Audit logs"],
    operation_id="queryAuditLogs",
    summary="The audit trail: who did what, to which resource, with what result",
    description="Audit records of the observer and the control plane in a time range, filtered by actor, resource,"
    " action, category, result, surface and ids, with an optional histogram per result. Filters taken from the"
    " record keep the record's snake_case names (`operation_id`, `actor.session_id`); the query's own controls"
    " are camelCase (`startTime`, `includeTimeline`). `total` is exact; the timeline covers the whole window,"
    " empty buckets included, and a `timelineInterval` too fine for the window is coarsened (`timeline.interval`"
    " says the width used)." + _AUTHZ,
    responses=_ok(AUDIT_LOGS_RESPONSE, "A page of audit records"),
)
async def query_audit_logs(
    request: Request, body: AuditLogsQueryRequest, service: QueryService = Depends(query_service)
) -> FastJSONResponse:
    query = validate_audit_logs(body)
    with collecting_warnings() as warnings:
        page = await service.audit_logs(caller(request), query)
    return warned(FastJSONResponse(audit_page_body(page, query.timeline_interval_ns)), warnings)


@router.post(
    "/api/v1alpha1/audit-logs/filter-values",
    tags=["Audit logs"],
    operation_id="queryAuditLogFilterValues",
    summary="The values of one audit filter, with counts",
    description="The values one filter takes among the records the query selects once that filter's own"
    " selection is cleared, most frequent first (a facet picker)." + _AUTHZ,
    responses=_ok(FILTER_VALUES_RESPONSE, "The filter's values"),
)
async def query_audit_filter_values(
    request: Request, body: AuditFilterValuesRequest, service: QueryService = Depends(query_service)
) -> FastJSONResponse:
    question = validate_audit_filter_values(body)
    with collecting_warnings() as warnings:
        values = await service.audit_filter_values(caller(request), question)
    return warned(FastJSONResponse(filter_values_body(values)), warnings)
