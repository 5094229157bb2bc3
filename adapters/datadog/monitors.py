"""Alert rules as Datadog monitors: a log rule is a `log alert`, a metric rule a `query alert`.

What a rule becomes (one monitor per rule, `POST /api/v1/monitor`, then `PUT /api/v1/monitor/{id}`):

    name     "[OpenChoreo] <namespace>/<name>"
    type     "log alert" | "query alert"
    query    log:    logs("<scope> <phrase>").index("*").rollup("count").last("<window>") <op> <threshold>
             metric: avg(last_<window>):100 * sum:<usage>{<scope>} / sum:<limit>{<scope>} <op> <threshold>
    message  the logical id, `openchoreo-alert-value: {{value}}` and `@webhook-<name>`, which makes Datadog
             post the alert to the observer's webhook (observer/alerting/payloads.py reads it back)
    tags     managed-by:<owner>, openchoreo-rule-name:<name>, openchoreo-rule-namespace:<namespace>
    options  thresholds.critical = threshold (Datadog requires it equal to the query's number),
             renotify_interval = interval in minutes, notify_no_data false; priority from the severity

Semantics, next to the other targets (adapters/prometheus/rules.py, alert_rules/evaluator.py):

- **Identity.** Monitors are found by their tags, not their names: `list_managed` lists
  `monitor_tags=managed-by:<owner>` and keys each by its rule tags. Datadog lowercases tag values and turns
  characters it does not allow into `_`, so a name that would not come back unchanged (Kubernetes names
  always do) is refused with `UnsupportedRule` instead of being re-created on every pass.
- **The value.** A log rule counts the lines of the scope whose message holds the phrase over the last
  `window`, with the same tags the logs API filters on (adapters/datadog/fields.py): namespace, the scope's
  UIDs, component workloads only. Datadog's full-text search is its own (tokenised, case-insensitive), so
  the phrase matches as Datadog matches a quoted phrase. A metric rule is usage as a percentage of limits,
  summed over the scope's pods and averaged over `window`, as on Prometheus (`cpu_usage`: k8s.pod.cpu.usage
  over k8s.container.cpu.limit; `memory_usage`: k8s.pod.memory.working_set over k8s.container.memory.limit).
- **`interval`.** Monitors have no evaluation period of ours: Datadog evaluates metric monitors every minute
  and log monitors on its own schedule. What `interval` means elsewhere (a still-firing rule is reported again
  every interval, and the observer's suppression window decides what is a new alert) maps onto
  `renotify_interval`: Datadog re-sends a monitor still in alert every `interval` minutes.
- **`enabled: false`.** Monitors have no enable flag (muting keeps evaluating and hides the state), so a
  disabled rule is deleted, as on every target: the reconciler removes disabled rules and re-creates the
  monitor (with a new id) when the rule is enabled again.
- Budget rules need cost data no backend here has: `UnsupportedRule`.

Firings come back through one Webhooks integration entry (`ensure_webhook`, run when the target is built): it
posts the fixed template of datadog-notes §4 to the observer's `/api/v1alpha1/alerts/webhook`, with the
internal port's token as `Authorization: Bearer $<SECRET_VARIABLE>` (a secret custom variable, so Datadog never
shows it); observer/alerting/payloads.py reads the rule from `$TAGS`, the value from the message's
`openchoreo-alert-value:` line and forwards triggers only.

`content_hash` is computed over the fields we write; `list_managed` hashes the same fields as Datadog returns
them (options Datadog fills in by itself are left out), so a monitor edited behind our back (query, threshold,
message, tags, name) is rewritten by the next pass, and one deleted behind our back is re-created.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import httpx

from adapters.datadog import fields, query
from adapters.rule_targets import BackendRule, UnsupportedRule, content_hash, logical_id, rule_logical_id
from domain.alerting import BUDGET_UNSUPPORTED, AlertRule, rule_scope, short_duration
from domain.model import ComponentScope

TAG_MANAGED_BY = "managed-by"
TAG_RULE_NAME = "openchoreo-rule-name"
TAG_RULE_NAMESPACE = "openchoreo-rule-namespace"
#: `managed-by:<owner>`: another observer on the same organisation (or a test) passes its own owner, and neither
#: touches the other's monitors.
DEFAULT_OWNER = "openchoreo-observer"
#: The Webhooks integration entry monitors notify (`@webhook-<name>` in the message).
DEFAULT_WEBHOOK = "openchoreo-observer"
#: The line of the message that carries the value (Datadog renders `{{value}}`); payloads.py reads it back.
VALUE_MARKER = "openchoreo-alert-value:"

OPERATORS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "eq": "==", "neq": "!="}
#: rule metric -> (usage metric, limit metric), the OTel names our intake ships (domain/semconv.py).
METRICS = {
    "cpu_usage": ("k8s.pod.cpu.usage", "k8s.container.cpu.limit"),
    "memory_usage": ("k8s.pod.memory.working_set", "k8s.container.memory.limit"),
}
#: severity -> monitor priority (1 highest .. 5 lowest).
PRIORITY = {"critical": 1, "warning": 3, "info": 5}
#: Longest windows each monitor type accepts: log alerts `last("48h")`, metric alerts `last_1w`.
MAX_LOG_WINDOW_S = 48 * 3600
MAX_METRIC_WINDOW_S = 7 * 24 * 3600
#: What survives Datadog's tag normalisation unchanged (and can neither break a metric query's `{...}` nor
#: mention anyone in a message).
_TAG_VALUE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_MAX_TAG = 200
_MONITORS = "/api/v1/monitor"
_WEBHOOKS = "/api/v1/integration/webhooks/configuration/webhooks"
_VARIABLES = "/api/v1/integration/webhooks/configuration/custom-variables"
_PAGE_SIZE = 1000


class MonitorSyncError(Exception):
    """Datadog could not be reached or refused a monitor; the message is fit for a rule's status (no keys)."""


