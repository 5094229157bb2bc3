"""TLS and basic auth toward OpenSearch, as OpenChoreo deploys it: `https://opensearch:9200`, a self-signed
certificate, and the `opensearch-admin-credentials` user.

A real TLS-terminating reverse proxy that requires basic auth (devservers/tls_proxy.py, with a certificate
made for this run) stands in front of the real OpenSearch. Over it:

- skipping verification (OpenChoreo's default, `OPENSEARCH_TLS_SKIP_VERIFY=true`) and verifying against the
  certificate as a private CA (`ca_file`) both work end to end: templates installed, a record written, found;
- verifying without that CA fails the handshake: the query answers 503 (never a 500), and the credentials are
  never sent over the unverified connection;
- a wrong password answers 503 for queries and BackendUnavailable for writes (a collector retries), not a 500;
- the password, and its base64 `Authorization` form, appear in no log line, error message or response.
"""

from __future__ import annotations

import base64
import logging
import traceback
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opensearchpy import AsyncOpenSearch

from adapters.embedded.backend import EmbeddedBackend
from adapters.opensearch.backend import OpenSearchBackend
from adapters.opensearch.client import OpenSearchConfig
from adapters.opensearch.layout import IndexLayout
from adapters.protocols import BackendUnavailable
from devservers.opensearch_layout import drop_layout, unique_layout
from devservers.tls_proxy import TlsAuthProxy, self_signed_cert
from domain.model import ComponentScope, Identity, LogRecord, LogsQuery, TimeRange
from observer.app import create_public_app
from observer.service import QueryService

pytestmark = pytest.mark.integration

USERNAME = "observer"
PASSWORD = f"Pa55-{uuid.uuid4().hex}"  # distinctive, so any leak is unmistakable
SECRETS = (PASSWORD, base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode())

NS = "tlsauth"
PROJECT_UID, CART_UID, PROD_UID = (str(uuid.uuid4()) for _ in range(3))
CART = {"namespace": NS, "project": "shop", "component": "cart", "environment": "prod"}
TS_NS = 1_790_000_000 * 10**9  # 2026-09-21T14:13:20Z
WINDOW = {"startTime": "2026-09-21T14:00:00Z", "endTime": "2026-09-21T15:00:00Z"}


@pytest.fixture(scope="module")
async def proxy(opensearch_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[TlsAuthProxy]:
    cert, key = self_signed_cert(tmp_path_factory.mktemp("tls"))
    async with TlsAuthProxy(opensearch_url, USERNAME, PASSWORD, cert, key) as server:
        server.cert = cert  # type: ignore[attr-defined]
        yield server


@pytest.fixture
async def layout(opensearch_url: str) -> AsyncIterator[IndexLayout]:
    """This test's own indices, removed afterwards straight on the real OpenSearch (plain HTTP, no proxy)."""
    mine = unique_layout("tlsauth")
    yield mine
    direct = AsyncOpenSearch(hosts=[opensearch_url], max_retries=0, timeout=30)
    await drop_layout(direct, mine)
    await direct.close()


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[EmbeddedBackend]:
    embedded = EmbeddedBackend(tmp_path / "registry")
    embedded.registry.declare(
        {
            "namespaces": [
                {
                    "name": NS,
                    "projects": [
                        {"name": "shop", "uid": PROJECT_UID, "components": [{"name": "cart", "uid": CART_UID}]}
                    ],
                    "environments": [{"name": "prod", "uid": PROD_UID}],
                }
            ]
        }
    )
    yield embedded
    embedded.close()


def config(proxy: TlsAuthProxy, layout: IndexLayout, **overrides: Any) -> OpenSearchConfig:
    options: dict[str, Any] = {"username": USERNAME, "password": PASSWORD, "timeout_s": 10, **overrides}
    return OpenSearchConfig(address=proxy.url, layout=layout, **options)


def a_log(body: str) -> LogRecord:
    who = Identity(
        namespace=NS,
        project="shop",
        project_uid=PROJECT_UID,
        component="cart",
        component_uid=CART_UID,
        environment="prod",
        environment_uid=PROD_UID,
        pod="cart-prod-0",
        pod_namespace="dp-tlsauth-prod",
        container="main",
    )
    return LogRecord(ts_ns=TS_NS, body=body, level="INFO", identity=who)


def logs_query() -> LogsQuery:
    return LogsQuery(
        scope=ComponentScope(NS, PROJECT_UID, CART_UID, PROD_UID), range=TimeRange(TS_NS - 10**12, TS_NS + 10**12)
    )


async def query_rest(backend: OpenSearchBackend, registry: EmbeddedBackend) -> httpx.Response:
    service = QueryService(registry.registry, logs=backend, events=backend, traces=backend, metrics=registry)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(create_public_app(service)), base_url="http://observer"
    ) as api:
        return await api.post("/api/v1/logs/query", json={**WINDOW, "searchScope": CART})


