"""Adding a backend is shown, not claimed: the contract suite's logs cases, run against a backend defined in
tests/registry_example (registered with OBSERVER_BACKENDS, nothing outside that package edited), through a real
`observer up` process: records go in over OTLP/HTTP, queries come back over the public REST API.

The subject here speaks HTTP: `load` sends OTLP (the example backend takes the logs, the embedded store learns
the names), `backend.query_logs` posts /api/v1/logs/query with the scope's names and turns the answer back into
domain records, so the very test functions of tests/contract/test_logs.py run unchanged.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.protocols import InvalidCursor
from collectors.otlp.encode import encode_batch
from devservers.observer import AllInOne, observer_up
from devservers.sample import COMPONENTS, ENVIRONMENTS, PROJECT, PROJECT_UID
from domain.model import ComponentScope, EventRecord, Identity, LogRecord, LogsQuery, Page, SpanRecord
from domain.timeutil import format_rfc3339, parse_rfc3339
from tests.contract import test_logs as contract_logs
from tests.contract.conftest import Subject

EXAMPLE = {"OBSERVER_BACKENDS": "tests.registry_example.plugin:ENTRY", "EXAMPLE_LOGS": "on"}
_NAMES = {
    PROJECT_UID: PROJECT,
    **{uid: name for name, uid in COMPONENTS.items()},
    **{uid: name for name, uid in ENVIRONMENTS.items()},
}
_namespaces = itertools.count()

# The contract's logs cases, collected here with this module's `subject`.
for _name in dir(contract_logs):
    if _name.startswith("test_"):
        globals()[_name] = getattr(contract_logs, _name)


class HttpLogs:
    """LogsBackend over the public API of a running `observer up`."""

    def __init__(self, api: str):
        self.api = api

    async def query_logs(self, query: LogsQuery) -> Page[LogRecord]:
        body: dict[str, Any] = {
            "startTime": format_rfc3339(query.range.start_ns),
            "endTime": format_rfc3339(query.range.end_ns),
            "searchScope": _scope(query.scope),
            "limit": query.limit,
            "sortOrder": query.sort,
        }
        if query.levels:
            body["logLevels"] = list(query.levels)
        if query.phrase:
            body["searchPhrase"] = query.phrase
        if query.cursor:
            body["cursor"] = query.cursor
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.post(f"{self.api}/api/v1/logs/query", json=body)
        if response.status_code == 400 and "cursor" in response.text:
            raise InvalidCursor(response.json().get("message", ""))
        assert response.status_code == 200, response.text
        answer = response.json()
        return Page(
            [_record(entry) for entry in answer["logs"]],
            answer["total"],
            answer["tookMs"],
            answer.get("nextCursor", ""),
        )


def _scope(scope: Any) -> dict[str, str]:
    if isinstance(scope, ComponentScope):
        names = {
            "namespace": scope.namespace,
            "project": _NAMES.get(scope.project_uid, ""),
            "component": _NAMES.get(scope.component_uid, ""),
            "environment": _NAMES.get(scope.environment_uid, ""),
        }
    else:
        # `workflowRunName` selects the workflow shape, even empty (every run of the namespace)
        return {
            "namespace": scope.namespace,
            "workflowRunName": scope.workflow_run,
            **({"taskName": scope.task} if scope.task else {}),
        }
    return {key: value for key, value in names.items() if value}


def _record(entry: dict[str, Any]) -> LogRecord:
    meta = entry.get("metadata", {})
    identity = Identity(
        namespace=meta.get("namespaceName", ""),
        project=meta.get("projectName", ""),
        project_uid=meta.get("projectUid", ""),
        component=meta.get("componentName", ""),
        component_uid=meta.get("componentUid", ""),
        environment=meta.get("environmentName", ""),
        environment_uid=meta.get("environmentUid", ""),
        pod=meta.get("podName", ""),
        pod_namespace=meta.get("podNamespace", ""),
        container=meta.get("containerName", ""),
    )
    return LogRecord(
        parse_rfc3339(entry["timestamp"]),
        entry["log"],
        identity,
        entry.get("level", ""),
        entry.get("traceId", ""),
        entry.get("spanId", ""),
    )


class HttpSubject(Subject):
    async def load(
        self, logs: Sequence[LogRecord] = (), events: Sequence[EventRecord] = (), spans: Sequence[SpanRecord] = ()
    ) -> None:
        """Over OTLP/HTTP, as any SDK or collector sends (answered only once stored)."""
        async with httpx.AsyncClient(timeout=60) as client:
            for request in encode_batch(logs=logs, events=events, spans=spans):
                response = await client.post(
                    f"{self.sink}/v1/{request.signal}",
                    content=request.message().SerializeToString(),
                    headers={"Content-Type": "application/x-protobuf", "X-Batch-Id": uuid.uuid4().hex},
                )
                assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def observer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AllInOne]:
    data = tmp_path_factory.mktemp("registry-example")
    with observer_up(data / "data", log_file=data / "observer.log", env=EXAMPLE) as running:
        yield running


@pytest.fixture
def subject(observer: AllInOne) -> Subject:
    return HttpSubject("example over HTTP", HttpLogs(observer.api), f"rx{next(_namespaces)}", observer.otlp)


async def test_the_example_backend_keeps_the_logs_and_the_embedded_one_only_their_names(
    observer: AllInOne, subject: Subject
) -> None:
    """The logs really went to the registered backend: the embedded store has none of them, yet learned the
    names they carry (which is how the query above resolved them)."""
    import sqlite3

    from tests.contract.data import WINDOW, cart_scope, log

    await subject.load(logs=[log(subject.namespace, 0, "only in memory")])
    page = await subject.backend.query_logs(LogsQuery(scope=cart_scope(subject.namespace), range=WINDOW))
    assert [record.body for record in page.items] == ["only in memory"]
    arguments = [str(argument) for argument in observer.process.args]  # type: ignore[union-attr]
    database = Path(arguments[arguments.index("--data-dir") + 1]) / "telemetry.db"
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        assert conn.execute("SELECT count(*) FROM logs").fetchone() == (0,)
