"""Component-scoped logs query on OpenSearch: through the Observer (HTTP, the real `observer up` process with
OPENSEARCH_ADDRESS, a JWT checked on every request, remote authorization and OpenChoreo-API name resolution
served by a local stand-in) next to the same search sent directly, in the same run, over the same indices.

The baseline is the cheapest body that gives the same answer: the candidates below are each checked to return
the same 100 lines in the same order with the same total, then timed; the fastest is the baseline. Each side is
measured serially and with 8 concurrent clients (latency and throughput), with the CPU OpenSearch spent per
1,000 requests (its node stats). Both sides use the same HTTP client (httpx), so the client's own cost cancels.
Serial timings interleave the sides request by request (candidates with each other, then the cheapest with the
Observer), so a machine whose load changes during the run weighs on both alike.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml

from adapters.opensearch import fields, queries, timeline
from adapters.opensearch.backend import log_timeline
from adapters.opensearch.layout import IndexLayout
from bench import data
from bench.harness import interleaved, peak_rss_mb, percentile, report
from bench.logs_query import QUERIES, observer_body
from devservers.observer import observer_up
from devservers.oidc import start_oidc_issuer
from devservers.openchoreo_standin import openchoreo_standin
from domain.model import ComponentScope, LogsQuery, TimeRange

QUERY_ENDPOINT = "/api/v1/logs/query"
CLIENTS = 8
WHOLE = {"ignore_unavailable": "true", "allow_no_indices": "true"}
FILTERED = {**WHOLE, "filter_path": "took,hits.total,hits.hits._id,hits.hits._source,hits.hits.sort"}
#: What a log entry is built from: the `_source` filter the Observer sent before issue 14.
LOG_SOURCE = ["@timestamp", "log", "level", "traceId", "spanId", "stream", "kubernetes"]
BEFORE = "(time, _id) sort, _source filtered, filter_path (before issue 14)"
Candidate = tuple[list[dict[str, Any]], dict[str, str]]  # a body per bench query, and the search's parameters


def registry_file(directory: Path) -> Path:
    """The bench platform's names and UIDs, for the stand-in (and for `observer up --registry`)."""
    document = {
        "namespaces": [
            {
                "name": data.NAMESPACE,
                "environments": [{"name": env, "uid": data.uid("environment", env)} for env in data.ENVIRONMENTS],
                "projects": [
                    {
                        "name": data.PROJECT,
                        "uid": data.uid("project", data.PROJECT),
                        "components": [{"name": c, "uid": data.uid("component", c)} for c in data.COMPONENTS],
                    }
                ],
            }
        ]
    }
    path = directory / "registry.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def candidates(window: TimeRange) -> dict[str, Candidate]:
    """Searches that should all give the answer the Observer gives, each with a body per bench query."""
    scope = ComponentScope(
        data.NAMESPACE,
        data.uid("project", data.PROJECT),
        data.uid("component", "cart"),
        data.uid("environment", "production"),
    )
    ours = [timeline.first_body(log_timeline(LogsQuery(scope, window, 100, "desc", lv, ph))) for ph, lv in QUERIES]
    filtered = [{**body, "_source": LOG_SOURCE} for body in ours]
    with_id = [{**body, "sort": queries.time_sort(fields.TIMESTAMP, "desc", fields.DOC_ID)} for body in filtered]
    return {
        "the Observer's: time sort, whole hits": (ours, WHOLE),
        "time sort, _source filtered, filter_path": (filtered, FILTERED),
        BEFORE: (with_id, FILTERED),
    }


def opensearch_cpu_ms(client: httpx.Client) -> int:
    nodes = client.get("/_nodes/_local/stats/process").json()["nodes"]
    return sum(node["process"]["cpu"]["total_in_millis"] for node in nodes.values())


