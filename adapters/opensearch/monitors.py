"""Log alert rules as OpenSearch Alerting query-level monitors, when the Alerting plugin is installed.

When it is not (`alerting_plugin_installed` asks `GET /_cat/plugins`), `logs_rule_target` hands log rules to our
own evaluator (alert_rules/evaluator.py) instead: same semantics, evaluated in the observer.

A rule becomes one monitor (compare adapters-notes §1.5, OpenChoreo's `BuildLogAlertingRuleMonitorBody`):

- `name` is the logical id `<namespace>/<name>`; our identity and content hash travel in `ui_metadata.openchoreo`,
  so monitors are found by what they are, not by a `match_phrase` on the name (upstream's lookup also matched
  `foo-bar` for `foo`);
- `schedule.period` = condition.interval in minutes;
- the search counts lines of the last window exactly (`size: 0`, `track_total_hits: true`) with the *same*
  clauses the logs API uses (`queries.log_filters`): namespace label (upstream had none), the scope's UIDs,
  workflow pods left out, the phrase as a literal case-sensitive substring; the time range is
  `({{period_end}} - window, {{period_end}}]`, the evaluator's (t - window, t];
- the trigger compares `ctx.results[0].hits.total.value` with the threshold; all six operators are painless
  operators (upstream failed eq and neq with a 500);
- the action posts the contract's webhook payload `{ruleName, ruleNamespace, alertValue, alertTimestamp}` to the
  notification channel `openchoreo-observer-alerting-webhook` (`ensure_webhook_channel`), un-throttled: like the
  other backends it reports every evaluation where the condition holds and the observer's suppression window
  decides what becomes a new alert.

OpenSearch renders a monitor's search and message as mustache templates, so a value containing `{{` cannot be
put in one safely; such rules are refused (`UnsupportedRule`), which Kubernetes names never trigger.

Not run against a real Alerting plugin here (the integ-test distribution has none); the compiled body is
unit-tested and the plugin detection is tested against a real OpenSearch.
"""

from __future__ import annotations

import json
from typing import Any

from opensearchpy import AsyncOpenSearch, NotFoundError

from adapters.opensearch import fields, queries
from adapters.opensearch.client import unavailable_on_failure
from adapters.opensearch.layout import IndexLayout
from adapters.rule_targets import BackendRule, RuleTarget, UnsupportedRule, content_hash, rule_logical_id
from domain.alerting import AlertRule, rule_scope, short_duration

WEBHOOK_CHANNEL_ID = "openchoreo-observer-alerting-webhook"
PAINLESS_OPERATORS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "eq": "==", "neq": "!="}
_MONITORS = "/_plugins/_alerting/monitors"


def _literal(value: str, what: str) -> str:
    if "{{" in value:
        raise UnsupportedRule(f"{what} contains '{{{{', which OpenSearch Alerting would read as a template")
    return value


def monitor_body(
    rule: AlertRule, layout: IndexLayout = IndexLayout(), destination_id: str = WEBHOOK_CHANNEL_ID
) -> dict[str, Any]:
    """The monitor for a log rule, `ui_metadata` (our id and content hash) included."""
    body = _monitor_without_metadata(rule, layout, destination_id)
    body["ui_metadata"] = {"openchoreo": {"logicalId": rule_logical_id(rule), "hash": content_hash(body)}}
    return body


