"""The audit trail in the embedded backend: its own table (`audit_records`), written with the batch it came in,
queried with every filter, phrase, order, page, total and timeline in SQL.

Each filter of domain.audit is a column of its own (entitlements the JSON array of every claim's values,
Actor.entitlement_values, matched through json_each); the record comes back from its stored document
(audit_document), so what is read is exactly what was written. The total is exact, never capped. A page
is ordered by (time, event id) as on every backend; its cursor holds the last record's time and row id, and the
row's event id is looked up again to continue, so any event id pages, however long or odd.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from typing import Any

from adapters.cursor import decode_cursor, encode_cursor, fingerprint
from adapters.protocols import pass_on_warning
from domain.audit import (
    AUDIT_FILTERS,
    MAX_TIMELINE_BUCKETS,
    QUERY_FILTERS,
    AuditPage,
    AuditQuery,
    AuditRecord,
    TimelineBucket,
    audit_document,
    audit_from_document,
)
from domain.platform import FilterValue, FilterValues, FilterValuesQuery
from domain.timeutil import elapsed_ms

ENTITLEMENTS = "actor.entitlements"
#: The column of each single-valued filter (its name with dots as underscores: `actor.session_id` ->
#: actor_session_id); entitlements, several per record, have a JSON array column of their own.
COLUMNS: dict[str, str] = {name: name.replace(".", "_") for name in QUERY_FILTERS if name != ENTITLEMENTS}
#: A timeline answer holds at most this many (bucket, result) rows: the service coarsens an interval giving more
#: than MAX_TIMELINE_BUCKETS buckets (domain.audit.coarsened_interval), and a record's result is one of a few.
_TIMELINE_ROWS = MAX_TIMELINE_BUCKETS * 8

_INSERT = (
    "INSERT OR IGNORE INTO audit_records (event_id, time_ns, actor_id, actor_type, actor_issuer, actor_session_id,"
    " actor_entitlements, resource_type, resource_namespace, resource_environment, resource_project,"
    " resource_component, resource_resource, resource_name, action, category, result, producer, surface,"
    " operation_id, source_ip, user_agent, request_id, document, search_text)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)


# ------------------------------------------------------------------------------------------------- writing


def _leaves(value: Any) -> Iterator[str]:
    """Every string in a JSON value (object keys left out)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)


def _row(record: AuditRecord) -> tuple[object, ...]:
    document = audit_document(record)
    resource = record.resource
    actor = record.actor
    return (
        record.event_id,
        record.time_ns,
        actor.id,
        actor.type,
        actor.issuer,
        actor.session_id,
        json.dumps(list(actor.entitlement_values), ensure_ascii=False),
        *(
            (
                resource.type,
                resource.namespace,
                resource.environment,
                resource.project,
                resource.component,
                resource.resource,
                resource.name,
            )
            if resource is not None
            else ("",) * 7
        ),
        record.action,
        record.category,
        record.result,
        record.producer,
        record.surface,
        record.operation_id,
        record.source_ip,
        record.user_agent,
        record.request_id,
        json.dumps(document, ensure_ascii=False, separators=(",", ":")),
        # The values a phrase is searched in, one per line: never a JSON key, never JSON escaping.
        "\n".join(_leaves(document)),
    )


def insert_audit(conn: sqlite3.Connection, records: Sequence[AuditRecord]) -> None:
    """Stores records inside the caller's transaction; an event id already stored is skipped (a redelivery)."""
    conn.executemany(_INSERT, [_row(record) for record in records])


# ------------------------------------------------------------------------------------------------- reading


def _where(query: AuditQuery) -> tuple[list[str], list[object]]:
    """WHERE clauses (over `audit_records a`) for the range, filters and phrase, and their parameters."""
    where = ["a.time_ns >= ?", "a.time_ns <= ?"]
    params: list[object] = [query.range.start_ns, query.range.end_ns]
    for name, wanted in query.filters:
        if not wanted:
            continue
        marks = ",".join("?" * len(wanted))
        if name == ENTITLEMENTS:
            where.append(f"EXISTS (SELECT 1 FROM json_each(a.actor_entitlements) e WHERE e.value IN ({marks}))")
        elif name in COLUMNS:
            where.append(f"a.{COLUMNS[name]} IN ({marks})")
        else:
            raise ValueError(f"unknown audit filter {name!r}")
        params += wanted
    if query.phrase:
        where.append("instr(a.search_text, ?) > 0")  # case-sensitive substring, as log phrases
        params.append(query.phrase)
    return where, params


def _fingerprint(query: AuditQuery) -> str:
    return fingerprint("audit", query.range, query.filters, query.phrase, query.sort)


