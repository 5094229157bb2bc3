"""The query service: authorize, resolve names to UIDs, ask the backend, translate failures into the contract's errors.

REST routers and the MCP tools both call this one object, so every way in gets the same order of operations
(validate -> authorize -> resolve -> backend, the middle two in observer/guard.py) and the same errors (the
guard's table). Validation hands over a request without a scope (observer/requests.py); the resolved scope
completes it here, so no query ever carries names the backends would have to ignore.
"""

from __future__ import annotations

from access import model as authz
from access.model import Authorizer, Subject
from adapters.protocols import EventsBackend, LogsBackend, MetricsBackend, ScopeResolver, TracesBackend
from domain.model import (
    EventRecord,
    LogRecord,
    MetricSeries,
    Page,
    SpanRecord,
    Topology,
    TraceSummary,
    WorkflowScope,
)
from observer.errors import ApiError
from observer.guard import Guard, failures, query_endpoint
from observer.log_context import AnchorUnclear, LogContext, LogContextRequest, read_log_context
from observer.requests import (
    EventsRequest,
    LogsRequest,
    MetricsRequest,
    SpansRequest,
    TopologyRequest,
    TracesRequest,
)
from observer.validation import NamedScope

LOGS = query_endpoint("L", "Failed to retrieve logs")
LOG_CONTEXT = query_endpoint("L", "Failed to retrieve log context")
EVENTS = query_endpoint("E", "Failed to retrieve events")
METRICS = query_endpoint("M", "Failed to retrieve metrics")
TOPOLOGY = query_endpoint("RG", "Failed to retrieve runtime topology")
TRACES = query_endpoint("T", "Failed to retrieve traces")
SPANS = query_endpoint("T", "Failed to retrieve spans")
SPAN = query_endpoint("T", "Failed to retrieve span details")


class QueryService:
    """Every method takes the caller first: the subject authentication made of the request's token (None when
    authentication is switched off), which the authorizer judges against the scope as named."""

    def __init__(
        self,
        resolver: ScopeResolver,
        logs: LogsBackend,
        events: EventsBackend,
        traces: TracesBackend,
        metrics: MetricsBackend,
        topology: MetricsBackend | None = None,
        authorizer: Authorizer | None = None,
    ):
        self.guard = Guard(resolver, authorizer)
        self._logs = logs
        self._events = events
        self._traces = traces
        self._metrics = metrics
        self._topology = topology or metrics  # a metrics scheme without call-graph series leaves it to spans

    @property
    def resolver(self) -> ScopeResolver:
        return self.guard.resolver

    @property
    def authorizer(self) -> Authorizer:
        return self.guard.authorizer

    @authorizer.setter
    def authorizer(self, authorizer: Authorizer) -> None:
        self.guard.authorizer = authorizer

    async def logs(
        self, caller: Subject | None, named: NamedScope | WorkflowScope, request: LogsRequest
    ) -> Page[LogRecord]:
        with failures(LOGS):
            scope = await self.guard.admit_any(caller, authz.LOGS_VIEW, named)
            return await self._logs.query_logs(request.scoped(scope))

    async def log_context(self, caller: Subject | None, named: NamedScope, request: LogContextRequest) -> LogContext:
        """The lines around one line of one container (observer/log_context.py): authorized and resolved once,
        then read through plain logs queries on the resolved scope."""
        with failures(LOG_CONTEXT):
            scope = await self.guard.admit(caller, authz.LOGS_VIEW, named)
            try:
                return await read_log_context(self._logs.query_logs, scope, request)
            except AnchorUnclear as exc:
                raise ApiError(400, str(exc)) from None

    async def events(
        self, caller: Subject | None, named: NamedScope | WorkflowScope, request: EventsRequest
    ) -> Page[EventRecord]:
        with failures(EVENTS):
            scope = await self.guard.admit_any(caller, authz.EVENTS_VIEW, named)
            try:
                return await self._events.query_events(request.scoped(scope))
            except NotImplementedError:
                raise ApiError(
                    501, "Events query is not implemented by the configured logs adapter", "OBS-V1-E-06"
                ) from None

    async def metrics(self, caller: Subject | None, named: NamedScope, request: MetricsRequest) -> MetricSeries:
        with failures(METRICS):
            scope = await self.guard.admit(caller, authz.METRICS_VIEW, named)
            return await self._metrics.query_metrics(request.scoped(scope))

    async def topology(self, caller: Subject | None, named: NamedScope, request: TopologyRequest) -> Topology:
        with failures(TOPOLOGY):
            scope = await self.guard.admit(caller, authz.METRICS_VIEW, named)
            return await self._topology.query_topology(request.scoped(scope))

    async def traces(self, caller: Subject | None, named: NamedScope, request: TracesRequest) -> Page[TraceSummary]:
        with failures(TRACES):
            scope = await self.guard.admit(caller, authz.TRACES_VIEW, named)
            return await self._traces.query_traces(request.scoped(scope))

    async def spans(self, caller: Subject | None, named: NamedScope, request: SpansRequest) -> Page[SpanRecord]:
        with failures(SPANS):
            scope = await self.guard.admit(caller, authz.TRACES_VIEW, named)
            return await self._traces.query_spans(request.scoped(scope))

    async def span(self, caller: Subject | None, trace_id: str, span_id: str) -> SpanRecord:
        """A span by its ids alone. Upstream answers it to anyone authenticated; here the caller must be allowed
        to see traces of the span's own scope, which is only known once the span is read (a denied caller learns
        that the id exists, never what it holds)."""
        with failures(SPAN):
            self.guard.require_caller(caller)
            span = await self._traces.get_span(trace_id.strip().lower(), span_id.strip().lower())
            who = span.identity
            await self.guard.authorize(
                caller, authz.TRACES_VIEW, NamedScope(who.namespace, who.project, who.component, who.environment)
            )
            return span
