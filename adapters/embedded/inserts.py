"""Many rows into one table, with multi-row INSERT statements.

`executemany` runs one statement per row, and Python's sqlite3 lets go of the GIL for each row's step and
takes it back after. While another thread runs Python (an export being decoded), every row of a write then
waits for that thread to yield: a thousand-line batch becomes a thousand hand-overs, and ingest with several
senders ran at two thirds of the rate of one writer alone. A statement of up to 64 rows takes the GIL back
once per 64 rows, and binds its values for less. Chunk sizes are powers of two (64, then halved down to 1),
so a handful of statement shapes serves every batch and stays compiled in the connection's statement cache.
"""

from __future__ import annotations

import functools
import itertools
import sqlite3
from collections.abc import Sequence

#: Rows one statement writes, at most.
ROWS_PER_STATEMENT = 64


@functools.lru_cache(maxsize=256)  # a few tables x 7 sizes x 2 layouts
def _statement(head: str, width: int, rows: int, shared_first: bool) -> str:
    """`head` (`INSERT INTO t (a, b, c)`) with `rows` rows of `width` values; with `shared_first`, every row's
    first value is `?1` and the row tuples hold the rest."""
    row = "(?1," + ",".join("?" * (width - 1)) + ")" if shared_first else "(" + ",".join("?" * width) + ")"
    return head + " VALUES " + ",".join([row] * rows)


def insert_rows(
    conn: sqlite3.Connection, head: str, rows: Sequence[Sequence[object]], *, first: object | None = None
) -> None:
    """Inserts `rows` under `head` (`INSERT [OR ...] INTO table (columns)`). With `first`, that value is every
    row's first column and the rows hold the others (a stream id shared by a run of lines)."""
    if not rows:
        return
    shared = first is not None
    width = len(rows[0]) + shared
    position, size = 0, ROWS_PER_STATEMENT
    while position < len(rows):
        while size > len(rows) - position:
            size //= 2
        values = itertools.chain.from_iterable(rows[position : position + size])
        conn.execute(_statement(head, width, size, shared), [first, *values] if shared else list(values))
        position += size
