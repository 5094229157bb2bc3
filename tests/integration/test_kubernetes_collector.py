"""The collector's Kubernetes side against a real kube-apiserver (and etcd) on loopback (devservers/kube.py).

Pods are created with `spec.nodeName` set and OpenChoreo's labels; they never run (there is no kubelet), but the
API stores, lists and watches them exactly as on a cluster. Each test uses its own namespace and node name, so
tests do not see each other's objects. Timeouts are guards against hanging only: every wait is for a condition.

- the pod cache (collectors/kubernetes/pods.py) gives tailed lines their identity, follows label changes, and
  for a pod its watch has not delivered asks the API directly, or falls back to what the log path says;
- the events receiver (collectors/kubernetes/events.py) delivers each occurrence of an event exactly once with
  the involved object's identity, resumes from its checkpoint after a restart, lists again after 410 Gone;
- both watches survive the server closing their connections, and refusing new ones for a while;
- `observer collect` wires it all: a tailed line and an event land in the embedded backend with the pod's scope.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest
from kubernetes import client as k8s

from collectors.enrich import Enricher
from collectors.kubernetes.events import EventsReceiver
from collectors.kubernetes.pods import PodCache
from collectors.tail.model import TailedLine
from collectors.tail.paths import PodContainer
from devservers.kube import KubeServer, TcpRelay
from devservers.sample import COMPONENTS, ENVIRONMENTS, NS, PROJECT, PROJECT_UID
from domain.model import (
    LABEL_COMPONENT,
    LABEL_COMPONENT_UID,
    ComponentScope,
    EventRecord,
    EventsQuery,
    Identity,
    LogRecord,
    LogsQuery,
    MetricPoint,
    SpanRecord,
    TimeRange,
    sorted_labels,
)
from domain.timeutil import parse_rfc3339

pytestmark = pytest.mark.integration

GUARD = 60.0  # seconds; only ever a bound on waiting for something that should happen
T0 = "2026-11-20T10:00:00Z"

LABELS = {
    "openchoreo.dev/namespace": NS,
    "openchoreo.dev/project": PROJECT,
    "openchoreo.dev/project-uid": PROJECT_UID,
    "openchoreo.dev/component": "cart",
    "openchoreo.dev/component-uid": COMPONENTS["cart"],
    "openchoreo.dev/environment": "prod",
    "openchoreo.dev/environment-uid": ENVIRONMENTS["prod"],
}


IMAGE = "registry.invalid/app:1"


def placed(identity: Identity, node: str, labels: dict[str, str] | None = None) -> Identity:
    """A tailed line's identity also says where it ran: the pod's node, the container's image, its labels
    (no pod IP: without a kubelet no pod here ever gets one)."""
    return dataclasses.replace(
        identity, node=node, image=IMAGE, labels=sorted_labels(LABELS if labels is None else labels)
    )


def expected(pod: str, pod_namespace: str, container: str = "", component: str = "cart") -> Identity:
    return Identity(
        namespace=NS,
        project=PROJECT,
        project_uid=PROJECT_UID,
        component=component,
        component_uid=COMPONENTS[component],
        environment="prod",
        environment_uid=ENVIRONMENTS["prod"],
        pod=pod,
        pod_namespace=pod_namespace,
        container=container,
    )


# ----------------------------------------------------------------------------------------------- helpers


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def api(kube_api: KubeServer) -> Iterator[k8s.ApiClient]:
    client = kube_api.api_client()
    yield client
    client.close()


@pytest.fixture
def core(api: k8s.ApiClient) -> k8s.CoreV1Api:
    return k8s.CoreV1Api(api)


@pytest.fixture
def namespace(core: k8s.CoreV1Api) -> str:
    """A fresh data-plane-like namespace; its own labels name the OpenChoreo namespace and project only."""
    name = unique("dp-acme-prod")
    labels = {
        "openchoreo.dev/namespace": NS, "openchoreo.dev/project": PROJECT, "openchoreo.dev/project-uid": PROJECT_UID,
    }  # fmt: skip
    core.create_namespace({"metadata": {"name": name, "labels": labels}})
    return name


def make_pod(core: k8s.CoreV1Api, namespace: str, name: str, node: str, labels: dict[str, str] | None = None) -> str:
    """Creates a pod bound to `node`; returns its UID."""
    pod = core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": name, "labels": LABELS if labels is None else labels},
            "spec": {"nodeName": node, "containers": [{"name": "main", "image": "registry.invalid/app:1"}]},
        },
    )
    return pod.metadata.uid


def line(namespace: str, pod: str, uid: str, body: str = "hello") -> TailedLine:
    return TailedLine(ts_ns=1, stream="stdout", body=body, source=PodContainer(namespace, pod, uid, "main"), offset=0)


async def enrich(enricher: Enricher, lines: Sequence[TailedLine]) -> list[LogRecord]:
    """What the tail pipeline does with a batch."""
    await enricher.prepare(lines)
    return enricher.records(lines)


async def eventually(condition: Callable[[], Any], what: str, timeout: float = GUARD) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
    return value


def make_event(
    core: k8s.CoreV1Api,
    namespace: str,
    name: str,
    involved: dict[str, str],
    reason: str = "Started",
    message: str = "",
    type_: str = "Normal",
) -> k8s.CoreV1Event:
    return core.create_namespaced_event(
        namespace,
        {
            "metadata": {"name": name},
            "involvedObject": {"namespace": namespace, **involved},
            "reason": reason,
            "message": message or f"{reason} {name}",
            "type": type_,
            "count": 1,
            "firstTimestamp": T0,
            "lastTimestamp": T0,
            "source": {"component": "kubelet", "host": "node"},
        },
    )


def bump(core: k8s.CoreV1Api, namespace: str, name: str, last: str) -> None:
    """The same thing happened again: what the kubelet's event recorder does to an existing event."""
    event = core.read_namespaced_event(name, namespace)
    core.patch_namespaced_event(name, namespace, {"count": (event.count or 1) + 1, "lastTimestamp": last})


