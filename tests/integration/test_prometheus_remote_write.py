"""RemoteWriter against a real Prometheus (the session's `prometheus_server`: remote-write receiver on, out-of-order
window 30d). Every test writes series of its own (a `run` label) at fixed timestamps in the recent past, then reads
the raw samples back through the HTTP API (`name[window]` at an exact time), so values and label sets are exact.

Faults are injected by a transport in front of the real server (answering 503 or 429 itself for the first
requests), never by imitating Prometheus.
"""

from __future__ import annotations

import logging
import socket
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from adapters.prometheus.remote_write import RemoteWriter
from devservers.prometheus import PrometheusServer
from domain.model import Identity, MetricKind, MetricPoint

pytestmark = pytest.mark.integration

STEP_S = 15
#: Half an hour ago on a whole minute: inside Prometheus's head and out-of-order window, and far enough back that
#: nothing we write lands in the future.
T0_S = (int(time.time()) // 60 - 30) * 60
IDENTITY = Identity(
    namespace="shop",
    project="web",
    project_uid="p-1",
    component="api",
    component_uid="c-1",
    environment="dev",
    environment_uid="e-1",
    pod="api-7f9",
    pod_namespace="dp-shop",
    container="main",
)
IDENTITY_LABELS = {
    "openchoreo_dev_namespace": "shop",
    "openchoreo_dev_project": "web",
    "openchoreo_dev_project_uid": "p-1",
    "openchoreo_dev_component": "api",
    "openchoreo_dev_component_uid": "c-1",
    "openchoreo_dev_environment": "dev",
    "openchoreo_dev_environment_uid": "e-1",
    "k8s_namespace_name": "dp-shop",
    "k8s_pod_name": "api-7f9",
    "k8s_container_name": "main",
}


@pytest.fixture
def run() -> str:
    return uuid.uuid4().hex[:12]


@pytest.fixture
async def writer(prometheus_server: PrometheusServer) -> AsyncIterator[RemoteWriter]:
    w = RemoteWriter(prometheus_server.url)
    yield w
    await w.close()


def at(i: int) -> int:
    """The i-th sample time, in nanoseconds."""
    return (T0_S + i * STEP_S) * 1_000_000_000


def pt(name: str, kind: MetricKind, i: int, run: str, **fields: object) -> MetricPoint:
    attributes = {"run": run, **fields.pop("attributes", {})}  # type: ignore[dict-item]
    return MetricPoint(
        name=name,
        kind=kind,
        ts_ns=at(i),
        identity=IDENTITY,
        attributes=attributes,
        **fields,  # type: ignore[arg-type]
    )


def raw(server: PrometheusServer, selector: str) -> dict[tuple[tuple[str, str], ...], list[tuple[int, float]]]:
    """Every stored sample of the matching series in [T0 - 1 min, T0 + 10 min], by label set: (ms, value)."""
    result = server.query(f"{selector}[11m]", at=T0_S + 600)
    return {
        tuple(sorted(item["metric"].items())): [(round(float(t) * 1000), float(v)) for t, v in item["values"]]
        for item in result
    }


def labels(name: str, run: str, **extra: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"__name__": name, "run": run, **IDENTITY_LABELS, **extra}.items()))


def ms(i: int) -> int:
    return (T0_S + i * STEP_S) * 1000


# ----------------------------------------------------------------------------------------------- values


async def test_gauges_are_stored_exactly(writer: RemoteWriter, prometheus_server: PrometheusServer, run: str) -> None:
    points = [
        pt("k8s.pod.memory.working_set", MetricKind.GAUGE, i, run, value=1e6 + i, attributes={"pod.ip": ip})
        for i in range(5)
        for ip in ("10.0.0.1", "10.0.0.2")
    ]
    await writer.write(points)
    assert raw(prometheus_server, f'k8s_pod_memory_working_set_bytes{{run="{run}"}}') == {
        labels("k8s_pod_memory_working_set_bytes", run, pod_ip=ip): [(ms(i), 1e6 + i) for i in range(5)]
        for ip in ("10.0.0.1", "10.0.0.2")
    }


