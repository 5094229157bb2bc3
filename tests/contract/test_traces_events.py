"""Traces, spans and Kubernetes events: the same query gives the same answer on every backend."""

from __future__ import annotations

import pytest

from adapters.protocols import SpanNotFound
from devservers.sample import BASE_NS, COMPONENTS, ENVIRONMENTS, PROJECT_UID
from domain.model import ComponentScope, EventsQuery, SpansQuery, TimeRange, TracesQuery
from tests.contract.data import MS, SECOND, WINDOW, cart_scope, event, span


def checkout_traces(ns: str):
    """Three traces: 1 and 2 pass from frontend to cart; 3 is frontend only and fails; 4 lost its root."""
    return [
        span(ns, 1, 1, None, 0, 100, "frontend"),
        span(ns, 1, 2, 1, 10, 50, "cart", kind="Client"),
        span(ns, 1, 3, 2, 20, 30, "cart"),
        span(ns, 2, 4, None, 1000, 100, "frontend"),
        span(ns, 2, 5, 4, 1010, 50, "cart", status="error"),
        span(ns, 3, 6, None, 2000, 10, "frontend", status="error"),
        span(ns, 4, 7, 99, 3000, 20, "cart"),
        span(ns, 4, 8, 7, 3005, 5, "cart"),
    ]


async def test_trace_list_summarises_whole_traces_that_touch_the_scope(subject):
    ns = subject.namespace
    await subject.load(spans=checkout_traces(ns))
    page = await subject.backend.query_traces(TracesQuery(scope=cart_scope(ns), range=WINDOW, sort="asc"))
    assert [t.trace_id[-1] for t in page.items] == ["1", "2", "4"]
    assert page.total == 3
    first, second, orphan = page.items
    assert (first.root_span_id, first.root_span_name, first.root_span_kind) == (f"{1:016x}", "frontend op 1", "Server")
    assert first.name == "frontend op 1"
    assert (first.span_count, first.start_ns, first.end_ns, first.has_errors) == (3, BASE_NS, BASE_NS + 100 * MS, False)
    assert second.has_errors and second.span_count == 2
    # No root span (yet): the earliest span stands in for it.
    assert (orphan.root_span_id, orphan.span_count) == (f"{7:016x}", 2)


async def test_trace_list_order_limit_and_namespace_scope(subject):
    ns = subject.namespace
    await subject.load(spans=checkout_traces(ns))
    desc = await subject.backend.query_traces(TracesQuery(scope=ComponentScope(ns), range=WINDOW, limit=2))
    assert [t.trace_id[-1] for t in desc.items] == ["4", "3"]
    assert desc.total == 4
    assert desc.items[1].has_errors
    none = await subject.backend.query_traces(TracesQuery(scope=ComponentScope("other" + ns), range=WINDOW))
    assert (none.items, none.total) == ([], 0)


async def test_a_trace_matches_only_by_spans_wholly_inside_the_window(subject):
    ns = subject.namespace
    await subject.load(spans=checkout_traces(ns))
    # Cart's span of trace 2 runs 1010..1060 ms; a window ending at 1059 ms leaves it out.
    window = TimeRange(BASE_NS + 1000 * MS, BASE_NS + 1059 * MS)
    page = await subject.backend.query_traces(TracesQuery(scope=cart_scope(ns), range=window))
    assert page.items == [] and page.total == 0


async def test_spans_of_a_trace_in_scope_sorted_and_limited(subject):
    ns = subject.namespace
    await subject.load(spans=checkout_traces(ns))
    trace = f"{1:032x}"
    cart = await subject.backend.query_spans(SpansQuery(trace, cart_scope(ns), WINDOW, sort="asc"))
    assert [s.span_id[-1] for s in cart.items] == ["2", "3"] and cart.total == 2
    everywhere = await subject.backend.query_spans(SpansQuery(trace, ComponentScope(ns), WINDOW, limit=2, sort="desc"))
    assert [s.span_id[-1] for s in everywhere.items] == ["3", "2"] and everywhere.total == 3


async def test_span_details_round_trip_and_missing_span(subject):
    ns = subject.namespace
    spans = checkout_traces(ns)
    await subject.load(spans=spans)
    got = await subject.backend.get_span(f"{2:032x}", f"{5:016x}")
    want = spans[4]
    assert (got.name, got.kind, got.parent_span_id, got.start_ns, got.end_ns) == (
        want.name,
        want.kind,
        want.parent_span_id,
        want.start_ns,
        want.end_ns,
    )
    assert (got.status_code, got.status_message) == ("error", "boom")
    assert got.attributes == {"http.route": "/cart", "retries": 2}
    assert got.resource["service.name"] == "cart"
    assert (got.identity.component_uid, got.identity.namespace) == (COMPONENTS["cart"], ns)
    with pytest.raises(SpanNotFound):
        await subject.backend.get_span(f"{2:032x}", f"{99:016x}")


async def test_events_scope_order_fields_and_cursor(subject):
    ns = subject.namespace
    await subject.load(
        events=[
            event(ns, 1 * SECOND, "Scheduled"),
            event(ns, 2 * SECOND, "Pulled"),
            event(ns, 3 * SECOND, "BackOff", type_="Warning"),
            event(ns, 4 * SECOND, "Started", component="frontend"),
            event(ns, 5 * SECOND, "Dev", environment="dev"),
        ]
    )
    page = await subject.backend.query_events(EventsQuery(scope=cart_scope(ns), range=WINDOW, limit=2, sort="asc"))
    assert [e.reason for e in page.items] == ["Scheduled", "Pulled"] and page.total == 3
    rest = await subject.backend.query_events(
        EventsQuery(scope=cart_scope(ns), range=WINDOW, limit=2, sort="asc", cursor=page.next_cursor)
    )
    assert [e.reason for e in rest.items] == ["BackOff"] and not rest.next_cursor
    backoff = rest.items[0]
    assert (backoff.type, backoff.message, backoff.object_kind, backoff.object_name, backoff.object_namespace) == (
        "Warning",
        "BackOff happened",
        "Pod",
        "cart-prod-0",
        f"dp-{ns}-prod",
    )
    assert backoff.identity.component_uid == COMPONENTS["cart"]
    project = ComponentScope(ns, PROJECT_UID, "", ENVIRONMENTS["prod"])
    everything = await subject.backend.query_events(EventsQuery(scope=project, range=WINDOW))
    assert [e.reason for e in everything.items] == ["Started", "BackOff", "Pulled", "Scheduled"]