def pod_ref(name: str, uid: str) -> dict[str, str]:
    return {"kind": "Pod", "apiVersion": "v1", "name": name, "uid": uid}


class RecordingSink:
    """A TelemetrySink that keeps every write, so a duplicate delivery shows (a real backend would dedupe some)."""

    def __init__(self) -> None:
        self.events: list[EventRecord] = []
        self.batch_ids: list[str] = []

    async def write(
        self,
        *,
        batch_id: str,
        logs: Sequence[LogRecord] = (),
        events: Sequence[EventRecord] = (),
        spans: Sequence[SpanRecord] = (),
        metrics: Sequence[MetricPoint] = (),
    ) -> None:
        self.batch_ids.append(batch_id)
        self.events.extend(events)

    def messages(self) -> list[str]:
        return [event.message for event in self.events]


@asynccontextmanager
async def running(receiver: EventsReceiver) -> AsyncIterator[EventsReceiver]:
    task = asyncio.create_task(receiver.run())
    try:
        yield receiver
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def sentinel(core: k8s.CoreV1Api, sink: RecordingSink, namespace: str, involved: dict[str, str]) -> None:
    """Creates one more event and waits for it: a watch delivers in order, so whatever else it was going to
    deliver before (duplicates included) has arrived by then."""
    name = unique("sentinel")
    make_event(core, namespace, name, involved, reason="Sentinel", message=name)
    await eventually(lambda: name in sink.messages(), f"the sentinel event {name}")
    assert sink.messages()[-1] == name, "nothing arrives after the sentinel"


# ----------------------------------------------------------------------------------------------- pod cache


async def test_the_pod_cache_gives_tailed_lines_their_pods_identity(api, core, namespace):
    node = unique("node")
    before = make_pod(core, namespace, "cart-before", node)
    make_pod(core, namespace, "cart-elsewhere", unique("other-node"))
    async with PodCache(api, node, wait_s=GUARD) as cache:
        assert await cache.wait_synced(GUARD)
        after = make_pod(core, namespace, "cart-after", node)  # the watch, not the list, delivers this one
        enricher = Enricher(cache)
        records = await enrich(enricher, [line(namespace, "cart-before", before), line(namespace, "cart-after", after)])

        assert [r.identity for r in records] == [
            placed(expected("cart-before", namespace, "main"), node),
            placed(expected("cart-after", namespace, "main"), node),
        ]
        assert cache.fetched == 0, "both came from the list and the watch, not from direct GETs"
        assert cache.lookup(namespace, "cart-elsewhere") is None, "only this node's pods are watched"
        # A `/var/log/containers` path has no UID: the name finds the pod.
        assert cache.lookup(namespace, "cart-before") == cache.lookup(namespace, "cart-before", before)


