"""Topology: the same HTTP requests, as spans in the embedded backend and as Cilium Hubble series (joined to
`kube_pod_labels`) in a real Prometheus with the `kubernetes` scheme, give the same Topology.

The requests (tests/contract/topology_data.py): in OpenChoreo namespace `oc-topo-<token>`, environment dev,
project shop has web, api (two pods) and cart, project billing has ledger; crm lives in another OpenChoreo
namespace. Calls web->api, api->cart, api->ledger, ledger->web and crm->api are edges; api-2->api-1 (a
component calling itself), an unlabelled pod calling cart and the ingress gateway calling web are not, but
are in the receiving nodes' metrics; api->crm is only seen from crm's namespace. Prod has web->api of its
own; staging has traffic only before and after the window; canary has requests that started before the
window and were answered in it. Some requests fail with 4xx/5xx, some succeed
with 201/301. Every name and UID carries a per-process token, so the session's Prometheus is shared safely;
the window is the 30 minutes ending on a minute boundary 90 minutes ago, with history 10 minutes either side.

Why the two backends can agree exactly on this data (and not on just any data):

- Windows. A request counts in the window it was answered in, (START, END]: that is when Hubble counts it,
  and the embedded backend takes the server span's end. Requests before the window end before START,
  requests after it start after END, some start inside and end after END (neither backend counts them), and
  in canary some start before START and end inside (both count them).
- No extrapolation. Hubble is scraped every 15 s on a grid with samples exactly at START and END, and every
  series exists from before START. Prometheus 2.42 range selectors include both ends, so `increase(x[D])`
  with D = END - START at END is exactly x(END) - x(START) (the extrapolation factor is 1).
- Percentiles. Durations are Hubble bucket bounds or lie in buckets no rank lands in, and every edge's and
  every node's counts are multiples of 100 with 0.5 n, 0.9 n and 0.99 n on cumulative bucket counts whose
  bucket holds its upper bound: the nearest rank (embedded) is that bound, and so is histogram_quantile's
  linear interpolation (Prometheus). `test_the_data_makes_exact_agreement_possible` checks this.
- Identity. Hubble is measured on the receiving side (`reporter="server"`, client-side duplicates with other
  values are decoys); spans carry the same identity as the pods' OpenChoreo labels, pod names included.
- Gateways. The embedded backend draws parentless server spans as an edge from the ingress gateway; the
  kubernetes scheme cannot attribute requests from unlabelled pods and has no gateway node. Queries compare
  with `include_gateways=False`; `test_gateway_edges_are_what_only_the_embedded_backend_draws` pins the
  difference down to exactly the gateway edges and node.

Compared: edges as (source, target) NodeRefs (kind, component, component_uid, project, project_uid, namespace)
with request and unsuccessful counts exactly, mean latency and p50/p90/p99 within rel 1e-9; nodes as the same
set of NodeRefs with the same received metrics. Both are also checked against the expectation computed from
the requests, so a bug in both at once does not pass either.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from adapters import registry
from adapters.embedded.backend import EmbeddedBackend
from adapters.prometheus.backend import PrometheusBackend
from adapters.prometheus.client import PrometheusConfig
from adapters.prometheus.kubernetes import KubernetesScheme
from domain.model import ComponentScope, EdgeMetrics, NodeRef, Topology, TopologyQuery, TracesQuery
from tests.contract import topology_data as data
from tests.contract.topology_data import (
    API,
    BILLING,
    CANARY,
    CART,
    CRM,
    DEV,
    LEDGER,
    OC_NS,
    PARTNER,
    PARTNER_ENV,
    PARTNER_NS,
    PROD,
    SHOP,
    STAGING,
    WEB,
    WINDOW,
)


@pytest.fixture(scope="module")
def prometheus_url(prometheus_server) -> str:  # noqa: ANN001
    prometheus_server.backfill(data.openmetrics())
    return prometheus_server.url


@pytest.fixture
async def prometheus(prometheus_url: str) -> AsyncIterator[PrometheusBackend]:
    backend = PrometheusBackend(PrometheusConfig(prometheus_url, timeout_s=20), KubernetesScheme())
    yield backend
    await backend.close()


@pytest.fixture
async def embedded(tmp_path: Path) -> AsyncIterator[EmbeddedBackend]:
    backend = EmbeddedBackend(tmp_path / "data")
    records = data.spans()
    for chunk in range(0, len(records), 1000):
        await backend.write(batch_id=uuid.uuid4().hex, spans=records[chunk : chunk + 1000])
    yield backend
    backend.close()


def query(scope: ComponentScope, external: bool = True, gateways: bool = False) -> TopologyQuery:
    return TopologyQuery(scope, WINDOW, include_gateways=gateways, include_external=external)


QUERIES = {
    "project": query(ComponentScope(OC_NS, SHOP, environment_uid=DEV)),
    "project-internal": query(ComponentScope(OC_NS, SHOP, environment_uid=DEV), external=False),
    "component": query(ComponentScope(OC_NS, SHOP, API.uid, DEV)),
    "component-internal": query(ComponentScope(OC_NS, SHOP, API.uid, DEV), external=False),
    "component-leaf": query(ComponentScope(OC_NS, SHOP, CART.uid, DEV)),
    "other-project": query(ComponentScope(OC_NS, BILLING, environment_uid=DEV)),
    "other-project-internal": query(ComponentScope(OC_NS, BILLING, environment_uid=DEV), external=False),
    "other-namespace": query(ComponentScope(PARTNER_NS, PARTNER, environment_uid=PARTNER_ENV)),
    "prod": query(ComponentScope(OC_NS, SHOP, environment_uid=PROD)),
    "staging-empty": query(ComponentScope(OC_NS, SHOP, environment_uid=STAGING)),
}

#: The edges each query must show (component names, source -> target): a bug shared by both backends that
#: left edges out, or showed more, would not hide behind their agreement.
EDGES = {
    "project": {(WEB, API), (CRM, API), (API, CART), (API, LEDGER), (LEDGER, WEB)},
    "project-internal": {(WEB, API), (API, CART)},
    "component": {(WEB, API), (CRM, API), (API, CART), (API, LEDGER)},
    "component-internal": {(WEB, API), (API, CART)},
    "component-leaf": {(API, CART)},
    "other-project": {(API, LEDGER), (LEDGER, WEB)},
    "other-project-internal": set(),
    "other-namespace": {(API, CRM)},
    "prod": {(WEB, API)},
    "staging-empty": set(),
}

#: Where the requests answered in the window include some that started before it.
CANARY_QUERY = query(ComponentScope(OC_NS, SHOP, environment_uid=CANARY))


# ============================================================================================ comparing


Edges = dict[tuple[NodeRef, NodeRef], EdgeMetrics]
Nodes = dict[NodeRef, EdgeMetrics | None]


def normalized(topology: Topology) -> tuple[Edges, Nodes]:
    """Edges by (source, target) and nodes by ref; order is not part of the contract, duplicates are bugs."""
    edges = {(e.source, e.target): e.metrics for e in topology.edges}
    nodes = {n.ref: n.metrics for n in topology.nodes}
    assert len(edges) == len(topology.edges), "an edge appears twice"
    assert len(nodes) == len(topology.nodes), "a node appears twice"
    return edges, nodes


def assert_metrics_equal(actual: EdgeMetrics | None, expected: EdgeMetrics | None, what: Any) -> None:
    if expected is None or actual is None:
        assert actual == expected, what
        return
    assert actual.request_count == expected.request_count, what
    assert actual.unsuccessful_request_count == expected.unsuccessful_request_count, what
    latencies = ("mean_latency", "latency_p50", "latency_p90", "latency_p99")
    got = {k: getattr(actual, k) for k in latencies}
    want = {k: getattr(expected, k) for k in latencies}
    assert got == pytest.approx(want, rel=1e-9), what


def assert_same_topology(actual: Topology, expected: Topology, who: str) -> None:
    actual_edges, actual_nodes = normalized(actual)
    expected_edges, expected_nodes = normalized(expected)
    assert sorted(actual_edges, key=repr) == sorted(expected_edges, key=repr), f"{who}: edges"
    for key, metrics in expected_edges.items():
        assert_metrics_equal(actual_edges[key], metrics, (who, "edge", key[0].component, key[1].component))
    assert sorted(actual_nodes, key=repr) == sorted(expected_nodes, key=repr), f"{who}: nodes"
    for key, metrics in expected_nodes.items():
        assert_metrics_equal(actual_nodes[key], metrics, (who, "node", key.component))


# ============================================================================================ the contract


def test_the_data_makes_exact_agreement_possible() -> None:
    """Every edge and node of every query: the nearest rank equals histogram_quantile's interpolation, and
    the requests are where the module docstring says they are (topology_data.all_requests checks that)."""
    checked = 0
    for q in (*QUERIES.values(), CANARY_QUERY):
        mine = data.received(q)
        groups = [[r for r in mine if r.flow.dst.component == c] for c in {r.flow.dst.component for r in mine}]
        for e in data.expected_topology(q).edges:
            ends = (e.source.component_uid, e.target.component_uid)
            calls = [r for r in mine if r.flow.src.component is not None]
            groups.append([r for r in calls if (r.flow.src.component.uid, r.flow.dst.component.uid) == ends])
        for group in groups:
            assert len(group) % 100 == 0, len(group)
            seconds = [r.seconds for r in group]
            for quantile in (0.5, 0.9, 0.99):
                assert data.nearest_rank(seconds, quantile) == pytest.approx(
                    data.histogram_quantile(quantile, seconds), rel=1e-12
                )
            checked += 1
    assert checked > 20


@pytest.mark.parametrize("name", list(QUERIES))
async def test_both_backends_give_the_same_topology(
    embedded: EmbeddedBackend, prometheus: PrometheusBackend, name: str
) -> None:
    q = QUERIES[name]
    from_spans = await embedded.query_topology(q)
    from_hubble = await prometheus.query_topology(q)
    assert_same_topology(from_hubble, from_spans, f"prometheus vs embedded ({name})")
    expected = data.expected_topology(q)
    assert {(e.source.component_uid, e.target.component_uid) for e in expected.edges} == {
        (s.uid, d.uid) for s, d in EDGES[name]
    }
    assert_same_topology(from_spans, expected, f"embedded vs expected ({name})")
    assert_same_topology(from_hubble, expected, f"prometheus vs expected ({name})")


async def test_node_metrics_count_everything_received(embedded: EmbeddedBackend, prometheus: PrometheusBackend) -> None:
    """api's node counts its own calls to itself and crm's; web's the gateway's and ledger's; cart's the
    unlabelled pod's -- none of which is an edge of the internal view."""
    q = QUERIES["project-internal"]
    for backend in (embedded, prometheus):
        topology = await backend.query_topology(q)
        edges, nodes = normalized(topology)
        for component, extra in ((API, 200), (WEB, 300), (CART, 100)):
            node = nodes[data.ref(component, SHOP)]
            assert node is not None
            into = [m.request_count for (_, target), m in edges.items() if target.component_uid == component.uid]
            over_edges = sum(into)
            assert node.request_count == over_edges + extra, (type(backend).__name__, component.name)


