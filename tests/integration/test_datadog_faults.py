"""Datadog misbehaving, against the local Datadog (devservers/datadog): 429 storms and a 60 s outage.

Delivery runs the collector's real pipeline: the durable buffer, the `BufferSink` receivers write to, and
`export_pipelines` over the destination `collectors/destinations.py` builds through the registry from the
collector's `exporter.datadog` settings (nothing here names the sink). Queries run the real public app over the
Datadog backend, with names resolved by the embedded registry, so every failure below comes from Datadog.

What must hold: nothing the collector accepted is lost, and nothing is stored twice (every log comes back through
the Observer API exactly once after recovery); while Datadog refuses, a query answers 503 with a Retry-After at
once (never hangs, never waits out a limit that resets later than the client's deadline), and normally after.

Also here, because it is how Datadog's own webhook reaches us: the internal port accepting its token as an HTTP
Basic password on the alert webhook (and only there).
"""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.datadog.client import RateLimited
from adapters.datadog.plugin import Datadog, Settings
from adapters.embedded.backend import EmbeddedBackend
from adapters.protocols import BackendUnavailable
from adapters.registry import Context
from collectors.buffer import DiskBuffer
from collectors.config import ExporterConfig
from collectors.destinations import build_destinations
from collectors.pipeline import BufferSink, export_pipelines
from collectors.telemetry import CollectorTelemetry
from devservers.datadog import DatadogFake
from domain.model import Identity, LogRecord
from domain.timeutil import format_rfc3339, now_ns
from observer.app import create_public_app
from observer.auth.internal import INVALID_MESSAGE, MISSING_MESSAGE, InternalTokenMiddleware
from observer.guard import MAX_RETRY_AFTER_S, RETRY_AFTER_S, error_for, query_endpoint
from observer.service import QueryService

pytestmark = pytest.mark.integration

NS, PROJECT, COMPONENT, ENV = "faults", "shop", "cart", "prod"
#: How long Datadog is down, as the issue asks.
OUTAGE_S = 60.0
#: A query must answer within this, whatever Datadog does (the client's own timeouts are far below it).
ANSWER_WITHIN_S = 5.0
#: After recovery the export loop's backoff (at most 30 s) plus delivery must have caught up within this.
CATCH_UP_S = 90.0
LOGS_INTAKE = "/api/v2/logs"
LOGS_SEARCH = "/api/v2/logs/events/search"


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[EmbeddedBackend]:
    """Names resolve, so a failure comes from Datadog, not from the resolver."""
    embedded = EmbeddedBackend(tmp_path / "registry")
    embedded.registry.declare(
        {
            "namespaces": [
                {"name": NS, "projects": [{"name": PROJECT, "components": [COMPONENT]}], "environments": [ENV]}
            ]
        }
    )
    yield embedded
    embedded.close()


@pytest.fixture
async def who(registry: EmbeddedBackend) -> Identity:
    """The identity our collector stamps on the cart's records, with the UIDs the registry resolves its names to."""
    project_uid, component_uid, environment_uid = await registry.registry.resolve(NS, PROJECT, COMPONENT, ENV)
    return Identity(
        namespace=NS,
        project=PROJECT,
        project_uid=project_uid,
        component=COMPONENT,
        component_uid=component_uid,
        environment=ENV,
        environment_uid=environment_uid,
        pod="cart-0",
        pod_namespace="dp-faults-shop",
        container="main",
    )


def settings_for(fake: DatadogFake) -> dict[str, str]:
    return {"DATADOG_API_URL": fake.url, "DD_API_KEY": fake.api_key, "DD_APP_KEY": fake.app_key}


