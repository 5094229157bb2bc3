"""The Kubernetes events receiver: core/v1 Events from the API, as `EventRecord`s, into a `TelemetrySink`.

One list+watch per configured namespace, or one cluster-wide (collectors/kubernetes/watch.py: resumes by
resourceVersion, lists again on 410 Gone, reconnects with backoff). The watch threads hand what they see to the
event loop through a bounded queue (a full queue blocks the watch: backpressure reaches the API server as a slow
reader); the loop takes everything waiting, up to `max_batch`, looks up identities, writes one batch and then
advances the checkpoint.

**Occurrences.** An Event object is created once and then updated in place each time the same thing happens again
(`count` goes up, `lastTimestamp` moves). Each creation and each update is an occurrence, stored as its own
record, keyed by (event UID, resourceVersion); deletions (the API server expires events after an hour) are not.
A key already delivered is never delivered again, whatever order lists and watches deliver it in.

**Restarts.** After each batch the receiver writes, per watched stream, the newest resourceVersion it has fully
delivered to a small JSON checkpoint file (atomically: written beside it, synced, renamed). A restarted receiver
watches from there, so it gets exactly what happened since. If that version is gone (410: etcd compacted it, as it
does every few minutes on a busy cluster), it lists and delivers only the listed events newer than the checkpoint
(resourceVersions are etcd revisions, integers, on every API server: Kubernetes calls them opaque, but this is
the one comparison that keeps a relist from re-delivering up to an hour of events; a version that is not an
integer, or a checkpoint from a newer history than the list (another cluster, a wiped etcd), delivers
everything listed). Without a checkpoint (the first start, or its file was lost) everything listed is
delivered: the last hour or so of events.

The checkpoint advances only after the sink accepted the batch, so delivery is at least once: a crash between
the two redelivers that batch on restart. Batch ids are a hash of the batch's keys, so a batch re-sent whole is
a no-op for sinks that dedupe by batch id, and OpenSearch derives document ids from content anyway.

**Identity.** An event's scope is that of the object it is about: for a Pod, its labels and annotations, from
the node's pod cache when there is one and it knows the pod, else a GET of the pod; for the workload kinds that
carry OpenChoreo's labels too (Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob, Service), a GET of
the object; failing those (deleted, another kind), the labels of the object's namespace. Lookups are cached for
`metadata_ttl_s`, and a UID mismatch (a re-created object of the same name) counts as not found. All through
`domain.identity.identity_from_attributes`, as the OTLP mapping does with `k8s.object.label.*`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import queue
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from adapters.protocols import TelemetrySink
from collectors.durable import replace_file
from collectors.kubernetes.pods import PodCache
from collectors.kubernetes.watch import Reflector, read_json, resource_version
from domain.identity import K8S_NAMESPACE, K8S_POD, identity_from_attributes
from domain.model import EventRecord
from domain.timeutil import now_ns, parse_rfc3339

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 30.0
#: Keys of delivered occurrences remembered, to drop repeats a relist or a resumed watch may bring.
SEEN_KEYS = 100_000


# ----------------------------------------------------------------------------------------------- records


def event_time_ns(event: Mapping[str, Any]) -> int:
    """When this occurrence happened: the newest of the times the event carries (a series' last observation,
    `lastTimestamp`, `eventTime`, `firstTimestamp`), else its creation; now if none parses."""
    series = event.get("series") or {}
    metadata = event.get("metadata") or {}
    for text in (
        series.get("lastObservedTime"),
        event.get("lastTimestamp"),
        event.get("eventTime"),
        event.get("firstTimestamp"),
        metadata.get("creationTimestamp"),
    ):
        if text:
            try:
                return parse_rfc3339(str(text))
            except ValueError:
                continue
    return now_ns()


def event_record(event: Mapping[str, Any], object_metadata: Mapping[str, str]) -> EventRecord:
    """One occurrence of a core/v1 Event (a JSON dict as the API sends it) as an `EventRecord`, its identity
    from the involved object's labels and annotations (`object_metadata`) and where the object lives."""
    involved = event.get("involvedObject") or {}
    metadata = event.get("metadata") or {}
    kind = str(involved.get("kind") or "")
    name = str(involved.get("name") or "")
    namespace = str(involved.get("namespace") or metadata.get("namespace") or "")
    attributes: dict[str, str] = dict(object_metadata)
    attributes[K8S_NAMESPACE] = namespace
    if kind == "Pod":
        attributes[K8S_POD] = name
    return EventRecord(
        ts_ns=event_time_ns(event),
        message=str(event.get("message") or event.get("note") or ""),
        identity=identity_from_attributes(attributes),
        type=str(event.get("type") or ""),
        reason=str(event.get("reason") or ""),
        object_kind=kind,
        object_name=name,
        object_namespace=namespace,
    )


