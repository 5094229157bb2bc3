"""Our records <-> Datadog's shapes: log intake entries and Logs Search events (logs and Kubernetes events
alike, fields.EVENTS_SOURCE says why), and Spans search results.

What a record loses on the way: Datadog keeps times to the millisecond, so our intake also writes the exact
nanoseconds as an attribute (fields.TIME_NS), read back when present; logs that other agents shipped come
back with Datadog's millisecond timestamp and a level from their `status`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from adapters.datadog import fields
from domain.audit import AUDIT_SOURCE, AuditRecord, audit_document, audit_from_document
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
    if identity.image:
        name, tag = image_parts(identity.image)
        tags.append(f"{fields.IMAGE_NAME}:{tag_value(name)}")
        if tag:
            tags.append(f"{fields.IMAGE_TAG}:{tag_value(tag)}")
    return tags


def image_parts(image: str) -> tuple[str, str]:
    """`registry/repo:tag` -> (`registry/repo`, `tag`), as the Agent splits `image_name` and `image_tag` (a
    digest reference keeps its digest in the name; a registry port is not a tag)."""
    if "@" in image:
        return image, ""
    name, sep, tag = image.rpartition(":")
    return (name, tag) if sep and "/" not in tag else (image, "")


def label_pair(key: str, value: str) -> str:
    """One pod label as the POD_LABELS attribute holds it."""
    return f"{key}={value}"


def tags_by_key(tags: Iterable[str]) -> dict[str, str]:
    """`["k:v", ...]` -> `{k: v}` (the first value of a repeated key)."""
    found: dict[str, str] = {}
    for tag in tags:
        key, sep, value = tag.partition(":")
        if sep and key not in found:
            found[key] = value
    return found


def identity_from_tags(
    tags: Mapping[str, str], task: str = "", attributes: Mapping[str, Any] | None = None
) -> Identity:
    """The identity a result's tags (and, for its placement, attributes) carry."""
    values: dict[str, Any] = {attr: tags.get(tag, "") for attr, tag in fields.IDENTITY_TAGS.items()}
    if attributes is None:
        return Identity(**values, task=task)
    labels = attribute(attributes, fields.POD_LABELS)
    pairs = [str(item).partition("=") for item in (labels if isinstance(labels, list) else [])]
    return Identity(
        **values,
        task=task,
        pod_ip=_text(attributes, fields.POD_IP),
        image=_text(attributes, fields.IMAGE),
        labels=tuple(sorted((key, value) for key, sep, value in pairs if sep and key)),
    )


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
    # Datadog's host of a pod's line is its node; the pod stands in where the node is unknown.
    if identity.node or identity.pod:
        entry[fields.HOSTNAME] = identity.node or identity.pod
    if identity.pod_ip:
        entry[fields.POD_IP] = identity.pod_ip
    if identity.image:
        entry[fields.IMAGE] = identity.image
    if identity.labels:
        entry[fields.POD_LABELS] = [label_pair(key, value) for key, value in identity.labels]
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
        identity=identity_from_tags(tags, _text(attributes, fields.TASK), attributes),
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


# ----------------------------------------------------------------------------------------------- audit


def audit_entry(record: AuditRecord) -> dict[str, Any]:
    """An audit record as a log intake entry with `ddsource:openchoreo-audit-logs`: the document's keys as
    attributes (fields.AUDIT_ATTRIBUTES filters them) and the entitlements' values flattened beside them
    (fields.AUDIT_ENTITLEMENT_VALUES), the document as the message (what full-text search and
    Datadog's Log Explorer show), the event time as the log's time, to the millisecond, and exactly in the
    document."""
    document = audit_document(record)
    entry: dict[str, Any] = {
        **document,
        fields.MESSAGE: orjson.dumps(document).decode(),
        fields.SOURCE: AUDIT_SOURCE,
        fields.TIMESTAMP: record.time_ns // _NS_PER_MS,
        fields.TIME_NS: str(record.time_ns),
    }
    if record.actor.entitlements:
        entry[fields.AUDIT_ENTITLEMENT_VALUES] = list(record.actor.entitlement_values)
    if record.producer:
        entry[fields.SERVICE] = record.producer
    return entry


def audit_from_event(event: Mapping[str, Any]) -> AuditRecord:
    """A Logs Search result holding an audit record; NotAnAuditRecord when its attributes are not one (a line
    some other shipper sent under the audit source)."""
    attributes = (event.get("attributes") or {}).get("attributes") or {}
    document = {key: attribute(attributes, key) for key in fields.AUDIT_DOCUMENT_KEYS}
    return audit_from_document({key: value for key, value in document.items() if value is not None})
