"""Wire shapes of the audit trail's query API: `POST /api/v1alpha1/audit-logs/query`, its filter values, and the
answers, with the field names of OpenChoreo's logs adapters (http-adapters-notes §3).

Requests only bind (observer/validate_audit.py checks them); a record is answered as `domain.audit.audit_document`
has it, the one JSON shape of a record everywhere.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, StrictBool, StrictInt, StrictStr

from domain.audit import (
    AUDIT_FILTERS,
    CATEGORIES,
    DEFAULT_AUDIT_LIMIT,
    MAX_AUDIT_LIMIT,
    MAX_TIMELINE_BUCKETS,
    RESULTS,
    SURFACES,
    AuditPage,
    audit_document,
)
from domain.platform import DEFAULT_FILTER_VALUES, MAX_FILTER_VALUES
from domain.timeutil import format_rfc3339
from observer.wire import MAX_PHRASE_CHARS, _Bind, _cursor, _end, _sort, _start
from observer.wire_platform import MAX_FILTER_ITEMS, MAX_VALUE_SEARCH_CHARS


def _values(what: str, enum: tuple[str, ...] = ()) -> Any:
    items: dict[str, Any] = {"type": "string", "maxLength": 1024}
    if enum:
        items = {"type": "string", "enum": list(enum)}
    return Field(
        None,
        description=f"Only records whose {what} is one of these (absent or empty: any).",
        json_schema_extra={"maxItems": MAX_FILTER_ITEMS, "items": items},
    )


class AuditActorFilter(_Bind):
    """Who acted: each a list of alternatives."""

    id: list[StrictStr] | None = _values("actor id (a user's subject, a service account)")
    type: list[StrictStr] | None = _values("actor type (user, service_account, anonymous)")
    issuer: list[StrictStr] | None = _values("token issuer")
    sessionId: list[StrictStr] | None = _values("session id")
    entitlements: list[StrictStr] | None = _values("entitlements (any one of the actor's)")


class AuditResourceFilter(_Bind):
    """What was acted on: each a list of alternatives."""

    type: list[StrictStr] | None = _values("resource type")
    namespace: list[StrictStr] | None = _values("namespace")
    environment: list[StrictStr] | None = _values("environment")
    project: list[StrictStr] | None = _values("project")
    component: list[StrictStr] | None = _values("component")
    resource: list[StrictStr] | None = _values("resource")
    name: list[StrictStr] | None = _values("resource name")


class AuditLogsQueryRequest(_Bind):
    """Audit records in a time range: who did what, to which resource, through which surface, with what result."""

    schema_required: ClassVar[tuple[str, ...]] = ("startTime", "endTime")
    startTime: StrictStr | None = _start()
    endTime: StrictStr | None = _end()
    actor: AuditActorFilter | None = Field(None, description="Filters on the actor.")
    resource: AuditResourceFilter | None = Field(None, description="Filters on the resource.")
    action: list[StrictStr] | None = _values("action (e.g. incident.update, mcp.query_component_logs)")
    category: list[StrictStr] | None = _values("category", CATEGORIES)
    result: list[StrictStr] | None = _values("result", RESULTS)
    surface: list[StrictStr] | None = _values("surface", SURFACES)
    producer: list[StrictStr] | None = _values("producer (observer, openchoreo-api)")
    operationId: list[StrictStr] | None = _values("operation id")
    requestId: list[StrictStr] | None = _values("request id")
    eventId: list[StrictStr] | None = _values("event id")
    sourceIp: list[StrictStr] | None = _values("source address")
    userAgent: list[StrictStr] | None = _values("user agent")
    searchPhrase: StrictStr | None = Field(
        None,
        description=f"Only records containing this text (case-sensitive) in their action, actor, resource, path or"
        f" user agent; at most {MAX_PHRASE_CHARS} characters.",
        json_schema_extra={"maxLength": MAX_PHRASE_CHARS},
    )
    limit: StrictInt | None = Field(
        None,
        description=f"The most records to return, 1 to {MAX_AUDIT_LIMIT} (default {DEFAULT_AUDIT_LIMIT}); 0 means the"
        " default.",
        json_schema_extra={"minimum": 1, "maximum": MAX_AUDIT_LIMIT, "default": DEFAULT_AUDIT_LIMIT},
    )
    sortOrder: StrictStr | None = _sort()
    includeTimeline: StrictBool | None = Field(
        None,
        description="Whether to add a histogram of the matching records over the range, per result.",
        json_schema_extra={"default": False},
    )
    timelineInterval: StrictStr | None = Field(
        None,
        description=f"The histogram's bucket size, a Go duration (e.g. 1m, 1h); default: one giving at most 100"
        f" buckets; at most {MAX_TIMELINE_BUCKETS} buckets. Needs includeTimeline.",
    )
    cursor: StrictStr | None = _cursor()


_FILTERS = ", ".join(AUDIT_FILTERS)


class AuditFilterValuesRequest(_Bind):
    """The values one audit filter takes under the rest of a query, with counts (a facet picker)."""

    schema_required: ClassVar[tuple[str, ...]] = ("query", "filter")
    query: AuditLogsQueryRequest | None = Field(
        None,
        description="The audit query the values describe; the filter's own selection is cleared first, and limit,"
        " sortOrder, cursor and the timeline are ignored.",
    )
    filter: StrictStr | None = Field(None, description=f"Which filter: one of {_FILTERS}.")
    valueSearch: StrictStr | None = Field(
        None,
        description="Only values containing this text (case-insensitive).",
        json_schema_extra={"maxLength": MAX_VALUE_SEARCH_CHARS},
    )
    maxValues: StrictInt | None = Field(
        None,
        description=f"The most values to list, 1 to {MAX_FILTER_VALUES} (default {DEFAULT_FILTER_VALUES}).",
        json_schema_extra={"minimum": 1, "maximum": MAX_FILTER_VALUES, "default": DEFAULT_FILTER_VALUES},
    )


# ----------------------------------------------------------------------------------------------- answers


def audit_page_body(page: AuditPage, interval: str = "") -> dict[str, Any]:
    """`{records, total, tookMs, timeline?, nextCursor?}`; `interval` is the timeline's bucket size as a Go
    duration, when a timeline was asked for."""
    body: dict[str, Any] = {
        "records": [audit_document(record) for record in page.records],
        "total": page.total,
        "tookMs": page.took_ms,
    }
    if page.timeline is not None:
        body["timeline"] = {
            "interval": interval,
            "buckets": [
                {"startTime": format_rfc3339(bucket.start_ns), "total": bucket.total, "counts": dict(bucket.counts)}
                for bucket in page.timeline
            ],
        }
    if page.next_cursor:
        body["nextCursor"] = page.next_cursor
    return body


_STRING: dict[str, Any] = {"type": "string"}
AUDIT_RECORD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["schemaVersion", "eventId", "eventTime", "actor", "action", "category", "result"],
    "properties": {
        "schemaVersion": _STRING,
        "eventId": _STRING,
        "eventTime": {"type": "string", "format": "date-time"},
        "actor": {
            "type": "object",
            "required": ["type"],
            "properties": {
                **{name: _STRING for name in ("type", "id", "issuer", "sessionId")},
                "entitlements": {"type": "array", "items": _STRING},
            },
        },
        "action": _STRING,
        "category": {"type": "string", "enum": list(CATEGORIES)},
        "result": {"type": "string", "enum": list(RESULTS)},
        "surface": {"type": "string", "enum": list(SURFACES)},
        **{name: _STRING for name in ("requestId", "sourceIp", "userAgent", "producer", "operationId")},
        "metadata": {"type": "object", "additionalProperties": _STRING},
        "http": {"type": "object", "properties": {"method": _STRING, "path": _STRING}},
        "resource": {
            "type": "object",
            "properties": {
                name: _STRING
                for name in ("type", "namespace", "environment", "project", "component", "resource", "uid", "name")
            },
        },
        "collector": {
            "type": "object",
            "properties": {name: _STRING for name in ("namespaceName", "podName", "containerName")},
        },
    },
}
AUDIT_LOGS_RESPONSE: dict[str, Any] = {
    "type": "object",
    "required": ["records", "total", "tookMs"],
    "properties": {
        "records": {"type": "array", "items": AUDIT_RECORD_SCHEMA},
        "total": {"type": "integer", "minimum": 0},
        "tookMs": {"type": "integer", "minimum": 0},
        "timeline": {
            "type": "object",
            "required": ["interval", "buckets"],
            "properties": {
                "interval": _STRING,
                "buckets": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["startTime", "total"],
                        "properties": {
                            "startTime": {"type": "string", "format": "date-time"},
                            "total": {"type": "integer", "minimum": 0},
                            "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
                        },
                    },
                },
            },
        },
        "nextCursor": {
            "type": "string",
            "description": "Extension: present when more records match; send it back as `cursor` for the next page.",
        },
    },
}
