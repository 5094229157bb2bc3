"""Shared by the test_cp_reconcile_* unit tests: an in-process Kubernetes API behind the gateway's `Transport`
protocol, and a store holding upstream's http-service sample with its planes.

`Planes` is a real implementation of `Transport` for unit tests (no mock library): each (planeType, planeID) is a
`Kube`, a dict of objects answering the REST calls PlaneClient makes (server-side apply PATCH, GET item, GET list
with an equality label selector, DELETE) as the API server answers them (404 Status bodies, list items without
apiVersion/kind, generation bumped on spec changes). A plane in `Planes.down` answers like the gateway with no
agent (a ConnectionError); a plural in `Kube.unserved` is 404 (a CRD not installed); `Kube.refuse` makes one
(method, plural) fail with a status.
"""

from __future__ import annotations

import copy
import json
import urllib.parse
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from controlplane import kinds
from controlplane.selectors import parse
from controlplane.store import Store
from tunnel.frames import TunnelRequest, TunnelResponse

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "controlplane" / "samples"
API = "openchoreo.dev/v1alpha1"
CA = {"clientCA": {"value": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"}}
DATA_PLANE = ("dataplane", "default")
OBSERVABILITY_PLANE = ("observabilityplane", "shared-obs")
BINDING = ("default", "demo-app-http-service-development")
DP_NAMESPACE = "dp-default-default-development"


def _status(code: int, message: str) -> TunnelResponse:
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "code": code}
    return TunnelResponse("", code, {"Content-Type": ["application/json"]}, json.dumps(body).encode())


def _ok(code: int, document: dict[str, Any]) -> TunnelResponse:
    return TunnelResponse("", code, {"Content-Type": ["application/json"]}, json.dumps(document).encode())


@dataclass
class Kube:
    """One plane's API server: objects by (plural, namespace, name)."""

    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    unserved: set[str] = field(default_factory=set)
    refuse: dict[tuple[str, str], int] = field(default_factory=dict)
    calls: list[tuple[str, str, str]] = field(default_factory=list)  # (method, path, query)

    def answer(self, request: TunnelRequest) -> TunnelResponse:
        self.calls.append((request.method, request.path, request.query))
        parts = [urllib.parse.unquote(p) for p in request.path.strip("/").split("/")]
        rest = parts[2:] if parts[0] == "api" else parts[3:]
        namespace = ""
        if rest[0] == "namespaces" and len(rest) > 2:
            namespace, rest = rest[1], rest[2:]
        plural, name = rest[0], (rest[1] if len(rest) > 1 else "")
        if plural in self.unserved:
            return _status(404, "the server could not find the requested resource")
        if (request.method, plural) in self.refuse:
            return _status(self.refuse[(request.method, plural)], f"{plural} {name} refused")
        key = (plural, namespace, name)
        query = urllib.parse.parse_qs(request.query)
        if request.method == "GET" and not name:
            selector = parse(query.get("labelSelector", [""])[0])
            items = []
            for (p, ns, _), obj in sorted(self.objects.items()):
                if (
                    p == plural
                    and (not namespace or ns == namespace)
                    and selector.matches(obj["metadata"].get("labels"))
                ):
                    item = copy.deepcopy(obj)
                    item.pop("apiVersion", None)
                    item.pop("kind", None)
                    items.append(item)
            start = int(query.get("continue", ["0"])[0])  # the API server's token is opaque; ours is an offset
            limit = int(query.get("limit", ["0"])[0]) or len(items)
            page = {"continue": str(start + limit)} if start + limit < len(items) else {}
            return _ok(
                200, {"kind": "List", "apiVersion": "v1", "metadata": page, "items": items[start : start + limit]}
            )
        if request.method == "GET":
            found = self.objects.get(key)
            return _ok(200, found) if found else _status(404, f'{plural} "{name}" not found')
        if request.method == "DELETE":
            gone = self.objects.pop(key, None)
            return _ok(200, gone) if gone else _status(404, f'{plural} "{name}" not found')
        if request.method == "PATCH":
            assert request.headers["Content-Type"] == ["application/apply-patch+yaml"]
            assert "force=true" in request.query and "fieldManager=" in request.query
            body = json.loads(request.body)
            old = self.objects.get(key)
            new = copy.deepcopy(body)
            metadata = new["metadata"]
            if old is None:
                metadata["uid"] = str(uuid.uuid4())
                metadata["generation"] = 1
            else:
                metadata["uid"] = old["metadata"]["uid"]
                changed = old.get("spec") != new.get("spec")
                metadata["generation"] = old["metadata"]["generation"] + (1 if changed else 0)
                if "status" in old:
                    new["status"] = old["status"]
            self.objects[key] = new
            return _ok(201 if old is None else 200, new)
        return _status(405, "method not allowed")

    def names(self, plural: str) -> list[str]:
        """`namespace/name` (or `name`) of every object of a plural."""
        return sorted(f"{ns}/{name}" if ns else name for p, ns, name in self.objects if p == plural)

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((plural, namespace, name))


class Planes:
    """The `Transport` of the unit tests (module docstring)."""

    def __init__(self, *planes: tuple[str, str]) -> None:
        self.kubes = {plane: Kube() for plane in planes}
        self.down: set[tuple[str, str]] = set()
        self.sent: list[tuple[str, str, str]] = []  # (planeType, planeID, crKey) of every send, refused ones too

    def __getitem__(self, plane: tuple[str, str]) -> Kube:
        return self.kubes[plane]

    async def send(
        self, plane_type: str, plane_id: str, cr_key: str, request: TunnelRequest, timeout: float
    ) -> TunnelResponse:
        self.sent.append((plane_type, plane_id, cr_key))
        if (plane_type, plane_id) in self.down or (plane_type, plane_id) not in self.kubes:
            raise ConnectionError(f"no agents found for plane {plane_type}/{plane_id}")
        response = self.kubes[(plane_type, plane_id)].answer(request)
        return TunnelResponse(request.request_id, response.status_code, response.headers, response.body)


def samples(*files: str) -> list[dict[str, Any]]:
    """The documents of these sample files that are kinds the store serves."""
    docs: list[dict[str, Any]] = []
    for name in files:
        for doc in yaml.safe_load_all((SAMPLES / name).read_text()):
            if isinstance(doc, dict) and doc.get("kind") in kinds.BY_KIND:
                docs.append(doc)
    return docs


def plane(file: str, spec: dict[str, Any], name: str, client_ca: str = "") -> dict[str, Any]:
    """A plane sample (its spec is empty upstream) with the spec its CRD requires; `client_ca` is the PEM of the
    CA its agents' certificates come from (a placeholder when the test has no agent)."""
    (doc,) = samples(file)
    agent = {"clientCA": {"value": client_ca}} if client_ca else CA
    doc["spec"] = {"clusterAgent": agent, **spec}
    doc["metadata"]["name"] = name
    return doc


def world(store: Store, *, observability: bool = True, client_ca: str = "", namespace: str = "default") -> None:
    """The http-service sample (Component, Workload, ReleaseBinding with 2 replicas) in namespace `default`, the
    sample Environments (ClusterDataPlane `default`) and, when `observability`, the ClusterObservabilityPlane
    `default` (planeID `shared-obs`) the data plane names. `client_ca`: the planes' agent CA (PEM); `namespace`:
    the control-plane namespace the namespaced documents go to."""
    dp_spec: dict[str, Any] = {}
    documents: list[dict[str, Any]] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}]
    if observability:
        documents.append(
            plane(
                "openchoreo_v1alpha1_clusterobservabilityplane.yaml",
                {"observerURL": "http://observer:8080", "planeID": "shared-obs"},
                "default",
                client_ca,
            )
        )
        dp_spec = {"observabilityPlaneRef": {"kind": "ClusterObservabilityPlane", "name": "default"}}
    documents += [
        plane("openchoreo_v1alpha1_clusterdataplane.yaml", dp_spec, "default", client_ca),
        {
            "apiVersion": API,
            "kind": "Project",
            "metadata": {"name": "default", "namespace": "default"},
            "spec": {"deploymentPipelineRef": {"name": "default"}, "type": {"name": "default"}},
        },
        *samples("environments.yaml", "http-service-component.yaml"),
    ]
    for doc in documents:
        if kinds.get(doc["kind"]).namespaced:
            doc["metadata"]["namespace"] = namespace
        store.create(doc)


def conditions(store: Store, namespace: str = BINDING[0], name: str = BINDING[1]) -> dict[str, dict[str, Any]]:
    """The binding's conditions by type."""
    binding = store.get("ReleaseBinding", namespace, name)
    assert binding is not None
    return {c["type"]: c for c in (binding.get("status") or {}).get("conditions") or []}
