"""Platform logs and the audit trail from a logs adapter (the contract's newer operations, http-adapters-notes
§3): `POST /api/v1alpha1/platform-logs/query` and `/filter-values`, `POST /api/v1alpha1/audit-logs/query` and
`/filter-values`, in adapters/http_contract's JSON.

An adapter that lacks them answers 501, which passes on as NotSupportedByBackend (the observer's 501 with the
adapter's code), as for events; one that predates them has no such route and answers 404, which means the same
here (OperationMissing, a 501 too). The contract has no cursor for these either: paging is emulated exactly as for
component logs (adapters/http/paging.py), and our own adapter server's cursors pass through.

The audit role here only reads: this backend keeps no records (no sink), so the plane's audit records go to the
sink of whichever backend serves the audit role for writing (the adapter's backend is fed by OpenChoreo's
collectors, not by us). The timeline is asked for with the first page only (the cut ranges of emulated pages
would count less); a later page that wants one asks for it alone, over the whole range. A timeline the adapter
coarsened (the contract caps it at 500 buckets) comes with a warning naming the width it used.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from adapters.http.backend import parsed_answer
from adapters.http.client import AdapterClient
from adapters.http.errors import AdapterNotFound, AdapterNotImplemented
from adapters.http.paging import page_through
from adapters.http_contract import audit_wire, platform_wire
from adapters.protocols import pass_on_warning
from domain.audit import AuditPage, AuditQuery, AuditRecord, TimelineBucket
from domain.model import LogRecord, Page, TimeRange
from domain.platform import FilterValues, FilterValuesQuery, PlatformLogsQuery

PLATFORM_QUERY = "/api/v1alpha1/platform-logs/query"
PLATFORM_VALUES = "/api/v1alpha1/platform-logs/filter-values"
AUDIT_QUERY = "/api/v1alpha1/audit-logs/query"
AUDIT_VALUES = "/api/v1alpha1/audit-logs/filter-values"


class OperationMissing(AdapterNotImplemented):
    """The adapter answered 404 to one of these operations: it predates them (an older contract version has no
    such route), which is "not implemented", the observer's 501, not "not found"."""


async def _call(client: AdapterClient, path: str, body: dict[str, Any]) -> Any:
    try:
        return await client.call("POST", path, body=body)
    except AdapterNotFound as missing:
        raise OperationMissing(
            501,
            missing.code or "OBS-ADAPTER-OPERATION-MISSING",
            f"the logs adapter at {client.base_url} has no {path} (it answered 404: it predates this operation)",
        ) from None


class HttpPlatformLogs:
    """PlatformLogsBackend over a logs adapter."""

    def __init__(self, client: AdapterClient) -> None:
        self.client = client

    async def query_platform_logs(self, query: PlatformLogsQuery) -> Page[LogRecord]:
        key = (
            "platform",
            query.clusters,
            query.namespaces,
            query.pods,
            query.containers,
            query.labels,
            query.levels,
            query.phrase,
        )

        async def fetch(range_: TimeRange, limit: int, cursor: str) -> Page[LogRecord]:
            ask = replace(query, range=range_, limit=limit, cursor=cursor)
            answer = await _call(self.client, PLATFORM_QUERY, platform_wire.platform_request(ask))
            return parsed_answer("platform logs query", platform_wire.parse_platform_response, answer)

        return await page_through(key, query.range, query.sort, query.limit, query.cursor, fetch, _log_time)

    async def platform_filter_values(self, query: FilterValuesQuery[PlatformLogsQuery]) -> FilterValues:
        answer = await _call(self.client, PLATFORM_VALUES, platform_wire.platform_values_request(query))
        return parsed_answer("platform logs filter values", platform_wire.parse_filter_values_response, answer)


class HttpAudit:
    """AuditBackend over a logs adapter: read-only (this backend has no sink; see the module docstring)."""

    def __init__(self, client: AdapterClient) -> None:
        self.client = client

    async def query_audit(self, query: AuditQuery) -> AuditPage:
        narrowed = known_values(query)
        if narrowed is None:
            return AuditPage([], 0, 0, "", [] if query.timeline_interval_ns > 0 else None)
        query = narrowed
        key = ("audit", query.filters, query.phrase)
        timeline: list[list[TimelineBucket] | None] = []

        async def fetch(range_: TimeRange, limit: int, cursor: str) -> Page[AuditRecord]:
            first = range_ == query.range and not cursor and query.timeline_interval_ns > 0
            ask = replace(query, range=range_, limit=limit, cursor=cursor, timeline_interval_ns=0)
            page = await self._ask(replace(ask, timeline_interval_ns=query.timeline_interval_ns) if first else ask)
            if first:
                timeline.append(page.timeline)
            return Page(page.records, page.total, page.took_ms, page.next_cursor)

        found = await page_through(key, query.range, query.sort, query.limit, query.cursor, fetch, _audit_time)
        buckets: list[TimelineBucket] | None = None
        if query.timeline_interval_ns > 0:
            if not timeline:
                alone = replace(query, limit=1, cursor="")
                timeline.append((await self._ask(alone)).timeline)
            buckets = timeline[0] if timeline[0] is not None else []
        return AuditPage(found.items, found.total, found.took_ms, found.next_cursor, buckets)

    async def _ask(self, query: AuditQuery) -> AuditPage:
        answer = await _call(self.client, AUDIT_QUERY, audit_wire.audit_request(query))
        page, interval = parsed_answer("audit logs query", audit_wire.parse_audit_response, answer)
        asked = audit_wire.format_interval(query.timeline_interval_ns) if query.timeline_interval_ns else ""
        if asked and interval and interval != asked:
            pass_on_warning(f"timelineInterval: the logs adapter counted buckets of {interval}, not {asked}")
        return page

    async def audit_filter_values(self, query: FilterValuesQuery[AuditQuery]) -> FilterValues:
        narrowed = known_values(query.query)
        if narrowed is None:
            return FilterValues(query.filter)
        query = replace(query, query=narrowed)
        answer = await _call(self.client, AUDIT_VALUES, audit_wire.audit_values_request(query))
        return parsed_answer("audit logs filter values", platform_wire.parse_filter_values_response, answer)


def known_values(query: AuditQuery) -> AuditQuery | None:
    """The query with values outside a closed set (category, result, surface) left out, since the contract
    refuses them (400) and they could match no record anyway; None when a filter keeps no value at all: the
    query matches nothing, and the adapter need not be asked."""
    filters = []
    for name, values in query.filters:
        allowed = audit_wire.ENUMS.get(name)
        kept = tuple(value for value in values if value in allowed) if allowed else values
        if not kept:
            return None
        filters.append((name, kept))
    return replace(query, filters=tuple(filters))


def _log_time(record: LogRecord) -> int:
    return record.ts_ns


def _audit_time(record: AuditRecord) -> int:
    return record.time_ns
