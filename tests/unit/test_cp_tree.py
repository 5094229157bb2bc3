"""A ReleaseBinding's live resource tree (controlplane/reconcile/tree.py and its route in controlplane/api.py) over
the in-process planes of test_cp_reconcile_fixtures: the response shape of openchoreo-api.yaml, health from the
live objects, a disconnected plane, 404s, 503 without a gateway, `releasebinding:view` asked on the binding's
scope; and the owner cascade of the store leaving no rendered object behind once the sweep ran."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from access.model import Subject
from controlplane.api import create_app
from controlplane.auth import Guard
from controlplane.authz import store_authorizer
from controlplane.proxy_client import Transport
from controlplane.reconcile.loop import Reconciler
from controlplane.render.labels import RenderedRelease
from controlplane.store import Store
from tests.unit.test_cp_reconcile_fixtures import (
    BINDING,
    DATA_PLANE,
    DP_NAMESPACE,
    OBSERVABILITY_PLANE,
    Planes,
    world,
)
from tests.unit.test_cp_reconcile_planes import alert_trait, channel

COMPONENT = "demo-app-http-service"
TREE = f"/api/v1/namespaces/{BINDING[0]}/releasebindings/{BINDING[1]}/k8sresources/tree"

_REF = {
    "type": "object",
    "required": ["version", "kind", "name", "uid"],
    "properties": {k: {"type": "string"} for k in ("group", "version", "kind", "namespace", "name", "uid")},
}
#: openchoreo-api.yaml's K8sResourceTreeResponse (l.11306) with ReleaseResourceTree, ResourceNode, ResourceRef and
#: HealthInfo inlined; additionalProperties closed so a field the spec does not name fails the test.
TREE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["renderedReleases"],
    "additionalProperties": False,
    "properties": {
        "renderedReleases": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "targetPlane", "nodes"],
                "additionalProperties": False,
                "properties": {
                    "name": {"type": "string"},
                    "targetPlane": {"enum": ["dataplane", "observabilityplane"]},
                    "renderedRelease": {"type": "object"},
                    "nodes": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["version", "kind", "name", "uid", "object"],
                            "additionalProperties": False,
                            "properties": {
                                **{
                                    k: {"type": "string"}
                                    for k in ("group", "version", "kind", "namespace", "name", "uid", "resourceVersion")
                                },
                                "createdAt": {"type": "string", "format": "date-time"},
                                "parentRefs": {"type": "array", "items": _REF},
                                "object": {"type": "object"},
                                "health": {
                                    "type": "object",
                                    "required": ["status"],
                                    "additionalProperties": False,
                                    "properties": {"status": {"type": "string"}, "message": {"type": "string"}},
                                },
                            },
                        },
                    },
                },
            },
        }
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
    return Reconciler(store, planes, resync_s=3600, progressing_s=10, poll_s=0.01)


class SubjectFromHeader:
    """Test-side authentication: the caller's groups from `x-groups` (the real middleware verifies a JWT)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            groups = dict(scope["headers"]).get(b"x-groups", b"").decode()
            subject = Subject("user", "groups", tuple(g for g in groups.split(",") if g)) if groups else None
            scope.setdefault("state", {})["subject"] = subject
        await self.app(scope, receive, send)


@asynccontextmanager
async def api(store: Store, transport: Transport | None, *, guarded: bool = False) -> AsyncIterator[httpx.AsyncClient]:
    if guarded:
        app = create_app(
            store,
            middleware=[Middleware(SubjectFromHeader)],
            guard=Guard(store_authorizer(store, ("ops",)), ("ops",)),
            transport=transport,
        )
    else:
        app = create_app(store, transport=transport)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://cp") as client:
        yield client


async def tree(store: Store, transport: Transport | None) -> dict[str, Any]:
    async with api(store, transport) as client:
        answer = await client.get(TREE)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    jsonschema.validate(body, TREE_SCHEMA, format_checker=jsonschema.FormatChecker())
    return body