async def test_a_label_change_reaches_the_lines_after_it(api, core, namespace):
    node = unique("node")
    uid = make_pod(core, namespace, "cart-0", node)
    async with PodCache(api, node, wait_s=GUARD) as cache:
        enricher = Enricher(cache)
        [first] = await enrich(enricher, [line(namespace, "cart-0", uid, "before")])
        assert first.identity == placed(expected("cart-0", namespace, "main"), node)

        relabelled = {**LABELS, LABEL_COMPONENT: "payments", LABEL_COMPONENT_UID: COMPONENTS["payments"]}
        core.patch_namespaced_pod("cart-0", namespace, {"metadata": {"labels": relabelled}})
        await eventually(
            lambda: (pod := cache.lookup(namespace, "cart-0", uid)) and pod.labels[LABEL_COMPONENT] == "payments",
            "the watch to deliver the new labels",
        )
        [second] = await enrich(enricher, [line(namespace, "cart-0", uid, "after")])

        assert second.identity == placed(expected("cart-0", namespace, "main", component="payments"), node, relabelled)
        assert first.identity.component == "cart", "records already made keep the identity they were made with"


async def test_a_pod_the_watch_has_not_delivered_is_fetched_else_the_path_is_used(api, core, namespace):
    """The brief wait is for the watch; then a GET; then the line goes on with its path's identity."""
    node = unique("node")
    elsewhere_node = unique("other-node")
    elsewhere = make_pod(core, namespace, "cart-moved", elsewhere_node)  # never in this node's watch
    async with PodCache(api, node, wait_s=0.2, miss_ttl_s=GUARD) as cache:
        enricher = Enricher(cache)
        missing_uid = str(uuid.uuid4())
        records = await enrich(
            enricher,
            [
                line(namespace, "cart-moved", elsewhere),
                line(namespace, "cart-gone", missing_uid),  # deleted long ago; its log files remain
                line(namespace, "cart-moved", str(uuid.uuid4())),  # same name, another pod: not this one's labels
            ],
        )
        assert [r.identity for r in records] == [
            placed(expected("cart-moved", namespace, "main"), elsewhere_node),
            Identity(pod="cart-gone", pod_namespace=namespace, container="main"),
            Identity(pod="cart-moved", pod_namespace=namespace, container="main"),
        ]
        assert cache.fetched == 3

        # The misses are remembered for a while: later batches from those pods neither wait nor ask again.
        again = await enrich(enricher, [line(namespace, "cart-gone", missing_uid)])
        assert again[0].identity == records[1].identity
        assert cache.fetched == 3


# ----------------------------------------------------------------------------------------------- events