async def test_cumulative_counters_go_as_they_are(
    writer: RemoteWriter, prometheus_server: PrometheusServer, run: str
) -> None:
    values = [0.0, 1500.0, 1500.0, 4096.5]
    await writer.write(
        [
            pt("k8s.pod.network.io", MetricKind.SUM, i, run, value=v, attributes={"network.io.direction": "receive"})
            for i, v in enumerate(values)
        ]
    )
    assert raw(prometheus_server, f'k8s_pod_network_io_bytes_total{{run="{run}"}}') == {
        labels("k8s_pod_network_io_bytes_total", run, network_io_direction="receive"): [
            (ms(i), v) for i, v in enumerate(values)
        ]
    }


async def test_delta_counters_become_running_totals(
    writer: RemoteWriter, prometheus_server: PrometheusServer, run: str
) -> None:
    def delta(i: int, v: float) -> MetricPoint:
        return pt("jobs.done", MetricKind.SUM, i, run, value=v, cumulative=False)

    await writer.write([delta(1, 2.0), delta(0, 1.0), delta(2, 3.0)])  # out of order within the batch
    await writer.write([delta(3, 0.0), delta(4, 4.0)])
    expected = {labels("jobs_done_total", run): [(ms(0), 1.0), (ms(1), 3.0), (ms(2), 6.0), (ms(3), 6.0), (ms(4), 10.0)]}
    assert raw(prometheus_server, f'jobs_done_total{{run="{run}"}}') == expected
    await writer.write([delta(3, 0.0), delta(4, 4.0)])  # redelivered: neither added again nor refused
    assert raw(prometheus_server, f'jobs_done_total{{run="{run}"}}') == expected
    # Between samples, so either range convention sees 3, 6, 6, 10: 7 over 45 s, extrapolated to the 60 s window.
    increase = prometheus_server.query(f'increase(jobs_done_total{{run="{run}"}}[1m])', at=T0_S + 4 * STEP_S + 7.5)
    assert float(increase[0]["value"][1]) == pytest.approx(7 * 60 / 45)


BOUNDS = (0.005, 0.1, 1.0)


def histogram(run: str, i: int, counts: tuple[float, ...], total: float, cumulative: bool = True) -> MetricPoint:
    return pt(
        "http.server.request.duration",
        MetricKind.HISTOGRAM,
        i,
        run,
        cumulative=cumulative,
        count=sum(counts),
        sum=total,
        bounds=BOUNDS,
        bucket_counts=counts,
        attributes={"http.route": "/cart"},
    )


async def test_histograms_are_buckets_sum_and_count(
    writer: RemoteWriter, prometheus_server: PrometheusServer, run: str
) -> None:
    # Cumulative points: i x (10, 30, 40, 20) observations; the buckets become running sums within each point.
    await writer.write([histogram(run, i, (10.0 * i, 30.0 * i, 40.0 * i, 20.0 * i), 42.0 * i) for i in range(4)])
    base = "http_server_request_duration_seconds"
    stored = raw(prometheus_server, f'{{__name__=~"{base}_.*", run="{run}"}}')
    route = {"http_route": "/cart"}
    assert stored == {
        **{
            labels(f"{base}_bucket", run, le=le, **route): [(ms(i), per * i) for i in range(4)]
            for le, per in (("0.005", 10.0), ("0.1", 40.0), ("1", 80.0), ("+Inf", 100.0))
        },
        labels(f"{base}_sum", run, **route): [(ms(i), 42.0 * i) for i in range(4)],
        labels(f"{base}_count", run, **route): [(ms(i), 100.0 * i) for i in range(4)],
    }
    # Ranks 40..80 of 100 fall in (0.1, 1]: the median is interpolated at 0.1 + (50 - 40) / 40 x 0.9.
    expr = f'histogram_quantile(0.5, sum by (le) (rate({base}_bucket{{run="{run}"}}[1m])))'
    [result] = prometheus_server.query(expr, at=T0_S + 3 * STEP_S)
    assert float(result["value"][1]) == pytest.approx(0.325)


