"""The embedded backend's runtime topology, derived from client -> server span pairs."""

from __future__ import annotations

import itertools

import pytest

from adapters.embedded.backend import EmbeddedBackend
from domain.model import (
    ComponentScope,
    Identity,
    NodeRef,
    SpanRecord,
    TimeRange,
    Topology,
    TopologyQuery,
)

S = 1_000_000_000
MS = 1_000_000
T0 = 1_700_000_000 * S
RANGE = TimeRange(T0, T0 + 3600 * S)
_ids = itertools.count(1)


def identity(component: str, project: str = "shop", environment: str = "prod") -> Identity:
    return Identity(
        namespace="acme",
        project=project,
        project_uid=f"p-{project}",
        component=component,
        component_uid=f"c-{component}",
        environment=environment,
        environment_uid=f"e-{environment}",
        pod=f"{component}-1",
    )


def ref(component: str, project: str = "shop", kind: str = "component") -> NodeRef:
    return NodeRef(
        kind=kind,  # type: ignore[arg-type]
        component=component,
        component_uid=f"c-{component}",
        project=project,
        project_uid=f"p-{project}",
        namespace="acme",
    )


FRONTEND, CART, PAYMENTS = ref("frontend"), ref("cart"), ref("payments")
LEDGER = ref("ledger", project="billing", kind="external")
GATEWAY = NodeRef(kind="gateway", name="ingress")


class Traces:
    """Builds spans: `serve` a request in a component, optionally `call`ed from a client span of another."""

    def __init__(self) -> None:
        self.spans: list[SpanRecord] = []

    def span(self, trace: str, parent: str, kind: str, who: Identity, start: int, millis: float, **extra) -> str:
        span_id = f"{next(_ids):016x}"
        self.spans.append(
            SpanRecord(trace, span_id, parent, f"{kind} span", kind, start, start + int(millis * MS), who, **extra)
        )
        return span_id

    def serve(
        self,
        trace: str,
        who: Identity,
        millis: float,
        caller: Identity | None = None,
        start: int = T0 + S,
        parent: str = "",
        client_kind: str = "Client",
        server_kind: str = "Server",
        **extra,
    ) -> str:
        """A server span of `millis` under `parent`, or under a new client span of `caller` under `parent`."""
        if caller is not None:
            parent = self.span(trace, parent, client_kind, caller, start, millis + 1)
        return self.span(trace, parent, server_kind, who, start, millis, **extra)


@pytest.fixture
async def backend(tmp_path):
    backend = EmbeddedBackend(tmp_path)
    await backend.write(batch_id="shop", spans=shop_traces())
    yield backend
    backend.close()


def shop_traces() -> list[SpanRecord]:
    """Ten requests enter frontend, which calls cart (10 ms .. 100 ms; 3 fail); four of them go on to payments
    (1 fails), one to ledger in another project. Plus noise that must never be counted."""
    t = Traces()
    frontend, cart, payments = identity("frontend"), identity("cart"), identity("payments")
    ledger = identity("ledger", project="billing")
    cart_outcomes = [
        {"status_code": "error"},
        {"attributes": {"http.response.status_code": 500}},
        {"attributes": {"http.response.status_code": "404"}},
        {"attributes": {"http.response.status_code": "302"}},  # a success
    ]
    for i in range(10):
        trace = f"{i:032x}"
        entry = t.serve(trace, frontend, 200 + i)
        outcome = cart_outcomes[i] if i < len(cart_outcomes) else {}
        call = t.serve(trace, cart, 10 * (i + 1), caller=frontend, parent=entry, **outcome)
        if i < 4:
            outcome = {"attributes": {"http.response.status_code": 503}} if i == 0 else {}
            t.serve(trace, payments, 20, caller=cart, parent=call, **outcome)
        if i == 0:
            t.serve(trace, ledger, 5, caller=cart, parent=call, client_kind="Producer", server_kind="Consumer")
    # Noise: another environment, a request outside the range, a call within one component, an Internal parent,
    # a parentless request into another project (no gateway edge: not the project's ingress), and a call to a
    # workload that carries no component identity.
    t.serve("a" * 32, identity("cart", environment="staging"), 10, caller=identity("frontend", environment="staging"))
    t.serve("b" * 32, cart, 10, caller=frontend, start=T0 - 10 * S)
    t.serve("c" * 32, cart, 10, caller=cart)
    t.serve("d" * 32, cart, 10, caller=frontend, client_kind="Internal")
    t.serve("e" * 32, ledger, 5)
    t.serve("f" * 32, Identity(namespace="acme", environment_uid="e-prod", pod="unlabelled"), 10, caller=cart)
    return t.spans


async def topology(backend: EmbeddedBackend, component: str = "", **flags: bool) -> Topology:
    scope = ComponentScope("acme", project_uid="p-shop", component_uid=component, environment_uid="e-prod")
    return await backend.query_topology(TopologyQuery(scope, RANGE, **flags))


