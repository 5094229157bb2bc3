"""Shared fixtures: a real embedded backend in a temporary directory, the public app over it, and the real
servers (started once per session, on first use); the lane markers and the hypothesis profiles.

Lanes: every test is marked by the directory it lives in (unit, contract, integration, e2e), never by hand, so
`-m unit` is exactly tests/unit. The unit lane starts no server, and that is checked, not hoped: a unit test
that asks for a server fixture is a collection error, and a session of unit tests alone fails if any module
that starts a server was imported (the server modules are imported lazily, inside their fixtures, for this).
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from hypothesis import HealthCheck, settings

from adapters.embedded.backend import EmbeddedBackend
from observer.app import create_public_app
from observer.service import QueryService

if TYPE_CHECKING:
    from devservers.datadog import DatadogFake

# Hypothesis: a quick profile for developers by default, the thorough one in `make test` (HYPOTHESIS_PROFILE).
# A test that pins max_examples in its own @settings keeps its number in both.
settings.register_profile("quick", max_examples=20, deadline=None)
settings.register_profile(
    "thorough", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "quick"))

TESTS = Path(__file__).resolve().parent
LANES = ("unit", "contract", "integration", "e2e")

# The fixtures that start a real server, and the modules that can.
SERVER_FIXTURES = frozenset(
    {
        "opensearch_url",
        "prometheus_server",
        "oidc_issuer",
        "postgres_server",
        "kube_api",
        "datadog_server",
        "datadog_fake",
        "datadog_url",
    }
)
SERVER_MODULES = (
    "devservers.opensearch",
    "devservers.prometheus",
    "devservers.postgres",
    "devservers.oidc",
    "devservers.kube",
    "devservers.datadog",
    "devservers.observer",
    "devservers.collector",
    "devservers.browser",
)


def lane_of(path: Path) -> str | None:
    """The lane a test file belongs to: the first directory under tests/ (None for a file outside them)."""
    try:
        parts = path.resolve().relative_to(TESTS).parts
    except ValueError:
        return None
    return parts[0] if len(parts) > 1 and parts[0] in LANES else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with its directory's lane, and refuse a unit test that would start a server."""
    for item in items:
        path = Path(str(item.path))
        lane = lane_of(path)
        if lane is None:
            if path.resolve().is_relative_to(TESTS):
                raise pytest.UsageError(f"{item.nodeid} is in no lane: test files live in tests/{{{','.join(LANES)}}}/")
            continue
        item.add_marker(getattr(pytest.mark, lane))
        if lane == "unit":
            servers = SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ()))
            if servers:
                raise pytest.UsageError(
                    f"{item.nodeid} is in tests/unit but uses {sorted(servers)}: a test that needs a server "
                    "belongs in tests/integration (or contract, e2e)"
                )


_collected_lanes: set[str | None] = set()


def pytest_itemcollected(item: pytest.Item) -> None:
    # Before any -m deselection: `pytest -m unit tests/` imports every lane's modules, which proves nothing.
    _collected_lanes.add(lane_of(Path(str(item.path))))


def pytest_collection_finish(session: pytest.Session) -> None:
    """A session that collected unit tests alone must not even import a module that starts a server."""
    if _collected_lanes == {"unit"}:
        loaded = sorted(name for name in SERVER_MODULES if name in sys.modules)
        if loaded:
            raise pytest.UsageError(f"the unit lane imported server modules {loaded}: move that test out of tests/unit")


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
    """A real OpenSearch: OPENSEARCH_URL, a container, or the distribution started here (devservers)."""
    from devservers.opensearch import start_opensearch

    server = start_opensearch(tmp_path_factory.mktemp("opensearch"))
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def prometheus_server(tmp_path_factory: pytest.TempPathFactory):
    """A real Prometheus (remote-write receiver on) and Alertmanager: PROMETHEUS_URL, containers, or the
    Debian packages started here (devservers/prometheus.py)."""
    from devservers.prometheus import start_prometheus

    server = start_prometheus(tmp_path_factory.mktemp("prometheus"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def oidc_issuer():
    """A real OIDC issuer process on loopback (devservers/oidc.py): discovery, a JWKS the test rotates, an
    attacker's JWKS, and counts of how often each was fetched. Tests reset it before use."""
    from devservers.oidc import start_oidc_issuer

    issuer = start_oidc_issuer()
    yield issuer
    issuer.stop()


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory):
    """A real PostgreSQL (POSTGRES_DSN, or Debian's server started here): devservers/postgres.py."""
    from devservers.postgres import start_postgres

    server = start_postgres(tmp_path_factory.mktemp("postgres"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def kube_api(tmp_path_factory: pytest.TempPathFactory):
    """A real Kubernetes API server (KUBECONFIG_TEST, or kube-apiserver + etcd built from the Go module proxy and
    started on loopback by scripts/kube.sh): devservers/kube.py. Yields the KubeServer (`.kubeconfig`)."""
    from devservers.kube import start_kube

    server = start_kube(tmp_path_factory.mktemp("kube"))
    yield server
    server.stop()


# The local Datadog (devservers/datadog): the one SaaS, faked faithfully (issue 15).
@pytest.fixture(scope="session")
def datadog_server() -> Iterator[DatadogFake]:
    """The running fake for the whole session (keys: `.api_key`, `.app_key`)."""
    from devservers.datadog import start_datadog

    fake = start_datadog()
    yield fake
    fake.stop()


@pytest.fixture
def datadog_fake(datadog_server: DatadogFake) -> DatadogFake:
    """The session's fake, emptied before the test (received data, monitors, failures, limits)."""
    datadog_server.reset()
    return datadog_server


@pytest.fixture(scope="session")
def datadog_url(datadog_server: DatadogFake) -> str:
    """The fake's base URL (every endpoint, intake and query alike, is served there)."""
    return datadog_server.url
