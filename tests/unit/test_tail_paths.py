"""Which pod and container a log file belongs to (collectors/tail/paths.py), and the identity its lines get
(collectors/tail/records.py)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from collectors.enrich import Enricher, Pod
from collectors.tail.model import TailedLine
from collectors.tail.paths import (
    PodContainer,
    is_argo_helper,
    natural_key,
    parse_containers_path,
    parse_log_path,
    parse_pods_path,
    source_of,
)
from collectors.tail.records import identity_for
from domain.model import Identity, sorted_labels

UID = "0b6c5e34-7d1e-4c1a-9a57-0f1a2b3c4d5e"
CID = "3f" * 32


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (
            f"/var/log/pods/dp-acme-prod_cart-7d9f-x2x_{UID}/main/0.log",
            ("dp-acme-prod", "cart-7d9f-x2x", UID, "main", 0),
        ),
        (
            f"/var/log/pods/kube-system_coredns-1.2_{UID}/coredns/12.log",
            ("kube-system", "coredns-1.2", UID, "coredns", 12),
        ),
        # kubelet-rotated copies keep their identity
        (f"/var/log/pods/ns_pod_{UID}/c/0.log.20260101-100001", ("ns", "pod", UID, "c", 0)),
        (f"/var/log/pods/ns_pod_{UID}/c/3.log.20260101-100001.gz", ("ns", "pod", UID, "c", 3)),
        # any prefix: the layout is read from the trailing components
        (f"/tmp/x/var/log/pods/ns_pod_{UID}/c/1.log", ("ns", "pod", UID, "c", 1)),
    ],
)
def test_pods_paths(path: str, expected: tuple[str, str, str, str, int]) -> None:
    assert parse_pods_path(path) == PodContainer(*expected)
    assert parse_log_path(path) == PodContainer(*expected)


@pytest.mark.parametrize(
    "path",
    [
        "/var/log/pods/ns_pod/c/0.log",  # no uid
        f"/var/log/pods/ns_pod_{UID}/c/current.log",
        f"/var/log/pods/ns_pod_{UID}/0.log",  # no container directory
        "/var/log/syslog",
    ],
)
def test_other_paths_are_not_pod_logs(path: str) -> None:
    assert parse_log_path(path) is None


def test_containers_path_names_pod_namespace_container_and_has_no_uid() -> None:
    path = f"/var/log/containers/cart-7d9f-x2x_dp-acme-prod_istio-proxy-{CID}.log"
    assert parse_containers_path(path) == PodContainer("dp-acme-prod", "cart-7d9f-x2x", "", "istio-proxy")
    assert parse_log_path(path) == PodContainer("dp-acme-prod", "cart-7d9f-x2x", "", "istio-proxy")
    assert parse_containers_path("/var/log/containers/a_b_c-shortid.log") is None


def test_source_of_follows_a_containers_symlink_to_get_the_uid(tmp_path: Path) -> None:
    target = tmp_path / f"var/log/pods/dp-acme-prod_cart-1_{UID}/main/2.log"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"")
    link = tmp_path / f"var/log/containers/cart-1_dp-acme-prod_main-{CID}.log"
    link.parent.mkdir(parents=True)
    os.symlink(target, link)
    assert source_of(str(link)) == PodContainer("dp-acme-prod", "cart-1", UID, "main", 2)
    dangling = tmp_path / f"var/log/containers/gone-1_ns_c-{CID}.log"
    os.symlink(tmp_path / "nowhere", dangling)
    assert source_of(str(dangling)) == PodContainer("ns", "gone-1", "", "c")


def test_argo_helpers_are_only_excluded_in_workflow_namespaces() -> None:
    assert is_argo_helper(PodContainer("workflows-acme", "build-1-step-123", UID, "wait"))
    assert is_argo_helper(PodContainer("workflows-acme", "build-1-step-123", UID, "init"))
    assert not is_argo_helper(PodContainer("workflows-acme", "build-1-step-123", UID, "main"))
    assert not is_argo_helper(PodContainer("dp-acme-prod", "cart-1", UID, "wait"))


def test_natural_order_puts_restarts_in_sequence() -> None:
    paths = [f"/p/ns_pod_{UID}/c/{n}.log" for n in (10, 2, 0, 1)]
    assert [os.path.basename(p) for p in sorted(paths, key=natural_key)] == ["0.log", "1.log", "2.log", "10.log"]


def test_identity_from_path_and_pod_labels() -> None:
    source = PodContainer("dp-acme-prod", "cart-1", UID, "main", 0)
    labels = {
        "openchoreo.dev/namespace": "acme",
        "openchoreo.dev/component": "cart",
        "openchoreo.dev/component-uid": "c-uid",
        "k8s.pod.name": "someone-else",  # the location wins
    }
    identity = identity_for(source, labels)
    assert identity == Identity(
        namespace="acme",
        component="cart",
        component_uid="c-uid",
        pod="cart-1",
        pod_namespace="dp-acme-prod",
        container="main",
    )
    line = TailedLine(5, "stderr", 'level=error msg="boom"', source, 0)

    class Known:
        def lookup(self, namespace: str, pod: str, uid: str = "") -> Pod | None:
            return Pod(labels) if (namespace, pod) == ("dp-acme-prod", "cart-1") else None

    record = Enricher(Known()).record(line)
    assert (record.ts_ns, record.body, record.level, record.stream, record.identity) == (
        5,
        'level=error msg="boom"',
        "ERROR",
        "stderr",
        dataclasses.replace(identity, labels=sorted_labels(labels)),  # the Enricher adds the pod's labels
    )
    assert (line.namespace, line.pod, line.pod_uid, line.container) == ("dp-acme-prod", "cart-1", UID, "main")


def test_workflow_pods_get_their_namespace_from_the_kubernetes_namespace() -> None:
    source = PodContainer("workflows-acme", "build-42-compile-1234", UID, "main")
    identity = identity_for(
        source, {"workflows.argoproj.io/workflow": "build-42", "workflows.argoproj.io/node-name": "build-42.compile"}
    )
    assert (identity.namespace, identity.workflow_run, identity.task) == ("acme", "build-42", "build-42.compile")


def test_enriching_a_batch_gives_the_records_of_enriching_each_line() -> None:
    """`records` (the pipeline's batch path) takes shortcuts; the records must not show it."""
    cart, other = PodContainer("dp-acme-prod", "cart-1", UID, "main", 0), PodContainer("ns", "unknown-0", UID, "c")
    bodies = [
        "plain",
        "level=warn trace_id=0AF7651916CD43DD8448EB211C80319C span_id=b7ad6b7169203331",
        '{"level":"error","traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331"}',
        "TRACE_ID: 0af7651916cd43dd8448eb211c80319c",
        "a race condition, no ids",
        "{not json",
        "",
    ]
    lines = [TailedLine(n, "stdout", body, cart if n % 3 else other, n) for n, body in enumerate(bodies * 3)]

    class Known:
        def lookup(self, namespace: str, pod: str, uid: str = "") -> Pod | None:
            return Pod({"openchoreo.dev/component": "cart"}) if pod == "cart-1" else None

    enricher = Enricher(Known())
    assert enricher.records(lines) == [enricher.record(line) for line in lines]
    assert any(record.trace_id for record in enricher.records(lines))
