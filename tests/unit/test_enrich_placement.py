"""Placement on every tailed line (collectors/enrich.py): the collector's cluster, and from the pod's metadata
(a YAML file, or the pod object the Kubernetes API sends: collectors/kubernetes/pods.py `pod_of`) its node, IP,
the container's image and all its labels, bounded. A pod the source does not know keeps namespace, pod and
container (and the cluster)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from collectors.codec import Batch
from collectors.enrich import Enricher, FileMetadata, Pod, placed
from collectors.kubernetes.pods import pod_of
from collectors.pipeline import ClusterStamp
from collectors.tail.model import TailedLine
from collectors.tail.paths import PodContainer
from devservers.sample import CART_PROD_LABELS
from domain.identity import MAX_LABEL_VALUE, MAX_LABELS
from domain.model import Identity, LogRecord

CART = PodContainer("dp-acme-prod", "cart-7d9f-abcde", "uid-1", "main")
SIDECAR = PodContainer("dp-acme-prod", "cart-7d9f-abcde", "uid-1", "envoy")

POD_LABELS = {**CART_PROD_LABELS, "app.kubernetes.io/name": "cart", "pod-template-hash": "7d9f"}
POD_OBJECT = {
    "metadata": {
        "name": "cart-7d9f-abcde",
        "namespace": "dp-acme-prod",
        "uid": "uid-1",
        "labels": POD_LABELS,
        "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-12-01"},
    },
    "spec": {
        "nodeName": "node-a",
        "initContainers": [{"name": "migrate", "image": "ghcr.io/acme/migrate:3"}],
        "containers": [
            {"name": "main", "image": "ghcr.io/acme/cart:1.4"},
            {"name": "envoy", "image": "envoyproxy/envoy@sha256:abcd"},
        ],
    },
    "status": {"podIP": "10.244.1.17"},
}


def line(source: PodContainer, body: str = "hello") -> TailedLine:
    return TailedLine(1, "stdout", body, source, 0)


class Static:
    def __init__(self, pods: dict[tuple[str, str], Pod]) -> None:
        self.pods = pods

    def lookup(self, namespace: str, pod: str, uid: str = "") -> Pod | None:
        return self.pods.get((namespace, pod))


def test_a_pod_objects_node_ip_images_and_labels_are_on_its_lines():
    pod = pod_of(POD_OBJECT)
    assert (pod.node, pod.pod_ip) == ("node-a", "10.244.1.17")
    assert pod.images == {
        "migrate": "ghcr.io/acme/migrate:3",
        "main": "ghcr.io/acme/cart:1.4",
        "envoy": "envoyproxy/envoy@sha256:abcd",
    }
    enricher = Enricher(Static({("dp-acme-prod", "cart-7d9f-abcde"): pod}), cluster="prod-eu-1")
    main, envoy = enricher.records([line(CART), line(SIDECAR)])
    assert main.identity.component == "cart"  # the scope, as before
    assert (main.identity.cluster, main.identity.node, main.identity.pod_ip) == ("prod-eu-1", "node-a", "10.244.1.17")
    assert main.identity.image == "ghcr.io/acme/cart:1.4"
    assert envoy.identity.image == "envoyproxy/envoy@sha256:abcd"
    # every label, sorted by key; annotations are not labels
    assert main.identity.labels == tuple(sorted(POD_LABELS.items()))
    assert (main.identity.pod, main.identity.pod_namespace, main.identity.container) == (
        CART.pod,
        CART.namespace,
        "main",
    )


def test_a_pod_object_without_placement_gives_empty_fields():
    pod = pod_of({"metadata": {"name": "x", "namespace": "y", "uid": "u"}})
    assert pod == Pod()


def test_placement_from_the_metadata_file(tmp_path: Path):
    path = tmp_path / "pods.yaml"
    path.write_text(
        "pods:\n"
        "  - namespace: dp-acme-prod\n"
        "    name: cart-7d9f-abcde\n"
        "    labels: {app: cart, tier: web}\n"
        "    node: node-b\n"
        "    podIP: 10.0.0.7\n"
        "    images: {main: 'registry:5000/cart:2'}\n"
        "  - namespace: dp-acme-prod\n"
        "    name: bare\n"
    )
    enricher = Enricher(FileMetadata(path), cluster="c1")
    identity = enricher.identity(CART)
    assert (identity.cluster, identity.node, identity.pod_ip, identity.image) == (
        "c1",
        "node-b",
        "10.0.0.7",
        "registry:5000/cart:2",
    )
    assert identity.labels == (("app", "cart"), ("tier", "web"))
    bare = enricher.identity(PodContainer("dp-acme-prod", "bare", "", "main"))
    assert (bare.cluster, bare.node, bare.image, bare.labels) == ("c1", "", "", ())


def test_an_unknown_pod_keeps_namespace_pod_and_container_and_gets_the_cluster():
    identity = Enricher(Static({}), cluster="prod-eu-1").identity(CART)
    assert identity == Identity(pod=CART.pod, pod_namespace=CART.namespace, container="main", cluster="prod-eu-1")
    assert Enricher(None).identity(CART) == Identity(pod=CART.pod, pod_namespace=CART.namespace, container="main")


def test_a_changed_pod_ip_reaches_the_lines_after_it():
    pods = {("dp-acme-prod", "cart-7d9f-abcde"): Pod({"app": "cart"}, node="node-a")}
    enricher = Enricher(Static(pods))
    assert enricher.identity(CART).pod_ip == ""
    pods[("dp-acme-prod", "cart-7d9f-abcde")] = Pod({"app": "cart"}, node="node-a", pod_ip="10.1.1.1")
    asyncio.run(enricher.prepare([line(CART)]))
    assert enricher.identity(CART).pod_ip == "10.1.1.1"


def test_labels_and_placement_are_bounded():
    labels = {f"key-{n:03d}": "v" for n in range(MAX_LABELS + 10)}
    labels["long-value"] = "x" * (MAX_LABEL_VALUE + 1)
    labels["k" * 400] = "long key"
    identity = placed(Identity(), "c" * 1000, Pod(labels, node="n" * 1000, images={"main": "i" * 1000}), "main")
    assert len(identity.labels) == MAX_LABELS
    assert identity.labels[0] == ("key-000", "v")
    assert all(key != "long-value" and len(key) < 400 for key, _ in identity.labels)
    assert max(len(identity.cluster), len(identity.node), len(identity.image)) <= 512


def test_the_cluster_stamp_fills_only_identities_without_a_cluster():
    own, forwarded = Identity(pod="a"), Identity(pod="b", cluster="other")
    batch = Batch("b", logs=[LogRecord(1, "x", own), LogRecord(2, "y", own), LogRecord(3, "z", forwarded)])
    ClusterStamp("here").batch(batch)
    assert [record.identity.cluster for record in batch.logs] == ["here", "here", "other"]
    assert batch.logs[0].identity is batch.logs[1].identity  # one replaced identity per distinct identity