def occurrence_key(event: Mapping[str, Any]) -> tuple[str, str]:
    metadata = event.get("metadata") or {}
    return (str(metadata.get("uid") or ""), str(metadata.get("resourceVersion") or ""))


# ----------------------------------------------------------------------------------------------- identities


class ObjectMetadata:
    """Labels and annotations of the objects events are about (see the module docstring), cached briefly.
    Blocking: called on a worker thread."""

    def __init__(self, api: k8s.ApiClient, pods: PodCache | None = None, ttl_s: float = 30.0) -> None:
        core, apps, batch = k8s.CoreV1Api(api), k8s.AppsV1Api(api), k8s.BatchV1Api(api)
        self.pods = pods
        self.ttl_s = ttl_s
        self.gets = 0  # API requests made (for tests and curiosity)
        self._read_namespace = _raw(core.read_namespace)
        #: (API group, kind) -> the client's read method for it.
        self._readers: dict[tuple[str, str], Callable[..., Any]] = {
            ("", "Pod"): _raw(core.read_namespaced_pod),
            ("", "Service"): _raw(core.read_namespaced_service),
            ("apps", "Deployment"): _raw(apps.read_namespaced_deployment),
            ("apps", "ReplicaSet"): _raw(apps.read_namespaced_replica_set),
            ("apps", "StatefulSet"): _raw(apps.read_namespaced_stateful_set),
            ("apps", "DaemonSet"): _raw(apps.read_namespaced_daemon_set),
            ("batch", "Job"): _raw(batch.read_namespaced_job),
            ("batch", "CronJob"): _raw(batch.read_namespaced_cron_job),
        }
        self._cache: OrderedDict[tuple[str, ...], tuple[float, dict[str, Any] | None]] = OrderedDict()

    def of(self, involved: Mapping[str, Any], event_namespace: str) -> dict[str, str]:
        """The involved object's labels and annotations; else its namespace's labels; else nothing."""
        kind = str(involved.get("kind") or "")
        name = str(involved.get("name") or "")
        namespace = str(involved.get("namespace") or event_namespace or "")
        uid = str(involved.get("uid") or "")
        api_version = str(involved.get("apiVersion") or "")
        group = api_version.split("/", 1)[0] if "/" in api_version else ""
        if kind == "Pod" and self.pods is not None:
            pod = self.pods.lookup(namespace, name, uid)
            if pod is not None:
                return {**pod.labels, **pod.annotations}
        reader = self._readers.get((group, kind))
        if reader is not None and namespace and name:
            obj = self._get(("object", group, kind, namespace, name), lambda: reader(name, namespace))
            if obj is not None and (not uid or (obj.get("metadata") or {}).get("uid") == uid):
                metadata = obj.get("metadata") or {}
                return {**(metadata.get("labels") or {}), **(metadata.get("annotations") or {})}
        if namespace:
            ns = self._get(("namespace", namespace), lambda: self._read_namespace(namespace))
            if ns is not None:
                return dict((ns.get("metadata") or {}).get("labels") or {})
        return {}

    def _get(self, key: tuple[str, ...], read: Callable[[], Any]) -> dict[str, Any] | None:
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        self.gets += 1
        obj: dict[str, Any] | None = None
        try:
            obj = read_json(read())
        except ApiException as exc:
            if exc.status not in (403, 404):
                log.warning("events: GET %s failed (%s); the event gets a less specific identity", key, exc.status)
                return None  # not cached: the next event asks again
        except Exception as exc:  # the API is unreachable: not cached either
            log.warning("events: GET %s failed (%s); the event gets a less specific identity", key, exc)
            return None
        self._cache[key] = (now + self.ttl_s, obj)
        self._cache.move_to_end(key)
        while len(self._cache) > 10_000:
            self._cache.popitem(last=False)
        return obj


