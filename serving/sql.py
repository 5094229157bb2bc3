"""The SQL engine of a service's own state (the control plane's resources, the observer's alert store).

Both keep their state in SQLite by default and in PostgreSQL when given a DSN, with the same expectations of
either: SQLite in WAL mode with full sync (an acknowledged write survives a crash) and a busy timeout long
enough that a reader never fails a writer; PostgreSQL through psycopg 3, connections checked before use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event


def open_sql_engine(dsn: str) -> Engine:
    """An engine for `dsn`: a SQLAlchemy URL (`sqlite:///path`, `postgresql+psycopg://...`), a `postgres://` or
    `postgresql://` URL (psycopg 3 is the driver), or a plain file path (SQLite). A SQLite file's directory is
    created."""
    if dsn.startswith(("postgres://", "postgresql://")):
        dsn = "postgresql+psycopg://" + dsn.split("://", 1)[1]
    if "://" not in dsn:
        dsn = f"sqlite:///{dsn}"
    if not dsn.startswith("sqlite"):
        return create_engine(dsn, pool_pre_ping=True)
    path = dsn.split(":///", 1)[1] if ":///" in dsn else ""
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(dsn, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _pragmas(conn: Any, _record: Any) -> None:
        cursor = conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    return engine
