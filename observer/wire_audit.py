"""Wire shapes of the audit trail's query API: `POST /api/v1alpha1/audit-logs/query`, its filter values, and the
answers, in the shapes of OpenChoreo's generated adapter models (`AuditLogsQueryRequest`, `AuditLogsResponse`).

Upstream's casing carries meaning, so it is kept exactly: a filter derived from the record is spelt as the record
spells the field it matches (`operation_id`, `source_ip`, `actor.session_id`: snake_case, nested as the record
nests it), while the query's own controls stay camelCase (`startTime`, `limit`, `includeTimeline`). Requests only
bind (observer/validate_audit.py checks them); a record is answered as `domain.audit.audit_document` has it, the
one JSON shape of a record everywhere.
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
    TimelineBucket,
    audit_document,
    format_interval,
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
    session_id: list[StrictStr] | None = _values("identity-provider session id (the token's `sid`)")
    entitlements: list[StrictStr] | None = _values("entitlement values (matched against every claim's values)")


class AuditResourceFilter(_Bind):
    """What was acted on: each a list of alternatives."""

    type: list[StrictStr] | None = _values("resource type")
    namespace: list[StrictStr] | None = _values("namespace")
    environment: list[StrictStr] | None = _values("environment, as `{namespace}/{name}`")
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
    operation_id: list[StrictStr] | None = _values("operation id (e.g. UpdateIncident)")
    request_id: list[StrictStr] | None = _values("request id (matched exactly)")
    event_id: list[StrictStr] | None = _values("event id (matched exactly)")
    source_ip: list[StrictStr] | None = _values("source address (matched exactly)")
    user_agent: list[StrictStr] | None = _values("user agent (matched exactly)")
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
        description=f"The histogram's bucket width as `<count><unit>`, the unit one of m, h, d, w (e.g. 5m, 1h, 1d);"
        f" default: chosen from the range (at most 100 buckets). A width giving more than {MAX_TIMELINE_BUCKETS}"
        " buckets is coarsened, not refused: `timeline.interval` reports the width used. Needs includeTimeline.",
        json_schema_extra={"pattern": "^[1-9][0-9]*[mhdw]$"},
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


def _bucket(bucket: TimelineBucket) -> dict[str, Any]:
    """`counts` keeps only results with records (upstream: an absent key means zero), and is left out when
    none has any."""
    counts = {result: count for result, count in bucket.counts.items() if count}
    body: dict[str, Any] = {"startTime": format_rfc3339(bucket.start_ns), "total": bucket.total}
    if counts:
        body["counts"] = counts
    return body


def audit_page_body(page: AuditPage, interval_ns: int = 0) -> dict[str, Any]:
    """`{records, total, tookMs, timeline?, nextCursor?}`; `interval_ns` is the width of the timeline's buckets
    (written `<count><unit>`), when a timeline was asked for."""
    body: dict[str, Any] = {
        "records": [audit_document(record) for record in page.records],
        "total": page.total,
        "tookMs": page.took_ms,
    }
    if page.timeline is not None and interval_ns > 0:
        body["timeline"] = {
            "interval": format_interval(interval_ns),
            "buckets": [_bucket(bucket) for bucket in page.timeline],
        }
    if page.next_cursor:
        body["nextCursor"] = page.next_cursor
    return body


_STRING: dict[str, Any] = {"type": "string"}
#: upstream's `AuditLogRecord`: snake_case keys (the frozen line a SIEM consumes), camelCase only in `collector`.
#: `category` and `result` are open strings in a record (a newer schema may add values), closed in a filter.
AUDIT_RECORD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["schema_version", "event_id", "event_time", "actor", "action", "category", "result"],
    "properties": {
        "schema_version": _STRING,
        "event_id": _STRING,
        "event_time": {"type": "string", "format": "date-time"},
        "actor": {
            "type": "object",
            "required": ["type", "id"],
            "properties": {
                **{name: _STRING for name in ("type", "id", "issuer", "session_id")},
                "entitlements": {
                    "type": "object",
                    "description": "Each claim (e.g. groups, sub) with its values.",
                    "additionalProperties": {"type": "array", "items": _STRING},
                },
            },
        },
        "action": _STRING,
        "category": {"type": "string", "description": f"At schema 1.0 one of {', '.join(CATEGORIES)}."},
        "result": {"type": "string", "description": f"At schema 1.0 one of {', '.join(RESULTS)}."},
        "surface": {"type": "string", "description": f"At schema 1.0 one of {', '.join(SURFACES)}."},
        **{name: _STRING for name in ("request_id", "source_ip", "user_agent", "producer", "operation_id")},
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
    "description": "`total` is exact (never capped); `timeline.buckets` cover the window from startTime"
    " contiguously, the empty ones with total 0.",
    "properties": {
        "records": {"type": "array", "items": AUDIT_RECORD_SCHEMA},
        "total": {"type": "integer", "minimum": 0},
        "tookMs": {"type": "integer", "minimum": 0},
        "timeline": {
            "type": "object",
            "required": ["interval", "buckets"],
            "properties": {
                "interval": {"type": "string", "description": "The bucket width used, as <count><unit>."},
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
