"""The control plane's kind table: every kind the issue names has a row, a CRD file that agrees with the row, and
the REST paths of openchoreo-api.yaml; the CRD copies are pinned byte for byte to the reference."""

from __future__ import annotations

import hashlib
from importlib import resources

import pytest

from controlplane import kinds
from controlplane.schema import load_crd

# The issue's kinds (issue 16, "Build" 1): all of them are served.
ISSUE_KINDS = {
    "Namespace",
    "Project",
    "Component",
    "Workload",
    "Environment",
    "DeploymentPipeline",
    "DataPlane",
    "ClusterDataPlane",
    "ObservabilityPlane",
    "ClusterObservabilityPlane",
    "ReleaseBinding",
    "ObservabilityAlertsNotificationChannel",
    "AuthzRole",
    "AuthzRoleBinding",
    "ClusterAuthzRole",
    "ClusterAuthzRoleBinding",
}
# Beyond the issue's list: v1 Secret, which plane CRs and channels point at (`secretKeyRef`).
SERVED_KINDS = ISSUE_KINDS | {"Secret"}

# sha256 of the upstream CRDs as copied from ../shared/reference/openchoreo/ (crds/*.yaml and the channel CRD one
# level up). A change to a copy is a deliberate act: refresh it from the reference and this table together.
UPSTREAM_CRDS = {
    "openchoreo.dev_authzrolebindings.yaml": "3a5f37a2b444adef182a6be395da1ad7f92e7fac14dc76a30e1ac11df04ade5a",
    "openchoreo.dev_authzroles.yaml": "4b09842bb318fe2b48a7329ad9158a95bdf201f32b896cdf40c2b90f16a32e9a",
    "openchoreo.dev_clusterauthzrolebindings.yaml": "9273b34d1cd7501c341b82bf0e712df06c172b99962bef42f1f1d02fb3b98e1c",
    "openchoreo.dev_clusterauthzroles.yaml": "d56b4f6e58d7c15d4c9ff6219ffc740c4a47e498d49a4be27b6011ef81d53bd6",
    "openchoreo.dev_clusterobservabilityplanes.yaml": "1791f81c3f5f432bc6d1cc226ba7c8300c65772675063d5228f23a5ceba2ac70",
    "openchoreo.dev_components.yaml": "887294646f52fe0980094cbd3306fbd96ca80882125f0bd8b63d5e81b56a4ac0",
    "openchoreo.dev_dataplanes.yaml": "9007b4b4ad1c58ee6f042d54da017a387d5f7cb5eaa5704e73cba540b4055086",
    "openchoreo.dev_deploymentpipelines.yaml": "177c0d3685bc8cf169c4d5f469ffa5ead32465c42b82a5de31ab6f5d97c11b2f",
    "openchoreo.dev_environments.yaml": "602ccbf8250567901cf3ab05cff3a71972bc380d31e8f7d3f3089958ad275e36",
    "openchoreo.dev_observabilityalertsnotificationchannels.yaml": (
        "cd869a45f652fb48ee60ba09fcf04877a3b3b0d5d639ea0dd8e978275db47614"
    ),
    "openchoreo.dev_observabilityplanes.yaml": "2503454a7098ca652a1fc293d54ccd05be7e70045f1de5a883d8b2b575393275",
    "openchoreo.dev_projects.yaml": "670ee12e3eacece14f027ed0b043a2115c563275e6f3271c57efd28c188d70d0",
    "openchoreo.dev_releasebindings.yaml": "55a30915f3cc2eb96defbf00fedf57146c14b638d21c72fc3f3097d549134213",
    "openchoreo.dev_workloads.yaml": "6ce29e1e32cf40b8eb9584c934e46633282e64ca569abbb06512360ac29bae26",
}
# Ours: the reference has no CRD for these two (see each file's header).
OUR_CRDS = {"openchoreo.dev_clusterdataplanes.yaml", "namespaces.yaml", "secrets.yaml"}

