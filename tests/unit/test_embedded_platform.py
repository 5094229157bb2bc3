"""The embedded backend's platform logs: placement stored in `streams` as part of its identity, an older data
directory migrated on open, label filters safe for any key or value, and filter values counted in SQL."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from adapters.embedded.backend import EmbeddedBackend
from adapters.embedded.migrations import SCHEMA_VERSION, streams_definition
from adapters.embedded.paging import filtered
from adapters.embedded.platform import platform_select
from adapters.embedded.plugin import ENTRY
from adapters.embedded.store import _SCHEMA
from adapters.protocols import AuditBackend, PlatformLogsBackend
from adapters.registry import Context
from domain.model import ComponentScope, Identity, LogRecord, LogsQuery, TimeRange, sorted_labels
from domain.platform import FilterValuesQuery, PlatformLogsQuery

S = 10**9
T0 = 1_700_000_000 * S
RANGE = TimeRange(T0, T0 + 3600 * S)

#: `streams` as every data directory made before issue 20 has it.
OLD_STREAMS = """CREATE TABLE IF NOT EXISTS streams (
  id              INTEGER PRIMARY KEY,
  namespace       TEXT NOT NULL,
  project         TEXT NOT NULL,
  project_uid     TEXT NOT NULL,
  component       TEXT NOT NULL,
  component_uid   TEXT NOT NULL,
  environment     TEXT NOT NULL,
  environment_uid TEXT NOT NULL,
  pod             TEXT NOT NULL,
  pod_namespace   TEXT NOT NULL,
  container       TEXT NOT NULL,
  workflow_run    TEXT NOT NULL,
  task            TEXT NOT NULL,
  UNIQUE (namespace, project, project_uid, component, component_uid, environment, environment_uid,
          pod, pod_namespace, container, workflow_run, task)
);"""


def pod(name: str, cluster: str = "east", labels: dict[str, str] | None = None, **fields: str) -> Identity:
    return Identity(
        cluster=cluster,
        node="node-1",
        pod_ip="10.0.0.7",
        image="example/app:1",
        pod_namespace=fields.pop("pod_namespace", "kube-system"),
        pod=name,
        container=fields.pop("container", "app"),
        labels=sorted_labels(labels or {}),
        **fields,
    )


def line(offset_s: int, body: str, who: Identity, level: str = "INFO") -> LogRecord:
    return LogRecord(T0 + offset_s * S, body, who, level)


def old_data_dir(directory: Path) -> None:
    """A telemetry.db laid out as before placement existed, holding two streams (ids 7 and 9) and their lines."""
    directory.mkdir(parents=True)
    conn = sqlite3.connect(directory / "telemetry.db", isolation_level=None)
    old = _SCHEMA.replace(streams_definition(_SCHEMA), OLD_STREAMS)
    old = "\n".join(line for line in old.splitlines() if "streams_by_placement" not in line)
    conn.executescript(old)
    for stream_id, component in ((7, "cart"), (9, "web")):
        conn.execute(
            "INSERT INTO streams VALUES (?, 'acme', 'shop', 'p-1', ?, ?, 'prod', 'e-1', ?, 'dp-acme', 'main', '', '')",
            (stream_id, component, f"c-{component}", f"{component}-0"),
        )
        conn.execute(
            "INSERT INTO logs (stream_id, ts_ns, level, body, trace_id, span_id) VALUES (?, ?, 'INFO', ?, '', '')",
            (stream_id, T0 + stream_id * S, f"{component} says hi"),
        )
    conn.close()


async def test_a_data_dir_from_before_placement_is_migrated_keeping_its_ids(tmp_path: Path) -> None:
    old_data_dir(tmp_path / "data")
    backend = EmbeddedBackend(tmp_path / "data")
    try:
        conn = backend.store.reader()
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        rows = conn.execute("SELECT id, component, cluster, labels FROM streams ORDER BY id").fetchall()
        assert rows == [(7, "cart", "", "{}"), (9, "web", "", "{}")]
        assert not conn.execute("SELECT name FROM sqlite_master WHERE name LIKE 'streams_before%'").fetchall()
        page = await backend.query_logs(LogsQuery(scope=ComponentScope("acme", "p-1", "c-cart"), range=RANGE))
        assert [(log.body, log.identity.pod, log.identity.labels) for log in page.items] == [
            ("cart says hi", "cart-0", ())
        ]
        # The old identity finds its old stream; the same pod with a placement is a stream of its own.
        old = page.items[0].identity
        with backend.store.transaction() as writer:
            assert backend.store.stream_id(writer, old) == 7
            assert backend.store.stream_id(writer, replace(old, cluster="east")) == 10
        platform = await backend.query_platform_logs(PlatformLogsQuery(range=RANGE, namespaces=("dp-acme",)))
        assert [log.body for log in platform.items] == ["web says hi", "cart says hi"]
    finally:
        backend.close()
    reopened = EmbeddedBackend(tmp_path / "data")  # a migrated file opens as it is
    try:
        assert reopened.store.reader().execute("SELECT count(*) FROM streams").fetchone() == (3,)
    finally:
        reopened.close()


def test_placement_is_part_of_a_streams_identity(backend: EmbeddedBackend) -> None:
    with backend.store.transaction() as conn:
        first = backend.store.stream_id(conn, pod("a", labels={"app": "x", "tier": "y"}))
        assert backend.store.stream_id(conn, pod("a", labels={"tier": "y", "app": "x"})) == first
        others = {
            backend.store.stream_id(conn, each)
            for each in (
                pod("a", labels={"app": "x"}),
                pod("a", cluster="west", labels={"app": "x", "tier": "y"}),
                replace(pod("a", labels={"app": "x", "tier": "y"}), node="node-2"),
                replace(pod("a", labels={"app": "x", "tier": "y"}), image="example/app:2"),
                replace(pod("a", labels={"app": "x", "tier": "y"}), pod_ip="10.0.0.8"),
            )
        }
    assert first not in others and len(others) == 5


async def test_label_keys_and_values_of_any_shape_match_exactly(backend: EmbeddedBackend) -> None:
    odd = {"app.kubernetes.io/name": 'it\'s "quoted"', "$.key": "a'b", "x": "%_*"}
    await backend.write(
        batch_id="b",
        logs=[line(1, "odd", pod("odd-0", labels=odd)), line(2, "plain", pod("plain-0", labels={"x": "abc"}))],
    )
    for key, value in odd.items():
        page = await backend.query_platform_logs(PlatformLogsQuery(range=RANGE, labels=((key, value),)))
        assert [log.body for log in page.items] == ["odd"], key
        found = await backend.platform_filter_values(FilterValuesQuery(PlatformLogsQuery(range=RANGE), f"labels.{key}"))
        expected = [(value, 1)] if key != "x" else [("%_*", 1), ("abc", 1)]
        assert [(v.value, v.count) for v in found.values] == expected
    none = await backend.query_platform_logs(PlatformLogsQuery(range=RANGE, labels=(("x", "%"),)))
    assert none.items == []


async def test_value_search_folds_case_beyond_ascii(backend: EmbeddedBackend) -> None:
    await backend.write(batch_id="b", logs=[line(1, "a", pod("Über-0")), line(2, "b", pod("ueber-1"))])
    found = await backend.platform_filter_values(
        FilterValuesQuery(PlatformLogsQuery(range=RANGE), "podName", value_search="üBER")
    )
    assert [(v.value, v.count) for v in found.values] == [("Über-0", 1)]


async def test_a_rare_phrase_is_found_through_the_index_and_in_the_unindexed_tail(backend: EmbeddedBackend) -> None:
    await backend.write(batch_id="b1", logs=[line(1, "needle one", pod("a")), line(2, "hay", pod("a"))])
    await backend.index_logs()
    await backend.write(batch_id="b2", logs=[line(3, "needle two", pod("b"))])
    page = await backend.query_platform_logs(PlatformLogsQuery(range=RANGE, phrase="needle", sort="asc"))
    assert [log.body for log in page.items] == ["needle one", "needle two"]
    found = await backend.platform_filter_values(
        FilterValuesQuery(PlatformLogsQuery(range=RANGE, phrase="needle"), "podName")
    )
    assert [(v.value, v.count) for v in found.values] == [("a", 1), ("b", 1)]


def test_filter_values_count_over_a_covering_index(backend: EmbeddedBackend) -> None:
    """The count reads the (stream, time) or (stream, level, time) index of the placement's streams only: never a
    log row, whatever the range."""
    conn = backend.store.reader()
    for query in (
        PlatformLogsQuery(range=RANGE, clusters=("east",)),
        PlatformLogsQuery(range=RANGE, clusters=("east",), levels=("ERROR",)),
        PlatformLogsQuery(range=RANGE),
    ):
        source, source_params, where, params = filtered(platform_select(conn, query))
        plan = conn.execute(
            f"EXPLAIN QUERY PLAN SELECT r.stream_id, count(*) FROM {source} WHERE {' AND '.join(where)}"
            " GROUP BY r.stream_id",
            [*source_params, *params],
        ).fetchall()
        reading_logs = [row[3] for row in plan if " r " in f" {row[3]} "]
        assert reading_logs and all("COVERING INDEX logs_by_stream" in step for step in reading_logs), plan


async def test_an_unknown_filter_is_refused(backend: EmbeddedBackend) -> None:
    with pytest.raises(ValueError, match="unknown platform filter"):
        await backend.platform_filter_values(FilterValuesQuery(PlatformLogsQuery(range=RANGE), "nodeName"))


async def test_the_embedded_backend_serves_platform_logs_and_the_audit_trail(tmp_path: Path) -> None:
    built = ENTRY.create(ENTRY.settings(data_dir=tmp_path / "data"), Context("write"))
    try:
        assert isinstance(built.roles.platform_logs, PlatformLogsBackend)
        assert isinstance(built.roles.audit, AuditBackend)
    finally:
        await built.close()
