"""Every field of the OpenSearch documents, named once: what `documents.py` writes and reads, what `layout.py`
maps, what `queries.py` filters, sorts and aggregates on.

The documents are the shapes OpenChoreo's own collectors write (documents.py says which), so these names are an
interface with Fluent Bit's kubernetes filter and the OTel Collector's OpenSearch exporter: changing one here
changes it everywhere at once, and nowhere else spells it. Two kinds of name:

- keys (`LOG_BODY`, `K8S_POD_NAME`): one level of a document, what a dict literal uses;
- paths (`LOG_POD`, `EVENT_REASON`): dotted from the document's root, what the query DSL and the mappings use.
  Events and spans keep OTel attribute names as flat dotted keys inside `attributes` and `resource`, so their
  paths are the object's name, a dot, and the attribute's name.

Label and attribute names themselves (`openchoreo.dev/component-uid`, `k8s.namespace.name`) are the domain's
(domain/model.py, domain/identity.py), shared with every other backend.
"""

from __future__ import annotations

from domain.audit import document_paths
from domain.identity import (
    ARGO_NODE_NAME,
    ARGO_WORKFLOW_LABEL,
    K8S_NAMESPACE,
    K8S_POD,
    LABEL_WORKFLOW_RUN,
    SERVICE_NAME,
)
from domain.model import (
    LABEL_COMPONENT,
    LABEL_COMPONENT_UID,
    LABEL_ENVIRONMENT,
    LABEL_ENVIRONMENT_UID,
    LABEL_NAMESPACE,
    LABEL_PROJECT,
    LABEL_PROJECT_UID,
)


def path(*keys: str) -> str:
    """A dotted path from the document's root."""
    return ".".join(keys)


def dedot(key: str) -> str:
    """Fluent Bit's `Replace_Dots`: `openchoreo.dev/component-uid` -> `openchoreo_dev/component-uid`."""
    return key.replace(".", "_")


#: Which scope attribute (of domain.model.ComponentScope) each UID label holds.
_UID_LABELS = {
    "project_uid": LABEL_PROJECT_UID,
    "component_uid": LABEL_COMPONENT_UID,
    "environment_uid": LABEL_ENVIRONMENT_UID,
}

# ----------------------------------------------------------------------------------------------- every signal

#: When a log line was written or an event happened (`date_nanos` in our mappings).
TIMESTAMP = "@timestamp"
#: The tiebreaker of every sort: unique, so `search_after` never skips or repeats a record.
DOC_ID = "_id"
#: Trace context: a log line's correlation fields and a span's own ids share these names.
TRACE_ID = "traceId"
SPAN_ID = "spanId"

# ----------------------------------------------------------------------------------------------- logs (Fluent Bit)

LOG_TIME = "time"
LOG_STREAM = "stream"
LOG_BODY = "log"
#: Ours: the parsed level (Fluent Bit records carry none).
LOG_LEVEL = "level"
#: The object Fluent Bit's kubernetes filter adds, and its keys.
KUBERNETES = "kubernetes"
K8S_LABELS = "labels"
K8S_ANNOTATIONS = "annotations"
K8S_NAMESPACE_NAME = "namespace_name"
K8S_POD_NAME = "pod_name"
K8S_CONTAINER_NAME = "container_name"
#: Placement: the node (`host`), the pod's IP and the container's image, as the kubernetes filter names them.
K8S_HOST = "host"
K8S_POD_IP = "pod_ip"
K8S_CONTAINER_IMAGE = "container_image"
#: The cluster a line ran in: top level, what a Fluent Bit `record_modifier` (`Record cluster_name ...`) adds;
#: the kubernetes filter itself does not know the cluster's name.
CLUSTER_NAME = "cluster_name"
#: Ours: the pod's own label keys, exactly, when `kubernetes.labels` alone cannot say them (the identity's
#: OpenChoreo labels merged in that the pod did not carry, or a key whose dots do not survive `dedot`/`redot`).
#: Absent from Fluent Bit's records, whose `kubernetes.labels` are the pod's labels; unmapped (`_source` only).
LOG_LABEL_KEYS = "labelKeys"

LOG_LABELS = path(KUBERNETES, K8S_LABELS)
LOG_POD_NAMESPACE = path(KUBERNETES, K8S_NAMESPACE_NAME)
LOG_POD = path(KUBERNETES, K8S_POD_NAME)
LOG_CONTAINER = path(KUBERNETES, K8S_CONTAINER_NAME)
LOG_NODE = path(KUBERNETES, K8S_HOST)
LOG_POD_IP = path(KUBERNETES, K8S_POD_IP)
LOG_IMAGE = path(KUBERNETES, K8S_CONTAINER_IMAGE)
LOG_CLUSTER = CLUSTER_NAME


def log_label(label: str) -> str:
    """The path of a pod label in a log document (its key dedotted, as Fluent Bit writes it)."""
    return path(LOG_LABELS, dedot(label))


LOG_NAMESPACE = log_label(LABEL_NAMESPACE)
LOG_UIDS = {attribute: log_label(label) for attribute, label in _UID_LABELS.items()}
LOG_WORKFLOW_RUN = (log_label(LABEL_WORKFLOW_RUN), log_label(ARGO_WORKFLOW_LABEL))
LOG_TASK = path(KUBERNETES, K8S_ANNOTATIONS, dedot(ARGO_NODE_NAME))
#: The pod labels OpenChoreo's setup job maps as keywords (and ours too, with the workflow labels).
LOG_KEYWORD_LABELS = tuple(
    log_label(label)
    for label in (
        "build-name",
        LABEL_COMPONENT,
        LABEL_COMPONENT_UID,
        LABEL_ENVIRONMENT,
        LABEL_ENVIRONMENT_UID,
        LABEL_NAMESPACE,
        LABEL_PROJECT,
        LABEL_PROJECT_UID,
        LABEL_WORKFLOW_RUN,
        ARGO_WORKFLOW_LABEL,
        "target",
        "uuid",
        "version",
        "version_id",
    )
)