# ================================================================================================ compiling


def number(value: float) -> str:
    """A number literal: integers without a fraction, others exactly (repr round-trips a float)."""
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def tag_value(value: str, what: str) -> str:
    """`value` when it is a tag value Datadog keeps as it is, else UnsupportedRule naming `what`."""
    if not _TAG_VALUE.match(value) or len(value) > _MAX_TAG - 40:
        raise UnsupportedRule(
            f"{what} {value[:64]!r} cannot be a Datadog tag value unchanged (lowercase letters, digits, '.', '_' "
            "and '-' only)"
        )
    return value


def search_literal(value: str) -> str:
    """A double-quoted string literal of a monitor query (`logs("...")`): `"` and `\\` escaped, so the whole
    search, quotes and all, stays the one argument."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def log_search(rule: AlertRule) -> str:
    """The logs search a log rule counts: exactly what the logs API searches for its scope and phrase
    (adapters/datadog/query.py), so a rule counts the lines a query shows."""
    return query.logs_query(rule_scope(rule), phrase=rule.source.query)


def metric_filter(scope: ComponentScope) -> str:
    """`{tag:value,...}` of a metric query (commas are AND). Metric queries have no quoting, so each value must
    be a plain tag value; scope values are names and UIDs, which are."""
    parts = [f"{key}:{tag_value(value, key)}" for key, value in _scope_tags(scope)]
    return "{" + ",".join(parts) + "}"


def _scope_tags(scope: ComponentScope) -> list[tuple[str, str]]:
    pairs = [(fields.NAMESPACE, scope.namespace)]
    pairs += [(tag, getattr(scope, attribute)) for attribute, tag in fields.SCOPE_UID_TAGS.items()]
    return [(key, value) for key, value in pairs if value]


def monitor_query(rule: AlertRule) -> tuple[str, str]:
    """(monitor type, query) for `rule`; UnsupportedRule when Datadog cannot evaluate it."""
    op, threshold = OPERATORS[rule.condition.operator], number(rule.condition.threshold)
    window_s = rule.condition.window_s
    if rule.source.type == "log":
        if window_s > MAX_LOG_WINDOW_S:
            raise UnsupportedRule("Datadog log monitors evaluate windows of at most 48h")
        search = search_literal(log_search(rule))  # the search, as the string argument of logs(...)
        window = short_duration(window_s)
        return "log alert", f'logs({search}).index("*").rollup("count").last("{window}") {op} {threshold}'
    if rule.source.type == "metric" and rule.source.metric in METRICS:
        if window_s > MAX_METRIC_WINDOW_S:
            raise UnsupportedRule("Datadog metric monitors evaluate windows of at most 1w")
        usage, limit = METRICS[rule.source.metric]
        scope = metric_filter(rule_scope(rule))
        window = short_duration(window_s)
        return "query alert", f"avg(last_{window}):100 * sum:{usage}{scope} / sum:{limit}{scope} {op} {threshold}"
    if rule.source.type == "budget":
        raise UnsupportedRule(BUDGET_UNSUPPORTED)
    raise UnsupportedRule(f"Datadog monitors evaluate log rules and cpu_usage/memory_usage rules, not {rule.source}")


def monitor_body(rule: AlertRule, owner: str = DEFAULT_OWNER, webhook: str = DEFAULT_WEBHOOK) -> dict[str, Any]:
    """The monitor for `rule` (the body of POST and PUT /api/v1/monitor)."""
    name = tag_value(rule.name, "the rule name")
    namespace = tag_value(rule.namespace, "the rule namespace")
    monitor_type, query = monitor_query(rule)
    rule_id = logical_id(namespace, name)
    options: dict[str, Any] = {
        "thresholds": {"critical": rule.condition.threshold},
        "notify_no_data": False,
        "renotify_interval": max(1, int(rule.condition.interval_s // 60)),
        "include_tags": False,
    }
    if monitor_type == "log alert":
        options["enable_logs_sample"] = False
    body: dict[str, Any] = {
        "name": f"[OpenChoreo] {rule_id}",
        "type": monitor_type,
        "query": query,
        "message": f"OpenChoreo alert rule {rule_id}\n{VALUE_MARKER} {{{{value}}}}\n@webhook-{webhook}",
        "tags": sorted([f"{TAG_MANAGED_BY}:{owner}", f"{TAG_RULE_NAME}:{name}", f"{TAG_RULE_NAMESPACE}:{namespace}"]),
        "options": options,
    }
    if rule.severity in PRIORITY:
        body["priority"] = PRIORITY[rule.severity]
    return body


def monitor_hash(monitor: Mapping[str, Any], wanted: Mapping[str, Any]) -> str:
    """The content hash of `monitor` (as written or as Datadog returns it) over the fields `wanted` sets: the
    options Datadog adds by itself do not count, an edit of anything we wrote does."""
    return content_hash(_comparable(monitor, wanted))


def _comparable(monitor: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("name", "type", "query", "message", "priority"):
        out[key] = monitor.get(key)
    out["tags"] = sorted(str(tag) for tag in monitor.get("tags") or [])
    options = monitor.get("options") or {}
    for key, value in (wanted.get("options") or {}).items():
        held = options.get(key)
        if isinstance(value, Mapping):
            held = {k: _normal(v) for k, v in (held or {}).items() if k in value} if isinstance(held, Mapping) else held
        out[f"options.{key}"] = _normal(held)
    return out


def _normal(value: Any) -> Any:
    """Numbers as floats (Datadog returns 80.0 for 80), everything else as it is."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return value


