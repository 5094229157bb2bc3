"""Firing alerts from the shapes that reach the webhook, normalized into `AlertFiring`.

Four senders post to `POST /api/v1alpha1/alerts/webhook`:
- OpenChoreo's contract payload `{ruleName, ruleNamespace, alertValue, alertTimestamp}` (also what OpenSearch
  Alerting monitors render, with extra UID keys that are ignored);
- Alertmanager's webhook payload (version 4): the rule is named by the annotations `rule_name`/`rule_namespace`
  (OpenChoreo's PrometheusRule shape) or by our labels `openchoreo_rule_name`/`openchoreo_rule_namespace`; the value
  by the annotation `alert_value`; only `firing` alerts count;
- a backend's own alerting, in its own shape, read by the decoder its registry entry names (`webhook`): Datadog's
  Webhooks integration posts the template adapters/datadog/webhook.py reads;
- our own evaluator, in process.

A source's own identity of a firing (Alertmanager's fingerprint and start time, Datadog's event id) becomes the
`delivery_key`, so a redelivered webhook records nothing new.

"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapters import registry
from domain.alerting import AlertFiring, InvalidPayload, alert_value
from domain.timeutil import parse_rfc3339


def firings_from(body: Any) -> list[AlertFiring]:
    if not isinstance(body, Mapping):
        raise InvalidPayload("INVALID_REQUEST_BODY", "invalid request body: expected a JSON object")
    if "alerts" in body and "ruleName" not in body:
        return _alertmanager(body)
    for decode in registry.webhook_decoders():  # a backend's own alerting posts its own shape (Datadog's)
        firings = decode(body)
        if firings is not None:
            return firings
    return [_contract(body)]


def _contract(body: Mapping[str, Any]) -> AlertFiring:
    name, namespace = body.get("ruleName"), body.get("ruleNamespace")
    for field, value in (("ruleName", name), ("ruleNamespace", namespace)):
        if value is not None and not isinstance(value, str):
            raise InvalidPayload("INVALID_REQUEST_BODY", f"invalid request body: {field} must be a string")
    if not isinstance(name, str) or not name.strip():  # a non-string was refused above: this is None or blank
        raise InvalidPayload("MISSING_RULE_NAME", "ruleName is required")
    if not isinstance(namespace, str) or not namespace.strip():
        raise InvalidPayload("MISSING_RULE_NAMESPACE", "ruleNamespace is required")
    return AlertFiring(
        namespace.strip(),
        name.strip(),
        alert_value(body.get("alertValue"), "alertValue"),
        _timestamp(body.get("alertTimestamp"), "alertTimestamp"),
    )


def _alertmanager(body: Mapping[str, Any]) -> list[AlertFiring]:
    alerts = body.get("alerts")
    if not isinstance(alerts, list) or not alerts:
        raise InvalidPayload("INVALID_REQUEST_BODY", "invalid request body: alerts must be a non-empty list")
    firings = []
    for index, alert in enumerate(alerts):
        where = f"alerts[{index}]"
        if not isinstance(alert, Mapping):
            raise InvalidPayload("INVALID_REQUEST_BODY", f"invalid request body: {where} must be an object")
        if str(alert.get("status", "firing")).lower() != "firing":
            continue
        raw_labels, raw_annotations = alert.get("labels"), alert.get("annotations")
        labels: Mapping[str, Any] = raw_labels if isinstance(raw_labels, Mapping) else {}
        annotations: Mapping[str, Any] = raw_annotations if isinstance(raw_annotations, Mapping) else {}
        name = annotations.get("rule_name") or labels.get("openchoreo_rule_name")
        namespace = annotations.get("rule_namespace") or labels.get("openchoreo_rule_namespace")
        if not isinstance(name, str) or not name.strip():
            raise InvalidPayload("MISSING_RULE_NAME", f"{where}: the annotation rule_name is required")
        if not isinstance(namespace, str) or not namespace.strip():
            raise InvalidPayload("MISSING_RULE_NAMESPACE", f"{where}: the annotation rule_namespace is required")
        if "alert_value" not in annotations:
            raise InvalidPayload(
                "INVALID_REQUEST_BODY", f"invalid request body: {where}: the annotation alert_value is required"
            )
        starts = alert.get("startsAt")
        timestamp = _timestamp(starts, f"{where}.startsAt")
        fingerprint = alert.get("fingerprint") or ""
        key = f"alertmanager:{fingerprint}:{starts}" if fingerprint and starts else ""
        firings.append(
            AlertFiring(
                namespace.strip(),
                name.strip(),
                alert_value(annotations["alert_value"], f"{where} alert_value"),
                timestamp,
                key,
            )
        )
    return firings


def _timestamp(value: Any, field: str) -> int | None:
    if value in (None, "") or (isinstance(value, str) and value.startswith("0001-01-01")):
        return None
    if not isinstance(value, str):
        raise InvalidPayload("INVALID_REQUEST_BODY", f"invalid request body: {field} must be an RFC3339 time")
    try:
        return parse_rfc3339(value)
    except ValueError:
        raise InvalidPayload(
            "INVALID_REQUEST_BODY", f"invalid request body: {field} must be an RFC3339 time, not {value!r}"
        ) from None
