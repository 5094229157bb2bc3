"""The contract suite's subject: each test runs once per backend, against the same expectations.

The embedded backend is fresh per test. OpenSearch is one real server per session (`opensearch_url`), with
indices under a prefix of this session's own; tests stay apart by writing into a namespace of their own.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from adapters.embedded.backend import EmbeddedBackend
from domain.model import EventRecord, LogRecord, SpanRecord
from adapters.opensearch.backend import OpenSearchBackend
from adapters.opensearch.client import OpenSearchConfig
from tests.servers.opensearch_layout import drop_layout, unique_layout

_namespaces = itertools.count()


@dataclass
class Subject:
    """A backend under test and how to put records into it so that queries see them at once."""

    kind: str
    backend: Any  # LogsBackend + EventsBackend + TracesBackend
    namespace: str  # this test's own namespace

    async def load(
        self, logs: Sequence[LogRecord] = (), events: Sequence[EventRecord] = (), spans: Sequence[SpanRecord] = ()
    ) -> None:
        await self.backend.write(batch_id=uuid.uuid4().hex, logs=logs, events=events, spans=spans)


@pytest.fixture(scope="session")
async def opensearch_backend(opensearch_url: str) -> AsyncIterator[OpenSearchBackend]:
    layout = unique_layout("contract")
    backend = OpenSearchBackend(OpenSearchConfig(address=opensearch_url, layout=layout), {"refresh": True})
    await backend.install(retention_days=30)
    yield backend
    await drop_layout(backend.client, layout)
    await backend.close()


@pytest.fixture(params=["embedded", "opensearch"])
def subject(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Subject]:
    # A plain fixture: it picks the async session fixture by name, which an async fixture could not.
    namespace = f"ns{next(_namespaces)}"
    if request.param == "embedded":
        backend = EmbeddedBackend(tmp_path / "data")
        yield Subject("embedded", backend, namespace)
        backend.close()
    else:
        yield Subject("opensearch", request.getfixturevalue("opensearch_backend"), namespace)