async def test_events_arrive_once_each_with_the_involved_objects_identity(api, core, namespace, tmp_path):
    node = unique("node")
    on_node = make_pod(core, namespace, "cart-0", node)
    off_node = make_pod(core, namespace, "cart-1", unique("other-node"))
    apps = k8s.AppsV1Api(api)
    deployment = apps.create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": "cart", "labels": LABELS},
            "spec": {
                "selector": {"matchLabels": {"app": "cart"}},
                "template": {
                    "metadata": {"labels": {"app": "cart"}},
                    "spec": {"containers": [{"name": "main", "image": "registry.invalid/app:1"}]},
                },
            },
        },
    )
    sink = RecordingSink()
    async with (
        PodCache(api, node) as pods,
        running(EventsReceiver(api, sink, tmp_path / "events.json", namespaces=[namespace], pods=pods)) as receiver,
    ):
        make_event(core, namespace, "cart-0.started", pod_ref("cart-0", on_node), "Started", "started container main")
        make_event(core, namespace, "cart-1.backoff", pod_ref("cart-1", off_node), "BackOff", "back-off", "Warning")
        make_event(
            core, namespace, "cart.scaled",
            {"kind": "Deployment", "apiVersion": "apps/v1", "name": "cart", "uid": deployment.metadata.uid},
            "ScalingReplicaSet", "scaled up to 1",
        )  # fmt: skip
        make_event(core, namespace, "cfg.odd", {"kind": "ConfigMap", "apiVersion": "v1", "name": "cfg"}, "Odd", "odd")
        await eventually(lambda: len(sink.events) >= 4, "four events")
        bump(core, namespace, "cart-1.backoff", "2026-11-20T10:05:00Z")  # count 2: a second occurrence
        await sentinel(core, sink, namespace, pod_ref("cart-0", on_node))

        by_message = {event.message: event for event in sink.events}
        assert sink.messages()[:-1] == [
            "started container main", "back-off", "scaled up to 1", "odd", "back-off",
        ]  # fmt: skip
        started = by_message["started container main"]
        assert started.identity == expected("cart-0", namespace)
        assert (started.type, started.reason, started.object_kind, started.object_name, started.object_namespace) == (
            "Normal", "Started", "Pod", "cart-0", namespace,
        )  # fmt: skip
        assert started.ts_ns == parse_rfc3339(T0)
        first, second = [event for event in sink.events if event.message == "back-off"]
        assert first.identity == second.identity == expected("cart-1", namespace)  # a GET: not on this node
        assert (first.type, second.ts_ns - first.ts_ns) == ("Warning", 300 * 10**9)
        # A Deployment carries the labels itself; a ConfigMap is looked up no further than its namespace.
        assert by_message["scaled up to 1"].identity == expected("", namespace)
        assert by_message["odd"].identity == Identity(
            namespace=NS, project=PROJECT, project_uid=PROJECT_UID, pod_namespace=namespace
        )
        assert receiver.duplicates == 0
        assert len(set(sink.batch_ids)) == len(sink.batch_ids)


async def test_a_restarted_receiver_resumes_from_its_checkpoint(api, core, namespace, kube_api, tmp_path):
    uid = make_pod(core, namespace, "cart-0", unique("node"))
    pod = pod_ref("cart-0", uid)
    checkpoint = tmp_path / "events.json"

    sink = RecordingSink()
    async with running(EventsReceiver(api, sink, checkpoint, namespaces=[namespace])) as first:
        make_event(core, namespace, "e1", pod, message="one")
        await sentinel(core, sink, namespace, pod)
    assert sink.messages()[:-1] == ["one"]
    assert first.reflectors[namespace].relists == 1  # no checkpoint yet: it listed

    # While no receiver runs: a new event, and the old one happens again.
    make_event(core, namespace, "e2", pod, message="two")
    bump(core, namespace, "e1", "2026-11-20T10:01:00Z")

    sink = RecordingSink()
    async with running(EventsReceiver(api, sink, checkpoint, namespaces=[namespace])) as second:
        await sentinel(core, sink, namespace, pod)
    assert sink.messages()[:-1] == ["two", "one"], "what happened while it was down, once, and nothing older"
    assert sink.events[1].ts_ns - sink.events[0].ts_ns == 60 * 10**9
    assert second.reflectors[namespace].relists == 0, "it watched from the checkpoint"

    # Down again while etcd compacts its history: the checkpoint's version is gone (410), so it lists, and
    # delivers only the listed events newer than the checkpoint.
    make_event(core, namespace, "e3", pod, message="three")
    # One more write, so that the compaction removes e3's own revision too: a watch from the checkpoint needs
    # every revision after it, and now the first of them is gone.
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "later"}})
    kube_api.compact()
    sink = RecordingSink()
    async with running(EventsReceiver(api, sink, checkpoint, namespaces=[namespace])) as third:
        await sentinel(core, sink, namespace, pod)
    assert sink.messages()[:-1] == ["three"]
    assert third.reflectors[namespace].relists == 1


