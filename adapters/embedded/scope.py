"""Scope filters in SQL, shared by every record table of the embedded backend."""

from __future__ import annotations

from domain.model import ComponentScope, Scope, WorkflowScope


def streams_in_scope(scope: Scope) -> tuple[str, list[object]]:
    """A `SELECT id FROM streams ...` subquery for the streams a scope covers, and its parameters.

    Component scopes match UIDs and leave out workflow runs (never names: a re-created component with the same name has a new UID, and its
    predecessor's records stay with the predecessor). Workflow scopes match the run by name and the task as a
    substring of the task name, as OpenChoreo matches the Argo node name.
    """
    clauses: list[str] = ["namespace = ?"]
    params: list[object] = [scope.namespace]
    if isinstance(scope, ComponentScope):
        clauses.append("workflow_run = ''")
        for column, value in (
            ("project_uid", scope.project_uid),
            ("component_uid", scope.component_uid),
            ("environment_uid", scope.environment_uid),
        ):
            if value:
                clauses.append(f"{column} = ?")
                params.append(value)
    elif isinstance(scope, WorkflowScope):
        clauses.append("workflow_run != ''")
        clauses.append("container NOT IN ('init', 'wait')")  # Argo's own sidecars, not the user's steps
        if scope.workflow_run:
            clauses.append("workflow_run = ?")
            params.append(scope.workflow_run)
        if scope.task:
            clauses.append("instr(task, ?) > 0")
            params.append(scope.task)
    return "SELECT id FROM streams WHERE " + " AND ".join(clauses), params


#: The streams columns that make an Identity, in the Identity field order.
IDENTITY_COLUMNS = (
    "s.namespace, s.project, s.project_uid, s.component, s.component_uid, s.environment, s.environment_uid,"
    " s.pod, s.pod_namespace, s.container, s.workflow_run, s.task"
)
IDENTITY_WIDTH = 12
