"""The alert and incident queries (public port) and the incident update, for REST and MCP alike.

Order as every query: validate -> authorize -> resolve names -> store, the middle two through the guard every
query passes (observer/guard.py), whose table also decides what each failure answers. Three upstream choices
are changed:
- an incident update is authorized on the incident's own scope (upstream checks `incidents:update` on an empty
  namespace, so any holder of that action anywhere could edit every incident); the incident is read first to
  learn its scope, so a denied caller learns only that the id exists;
- the environment is passed to the decision point as an attribute (upstream sends alerts an empty context), so a
  grant limited to one environment sees that environment's alerts and no other's;
- an incidents query naming a project, component or environment that does not exist is the caller's mistake:
  400 SCOPE_NOT_FOUND as for alerts (upstream answers 500 QUERY_INCIDENTS_FAILED);
- outages (the authorizer, the name resolver) are 503 with Retry-After, as the query APIs answer them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from access import model as authz
from access.model import Authorizer, Subject
from adapters.protocols import ScopeResolver
from domain.model import ComponentScope, SortOrder
from observer.alerting.entries import STATUSES, EntriesQuery, EntryStore, IncidentNotFound, InvalidTransition
from observer.errors import ApiError
from observer.guard import Guard, failures, store_endpoint
from observer.validation import NamedScope

#: The contract's codes per endpoint (§1.12-1.14); what each failure becomes is observer/guard.py's table.
ALERTS = store_endpoint("failed to query alerts", "QUERY_ALERTS_FAILED", "RESOLVE_SCOPE_FAILED")
INCIDENTS = store_endpoint("failed to query incidents", "QUERY_INCIDENTS_FAILED", "QUERY_INCIDENTS_FAILED")
UPDATE = store_endpoint("failed to update incident", "UPDATE_INCIDENT_FAILED", "UPDATE_INCIDENT_FAILED")

#: The times a query may name: what int64 nanoseconds since the epoch (the stores' columns) can hold.
MIN_NS, MAX_NS = -(2**63), 2**63 - 1
SUPPORTED_TIMES = "1677-09-21T00:12:44Z and 2262-04-11T23:47:16Z"


@dataclass(frozen=True, slots=True)
class AlertsQuery:
    start_ns: int
    end_ns: int
    limit: int = 100
    sort: SortOrder = "desc"

    def check(self) -> None:
        """A 400 for times the RFC3339 grammar allows but the store cannot compare (year 1035, 9999): checked
        here so REST and MCP refuse them alike instead of failing in SQL."""
        if not (MIN_NS <= self.start_ns <= MAX_NS and MIN_NS <= self.end_ns <= MAX_NS):
            raise ApiError(400, f"startTime and endTime must be between {SUPPORTED_TIMES}", "VALIDATION_ERROR")


class AlertService:
    def __init__(self, entries: EntryStore, resolver: ScopeResolver, authorizer: Authorizer):
        self.entries = entries
        self.guard = Guard(resolver, authorizer)

    @property
    def resolver(self) -> ScopeResolver:
        return self.guard.resolver

    @property
    def authorizer(self) -> Authorizer:
        return self.guard.authorizer

    async def query_alerts(self, caller: Subject | None, named: NamedScope, query: AlertsQuery) -> dict[str, Any]:
        started = time.monotonic()
        query.check()
        with failures(ALERTS):
            scope = await self.guard.admit(caller, authz.ALERTS_VIEW, named)
            items, total = await self.entries.query_alerts(self._entries_query(scope, query))
        return {"alerts": items, "total": total, "tookMs": _took(started)}

    async def query_incidents(self, caller: Subject | None, named: NamedScope, query: AlertsQuery) -> dict[str, Any]:
        started = time.monotonic()
        query.check()
        with failures(INCIDENTS):
            scope = await self.guard.admit(caller, authz.INCIDENTS_VIEW, named)
            items, total = await self.entries.query_incidents(self._entries_query(scope, query))
        return {"incidents": items, "total": total, "tookMs": _took(started)}

    async def update_incident(
        self, caller: Subject | None, incident_id: str, status: str, notes: str | None, description: str | None
    ) -> dict[str, Any]:
        incident_id = incident_id.strip()
        if not incident_id:
            raise ApiError(400, "incident id is required", "INVALID_INCIDENT_ID")
        if not status:
            raise ApiError(400, "status is required", "VALIDATION_ERROR")
        if status not in STATUSES:
            raise ApiError(400, "status must be one of 'active', 'acknowledged', or 'resolved'", "VALIDATION_ERROR")
        with failures(UPDATE):
            self.guard.require_caller(caller)
            row = await self.entries.get_incident(incident_id)
            if row is None:
                raise ApiError(404, "incident not found", "INCIDENT_NOT_FOUND")
            await self.guard.authorize(
                caller,
                authz.INCIDENTS_UPDATE,
                NamedScope(row["namespace_name"], row["project_name"], row["component_name"], row["environment_name"]),
            )
            try:
                return await self.entries.update_incident(incident_id, status, notes, description)
            except IncidentNotFound:
                raise ApiError(404, "incident not found", "INCIDENT_NOT_FOUND") from None
            except InvalidTransition as exc:
                raise ApiError(400, str(exc), "INVALID_STATUS_TRANSITION") from None

    @staticmethod
    def _entries_query(scope: ComponentScope, query: AlertsQuery) -> EntriesQuery:
        return EntriesQuery(scope, query.start_ns, query.end_ns, query.limit, query.sort)


def _took(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