@asynccontextmanager
async def collector(
    directory: Path, fake: DatadogFake
) -> AsyncIterator[tuple[BufferSink, DiskBuffer, CollectorTelemetry]]:
    """What `observer collect` runs with `exporter.datadog`: the destinations built through the registry, a buffer
    with one cursor each and their export loops draining it."""
    telemetry = CollectorTelemetry()
    async with AsyncExitStack() as stack:
        config = ExporterConfig.model_validate({"datadog": settings_for(fake)})
        destinations = await build_destinations(config, stack, telemetry)
        assert [d.name for d in destinations] == ["datadog"]
        with DiskBuffer(directory, consumers=[d.name for d in destinations]) as buffer:
            task = asyncio.create_task(export_pipelines(buffer, destinations, telemetry))
            try:
                yield BufferSink(buffer, telemetry), buffer, telemetry
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)


@asynccontextmanager
async def observer_over(fake: DatadogFake, registry: EmbeddedBackend) -> AsyncIterator[httpx.AsyncClient]:
    """The real public app, every signal answered by the Datadog backend."""
    plane = Datadog(Settings.model_validate(settings_for(fake)), Context())
    backend = plane.backend
    service = QueryService(registry.registry, logs=backend, events=backend, traces=backend, metrics=backend)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(create_public_app(service)), base_url="http://observer"
        ) as api:
            yield api
    finally:
        await plane.close()


def lines(run: str, batch: int, count: int, who: Identity) -> list[LogRecord]:
    now = now_ns()
    return [LogRecord(now + i, f"{run} batch {batch} line {i}", who, "INFO", stream="stdout") for i in range(count)]


def logs_query() -> dict[str, Any]:
    now = now_ns()
    return {
        "startTime": format_rfc3339(now - 30 * 60 * 10**9),
        "endTime": format_rfc3339(now + 60 * 10**9),
        "searchScope": {"namespace": NS, "project": PROJECT, "component": COMPONENT, "environment": ENV},
        "limit": 1000,
    }


async def query(api: httpx.AsyncClient) -> tuple[httpx.Response, float]:
    """POST /api/v1/logs/query, and how long it took; a hang fails here rather than at the test's timeout."""
    started = time.monotonic()
    response = await asyncio.wait_for(api.post("/api/v1/logs/query", json=logs_query()), ANSWER_WITHIN_S * 4)
    return response, time.monotonic() - started


async def messages(api: httpx.AsyncClient, run: str) -> list[str]:
    response, _ = await query(api)
    assert response.status_code == 200, response.text
    return sorted(entry["log"] for entry in response.json()["logs"] if entry["log"].startswith(run))


def assert_unavailable(response: httpx.Response, took_s: float, retry_after: str) -> None:
    assert response.status_code == 503, response.text
    assert took_s < ANSWER_WITHIN_S, f"took {took_s:.1f} s"
    body = response.json()
    assert (body["title"], body["errorCode"]) == ("internalServerError", "OBS-V1-L-05")
    assert response.headers["retry-after"] == retry_after


async def eventually(check: Callable[[], object], within_s: float, what: str) -> None:
    started = time.monotonic()
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() - started > within_s:
            raise AssertionError(f"{what}: not within {within_s}s")
        await asyncio.sleep(0.2)


def retries(telemetry: CollectorTelemetry) -> float:
    sample = telemetry.registry.get_sample_value(
        "collector_destination_export_retries_total", {"destination": "datadog"}
    )
    return sample or 0.0


def expected(run: str, batches: int, per_batch: int) -> list[str]:
    return sorted(f"{run} batch {b} line {i}" for b in range(batches) for i in range(per_batch))


# ------------------------------------------------------------------------------------------------ delivery


async def test_a_429_storm_on_the_logs_intake_delays_delivery_and_loses_nothing(
    tmp_path: Path, datadog_fake: DatadogFake, registry: EmbeddedBackend, who: Identity
) -> None:
    """The intake answers 429 (with Datadog's rate-limit headers) to eight requests in a row: every batch waits in
    the buffer and is retried after the reset Datadog named; every line arrives exactly once."""
    run = uuid.uuid4().hex[:12]
    datadog_fake.fail(LOGS_INTAKE, 429, count=8, retry_after=1)
    async with collector(tmp_path / "buffer", datadog_fake) as (sink, buffer, telemetry):
        for batch in range(6):
            await sink.write(batch_id=f"{run}-{batch}", logs=lines(run, batch, 25, who))
        await eventually(lambda: buffer.backlog == 0, CATCH_UP_S, "delivery after the 429 storm")
        assert retries(telemetry) >= 8
    assert datadog_fake.stats()["requests"][LOGS_INTAKE] >= 8 + 1
    async with observer_over(datadog_fake, registry) as api:
        assert await messages(api, run) == expected(run, 6, 25)