def edges(topo: Topology) -> dict[tuple[NodeRef, NodeRef], tuple[float, float]]:
    """(source, target) -> (request count, unsuccessful count)."""
    return {(e.source, e.target): (e.metrics.request_count, e.metrics.unsuccessful_request_count) for e in topo.edges}


async def test_edges_follow_client_server_pairs_with_exact_counts_and_errors(backend):
    topo = await topology(backend)

    assert edges(topo) == {
        (GATEWAY, FRONTEND): (10, 0),
        (FRONTEND, CART): (10, 3),  # span status error, HTTP 500 and HTTP 404; HTTP 302 is a success
        (CART, PAYMENTS): (4, 1),
        (CART, LEDGER): (1, 0),  # Producer -> Consumer counts as a call too
    }


async def test_edge_latency_is_measured_on_the_server_span_in_seconds_with_nearest_rank_percentiles(backend):
    topo = await topology(backend)
    cart = next(e.metrics for e in topo.edges if (e.source, e.target) == (FRONTEND, CART))

    # Durations 0.01 .. 0.10 s: p50 is the 5th smallest, p90 the 9th, p99 the 10th.
    assert cart.mean_latency == pytest.approx(0.055)
    assert (cart.latency_p50, cart.latency_p90, cart.latency_p99) == pytest.approx((0.05, 0.09, 0.10))
    payments = next(e.metrics for e in topo.edges if e.target == PAYMENTS)
    assert (payments.mean_latency, payments.latency_p50, payments.latency_p99) == pytest.approx((0.02, 0.02, 0.02))


async def test_nodes_carry_names_and_the_metrics_of_every_request_they_received(backend):
    topo = await topology(backend)
    nodes = {node.ref: node.metrics for node in topo.nodes}

    assert set(nodes) == {GATEWAY, FRONTEND, CART, PAYMENTS, LEDGER}
    assert nodes[GATEWAY] is None
    assert (nodes[FRONTEND].request_count, nodes[FRONTEND].latency_p50) == (10, pytest.approx(0.204))
    # cart received the ten calls from frontend, plus the one from itself and the one under an Internal span
    # (neither is an edge, both are requests it served).
    assert (nodes[CART].request_count, nodes[CART].unsuccessful_request_count) == (12, 3)
    assert (nodes[PAYMENTS].request_count, nodes[PAYMENTS].unsuccessful_request_count) == (4, 1)
    assert nodes[LEDGER].request_count == 2  # from cart, and the parentless request


async def test_without_gateways_there_is_no_ingress_edge(backend):
    topo = await topology(backend, include_gateways=False)

    assert set(edges(topo)) == {(FRONTEND, CART), (CART, PAYMENTS), (CART, LEDGER)}
    assert GATEWAY not in {node.ref for node in topo.nodes}


async def test_without_external_both_ends_must_be_in_the_project(backend):
    topo = await topology(backend, include_external=False)

    assert set(edges(topo)) == {(GATEWAY, FRONTEND), (FRONTEND, CART), (CART, PAYMENTS)}
    assert LEDGER not in {node.ref for node in topo.nodes}


async def test_edges_of_another_project_appear_only_when_they_touch_this_one(backend):
    scope = ComponentScope("acme", project_uid="p-billing", environment_uid="e-prod")
    topo = await backend.query_topology(TopologyQuery(scope, RANGE))

    # From billing's point of view cart is the external side; billing's own ingress request is its gateway edge.
    assert edges(topo) == {
        (ref("cart", kind="external"), ref("ledger", project="billing")): (1, 0),
        (GATEWAY, ref("ledger", project="billing")): (1, 0),
    }


async def test_component_filter_keeps_edges_touching_the_component(backend):
    assert set(edges(await topology(backend, component="c-payments"))) == {(CART, PAYMENTS)}
    assert set(edges(await topology(backend, component="c-frontend"))) == {(GATEWAY, FRONTEND), (FRONTEND, CART)}
    assert set(edges(await topology(backend, component="c-cart"))) == {
        (FRONTEND, CART),
        (CART, PAYMENTS),
        (CART, LEDGER),
    }
    topo = await topology(backend, component="c-payments")
    assert {node.ref for node in topo.nodes} == {CART, PAYMENTS}


async def test_server_spans_outside_the_range_are_not_counted(tmp_path):
    backend = EmbeddedBackend(tmp_path)
    t = Traces()
    t.serve("f" * 32, identity("cart"), 10, caller=identity("frontend"), start=RANGE.end_ns - 5 * MS)  # ends after
    t.serve("1" * 32, identity("cart"), 10, caller=identity("frontend"), start=RANGE.start_ns)  # starts at start
    await backend.write(batch_id="edge", spans=t.spans)

    assert edges(await topology(backend)) == {(FRONTEND, CART): (1, 0)}
    backend.close()