def _record(document: str, time_ns: int) -> AuditRecord:
    return dataclasses.replace(audit_from_document(json.loads(document)), time_ns=time_ns)


def query_audit(conn: sqlite3.Connection, query: AuditQuery) -> AuditPage:
    started = time.perf_counter()
    where, params = _where(query)
    matching = " AND ".join(where)
    # Exact, never capped: an audit reader told an understated total misjudges how much happened.
    (total,) = conn.execute(f"SELECT count(*) FROM audit_records a WHERE {matching}", params).fetchone()

    page_where, page_params = list(where), list(params)
    if query.cursor:
        last_time, last_row = decode_cursor(query.cursor, _fingerprint(query), shape=(int, int))
        beyond = "<" if query.sort == "desc" else ">"
        page_where.append(
            f"(a.time_ns {beyond} ? OR (a.time_ns = ?"
            f" AND a.event_id {beyond} (SELECT event_id FROM audit_records WHERE id = ?)))"
        )
        page_params += [last_time, last_time, last_row]
    direction = "DESC" if query.sort == "desc" else "ASC"
    rows = conn.execute(
        f"SELECT a.document, a.time_ns, a.id FROM audit_records a WHERE {' AND '.join(page_where)}"
        f" ORDER BY a.time_ns {direction}, a.event_id {direction} LIMIT ?",
        [*page_params, query.limit + 1],
    ).fetchall()
    next_cursor = ""
    if len(rows) > query.limit:
        rows = rows[: query.limit]
        next_cursor = encode_cursor(_fingerprint(query), [rows[-1][1], rows[-1][2]])
    timeline = (
        _timeline(conn, matching, params, query.range.start_ns, query.timeline_interval_ns)
        if query.timeline_interval_ns > 0
        else None
    )
    return AuditPage(
        records=[_record(document, time_ns) for document, time_ns, _ in rows],
        total=int(total),
        took_ms=elapsed_ms(started),
        next_cursor=next_cursor,
        timeline=timeline,
    )


def _timeline(
    conn: sqlite3.Connection, matching: str, params: list[object], origin: int, interval: int
) -> list[TimelineBucket]:
    """Non-empty buckets of `interval` from the window's start `origin` on (domain.audit.timeline_start; every
    matching time is at or after it, so SQLite's truncating division is the floor), ascending, with the count per
    result."""
    rows = conn.execute(
        f"SELECT ? + (a.time_ns - ?) / ? * ? AS b, a.result, count(*) FROM audit_records a"
        f" WHERE {matching} GROUP BY b, a.result ORDER BY b LIMIT {_TIMELINE_ROWS}",
        [origin, origin, interval, interval, *params],
    ).fetchall()
    if len(rows) == _TIMELINE_ROWS:
        pass_on_warning(f"the timeline stops after {_TIMELINE_ROWS} bucket counts; ask for a larger interval")
    buckets: dict[int, TimelineBucket] = {}
    for start, result, count in rows:
        bucket = buckets.setdefault(start, TimelineBucket(start_ns=start, total=0))
        bucket.total += count
        if result:
            bucket.counts[result] = bucket.counts.get(result, 0) + count
    return list(buckets.values())


def audit_filter_values(conn: sqlite3.Connection, request: FilterValuesQuery[AuditQuery]) -> FilterValues:
    """The values of one audit filter among the records `request.query` selects (its own selection already
    cleared by the caller), with record counts: most frequent first, then by value; empty values left out."""
    started = time.perf_counter()
    name = request.filter
    where, params = _where(dataclasses.replace(request.query, cursor="", timeline_interval_ns=0))
    if name == ENTITLEMENTS:
        grouped = (
            "SELECT e.value AS v, count(*) AS n FROM audit_records a, json_each(a.actor_entitlements) e"
            f" WHERE {' AND '.join(where)} GROUP BY v"
        )
    elif name in AUDIT_FILTERS:
        column = COLUMNS[name]
        grouped = f"SELECT a.{column} AS v, count(*) AS n FROM audit_records a WHERE {' AND '.join(where)} GROUP BY v"
    else:
        raise ValueError(f"unknown audit filter {name!r}; one of {', '.join(AUDIT_FILTERS)}")
    rows = conn.execute(
        f"SELECT v, n, count(*) OVER () FROM ({grouped})"
        " WHERE v != '' AND instr(casefold(v), ?) > 0 ORDER BY n DESC, v ASC LIMIT ?",
        [*params, request.value_search.casefold(), request.max_values],
    ).fetchall()
    return FilterValues(
        filter=name,
        values=[FilterValue(str(value), int(count)) for value, count, _ in rows],
        total_values=int(rows[0][2]) if rows else 0,
        took_ms=elapsed_ms(started),
    )
