"""Shared fixtures: a real embedded backend in a temporary directory, the public app over it, and the real
servers (started once per session, on first use)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from adapters.embedded.backend import EmbeddedBackend
from observer.app import create_public_app
from observer.service import QueryService
from tests.servers.opensearch import start_opensearch
from tests.servers.prometheus import start_prometheus


@pytest.fixture
def backend(tmp_path: Path):
    backend = EmbeddedBackend(tmp_path / "data")
    yield backend
    backend.close()


def service_over(backend: EmbeddedBackend) -> QueryService:
    return QueryService(backend.registry, logs=backend, events=backend, traces=backend, metrics=backend)


@pytest.fixture
async def client(backend: EmbeddedBackend) -> AsyncIterator[httpx.AsyncClient]:
    app = create_public_app(service_over(backend))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://observer") as client:
        yield client


@pytest.fixture(scope="session")
def opensearch_url(tmp_path_factory: pytest.TempPathFactory):
    """A real OpenSearch: OPENSEARCH_URL, a container, or the distribution started here (tests/servers)."""
    server = start_opensearch(tmp_path_factory.mktemp("opensearch"))
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def prometheus_server(tmp_path_factory: pytest.TempPathFactory):
    """A real Prometheus (remote-write receiver on) and Alertmanager: PROMETHEUS_URL, containers, or the
    Debian packages started here (tests/servers/prometheus.py)."""
    server = start_prometheus(tmp_path_factory.mktemp("prometheus"))
    yield server
    server.stop()
