"""The query service: resolve names to UIDs, ask the backend, translate failures into the contract's errors.

REST routers and the MCP tools both call this one object, so every way in gets the same order of operations
(validate -> authorize -> resolve -> backend) and the same errors.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

from adapters.model import (
    ComponentScope,
    EventRecord,
    EventsQuery,
    LogRecord,
    LogsQuery,
    MetricSeries,
    MetricsQuery,
    Page,
    SpanRecord,
    SpansQuery,
    Topology,
    TopologyQuery,
    TraceSummary,
    TracesQuery,
    WorkflowScope,
)
from adapters.protocols import (
    BackendUnavailable,
    EventsBackend,
    InvalidCursor,
    LogsBackend,
    MetricsBackend,
    ResolverAuthFailed,
    ResolverUnavailable,
    ScopeNotFound,
    ScopeResolver,
    SpanNotFound,
    TracesBackend,
)
from observer.errors import ApiError
from observer.validation import NamedScope

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Signal:
    """How one endpoint reports failure: its OBS-V1 code letter and its message."""

    code: str
    failure: str


LOGS = Signal("L", "Failed to retrieve logs")
EVENTS = Signal("E", "Failed to retrieve events")
METRICS = Signal("M", "Failed to retrieve metrics")
TOPOLOGY = Signal("RG", "Failed to retrieve runtime topology")
TRACES = Signal("T", "Failed to retrieve traces")
SPANS = Signal("T", "Failed to retrieve spans")
SPAN = Signal("T", "Failed to retrieve span details")


@contextmanager
def failures(signal: Signal) -> Iterator[None]:
    """Maps what can go wrong below the API to status codes: the user's mistakes to 4xx, outages to 503."""
    prefix = f"OBS-V1-{signal.code}"
    try:
        yield
    except ApiError:
        raise
    except ScopeNotFound as exc:
        raise ApiError(404, f"{exc}; check the searchScope names", f"{prefix}-04") from None
    except ResolverAuthFailed:
        raise ApiError(500, "the observer could not authenticate to its name resolver", "OBS-V1-SCOPE-AUTH-FAILED") from None
    except ResolverUnavailable as exc:
        log.warning("name resolver unavailable: %s", exc)
        raise ApiError(503, f"{signal.failure}: the name resolver is unavailable, retry shortly", f"{prefix}-04") from None
    except InvalidCursor as exc:
        raise ApiError(400, str(exc)) from None
    except SpanNotFound:
        raise ApiError(404, "Span not found", "OBS-V1-T-07") from None
    except BackendUnavailable as exc:
        log.warning("backend unavailable: %s", exc)
        raise ApiError(503, f"{signal.failure}: the backend is unavailable, retry shortly", f"{prefix}-05") from None
    except Exception:
        log.exception("%s", signal.failure)
        raise ApiError(500, signal.failure, f"{prefix}-01") from None


class QueryService:
    def __init__(
        self,
        resolver: ScopeResolver,
        logs: LogsBackend,
        events: EventsBackend,
        traces: TracesBackend,
        metrics: MetricsBackend,
        topology: MetricsBackend | None = None,
    ):
        self.resolver = resolver
        self._logs = logs
        self._events = events
        self._traces = traces
        self._metrics = metrics
        self._topology = topology or metrics  # a metrics scheme without call-graph series leaves it to spans

    async def resolve(self, named: NamedScope) -> ComponentScope:
        project_uid, component_uid, environment_uid = await self.resolver.resolve(
            named.namespace, named.project, named.component, named.environment
        )
        return ComponentScope(named.namespace, project_uid, component_uid, environment_uid)

    async def _scope(self, named: NamedScope | WorkflowScope) -> ComponentScope | WorkflowScope:
        return named if isinstance(named, WorkflowScope) else await self.resolve(named)

    async def logs(self, named: NamedScope | WorkflowScope, query: LogsQuery) -> Page[LogRecord]:
        with failures(LOGS):
            return await self._logs.query_logs(replace(query, scope=await self._scope(named)))

    async def events(self, named: NamedScope | WorkflowScope, query: EventsQuery) -> Page[EventRecord]:
        with failures(EVENTS):
            try:
                return await self._events.query_events(replace(query, scope=await self._scope(named)))
            except NotImplementedError:
                raise ApiError(
                    501, "Events query is not implemented by the configured logs adapter", "OBS-V1-E-06"
                ) from None

    async def metrics(self, named: NamedScope, query: MetricsQuery) -> MetricSeries:
        with failures(METRICS):
            return await self._metrics.query_metrics(replace(query, scope=await self.resolve(named)))

    async def topology(self, named: NamedScope, query: TopologyQuery) -> Topology:
        with failures(TOPOLOGY):
            return await self._topology.query_topology(replace(query, scope=await self.resolve(named)))

    async def traces(self, named: NamedScope, query: TracesQuery) -> Page[TraceSummary]:
        with failures(TRACES):
            return await self._traces.query_traces(replace(query, scope=await self.resolve(named)))

    async def spans(self, named: NamedScope, query: SpansQuery) -> Page[SpanRecord]:
        with failures(SPANS):
            return await self._traces.query_spans(replace(query, scope=await self.resolve(named)))

    async def span(self, trace_id: str, span_id: str) -> SpanRecord:
        with failures(SPAN):
            return await self._traces.get_span(trace_id.strip().lower(), span_id.strip().lower())
