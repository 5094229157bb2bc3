"""Bringing a data directory made by an older version up to today's layout, on open.

PRAGMA user_version holds the layout's version. Version 1 added the Kubernetes placement (cluster, node, pod IP,
image, labels) to `streams` and to its identity key; SQLite cannot change a UNIQUE constraint in place, so the
table is rebuilt, ids kept (every record points at them), inside one transaction: a crash leaves the old table.
"""

from __future__ import annotations

import re
import sqlite3

SCHEMA_VERSION = 1
_OLD_STREAMS = "streams_before_placement"


def migrate(conn: sqlite3.Connection, schema: str) -> None:
    """Upgrades an older file, then applies `schema` (idempotent: every statement is IF NOT EXISTS). `conn` is
    in autocommit mode (isolation_level None)."""
    if _version(conn) < 1 and _needs_placement(conn):
        conn.execute("BEGIN IMMEDIATE")
        try:
            if _needs_placement(conn):  # another process may have migrated while this one waited
                _add_placement(conn, schema)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    conn.executescript(schema)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _version(conn: sqlite3.Connection) -> int:
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    return int(version)


def _needs_placement(conn: sqlite3.Connection) -> bool:
    """Whether `streams` exists without its placement columns (a file made before version 1)."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(streams)")}
    return bool(columns) and "cluster" not in columns


def _add_placement(conn: sqlite3.Connection, schema: str) -> None:
    """Rebuilds `streams` with today's definition (from `schema`), copying every row with its id; the new
    columns take their defaults (no placement known, no labels)."""
    old_columns = [row[1] for row in conn.execute("PRAGMA table_info(streams)")]
    conn.execute(f"ALTER TABLE streams RENAME TO {_OLD_STREAMS}")
    conn.execute(streams_definition(schema))
    listed = ", ".join(old_columns)
    conn.execute(f"INSERT INTO streams ({listed}) SELECT {listed} FROM {_OLD_STREAMS}")
    conn.execute(f"DROP TABLE {_OLD_STREAMS}")  # its indexes go with it; the schema recreates them


def streams_definition(schema: str) -> str:
    """The CREATE TABLE statement of `streams` in the schema file: the one definition of the table."""
    found = re.search(r"CREATE TABLE IF NOT EXISTS streams \(.*?\n\);", schema, re.DOTALL)
    if found is None:
        raise RuntimeError("schema.sql defines no streams table")
    return found.group(0)
