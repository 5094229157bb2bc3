"""The data-plane renderer: upstream's http-service sample renders to the golden objects; binding overrides,
Undeploy, endpoints, files and long names each do what the module says."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from controlplane.render.dataplane import render_release
from controlplane.render.errors import RenderError
from controlplane.render.labels import is_tracked
from tests.unit.test_cp_render_inputs import environment, golden, project, sample

IDENTITY_KEYS = {
    "openchoreo.dev/namespace",
    "openchoreo.dev/project",
    "openchoreo.dev/project-uid",
    "openchoreo.dev/component",
    "openchoreo.dev/component-uid",
    "openchoreo.dev/environment",
    "openchoreo.dev/environment-uid",
}


def _inputs() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    return (
        sample("http-service-component.yaml", "Component"),
        sample("http-service-component.yaml", "Workload"),
        sample("http-service-component.yaml", "ReleaseBinding"),
    )


def _render(component: dict[str, Any], workload: dict[str, Any], binding: dict[str, Any]) -> list[dict[str, Any]]:
    return render_release(component, workload, binding, environment(), project("default"))


def _by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [obj for obj in objects if obj["kind"] == kind]
    assert len(found) == 1, kind
    return found[0]


def test_the_http_service_sample_renders_the_golden_objects() -> None:
    assert _render(*_inputs()) == golden("dataplane-http-service")


def test_rendering_is_pure() -> None:
    component, workload, binding = _inputs()
    before = copy.deepcopy((component, workload, binding))
    assert _render(component, workload, binding) == _render(component, workload, binding)
    assert (component, workload, binding) == before


def test_every_object_and_the_pod_template_carry_the_identity_labels() -> None:
    objects = _render(*_inputs())
    for obj in objects[1:]:
        assert IDENTITY_KEYS <= set(obj["metadata"]["labels"]), obj["kind"]
        assert is_tracked(obj)
    pod_labels = _by_kind(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert set(pod_labels) == IDENTITY_KEYS
    assert pod_labels["openchoreo.dev/component"] == "demo-app-http-service"


def test_the_shared_namespace_is_ensured_not_owned() -> None:
    """Every component of the project in that environment renders it: no release may prune it."""
    namespace = _render(*_inputs())[0]
    assert namespace["kind"] == "Namespace" and namespace["metadata"]["name"] == "dp-default-default-development"
    assert not is_tracked(namespace)
    assert "openchoreo.dev/component" not in namespace["metadata"]["labels"]
    assert namespace["metadata"]["labels"]["openchoreo.dev/created-by"] == "renderedrelease-controller"


def test_undeploy_renders_nothing() -> None:
    component, workload, binding = _inputs()
    binding["spec"]["state"] = "Undeploy"
    assert _render(component, workload, binding) == []


def test_replicas_default_to_one_and_resources_are_optional() -> None:
    component, workload, binding = _inputs()
    del binding["spec"]["componentTypeEnvironmentConfigs"]
    deployment = _by_kind(_render(component, workload, binding), "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert "resources" not in deployment["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize("replicas", [-1, "2", True])
def test_bad_replicas_are_a_render_error(replicas: Any) -> None:
    component, workload, binding = _inputs()
    binding["spec"]["componentTypeEnvironmentConfigs"]["replicas"] = replicas
    with pytest.raises(RenderError) as caught:
        _render(component, workload, binding)
    assert caught.value.field == "binding.spec.componentTypeEnvironmentConfigs.replicas"


def test_no_endpoints_no_service_and_no_ports() -> None:
    component, workload, binding = _inputs()
    del workload["spec"]["endpoints"]
    objects = _render(component, workload, binding)
    assert [obj["kind"] for obj in objects] == ["Namespace", "Deployment"]
    assert "ports" not in objects[1]["spec"]["template"]["spec"]["containers"][0]


def test_endpoints_become_ports_with_target_port_and_protocol() -> None:
    component, workload, binding = _inputs()
    workload["spec"]["endpoints"] = {
        "http": {"type": "HTTP", "port": 80, "targetPort": 8080},
        "metrics_UDP": {"type": "UDP", "port": 9999},
    }
    objects = _render(component, workload, binding)
    service = _by_kind(objects, "Service")["spec"]["ports"]
    container = _by_kind(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["ports"]
    assert service[0] == {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}
    assert service[1]["protocol"] == "UDP" and service[1]["targetPort"] == 9999
    assert re.match(r"^ep-[0-9a-f]{8}$", service[1]["name"])  # not an IANA service name: hashed
    assert [p["containerPort"] for p in container] == [8080, 9999]
    assert [p["name"] for p in container] == [p["name"] for p in service]


def test_workload_overrides_win_by_key_and_secret_refs_pass_through() -> None:
    component, workload, binding = _inputs()
    workload["spec"]["container"]["env"] = [
        {"key": "LOG_LEVEL", "value": "info"},
        {"key": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
    ]
    binding["spec"]["workloadOverrides"] = {
        "container": {"env": [{"key": "LOG_LEVEL", "value": "debug"}, {"key": "NEW", "value": "1"}]}
    }
    container = _by_kind(_render(component, workload, binding), "Deployment")["spec"]["template"]["spec"]["containers"][
        0
    ]
    assert container["env"] == [
        {"name": "LOG_LEVEL", "value": "debug"},
        {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
        {"name": "NEW", "value": "1"},
    ]
    assert container["args"] == ["--port", "9090"] and "command" not in container


def test_files_become_a_configmap_and_secret_mounts() -> None:
    component, workload, binding = _inputs()
    workload["spec"]["container"]["files"] = [
        {"key": "app.yaml", "mountPath": "/etc/app", "value": "a: 1"},
        {"key": "tls.key", "mountPath": "/etc/tls", "valueFrom": {"secretKeyRef": {"name": "tls", "key": "key"}}},
    ]
    binding["spec"]["workloadOverrides"] = {
        "container": {"files": [{"key": "app.yaml", "mountPath": "/etc/app", "value": "a: 2"}]}
    }
    objects = _render(component, workload, binding)
    configmap = _by_kind(objects, "ConfigMap")
    assert configmap["metadata"]["name"] == "demo-app-http-service-files"
    assert configmap["data"] == {"app.yaml": "a: 2"}
    assert is_tracked(configmap)
    pod = _by_kind(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["volumes"] == [
        {"name": "files", "configMap": {"name": "demo-app-http-service-files"}},
        {"name": "secret-tls", "secret": {"secretName": "tls"}},
    ]
    assert pod["containers"][0]["volumeMounts"] == [
        {"name": "files", "mountPath": "/etc/app/app.yaml", "subPath": "app.yaml", "readOnly": True},
        {"name": "secret-tls", "mountPath": "/etc/tls/tls.key", "subPath": "key", "readOnly": True},
    ]


def test_long_names_are_hashed_within_63() -> None:
    component, workload, binding = _inputs()
    component["metadata"]["name"] = "c" * 63
    for document in (workload, binding):
        document["spec"]["owner"] = {"componentName": "c" * 63, "projectName": "p" * 63}
    objects = render_release(component, workload, binding, environment(), project("p" * 63))
    namespace = objects[0]["metadata"]["name"]
    assert len(namespace) <= 63 and namespace.startswith("dp-default-ppp")
    for obj in objects:
        assert len(obj["metadata"]["name"]) <= 63
        assert all(len(value) <= 63 for value in obj["metadata"]["labels"].values())
        assert obj["metadata"].get("namespace", namespace) == namespace


def test_a_workload_without_image_is_a_render_error() -> None:
    component, workload, binding = _inputs()
    workload["spec"]["container"]["image"] = ""
    with pytest.raises(RenderError, match="image") as caught:
        _render(component, workload, binding)
    assert caught.value.field == "workload.spec.container.image"


@pytest.mark.parametrize(
    ("document", "field", "value"),
    [
        ("workload", "componentName", "other"),
        ("workload", "projectName", "other"),
        ("binding", "componentName", "other"),
        ("binding", "projectName", "other"),
    ],
)
def test_documents_of_another_component_are_refused(document: str, field: str, value: str) -> None:
    component, workload, binding = _inputs()
    target = workload if document == "workload" else binding
    target["spec"]["owner"][field] = value
    with pytest.raises(RenderError) as caught:
        _render(component, workload, binding)
    assert caught.value.field == f"{document}.spec.owner.{field}"


def test_a_binding_of_another_environment_is_refused() -> None:
    component, workload, binding = _inputs()
    binding["spec"]["environment"] = "production"
    with pytest.raises(RenderError) as caught:
        _render(component, workload, binding)
    assert caught.value.field == "binding.spec.environment"
