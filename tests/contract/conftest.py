"""The contract suite's subject: each test runs once per backend, against the same expectations.

The embedded backend is fresh per test. OpenSearch is one real server per session (`opensearch_url`), with
indices under a prefix of this session's own; Datadog is the local Datadog (`datadog_server`, devservers/datadog),
one per session too, emptied before each test, written through the backend's own intake and read through its
query APIs. Tests stay apart by writing into a namespace of their own. `http` is adapters/http speaking
OpenChoreo's adapter contracts over real HTTP to `observer adapter serve`'s logs and tracing apps (one of each
per session), which answer from each test's own fresh embedded store, loaded directly.

Platform logs and the audit trail are asked of the backend's own roles for them (`Subject.platform_logs`,
`Subject.audit_log`; audit records are loaded with `load(audit=...)`); those tests keep apart by a time slot of
their own as well (tests/contract/data.py), since a query without coordinate filters selects every stored line.

Where a backend's documented semantics differ from the contract's (Datadog: millisecond times, case-insensitive
word search, rollup buckets and grid, topology), the test names it in a `DIFFERS` mapping (backend -> reason) and
asserts what that backend does instead: the suite documents the difference, it does not skip the case.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from adapters import registry
from devservers.opensearch_layout import drop_layout, unique_layout
from domain.audit import AuditRecord
from domain.model import EventRecord, LogRecord, SpanRecord

_namespaces = itertools.count()


@dataclass
class Subject:
    """A backend under test and how to put records into it so that queries see them at once."""

    kind: str
    backend: Any  # LogsBackend + EventsBackend + TracesBackend (the backend's logs, events and traces roles)
    namespace: str  # this test's own namespace
    sink: Any = None  # its TelemetrySink; the backend itself when None
    platform_logs: Any = None  # its PlatformLogsBackend role (roles.platform_logs)
    audit_log: Any = None  # its AuditBackend role (roles.audit)

    async def load(
        self,
        logs: Sequence[LogRecord] = (),
        events: Sequence[EventRecord] = (),
        spans: Sequence[SpanRecord] = (),
        audit: Sequence[AuditRecord] = (),
        batch_id: str = "",
    ) -> None:
        """One batch (a fresh batch id unless given); `audit` only when there is some, so a sink that keeps no
        audit trail is asked for nothing new."""
        sink = self.sink if self.sink is not None else self.backend
        extra = {"audit": audit} if audit else {}
        await sink.write(batch_id=batch_id or uuid.uuid4().hex, logs=logs, events=events, spans=spans, **extra)


#: Writes visible to the next query at once; a backend's upkeep is the serving process's, not the suite's.
CONTEXT = registry.Context("write", searchable_writes=True)


async def built(name: str, **settings: Any) -> registry.Backend:
    """One backend through the registry, as a process builds it, started."""
    entry = registry.entries()[name]
    backend = entry.create(entry.settings(**settings), CONTEXT)
    await backend.start()
    return backend


@pytest.fixture(scope="session")
async def opensearch_backend(opensearch_url: str) -> AsyncIterator[registry.Backend]:
    layout = unique_layout("contract")
    backend = await built(
        "opensearch",
        address=opensearch_url,
        logs_prefix=layout.logs,
        events_prefix=layout.events,
        traces_prefix=layout.traces,
        audit_prefix=layout.audit,
        retention_hours=30 * 24,
    )
    yield backend
    await drop_layout(backend.roles.logs.client, layout)  # type: ignore[union-attr]
    await backend.close()


@pytest.fixture(scope="session")
async def datadog_backend(datadog_server: Any) -> AsyncIterator[registry.Backend]:
    entry = registry.entries()["datadog"]
    settings = entry.settings.model_validate(
        {
            "DATADOG_API_URL": datadog_server.url,
            "DD_API_KEY": datadog_server.api_key,
            "DD_APP_KEY": datadog_server.app_key,
        }
    )
    backend = entry.create(settings, CONTEXT)
    await backend.start()
    yield backend
    await backend.close()


class _Current:
    """What the adapter server answers from: each test's own fresh embedded store (set by `subject`)."""

    target: Any = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.target, name)


class _Combined:
    """The suite's logs, events and traces calls on one object, from a backend whose roles are separate objects
    (adapters/http: a logs adapter and a tracing adapter)."""

    def __init__(self, roles: registry.Roles) -> None:
        self.roles = roles

    def __getattr__(self, name: str) -> Any:
        for role in (self.roles.logs, self.roles.traces):
            if hasattr(role, name):
                return getattr(role, name)
        raise AttributeError(name)


@pytest.fixture(scope="session")
def adapter_server() -> Iterator[tuple[_Current, str, str]]:
    """`observer adapter serve`'s logs and tracing apps over real HTTP on loopback (the embedded store behind)."""
    from devservers.local import serving
    from observer.adapter_serve import logs_app, tracing_app

    current = _Current()
    logs = logs_app(current, current, platform=current, audit=current)
    with serving(logs) as logs_url, serving(tracing_app(current)) as tracing_url:
        yield current, logs_url, tracing_url


@pytest.fixture(scope="session")
async def http_backend(adapter_server: tuple[_Current, str, str]) -> AsyncIterator[registry.Backend]:
    _, logs_url, tracing_url = adapter_server
    backend = await built("http", logs_url=logs_url, tracing_url=tracing_url)
    yield backend
    await backend.close()


@pytest.fixture(params=["embedded", "opensearch", "datadog", "http"])
def subject(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Subject]:
    # A plain fixture: it picks the async session fixture by name, which an async fixture could not. The
    # embedded backend needs no start, and closes without the event loop (asyncio.run: a loop of its own).
    namespace = f"ns{next(_namespaces)}"
    if request.param == "embedded":
        entry = registry.entries()["embedded"]
        backend = entry.create(entry.settings(data_dir=tmp_path / "data"), CONTEXT)
        yield Subject("embedded", backend.roles.logs, namespace, *_trail(backend.roles))
        asyncio.run(backend.close())
    elif request.param == "http":
        # adapters/http -> observer adapter serve (real HTTP) -> a fresh embedded store, loaded directly.
        current, _, _ = request.getfixturevalue("adapter_server")
        entry = registry.entries()["embedded"]
        store = entry.create(entry.settings(data_dir=tmp_path / "data"), CONTEXT)
        current.target = store.roles.logs
        http = request.getfixturevalue("http_backend")
        yield Subject(
            "http", _Combined(http.roles), namespace, store.roles.sink, http.roles.platform_logs, http.roles.audit
        )
        current.target = None
        asyncio.run(store.close())
    else:
        if request.param == "datadog":
            # Emptied per test, like a fresh embedded store: Datadog keeps every copy of a span id that several
            # tests load (OpenSearch's deterministic ids keep one), and a lookup by id must not meet another's.
            request.getfixturevalue("datadog_fake")
        backend = request.getfixturevalue(f"{request.param}_backend")
        yield Subject(request.param, backend.roles.logs, namespace, *_trail(backend.roles))


def _trail(roles: registry.Roles) -> tuple[Any, Any, Any]:
    """A backend's sink, platform-logs and audit roles, in Subject's field order."""
    return roles.sink, roles.platform_logs, roles.audit
