"""The alert store's database: SQLite by default, PostgreSQL by DSN, one set of SQLAlchemy Core tables.

Every alerting table (resources, alert and incident entries, the notification outbox) hangs off one `metadata`
(observer/alerting/tables.py), so
one `create_all` makes the schema and one transaction can write an alert, its incident and its notifications
together: that single commit is what makes "accepted" mean "will be notified exactly once".
"""

from __future__ import annotations

from sqlalchemy import Engine

from observer.alerting.tables import metadata
from serving.sql import open_sql_engine


def open_engine(dsn: str) -> Engine:
    """`dsn` is a SQLAlchemy URL (`postgresql+psycopg://...`, `sqlite:///path`), a `postgres://` URL, or a plain
    file path (SQLite, WAL)."""
    engine = open_sql_engine(dsn)
    metadata.create_all(engine)
    return engine
