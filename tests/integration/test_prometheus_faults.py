"""With Prometheus unreachable, silent or failing, metrics queries answer 503 with the contract's error body
within the configured timeout: never a hang, never a 500. Topology too, on the kubernetes scheme."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from adapters.embedded.backend import EmbeddedBackend
from adapters.prometheus.backend import PrometheusBackend
from adapters.prometheus.client import PrometheusConfig
from adapters.prometheus.kubernetes import KubernetesScheme
from adapters.prometheus.otel import OtelScheme
from devservers.faults import failing_upstream, refusing_port, silent_server
from devservers.local import serving
from observer.app import create_public_app
from observer.service import QueryService

GUARD_S = 10.0  # a hang fails the test instead of the suite; not a timing assertion
WINDOW = {"startTime": "2026-11-01T00:00:00Z", "endTime": "2026-11-01T01:00:00Z"}
SCOPE = {"namespace": "acme", "project": "shop", "component": "cart", "environment": "prod"}
METRICS = ("/api/v1/metrics/query", {**WINDOW, "metric": "http", "step": "1m", "searchScope": SCOPE}, "OBS-V1-M-05")
TOPOLOGY = ("/api/v1alpha1/metrics/runtime-topology", {**WINDOW, "searchScope": SCOPE}, "OBS-V1-RG-05")


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[EmbeddedBackend]:
    embedded = EmbeddedBackend(tmp_path / "registry")
    embedded.registry.declare(
        {
            "namespaces": [
                {"name": "acme", "projects": [{"name": "shop", "components": ["cart"]}], "environments": ["prod"]}
            ]
        }
    )
    yield embedded
    embedded.close()


@contextlib.asynccontextmanager
async def observer_over(address: str, registry: EmbeddedBackend, scheme) -> AsyncIterator[httpx.AsyncClient]:
    backend = PrometheusBackend(PrometheusConfig(address, timeout_s=0.5), scheme)
    service = QueryService(registry.registry, logs=registry, events=registry, traces=registry, metrics=backend)
    try:
        transport = httpx.ASGITransport(create_public_app(service))
        async with httpx.AsyncClient(transport=transport, base_url="http://observer") as api:
            yield api
    finally:
        await backend.close()


async def assert_unavailable(api: httpx.AsyncClient, path: str, body: dict, code: str) -> None:
    response = await asyncio.wait_for(api.post(path, json=body), GUARD_S)
    assert response.status_code == 503, response.text
    error = response.json()
    assert set(error) == {"title", "errorCode", "message"} and error["errorCode"] == code


@pytest.mark.parametrize("scheme", [OtelScheme(), KubernetesScheme()], ids=["otel", "kubernetes"])
async def test_nothing_listening_answers_503(registry, scheme):
    with refusing_port() as port:
        async with observer_over(f"http://127.0.0.1:{port}", registry, scheme) as api:
            await assert_unavailable(api, *METRICS)
            if isinstance(scheme, KubernetesScheme):
                await assert_unavailable(api, *TOPOLOGY)


async def test_a_prometheus_that_never_answers_times_out_into_503(registry):
    async with silent_server() as port, observer_over(f"http://127.0.0.1:{port}", registry, KubernetesScheme()) as api:
        await assert_unavailable(api, *METRICS)
        await assert_unavailable(api, *TOPOLOGY)


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_prometheus_errors_answer_503(registry, status):
    upstream = failing_upstream(status, "application/json", '{"status":"error","errorType":"internal","error":"boom"}')
    with serving(upstream) as url:
        async with observer_over(url, registry, OtelScheme()) as api:
            await assert_unavailable(api, *METRICS)
