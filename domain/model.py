"""The shared domain: what every backend stores and what every query asks.

Backends, collectors and the Observer all speak these types, so a record looks the same whether it arrived by
OTLP or a log tail and whether it is kept in SQLite or OpenSearch. Times are integer nanoseconds since the epoch
(UTC) everywhere below the wire: RFC3339 strings are parsed once at the edge and formatted once on the way out.
Scopes below the wire carry UIDs; names travel beside them only so results can be labelled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Generic, Literal, TypeVar

T = TypeVar("T")

SortOrder = Literal["asc", "desc"]

#: Label keys OpenChoreo puts on every workload pod (and that collectors copy into resource attributes).
LABEL_NAMESPACE = "openchoreo.dev/namespace"
LABEL_PROJECT = "openchoreo.dev/project"
LABEL_PROJECT_UID = "openchoreo.dev/project-uid"
LABEL_COMPONENT = "openchoreo.dev/component"
LABEL_COMPONENT_UID = "openchoreo.dev/component-uid"
LABEL_ENVIRONMENT = "openchoreo.dev/environment"
LABEL_ENVIRONMENT_UID = "openchoreo.dev/environment-uid"

#: The most a `total` counts before it stops ("capped at 1000", as the contract's response schemas say).
TOTAL_CAP = 1_000


@dataclass(frozen=True, slots=True)
class Identity:
    """Who produced a record, in platform terms: names and UIDs of its scope, plus where it ran.

    Empty strings mean "unknown". A record without a namespace cannot be queried and is still stored.
    """

    namespace: str = ""
    project: str = ""
    project_uid: str = ""
    component: str = ""
    component_uid: str = ""
    environment: str = ""
    environment_uid: str = ""
    pod: str = ""
    pod_namespace: str = ""
    container: str = ""
    workflow_run: str = ""
    task: str = ""
    # Where it ran, in Kubernetes terms: what platform logs are found by (domain/platform.py). `labels` are the
    # pod's own labels, sorted by key, so two identities of one pod compare equal.
    cluster: str = ""
    node: str = ""
    pod_ip: str = ""
    image: str = ""
    labels: tuple[tuple[str, str], ...] = ()


def sorted_labels(labels: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """A pod's labels as `Identity.labels` holds them."""
    return tuple(sorted(labels.items()))


@dataclass(frozen=True, slots=True)
class ComponentScope:
    """A resolved component scope: namespace name plus the UIDs of the narrower levels given."""

    namespace: str
    project_uid: str = ""
    component_uid: str = ""
    environment_uid: str = ""


@dataclass(frozen=True, slots=True)
class WorkflowScope:
    """Logs and events of CI workflow runs; run names are not resolved, they are matched as they are."""

    namespace: str
    workflow_run: str = ""
    task: str = ""


Scope = ComponentScope | WorkflowScope


# ----------------------------------------------------------------------------------------------- records


@dataclass(slots=True)
class LogRecord:
    ts_ns: int
    body: str
    identity: Identity
    level: str = ""  # DEBUG | INFO | WARN | ERROR | FATAL ... ("" when undetectable)
    trace_id: str = ""
    span_id: str = ""
    stream: str = ""  # stdout | stderr | otlp


@dataclass(slots=True)
class EventRecord:
    """A Kubernetes event about an object that belongs to a scope."""

    ts_ns: int
    message: str
    identity: Identity
    type: str = ""  # Normal | Warning
    reason: str = ""
    object_kind: str = ""
    object_name: str = ""
    object_namespace: str = ""


class SpanKind(str, Enum):
    UNSPECIFIED = "Unspecified"
    INTERNAL = "Internal"
    SERVER = "Server"
    CLIENT = "Client"
    PRODUCER = "Producer"
    CONSUMER = "Consumer"


@dataclass(slots=True)
class SpanRecord:
    trace_id: str  # 32 lowercase hex
    span_id: str  # 16 lowercase hex
    parent_span_id: str  # "" for a root span
    name: str
    kind: str  # a SpanKind value
    start_ns: int
    end_ns: int
    identity: Identity
    status_code: str = "unset"  # ok | error | unset
    status_message: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)
    resource: dict[str, Any] = field(default_factory=dict)


class MetricKind(str, Enum):
    GAUGE = "gauge"
    SUM = "sum"  # monotonic counter, stored as deltas
    HISTOGRAM = "histogram"  # stored as deltas


