"""adapters/http's platform-logs and audit roles over real HTTP: against an adapter that predates the operations
(devservers/strict_adapter.py has no such routes: 404) and one that has them but not the backend role
(`observer adapter serve` without it: 501), each call is NotSupportedByBackend, the observer's 501; against our
adapter server over the embedded store, a timeline the adapter coarsened comes back with a warning naming the
width it used."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters import registry
from adapters.protocols import NotSupportedByBackend, collecting_warnings
from devservers.local import serving
from devservers.strict_adapter import StrictState, strict_adapter_app
from domain.audit import AuditQuery
from domain.model import TimeRange
from domain.platform import FilterValuesQuery, PlatformLogsQuery
from observer.adapter_serve import logs_app
from tests.contract.data import audit

SECOND = 10**9
BASE = 1_780_000_000 * SECOND
WINDOW = TimeRange(BASE - 3600 * SECOND, BASE + 3600 * SECOND)


async def client_of(url: str) -> Any:
    entry = registry.entries()["http"]
    return entry.create(entry.settings(logs_url=url, logs_timeout_s=5), registry.Context("serve"))


async def every_call(backend: Any) -> list[Any]:
    platform, trail = backend.roles.platform_logs, backend.roles.audit
    query, asked = PlatformLogsQuery(range=WINDOW), AuditQuery(range=WINDOW)
    return [
        lambda: platform.query_platform_logs(query),
        lambda: platform.platform_filter_values(FilterValuesQuery(query, "podName")),
        lambda: trail.query_audit(asked),
        lambda: trail.audit_filter_values(FilterValuesQuery(asked, "action")),
    ]


@pytest.fixture
def strict() -> Iterator[str]:
    with serving(strict_adapter_app("logs", StrictState())) as url:
        yield url


async def test_an_adapter_that_predates_the_operations_is_not_supported(strict: str) -> None:
    backend = await client_of(strict)
    try:
        for call in await every_call(backend):
            with pytest.raises(NotSupportedByBackend) as missing:
                await call()
            assert "predates" in missing.value.message
    finally:
        await backend.close()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Any]:
    entry = registry.entries()["embedded"]
    backend = entry.create(entry.settings(data_dir=tmp_path / "data"), registry.Context("write", True))
    yield backend
    await backend.close()


async def test_an_adapter_without_the_roles_answers_501(store: Any) -> None:
    with serving(logs_app(store.roles.logs, store.roles.events)) as url:
        backend = await client_of(url)
        try:
            for call in await every_call(backend):
                with pytest.raises(NotSupportedByBackend) as refused:
                    await call()
                assert refused.value.code == "OBS-V1-L-OBSERVER-501"
        finally:
            await backend.close()


async def test_a_coarsened_timeline_is_passed_on_with_a_warning(store: Any) -> None:
    record = audit("ns0", 1, 0)
    await store.roles.sink.write(batch_id=uuid.uuid4().hex, audit=[record])
    roles = store.roles
    with serving(logs_app(roles.logs, roles.events, roles.platform_logs, roles.audit)) as url:
        backend = await client_of(url)
        try:
            day = TimeRange(record.time_ns - 43_200 * SECOND, record.time_ns + 43_200 * SECOND)
            with collecting_warnings() as warnings:
                page = await backend.roles.audit.query_audit(AuditQuery(range=day, timeline_interval_ns=60 * SECOND))
            assert [r.event_id for r in page.records] == [record.event_id]
            assert page.timeline is not None and [b.total for b in page.timeline] == [1]
            # 1,440 buckets of a minute: coarsened (not refused) to the ladder's first width giving at most 500,
            # buckets from the window's start
            assert (page.timeline[0].start_ns - day.start_ns) % (300 * SECOND) == 0
            assert page.timeline[0].start_ns <= record.time_ns < page.timeline[0].start_ns + 300 * SECOND
            assert warnings == ["timelineInterval: the logs adapter counted buckets of 5m, not 1m"]
        finally:
            await backend.close()
