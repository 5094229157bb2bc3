"""Issue 14, goal 5: writes that queue up while the embedded store's writer is busy are committed together.

Group commit must not change what a caller is told: a write returns once its own rows are committed, a write
that fails is rolled back alone and raises, and when the shared transaction itself is lost every write of the
group raises (none is reported stored that is not).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from adapters.embedded.backend import EmbeddedBackend
from adapters.embedded.store import Store
from domain.model import Identity, LogRecord

pytestmark = pytest.mark.unit


def _insert(value: str):  # type: ignore[no-untyped-def]
    def work(conn: sqlite3.Connection) -> str:
        conn.execute("INSERT INTO applied_batches (batch_id, applied_ns) VALUES (?, 0)", (value,))
        return value

    return work


def _fail(conn: sqlite3.Connection) -> None:
    conn.execute("INSERT INTO applied_batches (batch_id, applied_ns) VALUES ('failed', 0)")
    raise ValueError("this write fails")


def _lose_transaction(conn: sqlite3.Connection) -> None:
    conn.execute("ROLLBACK")  # as SQLite itself does on a full disk or an I/O error
    raise sqlite3.OperationalError("database or disk is full")


def _stored(store: Store) -> list[str]:
    rows = store.reader().execute("SELECT batch_id FROM applied_batches ORDER BY batch_id").fetchall()
    return [row[0] for row in rows]


async def _behind_a_busy_writer(store: Store, works: list) -> tuple[list[object], list[str]]:  # type: ignore[type-arg]
    """Runs `works` while another transaction holds the writer, so that they all queue up; returns each one's
    outcome (its result or its exception) and the SQL statements the writer ran once they were queued."""
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store.transaction():
            holding.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait(30)
    statements: list[str] = []
    store._writer.set_trace_callback(statements.append)
    tasks = [asyncio.ensure_future(store.write(work)) for work in works]
    for _ in range(3000):
        if len(store._queue) == len(works):
            break
        await asyncio.sleep(0.01)
    assert len(store._queue) == len(works), "the writes did not queue up behind the busy writer"
    release.set()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    holder.join()
    store._writer.set_trace_callback(None)
    return outcomes, [s for s in statements if s in ("BEGIN IMMEDIATE", "COMMIT", "ROLLBACK")]


def test_writes_queued_behind_the_writer_share_one_commit(tmp_path: Path) -> None:
    store = Store(tmp_path)
    outcomes, statements = asyncio.run(_behind_a_busy_writer(store, [_insert(f"b{n}") for n in range(5)]))
    assert outcomes == ["b0", "b1", "b2", "b3", "b4"]
    assert statements[-2:] == ["BEGIN IMMEDIATE", "COMMIT"] and statements.count("COMMIT") == 2  # the holder's
    assert _stored(store) == ["b0", "b1", "b2", "b3", "b4"]


def test_a_failing_write_is_rolled_back_alone(tmp_path: Path) -> None:
    store = Store(tmp_path)
    outcomes, _ = asyncio.run(_behind_a_busy_writer(store, [_insert("a"), _fail, _insert("c")]))
    assert outcomes[0] == "a" and outcomes[2] == "c"
    assert isinstance(outcomes[1], ValueError)
    assert _stored(store) == ["a", "c"]


def test_a_lost_transaction_fails_every_write_of_its_group(tmp_path: Path) -> None:
    store = Store(tmp_path)
    outcomes, _ = asyncio.run(_behind_a_busy_writer(store, [_insert("a"), _lose_transaction, _insert("c")]))
    assert all(isinstance(outcome, sqlite3.OperationalError) for outcome in outcomes)
    assert _stored(store) == []
    # and the writer is usable again
    assert asyncio.run(store.write(_insert("after"))) == "after"
    assert _stored(store) == ["after"]


def test_a_write_alone_returns_its_result_and_a_failing_one_stores_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path)
    assert asyncio.run(store.write(_insert("x"))) == "x"
    with pytest.raises(ValueError):
        asyncio.run(store.write(_fail))
    assert _stored(store) == ["x"]


def test_names_learned_by_a_rolled_back_write_are_learned_again(tmp_path: Path) -> None:
    """The registry remembers which names it stored, to skip writing them again; a write rolled back must make
    it forget, or the name would never be stored."""
    backend = EmbeddedBackend(tmp_path)
    cart = Identity(namespace="acme", project="shop", project_uid="p-1", component="cart", component_uid="c-1")
    line = LogRecord(1_700_000_000 * 10**9, "hello", cart)

    def apply_then_fail(conn: sqlite3.Connection) -> None:
        backend.apply(conn, "first", [line], (), (), ())
        raise ValueError("the batch fails after learning its names")

    async def scenario() -> list[dict[str, str]]:
        with pytest.raises(ValueError):
            await backend.store.write(apply_then_fail)
        await backend.write(batch_id="second", logs=[line])
        return await backend.registry.entries()

    try:
        names = {(entry["kind"], entry["name"], entry["uid"]) for entry in asyncio.run(scenario())}
    finally:
        backend.close()
    assert ("component", "cart", "c-1") in names and ("project", "shop", "p-1") in names
