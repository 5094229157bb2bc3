"""The alert store's database: SQLite by default, PostgreSQL by DSN, one set of SQLAlchemy Core tables.

Every alerting table (resources, alert and incident entries, the notification outbox) hangs off one `metadata`
(observer/alerting/tables.py), so
one `create_all` makes the schema and one transaction can write an alert, its incident and its notifications
together: that single commit is what makes "accepted" mean "will be notified exactly once".
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event

from observer.alerting.tables import metadata


def open_engine(dsn: str) -> Engine:
    """`dsn` is a SQLAlchemy URL (`postgresql+psycopg://...`, `sqlite:///path`), a `postgres://` URL, or a plain
    file path (SQLite, WAL)."""
    if dsn.startswith(("postgres://", "postgresql://")):
        dsn = "postgresql+psycopg://" + dsn.split("://", 1)[1]
    if "://" not in dsn:
        Path(dsn).parent.mkdir(parents=True, exist_ok=True)
        dsn = f"sqlite:///{dsn}"
    if dsn.startswith("sqlite"):
        engine = create_engine(dsn, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(conn, _record) -> None:  # durable and concurrent enough for one writer
            cursor = conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()
    else:
        engine = create_engine(dsn, pool_pre_ping=True)
    metadata.create_all(engine)
    return engine