async def test_a_60s_outage_answers_503_to_queries_and_loses_no_accepted_log(
    tmp_path: Path, datadog_fake: DatadogFake, registry: EmbeddedBackend, who: Identity
) -> None:
    """Datadog answers 503 to everything for 60 s while the collector keeps accepting lines and the API keeps
    being asked: every query answers 503 with Retry-After within seconds; after recovery the buffered batches
    arrive and the API returns each line exactly once."""
    run = uuid.uuid4().hex[:12]
    async with collector(tmp_path / "buffer", datadog_fake) as (sink, buffer, telemetry):
        await sink.write(batch_id=f"{run}-0", logs=lines(run, 0, 10, who))
        await eventually(lambda: buffer.backlog == 0, 30, "the batch before the outage")
        async with observer_over(datadog_fake, registry) as api:
            assert await messages(api, run) == expected(run, 1, 10)

            datadog_fake.fail("*", 503, seconds=OUTAGE_S)
            started, batch, answered = time.monotonic(), 1, 0
            while time.monotonic() - started < OUTAGE_S - 5:
                await sink.write(batch_id=f"{run}-{batch}", logs=lines(run, batch, 10, who))
                batch += 1
                response, took = await query(api)
                assert_unavailable(response, took, "5")
                answered += 1
                await asyncio.sleep(2.0)
            assert answered >= 10
            assert buffer.backlog_of("datadog") > 0  # the outage's batches wait on disk
            assert retries(telemetry) > 0

            await eventually(lambda: time.monotonic() - started > OUTAGE_S + 0.5, OUTAGE_S, "the outage's end")
            await eventually(lambda: buffer.backlog == 0, CATCH_UP_S, "delivery after the outage")
            assert await messages(api, run) == expected(run, batch, 10)


# ------------------------------------------------------------------------------------------------ queries


async def test_a_rate_limited_query_answers_503_with_datadogs_reset_at_once(
    datadog_fake: DatadogFake, registry: EmbeddedBackend
) -> None:
    """A 429 whose reset is past the client's wait deadline is not waited out: 503 at once, Retry-After the
    reset Datadog named; the next query, inside the limit again, answers normally."""
    async with observer_over(datadog_fake, registry) as api:
        datadog_fake.fail(LOGS_SEARCH, 429, count=1, retry_after=37)
        response, took = await query(api)
        assert_unavailable(response, took, "37")
        response, _ = await query(api)
        assert response.status_code == 200, response.text


async def test_a_short_429_storm_is_waited_out_inside_the_query(
    datadog_fake: DatadogFake, registry: EmbeddedBackend
) -> None:
    """Three 429s that reset in a second each fit the client's deadline: the caller sees a normal answer."""
    async with observer_over(datadog_fake, registry) as api:
        datadog_fake.fail(LOGS_SEARCH, 429, count=3, retry_after=1)
        response, took = await query(api)
        assert response.status_code == 200, response.text
        assert 3 <= took < 10
    assert datadog_fake.stats()["requests"][LOGS_SEARCH] == 4


