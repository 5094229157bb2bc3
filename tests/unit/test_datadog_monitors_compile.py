"""Alert rules compiled into Datadog monitors, read as text: the query of each rule kind (user values stay inside
one quoted search, or are refused where a metric query cannot quote them), the operator table, the tags that
identify a monitor, the options `interval` maps onto, and the content hash (which ignores options Datadog adds
by itself and sees any edit of what we wrote).

What a Datadog API makes of these bodies is tested in tests/integration/test_datadog_monitors.py.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from adapters.datadog.monitors import (
    DEFAULT_OWNER,
    OPERATORS,
    VALUE_MARKER,
    DatadogMonitorTarget,
    log_search,
    monitor_body,
    monitor_hash,
    rule_id_of,
    search_literal,
    token_variable,
    webhook_config,
    webhook_payload_template,
)
from adapters.rule_targets import UnsupportedRule
from domain.alerting import AlertRule, rule_from_resource

SCOPE_LABELS = {
    "openchoreo.dev/namespace": "acme",
    "openchoreo.dev/project-uid": "p-1",
    "openchoreo.dev/component-uid": "c-1",
    "openchoreo.dev/environment-uid": "e-1",
}


def rule(
    name: str = "cpu-high",
    namespace: str = "acme",
    *,
    source: dict[str, Any] | None = None,
    operator: str = "gt",
    threshold: float = 80,
    window: str = "5m",
    interval: str = "1m",
    labels: dict[str, str] | None = None,
    severity: str = "",
) -> AlertRule:
    spec: dict[str, Any] = {
        "name": name,
        "source": source or {"type": "metric", "metric": "cpu_usage"},
        "condition": {"window": window, "interval": interval, "operator": operator, "threshold": threshold},
        "actions": {"notifications": {"channels": ["ops"]}},
    }
    if severity:
        spec["severity"] = severity
    return rule_from_resource(
        {
            "metadata": {"name": name, "namespace": namespace, "labels": SCOPE_LABELS if labels is None else labels},
            "spec": spec,
        }
    )


def log_rule(query: str = "out of memory", **kwargs: Any) -> AlertRule:
    return rule("oom", source={"type": "log", "query": query}, **kwargs)


# ----------------------------------------------------------------------------------------------- metric rules


def test_a_metric_rule_is_a_query_alert_on_usage_as_percent_of_limits() -> None:
    body = monitor_body(rule(threshold=80, window="10m"))
    scope = "{openchoreo.namespace:acme,openchoreo.project_uid:p-1,openchoreo.component_uid:c-1,openchoreo.environment_uid:e-1}"
    assert body["type"] == "query alert"
    assert body["query"] == (
        f"avg(last_10m):100 * sum:k8s.pod.cpu.usage{scope} / sum:k8s.container.cpu.limit{scope} > 80"
    )
    memory = monitor_body(rule(source={"type": "metric", "metric": "memory_usage"}, threshold=90.5, window="1h"))
    assert memory["query"].startswith("avg(last_1h):100 * sum:k8s.pod.memory.working_set{")
    assert "/ sum:k8s.container.memory.limit{" in memory["query"] and memory["query"].endswith(" > 90.5")


@pytest.mark.parametrize("operator", list(OPERATORS))
def test_every_operator_compares_with_the_threshold_the_options_carry(operator: str) -> None:
    body = monitor_body(rule(operator=operator, threshold=12.25))
    assert body["query"].endswith(f" {OPERATORS[operator]} 12.25")
    assert body["options"]["thresholds"] == {"critical": 12.25}


def test_a_namespace_wide_rule_filters_on_the_namespace_only() -> None:
    body = monitor_body(rule(labels={"observer.openchoreo.dev/scope": "namespace", "openchoreo.dev/namespace": "ns"}))
    assert "sum:k8s.pod.cpu.usage{openchoreo.namespace:ns} /" in body["query"]


@pytest.mark.parametrize("hostile", ["x} by {host", "a,b:c", "Upper", "sp ace", "x{y"])
def test_a_scope_value_a_metric_query_cannot_hold_is_refused(hostile: str) -> None:
    with pytest.raises(UnsupportedRule):
        monitor_body(rule(labels={**SCOPE_LABELS, "openchoreo.dev/component-uid": hostile}))


def test_budget_rules_and_long_windows_are_refused() -> None:
    with pytest.raises(UnsupportedRule, match="cost"):
        monitor_body(rule(source={"type": "budget"}))
    with pytest.raises(UnsupportedRule, match="48h"):
        monitor_body(log_rule(window="49h", interval="1h"))


# ----------------------------------------------------------------------------------------------- log rules


def test_a_log_rule_is_a_log_alert_counting_the_scope_and_phrase() -> None:
    body = monitor_body(log_rule(threshold=3, operator="gte", window="15m"))
    assert body["type"] == "log alert"
    search = log_search(log_rule())
    assert 'openchoreo.namespace:"acme"' in search and 'openchoreo.component_uid:"c-1"' in search
    assert '"out of memory"' in search
    assert body["query"] == f'logs({search_literal(search)}).index("*").rollup("count").last("15m") >= 3'
    assert body["options"]["enable_logs_sample"] is False


@pytest.mark.parametrize(
    "phrase", ['a") > 0 || logs("*', "back\\slash\\", '"quoted"', 'x).last("1m") < 1e9 #', "{{value}} @all"]
)
def test_a_hostile_phrase_stays_inside_the_one_string_argument(phrase: str) -> None:
    query = monitor_body(log_rule(phrase))["query"]
    match = re.fullmatch(r'logs\("((?:[^"\\]|\\.)*)"\)\.index\("\*"\)\.rollup\("count"\)\.last\("5m"\) > 80', query)
    assert match is not None, query
    inner = re.sub(r"\\(.)", r"\1", match.group(1))  # one level of the monitor string's escaping undone
    assert inner == log_search(log_rule(phrase))


# ----------------------------------------------------------------------------------------------- identity


def test_tags_name_the_rule_and_owner_and_the_message_carries_value_and_webhook() -> None:
    body = monitor_body(rule("cpu-high", "team-a"), owner="obs-test", webhook="hook-1")
    assert body["tags"] == sorted(
        ["managed-by:obs-test", "openchoreo-rule-name:cpu-high", "openchoreo-rule-namespace:team-a"]
    )
    assert body["name"] == "[OpenChoreo] team-a/cpu-high"
    assert f"{VALUE_MARKER} {{{{value}}}}" in body["message"] and "@webhook-hook-1" in body["message"]
    assert rule_id_of(body, "obs-test") == "team-a/cpu-high"
    assert rule_id_of(body, DEFAULT_OWNER) is None
    assert rule_id_of({"tags": ["managed-by:obs-test"]}, "obs-test") is None


@pytest.mark.parametrize("name", ["Upper", "with space", "a@b", "x{{y}}", "a" * 200])
def test_a_name_datadog_would_rewrite_as_a_tag_is_refused(name: str) -> None:
    with pytest.raises(UnsupportedRule, match="tag value"):
        monitor_body(rule(name))


def test_interval_maps_to_renotify_and_severity_to_priority() -> None:
    body = monitor_body(rule(window="1h", interval="15m", severity="critical"))
    assert body["options"]["renotify_interval"] == 15
    assert body["priority"] == 1
    assert "priority" not in monitor_body(rule())
    assert monitor_body(rule(severity="info"))["priority"] == 5


# ----------------------------------------------------------------------------------------------- content hash


def test_the_hash_ignores_options_datadog_adds_and_sees_edits() -> None:
    target = DatadogMonitorTarget.__new__(DatadogMonitorTarget)
    target.owner, target.webhook = DEFAULT_OWNER, "openchoreo-observer"
    wanted = monitor_body(rule())
    returned = json.loads(json.dumps(wanted))
    returned.update(id=123, created="2026-01-01T00:00:00Z", overall_state="OK", priority=None)
    returned["options"].update(new_host_delay=300, silenced={}, notify_audit=False)
    returned["options"]["thresholds"]["critical"] = 80  # Datadog may return an int where we sent 80.0
    returned["tags"] = list(reversed(returned["tags"]))
    assert monitor_hash(returned, wanted) == monitor_hash(wanted, wanted) == target.content_hash(rule())
    for field, value in (("query", "avg(last_5m):1 > 0"), ("message", "edited"), ("name", "x")):
        assert monitor_hash({**returned, field: value}, wanted) != monitor_hash(wanted, wanted)
    edited = json.loads(json.dumps(returned))
    edited["options"]["thresholds"]["critical"] = 99
    assert monitor_hash(edited, wanted) != monitor_hash(wanted, wanted)
    assert target.content_hash(rule(threshold=81)) != target.content_hash(rule())


def test_the_target_takes_log_metric_and_budget_rules() -> None:
    target = DatadogMonitorTarget.__new__(DatadogMonitorTarget)
    assert target.accepts(rule()) and target.accepts(log_rule()) and target.accepts(rule(source={"type": "budget"}))


# ----------------------------------------------------------------------------------------------- webhook entry


def test_the_webhook_entry_posts_the_template_with_the_token_variable() -> None:
    template = json.loads(webhook_payload_template())
    assert template["alert_transition"] == "$ALERT_TRANSITION" and template["tags"] == "$TAGS"
    assert template["event_id"] == "$ID" and template["text_only_msg"] == "$TEXT_ONLY_MSG"
    variable = token_variable("openchoreo-observer")
    assert variable == "OPENCHOREO_OBSERVER_TOKEN"
    config = webhook_config("openchoreo-observer", "https://observer:8081/api/v1alpha1/alerts/webhook", variable)
    assert json.loads(config["custom_headers"]) == {"Authorization": "Bearer $OPENCHOREO_OBSERVER_TOKEN"}
    assert config["encode_as"] == "json"
    assert "custom_headers" not in webhook_config("n", "https://x")
