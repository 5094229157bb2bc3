"""What the tools advertise: each argument (its JSON schema and the REST field it stands for) and each tool's
output schema (MCP 2025-06 `outputSchema`, which every structuredContent must satisfy).

An argument is declared once, with the name of the REST request field it fills, so the input schema, the
building of the REST request and the wording of error messages ("start_time", never "startTime") all come
from the same table and cannot drift apart. Output schemas mirror the response schemas of OpenChoreo's
observer-api.yaml: the keys the contract promises are required, our extensions (`nextCursor`, `note`,
`traceId` on a log line) are declared, and anything else a newer backend adds is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from domain.loglevel import API_LEVELS
from observer.validation import MAX_LIMIT

Schema = dict[str, Any]


@dataclass(frozen=True)
class Argument:
    """One tool argument: its JSON schema, and the dotted REST name it fills (`searchScope.namespace`,
    `startTime`). `in_body` is False for what REST takes in the path (`traceId`, `spanId`), so it is passed
    to the validator beside the body rather than inside it."""

    schema: Schema
    rest: str
    in_body: bool = True


def string(description: str, **extra: Any) -> Schema:
    return {"type": "string", "description": description, **extra}


def number(description: str, **extra: Any) -> Schema:
    return {"type": "number", "description": description, **extra}


def boolean(description: str) -> Schema:
    return {"type": "boolean", "description": description}


NAMESPACE = string("Namespace (organization) name (required)")
START_TIME = string("Start of the time range in RFC3339 format (e.g., 2025-11-04T08:29:02.452Z)")
END_TIME = string(
    "End of the time range in RFC3339 format (e.g., 2025-11-04T09:29:02.452Z); at most 30 days after start_time"
)
SORT_ORDER: Schema = {
    "type": "string",
    "description": "Sort order by timestamp: 'asc' (oldest first) or 'desc' (newest first). Default: 'desc'",
    "enum": ["asc", "desc"],
}
SEARCH_PHRASE = string("Text to search for within log lines (matched as a literal, case-sensitive substring)")
LOG_LEVELS: Schema = {
    "type": "array",
    "description": "Log levels to keep (e.g., ['ERROR', 'WARN']): DEBUG, INFO, WARN or ERROR, in upper case, each"
    " at most once. Default: all levels",
    "items": {"type": "string", "enum": list(API_LEVELS)},
}
STEP = string("Resolution step of the series as a duration (e.g., '1m', '5m', '15m', '30m', '1h'). Default: '5m'")
CURSOR = string("Opaque cursor: the nextCursor of the previous answer to this same query, to continue where it ended")


def plain_limit(what: str) -> Schema:
    """Logs and events: 0 (or absent) means the default, as REST and OpenChoreo's CLI have it."""
    return number(f"Maximum number of {what} to return. Default: 100", minimum=0, maximum=MAX_LIMIT)


def strict_limit() -> Schema:
    """Traces, spans, alerts and incidents: absent means 100, 0 is refused (as REST refuses it)."""
    return number("Maximum number of entries to return. Default: 100", minimum=1, maximum=MAX_LIMIT)


def component_scope(what: str) -> dict[str, Argument]:
    return {
        "namespace": Argument(NAMESPACE, "searchScope.namespace"),
        "project": Argument(string(f"Project name to filter {what}"), "searchScope.project"),
        "component": Argument(string(f"Component name to filter {what} (requires project)"), "searchScope.component"),
        "environment": Argument(
            string(f"Environment name to filter {what} (e.g., 'development', 'production')"), "searchScope.environment"
        ),
    }


def window() -> dict[str, Argument]:
    return {"start_time": Argument(START_TIME, "startTime"), "end_time": Argument(END_TIME, "endTime")}


def ordering(limit: Schema) -> dict[str, Argument]:
    return {"limit": Argument(limit, "limit"), "sort_order": Argument(SORT_ORDER, "sortOrder")}


def paging() -> dict[str, Argument]:
    return {"cursor": Argument(CURSOR, "cursor")}


def input_schema(arguments: dict[str, Argument], required: tuple[str, ...]) -> Schema:
    """`additionalProperties: false` says what the tools enforce: an unknown argument is an error that names
    it, never silently ignored (a misspelt `searchPhrase` would otherwise return unfiltered logs)."""
    return {
        "type": "object",
        "properties": {name: argument.schema for name, argument in arguments.items()},
        "required": list(required),
        "additionalProperties": False,
    }


