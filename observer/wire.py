"""Wire shapes of the public query API (pydantic v2), named exactly as in OpenChoreo's observer-api.yaml.

Request models only bind: every field is optional and strictly typed, so a wrong JSON type is the contract's
"Invalid request format" while a missing or out-of-range value reaches `observer.validation`, which checks
fields in the contract's order and says which one to fix. Responses are built as plain dicts by the `*_entry`
functions below, because the contract omits empty fields rather than sending nulls.
"""

from __future__ import annotations

import uuid
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, StrictBool, StrictInt, StrictStr, model_validator

from adapters.model import (
    EdgeMetrics,
    EventRecord,
    Identity,
    LogRecord,
    NodeRef,
    SpanRecord,
    Topology,
    TraceSummary,
)
from adapters.timeutil import format_rfc3339


class _Bind(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ComponentSearchScope(_Bind):
    model_config = ConfigDict(extra="ignore", json_schema_extra={"required": ["namespace"]})
    namespace: StrictStr | None = None
    project: StrictStr | None = None
    component: StrictStr | None = None
    environment: StrictStr | None = None


class WorkflowSearchScope(_Bind):
    model_config = ConfigDict(extra="ignore", json_schema_extra={"required": ["namespace"]})
    namespace: StrictStr | None = None
    workflowRunName: StrictStr | None = None
    taskName: StrictStr | None = None


class _ScopedQuery(_Bind):
    """Logs and events take either scope shape; `workflowRunName` selects the workflow one."""

    searchScope: ComponentSearchScope | WorkflowSearchScope | None = None

    @model_validator(mode="before")
    @classmethod
    def _pick_scope_shape(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("searchScope"), dict):
            return data
        scope = data["searchScope"]
        if "workflowRunName" in scope:
            mixed = [key for key in ("project", "component", "environment") if key in scope]
            if mixed:
                raise ValueError(
                    "searchScope.workflowRunName cannot be combined with " + ", ".join(mixed)
                )
            return {**data, "searchScope": WorkflowSearchScope.model_validate(scope)}
        return {**data, "searchScope": ComponentSearchScope.model_validate(scope)}


class LogsQueryRequest(_ScopedQuery):
    model_config = ConfigDict(extra="ignore", json_schema_extra={"required": ["startTime", "endTime", "searchScope"]})
    startTime: StrictStr | None = None
    endTime: StrictStr | None = None
    limit: StrictInt | None = None
    sortOrder: StrictStr | None = None
    logLevels: list[StrictStr] | None = None
    searchPhrase: StrictStr | None = None
    cursor: StrictStr | None = None  # extension: the `nextCursor` of the previous page


class EventsQueryRequest(_ScopedQuery):
    model_config = ConfigDict(extra="ignore", json_schema_extra={"required": ["startTime", "endTime", "searchScope"]})
    startTime: StrictStr | None = None
    endTime: StrictStr | None = None
    limit: StrictInt | None = None
    sortOrder: StrictStr | None = None
    cursor: StrictStr | None = None


class MetricsQueryRequest(_Bind):
    model_config = ConfigDict(
        extra="ignore", json_schema_extra={"required": ["metric", "startTime", "endTime", "searchScope"]}
    )
    metric: StrictStr | None = None
    startTime: StrictStr | None = None
    endTime: StrictStr | None = None
    step: StrictStr | None = None
    searchScope: ComponentSearchScope | None = None


class RuntimeTopologyRequest(_Bind):
    model_config = ConfigDict(extra="ignore", json_schema_extra={"required": ["searchScope", "startTime", "endTime"]})
    searchScope: ComponentSearchScope | None = None
    startTime: StrictStr | None = None
    endTime: StrictStr | None = None
    includeGateways: StrictBool | None = None
    includeExternal: StrictBool | None = None


class TracesQueryRequest(_Bind):
    model_config = ConfigDict(extra="ignore", json_schema_extra={"required": ["startTime", "endTime", "searchScope"]})
    startTime: StrictStr | None = None
    endTime: StrictStr | None = None
    limit: StrictInt | None = None
    sortOrder: StrictStr | None = None
    searchScope: ComponentSearchScope | None = None
    includeAttributes: StrictBool | None = None


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
    entry: dict[str, Any] = {"timestamp": format_rfc3339(record.ts_ns), "log": record.body}
    if record.level:
        entry["level"] = record.level
    entry["metadata"] = _log_metadata(record.identity)
    # Extension: trace-to-log correlation.
    entry.update(_present({"traceId": record.trace_id, "spanId": record.span_id}))
    return entry


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


def trace_entry(trace: TraceSummary) -> dict[str, Any]:
    return {
        "traceId": trace.trace_id,
        "traceName": trace.name,
        "spanCount": trace.span_count,
        "rootSpanId": trace.root_span_id,
        "rootSpanName": trace.root_span_name,
        "rootSpanKind": trace.root_span_kind,
        "startTime": format_rfc3339(trace.start_ns),
        "endTime": format_rfc3339(trace.end_ns),
        "durationNs": trace.end_ns - trace.start_ns,
        "hasErrors": trace.has_errors,
    }


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
    return {
        key: [{"timestamp": stamps[ts], "value": value} for ts, value in points] for key, points in series.items()
    }


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
    nodes = [{**_node_ref(node.ref), **({"metrics": _metrics(node.metrics)} if node.metrics else {})}
             for node in topology.nodes]
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
