"""Wire shapes of the platform-logs family: `POST /api/v1alpha1/platform-logs/query`, its filter values, and the
answers, named exactly as OpenChoreo's logs adapters name them (http-adapters-notes §3).

As in observer/wire.py, request models only bind (every field optional, strictly typed, unknown keys kept for
observer/strict_form.py to name); observer/validate_platform.py checks the values and says what to fix. Answers
are plain dicts that leave out empty fields, as the adapters' `omitempty` does.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, StrictInt, StrictStr

from domain.loglevel import API_LEVELS
from domain.model import LogRecord
from domain.platform import (
    DEFAULT_FILTER_VALUES,
    LABEL_FILTER_PREFIX,
    MAX_FILTER_VALUES,
    PLATFORM_FILTERS,
    FilterValues,
)
from domain.timeutil import format_rfc3339
from observer.wire import MAX_PHRASE_CHARS, _Bind, _cursor, _end, _limit, _sort, _start

#: The most alternatives one coordinate filter takes, and the most label pairs: a picker's selection, bounded.
MAX_FILTER_ITEMS = 100
MAX_LABELS = 32
#: The longest `valueSearch` (a type-ahead text; longer is never a prefix of a Kubernetes name).
MAX_VALUE_SEARCH_CHARS = 253


def _names(what: str) -> Any:
    return Field(
        None,
        description=f"Only lines of these {what} (any of them; absent or empty: every one).",
        json_schema_extra={"maxItems": MAX_FILTER_ITEMS, "items": {"type": "string", "minLength": 1, "maxLength": 253}},
    )


class PlatformLogsQueryRequest(_Bind):
    """Log lines of any pod the collectors read, found by Kubernetes placement rather than by component."""

    schema_required: ClassVar[tuple[str, ...]] = ("startTime", "endTime")
    startTime: StrictStr | None = _start()
    endTime: StrictStr | None = _end()
    clusterInstance: list[StrictStr] | None = _names("cluster instances")
    namespace: list[StrictStr] | None = _names("Kubernetes namespaces")
    podName: list[StrictStr] | None = _names("pods")
    containerName: list[StrictStr] | None = _names("containers")
    labels: dict[StrictStr, StrictStr] | None = Field(
        None,
        description=f"Only pods carrying every one of these labels (key: value); keys are Kubernetes label keys;"
        f" at most {MAX_LABELS}.",
        json_schema_extra={"maxProperties": MAX_LABELS, "additionalProperties": {"type": "string", "maxLength": 63}},
    )
    limit: StrictInt | None = _limit("0 means the default.")
    sortOrder: StrictStr | None = _sort()
    searchPhrase: StrictStr | None = Field(
        None,
        description=f"Only lines containing this text, matched literally and case-sensitively; at most"
        f" {MAX_PHRASE_CHARS} characters.",
        json_schema_extra={"maxLength": MAX_PHRASE_CHARS},
    )
    logLevels: list[StrictStr] | None = Field(
        None,
        description="Only lines of these levels (each at most once); FATAL lines count as ERROR.",
        json_schema_extra={"uniqueItems": True, "items": {"type": "string", "enum": list(API_LEVELS)}},
    )
    cursor: StrictStr | None = _cursor()


_FILTERS = ", ".join(PLATFORM_FILTERS)


class PlatformFilterValuesRequest(_Bind):
    """The values one platform-logs filter takes under the rest of a query, with counts (a facet picker)."""

    schema_required: ClassVar[tuple[str, ...]] = ("query", "filter")
    query: PlatformLogsQueryRequest | None = Field(
        None,
        description="The platform-logs query the values describe; the filter's own selection is cleared first, and"
        " limit, sortOrder and cursor are ignored.",
    )
    filter: StrictStr | None = Field(
        None, description=f"Which filter: one of {_FILTERS}, or {LABEL_FILTER_PREFIX}<key> for one pod label's values."
    )
    valueSearch: StrictStr | None = Field(
        None,
        description="Only values containing this text (case-insensitive).",
        json_schema_extra={"maxLength": MAX_VALUE_SEARCH_CHARS},
    )
    maxValues: StrictInt | None = Field(
        None,
        description=f"The most values to list, 1 to {MAX_FILTER_VALUES} (default {DEFAULT_FILTER_VALUES}); 0 means"
        " the default.",
        json_schema_extra={"minimum": 1, "maximum": MAX_FILTER_VALUES, "default": DEFAULT_FILTER_VALUES},
    )


# ----------------------------------------------------------------------------------------------- answers


def platform_log_entry(record: LogRecord) -> dict[str, Any]:
    """One line as the adapters answer it: the time, the line, and where it ran (empty fields left out)."""
    identity = record.identity
    entry: dict[str, Any] = {"timestamp": format_rfc3339(record.ts_ns), "log": record.body}
    for key, value in (
        ("level", record.level),
        ("clusterInstance", identity.cluster),
        ("namespaceName", identity.pod_namespace),
        ("podName", identity.pod),
        ("containerName", identity.container),
        ("podIp", identity.pod_ip),
        ("nodeName", identity.node),
        ("containerImage", identity.image),
    ):
        if value:
            entry[key] = value
    if identity.labels:
        entry["labels"] = dict(identity.labels)
    return entry


def filter_values_body(values: FilterValues) -> dict[str, Any]:
    """`{filter, values[{value, count}], totalValues, tookMs}`, for platform and audit filters alike."""
    return {
        "filter": values.filter,
        "values": [{"value": item.value, "count": item.count} for item in values.values],
        "totalValues": values.total_values,
        "tookMs": values.took_ms,
    }


#: The answers' schemas, for /openapi.json and the MCP output schemas.
PLATFORM_LOG_ENTRY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["timestamp", "log"],
    "properties": {
        "timestamp": {"type": "string", "format": "date-time"},
        "log": {"type": "string"},
        **{
            name: {"type": "string"}
            for name in (
                "level",
                "clusterInstance",
                "namespaceName",
                "podName",
                "containerName",
                "podIp",
                "nodeName",
                "containerImage",
            )
        },
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}
PLATFORM_LOGS_RESPONSE: dict[str, Any] = {
    "type": "object",
    "required": ["logs", "total", "tookMs"],
    "properties": {
        "logs": {"type": "array", "items": PLATFORM_LOG_ENTRY_SCHEMA},
        "total": {"type": "integer", "minimum": 0},
        "tookMs": {"type": "integer", "minimum": 0},
        "nextCursor": {
            "type": "string",
            "description": "Extension: present when more lines match; send it back as `cursor` for the next page.",
        },
    },
}
FILTER_VALUES_RESPONSE: dict[str, Any] = {
    "type": "object",
    "required": ["filter", "values", "totalValues", "tookMs"],
    "properties": {
        "filter": {"type": "string"},
        "values": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["value", "count"],
                "properties": {"value": {"type": "string"}, "count": {"type": "integer", "minimum": 0}},
            },
        },
        "totalValues": {"type": "integer", "minimum": 0, "description": "A sense of scale, not a guaranteed total."},
        "tookMs": {"type": "integer", "minimum": 0},
    },
}
