"""Log records as the `log` events of a tail: each `data` is the logs query's entry JSON (observer/wire.py).

A tail writes every line it gets, so this is the tail's hot path. `ComponentEntries` writes the same bytes as
`orjson.dumps(component_log_entries(...)[i])`, faster: the metadata object is rendered once per identity (by
wire.py itself, then kept as JSON), and the date-and-time part of the timestamp once per second, which ingested
lines share. tests/unit/test_tail_render.py holds the two to byte equality.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from orjson import dumps

from domain.model import Identity, LogRecord
from domain.timeutil import format_rfc3339
from observer.wire import component_log_entries, workflow_log_entry

_NS = 10**9
LOG_EVENT = b"event: log\ndata: "
END = b"\n\n"


class ComponentEntries:
    """Renders component-scope lines; one per tail (its caches are small: the identities it has seen lately)."""

    def __init__(self, remembered: int = 1024) -> None:
        self._remembered = remembered
        self._metadata: dict[int, tuple[Identity, bytes]] = {}  # id(identity) -> (identity kept alive, JSON)
        self._second = -1
        self._prefix = b""

    def __call__(self, records: Iterable[LogRecord]) -> list[bytes]:
        return [self.event(record) for record in records]

    def event(self, record: LogRecord) -> bytes:
        event = b'event: log\ndata: {"timestamp":"%s","log":%s' % (self._timestamp(record.ts_ns), dumps(record.body))
        if record.level:
            event += b',"level":' + dumps(record.level)
        event += b',"metadata":' + self._metadata_of(record)
        if record.trace_id:
            event += b',"traceId":' + dumps(record.trace_id)
        if record.span_id:
            event += b',"spanId":' + dumps(record.span_id)
        return event + b"}\n\n"

    def _metadata_of(self, record: LogRecord) -> bytes:
        known = self._metadata.get(id(record.identity))
        if known is None:
            if len(self._metadata) >= self._remembered:
                self._metadata.clear()
            (entry,) = component_log_entries([LogRecord(0, "", record.identity)])
            known = self._metadata[id(record.identity)] = (record.identity, orjson.dumps(entry["metadata"]))
        return known[1]

    def _timestamp(self, ts_ns: int) -> bytes:
        """format_rfc3339, with the part before the fraction kept from the previous line of the same second."""
        seconds, nanos = divmod(ts_ns, _NS)
        if seconds != self._second:
            self._second, self._prefix = seconds, format_rfc3339(seconds * _NS)[:-1].encode()
        if nanos:
            return b"%s.%s" % (self._prefix, (b"%09d" % nanos).rstrip(b"0")) + b"Z"
        return self._prefix + b"Z"


def workflow_entries(records: Iterable[LogRecord]) -> list[bytes]:
    """Workflow-scope lines: the logs query's workflow entry (timestamp and line only)."""
    return [LOG_EVENT + orjson.dumps(workflow_log_entry(record)) + END for record in records]


def entry_json(event: bytes) -> Any:
    """The entry a `log` event carries (for tests and clients written in Python)."""
    return orjson.loads(event[len(LOG_EVENT) : -len(END)])
