"""The live object tree of one ReleaseBinding: what its releases put into their planes, as the planes hold it now.

Answers `GET .../releasebindings/{name}/k8sresources/tree` (openchoreo-api.yaml K8sResourceTreeResponse). The
binding is rendered exactly as the release pass renders it (releases.py `plan_release`: same inputs, same
objects, same release names), then every rendered object is read back with a GET through the gateway
(PlaneClient), so the answer is the planes' truth, not the store's: a Deployment's replicas, an
ObservabilityAlertRule's `status.phase`, `backendMonitorId` and `Synced` condition written by the
observability plane's controller. Health per node comes from controlplane/render/health.py.

One release per target plane (`dataplane`, and `observabilityplane` when rules were rendered), nodes in render
order, top-level only (`parentRefs` empty: the PlaneClient reads only the kinds the control plane renders, not
their ReplicaSets or Pods). A plane that does not answer does not fail the call: the nodes it could not read are
given from the rendered object with health `Unknown`, "plane disconnected". An object the plane does not have is
`Unknown`, "not found in <plane>" (it was never applied, or was deleted by hand and awaits the next pass).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from controlplane.errors import ApiError, NotFound
from controlplane.proxy_client import PlaneClient, PlaneRequestFailed, PlaneUnavailable, Transport
from controlplane.reconcile.planes import describe
from controlplane.reconcile.releases import Target, plan_release
from controlplane.render.errors import RenderError
from controlplane.render.health import UNKNOWN, health_of
from controlplane.store import Store

TREE_TIMEOUT_S = 10.0  # per GET through the tunnel: a tree is read while a person waits
DISCONNECTED = "plane disconnected"


class GatewayOff(ApiError):
    """503: the process runs without its cluster gateway (no SERVER_CERT_PATH), so no plane can be read."""

    def __init__(self) -> None:
        super().__init__(
            503,
            "SERVICE_UNAVAILABLE",
            "the cluster gateway is off (SERVER_CERT_PATH is not set): live resources cannot be read",
        )


def _split(api_version: str) -> tuple[str, str]:
    """`apps/v1` -> (`apps`, `v1`); core `v1` -> (``, `v1`)."""
    group, _, version = api_version.rpartition("/")
    return group, version


def _shown(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The object as the API may show it: a Secret's values blanked, as the resource API does (api.py)."""
    out = dict(obj)
    if out.get("kind") == "Secret":
        out.pop("stringData", None)
        out["data"] = {key: "" for key in out.get("data") or {}}
    return out


def node(rendered: Mapping[str, Any], live: Mapping[str, Any] | None, health: tuple[str, str]) -> dict[str, Any]:
    """One ResourceNode: identity from the live object when there is one (uid, resourceVersion, createdAt), else
    from what was rendered (uid empty: nothing in the plane has one)."""
    source = live if live is not None else rendered
    metadata = source.get("metadata") or {}
    group, version = _split(str(source.get("apiVersion") or rendered.get("apiVersion") or ""))
    out: dict[str, Any] = {
        "group": group,
        "version": version,
        "kind": str(source.get("kind") or rendered.get("kind")),
        "name": str(metadata.get("name") or ""),
        "uid": str(metadata.get("uid") or ""),
    }
    if metadata.get("namespace"):
        out["namespace"] = str(metadata["namespace"])
    if live is not None:
        out["resourceVersion"] = str(metadata.get("resourceVersion") or "")
        if metadata.get("creationTimestamp"):
            out["createdAt"] = str(metadata["creationTimestamp"])
    out["parentRefs"] = []
    out["object"] = _shown(source)
    out["health"] = {"status": health[0], "message": health[1]}
    return out


async def _release_nodes(transport: Transport, target: Target, timeout: float) -> list[dict[str, Any]]:
    """Every rendered object of one release, read live; after the plane fails to answer once, the rest are not
    asked (each would wait out its own timeout) and report the plane disconnected."""
    client = PlaneClient(transport, target.plane, timeout)
    nodes: list[dict[str, Any]] = []
    connected = True
    for rendered in target.objects:
        metadata = rendered.get("metadata") or {}
        if not connected:
            nodes.append(node(rendered, None, (UNKNOWN, DISCONNECTED)))
            continue
        try:
            live = await client.get(str(rendered["kind"]), str(metadata.get("namespace") or ""), str(metadata["name"]))
        except PlaneUnavailable:
            connected = False
            nodes.append(node(rendered, None, (UNKNOWN, DISCONNECTED)))
            continue
        except PlaneRequestFailed as exc:
            nodes.append(node(rendered, None, (UNKNOWN, f"{describe(target.plane)} refused the read: {exc}")))
            continue
        if live is None:
            nodes.append(node(rendered, None, (UNKNOWN, f"not found in {describe(target.plane)}")))
            continue
        live.setdefault("apiVersion", rendered.get("apiVersion"))
        live.setdefault("kind", rendered.get("kind"))
        nodes.append(node(rendered, live, health_of(live)))
    return nodes


async def release_tree(
    store: Store, transport: Transport | None, namespace: str, name: str, timeout: float = TREE_TIMEOUT_S
) -> dict[str, Any]:
    """K8sResourceTreeResponse of binding `namespace/name` (module docstring). NotFound for an unknown binding
    (or an input of it that is missing, named); 422 when it cannot be rendered; GatewayOff without a transport."""
    binding = await asyncio.to_thread(store.get, "ReleaseBinding", namespace, name)
    if binding is None:
        if await asyncio.to_thread(store.get, "Namespace", None, namespace) is None:
            raise NotFound(f"Namespace '{namespace}' not found")
        raise NotFound(f"ReleaseBinding '{name}' not found")
    if transport is None:
        raise GatewayOff()
    try:
        plan = await asyncio.to_thread(plan_release, store, binding)
    except RenderError as exc:
        raise ApiError(422, "UNPROCESSABLE_CONTENT", f"ReleaseBinding '{name}' cannot be rendered: {exc}") from exc
    releases = []
    for target in plan.targets:
        if not target.objects and not target.required:
            continue  # no alert rules: no observability-plane release exists
        releases.append(
            {
                "name": target.release.name,
                "targetPlane": target.release.target_plane,
                "nodes": await _release_nodes(transport, target, timeout),
            }
        )
    return {"renderedReleases": releases}
