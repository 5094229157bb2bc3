"""Alert rules compiled for their backends, read as text: the PromQL of each metrics scheme (user values stay
string literals), the operator tables, the rule file Prometheus loads (template-safe labels, the content hash),
the Alertmanager configuration, and the OpenSearch Alerting monitor body (which cannot be run against a real
Alerting plugin here: the OpenSearch distribution used by the tests has none).

What the rule files mean to a real Prometheus is tested in tests/integration/test_alert_reconciler.py.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from adapters.opensearch.layout import IndexLayout
from adapters.opensearch.monitors import PAINLESS_OPERATORS, monitor_body
from adapters.prometheus import promql
from adapters.prometheus.kubernetes import KubernetesScheme
from adapters.prometheus.otel import OtelScheme
from adapters.prometheus.rules import (
    ANNOTATION_HASH,
    PROMQL_OPERATORS,
    PrometheusRuleTarget,
    alert_expr,
    alertmanager_config,
    group_hash,
    render_rule_file,
    rule_file_name,
    template_literal,
    value_expr,
)
from adapters.rule_targets import UnsupportedRule
from alert_rules.evaluator import COMPARE, delivery_key, latest_slot
from alert_rules.reconciler import SyncResult, sync_response
from domain.alerting import AlertRule, rule_from_resource

S = 1_000_000_000
SCHEMES = [OtelScheme(), KubernetesScheme()]
HOSTILE = ('x"} or vector(1) #', "back\\slash\\", "new\nline\r", '\\"} or on() vector(1) or up{job="', "}{)(][,=~!")
OPERATORS = ("gt", "gte", "lt", "lte", "eq", "neq")


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
) -> AlertRule:
    return rule_from_resource(
        {
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": labels
                if labels is not None
                else {
                    "openchoreo.dev/namespace": "acme",
                    "openchoreo.dev/project-uid": "p-1",
                    "openchoreo.dev/component-uid": "c-1",
                    "openchoreo.dev/environment-uid": "e-1",
                },
            },
            "spec": {
                "name": name,
                "source": source or {"type": "metric", "metric": "cpu_usage"},
                "condition": {"window": window, "interval": interval, "operator": operator, "threshold": threshold},
                "actions": {"notifications": {"channels": ["ops"]}},
            },
        }
    )


def hostile_rule(value: str, metric: str = "cpu_usage") -> AlertRule:
    return rule(
        source={"type": "metric", "metric": metric},
        labels={
            "openchoreo.dev/namespace": f"ns{value}",
            "openchoreo.dev/project-uid": f"p{value}",
            "openchoreo.dev/component-uid": f"c{value}",
            "openchoreo.dev/environment-uid": f"e{value}",
        },
    )


_LITERAL = re.compile(r'"((?:[^"\\\n\r]|\\.)*)"')
_UNESCAPE = re.compile(r"\\(.)")


def literals(expr: str) -> tuple[str, list[str]]:
    """(the expression with every string literal emptied, the literals' decoded values). A value that escaped
    its literal would show up in the skeleton; one that stayed inside decodes back to itself."""
    values = [
        _UNESCAPE.sub(lambda m: {"n": "\n", "r": "\r"}.get(m.group(1), m.group(1)), v) for v in _LITERAL.findall(expr)
    ]
    return _LITERAL.sub('""', expr), values


# ================================================================================================ PromQL


@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: s.name)
@pytest.mark.parametrize(
    "metric,usage,limit",
    [
        ("cpu_usage", ("k8s_pod_cpu_usage", "container_cpu_usage_seconds_total"), 'resource="cpu"'),
        ("memory_usage", ("k8s_pod_memory_working_set", "container_memory_working_set_bytes"), 'resource="memory"'),
    ],
)
def test_value_is_usage_over_limits_of_the_scope_over_the_window(scheme, metric, usage, limit):
    compiled = value_expr(rule(source={"type": "metric", "metric": metric}, window="10m"), scheme)
    assert compiled.startswith("100 * sum(")
    assert any(name in compiled for name in usage)
    assert "[599999ms]" in compiled  # gauges (limits at least): the samples in (t - window, t]
    if scheme.name == "kubernetes":
        assert limit in compiled and "kube_pod_container_resource_limits" in compiled
        if metric == "cpu_usage":
            assert "rate(container_cpu_usage_seconds_total" in compiled and "[600s]" in compiled  # a counter
    else:
        assert ("k8s_container_cpu_limit" if metric == "cpu_usage" else "k8s_container_memory_limit") in compiled
    skeleton, values = literals(compiled)
    for expected in ("acme", "p-1", "c-1", "e-1"):
        assert expected in values


@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: s.name)
@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_scope_values_stay_string_literals(scheme, value):
    hostile = alert_expr(hostile_rule(value), scheme)
    benign = alert_expr(hostile_rule("-plain"), scheme)
    hostile_skeleton, hostile_values = literals(hostile)
    benign_skeleton, _ = literals(benign)
    assert hostile_skeleton == benign_skeleton  # the structure does not depend on the values
    assert {f"ns{value}", f"p{value}", f"c{value}", f"e{value}"} <= set(hostile_values)
    assert f'"{promql.escape("c" + value)}"' in hostile


@pytest.mark.parametrize("op", OPERATORS)
def test_every_operator_compares_the_value_with_the_threshold(op):
    compiled = alert_expr(rule(operator=op, threshold=80), OtelScheme())
    assert compiled.endswith(f") {PROMQL_OPERATORS[op]} 80")
    assert PROMQL_OPERATORS == {"gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "eq": "==", "neq": "!="}


def test_thresholds_are_exact_number_literals():
    assert alert_expr(rule(threshold=0.5), OtelScheme()).endswith("> 0.5")
    assert alert_expr(rule(threshold=12.25), OtelScheme()).endswith("> 12.25")
    assert alert_expr(rule(threshold=1e20), OtelScheme()).endswith("> 1e+20")


def test_budget_rules_are_refused_with_the_reason():
    with pytest.raises(UnsupportedRule, match="cost backend"):
        alert_expr(rule(source={"type": "budget"}), OtelScheme())


# ================================================================================================ rule files


def test_rule_file_has_one_group_named_by_the_logical_id():
    text = render_rule_file(rule(interval="2m", window="10m"), OtelScheme())
    doc = yaml.safe_load(text)
    (group,) = doc["groups"]
    (alerting,) = group["rules"]
    assert group["name"] == "acme/cpu-high" and group["interval"] == "2m"
    assert alerting["alert"] == "cpu-high" and alerting["for"] == "0s"
    assert alerting["labels"] == {
        "openchoreo_alert": "true",
        "openchoreo_rule_name": "cpu-high",
        "openchoreo_rule_namespace": "acme",
    }
    assert alerting["annotations"]["alert_value"] == "{{ $value }}"
    assert alerting["annotations"]["rule_name"] == "cpu-high"
    assert alerting["annotations"]["rule_namespace"] == "acme"


def test_hash_covers_the_content_and_matches_what_is_read_back():
    target = PrometheusRuleTarget("/nonexistent", "http://127.0.0.1:9", OtelScheme())
    base = rule()
    (group,) = yaml.safe_load(render_rule_file(base, OtelScheme()))["groups"]
    stored = group["rules"][0]["annotations"][ANNOTATION_HASH]
    assert group_hash(group) == stored == target.content_hash(base)
    assert target.content_hash(rule(threshold=81)) != stored
    assert target.content_hash(rule(interval="2m")) != stored
    # Description and channels do not reach Prometheus: the file is not rewritten for them.
    edited = yaml.safe_load(yaml.safe_dump(group))
    edited["rules"][0]["expr"] = edited["rules"][0]["expr"].replace("> 80", "> 90")
    assert group_hash(edited) != stored  # an edit behind our back is seen, even with the old annotation


@pytest.mark.parametrize("text", ["{{ $value }}", "a{{b", "{{{", "plain", "}}{{", '{{ "{{" }}'])
def test_template_literals_expand_to_themselves(text):
    # Go's text/template: outside actions text is copied; `{{ "{{" }}` prints "{{". Emulate that expansion.
    expanded = re.sub(r'\{\{ "\{\{" \}\}', "\x00", template_literal(text))
    assert "{{" not in expanded
    assert expanded.replace("\x00", "{{") == text


def test_labels_with_template_syntax_are_escaped():
    doc = yaml.safe_load(render_rule_file(rule(name="x{{ .Labels }}", namespace="n{{"), OtelScheme()))
    alerting = doc["groups"][0]["rules"][0]
    assert alerting["labels"]["openchoreo_rule_name"] == 'x{{ "{{" }} .Labels }}'
    assert alerting["annotations"]["rule_namespace"] == 'n{{ "{{" }}'
    assert doc["groups"][0]["name"] == "n{{/x{{ .Labels }}"  # group names are not templates


@pytest.mark.parametrize("rule_id", ["acme/cpu", "ACME/Cpu High", "../../etc/passwd", "a/b/c", "ns/" + "x" * 300])
def test_rule_file_names_are_safe_and_unique(rule_id):
    name = rule_file_name(rule_id)
    assert name.startswith("openchoreo--") and name.endswith(".yml")
    assert re.fullmatch(r"[a-z0-9._-]+", name) and len(name) < 200  # one path component, no separator

    assert rule_file_name(rule_id) == name
    assert rule_file_name(rule_id + "x") != name
    assert rule_file_name(rule_id, owner="other--").startswith("other--")


# ================================================================================================ Alertmanager


def test_alertmanager_routes_our_alerts_to_the_observer_webhook():
    config = yaml.safe_load(alertmanager_config("http://observer:8081/api/v1alpha1/alerts/webhook", group_wait="1s"))
    (route,) = config["route"]["routes"]
    assert route["matchers"] == ['openchoreo_alert="true"']
    assert route["group_by"] == ["openchoreo_rule_namespace", "openchoreo_rule_name"]
    assert route["group_wait"] == "1s"
    receivers = {r["name"]: r for r in config["receivers"]}
    (webhook,) = receivers[route["receiver"]]["webhook_configs"]
    assert webhook == {"url": "http://observer:8081/api/v1alpha1/alerts/webhook", "send_resolved": False}
    assert "webhook_configs" not in receivers[config["route"]["receiver"]]  # anything else goes nowhere


# ================================================================================================ monitors

LOG_RULE = dict(
    source={"type": "log", "query": 'payment "failed" * ?'}, operator="gte", threshold=10, window="1h", interval="5m"
)


def test_monitor_counts_the_phrase_in_the_scope_over_the_window():
    body = monitor_body(rule(name="errors", **LOG_RULE), IndexLayout(logs="logs-"))
    assert body["monitor_type"] == "query_level_monitor" and body["name"] == "acme/errors" and body["enabled"]
    assert body["schedule"] == {"period": {"interval": 5, "unit": "MINUTES"}}
    (search,) = body["inputs"]
    assert search["search"]["indices"] == ["logs-*"]
    query = search["search"]["query"]
    assert query["size"] == 0 and query["track_total_hits"] is True
    filters = query["query"]["bool"]["filter"]
    terms = {k: v for f in filters if "term" in f for k, v in f["term"].items()}
    assert terms == {
        "kubernetes.labels.openchoreo_dev/namespace": "acme",  # upstream had no namespace filter
        "kubernetes.labels.openchoreo_dev/project-uid": "p-1",
        "kubernetes.labels.openchoreo_dev/component-uid": "c-1",
        "kubernetes.labels.openchoreo_dev/environment-uid": "e-1",
    }
    (period,) = [f["range"]["@timestamp"] for f in filters if "range" in f]
    assert period == {"gt": "{{period_end}}||-1h", "lte": "{{period_end}}", "format": "epoch_millis"}
    (phrase,) = [f["wildcard"]["log"]["value"] for f in filters if "wildcard" in f]
    assert phrase == '*payment "failed" \\* \\?*'  # wildcard syntax escaped: a literal substring
    assert query["query"]["bool"]["must_not"]  # workflow pods left out, as in the logs API


@pytest.mark.parametrize("op", OPERATORS)
def test_monitor_trigger_uses_every_operator(op):
    body = monitor_body(rule(name="errors", **{**LOG_RULE, "operator": op, "threshold": 7}))
    trigger = body["triggers"][0]["query_level_trigger"]
    assert trigger["condition"]["script"] == {
        "source": f"ctx.results[0].hits.total.value {PAINLESS_OPERATORS[op]} 7",
        "lang": "painless",
    }


def test_monitor_message_is_the_contract_webhook_payload():
    body = monitor_body(rule(name='we"ird\\name', **LOG_RULE))
    (action,) = body["triggers"][0]["query_level_trigger"]["actions"]
    assert action["destination_id"] == "openchoreo-observer-alerting-webhook"
    rendered = (
        action["message_template"]["source"]
        .replace("{{ctx.results.0.hits.total.value}}", "12")
        .replace("{{ctx.periodEnd}}", "2026-01-01T00:00:00Z")
    )
    payload = json.loads(rendered)
    assert payload["ruleName"] == 'we"ird\\name' and payload["ruleNamespace"] == "acme"
    assert payload["alertValue"] == 12 and payload["alertTimestamp"] == "2026-01-01T00:00:00Z"


def test_monitor_carries_our_identity_and_a_content_hash():
    first = monitor_body(rule(name="errors", **LOG_RULE))
    assert first["ui_metadata"]["openchoreo"]["logicalId"] == "acme/errors"
    assert first == monitor_body(rule(name="errors", **LOG_RULE))
    changed = monitor_body(rule(name="errors", **{**LOG_RULE, "threshold": 11}))
    assert changed["ui_metadata"]["openchoreo"]["hash"] != first["ui_metadata"]["openchoreo"]["hash"]


def test_monitor_refuses_template_syntax_and_metric_rules():
    with pytest.raises(UnsupportedRule, match="template"):
        monitor_body(rule(name="errors", **{**LOG_RULE, "source": {"type": "log", "query": "x {{ctx}}"}}))
    with pytest.raises(UnsupportedRule, match="log rules"):
        monitor_body(rule())


# ================================================================================================ evaluator, sync


def test_slots_are_aligned_to_the_interval_and_wait_for_the_delay():
    minute = 60 * S
    assert latest_slot(10 * minute + 4 * S, minute, 5 * S) == 9 * minute  # 10:00 is not due before 10:05
    assert latest_slot(10 * minute + 5 * S, minute, 5 * S) == 10 * minute
    assert delivery_key("acme", "errors", 10 * minute) == delivery_key("acme", "errors", 10 * minute)
    assert delivery_key("acme", "errors", 10 * minute) != delivery_key("acme", "errors", 11 * minute)
    assert delivery_key("acme", "errors", 0) != delivery_key("acme", "errors2", 0)
    assert {op: COMPARE[op](10, 10) for op in OPERATORS} == {
        "gt": False,
        "gte": True,
        "lt": False,
        "lte": True,
        "eq": True,
        "neq": False,
    }


def test_sync_response_has_the_contract_shape():
    result = SyncResult("acme", "errors", "created", True, "openchoreo--acme--errors.yml", 1_767_225_600_123_456_789)
    assert sync_response(result) == {
        "action": "created",
        "status": "synced",
        "ruleLogicalId": "acme/errors",
        "ruleBackendId": "openchoreo--acme--errors.yml",
        "lastSyncedAt": "2026-01-01T00:00:00Z",
    }
    assert sync_response(SyncResult("acme", "errors", "updated", False, "", 0, "boom"))["status"] == "failed"
