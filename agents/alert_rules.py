"""The observability-plane agent's reconciler: ObservabilityAlertRule CRs and notification-channel ConfigMaps and
Secrets in the plane's own cluster -> the observer's internal port, with each rule's status written back.

Why it is here: upstream runs its controller image in the plane for exactly this one reconciler (control-plane
notes, "Alert rules are reconciled inside the observability plane"), so rules keep working while the control
plane is away. This talks only to the plane's kube-apiserver and the observer; it needs no control plane at all.

Which observer API (`observer_api`, the agent's `--observer-api`):
- `resources` (the default, for this project's observer): the whole CR goes to the observer's
  `PUT /api/v1alpha1/alerts/rule-resources/{namespace}/{name}` in one call, so the rule keeps its notification
  channels, severity and description, which upstream's observer reads from the CR at webhook time (contract notes
  §2.4 step 2) and the upstream rule API does not carry; and the channels' ConfigMaps + Secrets are delivered too
  (the inverse of §2.5, agents/channels.py: a PUT of the channel's CR document and secret values, sent again only
  when either changed; a ConfigMap that goes away is a DELETE).
- `upstream` (for upstream's observer, which reads CRs, ConfigMaps and Secrets from Kubernetes itself): exactly
  what upstream's controller sends, the GET-first upsert of the rule API (`ObserverClient.upsert_rule`); no
  channels are sent.

Rules, as upstream's controller (contract notes §4.2): a rule whose generation has not been synced is sent and its
`/status` written from the observer's AlertingRuleSyncResponse (phase Ready|Error, backendMonitorId, lastSyncTime,
lastReconcileTime, observedGeneration, condition Synced: SyncSucceeded | SyncNotSynced | SyncFailed). The
finalizer `openchoreo.dev/alertrule-cleanup` holds a deleted CR until its rule is DELETEd from the observer (2xx or
404), so a delete made while the agent was down is not lost. A status write changes no generation, so the MODIFIED
event it causes is a no-op.

Failures: a refusal of the request itself (a 4xx, e.g. the observer finding the CR invalid; with `upstream` also a
CR missing its UID labels) is reported on the status and waits for the next change of the object; anything else (observer or API server down, 5xx, timeouts) is retried per object with full-jitter
exponential backoff up to a minute. The watches are collectors/kubernetes/watch.py's Reflector (list + watch,
resume, relist on 410, backoff) on threads; their events are handed to the event loop, which owns all state.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from agents.channels import CHANNEL_LABEL, ChannelDataError, channel_from_objects, channel_name
from agents.observer_client import ObserverError, ObserverPort, RuleSync
from agents.rules import GROUP, PLURAL, VERSION, RuleSpecError, rule_payload, rule_resource, rule_status
from collectors.kubernetes.watch import Reflector

log = logging.getLogger(__name__)

FINALIZER = "openchoreo.dev/alertrule-cleanup"
MERGE_PATCH = "application/merge-patch+json"
KUBE_TIMEOUT_S = (10.0, 30.0)  # connect, read: every write to the API server is bounded
MIN_BACKOFF_S = 1.0
MAX_BACKOFF_S = 60.0
#: Every rule and channel is sent again this often (GET-first, so an unchanged rule costs a GET and a PUT): an
#: observer that lost its store, or a rule deleted behind the agent's back, is restored without an edit.
RESYNC_S = 600.0

ObserverApi = Literal["resources", "upstream"]
OBSERVER_APIS: tuple[ObserverApi, ...] = ("resources", "upstream")
DEFAULT_OBSERVER_API: ObserverApi = "resources"

Key = tuple[str, str]  # (namespace, name): a rule CR, or a channel


def _key(obj: Mapping[str, Any]) -> Key:
    metadata = obj.get("metadata") or {}
    return str(metadata.get("namespace") or ""), str(metadata.get("name") or "")


def _channel_key(obj: Mapping[str, Any]) -> Key:
    return str((obj.get("metadata") or {}).get("namespace") or ""), channel_name(obj)


# ----------------------------------------------------------------------------------------------- watches


class _Mirror:
    """A Reflector's handler: hands every list and change to the event loop (the watch thread never touches the
    reconciler's state). The loop keeps up, since applying an event is a dict update."""

    def __init__(self, loop: asyncio.AbstractEventLoop, apply: Callable[[str, list[dict[str, Any]]], None]) -> None:
        self._loop = loop
        self._apply = apply

    def _post(self, kind: str, objects: list[dict[str, Any]]) -> None:
        try:
            self._loop.call_soon_threadsafe(self._apply, kind, objects)
        except RuntimeError:  # the loop is closed: the agent is stopping
            pass

    def relisted(self, items: list[dict[str, Any]], resource_version: str) -> None:
        self._post("RELIST", items)

    def changed(self, kind: str, obj: dict[str, Any]) -> None:
        self._post(kind, [obj])

    def bookmark(self, resource_version: str) -> None:
        pass


