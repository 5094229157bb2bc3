"""Records for the contract suite, built for one namespace so tests sharing a server never see each other."""

from __future__ import annotations

from dataclasses import replace

from devservers.sample import BASE_NS, COMPONENTS, ENVIRONMENTS, PROJECT_UID, identity
from domain.model import ComponentScope, EventRecord, Identity, LogRecord, SpanRecord, TimeRange, WorkflowScope

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