def concurrently(
    base_url: str, send: Callable[[httpx.AsyncClient], Awaitable[None]], requests: int
) -> dict[str, float]:
    """`requests` sends spread over CLIENTS concurrent clients: latency percentiles and requests/s."""
    latencies: list[float] = []

    async def main() -> float:
        limits = httpx.Limits(max_connections=CLIENTS)
        async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as client:
            for _ in range(CLIENTS * 2):
                await send(client)
            remaining = iter(range(requests))

            async def worker() -> None:
                for _ in remaining:
                    started = time.perf_counter()
                    await send(client)
                    latencies.append((time.perf_counter() - started) * 1000)

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(CLIENTS)))
            return time.perf_counter() - started

    wall_s = asyncio.run(main())
    return {
        "p50_ms": round(percentile(latencies, 0.5), 3),
        "p99_ms": round(percentile(latencies, 0.99), 3),
        "rps": round(requests / wall_s, 1),
    }


def opensearch_cpu_per_1000(client: httpx.Client, run_once: Callable[[], object], repeat: int) -> float:
    """OpenSearch's CPU milliseconds per 1,000 requests of one side, from its node stats around `repeat` runs."""
    before = opensearch_cpu_ms(client)
    for _ in range(repeat):
        run_once()
    return (opensearch_cpu_ms(client) - before) / repeat * 1000


