"""Records to OpenSearch documents and back, in the shapes OpenChoreo's own collectors write.

- Logs are Fluent Bit records (`kubernetes.*` with dedotted label keys, `log` the raw line) plus three fields of
  ours: a parsed `level` and `traceId`/`spanId` for trace-to-log correlation.
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
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import orjson

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

OBJECT_LABEL = "k8s.object.label."
OBJECT_ANNOTATION = "k8s.object.annotation."
_STATUS_TO_DOC = {"ok": "Ok", "error": "Error", "unset": "Unset"}


def dedot(key: str) -> str:
    """Fluent Bit's `Replace_Dots`: `openchoreo.dev/component-uid` -> `openchoreo_dev/component-uid`."""
    return key.replace(".", "_")


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


def log_id(log: LogRecord) -> str:
    who = log.identity
    return doc_id(log.ts_ns, who.namespace, who.pod_namespace, who.pod, who.container, who.workflow_run, log.body)


def log_document(log: LogRecord) -> dict[str, Any]:
    timestamp = format_rfc3339(log.ts_ns)
    document: dict[str, Any] = {
        "@timestamp": timestamp,
        "time": timestamp,
        "stream": log.stream or "stdout",
        "log": log.body,
        "level": log.level or detect_level(log.body),
        "kubernetes": _kubernetes(log.identity),
    }
    if log.trace_id:
        document["traceId"] = log.trace_id
    if log.span_id:
        document["spanId"] = log.span_id
    return document


def _kubernetes(who: Identity) -> dict[str, Any]:
    """A log document's `kubernetes` object: what Fluent Bit's kubernetes filter adds, for this identity."""
    kubernetes: dict[str, Any] = {
        "labels": {dedot(key): value for key, value in identity_labels(who).items()},
    }
    for field, value in (("namespace_name", who.pod_namespace), ("pod_name", who.pod), ("container_name", who.container)):
        if value:
            kubernetes[field] = value
    if who.task:
        kubernetes["annotations"] = {dedot(ARGO_NODE_NAME): who.task}
    return kubernetes