class _Collection:
    """The latest copy of each watched object, by key; what the reconciler reads."""

    def __init__(self, key: Callable[[Mapping[str, Any]], Key]) -> None:
        self.key = key
        self.objects: dict[Key, dict[str, Any]] = {}
        self.gone: dict[Key, dict[str, Any]] = {}  # the last copy of deleted objects, until reconciled

    def apply(self, kind: str, objects: list[dict[str, Any]]) -> set[Key]:
        """Applies one event; the keys it touched."""
        if kind == "RELIST":
            fresh = {self.key(obj): obj for obj in objects}
            for key in self.objects.keys() - fresh.keys():
                self.gone[key] = self.objects[key]
            touched = set(self.objects) | set(fresh)
            self.objects = fresh
            return touched
        touched = set()
        for obj in objects:
            key = self.key(obj)
            touched.add(key)
            if kind == "DELETED":
                self.objects.pop(key, None)
                self.gone[key] = obj
            else:
                self.objects[key] = obj
                self.gone.pop(key, None)
        return touched


@dataclass
class _Retry:
    attempts: int
    due: float  # loop time
    version: str  # what was being synced: a newer one goes at once


# ----------------------------------------------------------------------------------------------- reconciler


class AlertRuleAgent:
    """Owns the watched copies, what has been synced, and the retry schedule; `run` until `stop` is set."""

    def __init__(
        self,
        kube: k8s.ApiClient,
        observer: ObserverPort,
        *,
        resync_s: float = RESYNC_S,
        observer_api: ObserverApi = DEFAULT_OBSERVER_API,
    ) -> None:
        if observer_api not in OBSERVER_APIS:
            raise ValueError(f"observer_api must be one of {', '.join(OBSERVER_APIS)}, not {observer_api!r}")
        self.kube = kube
        self.resync_s = resync_s
        self.observer_api = observer_api
        self.custom = k8s.CustomObjectsApi(kube)
        self.core = k8s.CoreV1Api(kube)
        self.observer = observer
        self.rules = _Collection(_key)
        self.config_maps = _Collection(_channel_key)
        self.secrets = _Collection(_channel_key)
        self.dirty: set[tuple[str, Key]] = set()  # ("rule" | "channel", key)
        self.synced: dict[Key, int] = {}  # rule -> the generation last synced (or refused for good)
        self.types: dict[Key, str] = {}  # rule -> the source type the observer holds it under
        self.pushed: dict[Key, str] = {}  # channel -> fingerprint of what the observer holds
        self.retries: dict[tuple[str, Key], _Retry] = {}
        self.wake = asyncio.Event()

    # -------------------------------------------------------------------- events (on the loop)

    def _on(self, what: str, collection: _Collection) -> Callable[[str, list[dict[str, Any]]], None]:
        def apply(kind: str, objects: list[dict[str, Any]]) -> None:
            for key in collection.apply(kind, objects):
                self.dirty.add((what, key))
            self.wake.set()

        return apply

    def _reflectors(self, loop: asyncio.AbstractEventLoop) -> list[Reflector]:
        """The rule CRs; with our observer also the channels' ConfigMaps and Secrets (upstream's reads them)."""
        selector = {"label_selector": CHANNEL_LABEL}
        rules = Reflector(
            "alert-rules", self.custom.list_cluster_custom_object, _Mirror(loop, self._on("rule", self.rules)),
            group=GROUP, version=VERSION, plural=PLURAL,
        )  # fmt: skip
        if self.observer_api == "upstream":
            return [rules]
        return [
            rules,
            Reflector(
                "channel-configmaps", self.core.list_config_map_for_all_namespaces,
                _Mirror(loop, self._on("channel", self.config_maps)), **selector,
            ),
            Reflector(
                "channel-secrets", self.core.list_secret_for_all_namespaces,
                _Mirror(loop, self._on("channel", self.secrets)), **selector,
            ),
        ]  # fmt: skip

    # -------------------------------------------------------------------- the loop

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        reflectors = self._reflectors(loop)
        for reflector in reflectors:
            reflector.start()
        resync_at = loop.time() + self.resync_s
        try:
            while not stop.is_set():
                self.wake.clear()
                now = loop.time()
                if now >= resync_at:
                    self._resync()
                    resync_at = now + self.resync_s
                due_now = {item: retry for item, retry in self.retries.items() if retry.due <= now}
                work, self.dirty = self.dirty | set(due_now), set()
                for what, key in sorted(work):
                    if stop.is_set():
                        break
                    await (self._rule(key) if what == "rule" else self._channel(key))
                for item, retry in due_now.items():  # a retry that found nothing left to do is over
                    if self.retries.get(item) is retry:
                        del self.retries[item]
                due = self._next_due(loop.time())
                until_resync = max(0.0, resync_at - loop.time())
                await _first(stop, self.wake, until_resync if due is None else min(due, until_resync))
        finally:
            await asyncio.gather(*(asyncio.to_thread(reflector.stop) for reflector in reflectors))

    def _resync(self) -> None:
        """Forgets what was synced, so every live rule and channel is sent again (backoffs stay as they are)."""
        self.synced.clear()
        self.pushed = {key: "" for key in self.pushed}  # still known (a removal is sent), no longer current
        self.dirty.update(("rule", key) for key in self.rules.objects)
        self.dirty.update(("channel", key) for key in self.config_maps.objects)

    def _next_due(self, now: float) -> float | None:
        if not self.retries:
            return None
        return max(0.0, min(retry.due for retry in self.retries.values()) - now)

    def _waiting(self, item: tuple[str, Key], version: str) -> bool:
        """True while `item` at `version` is backing off (its own status write must not undo the backoff)."""
        retry = self.retries.get(item)
        return retry is not None and retry.version == version and retry.due > asyncio.get_running_loop().time()

    def _failed(self, item: tuple[str, Key], version: str, exc: Exception) -> None:
        previous = self.retries.get(item)
        attempts = previous.attempts + 1 if previous and previous.version == version else 1
        delay = random.uniform(0, min(MAX_BACKOFF_S, MIN_BACKOFF_S * 2 ** (attempts - 1)))
        self.retries[item] = _Retry(attempts, asyncio.get_running_loop().time() + max(delay, 0.05), version)
        log.log(
            logging.INFO if attempts == 1 else logging.WARNING,
            "%s %s/%s: %s; retry %d in %.1fs", item[0], *item[1], exc, attempts, delay,
        )  # fmt: skip

    # -------------------------------------------------------------------- rules

    async def _rule(self, key: Key) -> None:
        item = ("rule", key)
        cr = self.rules.objects.get(key)
        if cr is None:
            last = self.rules.gone.get(key)
            finalizers = (last or {}).get("metadata", {}).get("finalizers") or []
            if last is None or (key not in self.synced and FINALIZER not in finalizers):
                # Never synced by us, or already cleaned up through the finalizer.
                self.rules.gone.pop(key, None)
                self.retries.pop(item, None)
                return
            await self._remove(item, last, finalize=False)
            return
        metadata = cr.get("metadata") or {}
        if metadata.get("deletionTimestamp"):
            if FINALIZER in (metadata.get("finalizers") or []):
                await self._remove(item, cr, finalize=True)
            return
        generation = int(metadata.get("generation") or 0)
        if self.synced.get(key) == generation or self._waiting(item, str(generation)):
            return
        await self._upsert(item, cr, generation)

    async def _send(self, key: Key, cr: dict[str, Any]) -> RuleSync:
        """Sends the rule through the chosen API (RuleSpecError when the CR cannot even be put into the upstream
        payload; the rule-resources endpoint validates on the observer's side and refuses with a 400)."""
        namespace, name = key
        if self.observer_api == "resources":
            await self._add_finalizer(cr)
            return await self.observer.put_rule_resource(namespace, name, rule_resource(cr))
        source_type, rule_name, payload = rule_payload(cr)
        await self._add_finalizer(cr)
        held = self.types.get(key)
        if held and held != source_type:  # the upstream API keys rules by name: the old type's copy goes first
            await self.observer.delete_rule(held, rule_name)
        self.types[key] = source_type
        return await self.observer.upsert_rule(source_type, rule_name, payload)

    async def _upsert(self, item: tuple[str, Key], cr: dict[str, Any], generation: int) -> None:
        namespace, name = item[1]
        try:
            sync = await self._send(item[1], cr)
        except RuleSpecError as exc:  # as upstream's controller: refused, reported, waits for an edit
            await self._status(cr, ok=False, reason="SyncFailed", message=str(exc), sync=None)
            self.synced[item[1]] = generation
            self.retries.pop(item, None)
            return
        except ObserverError as exc:
            await self._status(cr, ok=False, reason="SyncFailed", message=str(exc), sync=None)
            if exc.permanent:
                self.synced[item[1]] = generation
                self.retries.pop(item, None)
            else:
                self._failed(item, str(generation), exc)
            return
        except ApiException as exc:
            if exc.status == 404:  # deleted meanwhile: its DELETED event follows
                return
            self._failed(item, str(generation), exc)
            return
        synced = sync.status == "synced"
        message = (
            f"Alert rule {sync.rule_backend_id or sync.rule_logical_id or name} {sync.action} in backend"
            if synced
            else f"Alert rule {name} not synced: observer status {sync.status!r}"
        )
        reason = "SyncSucceeded" if synced else "SyncNotSynced"
        if not await self._status(cr, ok=synced, reason=reason, message=message, sync=sync):
            self._failed(item, str(generation), RuntimeError(f"status of {namespace}/{name} not written"))
        elif not synced:  # the observer keeps trying its backend; ask again until it says synced
            self._failed(item, str(generation), RuntimeError(message))
        else:
            self.synced[item[1]] = generation
            self.retries.pop(item, None)

    async def _remove(self, item: tuple[str, Key], cr: Mapping[str, Any], *, finalize: bool) -> None:
        """DELETE the rule from the observer (404 counts as done), then let the CR go."""
        source_type = str(((cr.get("spec") or {}).get("source") or {}).get("type") or "")
        version = str((cr.get("metadata") or {}).get("resourceVersion") or "")
        if self._waiting(item, version):
            return
        try:
            if self.observer_api == "resources":
                await self.observer.delete_rule_resource(*item[1])
            else:
                await self.observer.delete_rule(source_type, item[1][1])
            if finalize:
                await self._drop_finalizer(cr)
        except ObserverError as exc:
            if exc.permanent and exc.status != 409:  # e.g. a source type the observer refuses: nothing it holds
                log.warning("rule %s/%s: the observer refused its deletion: %s", *item[1], exc.message)
            else:
                self._failed(item, version, exc)
                return
        except ApiException as exc:
            if exc.status not in (404, 409):  # gone already, or changed: the watch brings the new copy
                self._failed(item, version, exc)
                return
        self.synced.pop(item[1], None)
        self.types.pop(item[1], None)
        self.retries.pop(item, None)
        self.rules.gone.pop(item[1], None)

    # -------------------------------------------------------------------- kube writes (on threads)

    async def _status(
        self, cr: Mapping[str, Any], *, ok: bool, reason: str, message: str, sync: RuleSync | None
    ) -> bool:
        """Writes the status subresource; False when the API server could not take it (404: the CR is gone,
        which is True: nothing left to report on)."""
        namespace, name = _key(cr)
        status = rule_status(cr, ok=ok, reason=reason, message=message, sync=sync, now=datetime.now(UTC))
        try:
            await asyncio.to_thread(
                self.custom.patch_namespaced_custom_object_status, GROUP, VERSION, namespace, PLURAL, name,
                {"status": status}, _content_type=MERGE_PATCH, _request_timeout=KUBE_TIMEOUT_S,
            )  # fmt: skip
        except ApiException as exc:
            if exc.status == 404:
                return True
            log.warning("rule %s/%s: status not written: %s %s", namespace, name, exc.status, exc.reason)
            return False
        except Exception as exc:  # the API server unreachable
            log.warning("rule %s/%s: status not written: %s", namespace, name, exc)
            return False
        return True

    async def _finalizers(self, cr: Mapping[str, Any], finalizers: list[str]) -> None:
        metadata = cr.get("metadata") or {}
        patch = {"metadata": {"finalizers": finalizers, "resourceVersion": metadata.get("resourceVersion")}}
        namespace, name = _key(cr)
        await asyncio.to_thread(
            self.custom.patch_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name, patch,
            _content_type=MERGE_PATCH, _request_timeout=KUBE_TIMEOUT_S,
        )  # fmt: skip

    async def _add_finalizer(self, cr: Mapping[str, Any]) -> None:
        """Adds the cleanup finalizer before the rule exists in the observer, so its deletion cannot be missed;
        the resourceVersion makes it a compare-and-swap (a 409 retries with the newer copy)."""
        current = list((cr.get("metadata") or {}).get("finalizers") or [])
        if FINALIZER not in current:
            await self._finalizers(cr, [*current, FINALIZER])

    async def _drop_finalizer(self, cr: Mapping[str, Any]) -> None:
        current = list((cr.get("metadata") or {}).get("finalizers") or [])
        await self._finalizers(cr, [f for f in current if f != FINALIZER])

    # -------------------------------------------------------------------- channels

    async def _channel(self, key: Key) -> None:
        item = ("channel", key)
        namespace, name = key
        config_map = self.config_maps.objects.get(key)
        self.config_maps.gone.pop(key, None)
        self.secrets.gone.pop(key, None)
        try:
            if config_map is None:
                if key in self.pushed:
                    await self.observer.delete_channel(namespace, name)
                    del self.pushed[key]
                self.retries.pop(item, None)
                return
            document = channel_from_objects(config_map, self.secrets.objects.get(key))
            fingerprint = json.dumps([document.channel, document.secrets], sort_keys=True)
            if self.pushed.get(key) == fingerprint or self._waiting(item, fingerprint):
                return
            try:
                await self.observer.put_channel(namespace, name, document.channel, document.secrets)
            except ObserverError as exc:
                if not exc.permanent:
                    self._failed(item, fingerprint, exc)
                    return
                log.warning("channel %s/%s: the observer refused it: %s", namespace, name, exc.message)
            self.pushed[key] = fingerprint
            self.retries.pop(item, None)
        except ChannelDataError as exc:
            log.warning("channel %s/%s: %s; waiting for the ConfigMap to change", namespace, name, exc)
            self.retries.pop(item, None)
        except ObserverError as exc:  # the DELETE
            self._failed(item, "", exc)


async def _first(stop: asyncio.Event, wake: asyncio.Event, timeout: float | None) -> None:
    """Waits until `stop` or `wake` is set, or `timeout` seconds pass."""
    waiters = [asyncio.create_task(stop.wait()), asyncio.create_task(wake.wait())]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def run_alert_rules(
    kube: k8s.ApiClient,
    observer: ObserverPort,
    stop: asyncio.Event,
    *,
    resync_s: float = RESYNC_S,
    observer_api: ObserverApi = DEFAULT_OBSERVER_API,
) -> None:
    """Reconciles the plane's alert rules (and, with our observer, its notification channels) into the observer
    until `stop` is set. `kube` is a client of the plane's own API server (collectors.kubernetes.watch.api_client(
    kubeconfig or None for in-cluster)); `observer` the internal port's client (its owner closes it) or another
    ObserverPort; `observer_api` "resources" for this project's observer, "upstream" for upstream's (see the
    module docstring)."""
    await AlertRuleAgent(kube, observer, resync_s=resync_s, observer_api=observer_api).run(stop)
