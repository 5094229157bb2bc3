"""Records to OpenSearch documents and back, in the shapes OpenChoreo's own collectors write.

- Logs are Fluent Bit records (`kubernetes.*` with dedotted label keys and the pod's placement: `host`, `pod_ip`,
  `container_image`; `log` the raw line), the cluster as a top-level `cluster_name` (what a `record_modifier`
  adds), plus fields of ours: the record's `level`, `traceId`/`spanId` for trace-to-log correlation, and
  `labelKeys` where `kubernetes.labels` alone cannot say which labels were the pod's own (fields.LOG_LABEL_KEYS).
  Read back, a record's pod labels are `labelKeys`' where present, else every stored label with its DNS prefix
  redotted (exact: a prefix has no `_`) and its name kept as stored.
- Audit records are domain.audit.audit_document's JSON as it is, `_id` the event id, plus one field of ours
  (`entitlementValues`, every claim's values flattened, what the entitlements filter and facet use).
- Kubernetes events and spans are what the OpenTelemetry Collector's OpenSearch exporter writes in its default
  ss4o mode (flat dotted keys inside `attributes` and `resource`).

Logs are what collectors send most, so they also have a fast path to the bulk body: `log_actions` writes each
record's action and document lines directly (bytes, with the per-pod part and the per-second part serialised
once), byte for byte what `bulk.encode_action` makes of `log_id` and `log_document`, at a fraction of the cost.

Reading goes through `domain.identity.identity_from_attributes`, so a document written by Fluent Bit, by the
OTel Collector or by us gets the same identity the embedded backend would have given the record.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import orjson

from adapters.opensearch import fields
from adapters.opensearch.fields import dedot
from domain.audit import AuditRecord, audit_document
from domain.loglevel import detect_level
from domain.model import (
    LABEL_COMPONENT,
    LABEL_COMPONENT_UID,
    LABEL_ENVIRONMENT,
    LABEL_ENVIRONMENT_UID,
    LABEL_NAMESPACE,
    LABEL_PROJECT,
    LABEL_PROJECT_UID,
    EventRecord,
    Identity,
    LogRecord,
    SpanRecord,
    sorted_labels,
)
from domain.timeutil import format_rfc3339, parse_rfc3339

if TYPE_CHECKING:
    from adapters.opensearch.layout import IndexLayout
from domain.identity import (
    ARGO_NODE_NAME,
    K8S_CONTAINER,
    K8S_NAMESPACE,
    K8S_POD,
    LABEL_WORKFLOW_RUN,
    identity_from_attributes,
)

_STATUS_TO_DOC = {"ok": "Ok", "error": "Error", "unset": "Unset"}


def redot(key: str) -> str:
    """The inverse for label keys: the DNS prefix before `/` gets its dots back (label names after the `/`
    may hold `_` of their own, prefixes do not)."""
    prefix, slash, name = key.partition("/")
    return prefix.replace("_", ".") + slash + name if slash else key


def doc_id(*parts: object) -> str:
    """A deterministic `_id`: the same record always lands on the same document, so a retried bulk request
    overwrites instead of duplicating."""
    return hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=16).hexdigest()


def identity_labels(identity: Identity) -> dict[str, str]:
    """The pod labels (OpenChoreo's keys) an identity stands for; empty values are left out."""
    labels = {
        LABEL_NAMESPACE: identity.namespace,
        LABEL_PROJECT: identity.project,
        LABEL_PROJECT_UID: identity.project_uid,
        LABEL_COMPONENT: identity.component,
        LABEL_COMPONENT_UID: identity.component_uid,
        LABEL_ENVIRONMENT: identity.environment,
        LABEL_ENVIRONMENT_UID: identity.environment_uid,
        LABEL_WORKFLOW_RUN: identity.workflow_run,
    }
    return {key: value for key, value in labels.items() if value}


# ----------------------------------------------------------------------------------------------- logs


def _id_parts(who: Identity) -> tuple[str, ...]:
    """The identity's part of a log line's `_id`. The cluster joins only when known, so a line without one keeps
    the id it had before clusters were recorded (a batch buffered across an upgrade still overwrites itself)."""
    parts = (who.namespace, who.pod_namespace, who.pod, who.container, who.workflow_run)
    return (*parts, who.cluster) if who.cluster else parts


def log_id(log: LogRecord) -> str:
    return doc_id(log.ts_ns, *_id_parts(log.identity), log.body)


def log_document(log: LogRecord) -> dict[str, Any]:
    timestamp = format_rfc3339(log.ts_ns)
    document: dict[str, Any] = {
        fields.TIMESTAMP: timestamp,
        fields.LOG_TIME: timestamp,
        fields.LOG_STREAM: log.stream or "stdout",
        fields.LOG_BODY: log.body,
        fields.LOG_LEVEL: log.level,  # as the record says: "" (no level) stays "", as every backend keeps it
        fields.KUBERNETES: _kubernetes(log.identity),
        **_placement(log.identity),
    }
    if log.trace_id:
        document[fields.TRACE_ID] = log.trace_id
    if log.span_id:
        document[fields.SPAN_ID] = log.span_id
    return document


def _kubernetes(who: Identity) -> dict[str, Any]:
    """A log document's `kubernetes` object: what Fluent Bit's kubernetes filter adds, for this identity: the
    pod's own labels with the identity's OpenChoreo labels merged in (queries filter on those)."""
    labels = {dedot(key): value for key, value in who.labels}
    labels.update((dedot(key), value) for key, value in identity_labels(who).items())
    kubernetes: dict[str, Any] = {fields.K8S_LABELS: labels}
    for field, value in (
        (fields.K8S_NAMESPACE_NAME, who.pod_namespace),
        (fields.K8S_POD_NAME, who.pod),
        (fields.K8S_CONTAINER_NAME, who.container),
        (fields.K8S_HOST, who.node),
        (fields.K8S_POD_IP, who.pod_ip),
        (fields.K8S_CONTAINER_IMAGE, who.image),
    ):
        if value:
            kubernetes[field] = value
    if who.task:
        kubernetes[fields.K8S_ANNOTATIONS] = {dedot(ARGO_NODE_NAME): who.task}
    return kubernetes


def _placement(who: Identity) -> dict[str, Any]:
    """The top-level fields of ours that follow `kubernetes`: the cluster, and the pod's own label keys when
    `kubernetes.labels` cannot say them (fields.LOG_LABEL_KEYS)."""
    placement: dict[str, Any] = {}
    if who.cluster:
        placement[fields.CLUSTER_NAME] = who.cluster
    own = [key for key, _ in who.labels]
    merged = {dedot(key) for key in own} | {dedot(key) for key in identity_labels(who)}
    if sorted(own) != sorted(redot(key) for key in merged):
        placement[fields.LOG_LABEL_KEYS] = own
    return placement


def _pod_bytes(who: Identity) -> bytes:
    """The `kubernetes` object and the placement fields after it, serialised (the fast path's per-pod part)."""
    document = {fields.KUBERNETES: _kubernetes(who), **_placement(who)}
    return orjson.dumps(document)[len(orjson.dumps(fields.KUBERNETES)) + 2 : -1]


_NS = 1_000_000_000


def _log_line_template() -> bytes:
    """The bytes of one log action and document, with `%b` holes: the index action (which ends with the `_id`
    value's opening quote), the id, the timestamp twice, stream, body, level, the `kubernetes` object and the
    optional correlation fields. The keys come from `fields`, in `log_document`'s order."""

    def key(name: str) -> str:
        return orjson.dumps(name).decode()

    return (
        '%b%b"}}\n{'
        + key(fields.TIMESTAMP)
        + ':"%b",'
        + key(fields.LOG_TIME)
        + ':"%b",'
        + key(fields.LOG_STREAM)
        + ":%b,"
        + key(fields.LOG_BODY)
        + ":%b,"
        + key(fields.LOG_LEVEL)
        + ":%b,"
        + key(fields.KUBERNETES)
        + ":%b%b}\n"
    ).encode()


_LOG_LINE = _log_line_template()
_TRACE_ID_KEY = b"," + orjson.dumps(fields.TRACE_ID) + b":"
_SPAN_ID_KEY = b"," + orjson.dumps(fields.SPAN_ID) + b":"


def log_actions(layout: IndexLayout, logs: Sequence[LogRecord]) -> list[bytes]:
    """The bulk body lines of each record, `{"index": {"_index", "_id"}}` and the document: exactly
    `bulk.encode_action(layout.daily(layout.logs, ts_ns), log_id(log), log_document(log))`, without building
    the dicts. What repeats is serialised once: per pod, the `kubernetes` object and the identity part of the
    id; per second, the index name and the timestamp's date and time. Per line there remain one blake2b, one
    JSON string escape of the body and one formatting of bytes."""
    dumps = orjson.dumps
    blake2b = hashlib.blake2b
    out: list[bytes] = []
    append = out.append
    pods: dict[Identity, tuple[str, bytes]] = {}
    values: dict[str, bytes] = {}  # stream and level strings, JSON-encoded once
    last_second: int | None = None
    last_who: Identity | None = None
    base, action, id_head, kubernetes = "", b"", "", b""
    for log in logs:
        ts_ns = log.ts_ns
        second, nanos = divmod(ts_ns, _NS)
        if second != last_second:
            last_second = second
            base = format_rfc3339(second * _NS)[:-1]  # date and time of day, without the Z
            action = b'{"index":{"_index":%b,"_id":"' % dumps(layout.daily(layout.logs, ts_ns))
        who = log.identity
        if who is not last_who:
            last_who = who
            pod = pods.get(who)
            if pod is None:
                pod = pods[who] = ("".join(map(str, _id_parts(who))) + "", _pod_bytes(who))
            id_head, kubernetes = pod
        body = log.body
        stamp = (f"{base}.{nanos:09d}".rstrip("0") + "Z" if nanos else base + "Z").encode()
        stream = log.stream or "stdout"
        level = log.level
        stream_json = values.get(stream) or values.setdefault(stream, dumps(stream))
        level_json = values.get(level) or values.setdefault(level, dumps(level))
        correlation = b""
        if log.trace_id:
            correlation = _TRACE_ID_KEY + dumps(log.trace_id)
        if log.span_id:
            correlation += _SPAN_ID_KEY + dumps(log.span_id)
        append(
            _LOG_LINE
            % (
                action,
                blake2b(f"{ts_ns}\x1f{id_head}{body}".encode(), digest_size=16).hexdigest().encode(),
                stamp,
                stamp,
                stream_json,
                dumps(body),
                level_json,
                kubernetes,
                correlation,
            )
        )
    return out


def log_from_document(source: Mapping[str, Any], ts_ns: int) -> LogRecord:
    """A log document read back; `ts_ns` is its timestamp as the search sorted on it (nanoseconds, exact for
    `date` and `date_nanos` mappings alike), so the text of `@timestamp` need not be parsed again."""
    kubernetes = source.get(fields.KUBERNETES) or {}
    body = source.get(fields.LOG_BODY) or ""
    return LogRecord(
        ts_ns=ts_ns,
        body=body,
        identity=_log_identity(kubernetes, source.get(fields.CLUSTER_NAME) or "", source.get(fields.LOG_LABEL_KEYS)),
        # Fluent Bit records carry no level: derive it; ours say it, "" included.
        level=str(source[fields.LOG_LEVEL]) if fields.LOG_LEVEL in source else detect_level(body),
        trace_id=source.get(fields.TRACE_ID) or "",
        span_id=source.get(fields.SPAN_ID) or "",
        stream=source.get(fields.LOG_STREAM) or "",
    )


def _log_identity(kubernetes: Mapping[str, Any], cluster: str, label_keys: Any) -> Identity:
    pod = (
        tuple((kubernetes.get(fields.K8S_LABELS) or {}).items()),
        tuple((kubernetes.get(fields.K8S_ANNOTATIONS) or {}).items()),
        kubernetes.get(fields.K8S_NAMESPACE_NAME, ""),
        kubernetes.get(fields.K8S_POD_NAME, ""),
        kubernetes.get(fields.K8S_CONTAINER_NAME, ""),
        (
            str(cluster),
            str(kubernetes.get(fields.K8S_HOST) or ""),
            str(kubernetes.get(fields.K8S_POD_IP) or ""),
            str(kubernetes.get(fields.K8S_CONTAINER_IMAGE) or ""),
        ),
        tuple(map(str, label_keys)) if isinstance(label_keys, list) else None,
    )
    try:
        return _pod_identity(*pod)
    except TypeError:  # an unhashable label value (not something Kubernetes makes): skip the cache
        return _pod_identity.__wrapped__(*pod)


@lru_cache(maxsize=4096)
def _pod_identity(
    labels: tuple[tuple[str, Any], ...],
    annotations: tuple[tuple[str, Any], ...],
    namespace: str,
    pod: str,
    container: str,
    placement: tuple[str, str, str, str],
    label_keys: tuple[str, ...] | None,
) -> Identity:
    """The identity of a Fluent Bit record's pod. Cached: the lines of a page come from a handful of pods."""
    attributes: dict[str, Any] = {redot(key): value for key, value in labels}
    attributes.update((redot(key), value) for key, value in annotations)
    attributes[K8S_NAMESPACE], attributes[K8S_POD], attributes[K8S_CONTAINER] = namespace, pod, container
    cluster, node, pod_ip, image = placement
    return replace(
        identity_from_attributes(attributes),
        cluster=cluster,
        node=node,
        pod_ip=pod_ip,
        image=image,
        labels=_own_labels(dict(labels), label_keys),
    )


def _own_labels(stored: dict[str, Any], label_keys: tuple[str, ...] | None) -> tuple[tuple[str, str], ...]:
    """The pod's own labels: those `labelKeys` names where we wrote it, else every stored label, its key's DNS
    prefix given its dots back (`redot`: exact, a prefix has no `_`) and the name after `/` kept as stored."""
    if label_keys is None:
        return sorted_labels({redot(key): str(value) for key, value in stored.items() if value is not None})
    return sorted_labels({key: str(stored[dedot(key)]) for key in label_keys if stored.get(dedot(key)) is not None})


# ----------------------------------------------------------------------------------------------- audit records

#: OpenSearch refuses an `_id` longer than this many bytes.
_MAX_ID_BYTES = 512


def audit_id(record: AuditRecord) -> str:
    """The event id itself (a redelivered record overwrites itself; a producer's retry is the same record), or
    its digest when it is too long to be an `_id`."""
    if len(record.event_id.encode()) <= _MAX_ID_BYTES:
        return record.event_id
    return doc_id("audit", record.event_id)


def audit_source(record: AuditRecord) -> dict[str, Any]:
    """The stored document: the record's own JSON and, when it has entitlements, their values in one keyword array
    (fields.AUDIT_ENTITLEMENT_VALUES; a key audit_from_document ignores, so a read gives the record back)."""
    document = audit_document(record)
    if record.actor.entitlements:
        document[fields.AUDIT_ENTITLEMENT_VALUES] = list(record.actor.entitlement_values)
    return document


# ----------------------------------------------------------------------------------------------- events


def event_id(event: EventRecord) -> str:
    return doc_id(
        event.ts_ns, event.object_namespace, event.object_kind, event.object_name, event.reason, event.message
    )


def event_document(event: EventRecord) -> dict[str, Any]:
    timestamp = format_rfc3339(event.ts_ns)
    resource: dict[str, Any] = {
        fields.OBJECT_LABEL + key: value for key, value in identity_labels(event.identity).items()
    }
    if event.identity.task:
        resource[fields.OBJECT_ANNOTATION + ARGO_NODE_NAME] = event.identity.task
    if event.object_kind:
        resource[fields.OBJECT_KIND] = event.object_kind
    if event.object_name:
        resource[fields.OBJECT_NAME] = event.object_name
    attributes: dict[str, Any] = {fields.EVENT_REASON_ATTRIBUTE: event.reason}
    if event.object_namespace:
        attributes[K8S_NAMESPACE] = event.object_namespace
    return {
        fields.TIMESTAMP: timestamp,
        fields.EVENT_OBSERVED: timestamp,
        fields.EVENT_BODY: event.message,
        fields.SEVERITY: {fields.SEVERITY_TEXT: event.type},
        fields.ATTRIBUTES: attributes,
        fields.RESOURCE: resource,
    }


def event_from_document(source: Mapping[str, Any], ts_ns: int) -> EventRecord:
    """An event document read back; `ts_ns` as in `log_from_document`."""
    resource = _flat(source.get(fields.RESOURCE))
    attributes = _flat(source.get(fields.ATTRIBUTES))
    labels = {
        key[len(prefix) :]: value
        for key, value in resource.items()
        for prefix in (fields.OBJECT_LABEL, fields.OBJECT_ANNOTATION)
        if key.startswith(prefix)
    }
    return EventRecord(
        ts_ns=ts_ns,
        message=str(source.get(fields.EVENT_BODY) or ""),
        identity=identity_from_attributes({**resource, **attributes, **labels}),
        type=str((source.get(fields.SEVERITY) or {}).get(fields.SEVERITY_TEXT) or ""),
        reason=str(attributes.get(fields.EVENT_REASON_ATTRIBUTE) or ""),
        object_kind=str(resource.get(fields.OBJECT_KIND) or ""),
        object_name=str(resource.get(fields.OBJECT_NAME) or ""),
        object_namespace=str(attributes.get(K8S_NAMESPACE) or ""),
    )


# ----------------------------------------------------------------------------------------------- spans


def span_id(span: SpanRecord) -> str:
    return doc_id(span.trace_id, span.span_id)


def span_document(span: SpanRecord) -> dict[str, Any]:
    """An ss4o span. The identity's labels are merged into `resource`, where the Collector's k8sattributes
    processor would have put the pod labels, so queries find spans by the same keys either way."""
    resource = {str(key): _resource_value(value) for key, value in span.resource.items()}
    resource.update(identity_labels(span.identity))
    who = span.identity
    for key, value in ((K8S_NAMESPACE, who.pod_namespace), (K8S_POD, who.pod), (K8S_CONTAINER, who.container)):
        if value:
            resource.setdefault(key, value)
    status: dict[str, Any] = {fields.STATUS_CODE: _STATUS_TO_DOC.get(span.status_code, "Unset")}
    if span.status_message:
        status[fields.STATUS_MESSAGE] = span.status_message
    return {
        fields.TRACE_ID: span.trace_id,
        fields.SPAN_ID: span.span_id,
        fields.PARENT_SPAN_ID: span.parent_span_id,
        fields.SPAN_NAME: span.name,
        fields.SPAN_KIND: span.kind,
        fields.START_TIME: format_rfc3339(span.start_ns),
        fields.END_TIME: format_rfc3339(span.end_ns),
        fields.STATUS: status,
        fields.ATTRIBUTES: span.attributes,
        fields.RESOURCE: resource,
    }


def span_from_document(source: Mapping[str, Any]) -> SpanRecord:
    resource = _flat(source.get(fields.RESOURCE))
    status = source.get(fields.STATUS) or {}
    return SpanRecord(
        trace_id=source[fields.TRACE_ID],
        span_id=source[fields.SPAN_ID],
        parent_span_id=source.get(fields.PARENT_SPAN_ID) or "",
        name=source.get(fields.SPAN_NAME) or "",
        kind=source.get(fields.SPAN_KIND) or "Unspecified",
        start_ns=parse_rfc3339(source[fields.START_TIME]),
        end_ns=parse_rfc3339(source[fields.END_TIME]),
        identity=identity_from_attributes(resource),
        status_code=str(status.get(fields.STATUS_CODE) or "unset").lower(),
        status_message=str(status.get(fields.STATUS_MESSAGE) or ""),
        attributes=_flat(source.get(fields.ATTRIBUTES)),
        resource=resource,
    )


def _resource_value(value: Any) -> Any:
    """The exporter writes resource attributes as strings; lists and maps stay as they are."""
    return (
        value if isinstance(value, (str, list, dict)) else str(value).lower() if isinstance(value, bool) else str(value)
    )


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Flat dotted keys from a map whose keys may be dotted, nested, or both (a document indexed with nested
    objects reads back nested; the exporter writes flat keys)."""
    flat: dict[str, Any] = {}
    for key, value in (tree or {}).items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(_flat(value, path + "."))
        else:
            flat[path] = value
    return flat
