"""The small protocols every backend implements. The Observer and the collectors see only these.

A backend may implement any subset: OpenSearch holds logs, events and traces; Prometheus holds metrics; the
embedded store holds everything. Queries push filters, ordering, limits and aggregation down into the backend.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from domain.audit import AuditPage, AuditQuery, AuditRecord
from domain.model import (
    EventRecord,
    EventsQuery,
    Identity,
    LogRecord,
    LogsQuery,
    MetricPoint,
    MetricSeries,
    MetricsQuery,
    Page,
    SpanRecord,
    SpansQuery,
    Topology,
    TopologyQuery,
    TracesQuery,
    TraceSummary,
)
from domain.patterns import PatternsQuery, PatternsResult
from domain.platform import FilterValues, FilterValuesQuery, PlatformLogsQuery

#: At most this many warnings are kept per request, each at most WARNING_CHARS long (a backend's warning may
#: quote what a remote server sent, which is input).
MAX_WARNINGS, WARNING_CHARS = 8, 200
_warnings: ContextVar[list[str] | None] = ContextVar("backend_warnings", default=None)


@contextlib.contextmanager
def collecting_warnings() -> Iterator[list[str]]:
    """The warnings any backend hands up while the block runs (the request being served): a list filled in
    place, which the REST routes and MCP tools pass on. Backend-neutral, so the observer never names a backend;
    tasks and threads started inside the block share the list (a context copy keeps the same list object)."""
    found: list[str] = []
    token = _warnings.set(found)
    try:
        yield found
    finally:
        _warnings.reset(token)


def pass_on_warning(text: str) -> None:
    """A backend's warning for the caller of the current request (an adapter's soft "not implemented", a scan
    stopped early): kept when someone is collecting, bounded in count and length, duplicates once."""
    found = _warnings.get()
    text = text[:WARNING_CHARS]
    if found is not None and len(found) < MAX_WARNINGS and text not in found:
        found.append(text)


class BackendUnavailable(Exception):
    """The backend could not be reached or answered with a server error; the caller may retry later."""


class SpanNotFound(Exception):
    """No span with that trace and span id exists."""


class NotSupportedByBackend(NotImplementedError):
    """The backend cannot serve this question (an OpenChoreo adapter answering 501): the caller gets a 501 with
    the backend's own `code` (e.g. `OBS-V1-L-GCP-501`) and `message`, not a 500."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class InvalidCursor(ValueError):
    """A pagination cursor that this backend did not issue, or issued for another query."""


@runtime_checkable
class LogsBackend(Protocol):
    async def query_logs(self, query: LogsQuery) -> Page[LogRecord]: ...

    async def count_logs(self, query: LogsQuery) -> int:
        """The exact number of log lines matching the query's scope, range, levels and phrase (limit, sort and
        cursor are ignored; no TOTAL_CAP): what a log alert rule compares with its threshold."""
        ...


@runtime_checkable
class PlatformLogsBackend(Protocol):
    """Every line a backend holds, found by Kubernetes placement (domain/platform.py). Whoever serves logs
    serves this too: it is the same store read by other keys."""

    async def query_platform_logs(self, query: PlatformLogsQuery) -> Page[LogRecord]: ...

    async def platform_filter_values(self, query: FilterValuesQuery[PlatformLogsQuery]) -> FilterValues:
        """`query.query` arrives with the filter's own selection already cleared (without_own_selection)."""
        ...


@runtime_checkable
class AuditBackend(Protocol):
    """The audit trail, kept apart from application logs (domain/audit.py)."""

    async def query_audit(self, query: AuditQuery) -> AuditPage: ...

    async def audit_filter_values(self, query: FilterValuesQuery[AuditQuery]) -> FilterValues:
        """`query.query` arrives with the filter's own selection already cleared."""
        ...


@runtime_checkable
class PatternsBackend(Protocol):
    """Log patterns computed where the lines live; a logs backend without it gets patterns from a bounded
    sample of its lines, computed by the observer."""

    async def query_patterns(self, query: PatternsQuery) -> PatternsResult: ...


@runtime_checkable
class EventsBackend(Protocol):
    async def query_events(self, query: EventsQuery) -> Page[EventRecord]: ...


