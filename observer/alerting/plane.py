"""The alerting half of an observer process, wired from settings: the store, the webhook intake, the outbox
worker, the alert query service, and the reconciler that carries rules into the backends.

Where each rule is evaluated:
- metric rules by Prometheus when `PROMETHEUS_ADDRESS` and `OBSERVER_PROMETHEUS_RULES_DIR` are set (rule files +
  reload; Alertmanager posts back to the webhook), otherwise by the observer's own evaluator over the metrics
  backend;
- log rules by the observer's own evaluator over the logs backend (embedded or OpenSearch: the OpenSearch
  Alerting plugin is used where installed, see adapters/opensearch/monitors.py).
Each backend offers its rule target through its `rule_target` role (adapters/registry.py); this module never
names a backend.
The evaluator hands firings straight to the intake, the same path a webhook takes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from access.model import Authorizer
from adapters.protocols import LogsBackend, MetricsBackend, ScopeResolver
from adapters.registry import Plane as BackendPlane
from adapters.registry import RuleTargetContext
from adapters.rule_targets import RuleTarget
from alert_rules.evaluator import RuleEvaluator
from alert_rules.reconciler import Action, Reconciler, SyncResult, sync_response
from domain.timeutil import now_ns, parse_go_duration
from observer.alerting.channels import close_senders, default_senders
from observer.alerting.db import open_engine
from observer.alerting.entries import EntryStore
from observer.alerting.intake import AlertIntake
from observer.alerting.outbox import OutboxWorker
from observer.alerting.resources import ResourceStore
from observer.alerting.service import AlertService

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

    async def rule_sync(self, namespace: str, name: str, action: Action) -> dict:
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

    def tasks(self) -> list[asyncio.Task]:
        """The background work: the notification outbox, the rule reconciler and the evaluator."""
        return [
            asyncio.create_task(self.outbox.run(), name="notification-outbox"),
            asyncio.create_task(self.reconciler.run(), name="rule-reconciler"),
            asyncio.create_task(self.evaluator.run(), name="rule-evaluator"),
        ]

    async def close(self) -> None:
        self.outbox.stop()
        for close in self.closers:
            await close()
        self.resources.engine.dispose()


async def rule_targets(plane: BackendPlane, webhook: RuleTargetContext) -> list[RuleTarget]:
    """The rule targets the plane's backends offer, highest priority first (the reconciler gives a rule to the
    first target that accepts it; the evaluator, last, takes the rest). A backend that cannot say now (down at
    start) is left out with a warning: its rules stay with the evaluator, which answers 503 and retries."""
    targets: list[RuleTarget] = []
    for backend in reversed(plane.backends):
        factory = backend.roles.rule_target
        if factory is None:
            continue
        try:
            target = await factory(webhook)
        except Exception as exc:
            log.warning(
                "could not ask %s for its rule target (%s); its rules stay with the evaluator", backend.name, exc
            )
            continue
        if target is not None:
            targets.append(target)
    return targets


def build_alerting(
    *,
    dsn: str,
    suppression_window: str,
    resolver: ScopeResolver,
    authorizer: Authorizer,
    logs: LogsBackend,
    metrics: MetricsBackend,
    targets: Sequence[RuleTarget] = (),
    reconcile_interval_s: float = 30.0,
    notification_lease_s: float = 120.0,
) -> Alerting:
    engine = open_engine(dsn)
    resources = ResourceStore(engine)
    senders = default_senders(resources)
    outbox = OutboxWorker(engine, resources, senders, lease_s=notification_lease_s)
    intake = AlertIntake(
        engine, resources, parse_go_duration(suppression_window) / 1e9, on_enqueued=outbox.kick, resolver=resolver
    )

    closers = [lambda: close_senders(senders.values())]
    closers += [close for target in targets if callable(close := getattr(target, "close", None))]
    evaluator = RuleEvaluator(intake.accept, logs=logs, metrics=metrics)
    reconciler = Reconciler(resources, [*targets, evaluator], interval_s=reconcile_interval_s, resolver=resolver)
    service = AlertService(EntryStore(engine), resolver, authorizer)
    return Alerting(resources, intake, service, outbox, reconciler, evaluator, closers)