# ----------------------------------------------------------------------------------------------- outputs


def _object(properties: Schema, required: tuple[str, ...] = ()) -> Schema:
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


def _strings(*names: str) -> Schema:
    return {name: {"type": "string"} for name in names}


TIMESTAMP: Schema = {"type": "string", "format": "date-time"}
COUNT: Schema = {"type": "integer", "minimum": 0}
NEXT_CURSOR: Schema = {"type": "string", "description": "Pass as `cursor` to read the next page of this query"}
NOTE: Schema = {"type": "string", "description": "Why fewer entries came back than the page could hold"}

_SCOPE_METADATA = _strings(
    "componentName",
    "projectName",
    "environmentName",
    "namespaceName",
    "componentUid",
    "projectUid",
    "environmentUid",
)
COMPONENT_LOG = _object(
    {
        "timestamp": TIMESTAMP,
        "log": {"type": "string"},
        "level": {"type": "string"},
        "metadata": _object({**_SCOPE_METADATA, **_strings("containerName", "podName", "podNamespace")}),
        **_strings("traceId", "spanId"),
    },
    ("timestamp", "log"),
)
WORKFLOW_LOG = _object({"timestamp": TIMESTAMP, "log": {"type": "string"}}, ("timestamp", "log"))
EVENT = _object(
    {
        "timestamp": TIMESTAMP,
        "message": {"type": "string"},
        **_strings("type", "reason"),
        "metadata": _object({**_SCOPE_METADATA, **_strings("objectKind", "objectName", "objectNamespace")}),
    },
    ("timestamp", "message"),
)
TRACE = _object(
    {
        **_strings("traceId", "traceName", "rootSpanId", "rootSpanName", "rootSpanKind"),
        "spanCount": COUNT,
        "startTime": TIMESTAMP,
        "endTime": TIMESTAMP,
        "durationNs": {"type": "integer"},
        "hasErrors": {"type": "boolean"},
    },
    ("traceId", "startTime", "endTime"),
)
SPAN = _object(
    {
        **_strings("spanId", "spanName", "spanKind", "parentSpanId"),
        "startTime": TIMESTAMP,
        "endTime": TIMESTAMP,
        "durationNs": {"type": "integer"},
        "status": _object(
            {"code": {"type": "string", "enum": ["ok", "error", "unset"]}, "message": {"type": "string"}}, ("code",)
        ),
        "attributes": {"type": "object"},
        "resourceAttributes": {"type": "object"},
    },
    ("spanId", "startTime", "endTime"),
)
_LABELS = _object(_SCOPE_METADATA)
ALERT = _object(
    {
        "timestamp": TIMESTAMP,
        **_strings("alertId", "alertValue"),
        "notificationChannels": {"type": "array", "items": {"type": "string"}},
        "incidentEnabled": {"type": "boolean"},
        "metadata": _object(
            {
                "alertRule": _object(
                    {
                        **_strings("name", "description"),
                        "severity": {"type": "string", "enum": ["info", "warning", "critical"]},
                        "source": _object(
                            {
                                "type": {"type": "string", "enum": ["log", "metric", "budget"]},
                                **_strings("query", "metric"),
                            }
                        ),
                        "condition": _object(
                            {
                                "operator": {"type": "string", "enum": ["gt", "lt", "gte", "lte", "eq", "neq"]},
                                "threshold": {"type": "number"},
                                **_strings("window", "interval"),
                            }
                        ),
                    }
                ),
                "labels": _LABELS,
            }
        ),
    },
    ("timestamp", "alertId"),
)
INCIDENT = _object(
    {
        **_strings("alertId", "incidentId", "notes", "description"),
        "timestamp": TIMESTAMP,
        "incidentTriggerAiRca": {"type": "boolean"},
        "incidentTriggerAiCostAnalysis": {"type": "boolean"},
        "status": {"type": "string", "enum": ["active", "acknowledged", "resolved"]},
        "triggeredAt": TIMESTAMP,
        "acknowledgedAt": TIMESTAMP,
        "resolvedAt": TIMESTAMP,
        "labels": _LABELS,
    },
    ("incidentId", "status"),
)


