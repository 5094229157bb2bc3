"""adapters/http against devservers/strict_adapter.py: each deviation of the community adapters from the spec
(http-adapters-notes §4), and what our client makes of the contract's gaps (cursor paging, exact counts)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from adapters import registry
from adapters.http.errors import AdapterError, AdapterNotImplemented, collecting_notices
from adapters.http.paging import EMULATED
from adapters.protocols import BackendUnavailable, InvalidCursor, SpanNotFound
from devservers.local import serving
from devservers.strict_adapter import EVENTS_501, NOTICE, TOPOLOGY_501, StrictState, strict_adapter_app
from domain import semconv
from domain.model import ComponentScope, EventsQuery, LogsQuery, MetricsQuery, TimeRange, TopologyQuery, TracesQuery

SECOND, MS = 10**9, 10**6
BASE = 1_780_000_000 * SECOND
WINDOW = TimeRange(BASE - 3600 * SECOND, BASE + 3600 * SECOND)
CART = "5f0c2a8e-3c1b-4d55-9a51-6f1d2a3b4c5d"
SCOPE = ComponentScope("default", "", CART, "")


@pytest.fixture
def strict() -> Iterator[dict[str, tuple[StrictState, str]]]:
    states = {signal: StrictState() for signal in ("logs", "tracing", "metrics")}
    with (
        serving(strict_adapter_app("logs", states["logs"])) as logs,
        serving(strict_adapter_app("tracing", states["tracing"])) as tracing,
        serving(strict_adapter_app("metrics", states["metrics"])) as metrics,
    ):
        yield {
            "logs": (states["logs"], logs),
            "tracing": (states["tracing"], tracing),
            "metrics": (states["metrics"], metrics),
        }


@pytest.fixture
async def adapters(strict: dict[str, tuple[StrictState, str]]) -> AsyncIterator[Any]:
    entry = registry.entries()["http"]
    backend = entry.create(
        entry.settings(
            logs_url=strict["logs"][1],
            tracing_url=strict["tracing"][1],
            metrics_url=strict["metrics"][1],
            logs_timeout_s=5,
        ),
        registry.Context("serve"),
    )
    yield backend
    await backend.close()


async def test_health_is_found_on_either_path(adapters):
    """§4.1: the logs adapter answers /health only, tracing and metrics /healthz only."""
    paths = [await client.health_path() for client in adapters.clients]
    assert paths == ["/health", "/healthz", "/healthz"]


@pytest.mark.parametrize("status", [400, 422])
async def test_a_logs_error_body_with_message_is_read(adapters, strict, status):
    """§4.3: logs adapters' `{title, errorCode, message}`; a 4xx for a request we validated is our bug (500)."""
    strict["logs"][0].fail_next = (status, "OBS-V1-L-22", "bad scope given")
    with pytest.raises(AdapterError) as caught:
        await adapters.roles.logs.query_logs(LogsQuery(SCOPE, WINDOW))
    assert (caught.value.status, caught.value.code, caught.value.message) == (status, "OBS-V1-L-22", "bad scope given")


async def test_a_tracing_error_body_with_detail_is_read(adapters, strict):
    """§4.3: tracing and metrics adapters' `{title, errorCode, detail}`; a 5xx is an outage (503 upstream)."""
    strict["tracing"][0].fail_next = (500, "OBS-T-29", "opensearch timed out")
    with pytest.raises(BackendUnavailable, match="opensearch timed out"):
        await adapters.roles.traces.query_traces(TracesQuery(SCOPE, WINDOW))


async def test_a_title_and_message_only_body_is_read(adapters, strict):
    """§4.3: the Dynatrace adapter's `{title, message}`, no errorCode."""
    strict["logs"][0].dynatrace_errors = True
    strict["logs"][0].fail_next = (400, "ignored", "end must be after start")
    with pytest.raises(AdapterError) as caught:
        await adapters.roles.logs.query_logs(LogsQuery(SCOPE, WINDOW))
    assert (caught.value.code, caught.value.message) == ("", "end must be after start")


async def test_a_501_carries_the_adapters_code(adapters):
    """§4.4: the GCP logs adapter answers events with 501 OBS-V1-L-GCP-501: our 501, with that code."""
    with pytest.raises(AdapterNotImplemented) as caught:
        await adapters.roles.events.query_events(EventsQuery(SCOPE, WINDOW))
    assert (caught.value.status, caught.value.code) == (501, EVENTS_501)
    assert isinstance(caught.value, NotImplementedError)


async def test_a_topology_501_carries_the_adapters_code(adapters):
    """§4.4: Azure Monitor has no runtime topology: 501 OBS-V1-M-AZURE-MON-501, passed on with that code."""
    scope = ComponentScope("default", "p", "", "e")
    with pytest.raises(AdapterNotImplemented) as caught:
        await adapters.roles.topology.query_topology(TopologyQuery(scope, WINDOW))
    assert (caught.value.status, caught.value.code) == (501, TOPOLOGY_501)


async def test_a_span_404_with_detail_is_span_not_found(adapters):
    with pytest.raises(SpanNotFound):
        await adapters.roles.traces.get_span("0" * 32, "1" * 16)