def _monitor_without_metadata(rule: AlertRule, layout: IndexLayout, destination_id: str) -> dict[str, Any]:
    if rule.source.type != "log":
        raise UnsupportedRule("OpenSearch Alerting monitors evaluate log rules only")
    scope = rule_scope(rule)
    for what, value in (
        ("the namespace", scope.namespace),
        ("the project UID", scope.project_uid),
        ("the component UID", scope.component_uid),
        ("the environment UID", scope.environment_uid),
        ("the query", rule.source.query),
        ("the rule name", rule.name),
        ("the rule namespace", rule.namespace),
    ):
        _literal(value, what)
    window = short_duration(rule.condition.window_s)
    period = {"gt": f"{{{{period_end}}}}||-{window}", "lte": "{{period_end}}", "format": "epoch_millis"}
    filters, must_not = queries.log_filters(scope, {"range": {fields.TIMESTAMP: period}}, (), rule.source.query)
    query: dict[str, Any] = {"filter": filters}
    if must_not:
        query["must_not"] = must_not
    threshold = rule.condition.threshold
    literal = str(int(threshold)) if threshold.is_integer() else repr(threshold)
    condition = f"ctx.results[0].hits.total.value {PAINLESS_OPERATORS[rule.condition.operator]} {literal}"
    # json.dumps quotes and escapes the names; the value and time are mustache placeholders.
    message = (
        f'{{"ruleName":{json.dumps(rule.name)},"ruleNamespace":{json.dumps(rule.namespace)},'
        f'"componentUid":{json.dumps(scope.component_uid)},"projectUid":{json.dumps(scope.project_uid)},'
        f'"environmentUid":{json.dumps(scope.environment_uid)},'
        '"alertValue":{{ctx.results.0.hits.total.value}},"alertTimestamp":"{{ctx.periodEnd}}"}'
    )
    return {
        "type": "monitor",
        "monitor_type": "query_level_monitor",
        "name": rule_logical_id(rule),
        "enabled": True,
        "schedule": {"period": {"interval": int(rule.condition.interval_s // 60), "unit": "MINUTES"}},
        "inputs": [
            {
                "search": {
                    "indices": [layout.pattern(layout.logs)],
                    "query": {"size": 0, "track_total_hits": True, "query": {"bool": query}},
                }
            }
        ],
        "triggers": [
            {
                "query_level_trigger": {
                    "name": f"trigger-{rule.name}",
                    "severity": "1",
                    "condition": {"script": {"source": condition, "lang": "painless"}},
                    "actions": [
                        {
                            "name": f"action-{rule.name}",
                            "destination_id": destination_id,
                            "message_template": {"source": message, "lang": "mustache"},
                            "subject_template": {"source": f"OpenChoreo alert rule {rule.name}", "lang": "mustache"},
                            "throttle_enabled": False,
                        }
                    ],
                }
            }
        ],
    }


async def alerting_plugin_installed(client: AsyncOpenSearch) -> bool:
    """Whether a node of the cluster lists `opensearch-alerting` in `GET /_cat/plugins`."""
    with unavailable_on_failure("listing plugins"):
        plugins = await client.transport.perform_request("GET", "/_cat/plugins", params={"format": "json"})
    return any(isinstance(p, dict) and p.get("component") == "opensearch-alerting" for p in plugins or [])


async def ensure_webhook_channel(
    client: AsyncOpenSearch, webhook_url: str, channel_id: str = WEBHOOK_CHANNEL_ID, bearer_token: str = ""
) -> None:
    """The Notifications channel monitors post to: created when missing, updated only when it differs. With the
    internal port's token set, the channel sends it as `Authorization: Bearer`."""
    path = f"/_plugins/_notifications/configs/{channel_id}"
    webhook: dict[str, Any] = {"url": webhook_url}
    if bearer_token:
        webhook["header_params"] = {"Authorization": f"Bearer {bearer_token}"}
    config = {
        "name": channel_id,
        "description": "OpenChoreo observer alert webhook",
        "config_type": "webhook",
        "is_enabled": True,
        "webhook": webhook,
    }
    with unavailable_on_failure("reading the alert webhook channel"):
        try:
            current = await client.transport.perform_request("GET", path)
        except NotFoundError:
            current = None
    with unavailable_on_failure("writing the alert webhook channel"):
        if current is None:
            await client.transport.perform_request(
                "POST", "/_plugins/_notifications/configs/", body={"config_id": channel_id, "config": config}
            )
            return
        configs = current.get("config_list") or [{}]
        held = (configs[0].get("config") or {}).get("webhook") or {}
        if held.get("url") != webhook_url or (held.get("header_params") or {}) != webhook.get("header_params", {}):
            await client.transport.perform_request("PUT", path, body={"config": config})


class OpenSearchMonitorTarget:
    """RuleTarget for log rules as Alerting monitors."""

    name = "opensearch-alerting"

    def __init__(
        self, client: AsyncOpenSearch, layout: IndexLayout = IndexLayout(), destination_id: str = WEBHOOK_CHANNEL_ID
    ):
        self.client = client
        self.layout = layout
        self.destination_id = destination_id
        self._ids: dict[str, str] = {}  # logical id -> monitor id, from the last listing or write

    def accepts(self, rule: AlertRule) -> bool:
        return rule.source.type == "log"

    def content_hash(self, rule: AlertRule) -> str:
        return content_hash(_monitor_without_metadata(rule, self.layout, self.destination_id))

    async def list_managed(self) -> dict[str, BackendRule]:
        body = {"size": 10_000, "query": {"bool": {"filter": [{"term": {"monitor.type": "monitor"}}]}}}
        with unavailable_on_failure("listing alerting monitors"):
            try:
                response = await self.client.transport.perform_request("POST", f"{_MONITORS}/_search", body=body)
            except NotFoundError:  # no monitor was ever created: the config index does not exist yet
                response = {}
        managed: dict[str, BackendRule] = {}
        for hit in (response.get("hits") or {}).get("hits", []):
            monitor = hit.get("_source", {}).get("monitor", hit.get("_source", {}))
            ours = (monitor.get("ui_metadata") or {}).get("openchoreo") or {}
            rule_id = ours.get("logicalId")
            if not isinstance(rule_id, str):
                continue
            drifted = not monitor.get("enabled", True)
            managed[rule_id] = BackendRule(
                rule_id, hit["_id"], str(ours.get("hash", "")), drifted, "the monitor was disabled" if drifted else ""
            )
        self._ids = {rule_id: entry.backend_id for rule_id, entry in managed.items()}
        return managed

    async def upsert(self, rule: AlertRule) -> str:
        body = monitor_body(rule, self.layout, self.destination_id)
        rule_id = rule_logical_id(rule)
        monitor_id = self._ids.get(rule_id)
        with unavailable_on_failure("writing an alerting monitor"):
            if monitor_id:
                try:
                    await self.client.transport.perform_request("PUT", f"{_MONITORS}/{monitor_id}", body=body)
                    return monitor_id
                except NotFoundError:
                    pass  # deleted behind our back since the listing: create it again
            created = await self.client.transport.perform_request("POST", _MONITORS, body=body)
        created_id: str = created["_id"]
        self._ids[rule_id] = created_id
        return created_id

    async def delete(self, rule_id: str) -> None:
        monitor_id = self._ids.pop(rule_id, None)
        if not monitor_id:
            return
        with unavailable_on_failure("deleting an alerting monitor"):
            try:
                await self.client.transport.perform_request("DELETE", f"{_MONITORS}/{monitor_id}")
            except NotFoundError:
                pass


async def logs_rule_target(
    client: AsyncOpenSearch,
    evaluator: RuleTarget,
    webhook_url: str,
    layout: IndexLayout = IndexLayout(),
    bearer_token: str = "",
) -> RuleTarget:
    """The target for log rules on OpenSearch: Alerting monitors when the plugin is installed (with the webhook
    channel they post to), else our evaluator."""
    if not await alerting_plugin_installed(client):
        return evaluator
    await ensure_webhook_channel(client, webhook_url, bearer_token=bearer_token)
    return OpenSearchMonitorTarget(client, layout)
