"""Metrics query latency on Prometheus, 24 h at a 1 m step: through the Observer (HTTP, the real `observer up`
with PROMETHEUS_ADDRESS) next to the same PromQL sent directly in the same run: concurrently with httpx (what
the backend does) and, for the choice of client, with prometheus-api-client in threads."""

from __future__ import annotations

import asyncio
import concurrent.futures
import tempfile
import time
from datetime import UTC
from pathlib import Path

import httpx
import yaml
from prometheus_api_client import PrometheusConnect

from adapters.prometheus.otel import OtelScheme
from adapters.prometheus.remote_write import RemoteWriter
from bench.harness import report, timings_ms
from devservers.observer import observer_up
from devservers.prometheus import start_prometheus
from devservers.sample import COMPONENTS, ENVIRONMENTS, PROJECT, PROJECT_UID, platform_points
from domain.model import ComponentScope
from domain.timeutil import format_rfc3339, now_ns

NAMESPACE = "benchmetrics"
MINUTE = 60 * 10**9
DAY = 24 * 60 * MINUTE
STEP = MINUTE


def registry_file(directory: Path) -> Path:
    document = {
        "namespaces": [
            {
                "name": NAMESPACE,
                "environments": [{"name": name, "uid": uid} for name, uid in ENVIRONMENTS.items()],
                "projects": [
                    {
                        "name": PROJECT,
                        "uid": PROJECT_UID,
                        "components": [{"name": n, "uid": u} for n, u in COMPONENTS.items()],
                    }
                ],
            }
        ]
    }
    path = directory / "registry.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


async def load(url: str, start: int) -> int:
    writer = RemoteWriter(url)
    points = platform_points(NAMESPACE, start, minutes=24 * 60 + 10)
    for chunk in range(0, len(points), 20_000):
        await writer.write(points[chunk : chunk + 20_000])
    await writer.close()
    return len(points)


def run(repeat: int = 200) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        server = start_prometheus(workdir / "prometheus")
        try:
            end = now_ns() // MINUTE * MINUTE - MINUTE
            start = end - DAY
            samples = asyncio.run(load(server.url, start - 10 * MINUTE))
            return measure(server.url, start, end, samples, workdir, repeat)
        finally:
            server.stop()


def measure(url: str, start: int, end: int, points: int, workdir: Path, repeat: int) -> dict:
    scope = ComponentScope(NAMESPACE, PROJECT_UID, COMPONENTS["cart"], ENVIRONMENTS["prod"])
    queries = list(OtelScheme().family("http", scope, STEP).values())
    form = lambda expr: {"query": expr, "start": str(start // 10**9), "end": str(end // 10**9), "step": "60"}  # noqa: E731

    loop = asyncio.new_event_loop()
    http = httpx.AsyncClient(base_url=url, timeout=30)

    async def concurrently() -> None:
        responses = await asyncio.gather(*(http.post("/api/v1/query_range", data=form(q)) for q in queries))
        assert all(r.status_code == 200 and r.json()["data"]["result"] for r in responses)

    direct_ms = timings_ms(lambda: loop.run_until_complete(concurrently()), repeat)

    prom = PrometheusConnect(url=url, disable_ssl=True)
    pool = concurrent.futures.ThreadPoolExecutor(len(queries))
    from datetime import datetime

    begin, finish = (datetime.fromtimestamp(t / 1e9, UTC) for t in (start, end))

    def threaded() -> None:
        results = list(pool.map(lambda q: prom.custom_query_range(q, begin, finish, "60s"), queries))
        assert all(results)

    threads_ms = timings_ms(threaded, repeat)
    pool.shutdown()
    loop.run_until_complete(http.aclose())
    loop.close()

    env = {"PROMETHEUS_ADDRESS": url, "OBSERVER_METRICS_SCHEME": "otel"}
    body = {
        "metric": "http",
        "step": "1m",
        "startTime": format_rfc3339(start),
        "endTime": format_rfc3339(end),
        "searchScope": {"namespace": NAMESPACE, "project": PROJECT, "component": "cart", "environment": "prod"},
    }
    with (
        observer_up(workdir / "observer", "--registry", str(registry_file(workdir)), env=env) as observer,
        httpx.Client(base_url=observer.api, timeout=30) as client,
    ):

        def api() -> None:
            response = client.post("/api/v1/metrics/query", json=body)
            assert response.status_code == 200 and len(response.json()["latencyP99"]) > 1000, response.text[:300]

        api_ms = timings_ms(api, repeat)

    overhead = round(api_ms["p50_ms"] - direct_ms["p50_ms"], 3)
    raw = {
        "points_written": points,
        "direct_httpx": direct_ms,
        "direct_prometheus_api_client": threads_ms,
        "api": api_ms,
        "overhead_p50_ms": overhead,
    }
    report(
        "prometheus_metrics_query",
        [
            ("OTel points remote-written (24 h)", f"{points:,}", ""),
            ("7 PromQL, concurrent httpx p50 / p99 (ms)", f"{direct_ms['p50_ms']} / {direct_ms['p99_ms']}", "baseline"),
            (
                "7 PromQL, prometheus-api-client threads p50 / p99",
                f"{threads_ms['p50_ms']} / {threads_ms['p99_ms']}",
                "client choice",
            ),
            ("Observer HTTP, http family p50 / p99 (ms)", f"{api_ms['p50_ms']} / {api_ms['p99_ms']}", ""),
            ("overhead at p50 (ms)", f"{overhead}", "target <= 10"),
        ],
        raw,
    )
    return raw


if __name__ == "__main__":
    started = time.perf_counter()
    run()
