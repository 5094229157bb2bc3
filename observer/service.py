"""The query service: resolve names to UIDs, ask the backend, translate failures into the contract's errors.

REST routers and the MCP tools both call this one object, so every way in gets the same order of operations
(validate -> authorize -> resolve -> backend) and the same errors. Authorization is decided on the names the
caller wrote, before anything is resolved or read: a denied caller costs no resolver or backend call.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

from domain.echo import shown
from domain.model import (
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
from observer.auth import model as authz
from observer.auth.model import AllowAll, AuthorizationUnavailable, Authorizer, NotAuthenticated, PermissionDenied, Subject
from observer.auth.resources import resource_for
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
    except NotAuthenticated:
        raise ApiError(401, "Unauthorized") from None
    except PermissionDenied:
        raise ApiError(403, "Access denied") from None
    except AuthorizationUnavailable as exc:
        log.warning("authorization unavailable: %s", exc)
        raise ApiError(500, signal.failure, f"{prefix}-02") from None
    except ScopeNotFound as exc:
        raise ApiError(404, f"{not_found(exc)}; check the searchScope names", f"{prefix}-04") from None
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


def not_found(exc: ScopeNotFound) -> str:
    """Which name is unknown, quoted short: the name is the user's input and may be of any length."""
    where = f" in namespace '{shown(exc.namespace)}'" if exc.kind != "namespace" else ""
    return f"{exc.kind} '{shown(exc.name)}' not found{where}"


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
        self.resolver = resolver
        self._logs = logs
        self._events = events
        self._traces = traces
        self._metrics = metrics
        self._topology = topology or metrics  # a metrics scheme without call-graph series leaves it to spans
        self.authorizer: Authorizer = authorizer or AllowAll()

    async def resolve(self, named: NamedScope) -> ComponentScope:
        project_uid, component_uid, environment_uid = await self.resolver.resolve(
            named.namespace, named.project, named.component, named.environment
        )
        return ComponentScope(named.namespace, project_uid, component_uid, environment_uid)

    async def _allowed(self, caller: Subject | None, action: str, named: NamedScope | WorkflowScope) -> None:
        await self.authorizer.authorize(caller, action, resource_for(named))

    async def _scope(
        self, caller: Subject | None, action: str, named: NamedScope | WorkflowScope
    ) -> ComponentScope | WorkflowScope:
        await self._allowed(caller, action, named)
        return named if isinstance(named, WorkflowScope) else await self.resolve(named)

    async def logs(self, caller: Subject | None, named: NamedScope | WorkflowScope, query: LogsQuery) -> Page[LogRecord]:
        with failures(LOGS):
            return await self._logs.query_logs(replace(query, scope=await self._scope(caller, authz.LOGS_VIEW, named)))

    async def events(
        self, caller: Subject | None, named: NamedScope | WorkflowScope, query: EventsQuery
    ) -> Page[EventRecord]:
        with failures(EVENTS):
            scope = await self._scope(caller, authz.EVENTS_VIEW, named)
            try:
                return await self._events.query_events(replace(query, scope=scope))
            except NotImplementedError:
                raise ApiError(
                    501, "Events query is not implemented by the configured logs adapter", "OBS-V1-E-06"
                ) from None

    async def metrics(self, caller: Subject | None, named: NamedScope, query: MetricsQuery) -> MetricSeries:
        with failures(METRICS):
            scope = await self._scope(caller, authz.METRICS_VIEW, named)
            return await self._metrics.query_metrics(replace(query, scope=scope))

    async def topology(self, caller: Subject | None, named: NamedScope, query: TopologyQuery) -> Topology:
        with failures(TOPOLOGY):
            scope = await self._scope(caller, authz.METRICS_VIEW, named)
            return await self._topology.query_topology(replace(query, scope=scope))

    async def traces(self, caller: Subject | None, named: NamedScope, query: TracesQuery) -> Page[TraceSummary]:
        with failures(TRACES):
            scope = await self._scope(caller, authz.TRACES_VIEW, named)
            return await self._traces.query_traces(replace(query, scope=scope))

    async def spans(self, caller: Subject | None, named: NamedScope, query: SpansQuery) -> Page[SpanRecord]:
        with failures(SPANS):
            scope = await self._scope(caller, authz.TRACES_VIEW, named)
            return await self._traces.query_spans(replace(query, scope=scope))

    async def span(self, caller: Subject | None, trace_id: str, span_id: str) -> SpanRecord:
        """A span by its ids alone. Upstream answers it to anyone authenticated; here the caller must be allowed
        to see traces of the span's own scope, which is only known once the span is read (a denied caller learns
        that the id exists, never what it holds)."""
        with failures(SPAN):
            if caller is None and not isinstance(self.authorizer, AllowAll):
                raise NotAuthenticated()
            span = await self._traces.get_span(trace_id.strip().lower(), span_id.strip().lower())
            who = span.identity
            await self._allowed(
                caller, authz.TRACES_VIEW, NamedScope(who.namespace, who.project, who.component, who.environment)
            )
            return span
