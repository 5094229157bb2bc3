"""The query extensions for traces and their logs: `traceId` on logs, `minDurationMs` and `errorsOnly` on the
trace list. Every backend answers the same; where a backend applies a filter after the fact (adapters/http,
whose contracts cannot express them; OpenSearch and Datadog for the trace filters, which are on whole traces)
these small data sets are within its bound, so the answers are exact there too."""

from __future__ import annotations

from dataclasses import replace

import pytest

from adapters.protocols import InvalidCursor
from domain.model import ComponentScope, LogsQuery, TracesQuery
from tests.contract.data import MS, SECOND, WINDOW, cart_scope, log
from tests.contract.test_traces_events import checkout_traces

TRACE_A = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACE_B = "0af7651916cd43dd8448eb211c80319c"


def _traced(ns: str):
    lines = [
        replace(log(ns, 1 * SECOND, "a: received"), trace_id=TRACE_A, span_id="00f067aa0ba902b7"),
        replace(log(ns, 2 * SECOND, "b: received"), trace_id=TRACE_B, span_id="00f067aa0ba902b8"),
        log(ns, 3 * SECOND, "no trace at all"),
        replace(log(ns, 4 * SECOND, "a: failed", "ERROR"), trace_id=TRACE_A, span_id="00f067aa0ba902b9"),
        replace(log(ns, 5 * SECOND, "a: in frontend", component="frontend"), trace_id=TRACE_A, span_id="1" * 16),
    ]
    return lines


def bodies(page) -> list[str]:
    return [record.body for record in page.items]


async def test_logs_of_one_trace(subject):
    ns = subject.namespace
    await subject.load(logs=_traced(ns))
    query = LogsQuery(scope=cart_scope(ns), range=WINDOW, sort="asc", trace_id=TRACE_A)
    page = await subject.backend.query_logs(query)
    assert bodies(page) == ["a: received", "a: failed"]
    assert page.total == 2
    assert all(record.trace_id == TRACE_A for record in page.items)
    # The namespace scope adds the trace's line of another component; the filter combines with the others.
    everywhere = await subject.backend.query_logs(replace(query, scope=ComponentScope(ns), sort="desc"))
    assert bodies(everywhere) == ["a: in frontend", "a: failed", "a: received"]
    errors = await subject.backend.query_logs(replace(query, levels=("ERROR",)))
    assert bodies(errors) == ["a: failed"]
    assert await subject.backend.count_logs(query) == 2


async def test_a_trace_without_lines_finds_nothing(subject):
    ns = subject.namespace
    await subject.load(logs=_traced(ns))
    page = await subject.backend.query_logs(LogsQuery(scope=cart_scope(ns), range=WINDOW, trace_id="f" * 32))
    assert (page.items, page.total) == ([], 0)


async def test_traces_with_errors_only(subject):
    ns = subject.namespace
    await subject.load(spans=checkout_traces(ns))
    page = await subject.backend.query_traces(TracesQuery(scope=ComponentScope(ns), range=WINDOW, errors_only=True))
    assert [t.trace_id[-1] for t in page.items] == ["3", "2"]
    assert page.total == 2
    assert all(t.has_errors for t in page.items)
    # Trace 2's error is cart's; trace 3 never touches cart.
    cart = await subject.backend.query_traces(TracesQuery(scope=cart_scope(ns), range=WINDOW, errors_only=True))
    assert [t.trace_id[-1] for t in cart.items] == ["2"]


async def test_traces_lasting_at_least_a_duration(subject):
    ns = subject.namespace
    await subject.load(spans=checkout_traces(ns))
    # Whole-trace durations: 1 and 2 last 100 ms, 3 lasts 10 ms, 4 (no root) 20 ms.
    query = TracesQuery(scope=ComponentScope(ns), range=WINDOW, sort="asc", min_duration_ns=100 * MS)
    page = await subject.backend.query_traces(query)
    assert [t.trace_id[-1] for t in page.items] == ["1", "2"]  # inclusive
    assert page.total == 2
    assert all(t.end_ns - t.start_ns >= 100 * MS for t in page.items)
    # Cart's own span of trace 1 lasts 40 ms, but the filter is on the whole trace it belongs to.
    cart = await subject.backend.query_traces(replace(query, scope=cart_scope(ns), min_duration_ns=50 * MS))
    assert [t.trace_id[-1] for t in cart.items] == ["1", "2"]
    longer = await subject.backend.query_traces(replace(query, min_duration_ns=101 * MS))
    assert (longer.items, longer.total) == ([], 0)


async def test_trace_filters_combine_and_respect_the_limit(subject):
    ns = subject.namespace
    await subject.load(spans=checkout_traces(ns))
    both = TracesQuery(scope=ComponentScope(ns), range=WINDOW, min_duration_ns=50 * MS, errors_only=True)
    page = await subject.backend.query_traces(both)
    assert [t.trace_id[-1] for t in page.items] == ["2"]
    one = await subject.backend.query_traces(
        TracesQuery(scope=ComponentScope(ns), range=WINDOW, limit=1, errors_only=True)
    )
    assert [t.trace_id[-1] for t in one.items] == ["3"]
    assert one.total == 2
    # Zero is no filter at all.
    unfiltered = await subject.backend.query_traces(TracesQuery(scope=ComponentScope(ns), range=WINDOW))
    assert unfiltered.total == 4


async def test_the_logs_of_a_trace_page_by_cursor(subject):
    ns = subject.namespace
    await subject.load(logs=_traced(ns))
    query = LogsQuery(scope=ComponentScope(ns), range=WINDOW, sort="asc", limit=2, trace_id=TRACE_A)
    first = await subject.backend.query_logs(query)
    assert bodies(first) == ["a: received", "a: failed"] and first.total == 3 and first.next_cursor
    second = await subject.backend.query_logs(replace(query, cursor=first.next_cursor))
    assert bodies(second) == ["a: in frontend"] and not second.next_cursor
    # The cursor belongs to this trace's query: another trace's refuses it.
    with pytest.raises(InvalidCursor):
        await subject.backend.query_logs(replace(query, trace_id=TRACE_B, cursor=first.next_cursor))
