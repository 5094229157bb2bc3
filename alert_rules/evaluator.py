"""Our own rule evaluator, for backends without native alerting: the embedded backend, and OpenSearch without
the Alerting plugin. It is a RuleTarget like any other (its `list_managed` is its in-memory schedule), so the
reconciler hands it rules exactly as it hands Prometheus rule files.

Semantics (shared with the Prometheus rules, see adapters/prometheus/rules.py):

- Evaluation times are slots aligned to the epoch: t = k * interval. Slot t is evaluated once, `delay_s` after
  t, so records still in flight (a collector's batch, OpenSearch's 1 s refresh) are counted.
- The value at t covers the window (t - window, t]:
  - log rules: the exact number of log lines of the rule's scope whose body contains `source.query` literally
    (case-sensitive, the logs API's searchPhrase) -- `LogsBackend.count_logs`, never a capped total;
  - metric rules: usage as a percentage of limits (`cpuUsage / cpuLimits * 100`, or memory), from the metrics
    API's `resource` family with step = window; a scope without limits has no value and never fires.
- The scope is the rule's namespace label (else its own namespace) plus the project, component and environment
  UIDs of its `openchoreo.dev/*-uid` labels.
- When `value <operator> threshold` holds, `fire` gets an `AlertFiring` whose `delivery_key` is derived from
  (namespace, name, t): a restarted evaluator re-evaluating a slot, or a retried `fire`, cannot make a second
  alert for it. After a restart only the latest slot is evaluated (missed slots are not replayed).
- A failed evaluation or `fire` is retried `retry_s` later for the same slot, while it is still the latest.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import operator
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from adapters.protocols import LogsBackend, MetricsBackend
from adapters.rule_targets import BackendRule, UnsupportedRule, content_hash, rule_logical_id
from domain.alerting import BUDGET_UNSUPPORTED, METRIC_SERIES, AlertFiring, AlertRule, rule_scope
from domain.model import LogsQuery, MetricsQuery, TimeRange
from domain.timeutil import now_ns
from serving.waiting import wait_at_most

log = logging.getLogger(__name__)

_NS = 1_000_000_000

COMPARE: dict[str, Callable[[float, float], bool]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
    "eq": operator.eq,
    "neq": operator.ne,
}


FireCallback = Callable[[AlertFiring], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class Evaluation:
    rule_id: str
    slot_ns: int
    value: float | None  # None: no data (a metric scope without limits)
    fired: bool


@dataclass
class EvaluatorCounters:
    evaluations: int = 0
    firings: int = 0
    failures: int = 0


@dataclass
class _Plan:
    rule: AlertRule
    hash: str
    last_slot_ns: int | None = None  # the newest slot evaluated (and, when it held, fired)
    retry_at_ns: int = 0
    last_error: str = ""


def delivery_key(namespace: str, name: str, slot_ns: int) -> str:
    digest = hashlib.sha256(f"{namespace}\0{name}\0{slot_ns}".encode()).hexdigest()[:40]
    return f"evaluator:{digest}"


def latest_slot(now: int, interval_ns: int, delay_ns: int) -> int:
    """The newest slot whose evaluation time (slot + delay) has come."""
    return (now - delay_ns) // interval_ns * interval_ns


@dataclass
class RuleEvaluator:
    """RuleTarget evaluating log rules on `logs` and metric rules on `metrics` (either may be None, and then
    those rules belong to another target)."""

    fire: FireCallback
    logs: LogsBackend | None = None
    metrics: MetricsBackend | None = None
    delay_s: float = 5.0
    retry_s: float = 15.0
    concurrency: int = 8
    clock: Callable[[], int] = now_ns
    name: str = "evaluator"
    counters: EvaluatorCounters = field(default_factory=EvaluatorCounters)

    def __post_init__(self) -> None:
        self._plans: dict[str, _Plan] = {}
        self._wake = asyncio.Event()
        self._gate = asyncio.Semaphore(self.concurrency)

    # ------------------------------------------------------------------------------------------- RuleTarget

    def accepts(self, rule: AlertRule) -> bool:
        if rule.source.type == "log":
            return self.logs is not None
        return self.metrics is not None  # metric, and budget (refused in upsert with the reason)

    def content_hash(self, rule: AlertRule) -> str:
        """Over what evaluation uses, so a change of description or channels does not reset the schedule."""
        scope = rule_scope(rule)
        return content_hash(
            {
                "scope": [scope.namespace, scope.project_uid, scope.component_uid, scope.environment_uid],
                "source": [rule.source.type, rule.source.query, rule.source.metric],
                "condition": [
                    rule.condition.window_s,
                    rule.condition.interval_s,
                    rule.condition.operator,
                    rule.condition.threshold,
                ],
            }
        )

    async def list_managed(self) -> dict[str, BackendRule]:
        return {
            rule_id: BackendRule(rule_id, f"{self.name}:{rule_id}", plan.hash) for rule_id, plan in self._plans.items()
        }

    async def upsert(self, rule: AlertRule) -> str:
        if rule.source.type == "budget":
            raise UnsupportedRule(BUDGET_UNSUPPORTED)
        rule_id = rule_logical_id(rule)
        previous = self._plans.get(rule_id)
        # A changed rule keeps its place in the schedule: a slot already evaluated is not evaluated again.
        self._plans[rule_id] = _Plan(rule, self.content_hash(rule), previous.last_slot_ns if previous else None)
        self._wake.set()
        return f"{self.name}:{rule_id}"

    async def delete(self, rule_id: str) -> None:
        self._plans.pop(rule_id, None)
        self._wake.set()

    # ------------------------------------------------------------------------------------------- evaluating

    async def value_at(self, rule: AlertRule, at_ns: int) -> float | None:
        """The rule's value for the window ending at `at_ns` (module docstring)."""
        window_ns = int(rule.condition.window_s * _NS)
        scope = rule_scope(rule)
        if rule.source.type == "log":
            if self.logs is None:
                raise UnsupportedRule("no logs backend to evaluate log rules on")
            query = LogsQuery(scope=scope, range=TimeRange(at_ns - window_ns + 1, at_ns), phrase=rule.source.query)
            return float(await self.logs.count_logs(query))
        if rule.source.type == "metric" and rule.source.metric in METRIC_SERIES:
            if self.metrics is None:
                raise UnsupportedRule("no metrics backend to evaluate metric rules on")
            usage_key, limits_key = METRIC_SERIES[rule.source.metric]
            series = await self.metrics.query_metrics(
                MetricsQuery(family="resource", scope=scope, range=TimeRange(at_ns, at_ns), step_ns=window_ns)
            )
            usage = _value_at(series.get(usage_key, []), at_ns)
            limits = _value_at(series.get(limits_key, []), at_ns)
            if usage is None or not limits:
                return None
            return 100.0 * usage / limits
        raise UnsupportedRule(BUDGET_UNSUPPORTED if rule.source.type == "budget" else f"cannot evaluate {rule.source}")

    async def evaluate(self, rule: AlertRule, slot_ns: int) -> Evaluation:
        """Evaluates one slot and fires when the condition holds; raises when either step fails."""
        value = await self.value_at(rule, slot_ns)
        self.counters.evaluations += 1
        held = value is not None and COMPARE[rule.condition.operator](value, rule.condition.threshold)
        if held:
            assert value is not None
            await self.fire(
                AlertFiring(rule.namespace, rule.name, value, slot_ns, delivery_key(rule.namespace, rule.name, slot_ns))
            )
            self.counters.firings += 1
        return Evaluation(rule_logical_id(rule), slot_ns, value, held)

    async def run_due(self, now: int | None = None) -> list[Evaluation]:
        """Evaluates every rule whose latest slot has come and was not evaluated yet; returns what ran."""
        now = self.clock() if now is None else int(now)  # float nanoseconds would misplace slots
        due = [
            (rule_id, plan, slot)
            for rule_id, plan in list(self._plans.items())
            if (slot := self._slot(plan, now)) is not None and now >= plan.retry_at_ns
        ]
        results = await asyncio.gather(*(self._run_one(rule_id, plan, slot, now) for rule_id, plan, slot in due))
        return [result for result in results if result is not None]

    async def _run_one(self, rule_id: str, plan: _Plan, slot: int, now: int) -> Evaluation | None:
        async with self._gate:
            try:
                result = await self.evaluate(plan.rule, slot)
            except Exception as exc:  # a backend outage or a failed fire: retry this slot later
                self.counters.failures += 1
                plan.retry_at_ns = now + int(self.retry_s * _NS)
                plan.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("evaluating alert rule %s at %d failed: %s", rule_id, slot, plan.last_error)
                return None
        plan.last_slot_ns, plan.retry_at_ns, plan.last_error = slot, 0, ""
        return result

    def _slot(self, plan: _Plan, now: int) -> int | None:
        interval_ns = int(plan.rule.condition.interval_s * _NS)
        slot = latest_slot(now, interval_ns, int(self.delay_s * _NS))
        return slot if plan.last_slot_ns is None or slot > plan.last_slot_ns else None

    def next_due_ns(self, now: int) -> int | None:
        """When `run_due` next has something to do (None: no rules)."""
        times = []
        delay = int(self.delay_s * _NS)
        for plan in self._plans.values():
            interval_ns = int(plan.rule.condition.interval_s * _NS)
            if self._slot(plan, now) is not None:
                times.append(max(now, plan.retry_at_ns))
            else:
                times.append(latest_slot(now, interval_ns, delay) + interval_ns + delay)
        return min(times, default=None)

    async def run(self) -> None:
        """Evaluates rules as their slots come, until cancelled; wakes early when rules change."""
        while True:
            self._wake.clear()
            await self.run_due()
            now = self.clock()
            due = self.next_due_ns(now)
            timeout = None if due is None else max(due - now, 0) / _NS
            await wait_at_most(self._wake.wait(), timeout)


def _value_at(points: list[tuple[int, float]], at_ns: int) -> float | None:
    """The point at `at_ns` of a series (backends round timestamps to milliseconds)."""
    for ts, value in points:
        if abs(ts - at_ns) < 1_000_000:
            return value
    return None
