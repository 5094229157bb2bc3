"""Component-scoped logs query latency on OpenSearch: through the Observer (HTTP, the real `observer up`
process with OPENSEARCH_ADDRESS) next to the same search sent directly with opensearch-py, in the same run,
over the same indices."""

from __future__ import annotations

import itertools
from pathlib import Path

import httpx
import yaml
from opensearchpy import OpenSearch

from adapters.opensearch import queries
from adapters.opensearch.layout import IndexLayout
from bench import data
from bench.harness import report, timings_ms
from bench.logs_query import QUERIES, observer_body
from devservers.observer import observer_up
from domain.model import ComponentScope, TimeRange

QUERY_ENDPOINT = "/api/v1/logs/query"


def registry_file(directory: Path) -> Path:
    """The bench platform's names and UIDs, so the Observer resolves them without having seen the records."""
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


def run(url: str, layout: IndexLayout, records: int, window: TimeRange, workdir: Path, repeat: int = 400) -> dict:
    scope = ComponentScope(
        data.NAMESPACE,
        data.uid("project", data.PROJECT),
        data.uid("component", "cart"),
        data.uid("environment", "production"),
    )
    index = layout.covering(layout.logs, window.start_ns, window.end_ns)
    params = {"ignore_unavailable": "true", "allow_no_indices": "true"}
    client = OpenSearch(hosts=[url], timeout=30)
    queries_cycle = itertools.cycle(QUERIES)

    def direct() -> None:
        phrase, levels = next(queries_cycle)
        body = queries.logs_body(scope, window, "desc", 100, levels, phrase)
        assert client.search(index=index, body=body, params=params)["hits"]["hits"]

    direct_ms = timings_ms(direct, repeat)
    client.close()

    env = {
        "OPENSEARCH_ADDRESS": url,
        "OPENSEARCH_INDEX_PREFIX": layout.logs,
        "OPENSEARCH_EVENTS_INDEX_PREFIX": layout.events,
        "OPENSEARCH_TRACES_INDEX_PREFIX": layout.traces,
        "OBSERVER_RETENTION_HOURS": str(24 * 365 * 10),  # the bench data is dated; retention must leave it be
    }
    registry = registry_file(workdir)
    with (
        observer_up(workdir / "observer", "--registry", str(registry), env=env) as server,
        httpx.Client(base_url=server.api, timeout=30) as http,
    ):

        def api() -> None:
            phrase, levels = next(queries_cycle)
            response = http.post(
                QUERY_ENDPOINT,
                json=observer_body(window, phrase, levels),
            )
            assert response.status_code == 200 and response.json()["logs"], response.text

        api_ms = timings_ms(api, repeat)

    overhead_p50 = round(api_ms["p50_ms"] - direct_ms["p50_ms"], 3)
    overhead_p99 = round(api_ms["p99_ms"] - direct_ms["p99_ms"], 3)
    raw = {
        "records": records,
        "direct": direct_ms,
        "api": api_ms,
        "overhead_p50_ms": overhead_p50,
        "overhead_p99_ms": overhead_p99,
    }
    report(
        "opensearch_logs_query",
        [
            ("documents indexed", f"{records:,}", ""),
            ("direct opensearch-py p50 / p99 (ms)", f"{direct_ms['p50_ms']} / {direct_ms['p99_ms']}", "baseline"),
            ("Observer HTTP p50 / p99 (ms)", f"{api_ms['p50_ms']} / {api_ms['p99_ms']}", ""),
            ("overhead p50 / p99 (ms)", f"{overhead_p50} / {overhead_p99}", "target <= 5 / <= 15"),
        ],
        raw,
    )
    return raw
