"""The SQLite file behind the embedded backend: connections, schema, and the one writer.

SQLite in WAL mode lets readers run while one writer commits. Reads therefore use a connection per thread and
run in the default thread pool; writes are serialised through a single connection under a lock, one
transaction per batch. Each query and write runs off the event loop, so a slow disk never stalls the API; the
one exception is the name registry's lookup (registry.py `resolve`), a few primary-key reads of a tiny table that
cost less than the hop to a thread and back.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path
from typing import TypeVar

from adapters.embedded.migrations import migrate
from adapters.embedded.scope import STREAM_COLUMNS, stream_values
from domain.model import Identity

T = TypeVar("T")

_SCHEMA = files("adapters.embedded").joinpath("schema.sql").read_text()
_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",  # durable at checkpoints; WAL keeps the file consistent on a crash
    "PRAGMA busy_timeout=10000",
    "PRAGMA cache_size=-65536",  # 64 MiB of page cache per connection
    "PRAGMA temp_store=MEMORY",
    "PRAGMA mmap_size=1073741824",
)


_INSERT_STREAM = (
    f"INSERT OR IGNORE INTO streams ({', '.join(STREAM_COLUMNS)}) VALUES ({','.join('?' * len(STREAM_COLUMNS))})"
)
_FIND_STREAM = "SELECT id FROM streams WHERE " + " AND ".join(f"{column} = ?" for column in STREAM_COLUMNS)


def _casefold(value: str | bytes | int | float | None) -> str | bytes | int | float | None:
    return value.casefold() if isinstance(value, str) else value


class Store:
    """One data directory, one database file (`telemetry.db`)."""

    def __init__(self, data_dir: Path | str):
        self.path = Path(data_dir) / "telemetry.db"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._writer = self._connect()
        migrate(self._writer, _SCHEMA)
        self._stream_ids: dict[Identity, int] = {}

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        for pragma in _PRAGMAS:
            conn.execute(pragma)
        # Case-insensitive matching of any script (SQLite's lower() folds ASCII only): filter values' valueSearch.
        conn.create_function("casefold", 1, _casefold, deterministic=True)
        return conn

    # ------------------------------------------------------------------------------------------- reading

    def reader(self) -> sqlite3.Connection:
        """This thread's read connection."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
            conn.execute("PRAGMA query_only=1")
        return conn

    async def read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Runs `work` with a read connection in the thread pool."""
        return await asyncio.to_thread(lambda: work(self.reader()))

    # ------------------------------------------------------------------------------------------- writing

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """The writer connection inside BEGIN IMMEDIATE ... COMMIT; rolled back on any error."""
        with self._write_lock:
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                # Stream ids handed out inside the failed transaction no longer exist.
                self._stream_ids.clear()
                raise

    async def write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Runs `work` in one write transaction in the thread pool."""

        def run() -> T:
            with self.transaction() as conn:
                return work(conn)

        return await asyncio.to_thread(run)

    def stream_id(self, conn: sqlite3.Connection, identity: Identity) -> int:
        """The id of the stream row for this identity, created on first sight. Call inside a transaction."""
        cached = self._stream_ids.get(identity)
        if cached is not None:
            return cached
        values = stream_values(identity)
        conn.execute(_INSERT_STREAM, values)
        stream_id: int
        (stream_id,) = conn.execute(_FIND_STREAM, values).fetchone()
        self._stream_ids[identity] = stream_id
        return stream_id

    def close(self) -> None:
        self._writer.close()
