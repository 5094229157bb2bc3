"""Status conditions as Kubernetes writes them, and the rule that keeps status writes from waking the loop forever.

A condition's `lastTransitionTime` moves only when its `status` flips (True/False/Unknown); a pass that observes
the same state rebuilds an identical status, and the reconciler writes status only when it differs from what is
stored, so its own writes settle instead of feeding back into the change feed.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

TRUE, FALSE, UNKNOWN = "True", "False", "Unknown"

RESOURCES_APPLIED = "ResourcesApplied"
AVAILABLE = "Available"
READY = "Ready"

# ResourcesApplied reasons (the brief's four).
APPLIED = "Applied"
APPLY_FAILED = "ApplyFailed"
PLANE_DISCONNECTED = "PlaneDisconnected"
RENDER_FAILED = "RenderFailed"

MAX_MESSAGE = 32_768  # the CRD's maxLength of condition.message


def now_rfc3339() -> str:
    """The current time as the API writes it (seconds, `Z`)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(kind: str, status: str, reason: str, message: str, generation: int) -> dict[str, Any]:
    """One condition without its transition time (`merge` sets it)."""
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message[:MAX_MESSAGE],
        "observedGeneration": generation,
    }


def merge(old: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]], now: str) -> list[dict[str, Any]]:
    """`new` with each `lastTransitionTime` kept from the old condition of the same type when its status did not
    change (`now` otherwise); conditions of other types in `old` (someone else's) are kept, in their place."""
    previous = {str(c.get("type")): c for c in old}
    ours = {str(c["type"]): c for c in new}
    merged: list[dict[str, Any]] = []
    for item in old:
        if str(item.get("type")) not in ours:
            merged.append(copy.deepcopy(dict(item)))
    for kind, item in ours.items():
        before = previous.get(kind)
        moment = now
        if before is not None and before.get("status") == item["status"] and before.get("lastTransitionTime"):
            moment = str(before["lastTransitionTime"])
        merged.append({**item, "lastTransitionTime": moment})
    return merged


def with_conditions(
    status: Mapping[str, Any] | None, new: Sequence[Mapping[str, Any]], generation: int, now: str
) -> dict[str, Any]:
    """A copy of `status` (its other fields kept) with `new` merged into its conditions and `observedGeneration`."""
    out = copy.deepcopy(dict(status or {}))
    out["conditions"] = merge(out.get("conditions") or [], new, now)
    out["observedGeneration"] = generation
    return out


def find(status: Mapping[str, Any] | None, kind: str) -> Mapping[str, Any] | None:
    """The condition of type `kind` in `status`, None when absent."""
    return next((c for c in (status or {}).get("conditions") or [] if c.get("type") == kind), None)
