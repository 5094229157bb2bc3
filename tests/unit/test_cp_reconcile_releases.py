"""The release pass against an in-process plane (test_cp_reconcile_fixtures.Planes): apply order, labels, pruning,
drift, Undeploy, status conditions and their transition times, render and apply failures."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from controlplane.reconcile.loop import Reconciler
from controlplane.render.labels import LABEL_MANAGED_BY, LABEL_RELEASE_UID, RELEASE_CONTROLLER, RenderedRelease
from controlplane.store import Store
from domain.model import LABEL_COMPONENT, LABEL_COMPONENT_UID, LABEL_ENVIRONMENT_UID
from tests.unit.test_cp_reconcile_fixtures import (
    BINDING,
    DATA_PLANE,
    DP_NAMESPACE,
    OBSERVABILITY_PLANE,
    Planes,
    conditions,
    world,
)

COMPONENT = "demo-app-http-service"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store(f"sqlite:///{tmp_path / 'cp.db'}")
    world(store)
    return store


@pytest.fixture
def planes() -> Planes:
    return Planes(DATA_PLANE, OBSERVABILITY_PLANE)


def reconciler(store: Store, planes: Planes) -> Reconciler:
    return Reconciler(store, planes, resync_s=3600, progressing_s=10, poll_s=0.01)


def make_available(planes: Planes, replicas: int = 2) -> None:
    deployment = planes[DATA_PLANE].get("deployments", DP_NAMESPACE, COMPONENT)
    assert deployment is not None
    deployment["status"] = {
        "observedGeneration": deployment["metadata"]["generation"],
        "replicas": replicas,
        "availableReplicas": replicas,
    }


async def test_objects_are_applied_in_render_order_with_identity_and_tracking_labels(
    store: Store, planes: Planes
) -> None:
    await reconciler(store, planes).pass_once()
    kube = planes[DATA_PLANE]
    patches = [path for method, path, _ in kube.calls if method == "PATCH"]
    assert patches == [
        f"/api/v1/namespaces/{DP_NAMESPACE}",
        f"/apis/apps/v1/namespaces/{DP_NAMESPACE}/deployments/{COMPONENT}",
        f"/api/v1/namespaces/{DP_NAMESPACE}/services/{COMPONENT}",
    ]
    assert all("fieldManager=renderedrelease-controller" in q for m, _, q in kube.calls if m == "PATCH")
    assert ("dataplane", "default", "/default") in planes.sent  # the ClusterDataPlane's CR key
    deployment = kube.get("deployments", DP_NAMESPACE, COMPONENT)
    assert deployment is not None
    labels = deployment["metadata"]["labels"]
    component = store.get("Component", "default", COMPONENT)
    binding = store.get("ReleaseBinding", *BINDING)
    assert component is not None and binding is not None
    assert labels[LABEL_COMPONENT] == COMPONENT
    assert labels[LABEL_COMPONENT_UID] == component["metadata"]["uid"]
    assert labels[LABEL_MANAGED_BY] == RELEASE_CONTROLLER
    assert labels[LABEL_RELEASE_UID] == RenderedRelease.of(binding, "dataplane").uid
    assert deployment["spec"]["replicas"] == 2
    assert LABEL_ENVIRONMENT_UID in deployment["spec"]["template"]["metadata"]["labels"]
    # no alert-rule traits: nothing applied to the observability plane (it is only listed for pruning)
    assert not [c for c in planes[OBSERVABILITY_PLANE].calls if c[0] == "PATCH"]


async def test_status_conditions_follow_the_deployment_and_keep_transition_times(store: Store, planes: Planes) -> None:
    loop = reconciler(store, planes)
    await loop.pass_once()
    first = conditions(store)
    assert first["ResourcesApplied"]["status"] == "True" and first["ResourcesApplied"]["reason"] == "Applied"
    assert first["Available"]["status"] == "False" and first["Available"]["reason"] == "Progressing"
    assert "0/2 replicas available" in first["Available"]["message"]
    assert first["Ready"]["status"] == "False"
    binding = store.get("ReleaseBinding", *BINDING)
    assert binding is not None
    assert binding["status"]["observedGeneration"] == binding["metadata"]["generation"]
    assert all(c["observedGeneration"] == binding["metadata"]["generation"] for c in first.values())

    make_available(planes)
    first["ResourcesApplied"]["lastTransitionTime"] = "2000-01-01T00:00:00Z"  # to see it is kept, not rewritten
    store.put_status("ReleaseBinding", *BINDING, {**binding["status"], "conditions": list(first.values())})
    await loop.pass_once()
    second = conditions(store)
    assert second["Available"]["status"] == "True" and second["Available"]["message"] == "2/2 replicas available"
    assert second["Ready"]["status"] == "True"
    assert second["ResourcesApplied"]["lastTransitionTime"] == "2000-01-01T00:00:00Z"


async def test_status_is_written_only_when_it_changed(store: Store, planes: Planes) -> None:
    loop = reconciler(store, planes)
    await loop.pass_once()
    settled = store.revision()
    await loop.pass_once()
    assert store.revision() == settled


async def test_drift_is_restored_by_the_next_pass(store: Store, planes: Planes) -> None:
    loop = reconciler(store, planes)
    await loop.pass_once()
    del planes[DATA_PLANE].objects[("deployments", DP_NAMESPACE, COMPONENT)]
    await loop.pass_once()
    assert planes[DATA_PLANE].get("deployments", DP_NAMESPACE, COMPONENT) is not None


async def test_what_is_no_longer_rendered_is_pruned_but_the_namespace_stays(store: Store, planes: Planes) -> None:
    loop = reconciler(store, planes)
    await loop.pass_once()
    kube = planes[DATA_PLANE]
    stray = copy.deepcopy(kube.get("services", DP_NAMESPACE, COMPONENT))
    assert stray is not None
    stray["metadata"]["name"] = "left-over"
    kube.objects[("services", DP_NAMESPACE, "left-over")] = stray
    foreign = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "theirs", "namespace": DP_NAMESPACE}}
    kube.objects[("services", DP_NAMESPACE, "theirs")] = foreign
    workload = store.get("Workload", "default", f"{COMPONENT}-workload")
    assert workload is not None
    del workload["spec"]["endpoints"]
    store.replace(workload)
    await loop.pass_once()
    assert kube.names("services") == [f"{DP_NAMESPACE}/theirs"]
    assert kube.names("deployments") == [f"{DP_NAMESPACE}/{COMPONENT}"]
    deletes = [path for method, path, _ in kube.calls if method == "DELETE"]
    assert sorted(deletes) == [
        f"/api/v1/namespaces/{DP_NAMESPACE}/services/{COMPONENT}",
        f"/api/v1/namespaces/{DP_NAMESPACE}/services/left-over",
    ]
    assert kube.names("namespaces") == [DP_NAMESPACE]


async def test_undeploy_removes_the_release_and_says_so(store: Store, planes: Planes) -> None:
    loop = reconciler(store, planes)
    await loop.pass_once()
    binding = store.get("ReleaseBinding", *BINDING)
    assert binding is not None
    binding["spec"]["state"] = "Undeploy"
    store.replace(binding)
    await loop.pass_once()
    kube = planes[DATA_PLANE]
    assert kube.names("deployments") == [] and kube.names("services") == []
    deletes = [path for method, path, _ in kube.calls if method == "DELETE"]
    assert deletes == [  # in reverse of the apply order: the Service before the Deployment
        f"/api/v1/namespaces/{DP_NAMESPACE}/services/{COMPONENT}",
        f"/apis/apps/v1/namespaces/{DP_NAMESPACE}/deployments/{COMPONENT}",
    ]
    assert kube.names("namespaces") == [DP_NAMESPACE]
    found = conditions(store)
    assert found["ResourcesApplied"]["status"] == "True"
    assert found["Available"]["reason"] == "Undeployed" and found["Ready"]["status"] == "False"
    assert found["Ready"]["observedGeneration"] == 2


async def test_a_missing_input_is_render_failed_naming_it(store: Store, planes: Planes) -> None:
    store.delete("Workload", "default", f"{COMPONENT}-workload")
    await reconciler(store, planes).pass_once()
    found = conditions(store)
    assert found["ResourcesApplied"]["reason"] == "RenderFailed"
    assert f"no Workload of Component '{COMPONENT}'" in found["ResourcesApplied"]["message"]
    assert found["Available"]["status"] == "Unknown" and found["Ready"]["reason"] == "RenderFailed"
    assert not [call for call in planes[DATA_PLANE].calls if call[0] == "PATCH"]


async def test_a_refused_apply_is_apply_failed_naming_the_object(store: Store, planes: Planes) -> None:
    planes[DATA_PLANE].refuse[("PATCH", "services")] = 422
    await reconciler(store, planes).pass_once()
    found = conditions(store)
    assert found["ResourcesApplied"]["reason"] == "ApplyFailed"
    assert f"apply Service {DP_NAMESPACE}/{COMPONENT}: 422" in found["ResourcesApplied"]["message"]
