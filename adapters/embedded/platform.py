"""Platform logs in the embedded backend: every stored line, found by Kubernetes placement, and filter values.

Streams are few (one per pod and container), so the placement filter is a `streams` lookup and the lines are read
by (stream_id, ts_ns) index range scans, as a component scope's are; phrase and levels reuse the logs filters.
Filter values count in SQL: lines are counted per stream (or per level) over the same index, and only then mapped
to the filter's value, so a wide range costs an index count, never a row per line in Python.
"""

from __future__ import annotations

import sqlite3
import time

from adapters.cursor import fingerprint
from adapters.embedded.logs import LOG_COLUMNS, line_filters, log_page
from adapters.embedded.paging import PagedSelect, filtered, run_paged
from adapters.embedded.scope import streams_in_placement
from domain.model import LogRecord, Page
from domain.platform import (
    PLATFORM_FILTERS,
    FilterValue,
    FilterValues,
    FilterValuesQuery,
    PlatformLogsQuery,
    label_filter_key,
)
from domain.timeutil import elapsed_ms

#: The streams column each stream-valued platform filter reads (`level` is the line's own).
_STREAM_COLUMN = {
    "clusterInstance": "cluster",
    "namespace": "pod_namespace",
    "podName": "pod",
    "containerName": "container",
}


def platform_select(conn: sqlite3.Connection, query: PlatformLogsQuery) -> PagedSelect:
    """The placement-filtered SELECT behind a page of platform logs and their filter values."""
    filters = line_filters(conn, query.levels, query.phrase)
    streams, stream_params = streams_in_placement(query)
    return PagedSelect(
        table="logs",
        columns=LOG_COLUMNS,
        scope=None,
        streams=streams,
        stream_params=tuple(stream_params),
        range=query.range,
        sort=query.sort,
        limit=query.limit,
        cursor=query.cursor,
        fingerprint=fingerprint(
            "platform-logs",
            query.range,
            query.sort,
            query.clusters,
            query.namespaces,
            query.pods,
            query.containers,
            query.labels,
            query.levels,
            query.phrase,
        ),
        where=filters.where,
        params=filters.params,
        candidates=filters.candidates,
        candidate_params=filters.candidate_params,
    )


def query_platform_logs(conn: sqlite3.Connection, query: PlatformLogsQuery) -> Page[LogRecord]:
    started = time.perf_counter()
    return log_page(run_paged(conn, platform_select(conn, query)), started)


def platform_filter_values(conn: sqlite3.Connection, request: FilterValuesQuery[PlatformLogsQuery]) -> FilterValues:
    """The values of one platform filter among the lines `request.query` selects (its own selection already
    cleared by the caller), with line counts: most frequent first, then by value; empty values are not listed."""
    started = time.perf_counter()
    source, source_params, where, params = filtered(platform_select(conn, request.query))
    counted = f"FROM {source} WHERE {' AND '.join(where)}"
    name, key = request.filter, label_filter_key(request.filter)
    value_params: list[object] = []
    if name == "level":
        grouped = f"SELECT r.level AS v, count(*) AS n {counted} GROUP BY r.level"
    else:
        if key:
            value = "(SELECT j.value FROM json_each(s.labels) j WHERE j.key = ?)"
            value_params.append(key)
        elif name in _STREAM_COLUMN:
            value = f"s.{_STREAM_COLUMN[name]}"
        else:
            raise ValueError(f"unknown platform filter {name!r}; one of {', '.join(PLATFORM_FILTERS)}, labels.<key>")
        grouped = (
            f"SELECT coalesce({value}, '') AS v, sum(c.n) AS n"
            f" FROM (SELECT r.stream_id AS stream_id, count(*) AS n {counted} GROUP BY r.stream_id) c"
            " JOIN streams s ON s.id = c.stream_id GROUP BY v"
        )
    sql = (
        f"SELECT v, n, count(*) OVER () FROM ({grouped})"
        " WHERE v != '' AND instr(casefold(v), ?) > 0 ORDER BY n DESC, v ASC LIMIT ?"
    )
    rows = conn.execute(
        sql,
        [*value_params, *source_params, *params, request.value_search.casefold(), request.max_values],
    ).fetchall()
    return FilterValues(
        filter=name,
        values=[FilterValue(str(value), int(count)) for value, count, _ in rows],
        total_values=int(rows[0][2]) if rows else 0,
        took_ms=elapsed_ms(started),
    )