_NS = 1_000_000_000


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
                parts = (who.namespace, who.pod_namespace, who.pod, who.container, who.workflow_run)
                pod = pods[who] = ("".join(map(str, parts)) + "", dumps(_kubernetes(who)))
            id_head, kubernetes = pod
        body = log.body
        stamp = (f"{base}.{nanos:09d}".rstrip("0") + "Z" if nanos else base + "Z").encode()
        stream = log.stream or "stdout"
        level = log.level or detect_level(body)
        stream_json = values.get(stream) or values.setdefault(stream, dumps(stream))
        level_json = values.get(level) or values.setdefault(level, dumps(level))
        correlation = b""
        if log.trace_id:
            correlation = b',"traceId":' + dumps(log.trace_id)
        if log.span_id:
            correlation += b',"spanId":' + dumps(log.span_id)
        append(
            b'%b%b"}}\n{"@timestamp":"%b","time":"%b","stream":%b,"log":%b,"level":%b,"kubernetes":%b%b}\n'
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


def log_from_document(source: Mapping[str, Any]) -> LogRecord:
    kubernetes = source.get("kubernetes") or {}
    body = source.get("log") or ""
    return LogRecord(
        ts_ns=parse_rfc3339(source["@timestamp"]),
        body=body,
        identity=_log_identity(kubernetes),
        level=source.get("level") or detect_level(body),  # Fluent Bit records carry no level: derive it
        trace_id=source.get("traceId") or "",
        span_id=source.get("spanId") or "",
        stream=source.get("stream") or "",
    )


def _log_identity(kubernetes: Mapping[str, Any]) -> Identity:
    pod = (
        tuple((kubernetes.get("labels") or {}).items()),
        tuple((kubernetes.get("annotations") or {}).items()),
        kubernetes.get("namespace_name", ""),
        kubernetes.get("pod_name", ""),
        kubernetes.get("container_name", ""),
    )
    try:
        return _pod_identity(*pod)
    except TypeError:  # an unhashable label value (not something Kubernetes makes): skip the cache
        return _pod_identity.__wrapped__(*pod)


@lru_cache(maxsize=4096)
def _pod_identity(
    labels: tuple[tuple[str, Any], ...], annotations: tuple[tuple[str, Any], ...], namespace: str, pod: str, container: str
) -> Identity:
    """The identity of a Fluent Bit record's pod. Cached: the lines of a page come from a handful of pods."""
    attributes: dict[str, Any] = {redot(key): value for key, value in labels}
    attributes.update((redot(key), value) for key, value in annotations)
    attributes[K8S_NAMESPACE], attributes[K8S_POD], attributes[K8S_CONTAINER] = namespace, pod, container
    return identity_from_attributes(attributes)


# ----------------------------------------------------------------------------------------------- events


def event_id(event: EventRecord) -> str:
    return doc_id(event.ts_ns, event.object_namespace, event.object_kind, event.object_name, event.reason, event.message)


def event_document(event: EventRecord) -> dict[str, Any]:
    timestamp = format_rfc3339(event.ts_ns)
    resource: dict[str, Any] = {OBJECT_LABEL + key: value for key, value in identity_labels(event.identity).items()}
    if event.identity.task:
        resource[OBJECT_ANNOTATION + ARGO_NODE_NAME] = event.identity.task
    if event.object_kind:
        resource["k8s.object.kind"] = event.object_kind
    if event.object_name:
        resource["k8s.object.name"] = event.object_name
    attributes: dict[str, Any] = {"k8s.event.reason": event.reason}
    if event.object_namespace:
        attributes["k8s.namespace.name"] = event.object_namespace
    return {
        "@timestamp": timestamp,
        "observedTimestamp": timestamp,
        "body": event.message,
        "severity": {"text": event.type},
        "attributes": attributes,
        "resource": resource,
    }


def event_from_document(source: Mapping[str, Any]) -> EventRecord:
    resource = _flat(source.get("resource"))
    attributes = _flat(source.get("attributes"))
    labels = {
        key[len(prefix) :]: value
        for key, value in resource.items()
        for prefix in (OBJECT_LABEL, OBJECT_ANNOTATION)
        if key.startswith(prefix)
    }
    return EventRecord(
        ts_ns=parse_rfc3339(source["@timestamp"]),
        message=str(source.get("body") or ""),
        identity=identity_from_attributes({**resource, **attributes, **labels}),
        type=str((source.get("severity") or {}).get("text") or ""),
        reason=str(attributes.get("k8s.event.reason") or ""),
        object_kind=str(resource.get("k8s.object.kind") or ""),
        object_name=str(resource.get("k8s.object.name") or ""),
        object_namespace=str(attributes.get("k8s.namespace.name") or ""),
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
    status: dict[str, Any] = {"code": _STATUS_TO_DOC.get(span.status_code, "Unset")}
    if span.status_message:
        status["message"] = span.status_message
    return {
        "traceId": span.trace_id,
        "spanId": span.span_id,
        "parentSpanId": span.parent_span_id,
        "name": span.name,
        "kind": span.kind,
        "startTime": format_rfc3339(span.start_ns),
        "endTime": format_rfc3339(span.end_ns),
        "status": status,
        "attributes": span.attributes,
        "resource": resource,
    }


def span_from_document(source: Mapping[str, Any]) -> SpanRecord:
    resource = _flat(source.get("resource"))
    status = source.get("status") or {}
    return SpanRecord(
        trace_id=source["traceId"],
        span_id=source["spanId"],
        parent_span_id=source.get("parentSpanId") or "",
        name=source.get("name") or "",
        kind=source.get("kind") or "Unspecified",
        start_ns=parse_rfc3339(source["startTime"]),
        end_ns=parse_rfc3339(source["endTime"]),
        identity=identity_from_attributes(resource),
        status_code=str(status.get("code") or "unset").lower(),
        status_message=str(status.get("message") or ""),
        attributes=_flat(source.get("attributes")),
        resource=resource,
    )


def _resource_value(value: Any) -> Any:
    """The exporter writes resource attributes as strings; lists and maps stay as they are."""
    return value if isinstance(value, (str, list, dict)) else str(value).lower() if isinstance(value, bool) else str(value)


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