async def test_watches_survive_the_server_closing_their_connections(kube_api, core, namespace, tmp_path):
    node = unique("node")
    uid = make_pod(core, namespace, "cart-0", node)
    pod = pod_ref("cart-0", uid)
    with TcpRelay(kube_api.address) as relay:
        relayed = kube_api.api_client(relay.port)
        sink = RecordingSink()
        try:
            async with (
                PodCache(relayed, node) as cache,
                running(EventsReceiver(relayed, sink, tmp_path / "events.json", namespaces=[namespace])) as receiver,
            ):
                assert await cache.wait_synced(GUARD)
                make_event(core, namespace, "e1", pod, message="one")
                await eventually(lambda: sink.messages() == ["one"], "the first event")
                watches = cache.reflector.watches, receiver.reflectors[namespace].watches

                assert relay.cut() > 0  # the server "closes" both watch connections mid-stream
                make_event(core, namespace, "e2", pod, message="two")
                core.patch_namespaced_pod("cart-0", namespace, {"metadata": {"labels": {"after": "cut"}}})
                await eventually(lambda: "two" in sink.messages(), "an event after the cut")
                await eventually(
                    lambda: (p := cache.lookup(namespace, "cart-0", uid)) and p.labels.get("after") == "cut",
                    "a label change after the cut",
                )
                assert cache.reflector.watches > watches[0] and receiver.reflectors[namespace].watches > watches[1]

                # The server is away for a while: connections are refused, the watches back off and retry.
                relay.refusing = True
                failures = cache.reflector.failures, receiver.reflectors[namespace].failures
                relay.cut()
                make_event(core, namespace, "e3", pod, message="three")
                await eventually(
                    lambda: (
                        cache.reflector.failures > failures[0] and receiver.reflectors[namespace].failures > failures[1]
                    ),
                    "the watches to find the server gone",
                )
                relay.refusing = False
                await sentinel(core, sink, namespace, pod)

                assert sink.messages()[:-1] == ["one", "two", "three"]
                assert cache.reflector.relists == 1 and receiver.reflectors[namespace].relists == 1, (
                    "each resumed from its resourceVersion rather than listing again"
                )
        finally:
            relayed.close()


# ----------------------------------------------------------------------------------------------- end to end


async def test_observer_collect_enriches_lines_and_stores_events_from_the_api(kube_api, core, namespace, tmp_path):
    """The real `observer collect` process: tail + pod cache + events receiver -> buffer -> embedded backend."""
    from adapters.embedded.backend import EmbeddedBackend
    from devservers.collector import collector

    node = unique("node")
    uid = make_pod(core, namespace, "cart-0", node)
    logs = tmp_path / "pods" / f"{namespace}_cart-0_{uid}" / "main"
    logs.mkdir(parents=True)
    document = {
        "receivers": {
            "tail": {
                "paths": [str(tmp_path / "pods/*/*/*.log")],
                "checkpoint": str(tmp_path / "tail.db"),
                "refresh_s": 0.2,
            },
            "kubernetes_events": {"namespaces": [namespace], "checkpoint": str(tmp_path / "events.json")},
        },
        "metadata": {"kubernetes": {"node_name": node, "kubeconfig": str(kube_api.kubeconfig)}},
        "buffer": {"directory": str(tmp_path / "buffer")},
        "exporter": {"data_dir": str(tmp_path / "data")},
    }
    with collector(tmp_path, document):
        (logs / "0.log").write_text(f"{T0.replace('Z', '.000000001Z')} stdout F level=info cart is up\n")
        make_event(core, namespace, "cart-0.started", pod_ref("cart-0", uid), "Started", "started container main")

        backend = EmbeddedBackend(tmp_path / "data")
        try:
            scope = ComponentScope(namespace=NS, component_uid=COMPONENTS["cart"])
            window = TimeRange(0, 4_000_000_000 * 10**9)

            async def stored() -> bool:
                events = await backend.query_events(EventsQuery(scope, window))
                lines = await backend.query_logs(LogsQuery(scope, window))
                return bool(events.items and lines.items)

            deadline = time.monotonic() + GUARD
            while not await stored():
                assert time.monotonic() < deadline, f"nothing stored; see {tmp_path / 'collector.log'}"
                await asyncio.sleep(0.2)
            [event] = (await backend.query_events(EventsQuery(scope, window))).items
            [log_line] = (await backend.query_logs(LogsQuery(scope, window))).items
        finally:
            backend.close()

    assert event.message == "started container main" and event.reason == "Started"
    assert event.identity == expected("cart-0", namespace)
    assert log_line.body == "level=info cart is up"
    assert log_line.identity == placed(expected("cart-0", namespace, "main"), node)
