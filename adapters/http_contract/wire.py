"""The adapter contract's JSON, both ways: domain queries -> adapter requests -> domain queries, and domain
results -> adapter answers -> domain results. Pure functions; the client (adapters/http) and the server
(observer/adapter_serve.py) share them, so the two halves cannot drift apart.

The contract's shapes are OpenChoreo's (adapters/http_contract/specs). Where our records carry more than the contract
names, the extra travels as extension fields, which the specs allow (no schema closes its properties) and a
foreign adapter simply never sends:

- requests: `cursor` (our opaque page cursor); a workflow scope always carries the key `workflowRunName`, even
  empty, so a namespace-wide workflow scope is told from a namespace-wide component scope (the contract's two
  scopes are otherwise the same `{namespace}`).
- answers: `nextCursor`; on log lines `traceId`, `spanId`, and on workflow lines the same `metadata` as a
  component line plus `workflowRunName` and `taskName`; on spans a `metadata` with the span's scope (a foreign
  adapter's spans are labelled from their `resourceAttributes` instead).

Times are RFC3339 with up to nine fractional digits both ways, so nanoseconds survive the trip.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from domain.identity import identity_from_attributes
from domain.model import (
    ComponentScope,
    EdgeMetrics,
    EventRecord,
    EventsQuery,
    Identity,
    LogRecord,
    LogsQuery,
    MetricFamily,
    MetricSeries,
    MetricsQuery,
    NodeRef,
    Page,
    Scope,
    SpanRecord,
    SpansQuery,
    TimeRange,
    Topology,
    TopologyEdge,
    TopologyNode,
    TopologyQuery,
    TracesQuery,
    TraceSummary,
    WorkflowScope,
)
from domain.timeutil import format_rfc3339, parse_go_duration, parse_rfc3339

#: The errorCode our adapter server gives a cursor it did not issue (an extension: the contract has no cursor),
#: so the client can tell "your cursor is wrong" (the caller's 400) from "your request is wrong" (our bug).
INVALID_CURSOR_CODE = "OBS-ADAPTER-INVALID-CURSOR"

_SCOPE_METADATA = (
    ("componentName", "component"),
    ("projectName", "project"),
    ("environmentName", "environment"),
    ("namespaceName", "namespace"),
    ("componentUid", "component_uid"),
    ("projectUid", "project_uid"),
    ("environmentUid", "environment_uid"),
)
_RECORD_METADATA = (
    *_SCOPE_METADATA,
    ("containerName", "container"),
    ("podName", "pod"),
    ("podNamespace", "pod_namespace"),
    ("workflowRunName", "workflow_run"),
    ("taskName", "task"),
)
_EVENT_OBJECT = (("objectKind", "object_kind"), ("objectName", "object_name"), ("objectNamespace", "object_namespace"))


# ------------------------------------------------------------------------------------------------ shared parts


def _present(pairs: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in pairs.items() if value not in ("", None)}


def time_range(range_: TimeRange) -> dict[str, str]:
    return {"startTime": format_rfc3339(range_.start_ns), "endTime": format_rfc3339(range_.end_ns)}


def parse_range(body: Mapping[str, Any]) -> TimeRange:
    """ValueError when a time is not RFC3339 (the caller's 400)."""
    return TimeRange(parse_rfc3339(str(body["startTime"])), parse_rfc3339(str(body["endTime"])))


def identity_metadata(identity: Identity) -> dict[str, str]:
    """An identity as the contract's `metadata` object (empty fields left out)."""
    return _present({key: getattr(identity, field) for key, field in _RECORD_METADATA})


def identity_of(metadata: Any) -> Identity:
    """`identity_metadata` read back; anything that is not a string is ignored."""
    if not isinstance(metadata, Mapping):
        return Identity()
    values = {field: metadata.get(key) for key, field in _RECORD_METADATA}
    found: dict[str, Any] = {field: value for field, value in values.items() if isinstance(value, str)}
    return Identity(**found)


def component_scope(scope: ComponentScope) -> dict[str, str]:
    """The logs and metrics contracts' component scope (UIDs under `*Uid`)."""
    return {
        "namespace": scope.namespace,
        **_present(
            {
                "projectUid": scope.project_uid,
                "componentUid": scope.component_uid,
                "environmentUid": scope.environment_uid,
            }
        ),
    }


def search_scope(scope: Scope) -> dict[str, str]:
    if isinstance(scope, WorkflowScope):
        # The key is always sent (see the module docstring): it is what makes this a workflow scope.
        return {
            "namespace": scope.namespace,
            "workflowRunName": scope.workflow_run,
            **_present({"taskName": scope.task}),
        }
    return component_scope(scope)


def parse_scope(scope: Mapping[str, Any]) -> Scope:
    if "workflowRunName" in scope or "taskName" in scope:
        return WorkflowScope(
            str(scope["namespace"]), str(scope.get("workflowRunName") or ""), str(scope.get("taskName") or "")
        )
    return parse_component_scope(scope)


def parse_component_scope(scope: Mapping[str, Any]) -> ComponentScope:
    return ComponentScope(
        str(scope["namespace"]),
        str(scope.get("projectUid") or ""),
        str(scope.get("componentUid") or ""),
        str(scope.get("environmentUid") or ""),
    )


def _paged(body: dict[str, Any], limit: int, sort: str, cursor: str) -> dict[str, Any]:
    body["limit"] = limit
    body["sortOrder"] = sort
    if cursor:
        body["cursor"] = cursor
    return body


def _sort(body: Mapping[str, Any]) -> Any:
    return body.get("sortOrder") or "desc"


def _page_parts(body: Mapping[str, Any]) -> tuple[int, int, str]:
    return int(body.get("total") or 0), int(body.get("tookMs") or 0), str(body.get("nextCursor") or "")


def _page_body(page: Page[Any], key: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
    body: dict[str, Any] = {key: entries, "total": page.total, "tookMs": page.took_ms}
    if page.next_cursor:
        body["nextCursor"] = page.next_cursor
    return body


# ------------------------------------------------------------------------------------------------ logs, events


def logs_request(query: LogsQuery) -> dict[str, Any]:
    body: dict[str, Any] = {"searchScope": search_scope(query.scope), **time_range(query.range)}
    if query.phrase:
        body["searchPhrase"] = query.phrase
    if query.levels:
        body["logLevels"] = list(dict.fromkeys(query.levels))
    return _paged(body, query.limit, query.sort, query.cursor)


def parse_logs_request(body: Mapping[str, Any]) -> LogsQuery:
    return LogsQuery(
        scope=parse_scope(body["searchScope"]),
        range=parse_range(body),
        limit=int(body.get("limit") or 100),
        sort=_sort(body),
        levels=tuple(body.get("logLevels") or ()),
        phrase=str(body.get("searchPhrase") or ""),
        cursor=str(body.get("cursor") or ""),
    )


def log_entry(record: LogRecord) -> dict[str, Any]:
    entry: dict[str, Any] = {"timestamp": format_rfc3339(record.ts_ns), "log": record.body}
    if record.level:
        entry["level"] = record.level
    entry["metadata"] = identity_metadata(record.identity)
    entry.update(_present({"traceId": record.trace_id, "spanId": record.span_id}))
    return entry


def parse_log_entry(entry: Mapping[str, Any]) -> LogRecord:
    return LogRecord(
        ts_ns=parse_rfc3339(str(entry["timestamp"])),
        body=str(entry.get("log") or ""),
        identity=identity_of(entry.get("metadata")),
        level=str(entry.get("level") or ""),
        trace_id=str(entry.get("traceId") or ""),
        span_id=str(entry.get("spanId") or ""),
    )


def logs_response(page: Page[LogRecord]) -> dict[str, Any]:
    return _page_body(page, "logs", [log_entry(record) for record in page.items])


def parse_logs_response(body: Mapping[str, Any]) -> Page[LogRecord]:
    total, took, cursor = _page_parts(body)
    return Page([parse_log_entry(entry) for entry in body.get("logs") or ()], total, took, cursor)


def events_request(query: EventsQuery) -> dict[str, Any]:
    body: dict[str, Any] = {"searchScope": search_scope(query.scope), **time_range(query.range)}
    return _paged(body, query.limit, query.sort, query.cursor)


def parse_events_request(body: Mapping[str, Any]) -> EventsQuery:
    return EventsQuery(
        scope=parse_scope(body["searchScope"]),
        range=parse_range(body),
        limit=int(body.get("limit") or 100),
        sort=_sort(body),
        cursor=str(body.get("cursor") or ""),
    )


def event_entry(record: EventRecord) -> dict[str, Any]:
    entry: dict[str, Any] = {"timestamp": format_rfc3339(record.ts_ns), "message": record.message}
    entry.update(_present({"type": record.type, "reason": record.reason}))
    entry["metadata"] = {
        **identity_metadata(record.identity),
        **_present({key: getattr(record, field) for key, field in _EVENT_OBJECT}),
    }
    return entry


def parse_event_entry(entry: Mapping[str, Any]) -> EventRecord:
    metadata = entry.get("metadata") if isinstance(entry.get("metadata"), Mapping) else {}
    assert isinstance(metadata, Mapping)
    return EventRecord(
        ts_ns=parse_rfc3339(str(entry["timestamp"])),
        message=str(entry.get("message") or ""),
        identity=identity_of(metadata),
        type=str(entry.get("type") or ""),
        reason=str(entry.get("reason") or ""),
        **{field: str(metadata.get(key) or "") for key, field in _EVENT_OBJECT},
    )


def events_response(page: Page[EventRecord]) -> dict[str, Any]:
    return _page_body(page, "events", [event_entry(record) for record in page.items])


def parse_events_response(body: Mapping[str, Any]) -> Page[EventRecord]:
    total, took, cursor = _page_parts(body)
    return Page([parse_event_entry(entry) for entry in body.get("events") or ()], total, took, cursor)


# ------------------------------------------------------------------------------------------------ traces


def trace_scope(scope: ComponentScope) -> dict[str, str]:
    """The tracing contract's scope: the field names are `project`, `component`, `environment`, the values UIDs
    (observer-contract-notes §5.3)."""
    return {
        "namespace": scope.namespace,
        **_present(
            {"project": scope.project_uid, "component": scope.component_uid, "environment": scope.environment_uid}
        ),
    }


def parse_trace_scope(scope: Mapping[str, Any]) -> ComponentScope:
    return ComponentScope(
        str(scope["namespace"]),
        str(scope.get("project") or ""),
        str(scope.get("component") or ""),
        str(scope.get("environment") or ""),
    )


def traces_request(query: TracesQuery) -> dict[str, Any]:
    body: dict[str, Any] = {"searchScope": trace_scope(query.scope), **time_range(query.range)}
    return _paged(body, query.limit, query.sort, "")


def parse_traces_request(body: Mapping[str, Any]) -> TracesQuery:
    return TracesQuery(
        scope=parse_trace_scope(body["searchScope"]),
        range=parse_range(body),
        limit=int(body.get("limit") or 100),
        sort=_sort(body),
    )


def spans_request(query: SpansQuery) -> dict[str, Any]:
    """Attributes are always asked for: a SpanRecord carries them."""
    body: dict[str, Any] = {"searchScope": trace_scope(query.scope), **time_range(query.range)}
    body["includeAttributes"] = True
    return _paged(body, query.limit, query.sort, "")


def parse_spans_request(trace_id: str, body: Mapping[str, Any]) -> tuple[SpansQuery, bool]:
    """The query, and whether attributes were asked for."""
    query = SpansQuery(
        trace_id=trace_id,
        scope=parse_trace_scope(body["searchScope"]),
        range=parse_range(body),
        limit=int(body.get("limit") or 100),
        sort=_sort(body),
    )
    return query, bool(body.get("includeAttributes"))


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


def parse_trace_entry(entry: Mapping[str, Any]) -> TraceSummary:
    return TraceSummary(
        trace_id=str(entry.get("traceId") or ""),
        name=str(entry.get("traceName") or ""),
        span_count=int(entry.get("spanCount") or 0),
        root_span_id=str(entry.get("rootSpanId") or ""),
        root_span_name=str(entry.get("rootSpanName") or ""),
        root_span_kind=str(entry.get("rootSpanKind") or ""),
        start_ns=parse_rfc3339(str(entry["startTime"])),
        end_ns=parse_rfc3339(str(entry["endTime"])),
        has_errors=bool(entry.get("hasErrors")),
    )


def traces_response(page: Page[TraceSummary]) -> dict[str, Any]:
    return _page_body(page, "traces", [trace_entry(trace) for trace in page.items])


def parse_traces_response(body: Mapping[str, Any]) -> Page[TraceSummary]:
    total, took, _ = _page_parts(body)
    return Page([parse_trace_entry(entry) for entry in body.get("traces") or ()], total, took)


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
        entry["attributes"] = dict(span.attributes)
        entry["resourceAttributes"] = dict(span.resource)
    entry["metadata"] = identity_metadata(span.identity)
    return entry


def parse_span_entry(trace_id: str, entry: Mapping[str, Any]) -> SpanRecord:
    status = entry.get("status") if isinstance(entry.get("status"), Mapping) else {}
    assert isinstance(status, Mapping)
    attributes = entry.get("attributes") if isinstance(entry.get("attributes"), Mapping) else {}
    resource = entry.get("resourceAttributes") if isinstance(entry.get("resourceAttributes"), Mapping) else {}
    assert isinstance(attributes, Mapping) and isinstance(resource, Mapping)
    metadata = entry.get("metadata")
    identity = identity_of(metadata) if isinstance(metadata, Mapping) else identity_from_attributes(resource)
    return SpanRecord(
        trace_id=trace_id,
        span_id=str(entry.get("spanId") or ""),
        parent_span_id=str(entry.get("parentSpanId") or ""),
        name=str(entry.get("spanName") or ""),
        kind=str(entry.get("spanKind") or ""),
        start_ns=parse_rfc3339(str(entry["startTime"])),
        end_ns=parse_rfc3339(str(entry["endTime"])),
        identity=identity,
        status_code=str(status.get("code") or "unset"),
        status_message=str(status.get("message") or ""),
        attributes=dict(attributes),
        resource=dict(resource),
    )


def spans_response(page: Page[SpanRecord], include_attributes: bool) -> dict[str, Any]:
    return _page_body(page, "spans", [span_entry(span, include_attributes) for span in page.items])


def parse_spans_response(trace_id: str, body: Mapping[str, Any]) -> Page[SpanRecord]:
    total, took, _ = _page_parts(body)
    return Page([parse_span_entry(trace_id, entry) for entry in body.get("spans") or ()], total, took)


# ------------------------------------------------------------------------------------------------ metrics


def format_step(step_ns: int) -> str:
    """A Go duration string for the step (whole seconds when it is, else nanoseconds)."""
    return f"{step_ns // 10**9}s" if step_ns % 10**9 == 0 else f"{step_ns}ns"


def metrics_request(query: MetricsQuery) -> dict[str, Any]:
    return {
        "metric": query.family,
        **time_range(query.range),
        "step": format_step(query.step_ns),
        "searchScope": component_scope(query.scope),
    }


def parse_metrics_request(body: Mapping[str, Any], default_step_ns: int) -> MetricsQuery:
    """ValueError on a bad time or step (the caller's 400)."""
    step = body.get("step")
    family: MetricFamily = "http" if body["metric"] == "http" else "resource"
    return MetricsQuery(
        family=family,
        scope=parse_component_scope(body["searchScope"]),
        range=parse_range(body),
        step_ns=parse_go_duration(str(step)) if step else default_step_ns,
    )


def metrics_response(series: MetricSeries) -> dict[str, list[dict[str, Any]]]:
    return {
        key: [{"timestamp": format_rfc3339(ts), "value": value} for ts, value in points]
        for key, points in series.items()
    }


def parse_metrics_response(body: Mapping[str, Any]) -> MetricSeries:
    return {
        str(key): [(parse_rfc3339(str(item["timestamp"])), float(item["value"])) for item in points]
        for key, points in body.items()
        if isinstance(points, list)
    }


# ------------------------------------------------------------------------------------------------ topology

_EDGE_METRICS = (
    ("requestCount", "request_count"),
    ("unsuccessfulRequestCount", "unsuccessful_request_count"),
    ("meanLatency", "mean_latency"),
    ("latencyP50", "latency_p50"),
    ("latencyP90", "latency_p90"),
    ("latencyP99", "latency_p99"),
)
#: NodeRef fields by the contract's names; `gatewayName` and `externalHost` are the gateway's and the host's.
_NODE_FIELDS = (
    ("component", "component"),
    ("componentUid", "component_uid"),
    ("project", "project"),
    ("projectUid", "project_uid"),
    ("namespace", "namespace"),
    ("gatewayName", "name"),
    ("externalHost", "host"),
)
#: What each node kind must carry (the spec's `required`), sent even when empty.
_NODE_REQUIRED = {"component": ("component", "componentUid"), "gateway": ("gatewayName",), "external": ()}


def topology_request(query: TopologyQuery) -> dict[str, Any]:
    scope = query.scope
    return {
        "searchScope": {
            "namespace": scope.namespace,
            "projectUid": scope.project_uid,
            "environmentUid": scope.environment_uid,
            **_present({"componentUid": scope.component_uid}),
        },
        **time_range(query.range),
        "includeGateways": query.include_gateways,
        "includeExternal": query.include_external,
    }


def parse_topology_request(body: Mapping[str, Any]) -> TopologyQuery:
    return TopologyQuery(
        scope=parse_component_scope(body["searchScope"]),
        range=parse_range(body),
        include_gateways=bool(body.get("includeGateways", True)),
        include_external=bool(body.get("includeExternal", True)),
    )


def node_ref(ref: NodeRef) -> dict[str, Any]:
    """A node as the contract's NodeRef (every field we know is sent: the spec's, and those it leaves out for a
    kind, such as a gateway's project name, as extensions)."""
    entry: dict[str, Any] = {"kind": ref.kind}
    entry.update({key: getattr(ref, field) for key, field in _NODE_FIELDS if getattr(ref, field)})
    for key in _NODE_REQUIRED[ref.kind]:
        entry.setdefault(key, "")
    return entry


def parse_node_ref(entry: Mapping[str, Any]) -> NodeRef:
    kind = entry.get("kind")
    if kind not in _NODE_REQUIRED:
        raise ValueError(f"unknown node kind {kind!r}")
    values = {field: entry.get(key) for key, field in _NODE_FIELDS}
    return NodeRef(kind=kind, **{field: value for field, value in values.items() if isinstance(value, str)})


def edge_metrics(metrics: EdgeMetrics) -> dict[str, float]:
    return {key: getattr(metrics, field) for key, field in _EDGE_METRICS}


def parse_edge_metrics(entry: Mapping[str, Any]) -> EdgeMetrics:
    return EdgeMetrics(**{field: float(entry.get(key) or 0.0) for key, field in _EDGE_METRICS})


def _edge_label(ref: NodeRef) -> str:
    if ref.kind == "gateway":
        return f"gateway:{ref.name}"
    if ref.kind == "external":
        return f"external:{ref.host or ref.component_uid}"
    return ref.component_uid


def topology_response(topology: Topology, query: TopologyQuery, generated_ns: int) -> dict[str, Any]:
    """The contract's answer; edge ids follow its UID convention (`src->dst`, `gateway:g->dst`, `src->external:h`)."""
    return {
        "nodes": [
            {**node_ref(node.ref), **({"metrics": edge_metrics(node.metrics)} if node.metrics else {})}
            for node in topology.nodes
        ],
        "edges": [
            {
                "id": f"{_edge_label(edge.source)}->{_edge_label(edge.target)}",
                "source": node_ref(edge.source),
                "target": node_ref(edge.target),
                "protocol": "http",
                "metrics": edge_metrics(edge.metrics),
            }
            for edge in topology.edges
        ],
        "summary": {**time_range(query.range), "generatedAt": format_rfc3339(generated_ns)},
    }


def parse_topology_response(body: Mapping[str, Any]) -> Topology:
    nodes = [
        TopologyNode(parse_node_ref(entry), parse_edge_metrics(entry["metrics"]) if "metrics" in entry else None)
        for entry in body.get("nodes") or ()
    ]
    edges = [
        TopologyEdge(
            parse_node_ref(entry["source"]),
            parse_node_ref(entry["target"]),
            parse_edge_metrics(entry.get("metrics") or {}),
        )
        for entry in body.get("edges") or ()
    ]
    return Topology(nodes, edges)
