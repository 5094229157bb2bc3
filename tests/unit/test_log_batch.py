"""Issue 14, goal 5: an OTLP export's log lines travel to the store grouped by their resource (domain.log_batch).

The batch must be the very records a list would have held (order, fields, identities), and the embedded store
must store a batch exactly as it stores the same records given one by one: same rows, same streams, same
registry entries.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from adapters.embedded.backend import EmbeddedBackend
from devservers.sample import BASE_NS
from domain.log_batch import LogBatch
from domain.model import Identity, LogRecord

pytestmark = pytest.mark.unit

CART = Identity(namespace="acme", project="shop", project_uid="p-1", component="cart", component_uid="c-1")
FRONT = Identity(namespace="acme", project="shop", project_uid="p-1", component="front", component_uid="c-2")


def records() -> list[LogRecord]:
    """Two resources, one of them twice (an equal identity, another object), streams interleaved."""
    cart_again = Identity(**{name: getattr(CART, name) for name in Identity.__dataclass_fields__})
    return [
        LogRecord(BASE_NS, "a", CART, "INFO", "t" * 32, "s" * 16, "otlp"),
        LogRecord(BASE_NS + 1, "b", CART, "WARN", stream="stderr"),
        LogRecord(BASE_NS + 2, "c", CART, "INFO", stream="otlp"),
        LogRecord(BASE_NS + 3, "d", FRONT, "ERROR", stream="otlp"),
        LogRecord(BASE_NS + 4, "e", cart_again, "", stream="otlp"),
    ]


def test_a_batch_holds_the_records_in_their_order_in_runs_of_one_resource_and_stream() -> None:
    batch = LogBatch.of(records())
    assert len(batch) == 5
    assert batch == records() and list(batch) == records() and batch[1] == records()[1]
    runs = [(identity.component, stream, [row[2] for row in rows]) for identity, stream, rows in batch.groups()]
    assert runs == [
        ("cart", "otlp", ["a"]),
        ("cart", "stderr", ["b"]),
        ("cart", "otlp", ["c"]),
        ("front", "otlp", ["d"]),
        ("cart", "otlp", ["e"]),
    ]
    assert batch.identities() == [CART, FRONT]
    assert batch != records()[:4] and LogBatch() == []


def test_a_batch_read_once_takes_no_more_lines() -> None:
    batch = LogBatch.of(records())
    assert batch[0].body == "a"
    with pytest.raises(RuntimeError):
        batch.rows(CART, "otlp")


def _stored(data_dir: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    conn = sqlite3.connect(data_dir / "telemetry.db")
    try:
        logs = conn.execute(
            "SELECT s.component, s.component_uid, l.ts_ns, l.level, l.body, l.trace_id, l.span_id"
            " FROM logs l JOIN streams s ON s.id = l.stream_id ORDER BY l.id"
        ).fetchall()
        registry = conn.execute("SELECT kind, namespace, name, uid FROM registry ORDER BY 1, 2, 3").fetchall()
        return logs, registry
    finally:
        conn.close()


def test_the_embedded_store_stores_a_batch_as_it_stores_its_records(tmp_path: Path) -> None:
    async def write(data_dir: Path, logs: list[LogRecord] | LogBatch) -> None:
        backend = EmbeddedBackend(data_dir)
        try:
            await backend.write(batch_id="one", logs=logs)
            await backend.write(batch_id="one", logs=logs)  # a batch seen before is a no-op, both ways
        finally:
            backend.close()

    asyncio.run(write(tmp_path / "records", records()))
    asyncio.run(write(tmp_path / "batch", LogBatch.of(records())))
    by_records, by_batch = _stored(tmp_path / "records"), _stored(tmp_path / "batch")
    assert by_batch == by_records
    assert [row[4] for row in by_batch[0]] == ["a", "b", "c", "d", "e"]
    assert ("component", "acme", "front", "c-2") in by_batch[1]
