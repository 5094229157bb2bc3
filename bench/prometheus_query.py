"""Metrics query latency on Prometheus, 24 h at a 1 m step: through the Observer (HTTP, the real `observer up`
with PROMETHEUS_ADDRESS) next to the baseline, the direct queries in the same run: every series key of the family
as a PromQL query of its own (seven for `http`), sent concurrently with httpx (and, for the choice of client,
with prometheus-api-client in threads). The backend itself now sends two (adapters/prometheus/backend.py), also
timed directly. Baseline, the backend's queries and the Observer are timed in turns (`interleaved_ms`), and
Prometheus's CPU per request is measured for each."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import yaml
from prometheus_api_client import PrometheusConnect

from adapters.prometheus.backend import merged
from adapters.prometheus.otel import OtelScheme
from adapters.prometheus.remote_write import RemoteWriter
from bench.harness import interleaved, process_cpu_s, report, timings_ms
from devservers.observer import observer_up
from devservers.prometheus import start_prometheus
from devservers.sample import COMPONENTS, ENVIRONMENTS, PROJECT, PROJECT_UID, platform_points
from domain.model import ComponentScope
from domain.timeutil import format_rfc3339, now_ns

NAMESPACE = "benchmetrics"
MINUTE = 60 * 10**9
DAY = 24 * 60 * MINUTE
STEP = MINUTE
#: Another checkout of the project (say, the commit before a change): its Observer is timed in the same rounds.
BEFORE_TREE = os.environ.get("BENCH_BEFORE_TREE", "")


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


def prometheus_cpu_s(url: str) -> float:
    """Prometheus's own CPU seconds so far (its `process_cpu_seconds_total`)."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    return float(next(line.split()[1] for line in text.splitlines() if line.startswith("process_cpu_seconds_total")))


def prometheus_cpu_ms_per_request(url: str, run: Callable[[], object], n: int = 50) -> float:
    before = prometheus_cpu_s(url)
    for _ in range(n):
        run()
    return round((prometheus_cpu_s(url) - before) * 1000 / n, 2)


def process_cpu_ms_per_request(pid: int, run: Callable[[], object], n: int = 50) -> float:
    """A process's CPU time per call of `run`."""
    before = process_cpu_s(pid)
    for _ in range(n):
        run()
    return round((process_cpu_s(pid) - before) * 1000 / n, 2)


