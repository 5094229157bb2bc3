"""Log records as an OTLP export carries them: grouped by where they came from.

An export names its resource once for many records, and most stores keep the resource once too (the embedded
store's `streams` row). Keeping the grouping from the wire to the store saves, per line, a LogRecord, a
hash of its Identity and a lookup of its stream: on the ingest path that is about a sixth of a line's cost.

A LogBatch is still a Sequence[LogRecord] for every sink that wants records (the tails, OpenSearch, Datadog,
a collector's buffer): they are built on first use, once. A store that writes columns asks for `groups()`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, overload

from domain.model import Identity, LogRecord

#: One line's own fields, in the order a store's columns take them: ts_ns, level, body, trace_id, span_id.
LogRow = tuple[int, str, str, str, str]


class LogBatch(Sequence[LogRecord]):
    """Runs of log lines, each under one (identity, stream), in the order the lines came: a run ends where the
    stream or the resource changes (an export interleaving stdout and stderr of one resource makes short runs,
    a plain one a run per resource)."""

    __slots__ = ("_runs", "_records")

    def __init__(self) -> None:
        self._runs: list[tuple[Identity, str, list[LogRow]]] = []
        self._records: list[LogRecord] | None = None

    @classmethod
    def of(cls, records: Iterable[LogRecord]) -> LogBatch:
        """A batch of these records, in their order."""
        batch = cls()
        for record in records:
            rows = batch.rows(record.identity, record.stream)
            rows.append((record.ts_ns, record.level, record.body, record.trace_id, record.span_id))
        return batch

    def rows(self, identity: Identity, stream: str) -> list[LogRow]:
        """The list a producer appends the next lines of (identity, stream) to: the last run's when it is the
        same, else a new run's. Only until the batch is first read."""
        if self._records is not None:
            raise RuntimeError("a LogBatch takes no more lines once its records were built")
        if self._runs:
            last_identity, last_stream, last_rows = self._runs[-1]
            if last_identity is identity and last_stream == stream:
                return last_rows
        rows: list[LogRow] = []
        self._runs.append((identity, stream, rows))
        return rows

    def groups(self) -> Iterator[tuple[Identity, str, list[LogRow]]]:
        """Each non-empty run, in order: its identity, its stream and its rows."""
        return ((identity, stream, rows) for identity, stream, rows in self._runs if rows)

    def identities(self) -> list[Identity]:
        """The distinct identities of the batch's lines."""
        return list(dict.fromkeys(identity for identity, _, _ in self.groups()))

    def _built(self) -> list[LogRecord]:
        if self._records is None:
            self._records = [
                LogRecord(ts_ns, body, identity, level, trace_id, span_id, stream)
                for identity, stream, rows in self.groups()
                for ts_ns, level, body, trace_id, span_id in rows
            ]
        return self._records

    def __len__(self) -> int:
        if self._records is not None:
            return len(self._records)
        return sum(len(rows) for _, _, rows in self._runs)

    def __iter__(self) -> Iterator[LogRecord]:
        return iter(self._built())

    @overload
    def __getitem__(self, index: int) -> LogRecord: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[LogRecord]: ...

    def __getitem__(self, index: int | slice) -> LogRecord | Sequence[LogRecord]:
        return self._built()[index]

    def __eq__(self, other: Any) -> bool:
        """Equal to any sequence of the same records in the same order (a list of them included)."""
        if isinstance(other, Sequence) and not isinstance(other, str | bytes):
            return self._built() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, like a list

    def __repr__(self) -> str:
        return f"LogBatch({self._built()!r})"
