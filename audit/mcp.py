"""The record of one MCP tool call: surface `mcp`, action `mcp.<tool>`, operation id the tool's name, category
`access` (every tool reads; `authorization` when the call was denied), the result by outcome, and the resource
the tool's scope arguments name (namespace, project, component, environment, a workflow run). The caller and
the request facts come from the HTTP request that carried the call, as for REST (audit/actors.py, context.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from access.model import Subject
from audit.actors import ANONYMOUS, actor_of
from audit.context import request_facts
from audit.trail import new_event_id
from domain.audit import AuditRecord, AuditResource
from domain.timeutil import now_ns

MAX_ARGUMENT_CHARS = 253
MAX_TOOL_NAME_CHARS = 64


def _argument(arguments: Mapping[str, Any], name: str) -> str:
    value = arguments.get(name)
    return "".join(ch for ch in value[:MAX_ARGUMENT_CHARS] if ch.isprintable()) if isinstance(value, str) else ""


def tool_resource(tool: str, arguments: Mapping[str, Any]) -> AuditResource | None:
    """The scope a tool call asked about: its most specific level is the type (a workflow run, a component, a
    project, a namespace); a cluster-wide tool (platform or audit logs) names its family; None when nothing."""
    namespace, project = _argument(arguments, "namespace"), _argument(arguments, "project")
    component, environment = _argument(arguments, "component"), _argument(arguments, "environment")
    run = _argument(arguments, "workflow_run_name")
    if run:
        kind, name = "workflowrun", run
    elif component:
        kind, name = "component", component
    elif project:
        kind, name = "project", project
    elif namespace:
        kind, name = "namespace", namespace
    elif tool in ("query_platform_logs", "query_audit_logs"):
        return AuditResource(type=tool.removeprefix("query_").replace("_", ""))
    else:
        return None
    # Upstream records an environment dual-scoped, `{namespace}/{name}`, as authorization evaluated it.
    scoped_environment = f"{namespace}/{environment}" if namespace and environment else environment
    return AuditResource(
        type=kind,
        namespace=namespace,
        project=project,
        component=component,
        environment=scoped_environment,
        name=name,
    )


def tool_call_record(
    tool: str,
    arguments: Mapping[str, Any],
    subject: Subject | None,
    scope: Mapping[str, Any] | None,
    result: str,
    *,
    producer: str = "",
    trust_forwarded_for: bool = False,
) -> AuditRecord:
    """`result` is success, failure or denied. `scope` is the ASGI scope of the HTTP request that carried the
    call (None when the transport was not HTTP)."""
    facts = request_facts(scope or {}, trust_forwarded_for=trust_forwarded_for)
    name = "".join(ch for ch in tool[:MAX_TOOL_NAME_CHARS] if ch.isprintable())
    return AuditRecord(
        event_id=new_event_id(),
        time_ns=now_ns(),
        actor=actor_of(subject) if subject is not None else ANONYMOUS,
        action=f"mcp.{name}",
        category="authorization" if result == "denied" else "access",
        result=result,
        surface="mcp",
        producer=producer,
        operation_id=name,
        request_id=facts.request_id,
        source_ip=facts.source_ip,
        user_agent=facts.user_agent,
        http_method=facts.method,
        http_path=facts.path,
        resource=tool_resource(name, arguments),
    )
