"""Runtime topology in the embedded backend, derived from spans.

Who called whom is read off the traces: a Client (or Producer) span in component A that is the parent of a
Server (or Consumer) span in component B is one request over the edge A -> B. A Server span with no parent is
a request that entered from outside, drawn as coming from the ingress gateway. Everything is measured on the
receiving side (the server spans), as OpenChoreo's Prometheus adapter measures Hubble's `reporter="server"`
series, and everything is aggregated in SQL.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from adapters.embedded.scope import streams_in_scope
from domain import semconv
from domain.model import ComponentScope, EdgeMetrics, NodeRef, Topology, TopologyEdge, TopologyNode, TopologyQuery

_NS_PER_SECOND = 1e9
#: Latency percentiles as integer percents, so the rank test is exact integer arithmetic.
_PERCENTS = (50, 90, 99)
_GATEWAY = NodeRef(kind="gateway", name="ingress")

#: A side of an edge in SQL: kind ('component' or 'gateway'), namespace, project uid, component uid (the
#: identity), then the project and component names (labels, taken as the max over the side's streams).
_SIDE = ("kind", "namespace", "project_uid", "component_uid")
_LABELS = ("project", "component")

#: Server spans received in the scope's namespace and environment and answered within the range (start, end],
#: wherever they started, as Hubble's response counters count them; with what the aggregates need: the duration in seconds and whether the request failed (span status error or HTTP status >= 400).
_RECEIVED = f"""
  SELECT r.trace_id, r.parent_span_id, (r.end_ns - r.start_ns) / {_NS_PER_SECOND} AS seconds,
    (r.status_code = 'error'
     OR coalesce(CAST(json_extract(r.attributes, '$."{semconv.HTTP_STATUS_ATTRIBUTE}"') AS INTEGER), 0) >= 400)
     AS failed,
    'component' AS dst_kind, s.namespace AS dst_namespace, s.project_uid AS dst_project_uid,
    s.component_uid AS dst_component_uid, s.project AS dst_project, s.component AS dst_component
  FROM spans r JOIN streams s ON s.id = r.stream_id
  WHERE r.kind IN ('Server', 'Consumer') AND r.end_ns > :start AND r.end_ns <= :end
    AND r.stream_id IN (SELECT value FROM json_each(:streams))
    AND s.component_uid != ''
"""

#: One row per request over an edge: calls from a Client/Producer span of another component, and (when
#: gateways are wanted) parentless requests. Then the rules: a gateway edge must lead into the project; a call
#: must touch the project, and without `external` stay inside it; with a component, the edge must touch it.
_EDGE_REQUESTS = f"""
  WITH received AS ({_RECEIVED}),
  calls AS (
    SELECT 'component' AS src_kind, s.namespace AS src_namespace, s.project_uid AS src_project_uid,
      s.component_uid AS src_component_uid, s.project AS src_project, s.component AS src_component, d.*
    FROM received d
    JOIN spans c ON c.trace_id = d.trace_id AND c.span_id = d.parent_span_id
    JOIN streams s ON s.id = c.stream_id
    WHERE d.parent_span_id != '' AND c.kind IN ('Client', 'Producer')
      AND s.component_uid != '' AND s.component_uid != d.dst_component_uid
    UNION ALL
    SELECT 'gateway', '', '', '', '', '', d.*
    FROM received d
    WHERE :gateways AND d.parent_span_id = ''
  )
  SELECT * FROM calls
  WHERE CASE src_kind
      WHEN 'gateway' THEN dst_project_uid = :project
      ELSE (src_project_uid = :project OR dst_project_uid = :project)
        AND (:external OR (src_project_uid = :project AND dst_project_uid = :project))
    END
    AND (:component = '' OR src_component_uid = :component OR dst_component_uid = :component)
