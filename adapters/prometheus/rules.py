"""Metric alert rules as Prometheus rule files, and the Alertmanager configuration that brings their alerts back.

What a rule becomes (one file per rule, `<rules_dir>/<owner><namespace>--<name>--<hash>.yml`, which Prometheus
loads through `rule_files: [<rules_dir>/*.yml]`):

    groups:
      - name: <namespace>/<name>             # the logical id
        interval: <condition.interval>
        rules:
          - alert: <name>
            expr: (100 * <usage> / <limits>) <op> <threshold>
            for: 0s
            labels: {openchoreo_alert: "true", openchoreo_rule_name: <name>, openchoreo_rule_namespace: <namespace>}
            annotations: {rule_name, rule_namespace, alert_value: "{{ $value }}", openchoreo_rule_hash: <hash>}

Semantics (the same the evaluator uses, so a rule means one thing on every backend):

- The value is a percentage of the scope's limit, as in OpenChoreo's adapter: `cpu_usage` is CPU used over
  CPU limits, `memory_usage` working-set memory over memory limits, times 100. A scope without limits has no
  value and never fires.
- The value at an evaluation time t covers `window`: usage and limits are the metrics API's `cpuUsage` /
  `cpuLimits` (`memoryUsage` / `memoryLimits`) series of the configured scheme with step = window, i.e.
  `rate(...[window])` for counters and `avg_over_time(...[window])` for gauges, summed over the scope's pods
  (see adapters/prometheus/schemes.py). The scope is the rule's namespace label and the project, component and
  environment UIDs of its `openchoreo.dev/*-uid` labels, each escaped by `promql.escape`.
- `for: 0s`: the window already smooths the value, so the alert fires at the first evaluation (every
  `interval`) where `value <op> threshold` holds. OpenChoreo's adapter puts the window in `for` *and* a 2m rate
  window in the expression, which makes a 5m rule need 5 minutes of consecutive breaches of a 2-minute rate.
- All six operators are supported (`neq` is `!=`; upstream rejects it).
- Prometheus expands Go templates in alerting-rule labels and annotations, so every literal we put there is
  passed through `template_literal` (a rule named `{{ ... }}` stays that text).

Budget rules would need cost series (OpenCost's `node_cpu_hourly_cost`, `node_ram_hourly_cost`); no cost
backend exists here, so they fail with `UnsupportedRule` and the rule's status says so (the REST side answers
501 for them).

Writes are atomic (temporary file + rename) and followed by `POST /-/reload`; when Prometheus refuses the new
file, the previous content is put back and reloaded, so one bad rule never stops the others. `list_managed`
reads the directory *and* `/api/v1/rules`, so a file edited or deleted behind our back, or one Prometheus has not
loaded, is found and repaired by the next reconcile.

Alertmanager (`alertmanager_config`) routes `openchoreo_alert="true"` alerts to the observer's internal
`/api/v1alpha1/alerts/webhook`, grouped per rule, `send_resolved: false`; the webhook reads the rule from the
`rule_name`/`rule_namespace` annotations (or our labels) and the value from `alert_value`.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from adapters.prometheus.schemes import Scheme
from adapters.rule_targets import BackendRule, UnsupportedRule, content_hash, rule_logical_id
from domain.alerting import BUDGET_UNSUPPORTED, METRIC_SERIES, AlertRule, rule_scope, short_duration

LABEL_ALERT = "openchoreo_alert"
LABEL_RULE_NAME = "openchoreo_rule_name"
LABEL_RULE_NAMESPACE = "openchoreo_rule_namespace"
ANNOTATION_HASH = "openchoreo_rule_hash"
#: Files this observer owns start with this; another owner (a second observer on the same Prometheus, a test)
#: passes its own, and neither touches the other's rules.
DEFAULT_OWNER = "openchoreo--"

PROMQL_OPERATORS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "eq": "==", "neq": "!="}


class RuleSyncError(Exception):
    """Prometheus could not be reached or refused what we wrote; the message is fit for a rule's status."""


