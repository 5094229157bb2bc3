"""`observer up --with-controlplane`: the laptop all-in-one with the control plane in the same process. Resources
applied with `observer apply -f` (the real command) get their UIDs from the control plane, and the observer
resolves names through it instead of the embedded registry: a log labelled with those UIDs comes back for a
query by names, and a name only the embedded registry knows is not found."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from controlplane import kinds
from devservers.local import free_port
from devservers.observer import AllInOne, observer_up
from domain.model import (
    LABEL_COMPONENT,
    LABEL_COMPONENT_UID,
    LABEL_ENVIRONMENT,
    LABEL_ENVIRONMENT_UID,
    LABEL_NAMESPACE,
    LABEL_PROJECT,
    LABEL_PROJECT_UID,
)
from domain.timeutil import format_rfc3339, now_ns

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "controlplane" / "samples"
SCOPE = {"namespace": "default", "project": "default", "component": "demo-app-http-service"}
PROJECT = """
apiVersion: v1
kind: Namespace
metadata: {name: default}
---
apiVersion: openchoreo.dev/v1alpha1
kind: Project
metadata: {name: default, namespace: default}
spec: {deploymentPipelineRef: {name: default}, type: {name: default}}
"""


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AllInOne, str]]:
    data = tmp_path_factory.mktemp("with-controlplane")
    port = free_port()
    env = {"CONTROLPLANE_API_PORT": str(port), "JWT_DISABLED": "true"}
    with observer_up(data / "data", "--with-controlplane", log_file=data / "observer.log", env=env) as server:
        yield server, f"http://127.0.0.1:{port}"


def observer_apply(control_plane: str, *files: str | Path) -> subprocess.CompletedProcess[str]:
    flags = [item for path in files for item in ("-f", str(path))]
    return subprocess.run(
        [sys.executable, "-m", "observer.cli", "apply", *flags, "--server", control_plane],
        capture_output=True,
        text=True,
        timeout=60,
    )


def uid(control_plane: str, kind: str, name: str) -> str:
    answer = httpx.get(control_plane + kinds.get(kind).item_path(name, "default"), timeout=10)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["metadata"]["uid"])


def query(server: AllInOne, scope: dict[str, str]) -> httpx.Response:
    window = {"startTime": format_rfc3339(now_ns() - 600 * 10**9), "endTime": format_rfc3339(now_ns() + 10**9)}
    body: dict[str, Any] = {**window, "searchScope": {**scope, "environment": "development"}, "limit": 10}
    return httpx.post(server.api + "/api/v1/logs/query", json=body, timeout=30)


def test_names_resolve_through_the_control_plane(plane: tuple[AllInOne, str], tmp_path: Path) -> None:
    server, control_plane = plane
    (tmp_path / "project.yaml").write_text(PROJECT)
    applied = observer_apply(
        control_plane, tmp_path / "project.yaml", SAMPLES / "environments.yaml", SAMPLES / "http-service-component.yaml"
    )
    assert applied.returncode == 0, applied.stderr
    assert "component.openchoreo.dev/demo-app-http-service created" in applied.stdout

    labels = {
        LABEL_NAMESPACE: "default",
        LABEL_PROJECT: "default",
        LABEL_PROJECT_UID: uid(control_plane, "Project", "default"),
        LABEL_COMPONENT: SCOPE["component"],
        LABEL_COMPONENT_UID: uid(control_plane, "Component", SCOPE["component"]),
        LABEL_ENVIRONMENT: "development",
        LABEL_ENVIRONMENT_UID: uid(control_plane, "Environment", "development"),
    }
    record = {"timeUnixNano": str(now_ns() - 10**9), "severityText": "INFO", "body": {"stringValue": "hello cp"}}
    attributes = [{"key": key, "value": {"stringValue": value}} for key, value in labels.items()]
    sent = httpx.post(
        server.otlp + "/v1/logs",
        json={"resourceLogs": [{"resource": {"attributes": attributes}, "scopeLogs": [{"logRecords": [record]}]}]},
        timeout=10,
    )
    assert sent.status_code == 200, sent.text

    found = query(server, SCOPE)
    assert found.status_code == 200, found.text
    assert [entry["log"] for entry in found.json()["logs"]] == ["hello cp"]
    # The embedded registry is not consulted: its sample names are unknown to the control plane.
    unknown = query(server, {"namespace": "demo", "project": "shop", "component": "cart"})
    assert unknown.status_code == 400 and "namespace 'demo' not found" in unknown.json()["message"], unknown.text


def test_the_control_planes_audit_records_land_beside_the_observers(
    plane: tuple[AllInOne, str], tmp_path: Path
) -> None:
    """With the control plane in the same process its audit trail (producer `openchoreo-api`) is written into the
    observer's store, not only printed: an apply is found by the audit query."""
    server, control_plane = plane
    audited = PROJECT.replace(
        "metadata: {name: default, namespace: default}", "metadata: {name: audited, namespace: default}"
    )
    (tmp_path / "project.yaml").write_text(audited)
    applied = observer_apply(control_plane, tmp_path / "project.yaml")
    assert applied.returncode == 0, applied.stderr
    window = {"startTime": format_rfc3339(now_ns() - 600 * 10**9), "endTime": format_rfc3339(now_ns() + 10**9)}
    answer = httpx.post(
        server.api + "/api/v1alpha1/audit-logs/query",
        json={**window, "producer": ["openchoreo-api"], "resource": {"name": ["audited"]}},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    records = answer.json()["records"]
    assert [(record["action"], record["result"]) for record in records] == [("project.create", "success")]
