"""The observer's own, unchanged `OpenChoreoResolver` against a served control plane (a real process): names
resolve to the UIDs the control plane assigned; a missing name is ScopeNotFound; the discovery chain reaches the
observerURL of the sample planes. The documents are OpenChoreo's samples (tests/data/controlplane/samples/)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from adapters.protocols import ScopeNotFound
from controlplane import discovery, kinds
from controlplane.errors import NotFound
from controlplane.store import Store
from devservers.controlplane import controlplane_up
from observer.resolver_http import OpenChoreoResolver

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "controlplane" / "samples"
API = "openchoreo.dev/v1alpha1"
CA = {"clientCA": {"value": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"}}


def samples(*files: str) -> list[dict[str, Any]]:
    """The documents of these sample files that are kinds we serve (their v1 Secrets are not, yet)."""
    docs: list[dict[str, Any]] = []
    for name in files:
        for doc in yaml.safe_load_all((SAMPLES / name).read_text()):
            if isinstance(doc, dict) and doc.get("kind") in kinds.BY_KIND:
                docs.append(doc)
    return docs


def plane(file: str, spec: dict[str, Any], name: str | None = None, namespace: str = "") -> dict[str, Any]:
    """A plane sample (whose spec upstream leaves empty) with the spec its CRD requires."""
    (doc,) = samples(file)
    doc["spec"] = {"clusterAgent": CA, **spec}
    if name:
        doc["metadata"]["name"] = name
    if namespace:
        doc["metadata"]["namespace"] = namespace
    return doc


def apply(client: httpx.Client, doc: dict[str, Any]) -> dict[str, Any]:
    row = kinds.get(doc["kind"])
    response = client.post(row.collection_path(doc["metadata"].get("namespace")), json=doc)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


class ControlPlane:
    def __init__(self, url: str, db: Path, uids: dict[tuple[str, str], str]) -> None:
        self.url, self.db, self.uids = url, db, uids


@pytest.fixture(scope="module")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    data_dir = tmp_path_factory.mktemp("controlplane")
    with controlplane_up(data_dir) as url, httpx.Client(base_url=url, timeout=10) as client:
        uids: dict[tuple[str, str], str] = {}
        documents = [
            {"metadata": {"name": "default"}, "kind": "Namespace", "apiVersion": "v1"},
            {"metadata": {"name": "team-b"}, "kind": "Namespace", "apiVersion": "v1"},
            *(
                {
                    "apiVersion": API,
                    "kind": "Project",
                    "metadata": {"name": name, "namespace": "default"},
                    "spec": {"deploymentPipelineRef": {"name": "default"}, "type": {"name": "default"}},
                }
                for name in ("default", "gcp-microservice-demo")
            ),
            *samples("http-service-component.yaml", "components-with-alert-rules.yaml", "environments.yaml"),
            # The samples' environments use the ClusterDataPlane `default`, which uses the cluster observability
            # plane `default`.
            plane(
                "openchoreo_v1alpha1_clusterobservabilityplane.yaml",
                {"observerURL": "http://observer.cluster:8080", "planeID": "shared-obs"},
                name="default",
            ),
            plane(
                "openchoreo_v1alpha1_clusterdataplane.yaml",
                {"observabilityPlaneRef": {"kind": "ClusterObservabilityPlane", "name": "default"}},
                name="default",
            ),
            # A namespace with its own planes, found through the chain's defaults (`default` in the namespace).
            plane(
                "v1alpha1_observabilityplane.yaml",
                {"observerURL": "http://observer.team-b:8080", "planeID": "shared-obs"},
                name="default",
                namespace="team-b",
            ),
            plane("openchoreo_v1alpha1_dataplane.yaml", {}, name="default", namespace="team-b"),
            {"apiVersion": API, "kind": "Environment", "metadata": {"name": "qa", "namespace": "team-b"}, "spec": {}},
        ]
        for doc in documents:
            created = apply(client, doc)
            uids[(created["kind"], created["metadata"]["name"])] = created["metadata"]["uid"]
        yield ControlPlane(url, data_dir / "controlplane.db", uids)


@pytest.fixture
async def resolver(control_plane: ControlPlane) -> Any:
    client = OpenChoreoResolver(control_plane.url, timeout_s=10)
    yield client
    await client.aclose()


async def test_names_resolve_to_the_uids_the_control_plane_assigned(
    control_plane: ControlPlane, resolver: OpenChoreoResolver
) -> None:
    uids = control_plane.uids
    got = await resolver.resolve("default", "gcp-microservice-demo", "frontend", "development")
    assert got == (
        uids[("Project", "gcp-microservice-demo")],
        uids[("Component", "frontend")],
        uids[("Environment", "development")],
    )
    assert await resolver.resolve("default", component="demo-app-http-service") == (
        "",
        uids[("Component", "demo-app-http-service")],
        "",
    )
    assert await resolver.resolve("default") == ("", "", "")  # the namespace exists


@pytest.mark.parametrize(
    ("args", "kind", "name"),
    [
        (("nowhere",), "namespace", "nowhere"),
        (("default", "no-such-project"), "project", "no-such-project"),
        (("default", "", "no-such-component"), "component", "no-such-component"),
        (("default", "", "", "no-such-env"), "environment", "no-such-env"),
        (("nowhere", "default"), "namespace", "nowhere"),  # the namespace is blamed when it is what is missing
    ],
)
async def test_unknown_names_are_scope_not_found(
    resolver: OpenChoreoResolver, args: tuple[str, ...], kind: str, name: str
) -> None:
    with pytest.raises(ScopeNotFound) as caught:
        await resolver.resolve(*args)
    assert (caught.value.kind, caught.value.name) == (kind, name)


def test_a_deleted_and_recreated_component_resolves_to_its_new_uid(control_plane: ControlPlane) -> None:
    with httpx.Client(base_url=control_plane.url, timeout=10) as client:
        path = kinds.get("Component").item_path("frontend", "default")
        old = client.get(path).json()
        assert client.delete(path).status_code == 204
        for key in ("uid", "creationTimestamp", "generation", "resourceVersion"):
            old["metadata"].pop(key)
        new = apply(client, old)
    assert new["metadata"]["uid"] != control_plane.uids[("Component", "frontend")]
    control_plane.uids[("Component", "frontend")] = new["metadata"]["uid"]


@pytest.fixture
def store(control_plane: ControlPlane) -> Iterator[Store]:
    """The served control plane's own database, opened beside it (SQLite in WAL mode takes a second reader)."""
    opened = Store(f"sqlite:///{control_plane.db}")
    yield opened
    opened.close()


def test_discovery_follows_the_sample_planes(store: Store) -> None:
    for environment in ("development", "staging", "production"):
        assert discovery.observer_url(store, "default", environment) == "http://observer.cluster:8080"
    assert discovery.observer_url(store, "team-b", "qa") == "http://observer.team-b:8080"


def test_discovery_names_the_missing_link(store: Store) -> None:
    with pytest.raises(NotFound, match="Environment 'nope'"):
        discovery.observer_url(store, "default", "nope")


def test_plane_for_finds_namespaced_and_cluster_crs_by_plane_id(store: Store) -> None:
    found = discovery.plane_for(store, "observabilityplane", "shared-obs")
    assert sorted((d["kind"], d["metadata"].get("namespace", "")) for d in found) == [
        ("ClusterObservabilityPlane", ""),
        ("ObservabilityPlane", "team-b"),
    ]
    data_planes = discovery.plane_for(store, "dataplane", "default")  # no planeID: the name is the plane ID
    assert sorted(d["kind"] for d in data_planes) == ["ClusterDataPlane", "DataPlane"]
    assert discovery.plane_for(store, "dataplane", "elsewhere") == []
    with pytest.raises(ValueError, match="unknown plane type"):
        discovery.plane_for(store, "buildplane", "x")
