"""The health of one live object, as the API reports it in `RenderedReleaseStatus.resources[].healthStatus`.

The reconciler re-lists what it applied (CPN §1: status comes back by re-listing, not by push) and asks this
module, per object, for one of the API's values `Unknown|Progressing|Healthy|Suspended|Degraded` and a short
human message. Pure: a live object document in, a verdict out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

HEALTHY = "Healthy"
PROGRESSING = "Progressing"
DEGRADED = "Degraded"
SUSPENDED = "Suspended"
UNKNOWN = "Unknown"

#: Kinds whose existence is their health (nothing in them converges).
_EXISTENCE_KINDS = frozenset({"Service", "ConfigMap", "Secret", "Namespace"})


def health_of(obj: Mapping[str, Any]) -> tuple[str, str]:
    """(healthStatus, message) of a live object; a kind we do not know is `Unknown`."""
    kind = obj.get("kind")
    if kind == "Deployment":
        return _deployment(obj)
    if kind == "ObservabilityAlertRule":
        return _alert_rule(obj)
    if kind in _EXISTENCE_KINDS:
        if kind == "Namespace" and (obj.get("status") or {}).get("phase") == "Terminating":
            return PROGRESSING, "namespace is terminating"
        return HEALTHY, f"{str(kind).lower()} exists"
    return UNKNOWN, f"no health check for kind {kind}"


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _deployment(obj: Mapping[str, Any]) -> tuple[str, str]:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    replicas = _int(spec.get("replicas", 1))
    available = _int(status.get("availableReplicas"))
    summary = f"{available}/{replicas} replicas available"
    if spec.get("paused"):
        return SUSPENDED, f"deployment is paused, {summary}"
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            return DEGRADED, f"progress deadline exceeded, {summary}"
    generation = _int((obj.get("metadata") or {}).get("generation"))
    if generation and _int(status.get("observedGeneration")) < generation:
        return PROGRESSING, f"waiting for the rollout to be observed, {summary}"
    if replicas == 0:
        return SUSPENDED, "scaled to 0 replicas"
    if available >= replicas:
        return HEALTHY, summary
    return PROGRESSING, summary


def _alert_rule(obj: Mapping[str, Any]) -> tuple[str, str]:
    """Its status is written in the observability plane by the alert-rule controller (OCN §4.2): Ready when the
    observer took it, Error otherwise; no phase yet means the controller has not reconciled it."""
    status = obj.get("status") or {}
    phase = status.get("phase") or ""
    synced: Mapping[str, Any] = next((c for c in status.get("conditions") or [] if c.get("type") == "Synced"), {})
    detail = str(synced.get("message") or "")
    if phase == "Ready":
        return HEALTHY, detail or "alert rule synced"
    if phase == "Error":
        return DEGRADED, detail or "alert rule failed to sync"
    return PROGRESSING, detail or "alert rule not synced yet"
