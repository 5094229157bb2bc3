"""What the fake's intake endpoints received, and the monitors it holds: one lock, plain records.

Records are kept in arrival order with a sequence number, so every search can sort on (timestamp, sequence)
and a cursor can name the last record it returned (see `cursors.py`): paging stays stable while new records
arrive, as Datadog's does.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

_TAG_DISALLOWED = re.compile(r"[^a-z0-9_\-:./]")


def normalize_tag(tag: str) -> str:
    """A tag as Datadog stores it: lowercased, characters outside letters, digits, `_ - : . /` replaced by `_`,
    at most 200 characters (https://docs.datadoghq.com/getting_started/tagging/#define-tags)."""
    return _TAG_DISALLOWED.sub("_", tag.strip().lower())[:200]


def _tag_values(tags: Iterable[str], key: str) -> list[str]:
    prefix = key + ":"
    return [tag[len(prefix) :] for tag in tags if tag.startswith(prefix)]


def attribute_values(attributes: dict[str, Any], path: str) -> list[str]:
    """The value at dotted `path` (nested objects, or a flat key holding dots), as comparable strings."""
    if path in attributes:
        found: Any = attributes[path]
    else:
        found = attributes
        for part in path.split("."):
            if not isinstance(found, dict) or part not in found:
                return []
            found = found[part]
    items = found if isinstance(found, list) else [found]
    return [_as_text(item) for item in items if not isinstance(item, dict)]


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@dataclass
class LogRecord:
    seq: int
    id: str
    timestamp_ms: int
    message: str
    status: str
    service: str | None
    host: str | None
    tags: list[str]
    attributes: dict[str, Any]

    def field(self, key: str) -> list[str]:
        reserved = {"service": self.service, "host": self.host, "status": self.status}
        value = reserved.get(key)
        return ([value] if value else []) + _tag_values(self.tags, key)

    def attribute(self, path: str) -> list[str]:
        return attribute_values(self.attributes, path)

    def text(self) -> str:
        return self.message


@dataclass
class SpanRecord:
    seq: int
    span_id: str  # decimal, as Datadog shows span ids
    trace_id: str  # 32 lowercase hex digits (128-bit)
    parent_id: str  # "0" for a root span
    service: str
    resource_name: str
    start_ns: int
    end_ns: int
    env: str | None
    host: str | None
    type: str
    tags: list[str]
    attributes: dict[str, Any]

    @property
    def timestamp_ms(self) -> int:
        return self.start_ns // 1_000_000

    def field(self, key: str) -> list[str]:
        reserved = {
            "service": self.service,
            "resource_name": self.resource_name,
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_id": self.parent_id,
            "env": self.env,
            "host": self.host,
            "type": self.type,
            "operation_name": self.attributes.get("operation_name"),
        }
        value = reserved.get(key)
        return ([str(value)] if value else []) + _tag_values(self.tags, key)

    def attribute(self, path: str) -> list[str]:
        return attribute_values(self.attributes, path)

    def text(self) -> str:
        return self.resource_name


@dataclass(frozen=True)
class MetricPoint:
    metric: str
    type: int  # 0 unspecified, 1 count, 2 rate, 3 gauge (MetricIntakeType)
    tags: tuple[str, ...]
    timestamp_s: int
    value: float


@dataclass
class Store:
    """Everything received, behind one lock; `reset` empties it between tests."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    logs: list[LogRecord] = field(default_factory=list)
    spans: list[SpanRecord] = field(default_factory=list)
    points: list[MetricPoint] = field(default_factory=list)
    monitors: dict[int, dict[str, Any]] = field(default_factory=dict)
    webhooks: dict[str, dict[str, Any]] = field(default_factory=dict)
    cycles: dict[int, int] = field(default_factory=dict)  # monitor id -> its current alert cycle
    _seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _monitor_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1000))

    def next_seq(self) -> int:
        return next(self._seq)

    def next_monitor_id(self) -> int:
        return next(self._monitor_ids)

    def reset(self) -> None:
        with self.lock:
            self.logs.clear()
            self.spans.clear()
            self.points.clear()
            self.monitors.clear()
            self.webhooks.clear()
            self.cycles.clear()
