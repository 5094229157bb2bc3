"""The reconcile loop: when to run which pass, and how much may run at once.

- **Wake on store changes.** Every `poll_s` the loop compares `store.revision()` with the last revision it read
  and maps the new changes to work: a ReleaseBinding or channel write -> that object; a Component write -> its
  bindings; a Workload write -> the bindings of its namespace; a Secret write -> the channels of its namespace; a
  delete of a binding or channel -> a sweep; anything else that feeds rendering (Project, Environment, the plane
  kinds, Namespace) -> a full pass. Its own status writes (`op == "status"` on bindings) are ignored, and it only
  writes a status that changed, so it settles. Authz* and status-only writes of other kinds are ignored.
- **Requeue.** A binding with something progressing, or whose apply the plane refused, comes back after
  `progressing_s`; one blocked by a plane in backoff comes back when the plane's next attempt is due (1 s .. 60 s,
  jitter: planes.Backoff).
- **Agents.** `plane_changed` (the gateway's `on_change` hook) forgets a plane's backoff and asks for a full
  pass, so a plane coming back is used at once rather than at the end of its backoff.
- **Resync.** Every `resync_s` a full pass: every binding, every channel, then the sweep; drift (a hand-deleted
  Deployment) is restored by the next apply.
- **Bounds.** At most `concurrency` bindings/channels reconcile at once and at most `concurrency` tunnel calls
  are in flight (BoundedTransport); bindings are read page by page; the queue of pending keys is capped
  (MAX_QUEUED: beyond it the loop falls back to a full pass); the change feed is read `CHANGES_BATCH` at a time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from controlplane.proxy_client import TIMEOUT_S, Transport
from controlplane.reconcile.channels import CHANNEL_KIND, SecretLookup, reconcile_channel, store_secrets
from controlplane.reconcile.conditions import APPLY_FAILED
from controlplane.reconcile.planes import PLANE_KINDS, Backoff
from controlplane.reconcile.releases import reconcile_release
from controlplane.reconcile.sweep import sweep
from controlplane.store import Change, Store
from serving.waiting import wait_at_most
from tunnel.frames import TunnelRequest, TunnelResponse

log = logging.getLogger(__name__)

BINDING_KIND = "ReleaseBinding"
MAX_QUEUED = 10_000
CHANGES_BATCH = 1_000
_PAGE = 500
_FULL_PASS_KINDS = frozenset({"Namespace", "Project", "Environment", "DeploymentPipeline", *PLANE_KINDS})

Key = tuple[str, str, str]  # (kind, namespace, name) of a binding or channel


class BoundedTransport:
    """A Transport that lets at most `limit` requests be in flight at once."""

    def __init__(self, inner: Transport, limit: int) -> None:
        self._inner = inner
        self._slots = asyncio.Semaphore(limit)

    async def send(
        self, plane_type: str, plane_id: str, cr_key: str, request: TunnelRequest, timeout: float
    ) -> TunnelResponse:
        async with self._slots:
            return await self._inner.send(plane_type, plane_id, cr_key, request, timeout)


@dataclass
class Work:
    """What a batch of changes asks for: these keys now, a full pass instead, a sweep; `gone` = deleted keys."""

    keys: list[Key] = field(default_factory=list)
    full: bool = False
    sweep: bool = False
    gone: list[Key] = field(default_factory=list)


@dataclass(frozen=True)
class PassReport:
    """What a full pass did: objects reconciled and orphans deleted."""

    bindings: int
    channels: int
    pruned: int


class Reconciler:
    """Runs the release, channel and sweep passes (module docstring)."""

    def __init__(
        self,
        store: Store,
        transport: Transport,
        *,
        resync_s: float = 300.0,
        progressing_s: float = 10.0,
        poll_s: float = 1.0,
        concurrency: int = 16,
        timeout_s: float = TIMEOUT_S,
        backoff: Backoff | None = None,
        secrets: SecretLookup | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.transport = BoundedTransport(transport, concurrency)
        self.resync_s = resync_s
        self.progressing_s = progressing_s
        self.poll_s = poll_s
        self.timeout_s = timeout_s
        self.backoff = backoff or Backoff(clock=clock)
        self.secrets = secrets or store_secrets(store)
        self._clock = clock
        self._workers = asyncio.Semaphore(concurrency)
        self._due: dict[Key, float] = {}
        self._seen = -1
        self._full_wanted = True
        self._sweep_wanted = False
        self._next_full = clock() + resync_s
        #: the last outcome per channel ("Reason: message"); channels have no status to write it to
        self.channel_results: dict[tuple[str, str], str] = {}

    # ------------------------------------------------------------------------------------------ passes

    async def pass_once(self) -> PassReport:
        """A full pass: every binding and channel, then the sweep over every plane."""
        self._full_wanted = False
        self._sweep_wanted = False
        bindings = await self._reconcile_all(BINDING_KIND)
        channels = await self._reconcile_all(CHANNEL_KIND)
        pruned = await sweep(self.store, self.transport, self.backoff, self.timeout_s)
        return PassReport(bindings, channels, pruned)

    async def _reconcile_all(self, kind: str) -> int:
        count = 0
        cursor = ""
        while True:
            page = await asyncio.to_thread(self.store.list, kind, None, limit=_PAGE, cursor=cursor)
            keys = [(kind, str(d["metadata"]["namespace"]), str(d["metadata"]["name"])) for d in page.items]
            await self._reconcile(keys)
            count += len(keys)
            if not page.next_cursor:
                return count
            cursor = page.next_cursor

    async def _reconcile(self, keys: Iterable[Key]) -> None:
        await asyncio.gather(*(self._one(key) for key in keys))

    async def _one(self, key: Key) -> None:
        kind, namespace, name = key
        async with self._workers:
            self._due.pop(key, None)
            try:
                if kind == BINDING_KIND:
                    outcome = await reconcile_release(
                        self.store, self.transport, self.backoff, namespace, name, self.timeout_s
                    )
                    if outcome is None:
                        return
                    if outcome.retry_at is not None:
                        self._requeue(key, outcome.retry_at)
                    elif outcome.progressing or outcome.reason == APPLY_FAILED:
                        self._requeue(key, self._clock() + self.progressing_s)
                else:
                    result = await reconcile_channel(
                        self.store, self.transport, self.backoff, namespace, name, self.timeout_s, self.secrets
                    )
                    if result is None:
                        self.channel_results.pop((namespace, name), None)
                        return
                    text = f"{result.reason}: {result.message}"
                    if self.channel_results.get((namespace, name)) != text:
                        log.info("channel %s/%s: %s", namespace, name, text)
                    self.channel_results[(namespace, name)] = text
                    if result.retry_at is not None:
                        self._requeue(key, result.retry_at)
            except Exception:  # one broken object must not stop the others; it is retried
                log.exception("reconciling %s %s/%s failed", kind, namespace, name)
                self._requeue(key, self._clock() + self.progressing_s)

    def _requeue(self, key: Key, at: float) -> None:
        if key not in self._due and len(self._due) >= MAX_QUEUED:
            self._full_wanted = True
            return
        self._due[key] = min(at, self._due.get(key, at))

    # ------------------------------------------------------------------------------------------ change feed

    def _read_changes(self, seen: int) -> tuple[list[Change], int, bool]:
        """(changes since `seen`, the revision read up to, whether to do a full pass instead) (sync: run in a
        thread; it changes no state of the loop). A gap (history pruned) or a full batch means a full pass."""
        current = self.store.revision()
        if current == seen:
            return [], seen, False
        found = self.store.changes_since(seen, limit=CHANGES_BATCH)
        if not found or found[0].revision != seen + 1 or len(found) == CHANGES_BATCH:
            return [], current, True
        return found, found[-1].revision, False

    def _work_for(self, changes: list[Change]) -> Work:
        """What these changes ask for (sync: may list bindings or channels of a namespace; changes no state)."""
        work = Work()
        keys: dict[Key, None] = {}
        for change in changes:
            if change.kind in (BINDING_KIND, CHANNEL_KIND):
                if change.op == "status":
                    continue  # ours (see module docstring)
                if change.op == "deleted":
                    work.sweep = True
                    work.gone.append((change.kind, change.namespace, change.name))
                else:
                    keys[(change.kind, change.namespace, change.name)] = None
            elif change.kind == "Component":
                for doc in self._all(BINDING_KIND, change.namespace, {"component": change.name}):
                    keys[(BINDING_KIND, change.namespace, str(doc["metadata"]["name"]))] = None
            elif change.kind == "Workload":
                for doc in self._all(BINDING_KIND, change.namespace, {}):
                    keys[(BINDING_KIND, change.namespace, str(doc["metadata"]["name"]))] = None
            elif change.kind == "Secret":
                for doc in self._all(CHANNEL_KIND, change.namespace, {}):
                    keys[(CHANNEL_KIND, change.namespace, str(doc["metadata"]["name"]))] = None
            elif change.kind in _FULL_PASS_KINDS and change.op != "status":
                work.full = True
            if len(keys) > MAX_QUEUED:
                work.full = True
                break
        work.keys = [] if work.full else list(keys)
        return work

    def _all(self, kind: str, namespace: str, filters: dict[str, str]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor = ""
        try:
            while len(items) <= MAX_QUEUED:
                page = self.store.list(kind, namespace, filters=filters, limit=_PAGE, cursor=cursor)
                items += page.items
                if not page.next_cursor:
                    break
                cursor = page.next_cursor
        except Exception:  # the namespace went away meanwhile: nothing to do there
            log.debug("listing %s in %s failed", kind, namespace, exc_info=True)
        return items

    async def plane_changed(self, plane_type: str, plane_id: str) -> None:
        """The gateway's `on_change` hook: an agent of the plane connected or left. Its backoff is forgotten and
        the next turn is a full pass, so bindings blocked on it recover without waiting out their backoff."""
        self.backoff.forget(plane_type, plane_id)
        self._full_wanted = True

    # ------------------------------------------------------------------------------------------ the loop

    async def step(self) -> None:
        """One turn of the loop: read the change feed, run what is due (a full pass when asked or at resync)."""
        if self._clock() >= self._next_full:
            self._full_wanted = True
        changes, self._seen, gap = await asyncio.to_thread(self._read_changes, self._seen)
        work = await asyncio.to_thread(self._work_for, changes) if changes else Work()
        self._full_wanted = self._full_wanted or gap or work.full
        self._sweep_wanted = self._sweep_wanted or work.sweep
        for kind, namespace, name in work.gone:
            self._due.pop((kind, namespace, name), None)
            if kind == CHANNEL_KIND:
                self.channel_results.pop((namespace, name), None)
        if self._full_wanted:
            await self.pass_once()
            self._next_full = self._clock() + self.resync_s
            return
        now = self._clock()
        due = [key for key, at in self._due.items() if at <= now]
        await self._reconcile(dict.fromkeys([*work.keys, *due]))
        if self._sweep_wanted:
            self._sweep_wanted = False
            await sweep(self.store, self.transport, self.backoff, self.timeout_s)

    async def run(self, stop: asyncio.Event) -> None:
        """Reconcile until `stop` is set: a full pass first, then changes, requeues and resyncs (module
        docstring)."""
        self._seen = await asyncio.to_thread(self.store.revision)
        self._full_wanted = True
        self._next_full = self._clock() + self.resync_s
        while not stop.is_set():
            try:
                await self.step()
            except Exception:  # the store or a plane misbehaved; the next turn tries again
                log.exception("reconcile turn failed")
            wait = self.poll_s
            next_due = min(self._due.values(), default=None)
            if next_due is not None:
                wait = max(0.0, min(wait, next_due - self._clock()))
            await wait_at_most(stop.wait(), wait)