def assert_503(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["errorCode"] == "OBS-V1-L-05"


# ----------------------------------------------------------------------------------------------- tests


@pytest.mark.parametrize(
    "verification",
    [{"tls_skip_verify": True}, {"tls_skip_verify": False, "ca_file": "<the proxy's certificate>"}],
    ids=["skip-verify", "private-ca"],
)
async def test_install_write_and_query_over_tls_with_basic_auth(proxy, layout, registry, verification):
    if "ca_file" in verification:
        verification = {**verification, "ca_file": str(proxy.cert)}
    backend = OpenSearchBackend(config(proxy, layout, **verification), {"refresh": True})
    before = proxy.authorised, proxy.refused
    try:
        await backend.install(retention_days=30)
        await backend.write(batch_id="tls-1", logs=[a_log("hello over TLS")])
        page = await backend.query_logs(logs_query())
        assert [record.body for record in page.items] == ["hello over TLS"]
        response = await query_rest(backend, registry)
        assert response.status_code == 200, response.text
        assert [entry["log"] for entry in response.json()["logs"]] == ["hello over TLS"]
    finally:
        await backend.close()
    assert proxy.authorised > before[0]  # it did go through the proxy, authenticated
    assert proxy.refused == before[1]


async def test_an_untrusted_certificate_is_unavailable_not_a_500_and_no_credentials_are_sent(proxy, layout, registry):
    """Verification on, no CA for the self-signed certificate: the handshake fails before any HTTP, so the
    proxy never sees a request (nor the Authorization header)."""
    backend = OpenSearchBackend(
        config(proxy, layout, tls_skip_verify=False), {"retry_deadline_s": 1, "backoff_s": 0.05}
    )
    before = proxy.authorised, proxy.refused
    try:
        with pytest.raises(BackendUnavailable):
            await backend.query_logs(logs_query())
        with pytest.raises(BackendUnavailable):
            await backend.install(retention_days=30)
        assert (await backend.write(batch_id="tls-untrusted", logs=[a_log("never stored")])).outcome == "retry"
        assert_503(await query_rest(backend, registry))
    finally:
        await backend.close()
    assert (proxy.authorised, proxy.refused) == before


async def test_a_wrong_password_is_unavailable_not_a_500(proxy, layout, registry):
    backend = OpenSearchBackend(config(proxy, layout, tls_skip_verify=True, password="not-the-password"))
    before = proxy.refused
    try:
        assert_503(await query_rest(backend, registry))
        with pytest.raises(BackendUnavailable):
            await backend.query_logs(logs_query())
        with pytest.raises(BackendUnavailable):
            await backend.install(retention_days=30)
        # A collector writing through this sink gets 503 + Retry-After and keeps its data, instead of a 500.
        assert (await backend.write(batch_id="tls-wrong-password", logs=[a_log("never stored")])).outcome == "retry"
    finally:
        await backend.close()
    assert proxy.refused > before


@pytest.fixture
def every_log_record(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """All records at DEBUG, including opensearch-py's curl-style trace logger, which does not propagate."""
    tracer = logging.getLogger("opensearchpy.trace")
    old_level = tracer.level
    tracer.addHandler(caplog.handler)
    tracer.setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG)
    try:
        yield caplog
    finally:
        tracer.removeHandler(caplog.handler)
        tracer.setLevel(old_level)


async def test_the_password_never_appears_in_logs_errors_or_responses(proxy, layout, registry, every_log_record):
    seen: list[str] = []  # everything a user or an operator could read

    def keep(exc: BaseException) -> None:
        seen.extend([str(exc), repr(exc), "".join(traceback.format_exception(exc))])

    good = OpenSearchBackend(config(proxy, layout, tls_skip_verify=True), {"refresh": True})
    wrong = OpenSearchBackend(config(proxy, layout, tls_skip_verify=True, password=PASSWORD[::-1]))
    untrusted = OpenSearchBackend(
        config(proxy, layout, tls_skip_verify=False), {"retry_deadline_s": 1, "backoff_s": 0.05}
    )
    try:
        await good.install(retention_days=30)
        await good.write(batch_id="tls-secret-1", logs=[a_log("hello")])
        await good.query_logs(logs_query())
        for backend in (wrong, untrusted):
            for attempt in (
                lambda b=backend: b.query_logs(logs_query()),
                lambda b=backend: b.install(retention_days=30),
            ):
                with pytest.raises(BackendUnavailable) as caught:
                    await attempt()
                keep(caught.value)
            written = await backend.write(batch_id="tls-secret-2", logs=[a_log("no")])
            assert written.outcome == "retry"
            seen.extend([written.reason, repr(written)])
            response = await query_rest(backend, registry)
            assert response.status_code == 503
            seen.append(response.text)
        seen += [repr(b.config) for b in (good, wrong, untrusted)] + [repr(b.client) for b in (good, wrong, untrusted)]
    finally:
        for backend in (good, wrong, untrusted):
            await backend.close()

    logged = every_log_record.text
    assert "401" in logged and "curl" in logged  # the failures and the request trace were captured: not vacuous
    for secret in SECRETS:
        assert secret not in logged
        assert not [text for text in seen if secret in text]
