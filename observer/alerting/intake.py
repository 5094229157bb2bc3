"""The alert intake: a firing alert becomes an alert entry, maybe an incident, and its notifications, in one commit.

Order (contract notes §2.4, with two fixes):
1. look the rule up in the resource store (a missing rule is the caller's mistake: 404 `RULE_NOT_FOUND`, not 500);
2. a firing already recorded under the same delivery key answers with the alert it created (redelivery is a no-op);
3. the rule's scope names resolve to UIDs (alert_rules/scope.py), so an alert of a rule scoped by names carries
   the component's UID and a component-scoped alerts query finds it; a name that cannot be resolved now leaves
   the UID empty (the alert is still recorded: losing it would be worse);
4. suppression: the same rule for the same component within `ALERT_SUPPRESSION_WINDOW` (default 1h, 0 = off) is
   acknowledged and dropped. Upstream skips suppression for a rule without a component UID; here it applies to
   every rule (one without a component is suppressed per rule), as the README promises;
5. the alert entry (a snapshot of the rule), the incident when the rule enables one, and one outbox row per channel
   are written in ONE transaction. Upstream writes the incident and sends notifications in goroutines after
   answering, so a crash in between loses them; here, once the webhook answered 200, the outbox worker will
   deliver every notification, after any restart, with an idempotency key receivers can dedup on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine, insert
from sqlalchemy.exc import IntegrityError

from adapters.protocols import ResolverUnavailable, ScopeNotFound, ScopeResolver
from alert_rules.scope import resolve_rule_scope
from domain.alerting import AlertFiring, AlertRule, go_duration
from domain.echo import shown
from domain.timeutil import format_rfc3339, now_ns
from observer.alerting import outbox
from observer.alerting.details import AlertDetails
from observer.alerting.entries import alert_by_delivery_key, find_recent_alert
from observer.alerting.resources import ResourceStore
from observer.alerting.tables import alert_entries, incident_entries

log = logging.getLogger(__name__)


class RuleNotFound(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class IntakeResult:
    alert_id: str = ""  # "" when suppressed
    suppressed: bool = False
    duplicate: bool = False


class AlertIntake:
    def __init__(
        self,
        engine: Engine,
        resources: ResourceStore,
        suppression_window_s: float = 3600.0,
        on_enqueued: Callable[[], None] = lambda: None,
        resolver: ScopeResolver | None = None,
    ):
        self.engine = engine
        self.resources = resources
        self.suppression_window_ns = int(suppression_window_s * 1e9)
        self.on_enqueued = on_enqueued  # wakes the outbox worker
        self.resolver = resolver  # scope names -> UIDs; None: the rule's UID labels as they are

    async def accept(self, firing: AlertFiring) -> IntakeResult:
        rule = await self.resources.get_rule(firing.rule_namespace, firing.rule_name)
        if rule is None:
            raise RuleNotFound(f"alert rule {shown(firing.rule_namespace)}/{shown(firing.rule_name)} not found")
        rule = await self._scoped(rule)
        channels = []
        for name in rule.channels:
            channel = await self.resources.channel(rule.namespace, name)
            channels.append((channel.namespace if channel else rule.namespace, name))
        result = await asyncio.to_thread(self._record, rule, firing, channels)
        if result.alert_id and not result.duplicate:
            self.on_enqueued()
        return result

    async def _scoped(self, rule: AlertRule) -> AlertRule:
        try:
            return await resolve_rule_scope(rule, self.resolver)
        except (ScopeNotFound, ResolverUnavailable) as exc:
            log.warning(
                "alert rule %s/%s: scope not resolved (%s); its alert carries names only",
                rule.namespace,
                rule.name,
                exc,
            )
            return rule

    def _record(self, rule: AlertRule, firing: AlertFiring, channels: list[tuple[str, str]]) -> IntakeResult:
        now = now_ns()
        with self.engine.begin() as conn:
            if firing.delivery_key:
                existing = alert_by_delivery_key(conn, firing.delivery_key)
                if existing:
                    return IntakeResult(alert_id=existing, duplicate=True)
            if self.suppression_window_ns and find_recent_alert(
                conn, rule.name, rule.namespace, rule.component_uid, now - self.suppression_window_ns
            ):
                return IntakeResult(suppressed=True)
            alert_id = str(uuid.uuid4())
            timestamp_ns = firing.timestamp_ns if firing.timestamp_ns is not None else now
            scope = dict(
                namespace_name=rule.scope_namespace,
                component_name=rule.component,
                environment_name=rule.environment,
                project_name=rule.project,
                component_id=rule.component_uid,
                environment_id=rule.environment_uid,
                project_id=rule.project_uid,
            )
            try:
                conn.execute(
                    insert(alert_entries).values(
                        id=alert_id,
                        timestamp_ns=timestamp_ns,
                        alert_rule_name=rule.rule_name,
                        alert_rule_cr_name=rule.name,
                        alert_rule_cr_namespace=rule.namespace,
                        alert_value=format_value(firing.value),
                        incident_enabled=rule.incident.enabled,
                        severity=rule.severity,
                        description=rule.description,
                        notification_channels=json.dumps(list(rule.channels)),
                        source_type=rule.source.type,
                        source_query=rule.source.query,
                        source_metric=rule.source.metric,
                        condition_operator=rule.condition.operator,
                        condition_threshold=rule.condition.threshold,
                        condition_window=go_duration(rule.condition.window_s),
                        condition_interval=go_duration(rule.condition.interval_s),
                        delivery_key=firing.delivery_key or None,
                        **scope,
                    )
                )
            except IntegrityError:  # the same delivery raced in through another request
                conn.rollback()
                with self.engine.connect() as again:
                    return IntakeResult(
                        alert_id=alert_by_delivery_key(again, firing.delivery_key) or "", duplicate=True
                    )
            if rule.incident.enabled:
                conn.execute(
                    insert(incident_entries).values(
                        id=str(uuid.uuid4()),
                        alert_id=alert_id,
                        timestamp_ns=timestamp_ns,
                        status="active",
                        trigger_ai_rca=rule.incident.trigger_ai_rca,
                        trigger_ai_cost_analysis=rule.incident.trigger_ai_cost_analysis,
                        triggered_at_ns=timestamp_ns,
                        description=rule.description or None,
                        **scope,
                    )
                )
            if channels:
                outbox.enqueue(conn, alert_id, channels, details_of(rule, firing, alert_id, timestamp_ns))
            else:
                log.warning("alert rule %s/%s has no notification channels; nothing to send", rule.namespace, rule.name)
        return IntakeResult(alert_id=alert_id)


def format_value(value: float) -> str:
    """The shortest decimal that reads back as the same float ("12.5", "15"), not a float32 widening."""
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def details_of(rule: AlertRule, firing: AlertFiring, alert_id: str, timestamp_ns: int) -> AlertDetails:
    """The notification payload: the source's timestamp to the second (as upstream prints it), or now to the
    nanosecond when the source gave none."""
    stamp = (
        format_rfc3339(firing.timestamp_ns // 10**9 * 10**9)
        if firing.timestamp_ns is not None
        else format_rfc3339(timestamp_ns)
    )
    return AlertDetails.from_rule(
        rule, alert_id=alert_id, alert_timestamp=stamp, alert_value=format_value(firing.value)
    )
