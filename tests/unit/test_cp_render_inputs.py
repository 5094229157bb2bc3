"""Inputs for the render tests (imported by the other test_cp_render_* modules): upstream's samples (tests/data/controlplane/samples) as the API would store them
(with metadata.uid), and the golden-file comparison the render tests share."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from controlplane.schema import validate

DATA = Path(__file__).resolve().parents[1] / "data" / "controlplane"
SAMPLES = DATA / "samples"
GOLDEN = DATA / "render"

UIDS = {
    "Project": "6f1c2a3e-0000-4000-8000-000000000001",
    "Environment": "6f1c2a3e-0000-4000-8000-000000000002",
    "Component": "6f1c2a3e-0000-4000-8000-000000000003",
    "ReleaseBinding": "6f1c2a3e-0000-4000-8000-000000000004",
    "ClusterDataPlane": "6f1c2a3e-0000-4000-8000-000000000005",
}


def sample(file: str, kind: str, name: str | None = None) -> dict[str, Any]:
    """A deep copy of the first `kind` document (named `name` when given) in a sample file, with a fixed uid."""
    for document in yaml.safe_load_all((SAMPLES / file).read_text(encoding="utf-8")):
        if isinstance(document, dict) and document.get("kind") == kind:
            if name is None or document["metadata"]["name"] == name:
                found = copy.deepcopy(document)
                found["metadata"].setdefault("uid", UIDS.get(kind, "6f1c2a3e-0000-4000-8000-0000000000ff"))
                return found
    raise LookupError(f"{file}: no {kind} {name or ''}")


def project(name: str) -> dict[str, Any]:
    """The Project a sample's components belong to (the samples have none of their own)."""
    return {
        "apiVersion": "openchoreo.dev/v1alpha1",
        "kind": "Project",
        "metadata": {"name": name, "namespace": "default", "uid": UIDS["Project"]},
        "spec": {"deploymentPipelineRef": {"name": "default"}, "type": {"name": "default"}},
    }


def environment(name: str = "development") -> dict[str, Any]:
    return sample("environments.yaml", "Environment", name)


def binding(component: str, project_name: str, env: str = "development", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "openchoreo.dev/v1alpha1",
        "kind": "ReleaseBinding",
        "metadata": {"name": f"{component}-{env}", "namespace": "default", "uid": UIDS["ReleaseBinding"]},
        "spec": {"owner": {"projectName": project_name, "componentName": component}, "environment": env, **spec},
    }


def dataplane(with_observability: bool = True) -> dict[str, Any]:
    spec: dict[str, Any] = {"clusterAgent": {"clientCA": {"value": "PEM"}}}
    if with_observability:
        spec["observabilityPlaneRef"] = {"kind": "ClusterObservabilityPlane", "name": "default"}
    return {
        "apiVersion": "openchoreo.dev/v1alpha1",
        "kind": "ClusterDataPlane",
        "metadata": {"name": "default", "uid": UIDS["ClusterDataPlane"]},
        "spec": spec,
    }


def golden(name: str) -> list[dict[str, Any]]:
    """The expected objects, kept as YAML next to the samples (tests/data/controlplane/render/<name>.yaml)."""
    return [doc for doc in yaml.safe_load_all((GOLDEN / f"{name}.yaml").read_text(encoding="utf-8")) if doc is not None]


def dump(objects: list[dict[str, Any]]) -> str:
    """How a golden file is written (for a reviewer regenerating one by hand)."""
    return yaml.safe_dump_all(objects, sort_keys=False, allow_unicode=True)


def test_the_render_inputs_are_documents_the_api_would_store() -> None:
    """The renderers are fed what the store holds: every input built here passes the control plane's schema."""
    inputs = [
        project("gcp-microservice-demo"),
        environment(),
        binding("frontend", "gcp-microservice-demo"),
        dataplane(),
        sample("http-service-component.yaml", "Component"),
        sample("http-service-component.yaml", "Workload"),
        sample("http-service-component.yaml", "ReleaseBinding"),
        sample("components-with-alert-rules.yaml", "Component", "frontend"),
        sample("alert-notification-channels.yaml", "ObservabilityAlertsNotificationChannel"),
    ]
    for document in inputs:
        assert validate(document["kind"], copy.deepcopy(document)) == [], document["metadata"]["name"]
