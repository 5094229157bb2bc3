"""The all-in-one end to end: the real `observer up` process, telemetry sent by the OpenTelemetry SDK's OTLP
exporters (the demo generator), and everything read back through the public HTTP API. Three times: on the
embedded backend; with logs, events and traces in a real OpenSearch; and with metrics in a real Prometheus
too (remote-written by the collector, queried in the otel scheme)."""

from __future__ import annotations

import time

import httpx
import pytest

from devservers.observer import observer_up
from devservers.opensearch_layout import drop_layout_at, unique_layout
from domain.timeutil import format_rfc3339, now_ns
from observer.demo import DemoTraffic

SCOPE = {"namespace": "demo", "project": "shop", "environment": "production"}


@pytest.fixture(scope="module", params=["embedded", "opensearch", "opensearch+prometheus"])
def plane(request, tmp_path_factory):
    data = tmp_path_factory.mktemp("all-in-one")
    env = {}
    if "opensearch" in request.param:
        layout = unique_layout("e2e")
        env = {
            "OPENSEARCH_ADDRESS": request.getfixturevalue("opensearch_url"),
            "OPENSEARCH_INDEX_PREFIX": layout.logs,
            "OPENSEARCH_EVENTS_INDEX_PREFIX": layout.events,
            "OPENSEARCH_TRACES_INDEX_PREFIX": layout.traces,
            "OPENSEARCH_AUDIT_PREFIX": layout.audit,
        }
    if "prometheus" in request.param:
        env["PROMETHEUS_ADDRESS"] = request.getfixturevalue("prometheus_server").url
        env["OBSERVER_METRICS_SCHEME"] = "otel"
    with observer_up(data / "data", log_file=data / "observer.log", env=env) as server:
        traffic = DemoTraffic(endpoint=server.otlp, rate=25, export_interval_s=1.0, error_rate=0.2, seed=11)
        sent = traffic.run_for(6)
        assert sent > 50
        yield server
    if "opensearch" in request.param:
        drop_layout_at(env["OPENSEARCH_ADDRESS"], layout)


def window(minutes: int = 30) -> dict[str, str]:
    return {"startTime": format_rfc3339(now_ns() - minutes * 60 * 10**9), "endTime": format_rfc3339(now_ns() + 10**9)}


def post(server, path: str, body: dict) -> dict:
    response = httpx.post(server.api + path, json=body, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def eventually(check, timeout_s: float = 20.0):
    """Telemetry is exported in batches; give the last one a moment to land."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_component_logs_come_back_with_metadata(plane):
    def check():
        body = post(
            plane, "/api/v1/logs/query", {**window(), "searchScope": {**SCOPE, "component": "cart"}, "limit": 50}
        )
        assert body["logs"], body
        return body

    body = eventually(check)
    entry = body["logs"][0]
    assert entry["metadata"]["componentName"] == "cart"
    assert entry["metadata"]["environmentName"] == "production"
    assert entry["metadata"]["podName"].startswith("cart-")
    assert {"timestamp", "log", "level"} <= set(entry)
    errors = post(
        plane, "/api/v1/logs/query", {**window(), "searchScope": {**SCOPE, "component": "cart"}, "logLevels": ["ERROR"]}
    )
    assert all(e["level"] in ("ERROR", "FATAL") for e in errors["logs"])


def test_traces_span_components(plane):
    def check():
        body = post(plane, "/api/v1alpha1/traces/query", {**window(), "searchScope": {**SCOPE, "component": "cart"}})
        assert any(trace["spanCount"] > 1 for trace in body["traces"]), body
        return body

    body = eventually(check)
    trace = max(body["traces"], key=lambda t: t["spanCount"])
    spans = post(
        plane,
        f"/api/v1alpha1/traces/{trace['traceId']}/spans/query",
        {**window(), "searchScope": {"namespace": "demo", "project": "shop"}, "includeAttributes": True},
    )
    assert len(spans["spans"]) == trace["spanCount"]
    kinds = {span.get("spanKind") for span in spans["spans"]}
    assert {"Server", "Client"} <= kinds
    first = spans["spans"][0]
    detail = httpx.get(f"{plane.api}/api/v1alpha1/traces/{trace['traceId']}/spans/{first['spanId']}").json()
    assert detail["spanId"] == first["spanId"] and "resourceAttributes" in detail


def test_http_metrics_have_latency_series(plane):
    def check():
        body = post(
            plane,
            "/api/v1/metrics/query",
            {**window(10), "metric": "http", "step": "10s", "searchScope": {**SCOPE, "component": "cart"}},
        )
        assert body.get("latencyP99") and body.get("requestCount"), body
        return body

    body = eventually(check)
    assert all(point["value"] > 0 for point in body["requestCount"])
    assert all(0 < point["value"] < 10 for point in body["latencyP50"])


def test_resource_metrics_arrive(plane):
    def check():
        body = post(
            plane,
            "/api/v1/metrics/query",
            {**window(10), "metric": "resource", "step": "10s", "searchScope": {**SCOPE, "component": "cart"}},
        )
        assert body.get("cpuUsage") and body.get("memoryLimits"), body
        return body

    eventually(check)


def test_runtime_topology_shows_the_call_chain(plane):
    def check():
        body = post(plane, "/api/v1alpha1/metrics/runtime-topology", {**window(), "searchScope": SCOPE})
        edges = {edge["id"]: edge for edge in body.get("edges", [])}
        assert "frontend->cart" in edges and "cart->payments" in edges, edges.keys()
        return edges

    edges = eventually(check)
    assert edges["frontend->cart"]["metrics"]["requestCount"] > 0
    assert edges["cart->payments"]["source"]["component"] == "cart"


def test_events_arrive(plane):
    def check():
        body = post(plane, "/api/v1/events/query", {**window(), "searchScope": {**SCOPE, "component": "cart"}})
        assert body["events"], body
        return body

    body = eventually(check)
    assert {"Scheduled", "Started"} & {event.get("reason") for event in body["events"]}
