"""A scheme says which series hold the platform's metrics and how to ask for them in PromQL.

Two exist: `kubernetes` (how OpenChoreo instruments clusters: cAdvisor, kube-state-metrics and Cilium Hubble,
joined to the scope through `kube_pod_labels`) and `otel` (OpenTelemetry metrics written by our collectors,
with the scope's labels on every series). The backend runs whatever a scheme returns and shapes the answer
the same way, so the API output does not depend on the scheme.

Conventions every scheme keeps, so that backends agree (the contract suite holds them to it):

- A range query's point at t covers (t - step, t]: counters are `rate(...[step])` (the increase from the
  sample at t - step to the one at t, per second), gauges `avg_over_time(...)` of the samples after t - step.
- All series of the scope are aggregated (`sum`), never just the first.
- Topology queries are instant queries at the window's end over the whole window.
- Every value from the request reaches PromQL through `promql.escape`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from domain.model import ComponentScope, MetricFamily, TopologyQuery

#: Labels every topology series carries, one set per side of the edge (`src_*`, `dst_*`).
SIDE_LABELS = ("namespace", "project_uid", "project", "component_uid", "component")
EDGE_METRICS = ("requestCount", "unsuccessfulRequestCount", "meanLatency", "latencyP50", "latencyP90", "latencyP99")


@dataclass(frozen=True, slots=True)
class TopologyQueries:
    """Instant PromQL per metric (keys of EDGE_METRICS). `edges` are grouped by the `src_*` and `dst_*` labels
    of SIDE_LABELS, one series per edge; `nodes` by the `dst_*` labels only: what each component received."""

    edges: dict[str, str]
    nodes: dict[str, str]


class Scheme(Protocol):
    name: str

    def family(self, family: MetricFamily, scope: ComponentScope, step_ns: int) -> dict[str, str]:
        """Range PromQL per series key of the family (`cpuUsage`, ..., `latencyP99`), each giving one series."""
        ...

    def topology(self, query: TopologyQuery) -> TopologyQueries: ...
