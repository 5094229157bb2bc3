"""FinOps on the public port: `GET /api/v1alpha1/costs/namespaces/{namespace}/environments/{environment}` and
`.../recommendations` (observer-api.yaml, tag FinOps; contract notes §1.15). The routes refuse query parameters
they do not know (which would otherwise widen the question silently); the rest is observer/finops.py.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Request

from domain.echo import shown
from observer.errors import INVALID_REQUEST, ApiError
from observer.finops import GRANULARITY, finops_scope, refuse_finops
from observer.responses import FastJSONResponse
from observer.routers.queries import caller

COSTS_PATH = "/api/v1alpha1/costs/namespaces/{namespace}/environments/{environment}"
_COSTS_PARAMETERS = frozenset({"project", "component", "startTime", "endTime", "granularity"})
_RECOMMENDATIONS_PARAMETERS = _COSTS_PARAMETERS - {"granularity"}

router = APIRouter(tags=["FinOps"], default_response_class=FastJSONResponse)

_PROJECT = Query(None, description="Project name. When set, narrows the response to components in this project.")
_COMPONENT = Query(
    None, description="Component name. When set, narrows the response to this single component. Requires `project`."
)
_START = Query(
    description="Inclusive lower bound of the cost window (RFC 3339).", json_schema_extra={"format": "date-time"}
)
_END = Query(
    description="Exclusive upper bound of the cost window (RFC 3339). Must be strictly greater than startTime.",
    json_schema_extra={"format": "date-time"},
)
_GRANULARITY = Query(
    None,
    description="Bucket size `<count><unit>`, unit h, d or w (e.g. 1h, 2d, 3w).",
    json_schema_extra={"pattern": GRANULARITY.pattern},
)


# Both handlers end in an ApiError (a 400, a 401/403, or the 501); the 200 the contract describes is documented
# from the upstream schema by observer/openapi.py, for the day a cost backend exists.
@router.get(COSTS_PATH, operation_id="getComponentCosts", response_model=None)
async def get_component_costs(
    request: Request,
    namespace: str,
    environment: str,
    project: str | None = _PROJECT,
    component: str | None = _COMPONENT,
    startTime: str = _START,
    endTime: str = _END,
    granularity: str | None = _GRANULARITY,
) -> None:
    refuse_unknown_parameters(request, _COSTS_PARAMETERS)
    named = finops_scope(namespace, environment, project, component, startTime, endTime, granularity)
    await refuse_finops(request.app.state.query_service.authorizer, caller(request), named)


@router.get(COSTS_PATH + "/recommendations", operation_id="getRecommendations", response_model=None)
async def get_recommendations(
    request: Request,
    namespace: str,
    environment: str,
    project: str | None = _PROJECT,
    component: str | None = _COMPONENT,
    startTime: str = _START,
    endTime: str = _END,
) -> None:
    refuse_unknown_parameters(request, _RECOMMENDATIONS_PARAMETERS)
    named = finops_scope(namespace, environment, project, component, startTime, endTime)
    await refuse_finops(request.app.state.query_service.authorizer, caller(request), named)


def refuse_unknown_parameters(request: Request, known: frozenset[str]) -> None:
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise ApiError(
            400,
            f"unknown query parameter '{shown(unknown[0])}'; this endpoint takes {', '.join(sorted(known))}",
            INVALID_REQUEST,
        )