def run(url: str, layout: IndexLayout, records: int, window: TimeRange, workdir: Path, repeat: int = 400) -> dict:
    index = layout.covering(layout.logs, window.start_ns, window.end_ns)
    search_path = f"/{index}/_search"
    searches = candidates(window)
    opensearch = httpx.Client(base_url=url, timeout=60)

    def answer(body: dict[str, Any], params: dict[str, str]) -> tuple[list[Any], int]:
        result = opensearch.post(search_path, params=params, json=body).json()
        return [hit["_source"] for hit in result["hits"]["hits"][:100]], result["hits"]["total"]["value"]

    def send(bodies: Iterator[dict[str, Any]], params: dict[str, str]) -> Callable[[], object]:
        return lambda: opensearch.post(search_path, params=params, json=next(bodies)).raise_for_status()

    reference = [answer(body, searches[BEFORE][1]) for body in searches[BEFORE][0]]
    same_answer = {}
    for name, (bodies, params) in searches.items():
        answers = [answer(body, params) for body in bodies]
        if all(
            [line.get("log") for line in got] == [line.get("log") for line in want] and got_total == want_total
            for (got, got_total), (want, want_total) in zip(answers, reference, strict=True)
        ):
            same_answer[name] = send(itertools.cycle(bodies), params)
        else:
            print(f"  (candidate {name!r} answers differently: left out)")
    direct = interleaved(same_answer, repeat)
    for name, run_once in same_answer.items():
        direct[name]["cpu_ms_per_1000"] = opensearch_cpu_per_1000(opensearch, run_once, repeat)
    cheapest = min(direct, key=lambda name: direct[name]["p50_ms"])
    cheapest_bodies, cheapest_params = searches[cheapest]
    cheapest_cycle = itertools.cycle(cheapest_bodies)

    async def direct_send(client: httpx.AsyncClient) -> None:
        (await client.post(search_path, params=cheapest_params, json=next(cheapest_cycle))).raise_for_status()

    cpu_before = opensearch_cpu_ms(opensearch)
    direct_concurrent = concurrently(url, direct_send, repeat)
    direct_concurrent["cpu_ms_per_1000"] = (opensearch_cpu_ms(opensearch) - cpu_before) / (repeat + 16) * 1000

    registry = registry_file(workdir)
    issuer = start_oidc_issuer()
    key = issuer.new_key("ES256")
    issuer.publish(key)
    token = issuer.mint(key, exp=int(time.time()) + 24 * 3600)
    observer_bodies = itertools.cycle([observer_body(window, phrase, levels) for phrase, levels in QUERIES])
    headers = {"Authorization": f"Bearer {token}"}
    try:
        with openchoreo_standin(registry) as standin:
            env = {
                "OPENSEARCH_ADDRESS": url,
                "OPENSEARCH_INDEX_PREFIX": layout.logs,
                "OPENSEARCH_EVENTS_INDEX_PREFIX": layout.events,
                "OPENSEARCH_TRACES_INDEX_PREFIX": layout.traces,
                "OPENSEARCH_AUDIT_PREFIX": layout.audit,
                "OBSERVER_RETENTION_HOURS": str(24 * 365 * 10),  # the bench data is dated; retention must leave it
                "JWKS_URL": issuer.jwks_url,
                "JWT_ISSUER": issuer.url,
                "JWT_AUDIENCE": "observer-api",
                "AUTHZ_MODE": "remote",
                "AUTHZ_SERVICE_URL": standin,
                "UID_RESOLVER_OPENCHOREO_API_URL": standin,
                "UID_RESOLVER_OAUTH_TOKEN_URL": f"{standin}/oauth2/token",
                "UID_RESOLVER_OAUTH_CLIENT_ID": "observer",
                "UID_RESOLVER_OAUTH_CLIENT_SECRET": "bench-secret",
            }
            with (
                observer_up(workdir / "observer", env=env) as server,
                httpx.Client(base_url=server.api, timeout=60, headers=headers) as http,
            ):

                def api() -> None:
                    response = http.post(QUERY_ENDPOINT, json=next(observer_bodies))
                    assert response.status_code == 200 and response.json()["logs"], response.text

                serial = interleaved({"direct": send(cheapest_cycle, cheapest_params), "api": api}, repeat)
                base, api_serial = serial["direct"], serial["api"]
                base["cpu_ms_per_1000"] = direct[cheapest]["cpu_ms_per_1000"]
                api_serial["cpu_ms_per_1000"] = opensearch_cpu_per_1000(opensearch, api, repeat)

                async def api_send(client: httpx.AsyncClient) -> None:
                    response = await client.post(QUERY_ENDPOINT, json=next(observer_bodies), headers=headers)
                    assert response.status_code == 200, response.text

                api_concurrent = concurrently(server.api, api_send, repeat)
                rss_mb = peak_rss_mb(server.process.pid)
    finally:
        issuer.stop()
        opensearch.close()

    serial_ratio = api_serial["p50_ms"] / base["p50_ms"]
    concurrent_ratio = api_concurrent["p50_ms"] / direct_concurrent["p50_ms"]
    rows = [("documents indexed", f"{records:,}", "")]
    rows += [
        (f"direct, {name}: p50 / p99 (ms)", f"{figures['p50_ms']} / {figures['p99_ms']}", "")
        for name, figures in direct.items()
    ]
    rows += [
        ("cheapest body with the same answer", cheapest, "baseline"),
        (
            "serial p50 / p99 (ms): direct | Observer",
            f"{base['p50_ms']} / {base['p99_ms']} | {api_serial['p50_ms']} / {api_serial['p99_ms']}",
            "",
        ),
        ("serial ratio Observer / direct (p50)", f"{serial_ratio:.2f}x", "target <= 3x"),
        (
            f"{CLIENTS} clients p50 / p99 (ms): direct | Observer",
            f"{direct_concurrent['p50_ms']} / {direct_concurrent['p99_ms']} | "
            f"{api_concurrent['p50_ms']} / {api_concurrent['p99_ms']}",
            "",
        ),
        (f"{CLIENTS} clients ratio Observer / direct (p50)", f"{concurrent_ratio:.2f}x", "target <= 3x"),
        (
            f"throughput at {CLIENTS} clients (req/s): direct | Observer",
            f"{direct_concurrent['rps']} | {api_concurrent['rps']}",
            "",
        ),
        (
            "OpenSearch CPU s per 1,000 requests: direct | Observer",
            f"{base['cpu_ms_per_1000'] / 1000:.2f} | {api_serial['cpu_ms_per_1000'] / 1000:.2f}",
            "target: Observer <= direct",
        ),
        ("Observer peak RSS (MB)", f"{rss_mb:.0f}", ""),
    ]
    raw = {
        "records": records,
        "direct": direct,
        "cheapest": cheapest,
        "direct_concurrent": direct_concurrent,
        "api_serial": api_serial,
        "api_concurrent": api_concurrent,
        "serial_ratio": serial_ratio,
        "concurrent_ratio": concurrent_ratio,
        "observer_peak_rss_mb": rss_mb,
    }
    report("opensearch_logs_query", rows, raw)
    return raw