@runtime_checkable
class TracesBackend(Protocol):
    async def query_traces(self, query: TracesQuery) -> Page[TraceSummary]: ...

    async def query_spans(self, query: SpansQuery) -> Page[SpanRecord]: ...

    async def get_span(self, trace_id: str, span_id: str) -> SpanRecord:
        """Raises SpanNotFound when there is no such span."""
        ...


@runtime_checkable
class MetricsBackend(Protocol):
    async def query_metrics(self, query: MetricsQuery) -> MetricSeries: ...

    async def query_topology(self, query: TopologyQuery) -> Topology: ...


Outcome = Literal["delivered", "retry", "dropped"]


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What became of one `TelemetrySink.write`, in the spirit of OpenTelemetry's ExportResult: the caller
    decides what to do next from this value instead of from whichever exception a backend happens to raise.

    - `delivered`: stored. `count` records of it may still have been refused one by one (a bulk item's mapping
      conflict, an OTLP partial success), for `reason`: they are not retried, and the caller counts them.
    - `retry`: nothing is known to be stored; the same batch may pass later (connection refused, timeout, 429,
      5xx). `retry_after_s` is how long the destination asked to be left alone (0: the caller's own backoff).
    - `dropped`: the destination refused the whole batch for good (a 400 for the request): sending it again
      would be refused again and would hold up everything behind it. `count` records are lost, for `reason`,
      which the caller counts and logs.

    `reason` is a short phrase safe to log (never a credential or a whole response body)."""

    outcome: Outcome
    retry_after_s: float = 0.0
    reason: str = ""
    count: int = 0

    @classmethod
    def delivered(cls, dropped: int = 0, reason: str = "") -> WriteResult:
        """Stored; `dropped` records of the batch refused one by one, for `reason`."""
        return _DELIVERED if not dropped else cls("delivered", reason=reason, count=dropped)

    @classmethod
    def retry(cls, after: float = 0.0, reason: str = "") -> WriteResult:
        return cls("retry", retry_after_s=max(0.0, after), reason=reason)

    @classmethod
    def dropped(cls, reason: str, count: int) -> WriteResult:
        return cls("dropped", reason=reason, count=count)


_DELIVERED = WriteResult("delivered")


@runtime_checkable
class TelemetrySink(Protocol):
    """Where collectors deliver records. A batch is applied whole or not at all; `batch_id` makes a retried
    batch a no-op, so delivery can be at-least-once without duplicates. The result says whether to move on,
    try again later or give the batch up (`WriteResult`); a sink may still raise `BackendUnavailable` (or
    anything unexpected), which callers treat as `retry`."""

    async def write(
        self,
        *,
        batch_id: str,
        logs: Sequence[LogRecord] = (),
        events: Sequence[EventRecord] = (),
        spans: Sequence[SpanRecord] = (),
        metrics: Sequence[MetricPoint] = (),
        audit: Sequence[AuditRecord] = (),
    ) -> WriteResult: ...


# ----------------------------------------------------------------------------------------------- names -> UIDs


class ScopeNotFound(LookupError):
    """A name in the search scope does not exist. `kind` is namespace|project|component|environment."""

    def __init__(self, kind: str, name: str, namespace: str):
        self.kind, self.name, self.namespace = kind, name, namespace
        where = f" in namespace {namespace!r}" if kind != "namespace" else ""
        super().__init__(f"{kind} {name!r} not found{where}")


class ResolverUnavailable(Exception):
    """The source of truth for names could not be asked (network error, 5xx)."""


class ResolverAuthFailed(ResolverUnavailable):
    """The resolver's own credentials were refused (OpenChoreo's OBS-V1-SCOPE-AUTH-FAILED)."""


@runtime_checkable
class ScopeResolver(Protocol):
    """Turns the names a user types into the UIDs records are stored under."""

    async def resolve(
        self, namespace: str, project: str = "", component: str = "", environment: str = ""
    ) -> tuple[str, str, str]:
        """Returns (project_uid, component_uid, environment_uid); "" for each name not given.
        Raises ScopeNotFound, ResolverUnavailable or ResolverAuthFailed."""
        ...


@runtime_checkable
class IdentityRegistry(Protocol):
    """A resolver that also learns names and UIDs from the telemetry it sees (the embedded all-in-one)."""

    def learn(self, identities: Sequence[Identity], seen_ns: int) -> None: ...