def page_of(key: str, item: Schema, *, cursor: bool) -> Schema:
    """`{<key>: [...], total, tookMs}` as every query answer, with `note` when the page was cut to fit one MCP
    message, and `nextCursor` on the tools that page."""
    properties: Schema = {key: {"type": "array", "items": item}, "total": COUNT, "tookMs": COUNT, "note": NOTE}
    if cursor:
        properties["nextCursor"] = NEXT_CURSOR
    return _object(properties, (key, "total", "tookMs"))


COMPONENT_LOGS = page_of("logs", COMPONENT_LOG, cursor=True)
WORKFLOW_LOGS = page_of("logs", WORKFLOW_LOG, cursor=True)
EVENTS = page_of("events", EVENT, cursor=True)
TRACES = page_of("traces", TRACE, cursor=False)
SPANS = page_of("spans", SPAN, cursor=False)
ALERTS = page_of("alerts", ALERT, cursor=False)
INCIDENTS = page_of("incidents", INCIDENT, cursor=False)
METRICS: Schema = {
    "type": "object",
    "description": "One time series per metric name (e.g., cpuUsage, memoryUsage, requestCount, latencyP99)",
    "additionalProperties": {
        "type": "array",
        "items": _object({"timestamp": TIMESTAMP, "value": {"type": ["number", "null"]}}, ("timestamp", "value")),
    },
}
SPAN_DETAILS = SPAN
_NODE_REF = _object(
    {
        "kind": {"type": "string"},
        **_strings("component", "componentUid", "name", "host", "project", "projectUid", "namespace"),
    },
    ("kind",),
)
_EDGE_METRICS = _object(
    {
        name: {"type": "number"}
        for name in (
            "requestCount",
            "unsuccessfulRequestCount",
            "meanLatency",
            "latencyP50",
            "latencyP90",
            "latencyP99",
        )
    }
)
TOPOLOGY = _object(
    {
        "nodes": {
            "type": "array",
            "items": {**_NODE_REF, "properties": {**_NODE_REF["properties"], "metrics": _EDGE_METRICS}},
        },
        "edges": {
            "type": "array",
            "items": _object(
                {
                    "id": {"type": "string"},
                    "source": _NODE_REF,
                    "target": _NODE_REF,
                    "protocol": {"type": "string"},
                    "metrics": _EDGE_METRICS,
                },
                ("id", "source", "target"),
            ),
        },
        "summary": _object(
            {"startTime": TIMESTAMP, "endTime": TIMESTAMP, "generatedAt": TIMESTAMP}, ("startTime", "endTime")
        ),
        "note": NOTE,
    },
    ("summary",),
)
LOG_CONTEXT = _object(
    {
        **_strings("podName", "containerName"),
        "before": {"type": "array", "items": COMPONENT_LOG},
        "anchor": {"type": "array", "items": COMPONENT_LOG},
        "after": {"type": "array", "items": COMPONENT_LOG},
        "searched": _object({"startTime": TIMESTAMP, "endTime": TIMESTAMP}),
        "note": NOTE,
    },
    ("podName", "containerName", "before", "anchor", "after"),
)
_MONEY: Schema = {"type": "number"}
_COST_SCOPE = {
    **_strings("componentUid", "component", "environmentUid", "environment", "projectUid", "project", "namespace")
}
COSTS = _object(
    {
        "items": {
            "type": "array",
            "items": _object(
                {
                    **_COST_SCOPE,
                    "startTime": TIMESTAMP,
                    "endTime": TIMESTAMP,
                    "cpuCost": _MONEY,
                    "memoryCost": _MONEY,
                    "efficiency": {"type": "number", "minimum": 0, "maximum": 1},
                },
                ("component", "startTime", "endTime", "cpuCost", "memoryCost", "efficiency"),
            ),
        }
    },
    ("items",),
)
_PROFILE = _object(
    {**_strings("cpuRequest", "cpuLimit", "memoryRequest", "memoryLimit"), "cpuCost": _MONEY, "memoryCost": _MONEY}
)
RECOMMENDATIONS = _object(
    {
        "items": {
            "type": "array",
            "items": _object(
                {**_COST_SCOPE, "current": _PROFILE, "recommendation": _PROFILE},
                ("component", "current", "recommendation"),
            ),
        }
    },
    ("items",),
)
