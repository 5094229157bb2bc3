"""A tiny in-memory logs backend: the LogsBackend semantics of the contract suite (scopes, inclusive ranges,
literal case-sensitive phrases, levels with FATAL under ERROR, order with a tiebreaker, capped totals, cursors
bound to their query), over a list. Nothing is persisted; a process restart forgets everything."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from adapters.cursor import decode_cursor, encode_cursor, fingerprint
from adapters.protocols import WriteResult
from domain.loglevel import stored_levels
from domain.model import (
    TOTAL_CAP,
    ComponentScope,
    EventRecord,
    Identity,
    LogRecord,
    LogsQuery,
    MetricPoint,
    Page,
    Scope,
    SpanRecord,
)


def in_scope(identity: Identity, scope: Scope) -> bool:
    """Component scopes match UIDs and leave workflow runs out; workflow scopes match the run by name and the
    task as a substring, without Argo's own sidecars."""
    if identity.namespace != scope.namespace:
        return False
    if isinstance(scope, ComponentScope):
        return not identity.workflow_run and all(
            not wanted or wanted == held
            for wanted, held in (
                (scope.project_uid, identity.project_uid),
                (scope.component_uid, identity.component_uid),
                (scope.environment_uid, identity.environment_uid),
            )
        )
    return (
        bool(identity.workflow_run)
        and identity.container not in ("init", "wait")
        and (not scope.workflow_run or identity.workflow_run == scope.workflow_run)
        and scope.task in identity.task
    )


class MemoryLogs:
    def __init__(self) -> None:
        self.lines: list[tuple[int, int, LogRecord]] = []  # (ts_ns, arrival, record): arrival breaks ties
        self.batches: set[str] = set()
        self.lock = asyncio.Lock()

    async def write(
        self,
        *,
        batch_id: str,
        logs: Sequence[LogRecord] = (),
        events: Sequence[EventRecord] = (),
        spans: Sequence[SpanRecord] = (),
        metrics: Sequence[MetricPoint] = (),
    ) -> WriteResult:
        async with self.lock:
            if batch_id not in self.batches:
                self.batches.add(batch_id)
                self.lines += [(record.ts_ns, len(self.lines) + i, record) for i, record in enumerate(logs)]
        return WriteResult.delivered()

    def _matching(self, query: LogsQuery) -> list[tuple[int, int, LogRecord]]:
        levels = set(stored_levels(query.levels))
        return [
            line
            for line in self.lines
            if query.range.start_ns <= line[0] <= query.range.end_ns
            and in_scope(line[2].identity, query.scope)
            and (not levels or line[2].level in levels)
            and query.phrase in line[2].body
        ]

    async def query_logs(self, query: LogsQuery) -> Page[LogRecord]:
        started = time.monotonic()
        key = fingerprint("memory-logs", query.scope, query.range, query.sort, query.levels, query.phrase)
        matching = sorted(self._matching(query), key=lambda line: line[:2], reverse=query.sort == "desc")
        total = min(len(matching), TOTAL_CAP)
        if query.cursor:
            after = tuple(decode_cursor(query.cursor, key, (int, int)))
            matching = [line for line in matching if (line[:2] > after if query.sort == "asc" else line[:2] < after)]
        page = matching[: query.limit]
        more = len(matching) > query.limit and query.limit > 0
        cursor = encode_cursor(key, list(page[-1][:2])) if more and page else ""
        took = int((time.monotonic() - started) * 1000)
        return Page([line[2] for line in page], total, took, cursor)

    async def count_logs(self, query: LogsQuery) -> int:
        return len(self._matching(query))
