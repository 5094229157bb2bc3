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


@dataclass(frozen=True, slots=True)
class HistogramQuantiles:
    """Series keys that are quantiles of one classic histogram: `buckets` is range PromQL giving one series per
    `le` bound (the bucket rates summed `by (le)`), `keys` maps each series key to its quantile.

    The backend asks for the buckets once and computes every quantile itself (quantile.py), which is what
    `histogram_quantile(q, buckets)` per key gives (`expressions`), for a third of the work in Prometheus."""

    buckets: str
    keys: dict[str, float]

    def expressions(self) -> dict[str, str]:
        return {key: f"histogram_quantile({q}, {self.buckets})" for key, q in self.keys.items()}


@dataclass(frozen=True, slots=True)
class FamilyQueries:
    """A family's series: `series` is range PromQL per key, each giving one series; `quantiles` are the keys
    computed from a histogram's buckets, if the family has any."""

    series: dict[str, str]
    quantiles: HistogramQuantiles | None = None

    def keys(self) -> list[str]:
        """The family's series keys, in its order."""
        return [*self.series, *(self.quantiles.keys if self.quantiles else ())]

    def expressions(self) -> dict[str, str]:
        """Every key as a PromQL query of its own, in the family's order (rule files; the direct queries the
        benchmark compares with)."""
        return {**self.series, **(self.quantiles.expressions() if self.quantiles else {})}


class Scheme(Protocol):
    name: str

    def family_queries(self, family: MetricFamily, scope: ComponentScope, step_ns: int) -> FamilyQueries:
        """How to get the family's series (`cpuUsage`, ..., `latencyP99`) with as little work as possible."""
        ...

    def family(self, family: MetricFamily, scope: ComponentScope, step_ns: int) -> dict[str, str]:
        """Range PromQL per series key of the family, each giving one series: `family_queries(...).expressions()`."""
        ...

    def topology(self, query: TopologyQuery) -> TopologyQueries: ...
