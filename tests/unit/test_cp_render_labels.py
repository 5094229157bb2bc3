"""Identity and tracking labels: the exact keys (the collector maps the identity ones, the reconciler lists by the
tracking ones), legal values, and names that stay within Kubernetes' limits without colliding."""

from __future__ import annotations

import re

import pytest

from controlplane.render.errors import RenderError
from controlplane.render.labels import (
    Identity,
    RenderedRelease,
    dataplane_namespace,
    is_tracked,
    sanitize_label_value,
    sanitize_name,
)
from domain.identity import identity_from_attributes
from tests.unit.test_cp_render_inputs import binding, environment, project, sample

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def _identity() -> Identity:
    component = sample("components-with-alert-rules.yaml", "Component", "frontend")
    return Identity.of(component, environment(), project("gcp-microservice-demo"))


def test_identity_label_keys_are_pinned() -> None:
    assert _identity().labels() == {
        "openchoreo.dev/namespace": "default",
        "openchoreo.dev/project": "gcp-microservice-demo",
        "openchoreo.dev/project-uid": "6f1c2a3e-0000-4000-8000-000000000001",
        "openchoreo.dev/component": "frontend",
        "openchoreo.dev/component-uid": "6f1c2a3e-0000-4000-8000-000000000003",
        "openchoreo.dev/environment": "development",
        "openchoreo.dev/environment-uid": "6f1c2a3e-0000-4000-8000-000000000002",
    }


def test_identity_labels_are_what_the_collector_maps() -> None:
    """domain/identity.py turns pod labels into a record's scope: every scope field is filled from ours."""
    identity = _identity()
    scope = identity_from_attributes(identity.labels())
    assert (scope.namespace, scope.project, scope.project_uid) == (
        "default",
        "gcp-microservice-demo",
        identity.project_uid,
    )
    assert (scope.component, scope.component_uid) == ("frontend", identity.component_uid)
    assert (scope.environment, scope.environment_uid) == ("development", identity.environment_uid)


def test_the_selector_is_the_two_uids() -> None:
    assert _identity().selector() == {
        "openchoreo.dev/component-uid": "6f1c2a3e-0000-4000-8000-000000000003",
        "openchoreo.dev/environment-uid": "6f1c2a3e-0000-4000-8000-000000000002",
    }


def test_tracking_label_keys_are_pinned() -> None:
    release = RenderedRelease.of(binding("frontend", "gcp-microservice-demo"), "dataplane")
    labels = release.labels("deployment")
    assert labels == {
        "openchoreo.dev/managed-by": "renderedrelease-controller",
        "openchoreo.dev/rendered-release-resource-id": "deployment",
        "openchoreo.dev/rendered-release-uid": release.uid,
        "openchoreo.dev/rendered-release-name": "frontend-development",
        "openchoreo.dev/rendered-release-namespace": "default",
    }
    assert (
        release.selector()
        == f"openchoreo.dev/managed-by=renderedrelease-controller,openchoreo.dev/rendered-release-uid={release.uid}"
    )


def test_the_two_releases_of_a_binding_differ_and_are_stable() -> None:
    """Both planes may be one cluster: the data-plane release must never list the observability one's objects."""
    doc = binding("frontend", "gcp-microservice-demo")
    data = RenderedRelease.of(doc, "dataplane")
    obs = RenderedRelease.of(doc, "observabilityplane")
    assert data.uid != obs.uid and data.name != obs.name
    assert obs.name == "frontend-development-observability"
    assert RenderedRelease.of(doc, "dataplane") == data


def test_is_tracked() -> None:
    release = RenderedRelease.of(binding("frontend", "gcp-microservice-demo"), "dataplane")
    assert is_tracked({"metadata": {"labels": release.labels("service")}})
    assert not is_tracked({"metadata": {"labels": {"openchoreo.dev/created-by": "renderedrelease-controller"}}})
    assert not is_tracked({"metadata": {}})


def test_a_missing_uid_is_a_render_error_naming_the_document() -> None:
    component = sample("components-with-alert-rules.yaml", "Component", "frontend")
    del component["metadata"]["uid"]
    with pytest.raises(RenderError) as caught:
        Identity.of(component, environment(), project("p"))
    assert caught.value.field == "component.metadata.uid"


@pytest.mark.parametrize("value", ["frontend", "a", "dp-default-shop-development", "x" * 63])
def test_legal_names_are_kept(value: str) -> None:
    assert sanitize_name(value) == value


@pytest.mark.parametrize("value", ["x" * 64, "Front_End", "-lead", "a..b", "é", "", "x" * 300])
def test_illegal_names_become_legal_and_hashed(value: str) -> None:
    name = sanitize_name(value)
    assert DNS_LABEL.match(name) and len(name) <= 63
    assert name != value


def test_hashed_names_do_not_collide() -> None:
    long_a, long_b = "a" * 70 + "x", "a" * 70 + "y"
    assert sanitize_name(long_a) != sanitize_name(long_b)
    assert sanitize_name("Front_End") != sanitize_name("front-end")
    assert sanitize_name(long_a) == sanitize_name(long_a)
    assert sanitize_name(long_a).startswith("a" * 54 + "-")


@pytest.mark.parametrize("value", ["v1.2_3", "x" * 63, ""])
def test_legal_label_values_are_kept(value: str) -> None:
    assert sanitize_label_value(value) == value


@pytest.mark.parametrize("value", ["x" * 64, "has space", "_lead", "trail.", "ü-ber"])
def test_illegal_label_values_become_legal(value: str) -> None:
    out = sanitize_label_value(value)
    assert LABEL_VALUE.match(out) and len(out) <= 63 and out != value


def test_dataplane_namespace() -> None:
    assert dataplane_namespace("default", "shop", "development") == "dp-default-shop-development"
    long = dataplane_namespace("n" * 30, "p" * 30, "e" * 30)
    assert len(long) <= 63 and DNS_LABEL.match(long) and long.startswith("dp-nnn")
    assert long != dataplane_namespace("n" * 30, "p" * 30, "e" * 29 + "f")
