"""Every name our records carry in Datadog, once: the tags and attributes `intake.py` writes and `query.py`
filters on, so a record shipped by our collector is found by the scope it was shipped with.

Scope keys travel as **tags** (`openchoreo.namespace:payments`): Datadog searches tags in logs, spans and
metrics alike without a facet having to be created first, and monitors group by them. Tag values are names and
UIDs, which Kubernetes already restricts to lowercase DNS labels, so Datadog's tag normalisation (lowercase, no
commas) leaves them as they are. The Argo task is free text matched as a substring, so it travels as a log
**attribute** (attribute values keep their case and characters). Datadog's own Kubernetes and unified-service
tags (`kube_namespace`, `pod_name`, `service`, `env`) are written too, so Datadog's UI shows the records where
its users look for them.
"""

from __future__ import annotations

from domain.audit import document_paths

#: Tag keys of the scope (tag values are the Identity's fields of the same name).
NAMESPACE = "openchoreo.namespace"
PROJECT = "openchoreo.project"
PROJECT_UID = "openchoreo.project_uid"
COMPONENT = "openchoreo.component"
COMPONENT_UID = "openchoreo.component_uid"
ENVIRONMENT = "openchoreo.environment"
ENVIRONMENT_UID = "openchoreo.environment_uid"
WORKFLOW_RUN = "openchoreo.workflow_run"
#: `component` or `workflow`: what produced the record. A component scope excludes workflow pods and a
#: workflow scope selects them with an exact tag match, rather than an existence test on WORKFLOW_RUN.
WORKLOAD = "openchoreo.workload"
WORKLOAD_COMPONENT = "component"
WORKLOAD_WORKFLOW = "workflow"
#: Datadog's Kubernetes integration tags (where the record ran: the Agent's out-of-the-box tags,
#: https://docs.datadoghq.com/containers/kubernetes/tag/; `kube_node` as the Agent tags a pod's node).
KUBE_NAMESPACE = "kube_namespace"
POD_NAME = "pod_name"
CONTAINER_NAME = "kube_container_name"
CLUSTER_NAME = "kube_cluster_name"
NODE = "kube_node"
IMAGE_NAME = "image_name"  # the image without its tag, as the Agent tags it (written for Datadog's UI)
IMAGE_TAG = "image_tag"
#: Datadog's unified service tags, filled from the component and the environment.
SERVICE = "service"
ENV = "env"

#: Which scope attribute (domain.model.ComponentScope) each UID tag holds.
SCOPE_UID_TAGS = {
    "project_uid": PROJECT_UID,
    "component_uid": COMPONENT_UID,
    "environment_uid": ENVIRONMENT_UID,
}
#: Identity field -> tag key, for every identity field that travels as a tag.
IDENTITY_TAGS = {
    "namespace": NAMESPACE,
    "project": PROJECT,
    "project_uid": PROJECT_UID,
    "component": COMPONENT,
    "component_uid": COMPONENT_UID,
    "environment": ENVIRONMENT,
    "environment_uid": ENVIRONMENT_UID,
    "workflow_run": WORKFLOW_RUN,
    "pod_namespace": KUBE_NAMESPACE,
    "pod": POD_NAME,
    "container": CONTAINER_NAME,
    "cluster": CLUSTER_NAME,
    "node": NODE,
}

# ----------------------------------------------------------------------------------------------- logs

#: Log attributes (top-level keys of an intake entry; searched as `@name`).
TASK = "openchoreo.task"  # the Argo node name: free text, matched as a substring
LEVEL = "level"  # our detected level, exactly (DEBUG, INFO, WARN, ERROR, FATAL, SEVERE)
TRACE_ID = "trace_id"  # 32 hex, as OTel writes it
SPAN_ID = "span_id"
DD_TRACE_ID = "dd.trace_id"  # Datadog's correlation key: the low 64 bits, in decimal
DD_SPAN_ID = "dd.span_id"
STREAM = "logger.stream"  # stdout | stderr | otlp
TIME_NS = "openchoreo.time_ns"  # the exact time in nanoseconds, as a string (Datadog keeps milliseconds)
#: Where a line ran, beyond the tags: attributes keep case and every character, which a pod label's value and
#: an image reference need (tags are lowercased). Labels are one array attribute of `key=value` strings, so a
#: label key's dots and slashes never read as an attribute path, `@kube_pod_labels:"k=v"` matches one pair
#: exactly, and a group-by on it counts every pair.
POD_IP = "kube_pod_ip"
IMAGE = "kube_container_image"  # the whole image reference, exactly
POD_LABELS = "kube_pod_labels"
#: Reserved attributes of a log entry.
MESSAGE = "message"
STATUS = "status"
SOURCE = "ddsource"
SOURCE_KEY = "source"  # how a search names what the intake's `ddsource` set
TAGS = "ddtags"
HOSTNAME = "hostname"
TIMESTAMP = "timestamp"
#: Our logs' `ddsource`; Kubernetes events are logs too, with `ddsource:kubernetes` (see EVENTS_SOURCE).
LOGS_SOURCE = "openchoreo"

