"""FinOps questions (costs, right-sizing recommendations): checked, authorized, then answered "not configured".

This observer has no cost backend. A cost question is still checked as the contract says (a 400 names what to fix)
and the caller still authorized (`finops:view`, as upstream), so a client learns what it did wrong, or that it may
not ask, before it learns the data is not there. REST (observer/routers/costs.py) and the MCP cost tools call the
same two functions, so both say the same thing in the same order.
"""

from __future__ import annotations

import re
from typing import NoReturn

from access.model import FINOPS_VIEW, Authorizer, Subject
from access.resources import component_resource
from domain.echo import shown
from observer.errors import INVALID_REQUEST, ApiError
from observer.guard import failures, query_endpoint
from observer.validation import NamedScope, time_range

#: What every cost question is told, on REST (501) and in the MCP cost tools' errors alike.
FINOPS_NOT_CONFIGURED_MESSAGE = (
    "cost data is not available: this observer has no FinOps backend configured, so neither costs nor"
    " right-sizing recommendations can be queried"
)
FINOPS_NOT_CONFIGURED = "OBS-V1-FINOPS-NOT-CONFIGURED"
#: The contract's `<count><unit>` bucket size: hours, days or weeks.
GRANULARITY = re.compile(r"^[1-9][0-9]*[hdw]$")
_FINOPS = query_endpoint("FIN", "Failed to retrieve costs")


def finops_scope(
    namespace: str,
    environment: str,
    project: str | None,
    component: str | None,
    start: str | None,
    end: str | None,
    granularity: str | None = None,
) -> NamedScope:
    """The checks both cost questions share, in the contract's order: scope, then the time window (end strictly
    after start, at most 30 days), then the granularity. Every 400 carries OBS-V1-INVALID-REQUEST (upstream
    sends no code here)."""
    named = NamedScope(namespace.strip(), (project or "").strip(), (component or "").strip(), environment.strip())
    if not named.namespace:
        raise _invalid("namespace is required")
    if not named.environment:
        raise _invalid("environment is required")
    if named.component and not named.project:
        raise _invalid("project is required when component is provided")
    try:
        window = time_range(start, end)
    except ApiError as exc:
        raise _invalid(exc.message) from None
    if window.end_ns == window.start_ns:
        raise _invalid("endTime must be after startTime")
    if granularity is not None and not GRANULARITY.match(granularity):
        raise _invalid(
            f"granularity '{shown(granularity)}' is invalid: expected a whole number of hours, days or weeks"
            " (e.g. 1h, 2d, 3w)"
        )
    return named


async def refuse_finops(authorizer: Authorizer, caller: Subject | None, named: NamedScope) -> NoReturn:
    """Authorizes the caller as a real cost query would be, then says there is no FinOps backend."""
    with failures(_FINOPS):
        await authorizer.authorize(caller, FINOPS_VIEW, component_resource(named))
    raise ApiError(501, FINOPS_NOT_CONFIGURED_MESSAGE, FINOPS_NOT_CONFIGURED)


def _invalid(message: str) -> ApiError:
    return ApiError(400, message, INVALID_REQUEST)
