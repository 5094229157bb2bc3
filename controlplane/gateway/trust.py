"""Who may connect as an agent of a plane: the seam to the store, and the names the gateway accepts (CPN §2-§3)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Protocol

PLANE_TYPES = frozenset({"dataplane", "workflowplane", "observabilityplane"})
CLUSTER_NAMESPACE = "_cluster"
"""The `crNamespace` of a proxy URL that names a cluster-scoped plane CR."""

# spec.planeID is a DNS label (CRD pattern); defaulted from a CR name it may be a DNS subdomain.
_PLANE_ID = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


class PlaneTrust(Protocol):
    """The client CAs of a plane, read from its plane CRs (the lead backs this with the store)."""

    async def client_cas(self, plane_type: str, plane_id: str) -> Mapping[str, list[str]]:
        """CR key ("ns/name", or "/name" for cluster CRs) -> the PEM CA certificates of that plane CR's
        `spec.clusterAgent.clientCA`, for every plane CR of that type whose `spec.planeID` (default: its name)
        is `plane_id`. Raising means "cannot tell now" (the gateway answers 503), not "no CRs"."""
        ...


def valid_plane_type(plane_type: str | None) -> bool:
    """One of upstream's three plane types."""
    return plane_type in PLANE_TYPES


def valid_plane_id(plane_id: str | None) -> bool:
    """A planeID as a plane CR can carry it (lowercase DNS name, at most 253 characters)."""
    return bool(plane_id) and _PLANE_ID.fullmatch(plane_id or "") is not None


def cr_key(namespace: str, name: str) -> str:
    """The CR key of a plane CR: `ns/name`, or `/name` for a cluster CR (namespace "" or `_cluster`)."""
    return f"{'' if namespace == CLUSTER_NAMESPACE else namespace}/{name}"