#: Our levels -> Datadog's log status, so Datadog's status facet and colours agree with our level (SEVERE,
#: java.util.logging's error, would otherwise be remapped to `ok` by Datadog's status remapper).
LEVEL_STATUS = {
    "DEBUG": "debug",
    "INFO": "info",
    "WARN": "warn",
    "ERROR": "error",
    "FATAL": "critical",
    "SEVERE": "error",
}
#: Datadog's statuses -> our levels, for logs that did not come through our intake.
STATUS_LEVEL = {
    "emerg": "FATAL",
    "emergency": "FATAL",
    "alert": "FATAL",
    "critical": "FATAL",
    "error": "ERROR",
    "warn": "WARN",
    "warning": "WARN",
    "notice": "INFO",
    "info": "INFO",
    "ok": "INFO",
    "debug": "DEBUG",
}

# ----------------------------------------------------------------------------------------------- platform logs

#: Platform filter (domain.platform.PLATFORM_FILTERS) -> the facet a Logs Aggregate group-by counts it on; a
#: `labels.<key>` filter counts POD_LABELS pairs of that key, and `level` counts Datadog's `status`.
PLATFORM_FACETS = {
    "clusterInstance": CLUSTER_NAME,
    "namespace": KUBE_NAMESPACE,
    "podName": POD_NAME,
    "containerName": CONTAINER_NAME,
    "level": STATUS,
}

# ----------------------------------------------------------------------------------------------- audit

#: Audit records are logs with this source (domain.audit.AUDIT_SOURCE), their document's own keys (upstream's
#: snake_case) as top-level attributes (what Datadog's JSON parsing makes of the line a producer prints) and the
#: document as the message. Facets an operator adds for the Log Explorer: @action, @category, @result, @producer,
#: @surface, @operation_id, @source_ip, @user_agent, @request_id, @event_id, @actor.id, @actor.type,
#: @actor.issuer, @actor.session_id, @entitlementValues, @resource.* (the queries need none: they use attributes).
#: Ours, beside the document: every claim's values of `actor.entitlements` (a claim -> values object) in one
#: array, what the entitlements filter and its values use (upstream matches the values of every claim, and a
#: Datadog query cannot name "any key under an object"); audit_from_event ignores it.
AUDIT_ENTITLEMENT_VALUES = "entitlementValues"
#: Filter name (domain.audit.AUDIT_FILTERS, plus the exact-only ids) -> the attribute it matches.
AUDIT_ATTRIBUTES = document_paths(AUDIT_ENTITLEMENT_VALUES)
#: The document's top-level keys (domain.audit.audit_document), read back from a result's attributes.
AUDIT_DOCUMENT_KEYS = (
    "schema_version",
    "event_id",
    "event_time",
    "actor",
    "action",
    "category",
    "result",
    "request_id",
    "source_ip",
    "user_agent",
    "producer",
    "surface",
    "operation_id",
    "metadata",
    "http",
    "resource",
    "collector",
)

# ----------------------------------------------------------------------------------------------- events

#: Kubernetes events are kept as logs with this source, the way Datadog's own Kubernetes integration can
#: collect them (`kubernetes_events` as logs): the Events API has no cursor paging and no attribute search.
EVENTS_SOURCE = "kubernetes"
EVENT_TYPE = "kubernetes.event.type"  # Normal | Warning
EVENT_REASON = "kubernetes.event.reason"
OBJECT_KIND = "kubernetes.involved_object.kind"
OBJECT_NAME = "kubernetes.involved_object.name"
OBJECT_NAMESPACE = "kubernetes.involved_object.namespace"

# ----------------------------------------------------------------------------------------------- spans

#: Spans arrive over OTLP, so Datadog keeps resource attributes as span tags; our intake adds the scope tags
#: above as resource attributes (`openchoreo.namespace`), which Spans search reaches as `@openchoreo.namespace`.
SPAN_ATTRIBUTE_PREFIX = "@"
SPAN_TRACE_ID = "trace_id"
SPAN_ID_KEY = "span_id"
SPAN_START_NS = "openchoreo.start_ns"  # exact nanoseconds, as strings (Datadog keeps microseconds)
SPAN_END_NS = "openchoreo.end_ns"
#: The OTLP status message, as an attribute too: the OTLP intake keeps it only on error spans, as `error.msg`.
SPAN_STATUS_MESSAGE = "openchoreo.status_message"

# ----------------------------------------------------------------------------------------------- metrics

#: Metric series carry the same scope tags as logs (IDENTITY_TAGS), so a metrics query filters exactly like a
#: logs query. Our metric names are the OTel names (`http.server.request.duration`), which Datadog accepts.