async def test_gateway_edges_are_what_only_the_embedded_backend_draws(
    embedded: EmbeddedBackend, prometheus: PrometheusBackend
) -> None:
    """With gateways wanted, the embedded backend adds gateway -> web (and the gateway node); the kubernetes
    scheme cannot tell the gateway from any unlabelled pod and shows the same as without gateways."""
    q = dataclasses.replace(QUERIES["project"], include_gateways=True)
    from_spans = await embedded.query_topology(q)
    from_hubble = await prometheus.query_topology(q)
    gateway = [e for e in from_spans.edges if e.source.kind == "gateway"]
    assert [(e.source.name, e.target.component) for e in gateway] == [("ingress", "web")]
    assert gateway[0].metrics.request_count == data.F_GATEWAY_WEB.count
    without = Topology(
        nodes=[n for n in from_spans.nodes if n.ref.kind != "gateway"],
        edges=[e for e in from_spans.edges if e.source.kind != "gateway"],
    )
    assert len(without.nodes) == len(from_spans.nodes) - 1
    assert_same_topology(from_hubble, without, "prometheus vs embedded without gateways")
    assert_same_topology(from_hubble, data.expected_topology(q), "prometheus vs expected")


# ============================================================================================ window edges


async def test_prometheus_counts_the_requests_answered_in_the_window(prometheus: PrometheusBackend) -> None:
    """Hubble's counters sampled at START and END count the responses in (START, END], wherever the request
    started: in canary, 50 of the 100 started up to 2 s before START."""
    topology = await prometheus.query_topology(CANARY_QUERY)
    assert_same_topology(topology, data.expected_topology(CANARY_QUERY), "prometheus vs expected (canary)")
    (edge,) = topology.edges
    assert edge.metrics.request_count == 100


