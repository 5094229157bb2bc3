"""AlertDetails: what a notification says about one firing (contract notes §2.4 step 4, §2.5).

The JSON keys and their order are upstream's (`alertName` ... `triggerAiCostAnalysis`); `notificationChannels` is
left out when empty, as Go's `omitempty` does. Two keys are OUR ADDITIONS, appended after upstream's so a receiver
written for OpenChoreo sees everything it expects:

- `alertId`: the alert entry's id (what the alert and incident query APIs return), so a receiver can link back;
- `idempotencyKey`: the notification's id, the same on every retry of this notification to this channel (also
  sent as the `X-OpenChoreo-Idempotency-Key` header and inside the e-mail Message-ID). A receiver that keeps the
  keys it has seen turns the outbox's at-least-once delivery into exactly-once processing.

The payload is fixed when the alert is accepted (it is stored in the outbox row), so a retry days later says what
the first try said.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from domain.alerting import AlertRule

#: Upstream's keys, in upstream's order; then ours.
UPSTREAM_KEYS = (
    "alertName",
    "alertTimestamp",
    "alertSeverity",
    "alertDescription",
    "alertThreshold",
    "alertValue",
    "alertType",
    "namespace",
    "component",
    "project",
    "environment",
    "componentId",
    "projectId",
    "environmentId",
    "notificationChannels",
    "incidentEnabled",
    "triggerAiRca",
    "triggerAiCostAnalysis",
)
ADDED_KEYS = ("alertId", "idempotencyKey")


@dataclass(frozen=True, slots=True)
class AlertDetails:
    alert_name: str = ""
    alert_timestamp: str = ""  # RFC3339, as the intake formatted it
    alert_severity: str = ""
    alert_description: str = ""
    alert_threshold: str = ""  # a string on the wire, as upstream sends it
    alert_value: str = ""
    alert_type: str = ""  # the rule's source type: log | metric | budget
    namespace: str = ""
    component: str = ""
    project: str = ""
    environment: str = ""
    component_id: str = ""
    project_id: str = ""
    environment_id: str = ""
    notification_channels: tuple[str, ...] = field(default=())
    incident_enabled: bool = False
    trigger_ai_rca: bool = False
    trigger_ai_cost_analysis: bool = False
    alert_id: str = ""  # our addition
    idempotency_key: str = ""  # our addition; set per notification by the outbox

    @classmethod
    def from_rule(cls, rule: AlertRule, *, alert_id: str, alert_timestamp: str, alert_value: str) -> AlertDetails:
        """The details of a firing of `rule`: the rule's spec and scope labels plus what the firing measured.
        `alert_timestamp` and `alert_value` come formatted, because how they are formatted is the intake's call."""
        return cls(
            alert_name=rule.rule_name,
            alert_timestamp=alert_timestamp,
            alert_severity=rule.severity,
            alert_description=rule.description,
            alert_threshold=format_threshold(rule.condition.threshold),
            alert_value=alert_value,
            alert_type=rule.source.type,
            namespace=rule.scope_namespace,
            component=rule.component,
            project=rule.project,
            environment=rule.environment,
            component_id=rule.component_uid,
            project_id=rule.project_uid,
            environment_id=rule.environment_uid,
            notification_channels=tuple(rule.channels),
            incident_enabled=rule.incident.enabled,
            trigger_ai_rca=rule.incident.trigger_ai_rca,
            trigger_ai_cost_analysis=rule.incident.trigger_ai_cost_analysis,
            alert_id=alert_id,
        )

    def to_dict(self) -> dict[str, Any]:
        """The wire object, keys in contract order; `notificationChannels` only when there are some."""
        doc: dict[str, Any] = {
            "alertName": self.alert_name,
            "alertTimestamp": self.alert_timestamp,
            "alertSeverity": self.alert_severity,
            "alertDescription": self.alert_description,
            "alertThreshold": self.alert_threshold,
            "alertValue": self.alert_value,
            "alertType": self.alert_type,
            "namespace": self.namespace,
            "component": self.component,
            "project": self.project,
            "environment": self.environment,
            "componentId": self.component_id,
            "projectId": self.project_id,
            "environmentId": self.environment_id,
        }
        if self.notification_channels:
            doc["notificationChannels"] = list(self.notification_channels)
        doc["incidentEnabled"] = self.incident_enabled
        doc["triggerAiRca"] = self.trigger_ai_rca
        doc["triggerAiCostAnalysis"] = self.trigger_ai_cost_analysis
        doc["alertId"] = self.alert_id
        doc["idempotencyKey"] = self.idempotency_key
        return doc

    def to_json(self, indent: int | None = None) -> str:
        """Compact like Go's json.Marshal, or indented (the default e-mail body uses two spaces). Non-ASCII stays
        as is: the body is UTF-8 either way, and a receiver reading it by eye should see the real characters."""
        if indent is None:
            return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=indent)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> AlertDetails:
        """Reads `to_dict()` back (the outbox stores the JSON); unknown keys are ignored."""
        return cls(
            alert_name=str(doc.get("alertName", "")),
            alert_timestamp=str(doc.get("alertTimestamp", "")),
            alert_severity=str(doc.get("alertSeverity", "")),
            alert_description=str(doc.get("alertDescription", "")),
            alert_threshold=str(doc.get("alertThreshold", "")),
            alert_value=str(doc.get("alertValue", "")),
            alert_type=str(doc.get("alertType", "")),
            namespace=str(doc.get("namespace", "")),
            component=str(doc.get("component", "")),
            project=str(doc.get("project", "")),
            environment=str(doc.get("environment", "")),
            component_id=str(doc.get("componentId", "")),
            project_id=str(doc.get("projectId", "")),
            environment_id=str(doc.get("environmentId", "")),
            notification_channels=tuple(str(c) for c in doc.get("notificationChannels") or ()),
            incident_enabled=bool(doc.get("incidentEnabled", False)),
            trigger_ai_rca=bool(doc.get("triggerAiRca", False)),
            trigger_ai_cost_analysis=bool(doc.get("triggerAiCostAnalysis", False)),
            alert_id=str(doc.get("alertId", "")),
            idempotency_key=str(doc.get("idempotencyKey", "")),
        )

    @classmethod
    def from_json(cls, text: str) -> AlertDetails:
        return cls.from_dict(json.loads(text))


def format_threshold(threshold: float) -> str:
    """Upstream prints the threshold as an integer string ("10"). A fractional threshold (the CRD allows one)
    would lose its fraction that way, so it is printed in full ("0.5") instead of truncated to "0"."""
    if threshold.is_integer():
        return str(int(threshold))
    return format(Decimal(repr(threshold)), "f")
