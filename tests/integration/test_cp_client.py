"""`controlplane.client` (what `observer apply -f | get | delete` run) against a real control-plane process: every
kind from one file in any order, created / unchanged / configured in kubectl's words, a bad document reported by
field while the rest still apply, deletes in reverse dependency order, and paged gets."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from controlplane import kinds
from controlplane.client import ORDER, ControlPlaneClient, ManifestError, Outcome, find_kind, load_documents
from devservers.controlplane import controlplane_up

API = "openchoreo.dev/v1alpha1"
SAMPLES = Path(__file__).resolve().parents[1] / "data" / "controlplane" / "samples"

# The kinds the samples lack, so the file below holds every kind the control plane serves.
EXTRA: list[dict[str, Any]] = [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}},
    {
        "apiVersion": API,
        "kind": "Project",
        "metadata": {"name": "default", "namespace": "default"},
        "spec": {"deploymentPipelineRef": {"name": "default"}, "type": {"name": "default"}},
    },
    {
        "apiVersion": API,
        "kind": "DeploymentPipeline",
        "metadata": {"name": "default"},
        "spec": {
            "promotionPaths": [
                {"sourceEnvironmentRef": {"name": "development"}, "targetEnvironmentRefs": [{"name": "staging"}]}
            ]
        },
    },
    {"apiVersion": API, "kind": "AuthzRole", "metadata": {"name": "viewer"}, "spec": {"actions": ["project:view"]}},
    {
        "apiVersion": API,
        "kind": "AuthzRoleBinding",
        "metadata": {"name": "devs"},
        "spec": {
            "entitlement": {"claim": "groups", "value": "devs"},
            "roleMappings": [{"roleRef": {"kind": "AuthzRole", "name": "viewer"}, "scope": {"project": "default"}}],
        },
    },
    {"apiVersion": API, "kind": "ClusterAuthzRole", "metadata": {"name": "admin"}, "spec": {"actions": ["*"]}},
    {
        "apiVersion": API,
        "kind": "ClusterAuthzRoleBinding",
        "metadata": {"name": "admins"},
        "spec": {
            "entitlement": {"claim": "groups", "value": "admins"},
            "roleMappings": [{"roleRef": {"kind": "ClusterAuthzRole", "name": "admin"}}],
        },
    },
]


def _samples() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(SAMPLES.glob("*.yaml")):
        docs += [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if isinstance(doc, dict)]
    return docs


def _label(doc: dict[str, Any]) -> str:
    row = kinds.get(doc["kind"])
    return f"{row.kind.lower()}.{row.group}" if row.group else row.kind.lower()


def _rank(doc: dict[str, Any]) -> int:
    return ORDER.index(doc["kind"])


@pytest.fixture
def documents() -> list[dict[str, Any]]:
    """Every sample plus EXTRA, written to one file with the dependents FIRST (the worst order), read back."""
    docs = sorted(_samples() + copy.deepcopy(EXTRA), key=_rank, reverse=True)
    return docs


@pytest.fixture
def manifest(tmp_path: Path, documents: list[dict[str, Any]]) -> Path:
    path = tmp_path / "all.yaml"
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def client(tmp_path: Path) -> Iterator[ControlPlaneClient]:
    with controlplane_up(tmp_path / "cp") as url, ControlPlaneClient(url, timeout=30) as cp:
        yield cp


def _lines(outcomes: list[Outcome]) -> list[str]:
    return [outcome.line for outcome in outcomes]


def test_the_file_holds_every_kind(documents: list[dict[str, Any]]) -> None:
    assert {doc["kind"] for doc in documents} == set(kinds.BY_KIND)
    assert set(ORDER) == set(kinds.BY_KIND)


def test_apply_creates_then_is_unchanged_then_configures(client: ControlPlaneClient, manifest: Path) -> None:
    docs = load_documents([str(manifest)])
    first = client.apply(docs, "default")
    expected = [f"{_label(doc)}/{doc['metadata']['name']} created" for doc in sorted(docs, key=_rank)]
    assert _lines(first) == expected
    assert not any(outcome.failed for outcome in first)

    again = client.apply(load_documents([str(manifest)]), "default")
    assert _lines(again) == [line.replace(" created", " unchanged") for line in expected]

    changed = load_documents([str(manifest)])
    component = next(d for d in changed if d["kind"] == "Component" and d["metadata"]["name"] == "cart")
    component["spec"]["autoDeploy"] = not component["spec"].get("autoDeploy", False)
    secret = next(d for d in changed if d["kind"] == "Secret")
    secret["stringData"] = {key: "rotated" for key in secret.get("stringData") or {"k": ""}}
    project = next(d for d in changed if d["kind"] == "Project")
    project["metadata"]["labels"] = {"team": "shop"}  # labels only: no new generation, still configured
    third = _lines(client.apply(changed, "default"))
    configured = {line for line in third if line.endswith(" configured")}
    assert configured == {
        "component.openchoreo.dev/cart configured",
        f"secret/{secret['metadata']['name']} configured",
        "project.openchoreo.dev/default configured",
    }
    assert len(third) == len(expected)
    assert all(line.endswith(" unchanged") for line in third if line not in configured)

    live = client.get(kinds.get("Component"), "default", "cart")[0]
    assert live["metadata"]["generation"] == 2
    assert client.get(kinds.get("Project"), "default", "default")[0]["metadata"]["generation"] == 1


def test_a_bad_document_is_reported_by_field_and_the_rest_apply(client: ControlPlaneClient) -> None:
    docs = copy.deepcopy(EXTRA[:3])
    docs[1]["spec"]["bogus"] = True  # the Project
    docs.append({"apiVersion": API, "kind": "Pod", "metadata": {"name": "p"}})
    docs.append({"apiVersion": API, "kind": "Environment", "metadata": {"name": "e", "namespace": "nowhere"}})
    outcomes = client.apply(docs, "default")
    by_line = {o.line: o.failed for o in outcomes}
    assert by_line["namespace/default created"] is False
    assert by_line["deploymentpipeline.openchoreo.dev/default created"] is False
    failed = [o.line for o in outcomes if o.failed]
    assert len(failed) == 3 and len(outcomes) == 5
    assert any(line.startswith('error: Project "default" is invalid: spec.bogus: unknown field') for line in failed)
    assert any("does not serve kind 'Pod'" in line for line in failed)
    assert any("Namespace 'nowhere' not found" in line and "[NOT_FOUND]" in line for line in failed)


def test_immutable_field_change_is_an_error_line(client: ControlPlaneClient) -> None:
    project = copy.deepcopy(EXTRA[1])
    assert not any(o.failed for o in client.apply([EXTRA[0], project], "default"))
    project["spec"]["type"] = {"name": "other"}
    [outcome] = client.apply([project], "default")
    assert outcome.failed
    assert outcome.line == (
        'error: Project "default" is invalid: spec.type: spec.type cannot be changed after creation [BAD_REQUEST]'
    )


def test_delete_goes_in_reverse_dependency_order(client: ControlPlaneClient, manifest: Path) -> None:
    docs = load_documents([str(manifest)])
    assert not any(o.failed for o in client.apply(docs, "default"))
    outcomes = client.delete(load_documents([str(manifest)]), "default")
    expected = [f'{_label(doc)} "{doc["metadata"]["name"]}" deleted' for doc in sorted(docs, key=_rank)][::-1]
    assert _lines(outcomes) == expected  # the Namespace last: it must be empty by then
    assert not any(o.failed for o in outcomes)
    for row in kinds.KINDS:
        if not row.namespaced:  # every cluster-scoped kind, the Namespaces included, is empty again
            assert client.get(row, "") == [], row.kind
    again = client.delete(docs[:1], "default")
    assert again[0].line.endswith('" not found') and not again[0].failed


def test_delete_named_and_a_namespace_still_holding_objects(client: ControlPlaneClient) -> None:
    assert not any(o.failed for o in client.apply(EXTRA[:2], "default"))
    held = client.delete_named(kinds.get("Namespace"), "default", "")
    assert held.failed and "[CONFLICT]" in held.line and "not empty" in held.line
    assert client.delete_named(kinds.get("Project"), "default", "default").line == (
        'project.openchoreo.dev "default" deleted'
    )
    assert client.delete_named(kinds.get("Namespace"), "default", "").line == 'namespace "default" deleted'


def test_get_pages_through_everything_and_never_shows_secret_values(client: ControlPlaneClient) -> None:
    secrets = [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"s{i:03d}"}, "stringData": {"token": "hush"}}
        for i in range(105)
    ]
    outcomes = client.apply([EXTRA[0], *secrets], "default")
    assert not any(o.failed for o in outcomes)
    listed = client.get(find_kind("secrets"), "default")
    assert [item["metadata"]["name"] for item in listed] == [f"s{i:03d}" for i in range(105)]
    assert all(item["data"] == {"token": ""} for item in listed)
    [one] = client.get(find_kind("secret"), "default", "s007")
    assert one["data"] == {"token": ""}
    with pytest.raises(ManifestError, match="NOT_FOUND"):
        client.get(find_kind("Secret"), "default", "missing")
    with pytest.raises(ManifestError, match="Namespace 'elsewhere' not found"):
        client.get(find_kind("projects"), "elsewhere")
