"""Alert rules kept by OpenChoreo adapters through their rule endpoints (`/api/v1alpha1/alerts/rules[/{name}]`):
log rules on the logs adapter, metric rules on the metrics adapter, as OpenChoreo's observer sends them
(observer-contract-notes §5.1, §5.2). The adapter's backend evaluates them (an OpenSearch monitor, a
PrometheusRule, a CloudWatch alarm ...) and the adapter posts firings to the observer's internal webhook
(`{ruleName, ruleNamespace, alertValue, alertTimestamp}`, which our webhook reads as it is: point the adapter's
`OBSERVER_URL` at our internal port).

The contract has no way to list rules, so what a target holds is learned by asking for each rule it knows: the
ones it wrote in this process, and those the reconciler asks it to write. What that costs: after a restart,
a rule deleted while we were down is not seen, and stays in the adapter until it is deleted by name; every pass
costs one GET per rule. A rule's identity in the adapter is its resource name (OpenChoreo's, too: two
namespaces' rules of one name share it there).

What is compared is the rule as the adapter answers it (metadata, source, condition, durations in seconds), so an
edit behind our back shows as a different hash and the next pass puts it back. A 409 on create becomes an update
(the rule was there already), a 404 on delete is done already, a 501 is UnsupportedRule with the adapter's code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import quote

from adapters.http.client import AdapterClient
from adapters.http.errors import AdapterConflict, AdapterNotFound, AdapterNotImplemented
from adapters.rule_targets import BackendRule, UnsupportedRule, content_hash, rule_logical_id
from domain.alerting import AlertRule, go_duration, parse_duration

RULES_PATH = "/api/v1alpha1/alerts/rules"
#: At most this many rules are remembered per target (a bound on the GETs of one pass).
MAX_KNOWN_RULES = 10_000

Kind = Literal["log", "metric"]


def rule_body(rule: AlertRule, kind: Kind) -> dict[str, Any]:
    """The AlertRuleRequest of `rule` for a logs (`kind="log"`) or metrics adapter."""
    source: dict[str, Any] = {"query": rule.source.query} if kind == "log" else {"metric": rule.source.metric}
    return {
        "metadata": {
            "name": rule.name,
            "namespace": rule.namespace,
            "projectUid": rule.project_uid,
            "environmentUid": rule.environment_uid,
            "componentUid": rule.component_uid,
        },
        "source": source,
        "condition": {
            "enabled": rule.enabled,
            "window": go_duration(rule.condition.window_s),
            "interval": go_duration(rule.condition.interval_s),
            "operator": rule.condition.operator,
            "threshold": rule.condition.threshold,
        },
    }


def comparable(body: Mapping[str, Any], kind: Kind) -> dict[str, Any]:
    """What is compared of a rule (a request we would send, or the adapter's answer to GET): durations in
    seconds, the threshold as a float, nothing the adapter may add."""
    metadata = body.get("metadata") or {}
    source = body.get("source") or {}
    condition = body.get("condition") or {}

    def seconds(value: Any) -> Any:
        try:
            return parse_duration(str(value))
        except ValueError:
            return value

    threshold = condition.get("threshold")
    return {
        "metadata": {
            key: metadata.get(key, "") for key in ("name", "namespace", "projectUid", "environmentUid", "componentUid")
        },
        "source": source.get("query", "") if kind == "log" else source.get("metric", ""),
        "condition": {
            "enabled": condition.get("enabled"),
            "window": seconds(condition.get("window")),
            "interval": seconds(condition.get("interval")),
            "operator": condition.get("operator"),
            "threshold": float(threshold) if isinstance(threshold, int | float) else threshold,
        },
    }


class AdapterRuleTarget:
    """One adapter's rule endpoints as a RuleTarget (adapters/rule_targets.py)."""

    def __init__(self, client: AdapterClient, kind: Kind) -> None:
        self.client = client
        self.kind: Kind = kind
        self.name = f"{client.signal}-adapter"
        self.known: dict[str, str] = {}  # logical id -> the rule's name in the adapter

    def accepts(self, rule: AlertRule) -> bool:
        if self.kind == "log":
            return rule.source.type == "log"
        return rule.source.type in ("metric", "budget")

    def content_hash(self, rule: AlertRule) -> str:
        return content_hash(comparable(rule_body(rule, self.kind), self.kind))

    def _path(self, name: str) -> str:
        return f"{RULES_PATH}/{quote(name, safe='')}"

    def _schema(self) -> str:
        return "AlertRuleRequest"

    async def list_managed(self) -> dict[str, BackendRule]:
        found: dict[str, BackendRule] = {}
        for rule_id, name in list(self.known.items()):
            try:
                answer = await self.client.call("GET", self._path(name), response_schema="AlertRuleResponse")
            except AdapterNotFound:
                continue
            found[rule_id] = BackendRule(rule_id, name, content_hash(comparable(answer, self.kind)))
        return found

    async def upsert(self, rule: AlertRule) -> str:
        body = rule_body(rule, self.kind)
        self._remember(rule_logical_id(rule), rule.name)
        try:
            try:
                answer = await self.client.call(
                    "POST",
                    RULES_PATH,
                    body=body,
                    request_schema=self._schema(),
                    response_schema="AlertingRuleSyncResponse",
                )
            except AdapterConflict:
                answer = await self.client.call(
                    "PUT",
                    self._path(rule.name),
                    body=body,
                    request_schema=self._schema(),
                    response_schema="AlertingRuleSyncResponse",
                )
        except AdapterNotImplemented as exc:
            raise UnsupportedRule(
                f"the {self.name} does not keep such rules ({exc.code or 501}: {exc.message})"
            ) from None
        backend_id = answer.get("ruleBackendId") if isinstance(answer, Mapping) else None
        return backend_id if isinstance(backend_id, str) and backend_id else rule.name

    async def delete(self, rule_id: str) -> None:
        name = self.known.pop(rule_id, None) or rule_id.partition("/")[2]
        try:
            await self.client.call("DELETE", self._path(name), response_schema="AlertingRuleSyncResponse")
        except AdapterNotFound:
            return

    def _remember(self, rule_id: str, name: str) -> None:
        if rule_id in self.known or len(self.known) < MAX_KNOWN_RULES:
            self.known[rule_id] = name

    def owns(self, rule_id: str) -> bool:
        return rule_id in self.known


class AdapterRuleTargets:
    """The backend's one RuleTarget over its logs and metrics adapters' rule endpoints: each rule to the adapter
    of its kind."""

    name = "openchoreo-adapters"

    def __init__(self, parts: list[AdapterRuleTarget]) -> None:
        self.parts = parts

    def _for(self, rule: AlertRule) -> AdapterRuleTarget:
        return next(part for part in self.parts if part.accepts(rule))

    def accepts(self, rule: AlertRule) -> bool:
        return any(part.accepts(rule) for part in self.parts)

    def content_hash(self, rule: AlertRule) -> str:
        return self._for(rule).content_hash(rule)

    async def list_managed(self) -> dict[str, BackendRule]:
        found: dict[str, BackendRule] = {}
        for part in self.parts:
            found.update(await part.list_managed())
        return found

    async def upsert(self, rule: AlertRule) -> str:
        return await self._for(rule).upsert(rule)

    async def delete(self, rule_id: str) -> None:
        owners = [part for part in self.parts if part.owns(rule_id)] or self.parts
        for part in owners:
            await part.delete(rule_id)
