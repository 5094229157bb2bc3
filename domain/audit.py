"""The audit trail: one record per state-changing call (and per denied attempt, and per read of the trail
itself) on the observer and the control plane, in the schema OpenChoreo's adapters query
(http-adapters-notes §3, `AuditLogRecord`).

`audit_document` / `audit_from_document` are the record's one JSON shape: the line a producer writes to its log,
what the collector recognises from a trusted producer, what the OpenSearch backend stores and what the API
returns. Times are nanoseconds below the wire, RFC3339 in the document.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from domain.model import SortOrder, TimeRange
from domain.timeutil import format_rfc3339, parse_rfc3339

SCHEMA_VERSION = "1.0"
#: The source audit records are kept under, apart from application logs (the collector's route name upstream).
AUDIT_SOURCE = "openchoreo-audit-logs"

CATEGORIES = ("access", "authorization", "management")
RESULTS = ("success", "failure", "denied")
SURFACES = ("rest", "mcp")
Category = Literal["access", "authorization", "management"]
Result = Literal["success", "failure", "denied"]

#: `limit` default and most; filter values share domain.platform's bounds.
DEFAULT_AUDIT_LIMIT, MAX_AUDIT_LIMIT = 100, 1_000
#: A timeline has at most this many buckets: a smaller interval than range / MAX_TIMELINE_BUCKETS is refused.
MAX_TIMELINE_BUCKETS = 1_000


@dataclass(frozen=True, slots=True)
class Actor:
    type: str  # user | service_account | anonymous
    id: str
    issuer: str = ""
    session_id: str = ""
    entitlements: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AuditResource:
    type: str = ""
    namespace: str = ""
    environment: str = ""
    project: str = ""
    component: str = ""
    resource: str = ""
    uid: str = ""
    name: str = ""


@dataclass(frozen=True, slots=True)
class Collected:
    """Where the collector read a record (the producer's pod), when it came through one."""

    namespace: str = ""
    pod: str = ""
    container: str = ""


@dataclass(frozen=True, slots=True)
class AuditRecord:
    event_id: str  # unique: a redelivered record is the same record
    time_ns: int
    actor: Actor
    action: str  # e.g. incident.update, alertrule.apply, mcp.query_component_logs
    category: str  # one of CATEGORIES
    result: str  # one of RESULTS
    surface: str = ""  # rest | mcp
    producer: str = ""  # observer | openchoreo-api
    operation_id: str = ""
    request_id: str = ""
    source_ip: str = ""
    user_agent: str = ""
    http_method: str = ""
    http_path: str = ""
    resource: AuditResource | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    collector: Collected | None = None
    schema_version: str = SCHEMA_VERSION


#: Filter names of audit filter values (the contract's), and the record attribute each reads.
AUDIT_FILTERS: dict[str, str] = {
    "actor.id": "actor.id",
    "actor.type": "actor.type",
    "actor.issuer": "actor.issuer",
    "actor.session_id": "actor.session_id",
    "actor.entitlements": "actor.entitlements",
    "resource.type": "resource.type",
    "resource.namespace": "resource.namespace",
    "resource.environment": "resource.environment",
    "resource.project": "resource.project",
    "resource.component": "resource.component",
    "resource.resource": "resource.resource",
    "resource.name": "resource.name",
    "action": "action",
    "category": "category",
    "result": "result",
    "producer": "producer",
    "surface": "surface",
    "operation_id": "operation_id",
    "source_ip": "source_ip",
    "user_agent": "user_agent",
}


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Records in `range` matching every non-empty filter (each a list of alternatives), containing `phrase`
    anywhere in their document. `filters` maps an AUDIT_FILTERS name (plus `request_id`, `event_id`) to its
    alternatives, sorted by name so equal queries compare equal."""

    range: TimeRange
    filters: tuple[tuple[str, tuple[str, ...]], ...] = ()
    phrase: str = ""
    limit: int = DEFAULT_AUDIT_LIMIT
    sort: SortOrder = "desc"
    cursor: str = ""
    timeline_interval_ns: int = 0  # 0: no timeline


#: Filters an AuditQuery accepts that are not facets (an id is not worth counting).
EXACT_ONLY_FILTERS = ("request_id", "event_id")


@dataclass(slots=True)
class TimelineBucket:
    start_ns: int
    total: int
    counts: dict[str, int] = field(default_factory=dict)  # per result


@dataclass(slots=True)
class AuditPage:
    records: list[AuditRecord]
    total: int
    took_ms: int
    next_cursor: str = ""
    timeline: list[TimelineBucket] | None = None


def record_value(record: AuditRecord, name: str) -> tuple[str, ...]:
    """The values a record has for a filter name (several for `actor.entitlements`, none when unset): what
    in-memory backends filter and count on."""
    if name == "actor.entitlements":
        return record.actor.entitlements
    if name.startswith("actor."):
        value = getattr(record.actor, name[len("actor.") :])
    elif name.startswith("resource."):
        value = getattr(record.resource, name[len("resource.") :]) if record.resource else ""
    else:
        value = getattr(record, name)
    return (value,) if value else ()


def matches_filters(record: AuditRecord, filters: tuple[tuple[str, tuple[str, ...]], ...]) -> bool:
    return all(set(record_value(record, name)) & set(wanted) for name, wanted in filters)


def timeline_start(time_ns: int, interval_ns: int) -> int:
    """The start of the bucket a time falls in: buckets are aligned to the epoch, as a date histogram's are."""
    return time_ns - time_ns % interval_ns


# ----------------------------------------------------------------------------------------------- the document


def _drop_empty(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value not in ("", None, (), [], {})}


def audit_document(record: AuditRecord) -> dict[str, Any]:
    """The record as JSON: the contract's `AuditLogRecord` (empty optional fields left out)."""
    actor = _drop_empty(
        {
            "type": record.actor.type,
            "id": record.actor.id,
            "issuer": record.actor.issuer,
            "sessionId": record.actor.session_id,
            "entitlements": list(record.actor.entitlements),
        }
    )
    document: dict[str, Any] = {
        "schemaVersion": record.schema_version,
        "eventId": record.event_id,
        "eventTime": format_rfc3339(record.time_ns),
        "actor": actor,
        "action": record.action,
        "category": record.category,
        "result": record.result,
    }
    document.update(
        _drop_empty(
            {
                "requestId": record.request_id,
                "sourceIp": record.source_ip,
                "userAgent": record.user_agent,
                "producer": record.producer,
                "surface": record.surface,
                "operationId": record.operation_id,
                "metadata": dict(record.metadata),
            }
        )
    )
    if record.http_method or record.http_path:
        document["http"] = {"method": record.http_method, "path": record.http_path}
    if record.resource is not None:
        resource = record.resource
        document["resource"] = _drop_empty(
            {
                "type": resource.type,
                "namespace": resource.namespace,
                "environment": resource.environment,
                "project": resource.project,
                "component": resource.component,
                "resource": resource.resource,
                "uid": resource.uid,
                "name": resource.name,
            }
        )
    if record.collector is not None:
        document["collector"] = _drop_empty(
            {
                "namespaceName": record.collector.namespace,
                "podName": record.collector.pod,
                "containerName": record.collector.container,
            }
        )
    return document


class NotAnAuditRecord(ValueError):
    """A JSON value that is not an audit record in our schema."""


def _text(source: Mapping[str, Any], key: str, required: bool = False) -> str:
    value = source.get(key, "")
    if not isinstance(value, str) or (required and not value):
        raise NotAnAuditRecord(f"{key} must be a{' non-empty' if required else ''} string")
    return value


def _object(source: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    value = source.get(key)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise NotAnAuditRecord(f"{key} must be an object")
    return value


def audit_from_document(document: Any) -> AuditRecord:
    """The record a JSON document holds, or NotAnAuditRecord: required fields present and typed, enums known."""
    if not isinstance(document, Mapping) or "schemaVersion" not in document or "eventId" not in document:
        raise NotAnAuditRecord("not an audit record")
    actor = _object(document, "actor")
    if actor is None:
        raise NotAnAuditRecord("actor is required")
    entitlements = actor.get("entitlements", [])
    if not isinstance(entitlements, list) or not all(isinstance(item, str) for item in entitlements):
        raise NotAnAuditRecord("actor.entitlements must be a list of strings")
    category, result, surface = _text(document, "category", True), _text(document, "result", True), ""
    if category not in CATEGORIES or result not in RESULTS:
        raise NotAnAuditRecord("unknown category or result")
    surface = _text(document, "surface")
    if surface and surface not in SURFACES:
        raise NotAnAuditRecord("unknown surface")
    try:
        time_ns = parse_rfc3339(_text(document, "eventTime", True))
    except ValueError as error:
        raise NotAnAuditRecord(f"eventTime: {error}") from None
    metadata = _object(document, "metadata") or {}
    http = _object(document, "http") or {}
    resource = _object(document, "resource")
    collector = _object(document, "collector")
    return AuditRecord(
        schema_version=_text(document, "schemaVersion", True),
        event_id=_text(document, "eventId", True),
        time_ns=time_ns,
        actor=Actor(
            type=_text(actor, "type", True),
            id=_text(actor, "id"),
            issuer=_text(actor, "issuer"),
            session_id=_text(actor, "sessionId"),
            entitlements=tuple(entitlements),
        ),
        action=_text(document, "action", True),
        category=category,
        result=result,
        surface=surface,
        producer=_text(document, "producer"),
        operation_id=_text(document, "operationId"),
        request_id=_text(document, "requestId"),
        source_ip=_text(document, "sourceIp"),
        user_agent=_text(document, "userAgent"),
        http_method=_text(http, "method"),
        http_path=_text(http, "path"),
        metadata={str(key): str(value) for key, value in metadata.items()},
        resource=None
        if resource is None
        else AuditResource(
            **{name: _text(resource, name) for name in AuditResource.__dataclass_fields__}  # noqa: SLF001
        ),
        collector=None
        if collector is None
        else Collected(
            _text(collector, "namespaceName"), _text(collector, "podName"), _text(collector, "containerName")
        ),
    )