async def test_a_request_started_before_the_window_and_answered_in_it(
    embedded: EmbeddedBackend, prometheus: PrometheusBackend
) -> None:
    """Both count a request in the window it was answered in, as Hubble's counters do."""
    from_spans = await embedded.query_topology(CANARY_QUERY)
    from_hubble = await prometheus.query_topology(CANARY_QUERY)
    assert_same_topology(from_spans, from_hubble, "embedded vs prometheus (canary)")


#: Where a backend's documented semantics differ from the contract's here, and what is asserted instead.
DIFFERS = {
    "datadog": "runtime topology is not read from Datadog (adapters/datadog/metrics.py TOPOLOGY_UNSUPPORTED: its "
    "service map is keyed by Datadog `service`, not component UIDs, and has no per-edge percentiles); with "
    "Datadog enabled the plane keeps spans in the embedded store too, and derives the topology there",
}


async def test_with_datadog_the_plane_derives_topology_from_the_spans_it_ships(
    datadog_backend: registry.Backend, tmp_path: Path
) -> None:
    """DIFFERS: Datadog serves the traces but no topology; the same spans, shipped through the plane's sink,
    reach Datadog's trace intake and the embedded store, whose topology is the expected one."""
    from tests.contract.conftest import CONTEXT

    entry = registry.entries()["embedded"]
    embedded_backend = entry.create(entry.settings(data_dir=tmp_path / "data"), CONTEXT)
    plane = registry.Plane([embedded_backend, datadog_backend])
    try:
        assert datadog_backend.roles.topology is None
        with pytest.raises(NotImplementedError, match="runtime topology"):
            await datadog_backend.roles.metrics.query_topology(QUERIES["project"])  # type: ignore[union-attr]
        assert plane.chosen("traces") is datadog_backend and plane.chosen("topology") is embedded_backend
        records = data.spans()
        sink = plane.sink()
        for chunk in range(0, len(records), 1000):
            result = await sink.write(batch_id=uuid.uuid4().hex, spans=records[chunk : chunk + 1000])
            assert result.outcome == "delivered" and not result.count, result
        for name in ("project", "component-internal"):
            q = QUERIES[name]
            assert_same_topology(await plane.served("topology").query_topology(q), data.expected_topology(q), name)
        traces = await plane.served("traces").query_traces(
            TracesQuery(ComponentScope(OC_NS, SHOP, API.uid, DEV), WINDOW, limit=5)
        )
        assert traces.items, "the spans reached Datadog too"
    finally:
        await embedded_backend.close()


@pytest.mark.parametrize("gateways", [False, True])
async def test_the_metrics_adapter_contract_gives_the_embedded_topology(
    embedded: EmbeddedBackend, gateways: bool
) -> None:
    """adapters/http -> `observer adapter serve`'s metrics app (real HTTP on loopback) -> the same embedded store:
    every query's topology, gateway edges included, exactly (and the expected one)."""
    from dataclasses import replace

    from devservers.local import serving
    from observer.adapter_serve import metrics_app
    from tests.contract.conftest import built

    with serving(metrics_app(embedded, embedded)) as url:
        http = await built("http", metrics_url=url)
        try:
            for name, q in QUERIES.items():
                q = replace(q, include_gateways=gateways)
                direct = await embedded.query_topology(q)
                assert_same_topology(await http.roles.topology.query_topology(q), direct, f"http ({name})")  # type: ignore[union-attr]
                assert normalized(await http.roles.topology.query_topology(q)) == normalized(direct), name  # type: ignore[union-attr]
        finally:
            await http.close()
