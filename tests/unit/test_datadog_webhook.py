"""Datadog's webhook payload (the template adapters/datadog/monitors.py configures, datadog-notes §4) read into
firings: the rule from the monitor's tags, the value from the message line the monitor writes, the time from
`$DATE_POSIX`, the event id as the delivery key; only triggers count; Basic or Bearer credentials."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from adapters.datadog.monitors import VALUE_MARKER, webhook_payload_template
from observer.alerting.payloads import InvalidPayload, firings_from
from observer.auth.internal import presented_secret


def payload(**overrides: Any) -> dict[str, Any]:
    """What Datadog posts for our monitor: the template with its variables substituted."""
    body: dict[str, Any] = {
        "alert_title": "[Triggered] [OpenChoreo] acme/cpu-high",
        "text_only_msg": f"OpenChoreo alert rule acme/cpu-high\n{VALUE_MARKER} 91.25\n@webhook-openchoreo-observer",
        "alert_id": "1234567",
        "alert_cycle_key": "7766554433",
        "aggreg_key": "abc",
        "alert_transition": "Triggered",
        "alert_type": "error",
        "alert_priority": "P1",
        "alert_scope": "",
        "alert_metric": "k8s.pod.cpu.usage",
        "event_type": "query_alert_monitor",
        "event_id": "8123456789",
        "hostname": "",
        "link": "https://app.datadoghq.com/event/event?id=8123456789",
        "tags": "managed-by:openchoreo-observer,openchoreo-rule-name:cpu-high,openchoreo-rule-namespace:acme",
        "date_posix": "1767225600",
    }
    body.update(overrides)
    return body


def test_a_trigger_names_the_rule_value_time_and_delivery() -> None:
    [firing] = firings_from(payload())
    assert (firing.rule_namespace, firing.rule_name) == ("acme", "cpu-high")
    assert firing.value == 91.25
    assert firing.timestamp_ns == 1767225600 * 1_000_000_000
    assert firing.delivery_key == "datadog:8123456789"


def test_the_template_keys_are_the_ones_read() -> None:
    template = json.loads(webhook_payload_template())
    assert set(template) == set(payload())


@pytest.mark.parametrize("transition", ["Recovered", "Warn", "No Data", "Re-Warn", "recovered"])
def test_anything_but_a_trigger_is_acknowledged_and_dropped(transition: str) -> None:
    assert firings_from(payload(alert_transition=transition, alert_type="success")) == []


@pytest.mark.parametrize("transition", ["Re-Triggered", "ReTriggered", "Renotify", "triggered", " Triggered "])
def test_renotifications_of_a_monitor_still_in_alert_are_firings(transition: str) -> None:
    assert len(firings_from(payload(alert_transition=transition))) == 1


def test_an_unrendered_transition_falls_back_to_the_alert_type() -> None:
    assert len(firings_from(payload(alert_transition="$ALERT_TRANSITION", alert_type="error"))) == 1
    assert firings_from(payload(alert_transition="", alert_type="success")) == []


def test_explicit_keys_win_over_tags_and_message() -> None:
    [firing] = firings_from(payload(ruleName="r1", ruleNamespace="ns1", alertValue="7"))
    assert (firing.rule_namespace, firing.rule_name, firing.value) == ("ns1", "r1", 7.0)


def test_tags_may_come_as_a_list_and_values_with_thousands_separators() -> None:
    body = payload(
        tags=["openchoreo-rule-name:oom", "openchoreo-rule-namespace:team-a"],
        text_only_msg=f"x\n{VALUE_MARKER} 1,234.5\n",
    )
    [firing] = firings_from(body)
    assert (firing.rule_namespace, firing.rule_name, firing.value) == ("team-a", "oom", 1234.5)


def test_milliseconds_are_accepted_and_a_missing_value_is_zero() -> None:
    [firing] = firings_from(payload(date_posix="1767225600123", text_only_msg="no value line"))
    assert firing.timestamp_ns == 1767225600123 * 1_000_000 and firing.value == 0.0
    [firing] = firings_from(payload(date_posix="$DATE_POSIX", event_id=""))
    assert firing.timestamp_ns is None and firing.delivery_key == ""


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"tags": "managed-by:openchoreo-observer"}, "MISSING_RULE_NAME"),
        ({"tags": "openchoreo-rule-name:x"}, "MISSING_RULE_NAMESPACE"),
        ({"tags": "$TAGS"}, "MISSING_RULE_NAME"),
        ({"date_posix": "yesterday"}, "INVALID_REQUEST_BODY"),
        ({"alertValue": "NaN"}, "INVALID_REQUEST_BODY"),
        ({"alertValue": True}, "INVALID_REQUEST_BODY"),
    ],
)
def test_a_malformed_trigger_is_a_client_error_datadog_does_not_retry(overrides: dict[str, Any], code: str) -> None:
    with pytest.raises(InvalidPayload) as caught:
        firings_from(payload(**overrides))
    assert caught.value.code == code


def test_the_other_senders_are_still_told_apart() -> None:
    [contract] = firings_from({"ruleName": "r", "ruleNamespace": "n", "alertValue": 3})
    assert (contract.rule_name, contract.value) == ("r", 3.0)
    assert firings_from({"alerts": [{"status": "resolved"}]}) == []


def test_basic_and_bearer_credentials_present_the_secret() -> None:
    secret = "s3cret-token-0123456789"
    basic = base64.b64encode(f"datadog:{secret}".encode()).decode()
    assert presented_secret(f"Basic {basic}") == secret
    assert presented_secret(f"bearer {secret}") == secret
    assert presented_secret("Basic !!!not-base64") is None
    assert presented_secret("Basic " + base64.b64encode(b"no-colon").decode()) is None
    assert presented_secret("Basic " + base64.b64encode(b"user:").decode()) is None
    assert presented_secret(f"Token {secret}") is None and presented_secret("Bearer ") is None
