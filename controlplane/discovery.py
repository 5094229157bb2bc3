"""Which observer serves an environment, and which plane CRs answer to a plane ID: the chains OpenChoreo follows.

`observer_url` walks what `occ component logs` walks (resolveObserverURL): the Environment's `spec.dataPlaneRef`
(unset: the DataPlane `default` in the same namespace) -> that plane's `spec.observabilityPlaneRef` (unset: the
ObservabilityPlane `default` in the same namespace) -> the observability plane's `spec.observerURL`. A missing
link is NotFound naming it, so a caller can say which object to create.

`plane_for` finds the plane CRs an agent's (planeType, planeID) stands for: every namespaced and cluster CR of
that type whose `spec.planeID` (default: its name) matches, as the gateway authorizes a connecting agent.
"""

from __future__ import annotations

from typing import Any

from controlplane.errors import NotFound
from controlplane.store import Store

# planeType as the agent's URL spells it -> (namespaced kind, cluster kind); a workflow plane has no kind here yet.
PLANE_KINDS: dict[str, tuple[str, ...]] = {
    "dataplane": ("DataPlane", "ClusterDataPlane"),
    "observabilityplane": ("ObservabilityPlane", "ClusterObservabilityPlane"),
    "workflowplane": (),
}
_PAGE = 1000


def _ref(document: dict[str, Any], field: str) -> dict[str, Any]:
    value = (document.get("spec") or {}).get(field)
    return value if isinstance(value, dict) else {}


def _fetch(store: Store, kind: str, namespace: str, name: str, why: str) -> dict[str, Any]:
    cluster = kind.startswith("Cluster")
    found = store.get(kind, None if cluster else namespace, name)
    if found is None:
        where = "" if cluster else f" in namespace '{namespace}'"
        raise NotFound(f"{kind} '{name}'{where} not found ({why})")
    return found


def observer_url(store: Store, namespace: str, environment: str) -> str:
    """The observerURL of the observability plane behind `environment` in `namespace` (module docstring)."""
    env = _fetch(store, "Environment", namespace, environment, "the environment asked for")
    dp_ref = _ref(env, "dataPlaneRef")
    dp_kind = str(dp_ref.get("kind") or "DataPlane")
    dp_name = str(dp_ref.get("name") or "default")
    plane = _fetch(store, dp_kind, namespace, dp_name, f"the data plane of Environment '{environment}'")
    op_ref = _ref(plane, "observabilityPlaneRef")
    # A ClusterDataPlane's ref is a ClusterObservabilityPlane by its CRD's enum, so a cluster chain stays cluster.
    op_kind = str(op_ref.get("kind") or "ObservabilityPlane")
    op_name = str(op_ref.get("name") or "default")
    observability = _fetch(store, op_kind, namespace, op_name, f"the observability plane of {dp_kind} '{dp_name}'")
    url = str((observability.get("spec") or {}).get("observerURL") or "")
    if not url:
        raise NotFound(f"{op_kind} '{op_name}' has no spec.observerURL")
    return url


def plane_id(document: dict[str, Any]) -> str:
    """A plane CR's plane ID: `spec.planeID`, or its name when unset."""
    return str((document.get("spec") or {}).get("planeID") or document["metadata"]["name"])


def plane_for(store: Store, plane_type: str, wanted_id: str) -> list[dict[str, Any]]:
    """Every plane CR (namespaced and cluster) of `plane_type` whose plane ID is `wanted_id`. ValueError for a
    plane type that is not one of PLANE_KINDS."""
    if plane_type not in PLANE_KINDS:
        raise ValueError(f"unknown plane type {plane_type!r}; known: {', '.join(PLANE_KINDS)}")
    found: list[dict[str, Any]] = []
    for kind in PLANE_KINDS[plane_type]:
        cursor = ""
        while True:
            page = store.list(kind, None, limit=_PAGE, cursor=cursor)
            found += [document for document in page.items if plane_id(document) == wanted_id]
            if not page.next_cursor:
                break
            cursor = page.next_cursor
    return found