def by_kind(release: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {node["kind"]: node for node in release["nodes"]}


async def test_the_tree_shows_each_rendered_object_live_with_its_health(store: Store, planes: Planes) -> None:
    await reconciler(store, planes).pass_once()
    kube = planes[DATA_PLANE]
    deployment = kube.get("deployments", DP_NAMESPACE, COMPONENT)
    assert deployment is not None
    body = await tree(store, planes)
    binding = store.get("ReleaseBinding", *BINDING)
    assert binding is not None
    (release,) = body["renderedReleases"]  # no alert rules: no observability-plane release
    assert release["name"] == RenderedRelease.of(binding, "dataplane").name == BINDING[1]
    assert release["targetPlane"] == "dataplane"
    assert [(n["kind"], n["name"]) for n in release["nodes"]] == [
        ("Namespace", DP_NAMESPACE),
        ("Deployment", COMPONENT),
        ("Service", COMPONENT),
    ]
    nodes = by_kind(release)
    shown = nodes["Deployment"]
    assert (shown["group"], shown["version"], shown["namespace"]) == ("apps", "v1", DP_NAMESPACE)
    assert shown["uid"] == deployment["metadata"]["uid"]  # the plane's object, not the rendering
    assert shown["object"]["spec"]["replicas"] == 2 and shown["parentRefs"] == []
    assert shown["health"] == {
        "status": "Progressing",
        "message": "waiting for the rollout to be observed, 0/2 replicas available",
    }
    assert (nodes["Service"]["group"], nodes["Service"]["version"]) == ("", "v1")
    assert nodes["Service"]["health"]["status"] == "Healthy"
    assert "namespace" not in nodes["Namespace"]  # cluster-scoped

    deployment["status"] = {"observedGeneration": 1, "replicas": 2, "availableReplicas": 2}  # the plane's word
    again = by_kind((await tree(store, planes))["renderedReleases"][0])
    assert again["Deployment"]["health"] == {"status": "Healthy", "message": "2/2 replicas available"}
    assert again["Deployment"]["object"]["status"]["availableReplicas"] == 2


async def test_an_alert_rule_status_from_the_observability_plane_is_visible(store: Store, planes: Planes) -> None:
    component = store.get("Component", "default", COMPONENT)
    assert component is not None
    component["spec"]["traits"] = [alert_trait()]
    store.replace(component)
    store.create(channel())
    await reconciler(store, planes).pass_once()
    kube = planes[OBSERVABILITY_PLANE]
    ((plural, namespace, name),) = [key for key in kube.objects if key[0] == "observabilityalertrules"]
    releases = {r["targetPlane"]: r for r in (await tree(store, planes))["renderedReleases"]}
    assert set(releases) == {"dataplane", "observabilityplane"}
    rule = by_kind(releases["observabilityplane"])["ObservabilityAlertRule"]
    assert (rule["group"], rule["version"], rule["name"]) == ("openchoreo.dev", "v1alpha1", name)
    assert rule["health"]["status"] == "Progressing"  # the plane's controller has not reconciled it yet
    synced = {"type": "Synced", "status": "True", "reason": "Synced", "message": "monitor m-17 up to date"}
    kube.objects[(plural, namespace, name)]["status"] = {
        "phase": "Ready",
        "backendMonitorId": "m-17",
        "conditions": [synced],
    }
    rule = by_kind((await tree(store, planes))["renderedReleases"][1])["ObservabilityAlertRule"]
    assert rule["health"] == {"status": "Healthy", "message": "monitor m-17 up to date"}
    assert rule["object"]["status"]["backendMonitorId"] == "m-17"


async def test_a_disconnected_plane_answers_its_nodes_unknown_and_is_asked_once(store: Store, planes: Planes) -> None:
    await reconciler(store, planes).pass_once()
    planes.down.add(DATA_PLANE)
    sent = len(planes.sent)
    (release,) = (await tree(store, planes))["renderedReleases"]
    assert [n["kind"] for n in release["nodes"]] == ["Namespace", "Deployment", "Service"]
    assert all(n["health"] == {"status": "Unknown", "message": "plane disconnected"} for n in release["nodes"])
    assert all(n["uid"] == "" and "resourceVersion" not in n for n in release["nodes"])
    assert release["nodes"][1]["object"]["spec"]["replicas"] == 2  # what would be there: the rendering
    assert len(planes.sent) == sent + 1  # after the first refusal the others are not tried


async def test_objects_not_in_the_plane_are_unknown_and_say_so(store: Store, planes: Planes) -> None:
    (release,) = (await tree(store, planes))["renderedReleases"]  # never reconciled: nothing applied
    for node in release["nodes"]:
        assert node["health"]["status"] == "Unknown"
        assert node["health"]["message"] == "not found in dataplane/default (CR /default)"


async def test_unknown_binding_or_namespace_is_404_and_no_gateway_is_503(store: Store, planes: Planes) -> None:
    async with api(store, planes) as client:
        missing = await client.get("/api/v1/namespaces/default/releasebindings/nope/k8sresources/tree")
        no_namespace = await client.get(f"/api/v1/namespaces/nope/releasebindings/{BINDING[1]}/k8sresources/tree")
        extra = await client.get(TREE, params={"watch": "true"})
    assert (missing.status_code, missing.json()) == (
        404,
        {"error": "ReleaseBinding 'nope' not found", "code": "NOT_FOUND"},
    )
    assert (no_namespace.status_code, no_namespace.json()["error"]) == (404, "Namespace 'nope' not found")
    assert extra.status_code == 400 and extra.json()["details"][0]["field"] == "watch"
    async with api(store, None) as client:
        off = await client.get(TREE)
    assert off.status_code == 503 and off.json()["code"] == "SERVICE_UNAVAILABLE"
    assert "gateway is off" in off.json()["error"]
    assert planes.sent == []


async def test_the_tree_asks_releasebinding_view_on_the_binding_scope(store: Store, planes: Planes) -> None:
    async with api(store, planes, guarded=True) as client:
        anonymous = await client.get(TREE)
        denied = await client.get(TREE, headers={"x-groups": "devs"})
        admin = await client.get(TREE, headers={"x-groups": "ops"})
    assert anonymous.status_code == 401
    assert denied.status_code == 403
    assert "releasebinding:view" in denied.json()["error"]
    assert f"component/{COMPONENT}" in denied.json()["error"]  # the binding's scope, from its owner
    assert admin.status_code == 200
    assert planes.sent  # only the admin's call reached the plane


async def test_deleting_the_component_leaves_no_rendered_object_after_the_sweep(store: Store, planes: Planes) -> None:
    component = store.get("Component", "default", COMPONENT)
    assert component is not None
    component["spec"]["traits"] = [alert_trait()]
    store.replace(component)
    store.create(channel())
    running = reconciler(store, planes)
    await running.pass_once()
    assert planes[DATA_PLANE].names("deployments") and planes[OBSERVABILITY_PLANE].names("observabilityalertrules")
    store.delete("Component", "default", COMPONENT)
    assert store.get("ReleaseBinding", *BINDING) is None
    assert store.list("Workload", "default").items == []
    await running.pass_once()
    for plural in ("configmaps", "deployments", "services"):
        assert planes[DATA_PLANE].names(plural) == []
    assert planes[OBSERVABILITY_PLANE].names("observabilityalertrules") == []
    assert planes[DATA_PLANE].names("namespaces") == [DP_NAMESPACE]  # ensured, never pruned
