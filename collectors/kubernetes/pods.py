"""This node's pods, from the Kubernetes API: the metadata the Enricher gives tailed lines.

A list+watch of `pods` with the field selector `spec.nodeName=<node>` (collectors/kubernetes/watch.py: resumes by
resourceVersion, lists again on 410 Gone, reconnects with backoff) keeps a map from pod UID to the pod's labels
and annotations (and its node, IP and container images: `pod_of`), plus (namespace, name) -> UID for log paths that carry no UID (`/var/log/containers`).

The cache is a drop-in `PodMetadata` for `collectors.enrich.Enricher` (`lookup(namespace, pod, uid)`), and
also a `WaitingPodMetadata`: for a pod it does not know, the Enricher awaits `wait_for`, once per batch. A line
from a pod the cache does not know yet is therefore neither dropped nor held back for long:

1. wait for the first list to finish and the watch to deliver the pod, at most `wait_s` (2 s): the kubelet
   starts containers only after the pod was bound to this node, so the watch normally has the pod well before
   its first line, and the gap is a collector that is starting up or reconnecting;
2. then a direct GET of the pod by namespace and name (and a UID check, when the path gives one: a re-created
   pod of the same name is another pod);
3. failing that (the pod was deleted long ago: its log files outlive it; or the API cannot be reached), the line
   is enriched with what its path gives (namespace, pod, container) and is stored now. The miss is remembered
   for `miss_ttl_s` (30 s), so further batches from that pod do not wait again; after that it is asked again.

Deleted pods stay known for `deleted_ttl_s` (5 min): the tail often reads a pod's last lines after the pod is
gone (short jobs), and those lines should carry the pod's identity too.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from collectors.enrich import Pod
from collectors.kubernetes.watch import Reflector, read_json
from serving.waiting import wait_at_most

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Entry:
    namespace: str
    name: str
    uid: str
    pod: Pod
    deleted_at: float | None = None  # monotonic time the watch reported it gone


def pod_of(obj: dict[str, Any]) -> Pod:
    """The labels and annotations of a pod object (a JSON dict as the API sends it), and where it runs:
    `spec.nodeName`, `status.podIP` and each container's image (`spec.containers`, init and ephemeral
    containers too: their lines are tailed as well)."""
    metadata = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    images = {
        str(container.get("name") or ""): str(container.get("image") or "")
        for key in ("initContainers", "containers", "ephemeralContainers")
        for container in spec.get(key) or []
        if isinstance(container, dict) and container.get("name")
    }
    return Pod(
        {str(k): str(v) for k, v in (metadata.get("labels") or {}).items()},
        {str(k): str(v) for k, v in (metadata.get("annotations") or {}).items()},
        str(spec.get("nodeName") or ""),
        str((obj.get("status") or {}).get("podIP") or ""),
        images,
    )


class PodCache:
    """Labels and annotations of the pods on one node, kept current by a watch; see the module docstring.

    `lookup` is safe from any thread (the events receiver calls it from its watch thread); `wait_for` and
    `wait_synced` belong to the event loop that called `start`."""

    def __init__(
        self,
        api: k8s.ApiClient,
        node_name: str,
        *,
        wait_s: float = 2.0,
        miss_ttl_s: float = 30.0,
        deleted_ttl_s: float = 300.0,
    ) -> None:
        if not node_name:
            raise ValueError("the pod cache needs the node's name (metadata.kubernetes.node_name, or NODE_NAME)")
        self.core = k8s.CoreV1Api(api)
        self.node_name = node_name
        self.wait_s = wait_s
        self.miss_ttl_s = miss_ttl_s
        self.deleted_ttl_s = deleted_ttl_s
        self.fetched = 0  # direct GETs made for pods the watch had not delivered
        self._lock = threading.Lock()
        self._by_uid: dict[str, _Entry] = {}
        self._by_name: dict[tuple[str, str], str] = {}
        self._misses: dict[tuple[str, str, str], float] = {}  # (namespace, name, uid) -> monotonic expiry
        self._synced = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed: asyncio.Event | None = None
        self._reflector = Reflector(
            f"pods@{node_name}",
            self.core.list_pod_for_all_namespaces,
            self,
            field_selector=f"spec.nodeName={node_name}",
        )

    # ------------------------------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        self._reflector.start()

    async def stop(self) -> None:
        await asyncio.to_thread(self._reflector.stop)

    async def __aenter__(self) -> PodCache:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def synced(self) -> bool:
        """True once the first list has been applied."""
        return self._synced.is_set()

    @property
    def reflector(self) -> Reflector:
        return self._reflector

    async def wait_synced(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self._synced.is_set():
            if not await self._wait_change(deadline):
                return self._synced.is_set()
        return True

    # ------------------------------------------------------------------------------------------- lookups

    def lookup(self, namespace: str, pod: str, uid: str = "") -> Pod | None:
        """The pod's metadata if the cache has it: by UID when the caller knows it (the name alone might be a
        newer pod's), else by namespace and name."""
        with self._lock:
            if not uid:
                uid = self._by_name.get((namespace, pod), "")
            entry = self._by_uid.get(uid) if uid else None
            return entry.pod if entry is not None else None

    async def wait_for(self, namespace: str, pod: str, uid: str = "") -> Pod | None:
        """`lookup`, waiting briefly for the watch and then asking the API directly (module docstring)."""
        found = self.lookup(namespace, pod, uid)
        if found is not None:
            return found
        key = (namespace, pod, uid)
        now = time.monotonic()
        with self._lock:
            if self._misses.get(key, 0.0) > now:
                return None
        deadline = now + self.wait_s
        while (found := self.lookup(namespace, pod, uid)) is None:
            if not await self._wait_change(deadline):
                break
        if found is None:
            found = await asyncio.to_thread(self._fetch, namespace, pod, uid)
        if found is None:
            with self._lock:
                self._misses[key] = time.monotonic() + self.miss_ttl_s
                if len(self._misses) > 10_000:  # forget expired misses now and then
                    now = time.monotonic()
                    self._misses = {k: t for k, t in self._misses.items() if t > now}
        return found

    def _fetch(self, namespace: str, name: str, uid: str) -> Pod | None:
        """A direct GET, for a pod the watch has not delivered. Not found, or another pod of the same name,
        is None; so is an API that cannot be reached (the line then goes on with what its path says)."""
        self.fetched += 1
        try:
            obj = read_json(self.core.read_namespaced_pod(name, namespace, _preload_content=False, _request_timeout=5))
        except ApiException as exc:
            if exc.status != 404:
                log.warning("pod %s/%s: GET failed (%s); enriching from the log path only", namespace, name, exc.status)
            return None
        except Exception as exc:  # connection refused, timeouts
            log.warning("pod %s/%s: GET failed (%s); enriching from the log path only", namespace, name, exc)
            return None
        metadata = obj.get("metadata") or {}
        if uid and metadata.get("uid") != uid:
            return None
        self._put(obj)
        return pod_of(obj)

    # ------------------------------------------------------------------------------------------- watch side

    def relisted(self, items: list[dict[str, Any]], resource_version: str) -> None:
        """The node's pods as of now: pods that are gone since (deleted while the watch was down) become
        tombstones like watched deletions."""
        listed = {str((item.get("metadata") or {}).get("uid") or "") for item in items}
        now = time.monotonic()
        with self._lock:
            for uid, entry in self._by_uid.items():
                if uid not in listed and entry.deleted_at is None:
                    entry.deleted_at = now
        for item in items:
            self._put(item)
        self._expire()
        first = not self._synced.is_set()
        self._synced.set()
        if first:
            log.info("pod cache for node %s: %d pods", self.node_name, len(items))
        self._notify()

    def changed(self, kind: str, obj: dict[str, Any]) -> None:
        if kind == "DELETED":
            uid = str((obj.get("metadata") or {}).get("uid") or "")
            with self._lock:
                entry = self._by_uid.get(uid)
                if entry is not None:
                    entry.pod = pod_of(obj)
                    entry.deleted_at = time.monotonic()
        else:
            self._put(obj)
        self._expire()
        self._notify()

    def bookmark(self, resource_version: str) -> None:
        self._expire()

    def _put(self, obj: dict[str, Any]) -> None:
        metadata = obj.get("metadata") or {}
        uid = str(metadata.get("uid") or "")
        if not uid:
            return
        entry = _Entry(str(metadata.get("namespace") or ""), str(metadata.get("name") or ""), uid, pod_of(obj))
        with self._lock:
            self._by_uid[uid] = entry
            self._by_name[(entry.namespace, entry.name)] = uid
            for key in [k for k in self._misses if k[0] == entry.namespace and k[1] == entry.name]:
                del self._misses[key]

    def _expire(self) -> None:
        cutoff = time.monotonic() - self.deleted_ttl_s
        with self._lock:
            for uid in [u for u, e in self._by_uid.items() if e.deleted_at is not None and e.deleted_at < cutoff]:
                entry = self._by_uid.pop(uid)
                if self._by_name.get((entry.namespace, entry.name)) == uid:
                    del self._by_name[(entry.namespace, entry.name)]

    # ------------------------------------------------------------------------------------------- loop signal

    def _notify(self) -> None:
        """Wakes `wait_for` callers on the event loop (called from the watch thread)."""
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(self._wake)
        except RuntimeError:  # the loop is closed: nobody is waiting
            pass

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        if changed is not None:
            changed.set()

    async def _wait_change(self, deadline: float) -> bool:
        """Until the cache changes (True) or the deadline passes (False)."""
        remaining = deadline - time.monotonic()
        if remaining <= 0 or self._changed is None:
            return False
        return await wait_at_most(self._changed.wait(), remaining)