async def test_delta_histograms_become_running_totals(
    writer: RemoteWriter, prometheus_server: PrometheusServer, run: str
) -> None:
    await writer.write([histogram(run, i, (1.0, 2.0, 3.0, 4.0), 5.0, cumulative=False) for i in range(3)])
    base = "http_server_request_duration_seconds"
    stored = raw(prometheus_server, f'{{__name__=~"{base}_.*", run="{run}"}}')
    route = {"http_route": "/cart"}
    assert stored[labels(f"{base}_bucket", run, le="1", **route)] == [(ms(i), 6.0 * (i + 1)) for i in range(3)]
    assert stored[labels(f"{base}_bucket", run, le="+Inf", **route)] == [(ms(i), 10.0 * (i + 1)) for i in range(3)]
    assert stored[labels(f"{base}_count", run, **route)] == [(ms(i), 10.0 * (i + 1)) for i in range(3)]
    assert stored[labels(f"{base}_sum", run, **route)] == [(ms(i), 5.0 * (i + 1)) for i in range(3)]


async def test_label_values_round_trip_exactly(
    writer: RemoteWriter, prometheus_server: PrometheusServer, run: str
) -> None:
    tricky = 'quote " backslash \\ brace } newline \n tab \t unicode ü ✓ end'
    await writer.write([pt("odd.labels", MetricKind.GAUGE, 0, run, value=1.0, attributes={"v": tricky})])
    assert raw(prometheus_server, f'odd_labels{{run="{run}"}}') == {labels("odd_labels", run, v=tricky): [(ms(0), 1.0)]}


# ----------------------------------------------------------------------------------------------- redelivery, refusals


async def test_redelivering_a_batch_is_harmless(
    writer: RemoteWriter, prometheus_server: PrometheusServer, run: str, caplog: pytest.LogCaptureFixture
) -> None:
    batch = [
        *(pt("queue.depth", MetricKind.GAUGE, i, run, value=float(i)) for i in range(4)),
        *(pt("k8s.pod.network.io", MetricKind.SUM, i, run, value=10.0 * i) for i in range(4)),
        *(histogram(run, i, (1.0 * i, 0.0, 0.0, 0.0), 0.001 * i) for i in range(4)),
    ]
    await writer.write(batch)
    before = raw(prometheus_server, f'{{run="{run}"}}')
    with caplog.at_level(logging.WARNING, logger="adapters.prometheus.remote_write"):
        await writer.write(batch)
        await writer.write(batch[::-1])
    assert raw(prometheus_server, f'{{run="{run}"}}') == before
    assert len(before) == 8 and not caplog.records