async def test_an_exhausted_hourly_limit_answers_a_bounded_retry_after(
    datadog_fake: DatadogFake, registry: EmbeddedBackend
) -> None:
    """Datadog's hourly search limit used up: the reset may be most of an hour away; the client is told to come
    back after at most MAX_RETRY_AFTER_S (it will be told again), never sent into a storm nor parked an hour."""
    datadog_fake.limit("logs_query", 1, period=3600)
    async with observer_over(datadog_fake, registry) as api:
        queries = 0
        for _ in range(3):  # a logs query may spend one request or two (search, count) of the limit
            response, took = await query(api)
            queries += 1
            if response.status_code != 200:
                break
    assert response.status_code == 503, response.text
    assert took < ANSWER_WITHIN_S
    assert 1 <= int(response.headers["retry-after"]) <= MAX_RETRY_AFTER_S
    searches = {path: n for path, n in datadog_fake.stats()["requests"].items() if path.startswith("/api/v2/logs/")}
    # Each query sends its search and its count once (concurrently, so which of the two the limit refuses varies):
    # no retry storm.
    assert sum(searches.values()) <= 2 * queries, (queries, searches)


@pytest.mark.parametrize(
    ("failure", "header"),
    [
        (RateLimited("x", 2.2), "3"),  # rounded up: never back before the reset
        (RateLimited("x", 0.01), "1"),
        (RateLimited("x", 3600.0), str(MAX_RETRY_AFTER_S)),
        (RateLimited("x", float("nan")), str(RETRY_AFTER_S)),
        (BackendUnavailable("no hint"), str(RETRY_AFTER_S)),
    ],
)
def test_retry_after_follows_the_backends_hint_rounded_up_and_bounded(failure: Exception, header: str) -> None:
    error = error_for(failure, query_endpoint("L", "Failed to retrieve logs"))
    assert error.headers == {"Retry-After": header}


# ------------------------------------------------------------------------------------------------ webhook auth

TOKEN = f"internal-{uuid.uuid4().hex}"
WEBHOOK = "/api/v1alpha1/alerts/webhook"
RULES = "/api/v1alpha1/alerts/sources/log/rules"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def internal_port() -> httpx.AsyncClient:
    """The token gate in front of an app that answers 200 on the webhook and the rule CRUD: what is under test is
    only who gets through."""

    async def ok(request: Request) -> Response:
        return JSONResponse({"through": request.url.path})

    app = Starlette(routes=[Route(WEBHOOK, ok, methods=["POST"]), Route(RULES, ok, methods=["POST"])])
    gated = InternalTokenMiddleware(app, token=TOKEN)
    return httpx.AsyncClient(transport=httpx.ASGITransport(gated), base_url="http://internal")


async def test_datadogs_basic_auth_carries_the_internal_token_to_the_webhook_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Datadog's Webhooks integration authenticates with HTTP Basic: the password is the internal token (any user
    name). Bearer still works; a wrong password is a wrong token; Basic does not open the rule CRUD; the token
    is never logged."""
    async with internal_port() as client:
        by_basic = await client.post(WEBHOOK, headers={"Authorization": basic("datadog", TOKEN)})
        empty_user = await client.post(WEBHOOK, headers={"Authorization": basic("", TOKEN)})
        by_bearer = await client.post(WEBHOOK, headers={"Authorization": f"Bearer {TOKEN}"})
        wrong = await client.post(WEBHOOK, headers={"Authorization": basic("datadog", TOKEN + "x")})
        no_password = await client.post(WEBHOOK, headers={"Authorization": basic("datadog", "")})
        not_base64 = await client.post(WEBHOOK, headers={"Authorization": f"Basic {TOKEN}"})
        two = await client.post(
            WEBHOOK, headers=[("Authorization", basic("datadog", TOKEN)), ("Authorization", basic("x", "y"))]
        )
        crud = await client.post(RULES, headers={"Authorization": basic("datadog", TOKEN)})
    assert [r.status_code for r in (by_basic, empty_user, by_bearer)] == [200, 200, 200]
    assert by_basic.json() == {"through": WEBHOOK}
    assert wrong.status_code == 401 and wrong.json()["message"] == INVALID_MESSAGE
    for refused in (no_password, not_base64, two, crud):
        assert refused.status_code == 401 and refused.json()["message"] == MISSING_MESSAGE
    assert TOKEN not in caplog.text