# ================================================================================================ compiling


def number(value: float) -> str:
    """A PromQL number literal: integers without a fraction, others exactly (repr round-trips a float)."""
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def value_expr(rule: AlertRule, scheme: Scheme) -> str:
    """The rule's value as PromQL: usage as a percentage of limits over `window` (module docstring)."""
    if rule.source.type == "budget":
        raise UnsupportedRule(BUDGET_UNSUPPORTED)
    if rule.source.type != "metric" or rule.source.metric not in METRIC_SERIES:
        raise UnsupportedRule(f"Prometheus evaluates metric rules on cpu_usage or memory_usage, not {rule.source}")
    usage, limits = METRIC_SERIES[rule.source.metric]
    series = scheme.family("resource", rule_scope(rule), int(rule.condition.window_s * 1e9))
    return f"100 * {series[usage]} / {series[limits]}"


def alert_expr(rule: AlertRule, scheme: Scheme) -> str:
    op = PROMQL_OPERATORS[rule.condition.operator]
    return f"({value_expr(rule, scheme)}) {op} {number(rule.condition.threshold)}"


def template_literal(text: str) -> str:
    """`text` as Go template source that expands to exactly `text`: only `{{` starts an action, so each one is
    written as an action printing the string "{{"."""
    return text.replace("{{", '{{ "{{" }}')


def rule_group(rule: AlertRule, scheme: Scheme) -> dict[str, Any]:
    """The rule group for `rule`, its content hash included as an annotation."""
    group = _group_without_hash(rule, scheme)
    group["rules"][0]["annotations"][ANNOTATION_HASH] = content_hash(group)
    return group


def _group_without_hash(rule: AlertRule, scheme: Scheme) -> dict[str, Any]:
    name, namespace = template_literal(rule.name), template_literal(rule.namespace)
    return {
        "name": rule_logical_id(rule),
        "interval": short_duration(rule.condition.interval_s),
        "rules": [
            {
                "alert": rule.name,
                "expr": alert_expr(rule, scheme),
                "for": "0s",
                "labels": {LABEL_ALERT: "true", LABEL_RULE_NAME: name, LABEL_RULE_NAMESPACE: namespace},
                "annotations": {"rule_name": name, "rule_namespace": namespace, "alert_value": "{{ $value }}"},
            }
        ],
    }


def group_hash(group: dict[str, Any]) -> str:
    """The content hash of a group as read back: the hash annotation itself is left out."""
    stripped = yaml.safe_load(yaml.safe_dump(group))  # a deep copy
    for rule in stripped.get("rules") or []:
        if isinstance(rule, dict) and isinstance(rule.get("annotations"), dict):
            rule["annotations"].pop(ANNOTATION_HASH, None)
    return content_hash(stripped)


def render_rule_file(rule: AlertRule, scheme: Scheme) -> str:
    return yaml.safe_dump({"groups": [rule_group(rule, scheme)]}, sort_keys=False, allow_unicode=True, width=1 << 20)


_UNSAFE = re.compile(r"[^a-z0-9.-]+")


def rule_file_name(rule_id: str, owner: str = DEFAULT_OWNER) -> str:
    """A file name for a logical id: readable (namespace and name, other characters folded to `_`) and unique
    (a hash of the exact id), with the owner's prefix and the `.yml` Prometheus' glob loads."""
    namespace, _, name = rule_id.partition("/")
    readable = "--".join(_UNSAFE.sub("_", part.lower())[:60] for part in (namespace, name))
    return f"{owner}{readable}--{hashlib.sha256(rule_id.encode()).hexdigest()[:12]}.yml"


# ================================================================================================ Alertmanager