def measure(url: str, start: int, end: int, points: int, workdir: Path, repeat: int) -> dict:
    scope = ComponentScope(NAMESPACE, PROJECT_UID, COMPONENTS["cart"], ENVIRONMENTS["prod"])
    plan = OtelScheme().family_queries("http", scope, STEP)
    assert plan.quantiles is not None
    # The baseline: every series key as a query of its own, as the backend sent them before (seven for `http`).
    queries = list(plan.expressions().values())
    # What the backend sends now: the plain series in one query, and the histogram's buckets once.
    backend_queries = [merged(plan.series), plan.quantiles.buckets]
    form = lambda expr: {"query": expr, "start": str(start // 10**9), "end": str(end // 10**9), "step": "60"}  # noqa: E731

    loop = asyncio.new_event_loop()
    http = httpx.AsyncClient(base_url=url, timeout=30)

    async def concurrently(exprs: list[str]) -> None:
        responses = await asyncio.gather(*(http.post("/api/v1/query_range", data=form(q)) for q in exprs))
        assert all(r.status_code == 200 and r.json()["data"]["result"] for r in responses)

    def direct() -> None:
        loop.run_until_complete(concurrently(queries))

    def direct_backend_queries() -> None:
        loop.run_until_complete(concurrently(backend_queries))

    prom = PrometheusConnect(url=url, disable_ssl=True)
    pool = concurrent.futures.ThreadPoolExecutor(len(queries))
    begin, finish = (datetime.fromtimestamp(t / 1e9, UTC) for t in (start, end))

    def threaded() -> None:
        results = list(pool.map(lambda q: prom.custom_query_range(q, begin, finish, "60s"), queries))
        assert all(results)

    threads_ms = timings_ms(threaded, repeat)
    pool.shutdown()

    env = {"PROMETHEUS_ADDRESS": url, "OBSERVER_METRICS_SCHEME": "otel"}
    body = {
        "metric": "http",
        "step": "1m",
        "startTime": format_rfc3339(start),
        "endTime": format_rfc3339(end),
        "searchScope": {"namespace": NAMESPACE, "project": PROJECT, "component": "cart", "environment": "prod"},
    }
    registry = str(registry_file(workdir))
    with contextlib.ExitStack() as stack:
        observer_pids: dict[str, int] = {}

        def api_of(name: str, tree: Path | None = None) -> Callable[[], None]:
            """An Observer started from this checkout, or from `tree` (another checkout of the project: the
            module search path starts at the working directory, so its code is what runs)."""
            here = Path.cwd()
            if tree is not None:
                os.chdir(tree)
            try:
                observer = stack.enter_context(observer_up(workdir / name, "--registry", registry, env=env))
            finally:
                os.chdir(here)
            client = stack.enter_context(httpx.Client(base_url=observer.api, timeout=30))
            observer_pids[name] = observer.process.pid

            def api() -> None:
                response = client.post("/api/v1/metrics/query", json=body)
                assert response.status_code == 200 and len(response.json()["latencyP99"]) > 1000, response.text[:300]

            return api

        runs = {"direct": direct, "direct_backend_queries": direct_backend_queries, "api": api_of("observer")}
        if BEFORE_TREE:
            runs["api_before"] = api_of("observer-before", Path(BEFORE_TREE))
        timed = interleaved(runs, repeat)
        cpu = {name: prometheus_cpu_ms_per_request(url, run) for name, run in runs.items()}
        # The Observer's own CPU per request: less sensitive to the neighbours' load than its latency.
        observer_cpu = {
            "api": process_cpu_ms_per_request(observer_pids["observer"], runs["api"]),
            **(
                {"api_before": process_cpu_ms_per_request(observer_pids["observer-before"], runs["api_before"])}
                if BEFORE_TREE
                else {}
            ),
        }
    loop.run_until_complete(http.aclose())
    loop.close()

    direct_ms, backend_ms, api_ms = timed["direct"], timed["direct_backend_queries"], timed["api"]
    overhead = round(api_ms["p50_ms"] - direct_ms["p50_ms"], 3)
    raw = {
        "points_written": points,
        "direct_httpx": direct_ms,
        "direct_backend_queries": backend_ms,
        "direct_prometheus_api_client": threads_ms,
        "api": api_ms,
        "overhead_p50_ms": overhead,
        "prometheus_cpu_ms_per_request": cpu,
        "observer_cpu_ms_per_request": observer_cpu,
    }
    before_rows = []
    if "api_before" in timed:
        before_ms = timed["api_before"]
        raw |= {"api_before": before_ms, "before_tree": BEFORE_TREE}
        raw["overhead_before_p50_ms"] = round(before_ms["p50_ms"] - direct_ms["p50_ms"], 3)
        before_rows = [
            (
                "Observer HTTP from BENCH_BEFORE_TREE p50 / p99 (ms)",
                f"{before_ms['p50_ms']} / {before_ms['p99_ms']}",
                "",
            ),
            ("its overhead at p50 (ms)", f"{raw['overhead_before_p50_ms']}", "before"),
            ("its overhead, median of paired differences (ms)", f"{before_ms['paired_p50_over_baseline_ms']}", ""),
            ("its Prometheus CPU ms per request", f"{cpu['api_before']}", ""),
            ("its own CPU ms per request", f"{observer_cpu['api_before']}", ""),
        ]
    n = len(queries)
    report(
        "prometheus_metrics_query",
        [
            ("OTel points remote-written (24 h)", f"{points:,}", ""),
            (
                f"{n} PromQL, concurrent httpx p50 / p99 (ms)",
                f"{direct_ms['p50_ms']} / {direct_ms['p99_ms']}",
                "baseline",
            ),
            (
                f"{n} PromQL, prometheus-api-client threads p50 / p99",
                f"{threads_ms['p50_ms']} / {threads_ms['p99_ms']}",
                "client choice (not interleaved)",
            ),
            (
                f"the backend's {len(backend_queries)} PromQL, direct p50 / p99 (ms)",
                f"{backend_ms['p50_ms']} / {backend_ms['p99_ms']}",
                "",
            ),
            ("Observer HTTP, http family p50 / p99 (ms)", f"{api_ms['p50_ms']} / {api_ms['p99_ms']}", ""),
            ("overhead at p50 (ms)", f"{overhead}", "target <= 10"),
            ("overhead, median of paired differences (ms)", f"{api_ms['paired_p50_over_baseline_ms']}", ""),
            (
                "Prometheus CPU ms per request: baseline / Observer",
                f"{cpu['direct']} / {cpu['api']}",
                "",
            ),
            ("Observer's own CPU ms per request", f"{observer_cpu['api']}", ""),
            *before_rows,
        ],
        raw,
    )
    return raw


if __name__ == "__main__":
    started = time.perf_counter()
    run()
