"""The SQLite file behind the embedded backend: connections, schema, and the one writer.

SQLite in WAL mode lets readers run while one writer commits. Reads therefore use a connection per thread and
run in the default thread pool; writes are serialised through a single connection under a lock, one
transaction per batch, or per group of batches that queued up meanwhile (group commit, `Store.write`). Each
query and write runs off the event loop, so a slow disk never stalls the API; the one exception is the name
registry's lookup (registry.py `resolve`), a few primary-key reads of a tiny table that cost less than the hop
to a thread and back.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

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


#: The most writes one transaction commits together (each write is itself bounded: a batch, an index chunk).
MAX_GROUP = 32


@dataclass(slots=True)
class _Work(Generic[T]):
    """A write waiting for the writer, and then its outcome."""

    run: Callable[[sqlite3.Connection], T]
    result: T | None = None
    error: BaseException | None = None
    done: bool = False


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
        self._queue_lock = threading.Lock()
        self._queue: list[_Work[Any]] = []  # writes waiting for the writer (group commit)
        self._rollback_hooks: list[Callable[[], None]] = []

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
                self._forget()
                raise

    async def write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Runs `work` in a write transaction in the thread pool; returns once that transaction is committed.

        Writes that queue up while another commits are committed together, each in its own savepoint (group
        commit): concurrent exports then share one commit, which costs as much as a third of writing their
        rows. A work that fails is rolled back alone and raises here; the others are unaffected. If the
        transaction itself is lost (SQLite rolls everything back on some errors, or the commit fails), every
        work of the group raises, so none is reported stored that is not."""
        pending = _Work(work)
        await asyncio.to_thread(self._write_grouped, pending)
        if pending.error is not None:
            raise pending.error
        return cast(T, pending.result)

    def _write_grouped(self, pending: _Work[Any]) -> None:
        with self._queue_lock:
            self._queue.append(pending)
        with self._write_lock:
            while not pending.done:  # whoever holds the writer commits what queued, up to MAX_GROUP at a time
                with self._queue_lock:
                    group = self._queue[:MAX_GROUP]
                    del self._queue[:MAX_GROUP]
                self._commit_group(group)

    def _commit_group(self, group: list[_Work[Any]]) -> None:
        conn = self._writer
        try:
            conn.execute("BEGIN IMMEDIATE")
            for item in group:
                conn.execute("SAVEPOINT work")
                try:
                    item.result = item.run(conn)
                except Exception as exc:
                    item.error = exc
                    self._forget()
                    if not conn.in_transaction:
                        raise
                    conn.execute("ROLLBACK TO work")
                conn.execute("RELEASE work")
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._forget()
            for item in group:
                if item.error is None:
                    item.result, item.error = None, exc
            if not isinstance(exc, Exception):
                raise
        finally:
            for item in group:
                item.done = True

    def on_rollback(self, hook: Callable[[], None]) -> None:
        """Calls `hook` whenever a write is rolled back: a cache of what the store holds (its stream ids, the
        registry's known names) must then forget what that write added, which no longer exists."""
        self._rollback_hooks.append(hook)

    def _forget(self) -> None:
        self._stream_ids.clear()
        for hook in self._rollback_hooks:
            hook()

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