def alertmanager_config(
    webhook_url: str,
    *,
    group_wait: str = "30s",
    group_interval: str = "5m",
    repeat_interval: str = "1h",
    bearer_token: str = "",
) -> str:
    """An Alertmanager configuration that sends every alert of our rules to the observer's webhook
    (`http://<observer-internal>:8081/api/v1alpha1/alerts/webhook`) and drops everything else.

    Grouped per rule (namespace and name) so each notification names one rule; `send_resolved: false` because
    the observer records firings only. `repeat_interval` re-sends a still-firing alert (the observer's
    suppression window then decides whether it is a new alert); tests pass a short `group_wait`. `bearer_token`
    is the internal port's OBSERVER_INTERNAL_TOKEN, when one is set.
    """
    webhook: dict[str, Any] = {"url": webhook_url, "send_resolved": False}
    if bearer_token:
        webhook["http_config"] = {"authorization": {"type": "Bearer", "credentials": bearer_token}}
    config = {
        "route": {
            "receiver": "null",
            "group_by": ["alertname"],
            "routes": [
                {
                    "receiver": "openchoreo-observer",
                    "matchers": [f'{LABEL_ALERT}="true"'],
                    "group_by": [LABEL_RULE_NAMESPACE, LABEL_RULE_NAME],
                    "group_wait": group_wait,
                    "group_interval": group_interval,
                    "repeat_interval": repeat_interval,
                }
            ],
        },
        "receivers": [
            {"name": "null"},
            {"name": "openchoreo-observer", "webhook_configs": [webhook]},
        ],
    }
    return yaml.safe_dump(config, sort_keys=False)


# ================================================================================================ the target


@dataclass(frozen=True, slots=True)
class _Loaded:
    """A group as Prometheus runs it (from /api/v1/rules)."""

    file_name: str
    hash: str


