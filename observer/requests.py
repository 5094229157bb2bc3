"""Checked requests without their scope: what validation hands the query service.

Validation knows the scope only as the caller named it; the UIDs the backends filter on exist once the guard has
authorized and resolved it. So `observer.validation` returns (the named scope, one of these), and the service
completes it with `scoped(resolved)` into the domain query (domain/model.py). No query ever holds a scope that is
not the resolved one.
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.model import (
    ComponentScope,
    EventsQuery,
    LogsQuery,
    MetricFamily,
    MetricsQuery,
    Scope,
    SortOrder,
    SpansQuery,
    TimeRange,
    TopologyQuery,
    TracesQuery,
)


@dataclass(frozen=True, slots=True)
class LogsRequest:
    range: TimeRange
    limit: int = 100
    sort: SortOrder = "desc"
    levels: tuple[str, ...] = ()
    phrase: str = ""
    cursor: str = ""
    trace_id: str = ""

    def scoped(self, scope: Scope) -> LogsQuery:
        return LogsQuery(scope, self.range, self.limit, self.sort, self.levels, self.phrase, self.cursor, self.trace_id)


@dataclass(frozen=True, slots=True)
class EventsRequest:
    range: TimeRange
    limit: int = 100
    sort: SortOrder = "desc"
    cursor: str = ""

    def scoped(self, scope: Scope) -> EventsQuery:
        return EventsQuery(scope, self.range, self.limit, self.sort, self.cursor)


@dataclass(frozen=True, slots=True)
class TracesRequest:
    range: TimeRange
    limit: int = 100
    sort: SortOrder = "desc"
    min_duration_ns: int = 0
    errors_only: bool = False

    def scoped(self, scope: ComponentScope) -> TracesQuery:
        return TracesQuery(scope, self.range, self.limit, self.sort, self.min_duration_ns, self.errors_only)


@dataclass(frozen=True, slots=True)
class SpansRequest:
    trace_id: str
    range: TimeRange
    limit: int = 100
    sort: SortOrder = "desc"

    def scoped(self, scope: ComponentScope) -> SpansQuery:
        return SpansQuery(self.trace_id, scope, self.range, self.limit, self.sort)


@dataclass(frozen=True, slots=True)
class MetricsRequest:
    family: MetricFamily
    range: TimeRange
    step_ns: int

    def scoped(self, scope: ComponentScope) -> MetricsQuery:
        return MetricsQuery(self.family, scope, self.range, self.step_ns)


@dataclass(frozen=True, slots=True)
class TopologyRequest:
    range: TimeRange
    include_gateways: bool = True
    include_external: bool = True

    def scoped(self, scope: ComponentScope) -> TopologyQuery:
        return TopologyQuery(scope, self.range, self.include_gateways, self.include_external)
