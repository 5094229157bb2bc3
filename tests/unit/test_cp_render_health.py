"""The health of live objects, in the API's `healthStatus` values, with the messages the tree endpoint shows."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.render.health import health_of


def _deployment(replicas: int, available: int | None, **extra: Any) -> dict[str, Any]:
    status: dict[str, Any] = {} if available is None else {"availableReplicas": available}
    status.update(extra.pop("status", {}))
    return {
        "kind": "Deployment",
        "metadata": extra.pop("metadata", {}),
        "spec": {"replicas": replicas, **extra},
        "status": status,
    }


def test_deployment_healthy_when_all_replicas_are_available() -> None:
    assert health_of(_deployment(2, 2)) == ("Healthy", "2/2 replicas available")
    assert health_of(_deployment(2, 3)) == ("Healthy", "3/2 replicas available")


def test_deployment_progressing_while_replicas_come_up() -> None:
    assert health_of(_deployment(2, 1)) == ("Progressing", "1/2 replicas available")
    assert health_of(_deployment(2, None)) == ("Progressing", "0/2 replicas available")


def test_deployment_progressing_until_the_new_generation_is_observed() -> None:
    obj = _deployment(2, 2, metadata={"generation": 3}, status={"observedGeneration": 2})
    assert health_of(obj)[0] == "Progressing"
    obj = _deployment(2, 2, metadata={"generation": 3}, status={"observedGeneration": 3})
    assert health_of(obj)[0] == "Healthy"


def test_deployment_degraded_past_its_progress_deadline() -> None:
    condition = {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
    assert health_of(_deployment(2, 0, status={"conditions": [condition]})) == (
        "Degraded",
        "progress deadline exceeded, 0/2 replicas available",
    )


def test_deployment_suspended_when_paused_or_scaled_to_zero() -> None:
    assert health_of(_deployment(2, 0, paused=True))[0] == "Suspended"
    assert health_of(_deployment(0, None)) == ("Suspended", "scaled to 0 replicas")


@pytest.mark.parametrize("kind", ["Service", "ConfigMap", "Secret", "Namespace"])
def test_existence_kinds_are_healthy(kind: str) -> None:
    assert health_of({"kind": kind, "metadata": {"name": "x"}}) == ("Healthy", f"{kind.lower()} exists")


def test_a_terminating_namespace_is_progressing() -> None:
    assert health_of({"kind": "Namespace", "status": {"phase": "Terminating"}})[0] == "Progressing"


@pytest.mark.parametrize(
    ("phase", "expected"),
    [("Ready", "Healthy"), ("Error", "Degraded"), ("Pending", "Progressing"), (None, "Progressing")],
)
def test_alert_rule_health_follows_its_phase(phase: str | None, expected: str) -> None:
    status = {} if phase is None else {"phase": phase}
    assert health_of({"kind": "ObservabilityAlertRule", "status": status})[0] == expected


def test_alert_rule_message_is_its_synced_condition() -> None:
    condition = {"type": "Synced", "status": "False", "reason": "SyncFailed", "message": "observer said 500"}
    assert health_of({"kind": "ObservabilityAlertRule", "status": {"phase": "Error", "conditions": [condition]}}) == (
        "Degraded",
        "observer said 500",
    )


def test_unknown_kinds_are_unknown() -> None:
    assert health_of({"kind": "CronJob"})[0] == "Unknown"
