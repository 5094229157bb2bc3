"""The reconciler: makes every backend hold exactly the enabled alert rules of the store, and says so in each
rule's status.

A pass (on `store.changed`, and every `interval_s` to correct drift):

1. Each rule goes to the first target that `accepts` it (log rules to the logs backend, metric and budget rules
   to the metrics backend). Disabled rules go nowhere: they are removed from backends.
2. Every target reports what it holds (`list_managed`). A target that cannot is left alone for the pass: its
   rules are marked failed, and nothing is deleted on the strength of a listing we do not have.
3. What a target holds but should not (tombstones, disabled rules, rules now placed elsewhere, files that are
   not ours any more) is deleted first; then what is missing is created, and what differs in content hash, or
   drifted (edited or unloaded behind our back), is rewritten. An unchanged rule is not touched.
4. A tombstone is purged from the store once no target holds it.
5. Status (CRD §4.1): phase Ready and condition Synced=True/SyncSucceeded "Alert rule <id> <action> in backend",
   backendMonitorId, lastSyncTime (last write to the backend), lastReconcileTime, observedGeneration; a failure
   gives phase Error and Synced=False/SyncFailed with the error, and is retried by the next pass. Status is only
   written when it changes (times aside), so a pass over an unchanged world writes nothing, to backends or
   to the store (`counters` proves it).

Two checks of ours come before a rule reaches a backend, so that a rule never says Ready while it cannot do what
it says:

- its scope (alert_rules/scope.py): names resolve to UIDs, so backends evaluate exactly the named component. A
  rule without scope labels (stored before they were required) is Synced=False/ScopeMissing, one naming
  something that does not exist Synced=False/ScopeNotFound; either is in no backend (it would otherwise watch the
  whole namespace) until fixed or until the name appears. A resolver outage leaves the backends as they are.
- its notification channels: each pass looks them up, and a missing one gives phase Error with condition
  ChannelsReady=False/ChannelNotFound naming it. The rule still runs (alerts and incidents are recorded), and
  the condition clears on the pass after the channel is applied (a channel write wakes the reconciler), so rules
  and channels may be applied in any order, as Kubernetes resources are.

`reconcile_one` does the same for one rule and returns a `SyncResult`, which `sync_response` turns into the
contract's AlertingRuleSyncResponse for the internal rule API. Rule ids are logical ids `<namespace>/<name>`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

from adapters.protocols import ResolverUnavailable, ScopeNotFound, ScopeResolver
from adapters.rule_targets import BackendRule, RuleTarget, UnsupportedRule, logical_id, rule_logical_id
from alert_rules.scope import needs_resolving, resolve_rule_scope
from domain.alerting import (
    CHANNEL_NOT_FOUND,
    CHANNELS_FOUND,
    CHANNELS_READY,
    ERROR,
    READY,
    SCOPE_MISSING,
    SCOPE_NOT_FOUND,
    SYNC_FAILED,
    SYNC_SUCCEEDED,
    AlertRule,
    Condition,
    NotificationChannel,
    RuleStatus,
    scope_problem,
)
from domain.timeutil import format_rfc3339, now_ns
from serving.waiting import wait_at_most

log = logging.getLogger(__name__)

Action = Literal["created", "updated", "unchanged", "deleted"]
_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What one reconcile did to one rule."""

    namespace: str
    name: str
    action: Action
    ok: bool
    backend_id: str = ""
    synced_at_ns: int = 0  # when the backend was last written for it (or checked, when unchanged)
    message: str = ""  # the failure, or a note ("disabled")
    target: str = ""
    reason: str = ""  # the Synced condition's reason for a failure (default SyncFailed)
    keep: bool = False  # a transient failure before placing: what the backends hold is left as it is

    @property
    def logical_id(self) -> str:
        return logical_id(self.namespace, self.name)


