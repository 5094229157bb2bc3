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


@pytest.fixture(scope="session")
def oidc_issuer():
    """A real OIDC issuer process on loopback (tests/servers/oidc.py): discovery, a JWKS the test rotates, an
    attacker's JWKS, and counts of how often each was fetched. Tests reset it before use."""
    from tests.servers.oidc import start_oidc_issuer

    issuer = start_oidc_issuer()
    yield issuer
    issuer.stop()


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory):
    """A real PostgreSQL (POSTGRES_DSN, or Debian's server started here): tests/servers/postgres.py."""
    from tests.servers.postgres import start_postgres

    server = start_postgres(tmp_path_factory.mktemp("postgres"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def kube_api(tmp_path_factory: pytest.TempPathFactory):
    """A real Kubernetes API server (KUBECONFIG_TEST, or kube-apiserver + etcd built from the Go module proxy and
    started on loopback by scripts/kube.sh): tests/servers/kube.py. Yields the KubeServer (`.kubeconfig`)."""
    from tests.servers.kube import start_kube

    server = start_kube(tmp_path_factory.mktemp("kube"))
    yield server
    server.stop()