async def test_refused_samples_are_logged_and_the_rest_is_kept(
    writer: RemoteWriter, prometheus_server: PrometheusServer, run: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A different value at a series' newest timestamp ("duplicate sample for timestamp", 400) and a sample older
    than the out-of-order window ("too old sample", a 500 in Prometheus 2.42) are refused; Prometheus rolls back
    the whole request for either, and the writer gets the samples around them in by splitting it."""
    await writer.write([pt("temp", MetricKind.GAUGE, 3, run, value=1.0)])
    thirty_one_days_ago = pt("temp", MetricKind.GAUGE, 0, run, value=5.0)
    thirty_one_days_ago.ts_ns -= 31 * 86_400 * 1_000_000_000
    batch = [
        thirty_one_days_ago,
        *(pt("temp", MetricKind.GAUGE, i, run, value=float(i), attributes={"other": "yes"}) for i in range(6)),
        pt("temp", MetricKind.GAUGE, 3, run, value=2.0),  # conflicts with the 1.0 already stored at i=3
        pt("temp", MetricKind.GAUGE, 4, run, value=4.0),
    ]
    with caplog.at_level(logging.WARNING, logger="adapters.prometheus.remote_write"):
        await writer.write(batch)
    assert raw(prometheus_server, f'temp{{run="{run}"}}') == {
        labels("temp", run): [(ms(3), 1.0), (ms(4), 4.0)],
        labels("temp", run, other="yes"): [(ms(i), float(i)) for i in range(6)],
    }
    [record] = caplog.records
    assert "refused 2 of 9 samples" in record.getMessage()


# ----------------------------------------------------------------------------------------------- transport


class Faulty(httpx.AsyncBaseTransport):
    """In front of the real server: answers the first requests with `statuses` itself, forwards the rest."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.requests: list[httpx.Request] = []
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.statuses:
            return httpx.Response(self.statuses.pop(0), text="injected")
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def test_overload_and_server_errors_are_retried(prometheus_server: PrometheusServer, run: str) -> None:
    transport = Faulty(503, 429, 500)
    writer = RemoteWriter(prometheus_server.url, backoff_s=0.01, transport=transport)
    try:
        await writer.write([pt("retried", MetricKind.GAUGE, 0, run, value=3.0)])
    finally:
        await writer.close()
    assert len(transport.requests) == 4
    request = transport.requests[-1]
    assert request.url.path == "/api/v1/write"
    assert request.headers["content-encoding"] == "snappy"
    assert request.headers["content-type"] == "application/x-protobuf"
    assert request.headers["x-prometheus-remote-write-version"] == "0.1.0"
    assert raw(prometheus_server, f'retried{{run="{run}"}}') == {labels("retried", run): [(ms(0), 3.0)]}


async def test_large_writes_are_split(prometheus_server: PrometheusServer, run: str) -> None:
    transport = Faulty()
    writer = RemoteWriter(prometheus_server.url, max_samples_per_request=7, transport=transport)
    try:
        await writer.write(
            [pt("split", MetricKind.GAUGE, i, run, value=float(i)) for i in range(40)]
            + [pt("split2", MetricKind.GAUGE, i, run, value=-1.0) for i in range(10)]
        )
    finally:
        await writer.close()
    assert len(transport.requests) == 8  # ceil(50 / 7)
    assert raw(prometheus_server, f'split{{run="{run}"}}') == {
        labels("split", run): [(ms(i), float(i)) for i in range(40)]
    }
    assert raw(prometheus_server, f'split2{{run="{run}"}}') == {
        labels("split2", run): [(ms(i), -1.0) for i in range(10)]
    }


async def test_an_unreachable_server_answers_retry(run: str) -> None:
    with socket.socket() as s:  # a port nobody listens on: bound, never listening
        s.bind(("127.0.0.1", 0))
        writer = RemoteWriter(f"http://127.0.0.1:{s.getsockname()[1]}", retry_deadline_s=1.0)
        try:
            result = await writer.write([pt("nowhere", MetricKind.GAUGE, 0, run, value=1.0)])
            assert result.outcome == "retry" and "unreachable" in result.reason
        finally:
            await writer.close()


async def test_a_failed_write_adds_its_deltas_once_when_retried(prometheus_server: PrometheusServer, run: str) -> None:
    transport = Faulty(*[503] * 1000)  # more than fit in the deadline
    writer = RemoteWriter(prometheus_server.url, retry_deadline_s=0.05, backoff_s=0.01, transport=transport)
    batch = [pt("tries", MetricKind.SUM, i, run, value=1.0, cumulative=False) for i in range(3)]
    try:
        result = await writer.write(batch)
        assert result.outcome == "retry" and "503" in result.reason
        transport.statuses = []
        await writer.write(batch)  # the sender's retry
        await writer.write(batch)  # and a redelivery on top
    finally:
        await writer.close()
    assert raw(prometheus_server, f'tries_total{{run="{run}"}}') == {
        labels("tries_total", run): [(ms(0), 1.0), (ms(1), 2.0), (ms(2), 3.0)]
    }