async def test_the_notice_header_becomes_a_warning(adapters, caplog):
    """§4.5: `metric: http` on Azure/GCP: 200, empty series, X-OpenChoreo-Adapter-Notice: collected and logged."""
    with collecting_notices() as notices:
        series = await adapters.roles.metrics.query_metrics(MetricsQuery("http", SCOPE, WINDOW, 60 * SECOND))
        resource = await adapters.roles.metrics.query_metrics(MetricsQuery("resource", SCOPE, WINDOW, 60 * SECOND))
    assert series == dict.fromkeys(semconv.HTTP_SERIES, [])  # every key, empty
    assert {key: points for key, points in resource.items() if points} == {"cpuUsage": [(WINDOW.start_ns, 0.25)]}
    assert notices == [NOTICE]
    assert any(NOTICE in record.getMessage() and record.levelname == "WARNING" for record in caplog.records)


async def test_requests_are_the_contracts(adapters, strict):
    """What the strict adapter received matches the spec (it refuses anything else), UIDs in the scope."""
    await adapters.roles.logs.query_logs(LogsQuery(SCOPE, WINDOW, limit=7, levels=("ERROR",), phrase="boom"))
    await adapters.roles.metrics.query_metrics(MetricsQuery("resource", SCOPE, WINDOW, 120 * SECOND))
    ((path, body),) = strict["logs"][0].requests
    assert path == "/api/v1/logs/query"
    assert body["searchScope"] == {"namespace": "default", "componentUid": CART}
    assert (body["limit"], body["logLevels"], body["searchPhrase"], body["sortOrder"]) == (7, ["ERROR"], "boom", "desc")
    ((_, metrics),) = strict["metrics"][0].requests
    assert (metrics["metric"], metrics["step"]) == ("resource", "120s")


async def test_a_request_outside_the_contract_is_never_sent(adapters, strict):
    """The contract's limit is 1..1000: a larger one is refused here, before the adapter is asked."""
    with pytest.raises(AdapterError, match="limit"):
        await adapters.roles.logs.query_logs(LogsQuery(SCOPE, WINDOW, limit=5000))
    assert strict["logs"][0].requests == []


async def test_a_slow_adapter_is_an_outage(strict):
    strict["logs"][0].delay_s = 2
    entry = registry.entries()["http"]
    backend = entry.create(entry.settings(logs_url=strict["logs"][1], logs_timeout_s=0.2), registry.Context())
    try:
        with pytest.raises(BackendUnavailable):
            await backend.roles.logs.query_logs(LogsQuery(SCOPE, WINDOW))
    finally:
        await backend.close()


@pytest.mark.parametrize("sort", ["asc", "desc"])
async def test_cursor_paging_is_emulated_over_an_adapter_without_cursors(adapters, strict, sort):
    """Pairs of lines share a timestamp, so the tiebreak at page edges (skip k at L) is exercised."""
    strict["logs"][0].logs = [(BASE + (i // 2) * MS, f"line {i:03d}", CART) for i in range(95)]
    seen, cursor, pages = [], "", 0
    while True:
        page = await adapters.roles.logs.query_logs(LogsQuery(SCOPE, WINDOW, limit=10, sort=sort, cursor=cursor))
        seen += [record.body for record in page.items]
        pages += 1
        assert page.total == 95
        if not page.next_cursor:
            break
        assert page.next_cursor.startswith(EMULATED)
        cursor = page.next_cursor
    assert pages == 10
    assert sorted(seen) == [f"line {i:03d}" for i in range(95)] and len(seen) == 95
    assert all("cursor" not in body for _, body in strict["logs"][0].requests)


async def test_an_emulated_cursor_belongs_to_its_query(adapters, strict):
    strict["logs"][0].logs = [(BASE + i * MS, f"line {i}", CART) for i in range(5)]
    page = await adapters.roles.logs.query_logs(LogsQuery(SCOPE, WINDOW, limit=2))
    with pytest.raises(InvalidCursor):
        await adapters.roles.logs.query_logs(LogsQuery(SCOPE, WINDOW, limit=2, phrase="x", cursor=page.next_cursor))
    with pytest.raises(InvalidCursor):
        await adapters.roles.logs.query_logs(LogsQuery(SCOPE, WINDOW, limit=2, cursor=EMULATED + "bm90LW91cnM"))


async def test_count_logs_past_the_contracts_cap_is_exact(adapters, strict):
    """The contract caps `total` at 1000; an alert rule's count walks the pages for the exact number."""
    strict["logs"][0].logs = [(BASE + i * MS, f"line {i}", CART) for i in range(1234)]
    strict["logs"][0].logs += [(BASE + i * MS, "other", "another-component") for i in range(10)]
    assert await adapters.roles.logs.count_logs(LogsQuery(SCOPE, WINDOW)) == 1234
    few = LogsQuery(SCOPE, TimeRange(BASE, BASE + 9 * MS))
    assert await adapters.roles.logs.count_logs(few) == 10


@pytest.mark.parametrize(
    "answer",
    [
        {"logs": [{"timestamp": 5, "log": "x"}], "total": 1},  # the spec's timestamp is a string
        {"logs": [], "total": "1"},  # total is an integer
        {"logs": [{"timestamp": "yesterday", "log": "x"}], "total": 1},  # valid to the schema, not RFC3339
    ],
)
async def test_an_answer_outside_the_contract_is_refused(adapters, strict, answer):
    """An answer that breaks the spec (or whose times cannot be read) is not believed: the adapter's bug."""
    strict["logs"][0].answer_next = answer
    with pytest.raises(AdapterError):
        await adapters.roles.logs.query_logs(LogsQuery(SCOPE, WINDOW))
