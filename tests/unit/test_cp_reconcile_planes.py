"""The observability plane (alert rules from the trait, channels) and finalizer-free delete (the sweep)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml

from controlplane.reconcile.loop import Reconciler
from controlplane.render.labels import CHANNEL_CONTROLLER, LABEL_APP_MANAGED_BY
from controlplane.store import Store
from tests.unit.test_cp_reconcile_fixtures import (
    API,
    BINDING,
    DATA_PLANE,
    DP_NAMESPACE,
    OBSERVABILITY_PLANE,
    SAMPLES,
    Planes,
    conditions,
    world,
)

COMPONENT = "demo-app-http-service"
TOKEN_REF = {"valueFrom": {"secretKeyRef": {"name": "hooks", "key": "token"}}}


def secret(value: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "hooks", "namespace": "default"},
        "stringData": {"token": value},
    }


def alert_trait() -> dict[str, Any]:
    """The first alert-rule trait instance of upstream's sample components."""
    for doc in yaml.safe_load_all((SAMPLES / "components-with-alert-rules.yaml").read_text()):
        if isinstance(doc, dict) and doc.get("kind") == "Component":
            trait: dict[str, Any] = doc["spec"]["traits"][0]
            return trait
    raise LookupError("no component")


def channel(name: str = "hooks-dev", **headers: Any) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "ObservabilityAlertsNotificationChannel",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "environment": "development",
            "isEnvDefault": True,
            "type": "webhook",
            "webhookConfig": {"url": "http://receiver:9000/hook", "headers": headers},
        },
    }


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store(f"sqlite:///{tmp_path / 'cp.db'}")
    world(store)
    return store


@pytest.fixture
def planes() -> Planes:
    return Planes(DATA_PLANE, OBSERVABILITY_PLANE)


def reconciler(store: Store, planes: Planes) -> Reconciler:
    return Reconciler(store, planes, resync_s=3600, progressing_s=10)


async def test_alert_rules_go_to_the_observability_plane_after_its_namespace(store: Store, planes: Planes) -> None:
    component = store.get("Component", "default", COMPONENT)
    assert component is not None
    component["spec"]["traits"] = [alert_trait()]
    store.replace(component)
    store.create(channel())
    await reconciler(store, planes).pass_once()
    kube = planes[OBSERVABILITY_PLANE]
    rule_patches = [path for method, path, query in kube.calls if method == "PATCH" and "renderedrelease" in query]
    assert rule_patches[0] == "/api/v1/namespaces/default"
    assert rule_patches[1].startswith("/apis/openchoreo.dev/v1alpha1/namespaces/default/observabilityalertrules/")
    (rule,) = kube.names("observabilityalertrules")
    assert rule.startswith("default/")
    assert ("observabilityplane", "shared-obs", "/default") in planes.sent
    found = conditions(store)
    assert found["ResourcesApplied"]["reason"] == "Applied"
    assert "observabilityplane/shared-obs" in found["ResourcesApplied"]["message"]

    current = store.get("Component", "default", COMPONENT)
    assert current is not None
    current["spec"]["traits"] = []  # the trait removed: the rule is pruned from the observability plane
    store.replace(current)
    await reconciler(store, planes).pass_once()
    assert kube.names("observabilityalertrules") == []
    assert kube.names("namespaces") == ["default"]


async def test_a_channel_becomes_a_configmap_and_secret_owned_by_the_channel_controller(
    store: Store, planes: Planes
) -> None:
    store.create(secret("s3cr3t"))
    store.create(channel(Authorization=TOKEN_REF))
    loop = reconciler(store, planes)
    await loop.pass_once()
    kube = planes[OBSERVABILITY_PLANE]
    assert kube.names("configmaps") == ["default/hooks-dev"] and kube.names("secrets") == ["default/hooks-dev"]
    configmap = kube.get("configmaps", "default", "hooks-dev")
    assert configmap is not None
    assert configmap["data"]["webhook.url"] == "http://receiver:9000/hook"
    assert configmap["metadata"]["labels"][LABEL_APP_MANAGED_BY] == CHANNEL_CONTROLLER
    stored = kube.get("secrets", "default", "hooks-dev")
    assert stored is not None
    assert base64.b64decode(stored["data"]["webhook.header.Authorization"]) == b"s3cr3t"
    assert all(f"fieldManager={CHANNEL_CONTROLLER}" in q for m, p, q in kube.calls if m == "PATCH")
    assert loop.channel_results[("default", "hooks-dev")].startswith("Applied")

    store.delete("ObservabilityAlertsNotificationChannel", "default", "hooks-dev")
    await loop.pass_once()  # finalizer-free: the sweep removes what the deleted channel left
    assert kube.names("configmaps") == [] and kube.names("secrets") == []
    assert kube.names("namespaces") == ["default"]


async def test_a_missing_secret_is_render_failed_until_the_secret_is_written(store: Store, planes: Planes) -> None:
    store.create(channel(Authorization=TOKEN_REF))
    loop = reconciler(store, planes)
    await loop.step()  # the first turn is a full pass
    result = loop.channel_results[("default", "hooks-dev")]
    assert result.startswith("RenderFailed") and "'hooks' not found" in result
    assert planes[OBSERVABILITY_PLANE].names("configmaps") == []

    store.create(secret("t0k3n"))
    await loop.step()  # a Secret write wakes the channels of its namespace
    assert loop.channel_results[("default", "hooks-dev")].startswith("Applied")
    stored = planes[OBSERVABILITY_PLANE].get("secrets", "default", "hooks-dev")
    assert stored is not None
    assert base64.b64decode(stored["data"]["webhook.header.Authorization"]) == b"t0k3n"


async def test_deleting_the_binding_sweeps_its_objects_from_the_plane(store: Store, planes: Planes) -> None:
    loop = reconciler(store, planes)
    await loop.pass_once()
    kube = planes[DATA_PLANE]
    assert kube.names("deployments") == [f"{DP_NAMESPACE}/{COMPONENT}"]
    foreign = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x", "namespace": DP_NAMESPACE}}
    kube.objects[("deployments", DP_NAMESPACE, "x")] = foreign
    store.delete("ReleaseBinding", *BINDING)
    await loop.pass_once()
    assert kube.names("deployments") == [f"{DP_NAMESPACE}/x"]  # ours gone, the unlabelled one untouched
    assert kube.names("services") == []
    assert kube.names("namespaces") == [DP_NAMESPACE]  # namespaces are never deleted


async def test_the_sweep_skips_a_disconnected_plane_and_finishes_when_it_is_back(store: Store, planes: Planes) -> None:
    clock = [0.0]
    loop = Reconciler(store, planes, resync_s=3600, clock=lambda: clock[0])
    await loop.pass_once()
    store.delete("ReleaseBinding", *BINDING)
    planes.down.add(DATA_PLANE)
    await loop.pass_once()
    assert planes[DATA_PLANE].names("deployments") == [f"{DP_NAMESPACE}/{COMPONENT}"]
    planes.down.clear()
    clock[0] += 120  # past any backoff
    await loop.pass_once()
    assert planes[DATA_PLANE].names("deployments") == []


async def test_an_unserved_kind_is_not_an_error_when_nothing_of_it_is_rendered(store: Store, planes: Planes) -> None:
    planes[OBSERVABILITY_PLANE].unserved.add("observabilityalertrules")  # no CRD there
    await reconciler(store, planes).pass_once()
    assert conditions(store)["ResourcesApplied"]["reason"] == "Applied"
