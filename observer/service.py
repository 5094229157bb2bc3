"""The query service: authorize, resolve names to UIDs, ask the backend, translate failures into the contract's errors.

REST routers and the MCP tools both call this one object, so every way in gets the same order of operations
(validate -> authorize -> resolve -> backend, the middle two in observer/guard.py) and the same errors (the
guard's table). Validation hands over a request without a scope (observer/requests.py); the resolved scope
completes it here, so no query ever carries names the backends would have to ignore.
"""

from __future__ import annotations

from dataclasses import replace

from access import model as authz
from access.model import Authorizer, Subject
from adapters.protocols import (
    AuditBackend,
    EventsBackend,
    LogsBackend,
    MetricsBackend,
    NotSupportedByBackend,
    PatternsBackend,
    PlatformLogsBackend,
    ScopeResolver,
    TracesBackend,
)
from domain.audit import AuditPage, AuditQuery, contiguous_timeline
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
from domain.patterns import PatternsResult
from domain.platform import FilterValues, FilterValuesQuery, PlatformLogsQuery, without_own_selection
from observer.errors import ApiError
from observer.guard import Guard, failures, query_endpoint
from observer.log_context import AnchorUnclear, LogContext, LogContextRequest, read_log_context
from observer.patterns import sampled_patterns
from observer.requests import (
    EventsRequest,
    LogsRequest,
    MetricsRequest,
    SpansRequest,
    TopologyRequest,
    TracesRequest,
)
from observer.validate_patterns import PatternsRequest
from observer.validation import NamedScope

LOGS = query_endpoint("L", "Failed to retrieve logs")
LOG_CONTEXT = query_endpoint("L", "Failed to retrieve log context")
EVENTS = query_endpoint("E", "Failed to retrieve events")
METRICS = query_endpoint("M", "Failed to retrieve metrics")
TOPOLOGY = query_endpoint("RG", "Failed to retrieve runtime topology")
TRACES = query_endpoint("T", "Failed to retrieve traces")
SPANS = query_endpoint("T", "Failed to retrieve spans")
SPAN = query_endpoint("T", "Failed to retrieve span details")
PLATFORM_LOGS = query_endpoint("PL", "Failed to retrieve platform logs")
PLATFORM_VALUES = query_endpoint("PL", "Failed to retrieve platform log filter values")
AUDIT_LOGS = query_endpoint("AL", "Failed to retrieve audit logs")
AUDIT_VALUES = query_endpoint("AL", "Failed to retrieve audit log filter values")
PATTERNS = query_endpoint("L", "Failed to retrieve log patterns")
#: The 501 codes of a family no configured backend serves (as events' OBS-V1-E-06).
PLATFORM_NOT_SERVED = "OBS-V1-PL-06"
AUDIT_NOT_SERVED = "OBS-V1-AL-06"


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
        *,
        platform_logs: PlatformLogsBackend | None = None,
        audit: AuditBackend | None = None,
        patterns: PatternsBackend | None = None,
    ):
        """`platform_logs` and `audit` are the plane's roles of those names (None: their routes answer 501);
        without a `patterns` role, patterns are computed here from a bounded sample of `logs`."""
        self.guard = Guard(resolver, authorizer)
        self._platform_logs = platform_logs
        self._audit = audit
        self._patterns = patterns
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

    # ------------------------------------------------------------------------------------ platform logs, audit

    def _platform(self) -> PlatformLogsBackend:
        if self._platform_logs is None:
            raise NotSupportedByBackend(
                PLATFORM_NOT_SERVED, "Platform logs are not served by the configured logs backend"
            )
        return self._platform_logs

    def _audit_trail(self) -> AuditBackend:
        if self._audit is None:
            raise NotSupportedByBackend(AUDIT_NOT_SERVED, "Audit logs are not kept by the configured backends")
        return self._audit

    async def platform_logs(self, caller: Subject | None, query: PlatformLogsQuery) -> Page[LogRecord]:
        """Cluster-scoped: `platformlogs:view` is asked on no namespace before the backend is chosen, so a denied
        caller learns nothing, not even whether platform logs are kept."""
        with failures(PLATFORM_LOGS):
            await self.guard.authorize_cluster(caller, authz.PLATFORMLOGS_VIEW)
            return await self._platform().query_platform_logs(query)

    async def platform_filter_values(
        self, caller: Subject | None, question: FilterValuesQuery[PlatformLogsQuery]
    ) -> FilterValues:
        """The filter's own selection is cleared here, once for every way in (REST, MCP), before any backend."""
        with failures(PLATFORM_VALUES):
            await self.guard.authorize_cluster(caller, authz.PLATFORMLOGS_VIEW)
            cleared = replace(question, query=without_own_selection(question.query, question.filter))
            return await self._platform().platform_filter_values(cleared)

    async def audit_logs(self, caller: Subject | None, query: AuditQuery) -> AuditPage:
        """The backend's page, its timeline (non-empty buckets only, from any backend) made contiguous over the
        whole window here, once for every way in; a backend that could not compute one leaves it out (upstream:
        omitted, not failed). `total` is the backend's exact count, passed on as it is."""
        with failures(AUDIT_LOGS):
            await self.guard.authorize_cluster(caller, authz.AUDITLOGS_VIEW)
            page = await self._audit_trail().query_audit(query)
        if query.timeline_interval_ns > 0 and page.timeline is not None:
            window, found = query.range, page.timeline
            # Our ranges include their end: records exactly at endTime keep their bucket (starting at the end),
            # so the buckets still add up to `total`.
            beyond = [bucket for bucket in found if bucket.start_ns >= max(window.end_ns, window.start_ns + 1)]
            page = replace(page, timeline=contiguous_timeline(window, query.timeline_interval_ns, found) + beyond)
        return page

    async def audit_filter_values(
        self, caller: Subject | None, question: FilterValuesQuery[AuditQuery]
    ) -> FilterValues:
        """As platform_filter_values: the filter's own alternatives cleared, no cursor, no timeline."""
        with failures(AUDIT_VALUES):
            await self.guard.authorize_cluster(caller, authz.AUDITLOGS_VIEW)
            query = question.query
            filters = tuple((name, values) for name, values in query.filters if name != question.filter)
            cleared = replace(query, filters=filters, cursor="", timeline_interval_ns=0)
            return await self._audit_trail().audit_filter_values(replace(question, query=cleared))

    # ------------------------------------------------------------------------------------ patterns

    async def patterns(self, caller: Subject | None, named: NamedScope, request: PatternsRequest) -> PatternsResult:
        """Authorized and resolved as a logs query of the same scope (`logs:view`); computed by the backend where
        the lines live when it serves patterns, else from a bounded sample read through the logs role."""
        with failures(PATTERNS):
            scope = await self.guard.admit(caller, authz.LOGS_VIEW, named)
            query = request.scoped(scope)
            if self._patterns is not None:
                return await self._patterns.query_patterns(query)
            return await sampled_patterns(self._logs, query)
