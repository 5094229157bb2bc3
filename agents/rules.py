"""What the observability-plane agent sends to the observer for an ObservabilityAlertRule, and the status it writes
back: pure functions of the CR (agents/alert_rules.py runs them against the plane and the observer).

The payload is upstream's controller's (contract notes §4.2): the CR's name, the UIDs from its labels, durations as
whole hours or minutes; the status carries phase, the Synced condition, observedGeneration and the sync's backend id.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from agents.observer_client import RuleSync
from domain.alerting import parse_duration, short_duration

GROUP = "openchoreo.dev"
VERSION = "v1alpha1"
PLURAL = "observabilityalertrules"
KIND = "ObservabilityAlertRule"
UID_LABELS = (
    ("componentUid", "openchoreo.dev/component-uid"),
    ("projectUid", "openchoreo.dev/project-uid"),
    ("environmentUid", "openchoreo.dev/environment-uid"),
)
MESSAGE_LIMIT = 1024  # a condition message, whatever the observer said


class RuleSpecError(ValueError):
    """A CR the observer cannot take as it is (missing UID labels, a bad duration): fixed only by editing it."""


# ----------------------------------------------------------------------------------------------- pure parts


def rule_payload(cr: Mapping[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """(source type, rule name, AlertRuleRequest) for a CR, as upstream's controller builds it: the CR's name,
    the UIDs from its labels, durations as whole hours or minutes, the threshold as a number, `enabled` unset =
    true. RuleSpecError names what to fix."""
    metadata = cr.get("metadata") or {}
    labels = metadata.get("labels") or {}
    spec = cr.get("spec") or {}
    source, condition = spec.get("source") or {}, spec.get("condition") or {}
    name, namespace = str(metadata.get("name") or ""), str(metadata.get("namespace") or "")
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    for field, label in UID_LABELS:
        if not labels.get(label):
            raise RuleSpecError(f"the rule has no {label} label")
        meta[field] = str(labels[label])
    source_type = str(source.get("type") or "")
    body_source: dict[str, Any] = {"type": source_type}
    for field in ("query", "metric"):
        if source.get(field):
            body_source[field] = str(source[field])
    durations = {}
    for field in ("window", "interval"):
        try:
            durations[field] = short_duration(parse_duration(str(condition.get(field) or "")))
        except ValueError:
            raise RuleSpecError(f"spec.condition.{field} is not a duration: {condition.get(field)!r}") from None
    threshold = condition.get("threshold")
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise RuleSpecError("spec.condition.threshold must be a number")
    enabled = spec.get("enabled")
    body = {
        "metadata": meta,
        "source": body_source,
        "condition": {
            "enabled": True if enabled is None else bool(enabled),
            **durations,
            "operator": str(condition.get("operator") or ""),
            "threshold": float(threshold),
        },
    }
    return source_type, name, body


def rule_resource(cr: Mapping[str, Any]) -> dict[str, Any]:
    """The CR as the observer's rule-resources endpoint takes it: kind, apiVersion, the name, namespace and labels,
    and the whole spec. The status (the observer keeps its own) and the API server's bookkeeping (managedFields,
    annotations such as kubectl's last-applied copy) stay behind: they are not the rule, and only make the body
    bigger. The observer validates the rest, as `observer rules apply` does."""
    metadata = cr.get("metadata") or {}
    kept: dict[str, Any] = {
        "name": str(metadata.get("name") or ""),
        "namespace": str(metadata.get("namespace") or ""),
    }
    if metadata.get("labels"):
        kept["labels"] = dict(metadata["labels"])
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "metadata": kept, "spec": cr.get("spec") or {}}


_RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z$")


def rfc3339(moment: datetime) -> str:
    """A Kubernetes metav1.Time: UTC, whole seconds."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _sync_time(text: str, now: str) -> str:
    """The observer's lastSyncedAt cut to whole seconds (its nanoseconds are not a metav1.Time), else now."""
    matched = _RFC3339.match(text)
    return f"{matched.group(1)}Z" if matched else now


def rule_status(
    cr: Mapping[str, Any], *, ok: bool, reason: str, message: str, sync: RuleSync | None, now: datetime
) -> dict[str, Any]:
    """The status to write: phase, the Synced condition (its lastTransitionTime kept while its status holds),
    observedGeneration, lastReconcileTime, and from a sync the backend's id and time."""
    previous = cr.get("status") or {}
    generation = int((cr.get("metadata") or {}).get("generation") or 0)
    stamp = rfc3339(now)
    condition_status = "True" if ok else "False"
    transition = stamp
    for old in previous.get("conditions") or []:
        if old.get("type") == "Synced" and old.get("status") == condition_status and old.get("lastTransitionTime"):
            transition = old["lastTransitionTime"]
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "phase": "Ready" if ok else "Error",
        "lastReconcileTime": stamp,
        "conditions": [
            {
                "type": "Synced",
                "status": condition_status,
                "reason": reason,
                "message": message[:MESSAGE_LIMIT],
                "lastTransitionTime": transition,
                "observedGeneration": generation,
            }
        ],
    }
    if sync is not None:
        if sync.rule_backend_id:
            status["backendMonitorId"] = sync.rule_backend_id
        status["lastSyncTime"] = _sync_time(sync.last_synced_at, stamp)
    return status