@dataclass(slots=True)
class MetricPoint:
    """One sample of one series, as the producer sent it. Sums and histograms are `cumulative` (a running total
    since `start_ns`, as Prometheus wants them) or deltas (the increase since the previous sample); each sink
    converts to what its backend keeps."""

    name: str
    kind: MetricKind
    ts_ns: int
    identity: Identity
    attributes: dict[str, str] = field(default_factory=dict)
    cumulative: bool = True
    start_ns: int = 0
    value: float = 0.0  # gauge value, or sum
    count: float = 0.0  # histogram: number of observations
    sum: float = 0.0  # histogram: sum of observations
    bounds: tuple[float, ...] = ()  # histogram explicit upper bounds (the +Inf bucket is implicit)
    bucket_counts: tuple[float, ...] = ()  # len(bounds) + 1 counts, per bucket (not cumulative)
    unit: str = ""  # UCUM, as the producer declared it (`s`, `By`, `{cpu}`); Prometheus names carry it


# ----------------------------------------------------------------------------------------------- queries


@dataclass(frozen=True, slots=True)
class TimeRange:
    start_ns: int
    end_ns: int


@dataclass(frozen=True, slots=True)
class LogsQuery:
    scope: Scope
    range: TimeRange
    limit: int = 100
    sort: SortOrder = "desc"
    levels: tuple[str, ...] = ()
    phrase: str = ""
    cursor: str = ""
    trace_id: str = ""  # extension: only lines of this trace (32 lowercase hex), "" for any


@dataclass(frozen=True, slots=True)
class EventsQuery:
    scope: Scope
    range: TimeRange
    limit: int = 100
    sort: SortOrder = "desc"
    cursor: str = ""


@dataclass(frozen=True, slots=True)
class TracesQuery:
    """The traces with a span in the scope wholly inside the range. The extensions `min_duration_ns` and
    `errors_only` filter on the whole trace, as its TraceSummary reports it (end_ns - start_ns, has_errors), so
    a filtered list never shows a trace that contradicts the filter."""

    scope: ComponentScope
    range: TimeRange
    limit: int = 100
    sort: SortOrder = "desc"
    min_duration_ns: int = 0  # extension: only traces lasting at least this long (0: any)
    errors_only: bool = False  # extension: only traces with an error span

    @property
    def filtered(self) -> bool:
        """Whether a trace filter of the extensions is set."""
        return self.min_duration_ns > 0 or self.errors_only

    def keeps(self, summary: TraceSummary) -> bool:
        """Whether a trace passes the filters: for backends that apply them to summaries after the fact."""
        if self.errors_only and not summary.has_errors:
            return False
        return summary.end_ns - summary.start_ns >= self.min_duration_ns


@dataclass(frozen=True, slots=True)
class SpansQuery:
    trace_id: str
    scope: ComponentScope
    range: TimeRange
    limit: int = 100
    sort: SortOrder = "desc"


MetricFamily = Literal["resource", "http"]


@dataclass(frozen=True, slots=True)
class MetricsQuery:
    family: MetricFamily
    scope: ComponentScope
    range: TimeRange
    step_ns: int


@dataclass(frozen=True, slots=True)
class TopologyQuery:
    scope: ComponentScope  # namespace, project and environment are always set
    range: TimeRange
    include_gateways: bool = True
    include_external: bool = True


# ----------------------------------------------------------------------------------------------- results


@dataclass(slots=True)
class Page(Generic[T]):
    """A page of records with the number that matched (capped at TOTAL_CAP) and how long the backend took."""

    items: list[T]
    total: int
    took_ms: int
    next_cursor: str = ""


@dataclass(slots=True)
class TraceSummary:
    trace_id: str
    name: str
    span_count: int
    root_span_id: str
    root_span_name: str
    root_span_kind: str
    start_ns: int
    end_ns: int
    has_errors: bool


#: series name -> [(timestamp ns, value)], in time order. Only series with data are present.
MetricSeries = dict[str, list[tuple[int, float]]]


@dataclass(slots=True)
class EdgeMetrics:
    request_count: float
    unsuccessful_request_count: float
    mean_latency: float
    latency_p50: float
    latency_p90: float
    latency_p99: float


@dataclass(frozen=True, slots=True)
class NodeRef:
    kind: Literal["component", "gateway", "external"]
    component: str = ""
    component_uid: str = ""
    project: str = ""
    project_uid: str = ""
    namespace: str = ""
    name: str = ""  # gateway name
    host: str = ""  # external host


@dataclass(slots=True)
class TopologyEdge:
    source: NodeRef
    target: NodeRef
    metrics: EdgeMetrics


@dataclass(slots=True)
class TopologyNode:
    ref: NodeRef
    metrics: EdgeMetrics | None = None


@dataclass(slots=True)
class Topology:
    nodes: list[TopologyNode]
    edges: list[TopologyEdge]
