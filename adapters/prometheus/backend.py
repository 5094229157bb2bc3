"""The Prometheus backend: MetricsBackend (the `resource` and `http` families, runtime topology) over any
scheme, and the metrics half of TelemetrySink (remote write) when a writer is given.

The PromQL of one request runs concurrently; results are shaped here, the same way for every scheme.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from typing import Protocol

from adapters.prometheus.client import PrometheusClient, PrometheusConfig, Series
from adapters.prometheus.schemes import EDGE_METRICS, SIDE_LABELS, Scheme
from adapters.protocols import WriteResult
from domain.model import (
    EdgeMetrics,
    EventRecord,
    LogRecord,
    MetricPoint,
    MetricSeries,
    MetricsQuery,
    NodeRef,
    SpanRecord,
    Topology,
    TopologyEdge,
    TopologyNode,
    TopologyQuery,
)

Side = tuple[str, ...]  # the SIDE_LABELS values of one end of an edge


class MetricsWriter(Protocol):
    async def write(self, points: Sequence[MetricPoint]) -> WriteResult: ...

    async def close(self) -> None: ...


class PrometheusBackend:
    def __init__(self, config: PrometheusConfig, scheme: Scheme, writer: MetricsWriter | None = None):
        self.client = PrometheusClient(config)
        self.scheme = scheme
        self.writer = writer

    async def close(self) -> None:
        if self.writer is not None:
            await self.writer.close()
        await self.client.close()

    # ------------------------------------------------------------------------------------------- metrics

    async def query_metrics(self, query: MetricsQuery) -> MetricSeries:
        expressions = self.scheme.family(query.family, query.scope, query.step_ns)
        window = query.range
        results = await asyncio.gather(
            *(
                self.client.query_range(expr, window.start_ns, window.end_ns, query.step_ns)
                for expr in expressions.values()
            )
        )
        out: MetricSeries = {}
        for key, series in zip(expressions, results):
            points = _summed(series)
            if points:
                out[key] = points
        return out

    # ------------------------------------------------------------------------------------------- topology

    async def query_topology(self, query: TopologyQuery) -> Topology:
        queries = self.scheme.topology(query)
        at = query.range.end_ns
        keys = [("edges", key) for key in queries.edges] + [("nodes", key) for key in queries.nodes]
        exprs = [*queries.edges.values(), *queries.nodes.values()]
        results = dict(zip(keys, await asyncio.gather(*(self.client.query(expr, at) for expr in exprs))))

        edge_values: dict[str, dict[tuple[Side, Side], float]] = defaultdict(dict)
        node_values: dict[str, dict[Side, float]] = defaultdict(dict)
        for (kind, key), vector in results.items():
            for labels, value in vector:
                dst = _side(labels, "dst")
                if kind == "edges":
                    edge_values[key][(_side(labels, "src"), dst)] = value
                else:
                    node_values[key][dst] = value

        scope = query.scope
        edges: list[TopologyEdge] = []
        nodes: dict[Side, TopologyNode] = {}
        for (src, dst), count in sorted(edge_values["requestCount"].items()):
            if count <= 0 or not _allowed(src, dst, query):
                continue
            metrics = _metrics({key: edge_values[key].get((src, dst), 0.0) for key in EDGE_METRICS})
            edges.append(TopologyEdge(_ref(src, scope.project_uid), _ref(dst, scope.project_uid), metrics))
            for side in (src, dst):
                if side not in nodes:
                    received = {key: node_values[key].get(side) for key in EDGE_METRICS}
                    node_metrics = _metrics(received) if received["requestCount"] else None
                    nodes[side] = TopologyNode(_ref(side, scope.project_uid), node_metrics)
        return Topology(nodes=list(nodes.values()), edges=edges)

    # ------------------------------------------------------------------------------------------- ingest

    async def write(
        self,
        *,
        batch_id: str,
        logs: Sequence[LogRecord] = (),
        events: Sequence[EventRecord] = (),
        spans: Sequence[SpanRecord] = (),
        metrics: Sequence[MetricPoint] = (),
    ) -> WriteResult:
        """Metrics only, by remote write; other signals belong to other backends. A redelivered batch is
        harmless: Prometheus ignores a sample it already has for the same series and timestamp."""
        if metrics and self.writer is not None:
            return await self.writer.write(metrics)
        return WriteResult.delivered()


def _summed(series: list[Series]) -> list[tuple[int, float]]:
    """One series from several (a scheme's PromQL aggregates already; this only guards against a split)."""
    if len(series) == 1:
        return series[0][1]
    totals: dict[int, float] = defaultdict(float)
    for _, samples in series:
        for ts, value in samples:
            totals[ts] += value
    return sorted(totals.items())


def _side(labels: dict[str, str], prefix: str) -> Side:
    return tuple(labels.get(f"{prefix}_{name}", "") for name in SIDE_LABELS)


def _allowed(src: Side, dst: Side, query: TopologyQuery) -> bool:
    """The embedded backend's rules: an edge touches the scope's project, stays inside it unless external
    calls are wanted, and touches the component when one is given; both ends are known components."""
    project = query.scope.project_uid
    src_project, dst_project = src[1], dst[1]
    src_component, dst_component = src[3], dst[3]
    if not src_component or not dst_component or src_component == dst_component:
        return False
    if project not in (src_project, dst_project):
        return False
    if not query.include_external and not (src_project == project and dst_project == project):
        return False
    component = query.scope.component_uid
    return not component or component in (src_component, dst_component)


def _ref(side: Side, project_uid: str) -> NodeRef:
    namespace, side_project_uid, project, component_uid, component = side
    return NodeRef(
        kind="component" if side_project_uid == project_uid else "external",
        component=component,
        component_uid=component_uid,
        project=project,
        project_uid=side_project_uid,
        namespace=namespace,
    )


def _metrics(values: dict[str, float | None]) -> EdgeMetrics:
    def get(key: str) -> float:
        return float(values.get(key) or 0.0)

    return EdgeMetrics(
        request_count=get("requestCount"),
        unsuccessful_request_count=get("unsuccessfulRequestCount"),
        mean_latency=get("meanLatency"),
        latency_p50=get("latencyP50"),
        latency_p90=get("latencyP90"),
        latency_p99=get("latencyP99"),
    )
