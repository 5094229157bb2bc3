"""The Datadog backend against the local Datadog (devservers/datadog): what our sink delivers to the intakes
comes back through the queries by scope, level, phrase and page; rate limits are waited out up to a deadline
and then answered as BackendUnavailable with a retry time; intake failures become the right WriteResult.

The live test at the end runs the same round trip against a real organisation when DD_API_KEY and DD_APP_KEY
are set."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.datadog.backend import PartialResults
from adapters.datadog.client import RateLimited
from adapters.datadog.plugin import Datadog, Settings
from adapters.protocols import BackendUnavailable, InvalidCursor, SpanNotFound
from adapters.registry import Context, RuleTargetContext, build_plane, enabled, entries
from devservers.datadog import DatadogFake
from domain.identity import identity_attributes
from domain.model import (
    ComponentScope,
    EventRecord,
    EventsQuery,
    Identity,
    LogRecord,
    LogsQuery,
    SpanRecord,
    SpansQuery,
    TimeRange,
    TracesQuery,
    WorkflowScope,
)
from domain.timeutil import now_ns

MINUTE = 60 * 10**9
T0 = now_ns() - 30 * MINUTE
WINDOW = TimeRange(T0 - MINUTE, T0 + 20 * MINUTE)
CART = Identity(
    namespace="acme",
    project="shop",
    project_uid="p-1",
    component="cart",
    component_uid="c-1",
    environment="prod",
    environment_uid="e-1",
    pod="cart-0",
    pod_namespace="dp-acme-shop",
    container="main",
)
PAY = Identity(namespace="acme", project="shop", project_uid="p-1", component="pay", component_uid="c-2")
BUILD = Identity(
    namespace="acme",
    pod="build-1",
    pod_namespace="workflows-acme",
    container="main",
    workflow_run="build-1",
    task="build-1.compile (x)",
)
BUILD_WAIT = Identity(
    namespace="acme", pod="build-1", pod_namespace="workflows-acme", container="wait", workflow_run="build-1"
)
CART_SCOPE = ComponentScope("acme", project_uid="p-1", component_uid="c-1")


def settings_for(fake: DatadogFake, **extra: str) -> Settings:
    return Settings.model_validate(
        {"DATADOG_API_URL": fake.url, "DD_API_KEY": fake.api_key, "DD_APP_KEY": fake.app_key, **extra}
    )


@pytest.fixture
async def plane(datadog_fake: DatadogFake) -> AsyncIterator[Datadog]:  # noqa: F811
    backend = Datadog(settings_for(datadog_fake), Context())
    yield backend
    await backend.close()


LOGS = [
    LogRecord(T0 + 1, 'GET /cart "quoted" 100% done', CART, "INFO", stream="stdout"),
    LogRecord(
        T0 + 2 * MINUTE,
        "payment failed: card (declined)",
        CART,
        "ERROR",
        "0af7651916cd43dd8448eb211c80319c",
        "b7ad6b7169203331",
        "stderr",
    ),
    LogRecord(T0 + 3 * MINUTE, "fatal: out of memory", CART, "FATAL", stream="stderr"),
    LogRecord(T0 + 4 * MINUTE, "slow query", CART, "WARN", stream="stdout"),
    LogRecord(T0 + 5 * MINUTE, "other component", PAY, "ERROR", stream="stdout"),
    LogRecord(T0 + 6 * MINUTE, "compiling", BUILD, "INFO", stream="stdout"),
    LogRecord(T0 + 7 * MINUTE, "waiting", BUILD_WAIT, "INFO", stream="stdout"),
]
EVENTS = [
    EventRecord(T0 + MINUTE, "Back-off restarting", CART, "Warning", "BackOff", "Pod", "cart-0", "dp-acme-shop"),
    EventRecord(T0 + 2 * MINUTE, "Scheduled", PAY, "Normal", "Scheduled", "Pod", "pay-0", "dp-acme-shop"),
]


def span(
    span_id: str, parent: str, start: int, status: str = "unset", trace: str = "a" * 32, who: Identity = CART
) -> SpanRecord:
    return SpanRecord(
        trace,
        span_id,
        parent,
        f"op-{span_id[-1]}",
        "Server" if not parent else "Client",
        start,
        start + 1000,
        who,
        status,
        attributes={"http.route": "/cart"},
        resource=identity_attributes(who),  # as our collectors deliver them
    )


SPANS = [
    span("0000000000000001", "", T0 + MINUTE),
    span("0000000000000002", "0000000000000001", T0 + MINUTE + 10, "error"),
    span("0000000000000003", "", T0 + 3 * MINUTE, trace="b" * 32),
    span("0000000000000004", "", T0 + 4 * MINUTE, trace="c" * 32, who=PAY),
]


async def test_registry_enables_datadog_with_the_api_key(datadog_fake: DatadogFake) -> None:  # noqa: F811
    env = {"DATADOG_API_URL": datadog_fake.url, "DD_API_KEY": datadog_fake.api_key}
    chosen = enabled(Context(), configured={"datadog": settings_for(datadog_fake)}, known=entries(env))
    assert [entry.name for entry, _ in chosen] == ["datadog"]


async def test_plane_routes_every_signal_but_topology_to_datadog(datadog_fake: DatadogFake, tmp_path: Path) -> None:  # noqa: F811
    """Next to the embedded store: Datadog serves logs (platform logs too), the audit trail, events, traces and
    metrics and takes those signals; the embedded store keeps topology, from the spans it is sent too; the rule
    target opens against Datadog."""
    known = entries({})
    chosen = [
        (known["embedded"], known["embedded"].settings(data_dir=tmp_path / "data")),
        (known["datadog"], settings_for(datadog_fake)),
    ]
    plane = await build_plane(Context(), chosen)
    try:
        assert {
            role: getattr(plane.chosen(role), "name", None)
            for role in ("logs", "platform_logs", "audit", "events", "traces", "metrics", "topology")
        } == {
            "logs": "datadog",
            "platform_logs": "datadog",
            "audit": "datadog",
            "events": "datadog",
            "traces": "datadog",
            "metrics": "datadog",
            "topology": "embedded",
        }
        assert {d.name: d.signals for d in plane.destinations()} == {
            "embedded": frozenset({"spans"}),
            "datadog": frozenset({"logs", "events", "spans", "metrics", "audit"}),
        }
        datadog = plane.chosen("logs")
        assert datadog is not None and datadog.roles.rule_target is not None
        target = await datadog.roles.rule_target(RuleTargetContext("http://127.0.0.1:9/api/v1alpha1/alerts/webhook"))
        try:
            assert await target.list_managed() == {}
        finally:
            await target.close()
    finally:
        await plane.close()


async def test_round_trip_logs_events_spans(plane: Datadog, datadog_fake: DatadogFake) -> None:  # noqa: F811
    result = await plane.sink.write(batch_id="b1", logs=LOGS, events=EVENTS, spans=SPANS)
    assert result.outcome == "delivered" and result.count == 0
    backend = plane.backend

    page = await backend.query_logs(LogsQuery(CART_SCOPE, WINDOW, sort="asc"))
    assert page.items == LOGS[:4]
    assert page.next_cursor == ""

    errors = await backend.query_logs(LogsQuery(CART_SCOPE, WINDOW, levels=("ERROR",)))
    assert [r.body for r in errors.items] == ["fatal: out of memory", "payment failed: card (declined)"]

    phrase = await backend.query_logs(LogsQuery(ComponentScope("acme"), WINDOW, phrase='"quoted" 100%'))
    assert [r.body for r in phrase.items] == [LOGS[0].body]

    workflow = await backend.query_logs(LogsQuery(WorkflowScope("acme", "build-1", task="compile (x"), WINDOW))
    assert [r.body for r in workflow.items] == ["compiling"]
    assert (await backend.query_logs(LogsQuery(WorkflowScope("acme", "build-2"), WINDOW))).items == []

    events = await backend.query_events(EventsQuery(CART_SCOPE, WINDOW))
    assert events.items == EVENTS[:1]
    assert len((await backend.query_events(EventsQuery(ComponentScope("acme"), WINDOW))).items) == 2

    traces = await backend.query_traces(
        TracesQuery(ComponentScope("acme", project_uid="p-1", component_uid="c-1"), WINDOW)
    )
    assert [t.trace_id for t in traces.items] == ["b" * 32, "a" * 32]
    first = traces.items[1]
    assert (first.span_count, first.root_span_id, first.has_errors, first.root_span_kind) == (
        2,
        "0000000000000001",
        True,
        "Server",
    )
    assert traces.total == 2

    found = await backend.query_spans(SpansQuery("a" * 32, CART_SCOPE, WINDOW, sort="asc"))
    assert [s.span_id for s in found.items] == ["0000000000000001", "0000000000000002"]
    assert found.items[1] == SPANS[1]

    assert await backend.get_span("a" * 32, "0000000000000002") == SPANS[1]
    with pytest.raises(SpanNotFound):
        await backend.get_span("a" * 32, "00000000000000ff")


async def test_cursor_walks_every_log_once(plane: Datadog) -> None:
    logs = [LogRecord(T0 + i * 1000, f"line {i}", CART, "INFO", stream="stdout") for i in range(23)]
    assert (await plane.sink.write(batch_id="b2", logs=logs)).outcome == "delivered"
    seen: list[LogRecord] = []
    cursor = ""
    for _ in range(10):
        page = await plane.backend.query_logs(LogsQuery(CART_SCOPE, WINDOW, limit=5, sort="desc", cursor=cursor))
        seen += page.items
        cursor = page.next_cursor
        if not cursor:
            break
    assert seen == logs[::-1]
    other = LogsQuery(
        CART_SCOPE,
        WINDOW,
        limit=5,
        levels=("ERROR",),
        cursor=(await plane.backend.query_logs(LogsQuery(CART_SCOPE, WINDOW, limit=5))).next_cursor,
    )
    with pytest.raises(InvalidCursor):
        await plane.backend.query_logs(other)


async def test_rate_limit_waited_out_then_reported(plane: Datadog, datadog_fake: DatadogFake) -> None:  # noqa: F811
    await plane.sink.write(batch_id="b3", logs=LOGS[:1])
    datadog_fake.fail("/api/v2/logs/events/search", 429, count=1, retry_after=1)
    started = time.monotonic()
    assert len((await plane.backend.query_logs(LogsQuery(CART_SCOPE, WINDOW))).items) == 1
    assert time.monotonic() - started >= 0.9

    datadog_fake.fail("/api/v2/logs/events/search", 429, count=100, retry_after=120)
    started = time.monotonic()
    with pytest.raises(RateLimited) as raised:
        await plane.backend.query_logs(LogsQuery(CART_SCOPE, WINDOW))
    assert raised.value.retry_after_s == 120
    assert time.monotonic() - started < 5


async def test_rate_limit_headers_are_read(plane: Datadog, datadog_fake: DatadogFake) -> None:  # noqa: F811
    datadog_fake.limit("logs_query", 50, period=3600)
    await plane.backend.query_logs(LogsQuery(CART_SCOPE, WINDOW))
    readings = list(plane.backend.client.last_limits.values())
    # Two requests of the same limit: the page's search and its count (Logs Aggregate).
    assert readings and readings[0].limit == 50 and readings[0].remaining == 48


async def test_an_exhausted_limit_is_not_hammered(plane: Datadog, datadog_fake: DatadogFake) -> None:  # noqa: F811
    """Once Datadog says no requests remain in the period, the next query fails at once without a request."""
    datadog_fake.limit("logs_query", 4, period=3600)  # a page is a search and a count (Logs Aggregate)
    for _ in range(2):
        await plane.backend.query_logs(LogsQuery(CART_SCOPE, WINDOW))
    sent = datadog_fake.stats()["requests"]["/api/v2/logs/events/search"]
    with pytest.raises(RateLimited) as raised:
        await plane.backend.query_logs(LogsQuery(CART_SCOPE, WINDOW))
    assert raised.value.retry_after_s > 10
    assert datadog_fake.stats()["requests"]["/api/v2/logs/events/search"] == sent


async def test_partial_results_are_reported(plane: Datadog, datadog_fake: DatadogFake) -> None:  # noqa: F811
    datadog_fake.partial(1)
    with pytest.raises(PartialResults):
        await plane.backend.query_logs(LogsQuery(CART_SCOPE, WINDOW))


async def test_outage_is_unavailable_not_a_hang(datadog_fake: DatadogFake) -> None:  # noqa: F811
    backend = Datadog(settings_for(datadog_fake, DATADOG_TIMEOUT_SECONDS="1"), Context())
    try:
        datadog_fake.fail("*", 503, seconds=30)
        with pytest.raises(BackendUnavailable):
            await asyncio.wait_for(backend.backend.query_logs(LogsQuery(CART_SCOPE, WINDOW)), 5)
        result = await backend.sink.write(batch_id="b4", logs=LOGS[:1], spans=SPANS[:1])
        assert result.outcome == "retry"
    finally:
        datadog_fake.reset()
        await backend.close()


async def test_intake_outcomes(plane: Datadog, datadog_fake: DatadogFake) -> None:  # noqa: F811
    datadog_fake.fail("/api/v2/logs", 429, count=1, retry_after=7)
    result = await plane.sink.write(batch_id="b5", logs=LOGS[:2])
    assert (result.outcome, result.retry_after_s) == ("retry", 7)

    datadog_fake.fail("/api/v2/logs", 413, count=1)
    assert (await plane.sink.write(batch_id="b5", logs=LOGS[:2])).outcome == "delivered"
    assert len(datadog_fake.received()["logs"]) == 2  # split in halves, each accepted

    datadog_fake.fail("/api/v2/logs", 400, count=1)
    dropped = await plane.sink.write(batch_id="b6", logs=LOGS[:3])
    assert (dropped.outcome, dropped.count) == ("dropped", 3)


async def test_wrong_key_is_unavailable(datadog_fake: DatadogFake) -> None:  # noqa: F811
    settings = Settings.model_validate(
        {"DATADOG_API_URL": datadog_fake.url, "DD_API_KEY": "wrong", "DD_APP_KEY": "wrong"}
    )
    backend = Datadog(settings, Context())
    try:
        with pytest.raises(BackendUnavailable) as raised:
            await backend.backend.query_logs(LogsQuery(CART_SCOPE, WINDOW))
        assert "wrong" not in str(raised.value)
        assert (await backend.sink.write(batch_id="b7", logs=LOGS[:1])).outcome == "retry"
    finally:
        await backend.close()


LIVE = bool(os.environ.get("DD_API_KEY") and os.environ.get("DD_APP_KEY"))


@pytest.mark.skipif(
    not LIVE,
    reason="opt-in live test against a real Datadog organisation (Datadog is a SaaS; every other Datadog test runs on the local Datadog): set DD_API_KEY and DD_APP_KEY to run it",
)
async def test_live_round_trip() -> None:
    """Ships one uniquely named log line to a real organisation and finds it by scope (indexing takes a while)."""
    backend = Datadog(Settings(), Context())
    try:
        marker = f"observer-live-{now_ns()}"
        identity = Identity(namespace="observer-live-test", component="live", component_uid=marker)
        start = now_ns()
        line = LogRecord(start, f"live test {marker}", identity, "INFO", stream="stdout")
        assert (await backend.sink.write(batch_id=marker, logs=[line])).outcome == "delivered"
        query = LogsQuery(
            ComponentScope("observer-live-test", component_uid=marker), TimeRange(start - MINUTE, start + 5 * MINUTE)
        )
        for _ in range(30):
            page = await backend.backend.query_logs(query)
            if page.items:
                assert page.items[0].body == line.body
                return
            await asyncio.sleep(10)
        pytest.fail("the live log line was not searchable within 5 minutes")
    finally:
        await backend.close()
