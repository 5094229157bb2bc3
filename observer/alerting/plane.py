"""The alerting half of an observer process, wired from settings: the store, the webhook intake, the outbox
worker, the alert query service, and the reconciler that carries rules into the backends.

Where each rule is evaluated:
- metric rules by Prometheus when `PROMETHEUS_ADDRESS` and `OBSERVER_PROMETHEUS_RULES_DIR` are set (rule files +
  reload; Alertmanager posts back to the webhook), otherwise by the observer's own evaluator over the metrics
  backend;
- log rules by the observer's own evaluator over the logs backend (embedded or OpenSearch: the OpenSearch
  Alerting plugin is used where installed, see alert_rules/opensearch_monitors.py).
The evaluator hands firings straight to the intake, the same path a webhook takes.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field, replace

from adapters.opensearch.backend import OpenSearchBackend
from adapters.prometheus.schemes import Scheme
from adapters.protocols import LogsBackend, MetricsBackend, ScopeResolver
from domain.timeutil import now_ns, parse_go_duration
from alert_rules.evaluator import RuleEvaluator
from alert_rules.opensearch_monitors import logs_rule_target
from alert_rules.prometheus import PrometheusRuleTarget
from alert_rules.reconciler import Reconciler, SyncResult, sync_response
from alert_rules.targets import RuleTarget
from observer.alerting.channels import close_senders, default_senders
from observer.alerting.db import open_engine
from observer.alerting.entries import EntryStore
from observer.alerting.intake import AlertIntake
from observer.alerting.outbox import OutboxWorker
from observer.alerting.resources import ResourceStore
from observer.alerting.service import AlertService
from observer.auth.model import Authorizer

log = logging.getLogger(__name__)


@dataclass
class Alerting:
    resources: ResourceStore
    intake: AlertIntake
    service: AlertService
    outbox: OutboxWorker
    reconciler: Reconciler
    evaluator: RuleEvaluator
    closers: list = field(default_factory=list)

    async def rule_sync(self, namespace: str, name: str, action: str) -> dict:
        """The internal rule API's answer: reconcile this one rule now and say how it went. The action is what
        the request did to the rule (created, updated, deleted) even when a background pass, woken by the same
        write, carried it into the backend first; a request that changed nothing reports what the sync did."""
        try:
            result = await self.reconciler.reconcile_one(namespace, name)
        except LookupError:  # a deleted rule the background pass already removed and purged: done
            result = SyncResult(namespace, name, "deleted", ok=True, synced_at_ns=now_ns())
        if action != "unchanged" and result.ok:
            result = replace(result, action=action)
        return sync_response(result)

    def tasks(self, opensearch: OpenSearchBackend | None = None, webhook_url: str = "", webhook_token: str = "") -> list[asyncio.Task]:
        """The background work; with OpenSearch, log rules first learn where they will be evaluated."""
        return [
            asyncio.create_task(self.outbox.run(), name="notification-outbox"),
            asyncio.create_task(self._reconcile(opensearch, webhook_url, webhook_token), name="rule-reconciler"),
            asyncio.create_task(self.evaluator.run(), name="rule-evaluator"),
        ]

    async def _reconcile(self, opensearch: OpenSearchBackend | None, webhook_url: str, webhook_token: str) -> None:
        if opensearch is not None:
            await self._choose_log_target(opensearch, webhook_url, webhook_token)
        await self.reconciler.run()

    async def _choose_log_target(self, opensearch: OpenSearchBackend, webhook_url: str, webhook_token: str) -> None:
        """Alerting-plugin monitors when the cluster has the plugin (they post back to our webhook), else the
        evaluator keeps log rules. An unreachable cluster leaves them with the evaluator for now."""
        try:
            target = await logs_rule_target(opensearch.client, self.evaluator, webhook_url, opensearch.layout,
                                            bearer_token=webhook_token)
        except Exception as exc:  # OpenSearch down at start: the evaluator's counts answer 503 and retry meanwhile
            log.warning("could not ask OpenSearch for its Alerting plugin (%s); log rules stay with the evaluator", exc)
            return
        if target is not self.evaluator:
            log.info("OpenSearch Alerting plugin found: log rules become OpenSearch monitors")
            self.reconciler.targets = [target, *self.reconciler.targets]

    async def close(self) -> None:
        self.outbox.stop()
        for close in self.closers:
            await close()
        self.resources.engine.dispose()


def build_alerting(
    *,
    dsn: str,
    suppression_window: str,
    resolver: ScopeResolver,
    authorizer: Authorizer,
    logs: LogsBackend,
    metrics: MetricsBackend,
    prometheus_url: str = "",
    prometheus_rules_dir: str = "",
    scheme: Scheme | None = None,
    reconcile_interval_s: float = 30.0,
    notification_lease_s: float = 120.0,
) -> Alerting:
    engine = open_engine(dsn)
    resources = ResourceStore(engine)
    senders = default_senders(resources)
    outbox = OutboxWorker(engine, resources, senders, lease_s=notification_lease_s)
    intake = AlertIntake(engine, resources, parse_go_duration(suppression_window) / 1e9, on_enqueued=outbox.kick,
                         resolver=resolver)

    targets: list[RuleTarget] = []
    closers = [lambda: close_senders(senders.values())]
    if prometheus_url and prometheus_rules_dir and scheme is not None:
        prometheus = PrometheusRuleTarget(prometheus_rules_dir, prometheus_url, scheme)
        targets.append(prometheus)
        closers.append(prometheus.close)
    evaluator = RuleEvaluator(intake.accept, logs=logs, metrics=metrics)
    targets.append(evaluator)
    reconciler = Reconciler(resources, targets, interval_s=reconcile_interval_s, resolver=resolver)
    service = AlertService(EntryStore(engine), resolver, authorizer)
    return Alerting(resources, intake, service, outbox, reconciler, evaluator, closers)