def rule_id_of(monitor: Mapping[str, Any], owner: str) -> str | None:
    """The logical id a monitor's tags name, or None when it is not one of `owner`'s."""
    tags: dict[str, str] = {}
    for tag in monitor.get("tags") or []:
        key, _, value = str(tag).partition(":")
        tags.setdefault(key, value)
    if tags.get(TAG_MANAGED_BY) != owner or not tags.get(TAG_RULE_NAME) or not tags.get(TAG_RULE_NAMESPACE):
        return None
    return logical_id(tags[TAG_RULE_NAMESPACE], tags[TAG_RULE_NAME])


# ================================================================================================ the webhook


def webhook_payload_template() -> str:
    """The payload the Webhooks integration entry sends (Datadog substitutes each `$VARIABLE`); the keys are
    those of datadog-notes §4, which observer/alerting/payloads.py reads."""
    fields_ = {
        "alert_title": "$ALERT_TITLE",
        "text_only_msg": "$TEXT_ONLY_MSG",
        "alert_id": "$ALERT_ID",
        "alert_cycle_key": "$ALERT_CYCLE_KEY",
        "aggreg_key": "$AGGREG_KEY",
        "alert_transition": "$ALERT_TRANSITION",
        "alert_type": "$ALERT_TYPE",
        "alert_priority": "$ALERT_PRIORITY",
        "alert_scope": "$ALERT_SCOPE",
        "alert_metric": "$ALERT_METRIC",
        "event_type": "$EVENT_TYPE",
        "event_id": "$ID",
        "hostname": "$HOSTNAME",
        "link": "$LINK",
        "tags": "$TAGS",
        "date_posix": "$DATE_POSIX",
    }
    return json.dumps(fields_, indent=2)


def webhook_config(name: str, url: str, token_variable: str = "") -> dict[str, Any]:
    """The Webhooks integration entry (`POST /api/v1/integration/webhooks/configuration/webhooks`) that posts
    the template to the observer's webhook. With a token it sends `Authorization: Bearer $<token_variable>`:
    the token itself lives in a secret custom variable, so Datadog never shows it in the entry."""
    body: dict[str, Any] = {"name": name, "url": url, "payload": webhook_payload_template(), "encode_as": "json"}
    if token_variable:
        body["custom_headers"] = json.dumps({"Authorization": f"Bearer ${token_variable}"})
    return body