# ----------------------------------------------------------------------------------------------- events (ss4o)

EVENT_OBSERVED = "observedTimestamp"
EVENT_BODY = "body"
SEVERITY = "severity"
SEVERITY_TEXT = "text"
ATTRIBUTES = "attributes"
RESOURCE = "resource"
#: Attribute names inside `resource` and `attributes` (flat dotted keys, as the exporter writes them).
OBJECT_LABEL = "k8s.object.label."
OBJECT_ANNOTATION = "k8s.object.annotation."
OBJECT_KIND = "k8s.object.kind"
OBJECT_NAME = "k8s.object.name"
EVENT_REASON_ATTRIBUTE = "k8s.event.reason"

EVENT_SEVERITY = path(SEVERITY, SEVERITY_TEXT)
EVENT_REASON = path(ATTRIBUTES, EVENT_REASON_ATTRIBUTE)
EVENT_OBJECT_NAMESPACE = path(ATTRIBUTES, K8S_NAMESPACE)
EVENT_OBJECT_KIND = path(RESOURCE, OBJECT_KIND)
EVENT_OBJECT_NAME = path(RESOURCE, OBJECT_NAME)


def event_label(label: str) -> str:
    """The path of the involved object's label in an event document."""
    return path(RESOURCE, OBJECT_LABEL + label)


EVENT_NAMESPACE = event_label(LABEL_NAMESPACE)
EVENT_UIDS = {attribute: event_label(label) for attribute, label in _UID_LABELS.items()}
EVENT_WORKFLOW_RUN = (event_label(LABEL_WORKFLOW_RUN), event_label(ARGO_WORKFLOW_LABEL))
EVENT_TASK = path(RESOURCE, OBJECT_ANNOTATION + ARGO_NODE_NAME)
EVENT_KEYWORD_LABELS = tuple(
    event_label(label)
    for label in (
        LABEL_COMPONENT,
        LABEL_COMPONENT_UID,
        LABEL_PROJECT,
        LABEL_PROJECT_UID,
        LABEL_ENVIRONMENT,
        LABEL_ENVIRONMENT_UID,
        LABEL_NAMESPACE,
        LABEL_WORKFLOW_RUN,
        ARGO_WORKFLOW_LABEL,
    )
)

# ----------------------------------------------------------------------------------------------- spans (ss4o)

PARENT_SPAN_ID = "parentSpanId"
SPAN_NAME = "name"
SPAN_KIND = "kind"
START_TIME = "startTime"
END_TIME = "endTime"
STATUS = "status"
STATUS_CODE = "code"
STATUS_MESSAGE = "message"
SPAN_STATUS_CODE = path(STATUS, STATUS_CODE)


def span_resource(attribute: str) -> str:
    """The path of a resource attribute (or pod label merged into `resource`) in a span document."""
    return path(RESOURCE, attribute)


SPAN_NAMESPACE = span_resource(LABEL_NAMESPACE)
SPAN_UIDS = {attribute: span_resource(label) for attribute, label in _UID_LABELS.items()}
SPAN_KEYWORD_RESOURCE = tuple(
    span_resource(attribute)
    for attribute in (
        K8S_NAMESPACE,
        "k8s.node.name",
        K8S_POD,
        "k8s.pod.uid",
        LABEL_COMPONENT_UID,
        LABEL_ENVIRONMENT_UID,
        LABEL_NAMESPACE,
        LABEL_PROJECT_UID,
        SERVICE_NAME,
    )
)

# ----------------------------------------------------------------------------------------------- audit records

#: Audit documents are domain.audit.audit_document's JSON (upstream's snake_case keys): these are its paths.
AUDIT_TIME = "event_time"
AUDIT_EVENT_ID = "event_id"
AUDIT_RESULT = "result"
AUDIT_HTTP_METHOD = path("http", "method")
AUDIT_HTTP_PATH = path("http", "path")
#: The record's claim -> values object (`{"groups": [...]}`): every key under it is mapped as a keyword array.
AUDIT_ENTITLEMENTS = path("actor", "entitlements")
#: Ours, added to the stored document (audit_from_document ignores it on read): every claim's values in one
#: keyword array (domain Actor.entitlement_values), what an `actor.entitlements` filter and facet work on, since
#: upstream matches the values of every claim whatever the claim is called.
AUDIT_ENTITLEMENT_VALUES = "entitlementValues"
#: Each filter an AuditQuery takes (domain.audit.AUDIT_FILTERS and the exact-only ones) -> its document path.
AUDIT_FILTER_PATHS = document_paths(AUDIT_ENTITLEMENT_VALUES)
#: Where a phrase is searched (a case-sensitive substring of any of them): what a person types to find a record.
AUDIT_PHRASE_PATHS = (
    "action",
    "actor.id",
    "resource.type",
    "resource.namespace",
    "resource.environment",
    "resource.project",
    "resource.component",
    "resource.resource",
    "resource.name",
    AUDIT_HTTP_PATH,
    "user_agent",
    "source_ip",
    "request_id",
    "operation_id",
)
