"""Delivery isolated per destination, against the session's real OpenSearch and Prometheus (tests/conftest.py).

The collector's production pieces run in process: the durable buffer with one cursor per destination, the
`BufferSink` receivers write to, and `export_pipelines` (one export loop per destination) over the real
OpenSearch and Prometheus backends. Faults are made on the network path, never by imitating a server:

- Prometheus "stopped": a TCP forwarder in front of the shared Prometheus closes its port and cuts every
  connection, exactly what a client sees of a stopped server, and listens again on the same port later. (Stopping
  the session's Prometheus itself would disturb every other test.)
- OpenSearch refusing a bulk request as a whole: devservers/faulty_proxy.py answers the first `_bulk` with 400
  and forwards everything else to the real OpenSearch.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from opensearchpy import AsyncOpenSearch

from adapters.opensearch.backend import OpenSearchBackend
from adapters.opensearch.client import OpenSearchConfig
from adapters.opensearch.layout import IndexLayout
from adapters.prometheus.backend import PrometheusBackend
from adapters.prometheus.client import PrometheusConfig
from adapters.prometheus.otel import OtelScheme
from adapters.prometheus.remote_write import RemoteWriter
from collectors.buffer import DiskBuffer
from collectors.destination import Destination
from collectors.pipeline import BufferSink, export_pipelines
from collectors.telemetry import CollectorTelemetry
from devservers.faulty_proxy import FaultyProxy
from devservers.local import free_port, serving
from devservers.opensearch_layout import drop_layout, unique_layout
from devservers.prometheus import PrometheusServer
from domain.model import Identity, LogRecord, MetricKind, MetricPoint

pytestmark = pytest.mark.integration

RECORDS = frozenset({"logs", "events", "spans"})
METRICS = frozenset({"metrics"})
WHO = Identity(namespace="shop", component="cart", pod="cart-0", pod_namespace="dp-shop", container="main")
#: How long Prometheus stays down, as the issue asks.
OUTAGE_S = 30.0
#: Logs must be searchable this soon after they were accepted, outage or not.
LOGS_WITHIN_S = 5.0


class PortSwitch:
    """A TCP forwarder on a fixed loopback port that can be taken down and brought back on the same port."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._pipe, "127.0.0.1", self.port)

    async def down(self) -> None:
        """Refuses new connections and resets those open, as a stopped server's port does."""
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._open):
            writer.transport.abort()
        self._open.clear()
        await self._server.wait_closed()
        self._server = None

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._open.update((writer, up_writer))

        async def copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                sink.transport.abort()

        await asyncio.gather(copy(reader, up_writer), copy(up_reader, writer))
        self._open.difference_update((writer, up_writer))


@asynccontextmanager
async def exporting(
    directory: Path, destinations: list[Destination]
) -> AsyncIterator[tuple[BufferSink, DiskBuffer, CollectorTelemetry]]:
    """A buffer with one cursor per destination and the export loops draining it, as `observer collect` runs."""
    telemetry = CollectorTelemetry()
    with DiskBuffer(directory, consumers=[d.name for d in destinations]) as buffer:
        task = asyncio.create_task(export_pipelines(buffer, destinations, telemetry))
        try:
            yield BufferSink(buffer, telemetry), buffer, telemetry
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def eventually(check: Callable[[], object], within_s: float, what: str) -> float:
    """Polls `check` (sync or async) until it is truthy; returns the seconds it took."""
    started = time.monotonic()
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return time.monotonic() - started
        if time.monotonic() - started > within_s:
            raise AssertionError(f"{what}: not within {within_s}s")
        await asyncio.sleep(0.1)


async def log_count(client: AsyncOpenSearch, layout: IndexLayout) -> int:
    # A daily index the sink has just created may still be allocating its shard: a count then is a 503, not 0.
    await client.cluster.health(index=layout.pattern(layout.logs), wait_for_status="yellow")  # 30 s at most
    await client.indices.refresh(index=layout.pattern(layout.logs), params={"ignore_unavailable": "true"})
    response = await client.count(index=layout.pattern(layout.logs), params={"ignore_unavailable": "true"})
    return int(response["count"])


def logs(run: str, batch: int, count: int) -> list[LogRecord]:
    now = time.time_ns()
    return [LogRecord(now + i, f"{run} batch {batch} line {i}", WHO, "INFO", stream="stdout") for i in range(count)]


@pytest.fixture
async def opensearch_client(opensearch_url: str) -> AsyncIterator[AsyncOpenSearch]:
    client = AsyncOpenSearch(hosts=[opensearch_url], max_retries=0, timeout=30)
    yield client
    await client.close()


@pytest.fixture
async def layout(opensearch_client: AsyncOpenSearch) -> AsyncIterator[IndexLayout]:
    chosen = unique_layout("delivery")
    yield chosen
    await drop_layout(opensearch_client, chosen)