def token_variable(webhook: str) -> str:
    """The secret custom variable holding the internal port's token for the entry `webhook` (Datadog's variable
    names are upper-case letters, digits and `_`)."""
    return re.sub(r"[^A-Z0-9_]", "_", webhook.upper()) + "_TOKEN"


# ================================================================================================ the target


class DatadogMonitorTarget:
    """RuleTarget for log and metric rules (and budget rules, refused) as Datadog monitors.

    `http` is an httpx client with the API base URL and the `DD-API-KEY` / `DD-APPLICATION-KEY` headers; an
    unscoped application key is needed for log monitors. Failures become `MonitorSyncError`, which the
    reconciler records on the rule's status and retries on its next pass; nothing here retries or waits.
    """

    name = "datadog-monitors"

    def __init__(self, http: httpx.AsyncClient, *, owner: str = DEFAULT_OWNER, webhook: str = DEFAULT_WEBHOOK):
        self._http = http
        self.owner = owner
        self.webhook = webhook
        self._ids: dict[str, str] = {}  # logical id -> monitor id, from the last listing or write

    @classmethod
    def connect(
        cls,
        base_url: str,
        api_key: str,
        app_key: str,
        *,
        timeout_s: float = 30.0,
        owner: str = DEFAULT_OWNER,
        webhook: str = DEFAULT_WEBHOOK,
    ) -> DatadogMonitorTarget:
        """A target with its own client on `base_url` (https://api.<site>), TLS verified; the keys travel in
        headers only."""
        headers = {"DD-API-KEY": api_key, "DD-APPLICATION-KEY": app_key, "Accept": "application/json"}
        client = httpx.AsyncClient(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s)
        return cls(client, owner=owner, webhook=webhook)

    async def close(self) -> None:
        await self._http.aclose()

    def accepts(self, rule: AlertRule) -> bool:
        return rule.source.type in ("log", "metric", "budget")

    def content_hash(self, rule: AlertRule) -> str:
        body = monitor_body(rule, self.owner, self.webhook)
        return monitor_hash(body, body)

    def body(self, rule: AlertRule) -> dict[str, Any]:
        return monitor_body(rule, self.owner, self.webhook)

    # ------------------------------------------------------------------------------------------- reading

    async def list_managed(self) -> dict[str, BackendRule]:
        """Every monitor tagged `managed-by:<owner>`, hashed as stored. A second monitor for the same rule (two
        creates racing) is reported under `dup:<id>` so the reconciler deletes it."""
        managed: dict[str, BackendRule] = {}
        for monitor in await self._all_monitors():
            rule_id = rule_id_of(monitor, self.owner)
            monitor_id = str(monitor.get("id", ""))
            if rule_id is None or not monitor_id:
                continue
            wanted = {"options": _wanted_options(monitor)}
            entry = BackendRule(rule_id, monitor_id, monitor_hash(monitor, wanted))
            if rule_id in managed:
                keep, extra = sorted((managed[rule_id], entry), key=lambda e: int(e.backend_id or 0))
                managed[rule_id] = keep
                managed[f"dup:{extra.backend_id}"] = BackendRule(f"dup:{extra.backend_id}", extra.backend_id, "")
            else:
                managed[rule_id] = entry
        self._ids = {rule_id: entry.backend_id for rule_id, entry in managed.items()}
        return managed

    async def _all_monitors(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        page = 0
        while True:
            params = {"monitor_tags": f"{TAG_MANAGED_BY}:{self.owner}", "page": page, "page_size": _PAGE_SIZE}
            batch = await self._call("GET", _MONITORS, "listing monitors", params=params)
            if not isinstance(batch, list):
                raise MonitorSyncError("Datadog answered the monitor listing with something other than a list")
            out.extend(m for m in batch if isinstance(m, dict))
            if len(batch) < _PAGE_SIZE:
                return out
            page += 1

    # ------------------------------------------------------------------------------------------- the webhook

    async def ensure_webhook(self, url: str, token: str = "") -> None:
        """The Webhooks integration entry our monitors notify (`@webhook-<webhook>`), posting to `url` (the
        observer's `/api/v1alpha1/alerts/webhook`): created when missing, rewritten only when it differs. With
        the internal port's token, the token goes into a secret custom variable (written every time: Datadog
        never returns a secret's value, so it cannot be compared) that the entry's Authorization header names."""
        variable = token_variable(self.webhook) if token else ""
        if token:
            secret = {"value": token, "is_secret": True}
            try:
                await self._call("PUT", f"{_VARIABLES}/{variable}", "writing the webhook token", json=secret)
            except _NotFound:
                await self._call("POST", _VARIABLES, "creating the webhook token", json={"name": variable, **secret})
        wanted = webhook_config(self.webhook, url, variable)
        try:
            held = await self._call("GET", f"{_WEBHOOKS}/{self.webhook}", "reading the webhook entry")
        except _NotFound:
            await self._call("POST", _WEBHOOKS, "creating the webhook entry", json=wanted)
            return
        held = held if isinstance(held, dict) else {}
        if any(held.get(key) != value for key, value in wanted.items()) or (
            not variable and held.get("custom_headers")
        ):
            update = {key: value for key, value in wanted.items() if key != "name"}
            if not variable:
                update["custom_headers"] = ""
            await self._call("PUT", f"{_WEBHOOKS}/{self.webhook}", "updating the webhook entry", json=update)

    # ------------------------------------------------------------------------------------------- writing

    async def upsert(self, rule: AlertRule) -> str:
        body = monitor_body(rule, self.owner, self.webhook)  # UnsupportedRule before anything is touched
        rule_id = rule_logical_id(rule)
        monitor_id = self._ids.get(rule_id)
        if monitor_id:
            try:
                await self._call("PUT", f"{_MONITORS}/{monitor_id}", "updating a monitor", json=body)
                return monitor_id
            except _NotFound:
                pass  # deleted behind our back since the listing: create it again
        created = await self._call("POST", _MONITORS, "creating a monitor", json=body)
        created_id = str(created.get("id", "")) if isinstance(created, dict) else ""
        if not created_id:
            raise MonitorSyncError("Datadog created a monitor but returned no id")
        self._ids[rule_id] = created_id
        return created_id

    async def delete(self, rule_id: str) -> None:
        monitor_id = rule_id[len("dup:") :] if rule_id.startswith("dup:") else self._ids.pop(rule_id, None)
        if not monitor_id:
            return
        try:
            await self._call("DELETE", f"{_MONITORS}/{monitor_id}", "deleting a monitor", params={"force": "true"})
        except _NotFound:
            pass

    async def _call(self, method: str, path: str, what: str, **kwargs: Any) -> Any:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise MonitorSyncError(f"Datadog unreachable {what} ({type(exc).__name__})") from None
        if response.status_code == 404:
            raise _NotFound(what)
        if response.status_code >= 300:
            raise MonitorSyncError(f"Datadog answered {response.status_code} {what}: {_errors(response)}")
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise MonitorSyncError(f"Datadog answered {what} with a body that is not JSON") from None


class _NotFound(MonitorSyncError):
    pass


def _wanted_options(monitor: Mapping[str, Any]) -> dict[str, Any]:
    """Which options a listed monitor is compared on: those we write, for its type."""
    options: dict[str, Any] = {
        "thresholds": {"critical": 0},
        "notify_no_data": False,
        "renotify_interval": 0,
        "include_tags": False,
    }
    if monitor.get("type") == "log alert":
        options["enable_logs_sample"] = False
    return options


def _errors(response: httpx.Response) -> str:
    """Datadog's `{"errors": [...]}`, short; never headers (they hold the keys)."""
    try:
        errors = response.json().get("errors")
    except (ValueError, AttributeError):
        errors = None
    text = "; ".join(str(e) for e in errors) if isinstance(errors, list) else response.text
    return text[:300]


async def open_target(
    base_url: str,
    api_key: str,
    app_key: str,
    webhook_url: str,
    webhook_token: str = "",
    *,
    timeout_s: float = 30.0,
    owner: str = DEFAULT_OWNER,
    webhook: str = DEFAULT_WEBHOOK,
) -> DatadogMonitorTarget:
    """The backend's `rule_target`: a target whose Webhooks integration entry posts to `webhook_url` (created
    or repaired now). Raises when Datadog cannot be asked, after releasing the client, so the plane leaves the
    rules with the evaluator for now (observer/alerting/plane.py)."""
    target = DatadogMonitorTarget.connect(base_url, api_key, app_key, timeout_s=timeout_s, owner=owner, webhook=webhook)
    try:
        await target.ensure_webhook(webhook_url, webhook_token)
    except BaseException:
        await target.close()
        raise
    return target
