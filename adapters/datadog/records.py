"""Our records <-> Datadog's shapes: log intake entries and Logs Search events (logs and Kubernetes events
alike, fields.EVENTS_SOURCE says why), and Spans search results.

What a record loses on the way: Datadog keeps times to the millisecond, so our intake also writes the exact
nanoseconds as an attribute (fields.TIME_NS), read back when present; logs that other agents shipped come
back with Datadog's millisecond timestamp and a level from their `status`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from adapters.datadog import fields
from domain.model import EventRecord, Identity, LogRecord
from domain.timeutil import parse_rfc3339

_NS_PER_MS = 1_000_000


# ----------------------------------------------------------------------------------------------- tags


def tag_value(value: str) -> str:
    """A tag value Datadog keeps as it is: its separator (`,`) is replaced, and the length cut to its 200."""
    return value.replace(",", "_")[:200]


def identity_tags(identity: Identity) -> list[str]:
    """`key:value` tags for every identity field that is set, the workload kind, and Datadog's own service
    and env tags (from the component and the environment)."""
    tags = [
        f"{tag}:{tag_value(getattr(identity, attr))}"
        for attr, tag in fields.IDENTITY_TAGS.items()
        if getattr(identity, attr)
    ]
    workload = fields.WORKLOAD_WORKFLOW if identity.workflow_run else fields.WORKLOAD_COMPONENT
    tags.append(f"{fields.WORKLOAD}:{workload}")
    if identity.component:
        tags.append(f"{fields.SERVICE}:{tag_value(identity.component)}")
    if identity.environment:
        tags.append(f"{fields.ENV}:{tag_value(identity.environment)}")
    return tags


def tags_by_key(tags: Iterable[str]) -> dict[str, str]:
    """`["k:v", ...]` -> `{k: v}` (the first value of a repeated key)."""
    found: dict[str, str] = {}
    for tag in tags:
        key, sep, value = tag.partition(":")
        if sep and key not in found:
            found[key] = value
    return found


def identity_from_tags(tags: Mapping[str, str], task: str = "") -> Identity:
    values = {attr: tags.get(tag, "") for attr, tag in fields.IDENTITY_TAGS.items()}
    return Identity(**values, task=task)


def attribute(attributes: Mapping[str, Any], path: str) -> Any:
    """The value at `path`: a flat dotted key as sent, or nested objects as Datadog may rebuild them."""
    if path in attributes:
        return attributes[path]
    found: Any = attributes
    for part in path.split("."):
        if not isinstance(found, Mapping) or part not in found:
            return None
        found = found[part]
    return found


def _text(attributes: Mapping[str, Any], path: str) -> str:
    value = attribute(attributes, path)
    return "" if value is None or isinstance(value, (dict, list)) else str(value)


# ----------------------------------------------------------------------------------------------- logs


def log_entry(record: LogRecord) -> dict[str, Any]:
    """A log intake entry (`POST /api/v2/logs`): reserved keys, the scope as `ddtags`, ours as attributes."""
    entry: dict[str, Any] = {
        fields.MESSAGE: record.body,
        fields.SOURCE: fields.LOGS_SOURCE,
        fields.TAGS: ",".join(identity_tags(record.identity)),
        fields.TIMESTAMP: record.ts_ns // _NS_PER_MS,
        fields.TIME_NS: str(record.ts_ns),
    }
    _common(entry, record.identity)
    if record.level:
        entry[fields.LEVEL] = record.level
        entry[fields.STATUS] = fields.LEVEL_STATUS.get(record.level, "info")
    if record.trace_id:
        entry[fields.TRACE_ID] = record.trace_id
        entry[fields.DD_TRACE_ID] = str(int(record.trace_id[-16:], 16))
    if record.span_id:
        entry[fields.SPAN_ID] = record.span_id
        entry[fields.DD_SPAN_ID] = str(int(record.span_id, 16))
    if record.stream:
        entry[fields.STREAM] = record.stream
    return entry


def event_entry(record: EventRecord) -> dict[str, Any]:
    """A Kubernetes event as a log intake entry with `ddsource:kubernetes`."""
    entry: dict[str, Any] = {
        fields.MESSAGE: record.message,
        fields.SOURCE: fields.EVENTS_SOURCE,
        fields.TAGS: ",".join(identity_tags(record.identity)),
        fields.TIMESTAMP: record.ts_ns // _NS_PER_MS,
        fields.TIME_NS: str(record.ts_ns),
        fields.STATUS: "warn" if record.type == "Warning" else "info",
        fields.EVENT_TYPE: record.type,
        fields.EVENT_REASON: record.reason,
        fields.OBJECT_KIND: record.object_kind,
        fields.OBJECT_NAME: record.object_name,
        fields.OBJECT_NAMESPACE: record.object_namespace,
    }
    _common(entry, record.identity)
    return entry


def _common(entry: dict[str, Any], identity: Identity) -> None:
    if identity.pod:
        entry[fields.HOSTNAME] = identity.pod
    if identity.component:
        entry[fields.SERVICE] = identity.component
    if identity.task:
        entry[fields.TASK] = identity.task


def _time_ns(attributes: Mapping[str, Any], outer: Mapping[str, Any]) -> int:
    exact = _text(attributes, fields.TIME_NS)
    if exact.isdigit():
        return int(exact)
    stamp = outer.get(fields.TIMESTAMP)
    return parse_rfc3339(stamp) if isinstance(stamp, str) else 0


def log_from_event(event: Mapping[str, Any]) -> LogRecord:
    """A Logs Search result (`data[]`) as our LogRecord."""
    outer = event.get("attributes") or {}
    attributes = outer.get("attributes") or {}
    tags = tags_by_key(outer.get("tags") or [])
    level = _text(attributes, fields.LEVEL) or fields.STATUS_LEVEL.get(str(outer.get(fields.STATUS, "")).lower(), "")
    return LogRecord(
        ts_ns=_time_ns(attributes, outer),
        body=str(outer.get(fields.MESSAGE) or ""),
        identity=identity_from_tags(tags, _text(attributes, fields.TASK)),
        level=level,
        trace_id=_text(attributes, fields.TRACE_ID),
        span_id=_text(attributes, fields.SPAN_ID),
        stream=_text(attributes, fields.STREAM),
    )


def k8s_event_from_event(event: Mapping[str, Any]) -> EventRecord:
    outer = event.get("attributes") or {}
    attributes = outer.get("attributes") or {}
    tags = tags_by_key(outer.get("tags") or [])
    return EventRecord(
        ts_ns=_time_ns(attributes, outer),
        message=str(outer.get(fields.MESSAGE) or ""),
        identity=identity_from_tags(tags, _text(attributes, fields.TASK)),
        type=_text(attributes, fields.EVENT_TYPE),
        reason=_text(attributes, fields.EVENT_REASON),
        object_kind=_text(attributes, fields.OBJECT_KIND),
        object_name=_text(attributes, fields.OBJECT_NAME),
        object_namespace=_text(attributes, fields.OBJECT_NAMESPACE),
    )