async def test_a_prometheus_outage_delays_only_metrics_and_loses_none(
    tmp_path: Path,
    opensearch_url: str,
    opensearch_client: AsyncOpenSearch,
    layout: IndexLayout,
    prometheus_server: PrometheusServer,
) -> None:
    """Prometheus down for 30 s: every batch's logs are in OpenSearch within seconds all along, and once
    Prometheus is back every metric point of the outage arrives, each exactly once."""
    run = uuid.uuid4().hex[:12]
    switch = PortSwitch(prometheus_server.url)
    await switch.up()
    opensearch = OpenSearchBackend(OpenSearchConfig(address=opensearch_url, layout=layout))
    writer = RemoteWriter(switch.url, timeout_s=2, retry_deadline_s=2, max_backoff_s=0.5)
    prometheus = PrometheusBackend(PrometheusConfig(switch.url), OtelScheme(), writer)
    await opensearch.install(retention_days=1)
    destinations = [Destination("opensearch", opensearch, RECORDS), Destination("prometheus", prometheus, METRICS)]
    base_s = int(time.time()) - 300  # sample times in the recent past, one second apart
    points: list[tuple[int, float]] = []  # (ms, value) of every point accepted
    try:
        async with exporting(tmp_path / "buffer", destinations) as (sink, buffer, telemetry):
            await switch.down()
            started, batch, sent = time.monotonic(), 0, 0
            while time.monotonic() - started < OUTAGE_S:
                ts_s = base_s + batch
                point = MetricPoint("delivery_probe", MetricKind.GAUGE, ts_s * 10**9, WHO, {"run": run}, value=batch)
                points.append((ts_s * 1000, float(batch)))
                await sink.write(batch_id=f"{run}-{batch}", logs=logs(run, batch, 5), metrics=[point])
                sent += 5
                waited = await eventually(
                    functools.partial(_has, opensearch_client, layout, sent),
                    LOGS_WITHIN_S,
                    f"the logs of batch {batch}",
                )
                assert waited < LOGS_WITHIN_S
                batch += 1
                await asyncio.sleep(max(0.0, 1.0 - waited))
            assert buffer.backlog_of("opensearch") == 0
            assert buffer.backlog_of("prometheus") == batch  # all of the outage's metrics wait, on disk
            assert _sample(telemetry, "collector_destination_export_retries_total", destination="prometheus") > 0
            await switch.up()
            await eventually(lambda: buffer.backlog == 0, 60, "the metrics after the outage")
    finally:
        await switch.down()
        await prometheus.close()
        await opensearch.close()
    assert _stored(prometheus_server, run, base_s) == points  # every point, each once, with its value
    assert await log_count(opensearch_client, layout) == sent


async def test_a_batch_refused_whole_is_dropped_counted_and_the_next_batches_arrive(
    tmp_path: Path, opensearch_url: str, opensearch_client: AsyncOpenSearch, layout: IndexLayout
) -> None:
    proxy = FaultyProxy(opensearch_url)
    run = uuid.uuid4().hex[:12]
    with serving(proxy.app) as url:
        backend = OpenSearchBackend(OpenSearchConfig(address=url, layout=layout))
        try:
            await backend.install(retention_days=1)
            proxy.fail_statuses = [400]  # the first bulk request: the first batch, whole
            async with exporting(tmp_path / "buffer", [Destination("opensearch", backend, RECORDS)]) as (
                sink,
                buffer,
                telemetry,
            ):
                for batch in range(3):
                    await sink.write(batch_id=f"{run}-{batch}", logs=logs(run, batch, 10))
                await eventually(lambda: buffer.backlog == 0, 60, "all three batches settled")
                metrics = await _scrape(telemetry)
        finally:
            await backend.close()
    assert [seen.status for seen in proxy.bulks] == [400, 200, 200]
    assert (
        metrics[("collector_records_dropped_total", (("pipeline", "export"), ("reason", "destination_invalid")))] == 10
    )
    key = (
        "collector_destination_records_dropped_total",
        (("destination", "opensearch"), ("reason", "destination_invalid")),
    )
    assert metrics[key] == 10
    assert await log_count(opensearch_client, layout) == 20
    response = await opensearch_client.search(
        index=layout.pattern(layout.logs), body={"size": 50, "query": {"match_all": {}}}
    )
    documents = [json.dumps(hit["_source"]) for hit in response["hits"]["hits"]]
    assert sum(f"{run} batch 0 " in document for document in documents) == 0  # the refused batch, and only it


# ----------------------------------------------------------------------------------------------- helpers


async def _has(client: AsyncOpenSearch, layout: IndexLayout, count: int) -> bool:
    return await log_count(client, layout) >= count


def _stored(server: PrometheusServer, run: str, base_s: int) -> list[tuple[int, float]]:
    """Every raw sample of the run's series (ms, value), read at the end of the window."""
    result = server.query(f'delivery_probe{{run="{run}"}}[10m]', at=base_s + 300)
    assert len(result) <= 1, result
    return [(round(float(t) * 1000), float(v)) for t, v in result[0]["values"]] if result else []


def _sample(telemetry: CollectorTelemetry, name: str, **labels: str) -> float:
    return telemetry.registry.get_sample_value(name, labels) or 0.0


async def _scrape(telemetry: CollectorTelemetry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The collector's /metrics, served by its own app and parsed as a scraper would."""
    from prometheus_client.parser import text_string_to_metric_families

    async with httpx.AsyncClient(transport=httpx.ASGITransport(telemetry.app()), base_url="http://collector") as client:
        text = (await client.get("/metrics")).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
