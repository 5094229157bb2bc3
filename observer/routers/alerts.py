"""Alerts and incidents on the public port: `POST /api/v1alpha1/alerts/query`, `POST /api/v1alpha1/incidents/query`,
`PUT /api/v1alpha1/incidents/{incidentId}` (contract notes §1.12-1.14).

These endpoints speak the SCREAMING_SNAKE error family: a body that does not decode is `INVALID_REQUEST_BODY`, a
field out of bounds is `VALIDATION_ERROR`, so the body is bound here rather than by FastAPI.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, StrictInt, StrictStr

from domain.echo import shown
from domain.model import TimeRange
from observer.alerting import bodies
from observer.alerting.service import SUPPORTED_TIMES, AlertService, AlertsQuery
from observer.errors import ApiError
from observer.responses import FastJSONResponse
from observer.routers.queries import caller
from observer.validation import component_scope, sort_order, strict_limit, time_range
from observer.wire import ComponentSearchScope

router = APIRouter(tags=["Alerts"], default_response_class=FastJSONResponse)


class AlertsSearchScope(ComponentSearchScope):
    """The contract's ComponentSearchScope, refusing keys it does not define (a misspelt `compnent` would
    otherwise widen the query to every component)."""

    model_config = ConfigDict(extra="forbid")


class AlertsQueryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    startTime: StrictStr | None = None
    endTime: StrictStr | None = None
    limit: StrictInt | None = None
    sortOrder: StrictStr | None = None
    searchScope: AlertsSearchScope | None = None


class IncidentPutRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: StrictStr | None = None
    notes: StrictStr | None = None
    description: StrictStr | None = None


async def bind(request: Request, model: type[BaseModel]) -> Any:
    """The body as `model`, or 400 INVALID_REQUEST_BODY saying what did not decode or bind."""
    try:
        return bodies.bind(bodies.decode(await request.body()), model)
    except bodies.BodyError as exc:
        raise ApiError(400, f"invalid request body: {exc}", "INVALID_REQUEST_BODY") from None


def alerts_query(body: AlertsQueryRequest) -> tuple[Any, AlertsQuery]:
    """The alerts/incidents query checks: the shared ones (limit as traces: 0 is refused), with this family's
    error code, and times that int64 nanoseconds can hold."""
    try:
        if body.searchScope is None:
            raise ApiError(400, "searchScope is required")
        named = component_scope(body.searchScope)
        window = _window(body.startTime, body.endTime)
        limit = strict_limit(body.limit)
        order = sort_order(body.sortOrder)
    except ApiError as exc:
        raise ApiError(400, shown(exc.message, 300), "VALIDATION_ERROR") from None
    return named, AlertsQuery(window.start_ns, window.end_ns, limit, order)


def _window(start: str | None, end: str | None) -> TimeRange:
    """The shared time checks; a parse failure of any kind is the caller's 400 (the service then refuses a time
    int64 nanoseconds cannot hold, for MCP too)."""
    try:
        return time_range(start, end)
    except (ValueError, OverflowError):
        raise ApiError(400, f"startTime and endTime must be between {SUPPORTED_TIMES}") from None


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
    if bodies.unstorable_text(incidentId) is not None:
        raise ApiError(400, "incident id contains a NUL character or an unpaired surrogate", "INVALID_INCIDENT_ID")
    body = await bind(request, IncidentPutRequest)
    return FastJSONResponse(
        await alert_service(request).update_incident(
            caller(request), incidentId, (body.status or "").strip(), body.notes, body.description
        )
    )