def _raw(read: Callable[..., Any]) -> Callable[..., Any]:
    """A generated `read_*` method that returns the raw response (parsed by `_get`), not a model."""
    return lambda *args: read(*args, _preload_content=False, _request_timeout=10)


# ----------------------------------------------------------------------------------------------- checkpoint


class Checkpoint:
    """The newest fully delivered resourceVersion per watched stream ("" = cluster-wide, else a namespace)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def load(self) -> dict[str, str]:
        try:
            document = orjson.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, orjson.JSONDecodeError) as exc:
            log.warning("events checkpoint %s not usable (%s); listing from scratch", self.path, exc)
            return {}
        versions = document.get("resource_versions") if isinstance(document, dict) else None
        return {str(k): str(v) for k, v in versions.items()} if isinstance(versions, dict) else {}

    def save(self, versions: Mapping[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(self.path, orjson.dumps({"resource_versions": dict(versions)}))


# ----------------------------------------------------------------------------------------------- receiver


@dataclass(slots=True)
class _Item:
    stream: str
    event: dict[str, Any] | None  # an occurrence to deliver, or None
    advance_to: str  # once this item (and all before it) is delivered, the stream's checkpoint may say this


def _newer(version: str, floor: int | None) -> bool:
    if floor is None:
        return True
    try:
        return int(version) > floor
    except ValueError:
        return True


class _Stream:
    """The watch handler of one stream; runs on its watch thread."""

    def __init__(self, receiver: EventsReceiver, stream: str) -> None:
        self.receiver = receiver
        self.stream = stream

    def relisted(self, items: list[dict[str, Any]], version: str) -> None:
        floor = self.receiver.floor(self.stream, version)
        fresh = [item for item in items if _newer(resource_version(item), floor)]
        fresh.sort(key=lambda item: _sort_key(resource_version(item)))
        for item in fresh:
            self.receiver.hand_over(_Item(self.stream, item, ""))
        self.receiver.hand_over(_Item(self.stream, None, version))

    def changed(self, kind: str, obj: dict[str, Any]) -> None:
        event = obj if kind in ("ADDED", "MODIFIED") else None
        self.receiver.hand_over(_Item(self.stream, event, resource_version(obj)))

    def bookmark(self, version: str) -> None:
        self.receiver.hand_over(_Item(self.stream, None, version))


def _sort_key(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (0, version)


class EventsReceiver:
    """Watches core/v1 Events and writes them to `sink` (see the module docstring).

    receiver = EventsReceiver(api, BufferSink(buffer, telemetry, "kubernetes_events"), checkpoint_path)
    await receiver.run()   # until cancelled
    """

    def __init__(
        self,
        api: k8s.ApiClient,
        sink: TelemetrySink,
        checkpoint: Path | str,
        *,
        namespaces: Sequence[str] = (),
        pods: PodCache | None = None,
        max_batch: int = 500,
        queue_size: int = 10_000,
        metadata_ttl_s: float = 30.0,
    ) -> None:
        self.api = api
        self.sink = sink
        self.checkpoint = Checkpoint(checkpoint)
        self.namespaces = list(dict.fromkeys(namespaces)) or [""]
        self.metadata = ObjectMetadata(api, pods, metadata_ttl_s)
        self.max_batch = max_batch
        self.delivered = 0  # occurrences written to the sink
        self.duplicates = 0  # occurrences dropped as already delivered
        self.versions: dict[str, str] = {}  # stream -> checkpointed resourceVersion
        self.reflectors: dict[str, Reflector] = {}
        self._queue: queue.Queue[_Item] = queue.Queue(queue_size)
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._stopping = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None
        self._versions_lock = threading.Lock()
        self._saving: asyncio.Future[None] | None = None

    async def run(self) -> None:
        """Watches until cancelled; then stops the watch threads."""
        self._loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        self._stopping.clear()
        self.versions = await asyncio.to_thread(self.checkpoint.load)
        core = k8s.CoreV1Api(self.api)
        for stream in self.namespaces:
            if stream:
                reflector = Reflector(
                    f"events@{stream}", core.list_namespaced_event, _Stream(self, stream),
                    resource_version=self.versions.get(stream, ""), namespace=stream,
                )  # fmt: skip
            else:
                reflector = Reflector(
                    "events@*", core.list_event_for_all_namespaces, _Stream(self, stream),
                    resource_version=self.versions.get(stream, ""),
                )  # fmt: skip
            self.reflectors[stream] = reflector
            reflector.start()
        log.info("kubernetes events: watching %s", ", ".join(n or "all namespaces" for n in self.namespaces))
        try:
            await self._consume()
        finally:
            self._stopping.set()
            if self._saving is not None:  # a checkpoint of delivered events: let it land
                await asyncio.gather(self._saving, return_exceptions=True)
            await asyncio.gather(*(asyncio.to_thread(r.stop) for r in self.reflectors.values()))

    # ------------------------------------------------------------------------------------------- watch side

    def floor(self, stream: str, listed_version: str) -> int | None:
        """The resourceVersion below which a relist must not deliver again (module docstring), or None."""
        with self._versions_lock:
            checkpointed = self.versions.get(stream, "")
        try:
            floor, listed = int(checkpointed), int(listed_version)
        except ValueError:
            return None
        return floor if floor <= listed else None

    def hand_over(self, item: _Item) -> None:
        """From a watch thread: queue the item, waiting while the queue is full (unless stopping)."""
        while not self._stopping.is_set():
            try:
                self._queue.put(item, timeout=0.5)
                break
            except queue.Full:
                continue
        loop, wakeup = self._loop, self._wakeup
        if loop is not None and wakeup is not None:
            try:
                loop.call_soon_threadsafe(wakeup.set)
            except RuntimeError:  # the loop is closed
                pass

    # ------------------------------------------------------------------------------------------- loop side

    async def _consume(self) -> None:
        assert self._wakeup is not None
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while items := self._drain():
                await self._deliver(items)

    def _drain(self) -> list[_Item]:
        items: list[_Item] = []
        occurrences = 0
        while occurrences < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            items.append(item)
            occurrences += item.event is not None
        return items

    async def _deliver(self, items: list[_Item]) -> None:
        fresh: list[dict[str, Any]] = []
        keys: dict[tuple[str, str], None] = {}  # in delivery order (the batch id hashes them in it)
        for item in items:
            if item.event is None:
                continue
            key = occurrence_key(item.event)
            if key in self._seen or key in keys:
                self.duplicates += 1
                continue
            fresh.append(item.event)
            keys[key] = None
        if fresh:
            records = await asyncio.to_thread(self._records, fresh)
            batch_id = (
                "k8s-events-"
                + hashlib.blake2b("\x1f".join(f"{uid}/{rv}" for uid, rv in keys).encode(), digest_size=16).hexdigest()
            )
            await self._write(batch_id, records)
            self.delivered += len(records)
            for key in keys:
                self._seen[key] = None
            while len(self._seen) > SEEN_KEYS:
                self._seen.popitem(last=False)
        advanced = {item.stream: item.advance_to for item in items if item.advance_to}
        if advanced:
            with self._versions_lock:
                self.versions.update(advanced)
                versions = dict(self.versions)
            # Shielded: a receiver stopped meanwhile still records what it delivered (`run` waits for it).
            self._saving = asyncio.ensure_future(asyncio.to_thread(self.checkpoint.save, versions))
            await asyncio.shield(self._saving)

    def _records(self, events: list[dict[str, Any]]) -> list[EventRecord]:
        out = []
        for event in events:
            namespace = str((event.get("metadata") or {}).get("namespace") or "")
            out.append(event_record(event, self.metadata.of(event.get("involvedObject") or {}, namespace)))
        return out

    async def _write(self, batch_id: str, records: list[EventRecord]) -> None:
        """Until the sink takes the batch: a full buffer or an outage only delays it."""
        attempt = 0
        while True:
            try:
                await self.sink.write(batch_id=batch_id, events=records)
                return
            except Exception as exc:
                attempt += 1
                retry_after = getattr(exc, "retry_after_s", None)
                delay = retry_after or min(MAX_BACKOFF_S, 0.2 * 2 ** min(attempt, 8)) * random.uniform(0.5, 1.0)
                if attempt == 1 or attempt % 10 == 0:
                    log.warning("events: writing %d events failed (%s); retrying", len(records), exc)
                await asyncio.sleep(delay)