class PrometheusRuleTarget:
    """RuleTarget for metric (and budget) rules: rule files in `rules_dir` plus `/-/reload` on `prometheus_url`.

    Every `<owner>*.yml` file in the directory is taken as ours, and one that is not a rule group we wrote is
    deleted; so owners sharing a directory must not be prefixes of one another (`a--` and `a--b--` would be).
    """

    name = "prometheus"

    def __init__(
        self,
        rules_dir: str | os.PathLike[str],
        prometheus_url: str,
        scheme: Scheme,
        *,
        owner: str = DEFAULT_OWNER,
        timeout_s: float = 30.0,
        headers: dict[str, str] | None = None,
    ):
        self.rules_dir = Path(rules_dir)
        self.scheme = scheme
        self.owner = owner
        self._http = httpx.AsyncClient(base_url=prometheus_url.rstrip("/"), timeout=timeout_s, headers=headers or {})
        self._lock = asyncio.Lock()  # one write + reload (and its rollback) at a time
        self.reloads = 0

    async def close(self) -> None:
        await self._http.aclose()

    def accepts(self, rule: AlertRule) -> bool:
        return rule.source.type in ("metric", "budget")

    def content_hash(self, rule: AlertRule) -> str:
        return content_hash(_group_without_hash(rule, self.scheme))

    def path_for(self, rule_id: str) -> Path:
        return self.rules_dir / rule_file_name(rule_id, self.owner)

    # ------------------------------------------------------------------------------------------- reading

    async def list_managed(self) -> dict[str, BackendRule]:
        files = await asyncio.to_thread(self._read_files)
        loaded = await self._loaded_groups()
        managed: dict[str, BackendRule] = {}
        for rule_id, (file_name, actual) in files.items():
            if actual is None:  # not a rule file of ours any more: delete it (the id is only for the file)
                managed[rule_id] = BackendRule(rule_id, file_name, "", True, "the file is not a rule group we wrote")
                continue
            running = loaded.get(rule_id)
            if running is None:
                detail = "Prometheus has not loaded the file"
            elif running.file_name != file_name or running.hash != actual:
                detail = "Prometheus runs another version than the file"
            else:
                detail = ""
            managed[rule_id] = BackendRule(rule_id, file_name, actual, bool(detail), detail)
        for rule_id, running in loaded.items():
            if rule_id not in managed:
                managed[rule_id] = BackendRule(
                    rule_id, running.file_name, "", True, "Prometheus still runs the rule but its file is gone"
                )
        return managed

    def _read_files(self) -> dict[str, tuple[str, str | None]]:
        """logical id -> (file name, hash of its content); unreadable or foreign content under our prefix is
        reported as `file:<name>` with no hash, so the reconciler deletes it."""
        out: dict[str, tuple[str, str | None]] = {}
        if not self.rules_dir.is_dir():
            return out
        for path in sorted(self.rules_dir.glob(f"{self.owner}*.yml")):
            try:
                doc = yaml.safe_load(path.read_text())
                groups = doc["groups"]
                if not isinstance(groups, list) or len(groups) != 1 or not isinstance(groups[0], dict):
                    raise ValueError("one group expected")
                group = groups[0]
                rule_id = group["name"]
                if not isinstance(rule_id, str) or rule_file_name(rule_id, self.owner) != path.name:
                    raise ValueError("the group name does not match the file")
                out[rule_id] = (path.name, group_hash(group))
            except FileNotFoundError:
                continue  # deleted while listing
            except (yaml.YAMLError, KeyError, TypeError, ValueError, UnicodeDecodeError):
                out[f"file:{path.name}"] = (path.name, None)
        return out

    async def _loaded_groups(self) -> dict[str, _Loaded]:
        """Our groups as Prometheus runs them: those loaded from files with our prefix."""
        try:
            response = await self._http.get("/api/v1/rules", params={"type": "alert"})
        except httpx.HTTPError as exc:
            raise RuleSyncError(f"Prometheus unreachable ({type(exc).__name__}: {exc})") from None
        if response.status_code != 200:
            raise RuleSyncError(f"Prometheus answered {response.status_code} listing rules: {response.text[:200]}")
        loaded: dict[str, _Loaded] = {}
        for group in response.json()["data"]["groups"]:
            file_name = os.path.basename(group.get("file") or "")
            if not file_name.startswith(self.owner):
                continue
            rules = group.get("rules") or [{}]
            annotations = rules[0].get("annotations") or {}
            loaded[group["name"]] = _Loaded(file_name, str(annotations.get(ANNOTATION_HASH, "")))
        return loaded

    # ------------------------------------------------------------------------------------------- writing

    async def upsert(self, rule: AlertRule) -> str:
        text = render_rule_file(rule, self.scheme)  # UnsupportedRule before anything is touched
        path = self.path_for(rule_logical_id(rule))
        async with self._lock:
            previous = await asyncio.to_thread(_read_bytes, path)
            await asyncio.to_thread(_write_atomically, path, text.encode())
            await self._reload_or_restore(path, previous)
        return path.name

    async def delete(self, rule_id: str) -> None:
        path = self.rules_dir / rule_id[len("file:") :] if rule_id.startswith("file:") else self.path_for(rule_id)
        async with self._lock:
            previous = await asyncio.to_thread(_read_bytes, path)
            if previous is not None:
                await asyncio.to_thread(path.unlink, True)
            await self._reload_or_restore(path, previous)

    async def _reload_or_restore(self, path: Path, previous: bytes | None) -> None:
        error = await self._reload()
        if error is None:
            return
        # Prometheus keeps running its old rule set after a failed reload; put the old file back so the next
        # reload (anyone's) does not fail on ours too.
        if previous is None:
            await asyncio.to_thread(path.unlink, True)
        else:
            await asyncio.to_thread(_write_atomically, path, previous)
        await self._reload()
        raise RuleSyncError(error)

    async def _reload(self) -> str | None:
        """None on success, else why it failed."""
        self.reloads += 1
        try:
            response = await self._http.post("/-/reload")
        except httpx.HTTPError as exc:
            return f"Prometheus unreachable for /-/reload ({type(exc).__name__}: {exc})"
        if response.status_code != 200:
            return f"Prometheus refused the rule files ({response.status_code}): {response.text.strip()[:300]}"
        return None


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _write_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary name the `*.yml` glob does not match, flush to disk, then rename over the target:
    Prometheus (or a reload racing us) sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