def sync_response(result: SyncResult) -> dict[str, Any]:
    """The contract's AlertingRuleSyncResponse for a reconcile of one rule."""
    return {
        "action": result.action,
        "status": "synced" if result.ok else "failed",
        "ruleLogicalId": result.logical_id,
        "ruleBackendId": result.backend_id,
        "lastSyncedAt": format_rfc3339(result.synced_at_ns // _NS * _NS),
    }


@dataclass
class ReconcileCounters:
    passes: int = 0
    created: int = 0
    updated: int = 0  # includes restored
    restored: int = 0  # rewritten because the backend drifted, not because the rule changed
    deleted: int = 0
    unchanged: int = 0
    failed: int = 0
    purged: int = 0
    status_writes: int = 0

    @property
    def backend_writes(self) -> int:
        return self.created + self.updated + self.deleted


Listing = dict[str, BackendRule]


class RuleStore(Protocol):
    """What the reconciler needs of the resource store (observer/alerting/resources.py: ResourceStore), named
    here so alert rules do not import the observer service."""

    changed: asyncio.Event

    async def get_rule(self, namespace: str, name: str) -> AlertRule | None: ...

    async def list_rules(self) -> list[AlertRule]: ...

    async def deleted_rules(self) -> list[AlertRule]: ...

    async def purge_rule(self, namespace: str, name: str) -> None: ...

    async def set_rule_status(self, namespace: str, name: str, status: RuleStatus) -> None: ...

    async def channel(self, namespace: str, name: str) -> NotificationChannel | None: ...


@dataclass
class Reconciler:
    store: RuleStore
    targets: Sequence[RuleTarget]
    interval_s: float = 60.0
    clock: Callable[[], int] = now_ns
    counters: ReconcileCounters = field(default_factory=ReconcileCounters)
    resolver: ScopeResolver | None = None  # names in scope labels -> UIDs; None: rules must carry UIDs

    def __post_init__(self) -> None:
        self._lock = asyncio.Lock()  # one pass or single-rule reconcile at a time

    def target_for(self, rule: AlertRule) -> RuleTarget | None:
        return next((target for target in self.targets if target.accepts(rule)), None)

    # ------------------------------------------------------------------------------------------- running

    async def run(self) -> None:
        """Reconciles on every store change and every `interval_s`, until cancelled."""
        while True:
            self.store.changed.clear()  # before the pass: a change made during it wakes the next one
            try:
                await self.reconcile()
            except Exception:  # a bug or the store being down must not end reconciling for good
                log.exception("alert rule reconcile pass failed")
            await wait_at_most(self.store.changed.wait(), self.interval_s)

    # ------------------------------------------------------------------------------------------- a full pass

    async def reconcile(self) -> list[SyncResult]:
        async with self._lock:
            self.counters.passes += 1
            rules = await self.store.list_rules()
            tombstones = await self.store.deleted_rules()
            listings = await self._listings()

            placed: dict[str, tuple[RuleTarget, AlertRule]] = {}
            results: dict[str, SyncResult] = {}
            for rule in rules:
                if not rule.enabled:
                    continue
                scoped = await self._scoped(rule)
                if isinstance(scoped, SyncResult):
                    results[rule_logical_id(rule)] = scoped
                    continue
                target = self.target_for(scoped)
                if target is None:
                    results[rule_logical_id(rule)] = self._failure(rule, "created", _no_target(rule))
                else:
                    placed[rule_logical_id(rule)] = (target, scoped)

            kept = {rule_id for rule_id, result in results.items() if result.keep}
            removed = await self._delete_unwanted(listings, placed, kept)

            for rule_id, (target, rule) in placed.items():
                results[rule_id] = await self._place(target, rule, listings)

            for rule in rules:
                if not rule.enabled:
                    results[rule_logical_id(rule)] = self._disabled(rule, listings, removed)
                await self._write_status(rule, results[rule_logical_id(rule)])

            for rule in tombstones:
                results[rule_logical_id(rule)] = await self._retire(rule, listings, removed)
            return list(results.values())

    async def _listings(self) -> dict[int, Listing | Exception]:
        async def one(target: RuleTarget) -> Listing | Exception:
            try:
                return await target.list_managed()
            except Exception as exc:  # the target is skipped for the pass, never half-trusted
                log.warning("listing alert rules in %s failed: %s", target.name, exc)
                return exc

        found = await asyncio.gather(*(one(target) for target in self.targets))
        return {id(target): listing for target, listing in zip(self.targets, found)}

    async def _delete_unwanted(
        self,
        listings: dict[int, Listing | Exception],
        placed: dict[str, tuple[RuleTarget, AlertRule]],
        kept: Collection[str] = (),
    ) -> dict[tuple[int, str], str]:
        """Deletes what each target holds but should not (except the `kept` ids); returns (target, id) -> ""
        when deleted, else the error."""
        outcome: dict[tuple[int, str], str] = {}
        for target in self.targets:
            listing = listings[id(target)]
            if isinstance(listing, Exception):
                continue
            for rule_id in listing:
                wanted = placed.get(rule_id)
                if (wanted is not None and wanted[0] is target) or rule_id in kept:
                    continue
                outcome[(id(target), rule_id)] = await self._delete(target, rule_id)
        return outcome

    async def _delete(self, target: RuleTarget, rule_id: str) -> str:
        try:
            await target.delete(rule_id)
        except Exception as exc:
            self.counters.failed += 1
            log.warning("deleting alert rule %s from %s failed: %s", rule_id, target.name, exc)
            return f"{target.name}: {exc}"
        self.counters.deleted += 1
        log.info("alert rule %s deleted from %s", rule_id, target.name)
        return ""

    async def _sync(self, target: RuleTarget, rule: AlertRule, held: BackendRule | None) -> SyncResult:
        action: Action = "created" if held is None else "updated"
        try:
            wanted = target.content_hash(rule)
            if held is not None and held.content_hash == wanted and not held.drifted:
                self.counters.unchanged += 1
                return SyncResult(
                    rule.namespace, rule.name, "unchanged", True, held.backend_id, self.clock(), target=target.name
                )
            backend_id = await target.upsert(rule)
        except Exception as exc:
            return self._failure(
                rule, action, f"{target.name}: {exc}" if not isinstance(exc, UnsupportedRule) else str(exc)
            )
        if held is None:
            self.counters.created += 1
        else:
            self.counters.updated += 1
            if held.content_hash == wanted:  # same content, but the backend did not run it as written
                self.counters.restored += 1
        log.info(
            "alert rule %s %s in %s%s",
            rule_logical_id(rule),
            action,
            target.name,
            f" ({held.detail})" if held is not None and held.detail else "",
        )
        return SyncResult(rule.namespace, rule.name, action, True, backend_id, self.clock(), target=target.name)

    async def _place(self, target: RuleTarget, rule: AlertRule, listings: dict[int, Listing | Exception]) -> SyncResult:
        """Syncs `rule` into the target it was placed in, unless that target could not be listed this pass."""
        listing = listings[id(target)]
        if isinstance(listing, Exception):
            return self._failure(rule, "created", _listing_error(target, listing))
        return await self._sync(target, rule, listing.get(rule_logical_id(rule)))

    async def _retire(
        self, rule: AlertRule, listings: dict[int, Listing | Exception], removed: dict[tuple[int, str], str]
    ) -> SyncResult:
        """A tombstone: purged from the store once no target holds it."""
        result = self._deleted(rule, listings, removed)
        if result.ok:
            await self.store.purge_rule(rule.namespace, rule.name)
            self.counters.purged += 1
        return result

    def _failure(
        self, rule: AlertRule, action: Action, message: str, reason: str = "", keep: bool = False
    ) -> SyncResult:
        self.counters.failed += 1
        return SyncResult(rule.namespace, rule.name, action, False, "", self.clock(), message, reason=reason, keep=keep)

    async def _scoped(self, rule: AlertRule) -> AlertRule | SyncResult:
        """The rule with its scope as UIDs (what backends are given), or why it cannot be placed (module
        docstring: ScopeMissing, ScopeNotFound, or a resolver outage that keeps what backends hold)."""
        problem = scope_problem(rule.labels)
        if problem:
            return self._failure(rule, "created", f"{problem}; the rule is in no backend until then", SCOPE_MISSING)
        if self.resolver is None and needs_resolving(rule):  # never widen to the namespace for want of UIDs
            return self._failure(
                rule,
                "created",
                "the rule's scope labels name what only a resolver can turn into "
                "UIDs, and none is configured: give the -uid labels",
                SCOPE_NOT_FOUND,
            )
        try:
            return await resolve_rule_scope(rule, self.resolver)
        except ScopeNotFound as exc:
            return self._failure(
                rule,
                "created",
                f"the rule's scope names what does not exist: {exc}; the rule is in no backend until it exists",
                SCOPE_NOT_FOUND,
            )
        except ResolverUnavailable as exc:
            return self._failure(
                rule, "updated", f"could not resolve the rule's scope, backends left as they were: {exc}", keep=True
            )

    async def _missing_channels(self, rule: AlertRule) -> list[str]:
        return [name for name in rule.channels if await self.store.channel(rule.namespace, name) is None]

    def _removal(
        self, rule: AlertRule, listings: dict[int, Listing | Exception], removed: dict[tuple[int, str], str]
    ) -> tuple[bool, bool, str]:
        """(anything deleted, nothing left anywhere, why not) for a rule that should be in no backend."""
        rule_id = rule_logical_id(rule)
        deleted, errors = False, []
        for target in self.targets:
            listing = listings[id(target)]
            if isinstance(listing, Exception):
                errors.append(_listing_error(target, listing))
            elif (id(target), rule_id) in removed:
                error = removed[(id(target), rule_id)]
                deleted = deleted or not error
                if error:
                    errors.append(error)
        return deleted, not errors, "; ".join(errors)

    def _disabled(
        self, rule: AlertRule, listings: dict[int, Listing | Exception], removed: dict[tuple[int, str], str]
    ) -> SyncResult:
        deleted, gone, error = self._removal(rule, listings, removed)
        if not gone:
            return self._failure(rule, "deleted", error)
        return SyncResult(
            rule.namespace,
            rule.name,
            "deleted" if deleted else "unchanged",
            True,
            "",
            self.clock(),
            "the rule is disabled: it is in no backend",
        )

    def _deleted(
        self, rule: AlertRule, listings: dict[int, Listing | Exception], removed: dict[tuple[int, str], str]
    ) -> SyncResult:
        _, gone, error = self._removal(rule, listings, removed)
        if not gone:
            return self._failure(rule, "deleted", error)
        return SyncResult(rule.namespace, rule.name, "deleted", True, "", self.clock())

    # ------------------------------------------------------------------------------------------- one rule

    async def reconcile_one(self, namespace: str, name: str) -> SyncResult:
        """Reconciles one rule now (live, disabled or deleted) and returns what happened; LookupError when the
        store knows no such rule, live or tombstoned."""
        async with self._lock:
            rule = await self.store.get_rule(namespace, name)
            tombstone = None
            if rule is None:
                tombstone = next((r for r in await self.store.deleted_rules() if r.key == (namespace, name)), None)
                if tombstone is None:
                    raise LookupError(f"alert rule {namespace}/{name} not found")
            listings = await self._listings()
            current = rule or tombstone
            assert current is not None
            rule_id = rule_logical_id(current)
            scoped = await self._scoped(rule) if rule is not None and rule.enabled else None
            target = self.target_for(scoped) if isinstance(scoped, AlertRule) else None

            removed: dict[tuple[int, str], str] = {}
            for other in self.targets:
                listing = listings[id(other)]
                if isinstance(scoped, SyncResult) and scoped.keep:
                    break
                if not isinstance(listing, Exception) and rule_id in listing and other is not target:
                    removed[(id(other), rule_id)] = await self._delete(other, rule_id)

            if tombstone is not None:
                return await self._retire(tombstone, listings, removed)
            assert rule is not None
            if not rule.enabled:
                result = self._disabled(rule, listings, removed)
            elif isinstance(scoped, SyncResult):
                result = scoped
            elif target is None:
                result = self._failure(rule, "created", _no_target(rule))
            else:
                assert scoped is not None
                result = await self._place(target, scoped, listings)
            await self._write_status(rule, result)
            return result

    # ------------------------------------------------------------------------------------------- status

    async def _write_status(self, rule: AlertRule, result: SyncResult) -> None:
        missing = await self._missing_channels(rule) if rule.enabled else None
        status = self.status_for(rule, result, missing)
        if status is not None:
            await self.store.set_rule_status(rule.namespace, rule.name, status)
            self.counters.status_writes += 1

    def status_for(
        self, rule: AlertRule, result: SyncResult, missing_channels: list[str] | None = None
    ) -> RuleStatus | None:
        """The status after `result` (and, for an enabled rule, the channels found missing), or None when the
        stored one already says the same (times aside)."""
        old = rule.status
        now = format_rfc3339(self.clock() // _NS * _NS)
        if result.ok:
            verb = "disabled: removed from every backend" if result.message else f"{result.action} in backend"
            synced = Condition("Synced", "True", SYNC_SUCCEEDED, f"Alert rule {result.logical_id} {verb}", "")
            phase, backend_id = READY, result.backend_id
        else:
            synced = Condition("Synced", "False", result.reason or SYNC_FAILED, result.message, "")
            phase, backend_id = ERROR, old.backend_monitor_id
        wanted = [synced]
        if missing_channels is not None:
            wanted.append(_channels_condition(rule, missing_channels))
            if missing_channels:
                phase = ERROR
        previous = {c.type: c for c in old.conditions}
        same_state = (
            old.phase == phase
            and old.observed_generation == rule.generation
            and old.backend_monitor_id == backend_id
            and {c.type for c in old.conditions} == {c.type for c in wanted}
            and all(
                _same(previous.get(c.type), c, loose=c.type == "Synced" and result.action == "unchanged")
                for c in wanted
            )
        )
        if same_state:
            return None  # nothing new to say: an unchanged rule costs no write
        wrote = result.ok and result.action in ("created", "updated")
        return replace(
            old,
            observed_generation=rule.generation,
            phase=phase,
            last_reconcile_time=now,
            last_sync_time=now if wrote or not old.last_sync_time and result.ok else old.last_sync_time,
            backend_monitor_id=backend_id,
            conditions=tuple(_transitioned(previous.get(c.type), c, now) for c in wanted),
        )


def _same(old: Condition | None, new: Condition, loose: bool) -> bool:
    """Whether `old` says what `new` says; `loose` ignores the message (an unchanged rule's "unchanged")."""
    return (
        old is not None
        and old.status == new.status
        and old.reason == new.reason
        and (loose or old.message == new.message)
    )


def _transitioned(old: Condition | None, new: Condition, now: str) -> Condition:
    """`new`, with its lastTransitionTime kept while the status stays what it was."""
    return replace(new, last_transition_time=old.last_transition_time if old and old.status == new.status else now)


def _channels_condition(rule: AlertRule, missing: list[str]) -> Condition:
    if not rule.channels:
        return Condition(
            CHANNELS_READY,
            "True",
            CHANNELS_FOUND,
            "the rule names no notification channel: alerts and incidents are recorded only",
            "",
        )
    if not missing:
        return Condition(CHANNELS_READY, "True", CHANNELS_FOUND, "every notification channel of the rule exists", "")
    names = ", ".join(f'"{name}"' for name in missing)
    return Condition(
        CHANNELS_READY,
        "False",
        CHANNEL_NOT_FOUND,
        f"notification channel {names} not found (looked in namespace {rule.namespace!r}, then in every "
        "namespace); alerts and incidents are recorded but not sent to it until it is applied",
        "",
    )


def _no_target(rule: AlertRule) -> str:
    return f"no backend here evaluates {rule.source.type} rules"


def _listing_error(target: RuleTarget, error: Exception) -> str:
    return f"{target.name}: could not list its rules: {error}"