# (kind, collection path, item path) as openchoreo-api.yaml spells them, for a namespace "ns" and an object "x".
API_PATHS = [
    ("Namespace", "/api/v1/namespaces", "/api/v1/namespaces/x"),
    ("Secret", "/api/v1/namespaces/ns/secrets", "/api/v1/namespaces/ns/secrets/x"),
    ("Project", "/api/v1/namespaces/ns/projects", "/api/v1/namespaces/ns/projects/x"),
    ("ClusterDataPlane", "/api/v1/clusterdataplanes", "/api/v1/clusterdataplanes/x"),
    (
        "ObservabilityAlertsNotificationChannel",
        "/api/v1/namespaces/ns/observabilityalertsnotificationchannels",
        "/api/v1/namespaces/ns/observabilityalertsnotificationchannels/x",
    ),
    ("ClusterAuthzRoleBinding", "/api/v1/clusterauthzrolebindings", "/api/v1/clusterauthzrolebindings/x"),
]


def _crd_dir() -> resources.abc.Traversable:
    return resources.files("controlplane").joinpath("crds")


def test_every_issue_kind_has_one_row() -> None:
    assert {k.kind for k in kinds.KINDS} == SERVED_KINDS
    assert len(kinds.KINDS) == len(SERVED_KINDS)
    assert len({k.plural for k in kinds.KINDS}) == len(kinds.KINDS)
    assert len({k.crd_file for k in kinds.KINDS}) == len(kinds.KINDS)


@pytest.mark.parametrize("row", kinds.KINDS, ids=lambda r: r.kind)
def test_row_agrees_with_its_crd(row: kinds.Kind) -> None:
    """The CRD file says the same kind, plural, group, scope and version as the row: one truth, checked."""
    crd = load_crd(row.kind)
    assert crd["spec"]["names"]["kind"] == row.kind
    assert crd["spec"]["names"]["plural"] == row.plural
    assert crd["spec"]["group"] == row.group
    assert crd["spec"]["scope"] == row.scope
    assert row.version in [v["name"] for v in crd["spec"]["versions"]]
    assert row.path_segment == row.plural


def test_api_versions() -> None:
    assert kinds.get("Namespace").api_version == "v1"
    assert kinds.get("Secret").api_version == "v1"
    for row in kinds.KINDS:
        if row.kind not in ("Namespace", "Secret"):
            assert row.api_version == "openchoreo.dev/v1alpha1"


@pytest.mark.parametrize(("kind", "collection", "item"), API_PATHS)
def test_paths_follow_openchoreo_api(kind: str, collection: str, item: str) -> None:
    row = kinds.get(kind)
    namespace = "ns" if row.namespaced else None
    assert row.collection_path(namespace) == collection
    assert row.item_path("x", namespace) == item


def test_namespaced_kind_needs_a_namespace() -> None:
    with pytest.raises(ValueError, match="namespaced"):
        kinds.get("Project").collection_path()


def test_list_filters_and_lookup() -> None:
    assert dict(kinds.get("Component").list_filters) == {"project": "spec.owner.projectName"}
    assert dict(kinds.get("ReleaseBinding").list_filters) == {"component": "spec.owner.componentName"}
    assert dict(kinds.get("Workload").list_filters) == {"component": "spec.owner.componentName"}
    assert kinds.BY_PLURAL["environments"].kind == "Environment"
    with pytest.raises(KeyError, match="unknown kind 'Pod'"):
        kinds.get("Pod")


def test_crd_copies_are_pinned_to_the_reference() -> None:
    """Every shipped file is either an unchanged upstream copy (hash pinned) or one of ours, and each is used."""
    shipped = {entry.name for entry in _crd_dir().iterdir() if entry.name.endswith(".yaml")}
    assert shipped == set(UPSTREAM_CRDS) | OUR_CRDS
    assert shipped == {row.crd_file for row in kinds.KINDS}
    for name, digest in UPSTREAM_CRDS.items():
        assert hashlib.sha256(_crd_dir().joinpath(name).read_bytes()).hexdigest() == digest, name


def test_cluster_data_plane_refers_only_to_cluster_observability_planes() -> None:
    """As openchoreo-api.yaml's ClusterObservabilityPlaneRef: a cluster plane cannot point into a namespace."""
    crd = load_crd("ClusterDataPlane")
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["properties"]["observabilityPlaneRef"]["properties"]["kind"]["enum"] == ["ClusterObservabilityPlane"]
    namespaced = load_crd("DataPlane")["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert set(spec["properties"]) == set(namespaced["properties"])
