"""The FinOps endpoints of the contract: the request is checked first (400 naming the fix), the caller is
authorized with `finops:view`, and then the answer is a 501 saying no FinOps backend is configured."""

from __future__ import annotations

import httpx
import pytest

from access.model import PermissionDenied, Resource, Subject
from observer.app import create_public_app
from observer.errors import INVALID_REQUEST
from observer.finops import FINOPS_NOT_CONFIGURED, FINOPS_NOT_CONFIGURED_MESSAGE
from observer.service import QueryService

COSTS = "/api/v1alpha1/costs/namespaces/acme/environments/prod"
RECOMMENDATIONS = COSTS + "/recommendations"
WINDOW = {"startTime": "2026-01-01T00:00:00Z", "endTime": "2026-01-02T00:00:00Z"}


@pytest.mark.parametrize("path", [COSTS, RECOMMENDATIONS])
@pytest.mark.parametrize("scope", [{}, {"project": "shop"}, {"project": "shop", "component": "cart"}])
async def test_a_valid_question_is_told_finops_is_not_configured(client, path, scope):
    response = await client.get(path, params=WINDOW | scope)
    assert response.status_code == 501, response.text
    assert response.json() == {
        "title": "notImplemented",
        "errorCode": FINOPS_NOT_CONFIGURED,
        "message": FINOPS_NOT_CONFIGURED_MESSAGE,
    }


async def test_granularity_is_accepted_on_costs(client):
    response = await client.get(COSTS, params=WINDOW | {"granularity": "12h"})
    assert response.status_code == 501


CASES = [
    (COSTS, {"component": "cart"}, "project is required when component is provided"),
    (COSTS, {"startTime": "yesterday"}, "startTime must be in RFC3339 format (e.g., 2024-01-01T00:00:00Z): ..."),
    (COSTS, {"endTime": "2025-12-31T00:00:00Z"}, "endTime must be after startTime"),
    (COSTS, {"endTime": WINDOW["startTime"]}, "endTime must be after startTime"),  # strictly after, here
    (COSTS, {"endTime": "2026-03-01T00:00:00Z"}, "query time range cannot exceed 30 days"),
    (COSTS, {"granularity": "1m"}, "granularity '1m' is invalid: expected a whole number of hours, days or weeks..."),
    (COSTS, {"granularity": "0d"}, "granularity '0d' is invalid..."),
    (COSTS, {"projcet": "shop"}, "unknown query parameter 'projcet'; this endpoint takes component, endTime, ..."),
    (RECOMMENDATIONS, {"granularity": "1d"}, "unknown query parameter 'granularity'..."),
    (RECOMMENDATIONS, {"startTime": ""}, "startTime is required"),
]


@pytest.mark.parametrize("path,params,message", CASES)
async def test_bad_questions_are_400s_that_name_the_fix(client, path, params, message):
    response = await client.get(path, params=WINDOW | params)
    assert response.status_code == 400, response.text
    body = response.json()
    assert (body["title"], body["errorCode"]) == ("badRequest", INVALID_REQUEST)
    if message.endswith("..."):
        assert body["message"].startswith(message[:-3]), body["message"]
    else:
        assert body["message"] == message


async def test_a_blank_environment_is_refused(client):
    response = await client.get("/api/v1alpha1/costs/namespaces/acme/environments/%20", params=WINDOW)
    assert (response.status_code, response.json()["message"]) == (400, "environment is required")


class Recording:
    """An authorizer that denies everything and remembers what it was asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, Resource]] = []

    async def authorize(self, subject: Subject | None, action: str, resource: Resource) -> None:
        self.asked.append((action, resource))
        raise PermissionDenied()


async def test_the_caller_is_authorized_with_finops_view_before_the_501(backend):
    authorizer = Recording()
    service = QueryService(
        backend.registry, logs=backend, events=backend, traces=backend, metrics=backend, authorizer=authorizer
    )
    transport = httpx.ASGITransport(create_public_app(service))
    async with httpx.AsyncClient(transport=transport, base_url="http://o") as client:
        response = await client.get(COSTS, params=WINDOW | {"project": "shop", "component": "cart"})
        invalid = await client.get(COSTS, params=WINDOW | {"component": "cart"})
    assert response.status_code == 403
    assert response.json()["message"] == "Access denied"
    assert invalid.status_code == 400  # the request is checked before anyone is asked
    [(action, resource)] = authorizer.asked
    assert action == "finops:view"
    assert (resource.type, resource.id, resource.environment) == ("component", "cart", "prod")
