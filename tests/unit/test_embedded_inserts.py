"""Multi-row INSERTs (adapters/embedded/inserts.py) write exactly the rows given, in their order, with a few
statement shapes whatever the number of rows."""

from __future__ import annotations

import sqlite3

import pytest

from adapters.embedded import inserts
from adapters.embedded.inserts import insert_rows

pytestmark = pytest.mark.unit


def _table() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, stream INTEGER, a INTEGER, b TEXT)")
    return conn


@pytest.mark.parametrize("count", [0, 1, 2, 63, 64, 65, 127, 200])
def test_every_row_in_order_with_and_without_a_shared_first_column(count: int) -> None:
    rows = [(n, f"line {n} 'quoted' ?") for n in range(count)]
    shared, separate = _table(), _table()
    insert_rows(shared, "INSERT INTO t (stream, a, b)", rows, first=7)
    insert_rows(separate, "INSERT INTO t (stream, a, b)", [(n % 3, *row) for n, row in enumerate(rows)])
    assert shared.execute("SELECT stream, a, b FROM t ORDER BY id").fetchall() == [(7, *row) for row in rows]
    assert separate.execute("SELECT stream, a, b FROM t ORDER BY id").fetchall() == [
        (n % 3, *row) for n, row in enumerate(rows)
    ]


def test_any_number_of_rows_takes_one_of_seven_statement_sizes() -> None:
    inserts._statement.cache_clear()
    conn = _table()
    for count in range(1, 300):
        insert_rows(conn, "INSERT INTO t (stream, a, b)", [(count, "x")] * count, first=1)
    assert inserts._statement.cache_info().currsize == 7  # 1, 2, 4, ..., 64
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (sum(range(1, 300)),)
