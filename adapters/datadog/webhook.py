"""Datadog's webhook payload, read into `AlertFiring`s: the decoder the Datadog registry entry names (`webhook`),
so the alert webhook takes the firings of the monitors adapters/datadog/monitors.py writes.

The payload is the fixed template of datadog-notes §4 (`alert_transition`, `alert_id`, `alert_cycle_key`,
`event_id`, `tags`, `text_only_msg`, `date_posix`, ...). The rule comes from the monitor's tags
(`openchoreo-rule-name:<name>`, `openchoreo-rule-namespace:<namespace>`, in `$TAGS`) or from `ruleName` /
`ruleNamespace` keys a template may add; the value from `alertValue` when present, else from the
`openchoreo-alert-value: {{value}}` line the monitor's message carries. Only triggers count (`Triggered`, and
`Re-Triggered`/`Renotify` while the monitor stays in alert, which is how a rule's interval maps on Datadog);
recoveries, warnings and no-data notifications are acknowledged and dropped. A malformed payload is a 400 (Datadog
does not retry 4xx), so only a transient failure of ours (a 5xx) makes Datadog send it again. Datadog's event id
is the firing's delivery key, so a redelivered webhook records nothing new.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from domain.alerting import AlertFiring, InvalidPayload, alert_value


def decode(body: Mapping[str, Any]) -> list[AlertFiring] | None:
    """The firings of a Datadog payload; None when `body` is not one (another sender's shape)."""
    if not any(key in body for key in KEYS):
        return None
    return _firings(body)


#: Keys only Datadog's template has: a body with one of them is read as a Datadog payload.
KEYS = ("alert_transition", "alert_cycle_key")
#: Transitions that mean "the condition holds" (Datadog re-sends those while the monitor stays in alert).
#: Compared without case, spaces or hyphens (`Re-Triggered`, `ReTriggered`): the value set is not documented in
#: full, so both spellings seen in the wild are taken.
TRIGGERS = frozenset({"triggered", "retriggered", "renotify", "renotified"})
RULE_NAME_TAG = "openchoreo-rule-name"
RULE_NAMESPACE_TAG = "openchoreo-rule-namespace"
_VALUE = re.compile(r"openchoreo-alert-value:\s*([-+]?[0-9][0-9,]*(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?)")


def _firings(body: Mapping[str, Any]) -> list[AlertFiring]:
    transition = re.sub(r"[\s-]", "", _text(body.get("alert_transition")).lower())
    if transition not in TRIGGERS and not (not transition and _text(body.get("alert_type")) == "error"):
        return []  # a recovery, warning or no-data notification: nothing fired
    tags = _tags(body.get("tags"))
    name = _text(body.get("ruleName")) or tags.get(RULE_NAME_TAG, "")
    namespace = _text(body.get("ruleNamespace")) or tags.get(RULE_NAMESPACE_TAG, "")
    if not name:
        raise InvalidPayload("MISSING_RULE_NAME", f"ruleName is required (the monitor tag {RULE_NAME_TAG})")
    if not namespace:
        raise InvalidPayload(
            "MISSING_RULE_NAMESPACE", f"ruleNamespace is required (the monitor tag {RULE_NAMESPACE_TAG})"
        )
    raw_value = body.get("alertValue", body.get("alert_value"))
    if raw_value is None:
        found = _VALUE.search(_text(body.get("text_only_msg")) or _text(body.get("body")))
        raw_value = found.group(1).replace(",", "") if found else None
    event_id = _text(body.get("event_id"))
    return [
        AlertFiring(
            namespace,
            name,
            alert_value(raw_value, "alertValue"),
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


def _tags(value: Any) -> dict[str, str]:
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
