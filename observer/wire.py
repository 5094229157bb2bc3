"""Wire shapes of the public query API (pydantic v2), named exactly as in OpenChoreo's observer-api.yaml.

Request models only bind: every field is optional and strictly typed, so a wrong JSON type is the contract's
"Invalid request format" while a missing or out-of-range value reaches `observer.validation`, which checks
fields in the contract's order and says which one to fix. Unknown keys are kept (`extra="allow"`) for
`observer.request_form` to name in a 400. Their JSON schema is written for clients instead (`_contract_schema`):
descriptions, bounds, enums and the upstream `required` lists, none of which binding enforces. Responses are
built as plain dicts by the `*_entry` functions below, because the contract omits empty fields rather than
sending nulls.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from functools import lru_cache
from typing import Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidatorFunctionWrapHandler,
    field_validator,
)
from pydantic.json_schema import JsonDict
from pydantic_core import PydanticCustomError

from domain.loglevel import API_LEVELS
from domain.model import (
    EdgeMetrics,
    EventRecord,
    Identity,
    LogRecord,
    NodeRef,
    SpanRecord,
    Topology,
)
from domain.timeutil import format_rfc3339
from observer.log_context import LogContext

#: The longest searchPhrase accepted: a literal substring this long is already very selective, and a longer
#: one only makes every candidate line slower to test.
MAX_PHRASE_CHARS = 1024
#: The largest `minDurationMs`: the longest time range a query may have (30 days), in milliseconds.
MAX_MIN_DURATION_MS = 30 * 24 * 3600 * 1000


def _contract_schema(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """The JSON schema a client sees: the contract's, not the binding's.

    Fields bind as optional (`None` when absent) so that `observer.validation` can say "startTime is required" in
    the contract's order; the schema instead says what a client must send: the contract's `required` list,
    no `null`, no `default: null`, and no properties beyond those listed (unknown fields are refused)."""
    for prop in schema.get("properties", {}).values():
        branches = [branch for branch in prop.pop("anyOf", []) if branch != {"type": "null"}]
        if len(branches) == 1:
            prop.update({key: value for key, value in branches[0].items() if key not in prop})
        elif branches:
            prop["anyOf"] = branches
        if "default" in prop and prop["default"] is None:
            del prop["default"]
        prop.pop("title", None)
    required = getattr(model, "schema_required", ())
    if required:
        schema["required"] = list(required)
    schema["additionalProperties"] = False


class _Bind(BaseModel):
    # `allow` keeps unknown keys in `model_extra`, so validation can name them in a 400 instead of dropping them.
    model_config = ConfigDict(extra="allow", json_schema_extra=_contract_schema)
    schema_required: ClassVar[tuple[str, ...]] = ()


_LIMIT: JsonDict = {"minimum": 1, "maximum": 1000, "default": 100}
_SORT: JsonDict = {"enum": ["asc", "desc"], "default": "desc"}
_TIME: JsonDict = {"format": "date-time"}
_NAME: JsonDict = {"minLength": 1, "maxLength": 253}


def _start() -> Any:
    return Field(
        None,
        description="Start of the time range, RFC3339 (e.g. 2024-01-01T00:00:00Z); inclusive.",
        json_schema_extra=_TIME,
    )


def _end() -> Any:
    return Field(
        None,
        description="End of the time range, RFC3339; inclusive, not before startTime and at most 30 days after it.",
        json_schema_extra=_TIME,
    )


def _limit(zero: str) -> Any:
    return Field(
        None, description=f"The most items to return, 1 to 1000 (default 100); {zero}", json_schema_extra=_LIMIT
    )


def _sort() -> Any:
    return Field(
        None,
        description="Order by timestamp: newest first (desc, the default) or oldest first (asc).",
        json_schema_extra=_SORT,
    )


def _cursor() -> Any:
    return Field(
        None,
        description="Extension: the nextCursor of the previous page, with every other field"
        " unchanged, to get the next page.",
        json_schema_extra={"maxLength": 4096},
    )


class ComponentSearchScope(_Bind):
    """Names (not UIDs) of what to search: a namespace, optionally narrowed to a project, a component of that
    project, and an environment."""

    schema_required: ClassVar[tuple[str, ...]] = ("namespace",)
    namespace: StrictStr | None = Field(None, description="Namespace name.", json_schema_extra=_NAME)
    project: StrictStr | None = Field(None, description="Project name.", json_schema_extra=_NAME)
    component: StrictStr | None = Field(None, description="Component name; needs project.", json_schema_extra=_NAME)
    environment: StrictStr | None = Field(None, description="Environment name.", json_schema_extra=_NAME)


class RuntimeTopologySearchScope(ComponentSearchScope):
    """A component search scope in which project and environment are required: runtime topology is project- and
    environment-scoped; component, if set, keeps only the edges that touch it."""

    schema_required = ("namespace", "project", "environment")


class WorkflowSearchScope(_Bind):
    """A namespace's CI workflow runs, optionally one run (by name) and tasks whose name contains taskName."""

    schema_required = ("namespace",)
    namespace: StrictStr | None = Field(None, description="Namespace name.", json_schema_extra=_NAME)
    workflowRunName: StrictStr | None = Field(
        None, description="Workflow run name; selects this scope shape.", json_schema_extra=_NAME
    )
    taskName: StrictStr | None = Field(
        None, description="Task name (a substring); needs workflowRunName.", json_schema_extra=_NAME
    )


