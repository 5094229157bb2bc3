"""Alerts and incidents on the public port: `POST /api/v1alpha1/alerts/query`, `POST /api/v1alpha1/incidents/query`,
`PUT /api/v1alpha1/incidents/{incidentId}` (contract notes §1.12-1.14).

These endpoints speak the SCREAMING_SNAKE error family: a body that does not decode is `INVALID_REQUEST_BODY`, a
field out of bounds is `VALIDATION_ERROR`, so the body is bound here rather than by FastAPI.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, StrictInt, StrictStr, ValidationError

from observer.alerting.service import AlertService, AlertsQuery
from observer.errors import ApiError
from observer.responses import FastJSONResponse
from observer.routers.queries import caller
from observer.validation import component_scope, sort_order, time_range
from observer.wire import ComponentSearchScope

router = APIRouter(tags=["Alerts"], default_response_class=FastJSONResponse)


class AlertsQueryRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    startTime: StrictStr | None = None
    endTime: StrictStr | None = None
    limit: StrictInt | None = None
    sortOrder: StrictStr | None = None
    searchScope: ComponentSearchScope | None = None


class IncidentPutRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    status: StrictStr | None = None
    notes: StrictStr | None = None
    description: StrictStr | None = None


async def bind(request: Request, model: type[BaseModel]) -> Any:
    """The body as `model`, or 400 INVALID_REQUEST_BODY saying what did not decode."""
    raw = await request.body()
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        detail = "EOF" if not raw.strip() else str(exc)
        raise ApiError(400, f"invalid request body: {detail}", "INVALID_REQUEST_BODY") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem.get("loc", ()))
        raise ApiError(400, f"invalid request body: {where + ': ' if where else ''}{problem.get('msg')}",
                       "INVALID_REQUEST_BODY") from None


def alerts_query(body: AlertsQueryRequest) -> tuple[Any, AlertsQuery]:
    """The alerts/incidents query checks: the shared ones, with this family's error code."""
    try:
        if body.searchScope is None:
            raise ApiError(400, "searchScope is required")
        named = component_scope(body.searchScope)
        window = time_range(body.startTime, body.endTime)
        limit = 100 if body.limit is None else body.limit
        if not 1 <= limit <= 1000:
            raise ApiError(400, "limit must be between 1 and 1000")
        order = sort_order(body.sortOrder)
    except ApiError as exc:
        raise ApiError(400, exc.message, "VALIDATION_ERROR") from None
    return named, AlertsQuery(window.start_ns, window.end_ns, limit, order)


def alert_service(request: Request) -> AlertService:
    service = getattr(request.app.state, "alert_service", None)
    if service is None:
        raise ApiError(500, "the alert store is not configured", "SERVICE_NOT_READY")
    return service


@router.post("/api/v1alpha1/alerts/query", operation_id="queryAlerts")
async def query_alerts(request: Request) -> FastJSONResponse:
    named, query = alerts_query(await bind(request, AlertsQueryRequest))
    return FastJSONResponse(await alert_service(request).query_alerts(caller(request), named, query))


@router.post("/api/v1alpha1/incidents/query", operation_id="queryIncidents", tags=["Incidents"])
async def query_incidents(request: Request) -> FastJSONResponse:
    named, query = alerts_query(await bind(request, AlertsQueryRequest))
    return FastJSONResponse(await alert_service(request).query_incidents(caller(request), named, query))


@router.put("/api/v1alpha1/incidents/{incidentId}", operation_id="updateIncident", tags=["Incidents"])
async def update_incident(incidentId: str, request: Request) -> FastJSONResponse:
    if not incidentId.strip():
        raise ApiError(400, "incident id is required", "INVALID_INCIDENT_ID")
    body = await bind(request, IncidentPutRequest)
    return FastJSONResponse(await alert_service(request).update_incident(
        caller(request), incidentId, (body.status or "").strip(), body.notes, body.description))
