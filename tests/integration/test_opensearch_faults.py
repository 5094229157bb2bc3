"""With OpenSearch down, slow or failing, queries answer 503 with the contract's error body; they never hang and
never become a 500.

A 503 tells the UI and the MCP tools "retry shortly"; a 500 would say "bug", and a hang would hold a request
slot and the user's patience for the proxy's whole timeout. So each query endpoint is driven, through the REST
API, against:

- nothing listening (a port bound but not listening: refused at once), and a name that does not resolve;
- a loopback server that accepts connections and never answers (the client's `timeout_s` must fire);
- OpenSearch failing a search for real (a red index: its primary can never be allocated -> 503), and a stand-in
  upstream answering 429 (thread pool full), 500 or a gateway's 502/504 HTML page;

and the writer side is driven against the same faults: `OpenSearchBackend.write` gives up with a
`retry` result once its retry deadline passes.

Every call is wrapped in `asyncio.wait_for(..., GUARD_S)`: a hang fails the test instead of the suite. That is a
guard, not a timing assertion; nothing here measures time.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from opensearchpy import AsyncOpenSearch

from adapters.embedded.backend import EmbeddedBackend
from adapters.opensearch.backend import OpenSearchBackend
from adapters.opensearch.client import OpenSearchConfig
from adapters.opensearch.layout import IndexLayout
from devservers.faults import failing_upstream, refusing_port, silent_server
from devservers.local import serving
from devservers.opensearch_layout import drop_layout, unique_layout
from domain.model import Identity, LogRecord
from observer.app import create_public_app
from observer.service import QueryService
from observer.wire import ErrorResponse

pytestmark = pytest.mark.integration

GUARD_S = 10  # far above any timeout configured below; reaching it means "hung"
NS = "faults"
TRACE, SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
WINDOW = {"startTime": "2026-09-21T09:00:00Z", "endTime": "2026-09-21T11:00:00Z"}
SCOPE = {"namespace": NS, "project": "shop", "component": "cart", "environment": "prod"}


@dataclass(frozen=True)
class Query:
    name: str
    method: str
    path: str
    body: dict[str, Any] | None
    error_code: str  # OBS-V1-<signal>-05: the backend is unavailable
    failure: str  # how the message starts


BODY = {**WINDOW, "searchScope": SCOPE}
QUERIES = [
    Query("logs", "POST", "/api/v1/logs/query", BODY, "OBS-V1-L-05", "Failed to retrieve logs"),
    Query("events", "POST", "/api/v1/events/query", BODY, "OBS-V1-E-05", "Failed to retrieve events"),
    Query("traces", "POST", "/api/v1alpha1/traces/query", BODY, "OBS-V1-T-05", "Failed to retrieve traces"),
    Query(
        "spans", "POST", f"/api/v1alpha1/traces/{TRACE}/spans/query", BODY, "OBS-V1-T-05", "Failed to retrieve spans"
    ),
    Query(
        "span",
        "GET",
        f"/api/v1alpha1/traces/{TRACE}/spans/{SPAN}",
        None,
        "OBS-V1-T-05",
        "Failed to retrieve span details",
    ),
]
each_query = pytest.mark.parametrize("query", QUERIES, ids=[q.name for q in QUERIES])


# ----------------------------------------------------------------------------------------------- servers


_GATEWAY_PAGE = "<html><head><title>{0}</title></head><body><center><h1>{0}</h1></center></body></html>"
#: What OpenSearch (or a gateway in front of it) sends with each status.
UPSTREAM_FAULTS = {
    "429-rejected": (
        429,
        "application/json",
        '{"error":{"root_cause":[{"type":"rejected_execution_exception","reason":'
        '"rejected execution of search on QueueResizingOpenSearchThreadPoolExecutor"}],"type":'
        '"rejected_execution_exception","reason":"queue capacity reached"},"status":429}',
    ),
    "500-exception": (
        500,
        "application/json",
        '{"error":{"root_cause":[{"type":"exception","reason":"boom"}],'
        '"type":"exception","reason":"boom"},"status":500}',
    ),
    "502-gateway-html": (502, "text/html", _GATEWAY_PAGE.format("502 Bad Gateway")),
    "504-gateway-html": (504, "text/html", _GATEWAY_PAGE.format("504 Gateway Time-out")),
}


# ----------------------------------------------------------------------------------------------- the observer


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[EmbeddedBackend]:
    """Names resolve, so every failure below comes from OpenSearch, not from the resolver."""
    embedded = EmbeddedBackend(tmp_path / "registry")
    embedded.registry.declare(
        {"namespaces": [{"name": NS, "projects": [{"name": "shop", "components": ["cart"]}], "environments": ["prod"]}]}
    )
    yield embedded
    embedded.close()


@contextlib.asynccontextmanager
async def observer_over(
    address: str, timeout_s: float, registry: EmbeddedBackend, layout: IndexLayout | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    backend = OpenSearchBackend(OpenSearchConfig(address=address, timeout_s=timeout_s, layout=layout or IndexLayout()))
    service = QueryService(registry.registry, logs=backend, events=backend, traces=backend, metrics=registry)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(create_public_app(service)), base_url="http://observer"
        ) as api:
            yield api
    finally:
        await backend.close()


async def assert_unavailable(api: httpx.AsyncClient, query: Query, must_not_leak: str = "") -> None:
    response = await asyncio.wait_for(api.request(query.method, query.path, json=query.body), GUARD_S)
    assert response.status_code == 503, response.text
    body = response.json()
    ErrorResponse.model_validate(body)  # the contract's {title, errorCode, message}, nothing more
    assert set(body) == {"title", "errorCode", "message"}
    assert (body["title"], body["errorCode"]) == ("internalServerError", query.error_code)
    assert body["message"].startswith(query.failure)
    if must_not_leak:  # the address is an internal detail
        assert must_not_leak not in body["message"]


# ----------------------------------------------------------------------------------------------- queries


@each_query
async def test_nothing_listening_answers_503(registry, query):
    with refusing_port() as port:
        async with observer_over(f"http://127.0.0.1:{port}", 1, registry) as api:
            await assert_unavailable(api, query, must_not_leak=str(port))


@each_query
async def test_an_address_that_does_not_resolve_answers_503(registry, query):
    async with observer_over("http://opensearch.invalid:9200", 1, registry) as api:
        await assert_unavailable(api, query, must_not_leak="opensearch.invalid")


@each_query
async def test_a_server_that_never_answers_times_out_into_503(registry, query):
    async with silent_server() as port, observer_over(f"http://127.0.0.1:{port}", 0.5, registry) as api:
        await assert_unavailable(api, query, must_not_leak=str(port))


@each_query
async def test_opensearch_failing_the_search_itself_answers_503(opensearch_url, registry, query):
    """Real OpenSearch, real failure: every daily index the query can touch is red (its primary shard may only
    be allocated to a node that does not exist), so the search fails with `all shards failed`, status 503."""
    layout = unique_layout("faultsred")
    direct = AsyncOpenSearch(hosts=[opensearch_url], max_retries=0, timeout=30)
    red = {"settings": {"index.routing.allocation.require._name": "no-such-node", "number_of_replicas": 0}}
    try:
        for prefix in (layout.logs, layout.events, layout.traces):
            await direct.indices.create(index=prefix + "2026-09-21", body=red, params={"wait_for_active_shards": "0"})
        async with observer_over(opensearch_url, 5, registry, layout) as api:
            await assert_unavailable(api, query)
    finally:
        await drop_layout(direct, layout)
        await direct.close()


@pytest.mark.parametrize("fault", UPSTREAM_FAULTS)
@each_query
async def test_upstream_errors_answer_503(registry, query, fault):
    with serving(failing_upstream(*UPSTREAM_FAULTS[fault])) as url:
        async with observer_over(url, 5, registry) as api:
            await assert_unavailable(api, query)


# ----------------------------------------------------------------------------------------------- writes


def a_log() -> LogRecord:
    who = Identity(namespace=NS, component="cart", pod="cart-0", pod_namespace="dp", container="main")
    return LogRecord(ts_ns=1_790_000_000 * 10**9, body=f"hello {uuid.uuid4()}", level="INFO", identity=who)


#: A short deadline and quick retries: the writer must give up soon, and the test waits for it, not the clock.
GIVE_UP_SOON = {"retry_deadline_s": 1, "backoff_s": 0.05, "max_backoff_s": 0.2}


async def assert_write_gives_up(address: str, timeout_s: float) -> None:
    backend = OpenSearchBackend(OpenSearchConfig(address=address, timeout_s=timeout_s), writer_options=GIVE_UP_SOON)
    try:
        result = await asyncio.wait_for(backend.write(batch_id="b1", logs=[a_log()]), GUARD_S)
        assert result.outcome == "retry" and "OpenSearch" in result.reason
    finally:
        await asyncio.wait_for(backend.close(), GUARD_S)


async def test_write_to_nothing_listening_answers_retry():
    with refusing_port() as port:
        await assert_write_gives_up(f"http://127.0.0.1:{port}", 1)


async def test_write_to_a_server_that_never_answers_answers_retry():
    async with silent_server() as port:
        await assert_write_gives_up(f"http://127.0.0.1:{port}", 0.5)


@pytest.mark.parametrize("fault", ["429-rejected", "502-gateway-html"])
async def test_write_refused_with_retryable_status_answers_retry(fault):
    with serving(failing_upstream(*UPSTREAM_FAULTS[fault])) as url:
        await assert_write_gives_up(url, 5)
