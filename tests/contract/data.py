"""Records for the contract suite, built for one namespace so tests sharing a server never see each other."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from devservers.sample import BASE_NS, COMPONENTS, ENVIRONMENTS, PROJECT_UID, identity
from domain.audit import Actor, AuditRecord, AuditResource
from domain.model import (
    ComponentScope,
    EventRecord,
    Identity,
    LogRecord,
    SpanRecord,
    TimeRange,
    WorkflowScope,
    sorted_labels,
)

SECOND = 10**9
MS = 10**6
#: A window around all the records below.
WINDOW = TimeRange(BASE_NS - 3600 * SECOND, BASE_NS + 3600 * SECOND)


def who(namespace: str, component: str = "cart", environment: str = "prod") -> Identity:
    return identity(component, environment, namespace=namespace)


def cart_scope(namespace: str, environment: str = "prod") -> ComponentScope:
    return ComponentScope(namespace, PROJECT_UID, COMPONENTS["cart"], ENVIRONMENTS[environment])


def log(namespace: str, offset_ns: int, body: str, level: str = "INFO", **identity_args) -> LogRecord:
    return LogRecord(ts_ns=BASE_NS + offset_ns, body=body, level=level, identity=who(namespace, **identity_args))


def workflow_identity(namespace: str, run: str, task: str, container: str = "main") -> Identity:
    return Identity(
        namespace=namespace,
        pod=f"{run}-{task}-1234",
        pod_namespace=f"workflows-{namespace}",
        container=container,
        workflow_run=run,
        task=task,
    )


def workflow_scope(namespace: str, run: str = "", task: str = "") -> WorkflowScope:
    return WorkflowScope(namespace, run, task)


def span(
    namespace: str,
    trace: int,
    span_no: int,
    parent_no: int | None,
    start_ms: int,
    duration_ms: int,
    component: str = "cart",
    status: str = "unset",
    kind: str = "Server",
) -> SpanRecord:
    return SpanRecord(
        trace_id=f"{trace:032x}",
        span_id=f"{span_no:016x}",
        parent_span_id=f"{parent_no:016x}" if parent_no is not None else "",
        name=f"{component} op {span_no}",
        kind=kind,
        start_ns=BASE_NS + start_ms * MS,
        end_ns=BASE_NS + (start_ms + duration_ms) * MS,
        identity=who(namespace, component),
        status_code=status,
        status_message="boom" if status == "error" else "",
        attributes={"http.route": "/cart", "retries": 2},
        resource={"service.name": component},
    )


def event(
    namespace: str, offset_ns: int, reason: str, kind: str = "Pod", type_: str = "Normal", **identity_args
) -> EventRecord:
    return EventRecord(
        ts_ns=BASE_NS + offset_ns,
        message=f"{reason} happened",
        identity=who(namespace, **identity_args),
        type=type_,
        reason=reason,
        object_kind=kind,
        object_name="cart-prod-0",
        object_namespace=f"dp-{namespace}-prod",
    )


def moved(record: LogRecord, **changes) -> LogRecord:
    return replace(record, **changes)


# ------------------------------------------------------------------------------ platform logs and the audit trail
#
# A platform-logs or audit query without coordinate filters selects everything in its time range, and the OpenSearch
# subject is shared by the whole session: so each such test reads its own time slot (from its namespace's number),
# after the component tests' window (BASE_NS +- 1 h) and before the midnight they cross (BASE_NS + 9.7 h), and still
# names its own clusters, Kubernetes namespaces and actors.

SLOT = 20 * SECOND
_SLOTS = 1_000
_SLOTS_BASE = BASE_NS + 2 * 3600 * SECOND


def slot_start(namespace: str) -> int:
    """The first nanosecond of this test's own time slot (records go at most SLOT - 1 ns after it)."""
    return _SLOTS_BASE + int(namespace.removeprefix("ns")) % _SLOTS * SLOT


def slot_window(namespace: str) -> TimeRange:
    start = slot_start(namespace)
    return TimeRange(start, start + SLOT - 1)


def placed(
    namespace: str,
    cluster: str = "east",
    pod_namespace: str = "kube-system",
    pod: str = "coredns-0",
    container: str = "coredns",
    labels: Mapping[str, str] | None = None,
) -> Identity:
    """A platform workload's identity (no OpenChoreo scope), placed in this test's own clusters: `cluster` and
    `pod_namespace` are suffixed with the test's namespace."""
    return Identity(
        cluster=f"{cluster}-{namespace}" if cluster else "",
        node=f"node-{cluster}-1",
        pod_ip="10.1.2.3",
        image=f"registry.example/{container}:1.0",
        pod_namespace=f"{pod_namespace}-{namespace}" if pod_namespace else "",
        pod=pod,
        container=container,
        labels=sorted_labels(labels if labels is not None else {"app": container}),
    )


def platform_log(namespace: str, offset_ns: int, body: str, who: Identity, level: str = "INFO") -> LogRecord:
    """A line `offset_ns` into the test's slot."""
    return LogRecord(ts_ns=slot_start(namespace) + offset_ns, body=body, level=level, identity=who)


#: The claim a subject type's entitlements sit under in a record (access/subjects.py's defaults).
ENTITLEMENT_CLAIMS = {"user": "groups", "service_account": "sub"}


def audit(
    namespace: str,
    number: int,
    offset_ns: int,
    action: str = "incident.update",
    result: str = "success",
    category: str = "management",
    actor: str = "alice",
    actor_type: str = "user",
    entitlements: tuple[str, ...] = ("platform-admins",),
    surface: str = "rest",
    resource: AuditResource | None = None,
    issuer: str = "https://idp.example",
    **fields: Any,
) -> AuditRecord:
    """An audit record `offset_ns` into the test's slot, with an event id and actor of this test's own (`actor`
    suffixed with the namespace); `entitlements` are the values of the claim its type is entitled by (a user's
    `groups`, a service account's `sub`), as audit/actors.py records them."""
    return AuditRecord(
        event_id=f"evt-{namespace}-{number:05d}",
        time_ns=slot_start(namespace) + offset_ns,
        actor=Actor(
            type=actor_type,
            id=f"{actor}-{namespace}",
            issuer=issuer,
            session_id=f"sess-{actor}",
            entitlements=((ENTITLEMENT_CLAIMS.get(actor_type, "groups"), entitlements),) if entitlements else (),
        ),
        action=action,
        category=category,
        result=result,
        surface=surface,
        producer=fields.pop("producer", "observer"),
        resource=resource
        if resource is not None
        else AuditResource(type="incident", namespace=f"tenant-{namespace}", name=f"inc-{number}"),
        request_id=fields.pop("request_id", f"req-{namespace}-{number}"),
        **fields,
    )
