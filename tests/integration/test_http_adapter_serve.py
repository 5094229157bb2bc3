"""`observer adapter serve` (observer/adapter_serve.py) over the embedded store, spoken to over real HTTP as
OpenChoreo's observer would: the contract's answers (checked against the specs), its error bodies per signal,
its 501s, the health paths of every adapter, and the plane wiring of `observer adapter serve`."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from adapters import registry
from adapters.http_contract import specs
from adapters.http_contract.wire import INVALID_CURSOR_CODE
from devservers.local import serving
from devservers.sample import BASE_NS, COMPONENTS, platform_points
from domain.timeutil import format_rfc3339
from observer import adapter_serve
from observer.adapter_serve import logs_app, metrics_app, tracing_app
from tests.contract.data import event, log, span

NS = "served"
SECOND = 10**9
START, END = format_rfc3339(BASE_NS - 3600 * SECOND), format_rfc3339(BASE_NS + 3600 * SECOND)
SCOPE = {"namespace": NS, "componentUid": COMPONENTS["cart"]}
TRACE_SCOPE = {"namespace": NS, "component": COMPONENTS["cart"]}


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Any]:
    entry = registry.entries()["embedded"]
    backend = entry.create(entry.settings(data_dir=tmp_path / "data"), registry.Context("write", True))
    await backend.roles.sink.write(
        batch_id=uuid.uuid4().hex,
        logs=[log(NS, i * SECOND, f"line {i}") for i in range(5)],
        events=[event(NS, SECOND, "Pulled")],
        spans=[span(NS, 1, 1, None, 0, 100), span(NS, 1, 2, 1, 10, 50)],
        metrics=platform_points(NS, BASE_NS - 600 * SECOND),
    )
    yield backend
    await backend.close()


@pytest.fixture
def urls(store: Any) -> Iterator[dict[str, str]]:
    with (
        serving(logs_app(store.roles.logs, store.roles.events)) as logs,
        serving(tracing_app(store.roles.traces)) as tracing,
        serving(metrics_app(store.roles.metrics)) as metrics,
    ):
        yield {"logs": logs, "tracing": tracing, "metrics": metrics}


async def call(method: str, url: str, body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session:
        kwargs: dict[str, Any] = {"data": raw} if raw is not None else {"json": body}
        async with session.request(method, url, **kwargs) as response:
            return response.status, await response.json(content_type=None)


EXCHANGES = [
    # (signal, method, path, body, response schema)
    (
        "logs",
        "POST",
        "/api/v1/logs/query",
        {"startTime": START, "endTime": END, "searchScope": SCOPE},
        "LogsQueryResponse",
    ),
    (
        "logs",
        "POST",
        "/api/v1/logs/query",
        {"startTime": START, "endTime": END, "searchScope": {"namespace": NS, "workflowRunName": "r"}},
        "LogsQueryResponse",
    ),
    (
        "logs",
        "POST",
        "/api/v1/events/query",
        {"startTime": START, "endTime": END, "searchScope": SCOPE},
        "EventsQueryResponse",
    ),
    (
        "tracing",
        "POST",
        "/api/v1alpha1/traces/query",
        {"startTime": START, "endTime": END, "searchScope": TRACE_SCOPE},
        "TracesListResponse",
    ),
    (
        "tracing",
        "POST",
        f"/api/v1alpha1/traces/{1:032x}/spans/query",
        {"startTime": START, "endTime": END, "searchScope": TRACE_SCOPE, "includeAttributes": True},
        "TraceSpansListResponse",
    ),
    ("tracing", "GET", f"/api/v1alpha1/traces/{1:032x}/spans/{2:016x}", None, "TraceSpanDetailsResponse"),
    (
        "metrics",
        "POST",
        "/api/v1/metrics/query",
        {"metric": "resource", "startTime": START, "endTime": END, "step": "5m", "searchScope": SCOPE},
        "MetricsQueryResponse",
    ),
    (
        "metrics",
        "POST",
        "/api/v1/metrics/query",
        {"metric": "http", "startTime": START, "endTime": END, "searchScope": SCOPE},
        "MetricsQueryResponse",
    ),
]


@pytest.mark.parametrize("signal, method, path, body, schema", EXCHANGES)
async def test_every_answer_is_the_contracts(urls, signal, method, path, body, schema):
    status, answer = await call(method, urls[signal] + path, body)
    assert status == 200, answer
    assert specs.problems(signal, schema, answer) == []
    assert specs.validator(signal, schema).is_valid(answer)  # the pure-Python verdict too, not only the fast one


async def test_answers_carry_the_records(urls):
    _, logs = await call("POST", urls["logs"] + "/api/v1/logs/query", EXCHANGES[0][3])
    assert [entry["log"] for entry in logs["logs"]] == [f"line {i}" for i in reversed(range(5))]
    assert logs["total"] == 5 and logs["logs"][0]["metadata"]["componentUid"] == COMPONENTS["cart"]
    _, spans = await call("POST", urls["tracing"] + EXCHANGES[4][2], EXCHANGES[4][3])
    assert [entry["spanId"] for entry in spans["spans"]] == [f"{2:016x}", f"{1:016x}"]
    _, series = await call("POST", urls["metrics"] + EXCHANGES[6][2], EXCHANGES[6][3])
    assert series["cpuUsage"] and all(set(point) == {"timestamp", "value"} for point in series["cpuUsage"])


@pytest.mark.parametrize(
    "signal, path, text",
    [
        ("logs", "/api/v1/logs/query", "message"),
        ("tracing", "/api/v1alpha1/traces/query", "detail"),
        ("metrics", "/api/v1/metrics/query", "detail"),
    ],
)
async def test_an_invalid_request_is_a_400_in_the_signals_error_shape(urls, signal, path, text):
    status, answer = await call("POST", urls[signal] + path, {"startTime": START, "limit": 0})
    assert status == 400
    assert answer["title"] == "badRequest" and answer["errorCode"] == "OBS-V1-INVALID-REQUEST"
    assert "endTime" in answer[text] or "searchScope" in answer[text] or "metric" in answer[text]
    assert specs.problems(signal, "ErrorResponse", answer) == []
    status, answer = await call("POST", urls[signal] + path, raw=b"{not json")
    assert (status, answer["errorCode"]) == (400, "OBS-V1-INVALID-BODY")


async def test_a_time_that_is_not_rfc3339_is_a_400(urls):
    body = {"startTime": "yesterday", "endTime": END, "searchScope": SCOPE}
    status, answer = await call("POST", urls["logs"] + "/api/v1/logs/query", body)
    assert status == 400 and "yesterday" in answer["message"]


async def test_a_cursor_we_did_not_issue_has_its_own_code(urls):
    body = {"startTime": START, "endTime": END, "searchScope": SCOPE, "cursor": "not-a-cursor"}
    status, answer = await call("POST", urls["logs"] + "/api/v1/logs/query", body)
    assert (status, answer["errorCode"]) == (400, INVALID_CURSOR_CODE)


async def test_a_missing_span_is_a_404_with_detail(urls):
    status, answer = await call("GET", urls["tracing"] + f"/api/v1alpha1/traces/{1:032x}/spans/{99:016x}")
    assert status == 404 and answer["detail"] == "span not found"
    assert specs.problems("tracing", "ErrorResponse", answer) == []


async def test_what_is_not_served_is_a_501_with_a_code(urls, store):
    topology = {
        "startTime": START,
        "endTime": END,
        "searchScope": {"namespace": NS, "projectUid": "p", "environmentUid": "e"},
    }
    status, answer = await call("POST", urls["metrics"] + "/api/v1alpha1/metrics/runtime-topology", topology)
    assert (status, answer["title"], answer["errorCode"]) == (501, "notImplemented", "OBS-V1-M-OBSERVER-501")
    rule = {"metadata": {"name": "r"}, "source": {"query": "x"}, "condition": {}}
    status, answer = await call("POST", urls["logs"] + "/api/v1alpha1/alerts/rules", rule)
    assert (status, answer["errorCode"]) == (501, "OBS-V1-L-OBSERVER-501")
    with serving(logs_app(store.roles.logs, None)) as no_events:
        status, answer = await call("POST", no_events + "/api/v1/events/query", EXCHANGES[2][3])
    assert (status, answer["title"], answer["errorCode"]) == (501, "notImplemented", "OBS-V1-L-OBSERVER-501")


async def test_every_adapters_health_path_answers(urls):
    for url in urls.values():
        for path in ("/health", "/healthz", "/livez"):
            assert await call("GET", url + path) == (200, {"status": "healthy"})


async def test_an_unknown_route_is_the_signals_404(urls):
    status, answer = await call("GET", urls["logs"] + "/api/v1/nothing")
    assert (status, answer["title"], answer["errorCode"]) == (404, "notFound", "OBS-V1-ROUTE-NOT-FOUND")


async def test_the_served_plane_never_includes_the_adapter_client(tmp_path):
    """An adapter URL in the environment (OpenChoreo sets them) must not make the server call itself."""
    environ = {"LOGS_ADAPTER_URL": "http://127.0.0.1:9", "OBSERVER_DATA_DIR": str(tmp_path)}
    assert "http" in registry.entries(environ) and "http" not in adapter_serve.backends(environ)
    chosen = registry.enabled(registry.Context("write"), known=adapter_serve.backends(environ), shared=environ)
    plane = await registry.build_plane(registry.Context("write"), chosen)
    try:
        for signal in ("logs", "tracing", "metrics"):
            assert adapter_serve.app_for(signal, plane) is not None
    finally:
        await plane.close()
    empty = registry.Plane([])
    with pytest.raises(ValueError, match="logs"):
        adapter_serve.app_for("logs", empty)


def test_the_command_serves_the_contract_from_the_configured_store(tmp_path: Path) -> None:
    """`adapter_serve.run` as its own process (what `observer adapter serve --signal logs` runs), over the
    embedded store in OBSERVER_DATA_DIR, with an adapter URL in the environment that it must not call."""
    import os
    import subprocess
    import sys

    import httpx

    from devservers.local import free_port, wait_until_answering

    port = free_port()
    script = (
        "import argparse, sys; from observer import adapter_serve as a; p = argparse.ArgumentParser(); "
        "a.add_arguments(p); sys.exit(a.run(p.parse_args(sys.argv[1:])))"
    )
    environ = {**os.environ, "OBSERVER_DATA_DIR": str(tmp_path), "LOGS_ADAPTER_URL": "http://127.0.0.1:9"}
    process = subprocess.Popen(
        [sys.executable, "-c", script, "--signal", "logs", "--port", str(port)], env=environ, cwd=Path.cwd()
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(process, lambda: httpx.get(base + "/health").status_code == 200, "adapter serve", 60)
        body = {"startTime": START, "endTime": END, "searchScope": {"namespace": NS}}
        answer = httpx.post(base + "/api/v1/logs/query", json=body, timeout=10)
        assert answer.status_code == 200, answer.text
        assert answer.json()["logs"] == [] and specs.problems("logs", "LogsQueryResponse", answer.json()) == []
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0
