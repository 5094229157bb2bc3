"""Placement over OTLP both ways (domain/identity.py): `k8s.cluster.name`, `k8s.node.name`, `k8s.pod.ip`,
`container.image.name` + `container.image.tag` and `k8s.pod.label.<key>` become the identity's cluster, node,
pod_ip, image and labels, and `identity_attributes` writes them back, so collector -> OTLP -> observer keeps
them. A plain OpenTelemetry application's scope is unaffected."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collectors.otlp.encode import encode_batch
from collectors.otlp.mapping import map_logs
from devservers.sample import identity
from domain.identity import (
    MAX_LABELS,
    identity_attributes,
    identity_from_attributes,
    plain_otel_identity,
    split_image,
)
from domain.model import Identity, LogRecord


def placed_cart() -> Identity:
    return dataclasses.replace(
        identity("cart"),
        cluster="prod-eu-1",
        node="node-a",
        pod_ip="10.244.1.17",
        image="ghcr.io/acme/cart:1.4",
        labels=(("app.kubernetes.io/name", "cart"), ("openchoreo.dev/component", "cart"), ("tier", "")),
    )


def test_placement_is_written_as_semantic_convention_attributes():
    attributes = identity_attributes(placed_cart())
    assert attributes["k8s.cluster.name"] == "prod-eu-1"
    assert attributes["k8s.node.name"] == "node-a"
    assert attributes["k8s.pod.ip"] == "10.244.1.17"
    assert (attributes["container.image.name"], attributes["container.image.tag"]) == ("ghcr.io/acme/cart", "1.4")
    assert attributes["k8s.pod.label.app.kubernetes.io/name"] == "cart"
    assert attributes["k8s.pod.label.tier"] == ""  # an empty label value is a label too


def test_placement_survives_the_otlp_round_trip():
    cart = placed_cart()
    (request,) = encode_batch(logs=[LogRecord(1, "hello", cart)])
    (record,) = map_logs(request.message()).logs  # type: ignore[arg-type]
    assert record.identity == cart


@pytest.mark.parametrize(
    ("image", "parts"),
    [
        ("ghcr.io/acme/cart:1.4", ("ghcr.io/acme/cart", "1.4")),
        ("registry:5000/cart", ("registry:5000/cart", "")),
        ("registry:5000/cart:2", ("registry:5000/cart", "2")),
        ("cart@sha256:abcd", ("cart@sha256:abcd", "")),
        ("cart", ("cart", "")),
    ],
)
def test_an_image_splits_into_name_and_tag_and_back(image: str, parts: tuple[str, str]):
    assert split_image(image) == parts
    assert identity_from_attributes(identity_attributes(Identity(pod="p", image=image))).image == image


def test_a_plain_otel_applications_scope_is_unaffected_and_gains_its_placement():
    attributes = {"service.name": "checkout", "service.namespace": "shop"}
    plain = identity_from_attributes(attributes)
    assert plain == plain_otel_identity(attributes)
    placed = identity_from_attributes({**attributes, "k8s.node.name": "n1", "k8s.pod.label.app": "checkout"})
    assert (placed.namespace, placed.component, placed.component_uid) == ("shop", "checkout", plain.component_uid)
    assert (placed.node, placed.labels) == ("n1", (("app", "checkout"),))


def test_pod_labels_from_otlp_are_bounded():
    attributes = {f"k8s.pod.label.l{n:03d}": "v" for n in range(MAX_LABELS * 2)}
    attributes["k8s.pod.label.huge"] = "x" * 10_000
    found = identity_from_attributes({"k8s.pod.name": "p", **attributes})
    assert len(found.labels) == MAX_LABELS
    assert ("huge", "x" * 10_000) not in found.labels


names = st.text(st.characters(codec="utf-8"), min_size=1, max_size=12)


@given(
    st.builds(
        Identity,
        pod=names,
        pod_namespace=names,
        container=names,
        cluster=names,
        node=names,
        pod_ip=names,
        labels=st.dictionaries(names, st.text(max_size=8), max_size=5).map(lambda d: tuple(sorted(d.items()))),
    )
)
def test_any_placement_round_trips_through_the_attributes(placed: Identity):
    assert identity_from_attributes(identity_attributes(placed), plain_otel=False) == placed