class _ScopedQuery(_Bind):
    # Logs and events take either scope shape; `workflowRunName` selects the workflow one.
    searchScope: ComponentSearchScope | WorkflowSearchScope | None = Field(
        None, description="What to search: a component scope, or a workflow scope (with workflowRunName)."
    )

    @field_validator("searchScope", mode="wrap")
    @classmethod
    def _pick_scope_shape(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        """The key `workflowRunName` selects the workflow shape, as upstream's UnmarshalJSON does; a field
        validator (not a model one) so that a problem inside the scope is reported at `searchScope.<field>`."""
        if not isinstance(value, dict):
            if value is None or isinstance(value, BaseModel):
                return handler(value)
            raise PydanticCustomError("scope_type", "must be a JSON object (a component or a workflow scope)")
        if "workflowRunName" not in value:
            return ComponentSearchScope.model_validate(value)
        mixed = [key for key in ("project", "component", "environment") if key in value]
        if mixed:
            raise PydanticCustomError(
                "scope_shape", "workflowRunName cannot be combined with {mixed}", {"mixed": ", ".join(mixed)}
            )
        return WorkflowSearchScope.model_validate(value)


_PLAIN_ZERO = "0 means the default."


class LogsQueryRequest(_ScopedQuery):
    """A page of log lines of a component or workflow scope."""

    schema_required = ("startTime", "endTime", "searchScope")
    startTime: StrictStr | None = _start()
    endTime: StrictStr | None = _end()
    limit: StrictInt | None = _limit(_PLAIN_ZERO)
    sortOrder: StrictStr | None = _sort()
    logLevels: list[StrictStr] | None = Field(
        None,
        description="Only lines of these levels (each at most once); FATAL lines count as ERROR.",
        json_schema_extra={"uniqueItems": True, "items": {"type": "string", "enum": list(API_LEVELS)}},
    )
    searchPhrase: StrictStr | None = Field(
        None,
        description=f"Only lines containing this text, matched literally and case-sensitively; at most"
        f" {MAX_PHRASE_CHARS} characters.",
        json_schema_extra={"maxLength": MAX_PHRASE_CHARS},
    )
    cursor: StrictStr | None = _cursor()
    traceId: StrictStr | None = Field(
        None,
        description="Extension: only lines of this trace (its trace id, 32 hexadecimal digits, not all zero):"
        " the logs of a trace.",
        json_schema_extra={"pattern": "^[0-9a-fA-F]{32}$"},
    )


class EventsQueryRequest(_ScopedQuery):
    """A page of Kubernetes events of a component or workflow scope."""

    schema_required = ("startTime", "endTime", "searchScope")
    startTime: StrictStr | None = _start()
    endTime: StrictStr | None = _end()
    limit: StrictInt | None = _limit(_PLAIN_ZERO)
    sortOrder: StrictStr | None = _sort()
    cursor: StrictStr | None = _cursor()


class MetricsQueryRequest(_Bind):
    """Resource or HTTP metric series of a component scope."""

    schema_required = ("metric", "startTime", "endTime", "searchScope")
    metric: StrictStr | None = Field(
        None,
        description="Which series: resource (CPU, memory, network, disk) or http (requests, latency).",
        json_schema_extra={"enum": ["resource", "http"]},
    )
    startTime: StrictStr | None = _start()
    endTime: StrictStr | None = _end()
    step: StrictStr | None = Field(
        None,
        description="Distance between points, a Go duration (e.g. 1m, 5m, 15m, 30m, 1h; default 5m), greater than"
        " 0 and giving at most 11000 points over the range.",
    )
    searchScope: ComponentSearchScope | None = Field(None, description="The component scope.")


class RuntimeTopologyRequest(_Bind):
    """The call graph of a project in an environment, with HTTP metrics per edge."""

    schema_required = ("searchScope", "startTime", "endTime")
    searchScope: RuntimeTopologySearchScope | None = Field(
        None, description="namespace, project and environment are required; component is optional."
    )
    startTime: StrictStr | None = _start()
    endTime: StrictStr | None = _end()
    includeGateways: StrictBool | None = Field(
        None, description="Whether to include gateway -> component edges.", json_schema_extra={"default": True}
    )
    includeExternal: StrictBool | None = Field(
        None,
        description="Whether to include edges to or from components outside the project.",
        json_schema_extra={"default": True},
    )


class TracesQueryRequest(_Bind):
    """Traces (or the spans of one trace) that touch a component scope."""

    schema_required = ("startTime", "endTime", "searchScope")
    startTime: StrictStr | None = _start()
    endTime: StrictStr | None = _end()
    limit: StrictInt | None = _limit("0 is refused.")
    sortOrder: StrictStr | None = _sort()
    searchScope: ComponentSearchScope | None = Field(None, description="The component scope.")
    includeAttributes: StrictBool | None = Field(
        None,
        description="Whether spans carry their attributes and resource attributes.",
        json_schema_extra={"default": False},
    )
    minDurationMs: StrictInt | None = Field(
        None,
        description="Extension (trace list only): only traces lasting at least this many milliseconds, from their"
        " first span's start to their last span's end (the summary's startTime to endTime); 0 means any.",
        json_schema_extra={"minimum": 0, "maximum": MAX_MIN_DURATION_MS, "default": 0},
    )
    errorsOnly: StrictBool | None = Field(
        None,
        description="Extension (trace list only): only traces with at least one span whose status is error"
        " (hasErrors).",
        json_schema_extra={"default": False},
    )


#: Log context: lines returned on each side of the anchor by default, and at most.
CONTEXT_DEFAULT_LINES = 10
CONTEXT_MAX_LINES = 200
_CONTEXT_LINES: JsonDict = {"minimum": 0, "maximum": CONTEXT_MAX_LINES, "default": CONTEXT_DEFAULT_LINES}


class LogContextSearchScope(ComponentSearchScope):
    """A component scope in which every level is required: log context reads one container of one component."""

    schema_required = ("namespace", "project", "component", "environment")


class LogContextRequest(_Bind):
    """Extension: the lines one container wrote just before and just after one log line, like `grep -C`."""

    schema_required = ("searchScope", "timestamp")
    searchScope: LogContextSearchScope | None = Field(None, description="The component whose line it is.")
    timestamp: StrictStr | None = Field(
        None,
        description="The log line's timestamp, exactly as a logs query returned it (RFC3339).",
        json_schema_extra=_TIME,
    )
    podName: StrictStr | None = Field(
        None,
        description="The line's pod (metadata.podName), needed when several containers logged at that"
        " instant, or to read around an instant without a line.",
        json_schema_extra=_NAME,
    )
    containerName: StrictStr | None = Field(
        None,
        description="The line's container (metadata.containerName), as podName.",
        json_schema_extra=_NAME,
    )
    before: StrictInt | None = Field(
        None,
        description=f"Lines to return before it, 0 to {CONTEXT_MAX_LINES} (default {CONTEXT_DEFAULT_LINES}).",
        json_schema_extra=_CONTEXT_LINES,
    )
    after: StrictInt | None = Field(
        None,
        description=f"Lines to return after it, 0 to {CONTEXT_MAX_LINES} (default {CONTEXT_DEFAULT_LINES}).",
        json_schema_extra=_CONTEXT_LINES,
    )


class ErrorResponse(BaseModel):
    title: Literal[
        "badRequest", "unauthorized", "forbidden", "notFound", "conflict", "internalServerError", "notImplemented"
    ]
    errorCode: str
    message: str


# ----------------------------------------------------------------------------------------------- responses


@lru_cache(maxsize=4096)
def valid_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _present(pairs: dict[str, str]) -> dict[str, str]:
    return {key: value for key, value in pairs.items() if value}


def _scope_metadata(identity: Identity) -> dict[str, str]:
    """Names always when known; UIDs only when they are real UUIDs, as the contract promises `format: uuid`."""
    return _present(
        {
            "componentName": identity.component,
            "projectName": identity.project,
            "environmentName": identity.environment,
            "namespaceName": identity.namespace,
            "componentUid": identity.component_uid if valid_uuid(identity.component_uid) else "",
            "projectUid": identity.project_uid if valid_uuid(identity.project_uid) else "",
            "environmentUid": identity.environment_uid if valid_uuid(identity.environment_uid) else "",
        }
    )


@lru_cache(maxsize=4096)
def _log_metadata(identity: Identity) -> dict[str, str]:
    """Shared by every line of one stream (a page holds few streams); never mutated after it is built."""
    return {
        **_scope_metadata(identity),
        **_present(
            {
                "containerName": identity.container,
                "podName": identity.pod,
                "podNamespace": identity.pod_namespace,
            }
        ),
    }


def component_log_entry(record: LogRecord) -> dict[str, Any]:
    return _log_entry(record, _log_metadata(record.identity))


def component_log_entries(records: Iterable[LogRecord]) -> list[dict[str, Any]]:
    """`component_log_entry` of each record of a page. A page holds a few streams, and the embedded backend
    gives the lines of one stream one Identity object, so its metadata is looked up once per object here rather
    than hashed, field by field, once per line (a backend that builds an Identity per line gets the lookup per
    line, as before)."""
    # Keyed by id(); each entry also holds its Identity, so no id can be reused by another object meanwhile.
    by_object: dict[int, tuple[Identity, dict[str, str]]] = {}
    entries = []
    for record in records:
        known = by_object.get(id(record.identity))
        if known is None:
            known = by_object[id(record.identity)] = (record.identity, _log_metadata(record.identity))
        entries.append(_log_entry(record, known[1]))
    return entries


def _log_entry(record: LogRecord, metadata: dict[str, str]) -> dict[str, Any]:
    entry: dict[str, Any] = {"timestamp": format_rfc3339(record.ts_ns), "log": record.body}
    if record.level:
        entry["level"] = record.level
    entry["metadata"] = metadata
    # Extension: trace-to-log correlation.
    if record.trace_id:
        entry["traceId"] = record.trace_id
    if record.span_id:
        entry["spanId"] = record.span_id
    return entry


def log_context_body(context: LogContext) -> dict[str, Any]:
    """The log-context answer (REST and MCP alike): the container, its lines in time order, how far it looked."""
    return {
        "podName": context.pod,
        "containerName": context.container,
        "before": component_log_entries(context.before),
        "anchor": component_log_entries(context.anchor),
        "after": component_log_entries(context.after),
        "searched": {
            "startTime": format_rfc3339(context.searched.start_ns),
            "endTime": format_rfc3339(context.searched.end_ns),
        },
    }


def workflow_log_entry(record: LogRecord) -> dict[str, Any]:
    return {"timestamp": format_rfc3339(record.ts_ns), "log": record.body}


def event_entry(record: EventRecord, with_metadata: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {"timestamp": format_rfc3339(record.ts_ns), "message": record.message}
    entry.update(_present({"type": record.type, "reason": record.reason}))
    if with_metadata:
        entry["metadata"] = {
            **_scope_metadata(record.identity),
            **_present(
                {
                    "objectKind": record.object_kind,
                    "objectName": record.object_name,
                    "objectNamespace": record.object_namespace,
                }
            ),
        }
    return entry


def span_entry(span: SpanRecord, include_attributes: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "spanId": span.span_id,
        "spanName": span.name,
        "startTime": format_rfc3339(span.start_ns),
        "endTime": format_rfc3339(span.end_ns),
        "durationNs": span.end_ns - span.start_ns,
    }
    entry.update(_present({"spanKind": span.kind, "parentSpanId": span.parent_span_id}))
    if span.status_code:
        entry["status"] = {"code": span.status_code, **_present({"message": span.status_message})}
    if include_attributes:
        if span.attributes:
            entry["attributes"] = span.attributes
        if span.resource:
            entry["resourceAttributes"] = span.resource
    return entry


def metric_series_body(series: dict[str, list[tuple[int, float]]]) -> dict[str, list[dict[str, Any]]]:
    # The series of a family share their step timestamps: each is formatted once.
    stamps = {ts: format_rfc3339(ts) for ts in {ts for points in series.values() for ts, _ in points}}
    return {key: [{"timestamp": stamps[ts], "value": value} for ts, value in points] for key, points in series.items()}


def _metrics(metrics: EdgeMetrics) -> dict[str, float]:
    return {
        "requestCount": metrics.request_count,
        "unsuccessfulRequestCount": metrics.unsuccessful_request_count,
        "meanLatency": metrics.mean_latency,
        "latencyP50": metrics.latency_p50,
        "latencyP90": metrics.latency_p90,
        "latencyP99": metrics.latency_p99,
    }


def _node_ref(ref: NodeRef) -> dict[str, Any]:
    return {
        "kind": ref.kind,
        **_present(
            {
                "component": ref.component,
                "componentUid": ref.component_uid if valid_uuid(ref.component_uid) else "",
                "name": ref.name,
                "host": ref.host,
                "project": ref.project,
                "projectUid": ref.project_uid if valid_uuid(ref.project_uid) else "",
                "namespace": ref.namespace,
            }
        ),
    }


def _node_label(ref: NodeRef) -> str:
    if ref.kind == "gateway":
        return f"gateway:{ref.name}"
    if ref.kind == "external" and ref.host:
        return f"external:{ref.host}"
    return ref.component or ref.component_uid


def topology_body(topology: Topology, start_ns: int, end_ns: int, generated_ns: int) -> dict[str, Any]:
    """Nodes and edges are omitted when empty, `summary` is always there (as the contract says)."""
    body: dict[str, Any] = {}
    nodes = [
        {**_node_ref(node.ref), **({"metrics": _metrics(node.metrics)} if node.metrics else {})}
        for node in topology.nodes
    ]
    edges = [
        {
            "id": f"{_node_label(edge.source)}->{_node_label(edge.target)}",
            "source": _node_ref(edge.source),
            "target": _node_ref(edge.target),
            "protocol": "http",
            "metrics": _metrics(edge.metrics),
        }
        for edge in topology.edges
    ]
    if nodes:
        body["nodes"] = nodes
    if edges:
        body["edges"] = edges
    body["summary"] = {
        "startTime": format_rfc3339(start_ns),
        "endTime": format_rfc3339(end_ns),
        "generatedAt": format_rfc3339(generated_ns),
    }
    return body
