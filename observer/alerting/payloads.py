"""Firing alerts from the shapes that reach the webhook, normalized into `AlertFiring`.

Four senders post to `POST /api/v1alpha1/alerts/webhook`:
- OpenChoreo's contract payload `{ruleName, ruleNamespace, alertValue, alertTimestamp}` (also what OpenSearch
  Alerting monitors render, with extra UID keys that are ignored);
- Alertmanager's webhook payload (version 4): the rule is named by the annotations `rule_name`/`rule_namespace`
  (OpenChoreo's PrometheusRule shape) or by our labels `openchoreo_rule_name`/`openchoreo_rule_namespace`; the value
  by the annotation `alert_value`; only `firing` alerts count;
- Datadog's Webhooks integration, for the monitors adapters/datadog/monitors.py writes: the fixed template of
  datadog-notes §4 (`alert_transition`, `alert_id`, `alert_cycle_key`, `event_id`, `tags`, `text_only_msg`,
  `date_posix`, ...). The rule comes from the monitor's tags (`openchoreo-rule-name:<name>`,
  `openchoreo-rule-namespace:<namespace>`, in `$TAGS`) or from `ruleName`/`ruleNamespace` keys a template may
  add; the value from `alertValue` when present, else from the `openchoreo-alert-value: {{value}}` line the
  monitor's message carries. Only triggers count (`Triggered`, and `Re-Triggered`/`Renotify` while the monitor
  stays in alert, which is how a rule's interval maps on Datadog); recoveries, warnings and no-data
  notifications are acknowledged and dropped. A malformed payload is a 400 (Datadog does not retry 4xx), so
  only a transient failure of ours (a 5xx) makes Datadog send it again;
- our own evaluator, in process.

A source's own identity of a firing (Alertmanager's fingerprint and start time, Datadog's event id) becomes the
`delivery_key`, so a redelivered webhook records nothing new.

Datadog cannot sign its webhooks; it authenticates with HTTP Basic or with a header of our choosing.
`presented_secret` reads either, so the internal port's token check can accept the token from Datadog as a
Bearer header (a custom header of the Webhooks integration) or as the Basic password.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Mapping
from typing import Any

from domain.alerting import AlertFiring
from domain.timeutil import parse_rfc3339


class InvalidPayload(ValueError):
    """The body is not a firing alert; `code` is the contract's errorCode."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def firings_from(body: Any) -> list[AlertFiring]:
    if not isinstance(body, Mapping):
        raise InvalidPayload("INVALID_REQUEST_BODY", "invalid request body: expected a JSON object")
    if "alerts" in body and "ruleName" not in body:
        return _alertmanager(body)
    if any(key in body for key in DATADOG_KEYS):
        return _datadog(body)
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
        _value(body.get("alertValue"), "alertValue"),
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
                _value(annotations["alert_value"], f"{where} alert_value"),
                timestamp,
                key,
            )
        )
    return firings


#: Keys only Datadog's template has: a body with one of them is read as a Datadog payload.
DATADOG_KEYS = ("alert_transition", "alert_cycle_key")
#: Transitions that mean "the condition holds" (Datadog re-sends those while the monitor stays in alert).
#: Compared without case, spaces or hyphens (`Re-Triggered`, `ReTriggered`): the value set is not documented in
#: full, so both spellings seen in the wild are taken.
DATADOG_TRIGGERS = frozenset({"triggered", "retriggered", "renotify", "renotified"})
DATADOG_RULE_NAME_TAG = "openchoreo-rule-name"
DATADOG_RULE_NAMESPACE_TAG = "openchoreo-rule-namespace"
_DATADOG_VALUE = re.compile(r"openchoreo-alert-value:\s*([-+]?[0-9][0-9,]*(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?)")


def _datadog(body: Mapping[str, Any]) -> list[AlertFiring]:
    transition = re.sub(r"[\s-]", "", _text(body.get("alert_transition")).lower())
    if transition not in DATADOG_TRIGGERS and not (not transition and _text(body.get("alert_type")) == "error"):
        return []  # a recovery, warning or no-data notification: nothing fired
    tags = _datadog_tags(body.get("tags"))
    name = _text(body.get("ruleName")) or tags.get(DATADOG_RULE_NAME_TAG, "")
    namespace = _text(body.get("ruleNamespace")) or tags.get(DATADOG_RULE_NAMESPACE_TAG, "")
    if not name:
        raise InvalidPayload("MISSING_RULE_NAME", f"ruleName is required (the monitor tag {DATADOG_RULE_NAME_TAG})")
    if not namespace:
        raise InvalidPayload(
            "MISSING_RULE_NAMESPACE", f"ruleNamespace is required (the monitor tag {DATADOG_RULE_NAMESPACE_TAG})"
        )
    raw_value = body.get("alertValue", body.get("alert_value"))
    if raw_value is None:
        found = _DATADOG_VALUE.search(_text(body.get("text_only_msg")) or _text(body.get("body")))
        raw_value = found.group(1).replace(",", "") if found else None
    event_id = _text(body.get("event_id"))
    return [
        AlertFiring(
            namespace,
            name,
            _value(raw_value, "alertValue"),
            _posix(body.get("date_posix"), "date_posix"),
            f"datadog:{event_id}" if event_id else "",
        )
    ]


def _text(value: Any) -> str:
    """A template field as text: "" when missing, not text, or left unrendered (`$TAGS`, `{{value}}`)."""
    if not isinstance(value, str | int) or isinstance(value, bool):
        return ""
    text = str(value).strip()
    return "" if text.startswith(("$", "{{")) else text


def _datadog_tags(value: Any) -> dict[str, str]:
    """`$TAGS` (a comma-separated string of `key:value`, or a list) as key -> first value."""
    items = value.split(",") if isinstance(value, str) else value if isinstance(value, list) else []
    tags: dict[str, str] = {}
    for item in items:
        key, _, tag_value = str(item).strip().partition(":")
        if tag_value:
            tags.setdefault(key, tag_value.strip())
    return tags


def _posix(value: Any, field: str) -> int | None:
    """`$DATE_POSIX` (seconds; milliseconds accepted) in nanoseconds; None when absent."""
    text = _text(value)
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        raise InvalidPayload("INVALID_REQUEST_BODY", f"invalid request body: {field} must be a POSIX time") from None
    if not math.isfinite(number) or number <= 0:
        raise InvalidPayload("INVALID_REQUEST_BODY", f"invalid request body: {field} must be a POSIX time")
    if text.isdigit():  # the usual case, exactly: whole seconds, or whole milliseconds
        whole = int(text)
        return whole * 1_000_000 if whole > 10**11 else whole * 1_000_000_000
    return int((number / 1000 if number > 1e11 else number) * 1e9)


def presented_secret(authorization: str) -> str | None:
    """The secret an `Authorization` header presents: a Bearer token, or the password of HTTP Basic (what
    Datadog's Webhooks integration sends with its Basic auth method); None for anything else."""
    scheme, _, credentials = authorization.strip().partition(" ")
    credentials = credentials.strip()
    if not credentials:
        return None
    if scheme.lower() == "bearer":
        return credentials
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(credentials, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    _, colon, password = decoded.partition(":")
    return password if colon and password else None


def _value(value: Any, field: str) -> float:
    if isinstance(value, bool):
        raise InvalidPayload("INVALID_REQUEST_BODY", f"invalid request body: {field} must be a number")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise InvalidPayload("INVALID_REQUEST_BODY", f"invalid request body: {field} must be a number") from None
    if value is None:
        return 0.0
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidPayload("INVALID_REQUEST_BODY", f"invalid request body: {field} must be a finite number")
    return float(value)


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
