"""Scope and placement filters in SQL, and the `streams` columns an Identity is stored in and read back from,
shared by every record table of the embedded backend."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from domain.model import ComponentScope, Identity, Scope, WorkflowScope
from domain.platform import PlatformLogsQuery


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


def streams_in_placement(query: PlatformLogsQuery) -> tuple[str, list[object]]:
    """A `SELECT id FROM streams ...` subquery for the streams whose Kubernetes placement passes every non-empty
    coordinate filter of a platform-logs query (domain.platform.matches_platform in SQL), and its parameters.
    Labels match pair by pair through json_each, so a key or value is only ever a bound parameter."""
    clauses: list[str] = []
    params: list[object] = []
    for column, wanted in (
        ("cluster", query.clusters),
        ("pod_namespace", query.namespaces),
        ("pod", query.pods),
        ("container", query.containers),
    ):
        if wanted:
            clauses.append(f"{column} IN ({','.join('?' * len(wanted))})")
            params += wanted
    for key, value in query.labels:
        clauses.append("EXISTS (SELECT 1 FROM json_each(streams.labels) j WHERE j.key = ? AND j.value = ?)")
        params += [key, value]
    return "SELECT id FROM streams" + (" WHERE " + " AND ".join(clauses) if clauses else ""), params


#: The streams columns that make an Identity, in the Identity field order (`labels` last, as canonical JSON).
STREAM_COLUMNS = (
    "namespace",
    "project",
    "project_uid",
    "component",
    "component_uid",
    "environment",
    "environment_uid",
    "pod",
    "pod_namespace",
    "container",
    "workflow_run",
    "task",
    "cluster",
    "node",
    "pod_ip",
    "image",
    "labels",
)
IDENTITY_COLUMNS = ", ".join(f"s.{column}" for column in STREAM_COLUMNS)
IDENTITY_WIDTH = len(STREAM_COLUMNS)


def labels_json(labels: Sequence[tuple[str, str]]) -> str:
    """Pod labels as the `streams.labels` column holds them: one canonical JSON object (sorted keys, no spaces),
    so two identities of one pod find the same stream row."""
    return json.dumps(dict(labels), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def stream_values(identity: Identity) -> tuple[str, ...]:
    """An identity as the values of STREAM_COLUMNS."""
    return (
        identity.namespace,
        identity.project,
        identity.project_uid,
        identity.component,
        identity.component_uid,
        identity.environment,
        identity.environment_uid,
        identity.pod,
        identity.pod_namespace,
        identity.container,
        identity.workflow_run,
        identity.task,
        identity.cluster,
        identity.node,
        identity.pod_ip,
        identity.image,
        labels_json(identity.labels),
    )


def identity_from_row(values: Sequence[Any]) -> Identity:
    """The Identity of IDENTITY_WIDTH values read through IDENTITY_COLUMNS (labels back to sorted pairs)."""
    labels = json.loads(values[IDENTITY_WIDTH - 1]) if values[IDENTITY_WIDTH - 1] else {}
    named = dict(zip(STREAM_COLUMNS[:-1], values, strict=False))
    return Identity(**named, labels=tuple(sorted(labels.items())))
