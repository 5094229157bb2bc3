"""From a scope as the caller named it to the `Resource` an authorizer judges, and to OpenChoreo's EvaluateRequest.

The mapping is the contract's (observer-contract-notes §2.1), so the embedded decision point and OpenChoreo's
remote one are asked the same question:

| scope                                   | type          | id          | hierarchy                        |
|-----------------------------------------|---------------|-------------|----------------------------------|
| component scope with a component        | `component`   | component   | namespace, project, component    |
| component scope with a project          | `project`     | project     | namespace, project               |
| component scope with a namespace only   | `namespace`   | namespace   | namespace                        |
| workflow scope with a run name          | `workflowRun` | run name    | namespace                        |
| workflow scope without a run name       | `namespace`   | namespace   | namespace                        |
| incident update                         | `namespace`   | (none)      | (empty)                          |
| platform logs, audit trail (cluster)    | `namespace`   | (none)      | (empty)                          |

The environment is an attribute, not a level: a component scope carries it, a workflow scope never does.
"""

from __future__ import annotations

from typing import Any, Protocol, cast

from access.model import (
    ALERTS_VIEW,
    AUDITLOGS_VIEW,
    INCIDENTS_UPDATE,
    INCIDENTS_VIEW,
    PLATFORMLOGS_VIEW,
    Resource,
    Subject,
)

NAMESPACE = "namespace"
PROJECT = "project"
COMPONENT = "component"
WORKFLOW_RUN = "workflowRun"

#: Actions whose EvaluateRequest carries an empty context, whatever the scope names (contract §2.1: the alerts
#: and incidents handlers never set the environment attribute).
EMPTY_CONTEXT_ACTIONS = frozenset({ALERTS_VIEW, INCIDENTS_VIEW, INCIDENTS_UPDATE, PLATFORMLOGS_VIEW, AUDITLOGS_VIEW})


class ComponentScopeLike(Protocol):
    """observer.validation.NamedScope: names as the caller wrote them (trimmed, validated). Read-only members,
    so frozen dataclasses satisfy it."""

    @property
    def namespace(self) -> str: ...
    @property
    def project(self) -> str: ...
    @property
    def component(self) -> str: ...
    @property
    def environment(self) -> str: ...


class WorkflowScopeLike(Protocol):
    """domain.model.WorkflowScope: a namespace and, optionally, one workflow run. Read-only members, so frozen
    dataclasses satisfy it."""

    @property
    def namespace(self) -> str: ...
    @property
    def workflow_run(self) -> str: ...


def component_resource(scope: ComponentScopeLike) -> Resource:
    """The most specific non-empty level of a component scope is what is asked about, so a grant on a project
    covers a query of one of its components, and a component grant never covers a project-wide query."""
    namespace, project, component = scope.namespace, scope.project or "", scope.component or ""
    environment = scope.environment or ""
    if component:
        return Resource(COMPONENT, component, namespace, project, component, environment)
    if project:
        return Resource(PROJECT, project, namespace, project, "", environment)
    return Resource(NAMESPACE, namespace, namespace, "", "", environment)


def workflow_resource(scope: WorkflowScopeLike) -> Resource:
    """A workflow run lives directly under its namespace (the scope names no project), and a workflow query
    never carries an environment."""
    if scope.workflow_run:
        return Resource(WORKFLOW_RUN, scope.workflow_run, scope.namespace)
    return Resource(NAMESPACE, scope.namespace, scope.namespace)


def resource_for(scope: ComponentScopeLike | WorkflowScopeLike) -> Resource:
    """One entry point for the query service, which holds either shape: a workflow scope is told apart by its
    `workflow_run` attribute (NamedScope has none)."""
    if hasattr(scope, "workflow_run"):
        return workflow_resource(cast(WorkflowScopeLike, scope))  # hasattr cannot narrow a union of protocols
    return component_resource(scope)


def incident_update_resource() -> Resource:
    """`incidents:update` is asked on a `namespace` with no id and an empty hierarchy (contract §1.14): the
    incident's own scope is not consulted, so only a grant over every namespace covers it."""
    return Resource(NAMESPACE, "", "")


def cluster_resource() -> Resource:
    """`platformlogs:view` and `auditlogs:view` are cluster-scoped: asked, as `incidents:update` is, on a
    `namespace` with no id and an empty hierarchy, whatever coordinates or filters the query names (a namespace
    in a platform-logs or audit query narrows the answer, it never grants access to it). So only a grant over
    every namespace covers them, and a component- or namespace-scoped caller is refused."""
    return Resource(NAMESPACE, "", "")


def evaluate_request(subject: Subject, action: str, resource: Resource, *, with_context: bool = True) -> dict[str, Any]:
    """One EvaluateRequest as OpenChoreo's PDP reads it: empty hierarchy members and an empty id are left out
    (Go `omitempty`), and `context.resource.environment` is `"<namespace>/<environment>"` only when the scope
    names an environment and `with_context` holds (False for alerts and incidents, which send `{}`)."""
    hierarchy = {
        key: value
        for key, value in (
            ("namespace", resource.namespace),
            ("project", resource.project),
            ("component", resource.component),
        )
        if value
    }
    body: dict[str, Any] = {"type": resource.type}
    if resource.id:
        body["id"] = resource.id
    body["hierarchy"] = hierarchy
    context: dict[str, Any] = {}
    if with_context and resource.environment and resource.namespace:
        context["resource"] = {"environment": f"{resource.namespace}/{resource.environment}"}
    return {
        "subject_context": {
            "type": subject.type,
            "entitlement_claim": subject.entitlement_claim,
            "entitlement_values": list(subject.entitlement_values),
        },
        "resource": body,
        "action": action,
        "context": context,
    }


def context_for(action: str) -> bool:
    """Whether the contract sends the environment attribute for `action` (see EMPTY_CONTEXT_ACTIONS)."""
    return action not in EMPTY_CONTEXT_ACTIONS


# ------------------------------------------------------------------------------------------- policy paths


def escape_segment(name: str) -> str:
    """Names go into `/`-separated paths; escaping `%` and `/` keeps a crafted name (`acme/project/shop`) from
    posing as a deeper level of the hierarchy and inheriting that level's grants."""
    return name.replace("%", "%25").replace("/", "%2F")


def scope_path(namespace: str = "", project: str = "", component: str = "", workflow_run: str = "") -> str:
    """The path a grant or a request is matched on: `ns/<ns>[/project/<p>[/component/<c>]]` or
    `ns/<ns>/workflowrun/<run>`; `*` for an empty hierarchy. A grant on a path covers every path below it."""
    if not namespace:
        return "*"
    path = f"ns/{escape_segment(namespace)}"
    if workflow_run:
        return f"{path}/workflowrun/{escape_segment(workflow_run)}"
    if project:
        path = f"{path}/project/{escape_segment(project)}"
        if component:
            path = f"{path}/component/{escape_segment(component)}"
    return path


def resource_path(resource: Resource) -> str:
    """The policy path of a Resource (see scope_path)."""
    if resource.type == WORKFLOW_RUN:
        return scope_path(resource.namespace, workflow_run=resource.id)
    return scope_path(resource.namespace, resource.project, resource.component)