"""


def _aggregate(requests_sql: str, sides: tuple[str, ...]) -> str:
    """Per group of `sides` (column prefixes, e.g. src and dst): each side's identity and labels, then the
    request count, failures, mean latency and exact percentiles of the durations, all in seconds.

    Percentiles use the nearest-rank method: p is the smallest duration d such that at least p% of the
    requests took <= d, i.e. the ceil(p/100 * n)-th smallest (an observed value, never an interpolation).
    """
    keys = ", ".join(f"{side}_{column}" for side in sides for column in _SIDE)
    columns = ", ".join(
        ", ".join([*(f"{side}_{column}" for column in _SIDE), *(f"max({side}_{column})" for column in _LABELS)])
        for side in sides
    )
    percentiles = ", ".join(f"min(CASE WHEN nth * 100 >= {p} * n THEN seconds END)" for p in _PERCENTS)
    return f"""
      WITH requests AS ({requests_sql}),
      ranked AS (
        SELECT *, row_number() OVER by_group AS nth, count(*) OVER (PARTITION BY {keys}) AS n
        FROM requests WINDOW by_group AS (PARTITION BY {keys} ORDER BY seconds)
      )
      SELECT {columns}, count(*), sum(failed), avg(seconds), {percentiles}
      FROM ranked GROUP BY {keys} ORDER BY {keys}
    """


_SIDE_WIDTH = len(_SIDE) + len(_LABELS)


def _parse(row: tuple[Any, ...], side_count: int) -> tuple[list[tuple[str, ...]], EdgeMetrics]:
    """A row of `_aggregate`: its sides (kind, namespace, project_uid, component_uid, project, component each)
    and its metrics."""
    sides = [tuple(row[i * _SIDE_WIDTH : (i + 1) * _SIDE_WIDTH]) for i in range(side_count)]
    count, failed, mean, p50, p90, p99 = row[side_count * _SIDE_WIDTH :]
    return sides, EdgeMetrics(float(count), float(failed), mean, p50, p90, p99)


def query_topology(conn: sqlite3.Connection, query: TopologyQuery) -> Topology:
    """Edges between components (and from the ingress gateway) seen in the range, with their metrics, and
    the nodes they touch. A component node's metrics cover every request it received in the scope's
    namespace and environment within the range, not only those over the edges drawn."""
    params = {
        "start": query.range.start_ns,
        "end": query.range.end_ns,
        "streams": _receiving_streams(conn, query),
        "project": query.scope.project_uid,
        "component": query.scope.component_uid,
        "gateways": query.include_gateways,
        "external": query.include_external,
    }
    edge_rows = [_parse(row, 2) for row in conn.execute(_aggregate(_EDGE_REQUESTS, ("src", "dst")), params)]
    node_rows = (_parse(row, 1) for row in conn.execute(_aggregate(_RECEIVED, ("dst",)), params))
    received = {sides[0][: len(_SIDE)]: metrics for sides, metrics in node_rows}
    nodes: dict[tuple[str, ...], TopologyNode] = {}
    for sides, _ in edge_rows:
        for side in sides:
            key = side[: len(_SIDE)]
            if key not in nodes:
                nodes[key] = TopologyNode(_node_ref(side, query), received.get(key) if key[0] != "gateway" else None)
    edges = [TopologyEdge(_node_ref(src, query), _node_ref(dst, query), metrics) for (src, dst), metrics in edge_rows]
    return Topology(nodes=list(nodes.values()), edges=edges)


def _receiving_streams(conn: sqlite3.Connection, query: TopologyQuery) -> str:
    """The streams whose server spans count, as a JSON array: the scope's namespace and environment, in any
    project (a call from the project into another one is an edge too). Resolved with the shared scope filter
    first, so the main statement can use named parameters."""
    where = ComponentScope(query.scope.namespace, environment_uid=query.scope.environment_uid)
    streams_sql, params = streams_in_scope(where)
    return json.dumps([stream_id for (stream_id,) in conn.execute(streams_sql, params)])


def _node_ref(side: tuple[str, ...], query: TopologyQuery) -> NodeRef:
    """The gateway, a component of the scope's project, or an `external` component of another project."""
    kind, namespace, project_uid, component_uid, project, component = side
    if kind == "gateway":
        return _GATEWAY
    return NodeRef(
        kind="component" if project_uid == query.scope.project_uid else "external",
        component=component,
        component_uid=component_uid,
        project=project,
        project_uid=project_uid,
        namespace=namespace,
    )
