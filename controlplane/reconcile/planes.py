"""Which plane a binding or channel lands in, how the gateway addresses it, and when a silent plane is tried again.

The chain is discovery's (CPN §1, `getOPClient`): Environment `spec.dataPlaneRef` (unset: DataPlane `default` in
the same namespace) -> that plane's `spec.observabilityPlaneRef` (unset: ObservabilityPlane `default`). A plane CR
becomes a `PlaneRef`: its type, its planeID (`spec.planeID`, default its name) and its CR key (`ns/name`, or
`/name` for a cluster CR), which is what the gateway checks an agent against.

`Backoff` spaces out retries of a plane that did not answer (no agent, timeout): 1 s doubling to 60 s, each delay
drawn in [d/2, d] so many reconcilers do not retry in step; the first success forgets the plane.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from controlplane.discovery import plane_id
from controlplane.errors import NotFound
from controlplane.proxy_client import PlaneRef
from controlplane.store import Store

PLANE_TYPE_OF_KIND = {
    "DataPlane": "dataplane",
    "ClusterDataPlane": "dataplane",
    "ObservabilityPlane": "observabilityplane",
    "ClusterObservabilityPlane": "observabilityplane",
}
PLANE_KINDS = tuple(PLANE_TYPE_OF_KIND)

BACKOFF_MIN_S = 1.0
BACKOFF_MAX_S = 60.0


def fetch(store: Store, kind: str, namespace: str, name: str, why: str) -> dict[str, Any]:
    """The object, or NotFound naming it and why it was needed (the message lands in a condition)."""
    cluster = kind.startswith("Cluster")
    found = store.get(kind, None if cluster else namespace, name)
    if found is None:
        where = "" if cluster else f" in namespace '{namespace}'"
        raise NotFound(f"{kind} '{name}'{where} not found ({why})")
    return found


def _ref(document: dict[str, Any], field: str) -> dict[str, Any]:
    value = (document.get("spec") or {}).get(field)
    return value if isinstance(value, dict) else {}


def data_plane(store: Store, environment: dict[str, Any]) -> dict[str, Any]:
    """The DataPlane/ClusterDataPlane document behind an Environment."""
    ref = _ref(environment, "dataPlaneRef")
    namespace = str(environment["metadata"].get("namespace") or "")
    name = str(environment["metadata"]["name"])
    return fetch(
        store,
        str(ref.get("kind") or "DataPlane"),
        namespace,
        str(ref.get("name") or "default"),
        f"the data plane of Environment '{name}'",
    )


def observability_plane(store: Store, namespace: str, plane: dict[str, Any]) -> dict[str, Any] | None:
    """The observability plane a data plane names; when it names none, the `default` ObservabilityPlane of
    `namespace` if there is one (None otherwise). A named plane that is missing is NotFound."""
    ref = _ref(plane, "observabilityPlaneRef")
    if not ref:
        return store.get("ObservabilityPlane", namespace, "default")
    kind = str(ref.get("kind") or "ObservabilityPlane")
    name = str(ref.get("name") or "default")
    return fetch(
        store, kind, namespace, name, f"the observability plane of {plane['kind']} '{plane['metadata']['name']}'"
    )


def plane_ref(document: dict[str, Any]) -> PlaneRef:
    """How the gateway addresses a plane CR."""
    kind = str(document["kind"])
    metadata = document["metadata"]
    namespace = "" if kind.startswith("Cluster") else str(metadata.get("namespace") or "")
    return PlaneRef(PLANE_TYPE_OF_KIND[kind], plane_id(document), f"{namespace}/{metadata['name']}")


def describe(plane: PlaneRef) -> str:
    """`dataplane/default (CR /default)`, for condition messages."""
    return f"{plane.plane_type}/{plane.plane_id} (CR {plane.cr_key})"


class Backoff:
    """Per-plane retry schedule (module docstring). `clock` and `rng` are injectable so tests pin the delays."""

    def __init__(
        self,
        minimum: float = BACKOFF_MIN_S,
        maximum: float = BACKOFF_MAX_S,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.minimum = minimum
        self.maximum = maximum
        self._clock = clock
        self._rng = rng
        self._state: dict[PlaneRef, tuple[int, float]] = {}  # plane -> (failures in a row, next attempt)

    def blocked_until(self, plane: PlaneRef) -> float | None:
        """The clock time before which `plane` is not to be tried, None when it may be tried now."""
        state = self._state.get(plane)
        if state is None or self._clock() >= state[1]:
            return None
        return state[1]

    def failed(self, plane: PlaneRef) -> float:
        """Record a failure; returns the delay until the next attempt. A failure while the plane is already
        backing off is the same outage (calls that were in flight together): it does not grow the delay."""
        failures, due = self._state.get(plane, (0, 0.0))
        now = self._clock()
        if due > now:
            return due - now
        failures += 1
        ceiling = min(self.maximum, self.minimum * float(2 ** min(failures - 1, 32)))
        delay = ceiling / 2 + ceiling / 2 * self._rng()
        self._state[plane] = (failures, now + delay)
        return delay

    def succeeded(self, plane: PlaneRef) -> None:
        """The plane answered: forget its failures."""
        self._state.pop(plane, None)

    def forget(self, plane_type: str, plane_id: str) -> None:
        """An agent of the plane (re)connected: every CR of it may be tried at once."""
        for plane in [p for p in self._state if (p.plane_type, p.plane_id) == (plane_type, plane_id)]:
            del self._state[plane]

    def failures(self, plane: PlaneRef) -> int:
        """Failures in a row so far."""
        return self._state.get(plane, (0, 0.0))[0]

    def next_due(self) -> float | None:
        """The earliest pending retry time of any plane, None when no plane is backing off."""
        return min((due for _, due in self._state.values()), default=None)

    def forget_except(self, planes: set[PlaneRef]) -> None:
        """Drop the state of planes no longer in the store (keeps the map bounded by the known planes)."""
        for plane in [p for p in self._state if p not in planes]:
            del self._state[plane]
