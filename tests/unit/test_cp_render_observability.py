"""Alert rules from the built-in `observability-alert-rule` ClusterTrait: upstream's sample components render to
the golden CRs (valid against the ObservabilityAlertRule CRD), the trait context means what upstream's does
(channels from environmentConfigs else the default channel, includeWhen on the data plane's observability plane,
the validations), and every failure is a RenderError naming the trait instance and field."""

from __future__ import annotations

import copy
import hashlib
from importlib import resources
from typing import Any

import jsonschema
import pytest
import yaml

from controlplane.render.errors import RenderError
from controlplane.render.labels import RenderedRelease, is_tracked
from controlplane.render.observability import (
    builtin_traits,
    default_channel_name,
    observability_namespace,
    render_alert_rules,
)
from controlplane.schema import to_json_schema
from tests.unit.test_cp_render_inputs import GOLDEN, binding, dataplane, environment, golden, project, sample

DEFAULT_CHANNEL = "email-notification-channel-development"
PROJECT = "gcp-microservice-demo"
# sha256 of ../shared/reference/openchoreo/samples/alert-rule-trait.yaml: the built-in trait is that sample.
TRAIT_SHA256 = "5890ebb89f8f7c89a1508172fa379483afbf2af32463ff92931723aa3e20c6eb"

ENV_CONFIGS: dict[str, dict[str, Any]] = {
    "frontend": {},
    "recommendation": {
        "recommendation-high-cpu-alert": {
            "actions": {
                "notifications": {"channels": ["webhook-notification-channel-development"]},
                "incident": {"enabled": True, "triggerAiRca": True},
            }
        }
    },
    "cart": {"cartservice-high-memory-alert": {"enabled": False}},
}


def _render(name: str, env_configs: dict[str, Any] | None = None, **kwargs: Any) -> list[dict[str, Any]]:
    component = sample("components-with-alert-rules.yaml", "Component", name)
    configs = ENV_CONFIGS[name] if env_configs is None else env_configs
    doc = binding(name, PROJECT, traitEnvironmentConfigs=configs)
    kwargs.setdefault("dataplane", dataplane())
    kwargs.setdefault("default_channel", DEFAULT_CHANNEL)
    return render_alert_rules(component, doc, environment(), project(PROJECT), **kwargs)


def _alert_rule_validator() -> jsonschema.Draft202012Validator:
    crd = yaml.safe_load((GOLDEN / "openchoreo.dev_observabilityalertrules.yaml").read_text(encoding="utf-8"))
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return jsonschema.Draft202012Validator(to_json_schema(schema))


def test_the_builtin_trait_is_upstreams_sample() -> None:
    text = resources.files("controlplane").joinpath("traits", "observability-alert-rule.yaml").read_bytes()
    assert hashlib.sha256(text).hexdigest() == TRAIT_SHA256
    assert set(builtin_traits()) == {"observability-alert-rule"}


def test_the_sample_components_render_the_golden_alert_rules() -> None:
    rendered = [rule for name in ("frontend", "recommendation", "cart") for rule in _render(name)]
    assert rendered == golden("alert-rules-samples")


def test_the_rendered_rules_are_valid_observability_alert_rules() -> None:
    validator = _alert_rule_validator()
    rules = golden("alert-rules-samples")
    for rule in rules:
        assert [error.message for error in validator.iter_errors(rule)] == []
    broken = copy.deepcopy(rules[0])
    broken["spec"]["actions"]["notifications"]["channels"] = []
    assert list(validator.iter_errors(broken))  # the check has teeth


def test_name_spec_name_and_the_required_uid_labels() -> None:
    (rule,) = _render("frontend")
    assert rule["metadata"]["name"] == "frontend-development-frontend-rpc-unavailable-error-log-alert"
    assert rule["metadata"]["namespace"] == "default"
    assert rule["spec"]["name"] == "frontend-rpc-unavailable-error-log-alert"
    labels = rule["metadata"]["labels"]
    assert (
        labels["openchoreo.dev/component-uid"]
        == sample("components-with-alert-rules.yaml", "Component")["metadata"]["uid"]
    )
    assert labels["openchoreo.dev/project-uid"] == project(PROJECT)["metadata"]["uid"]
    assert labels["openchoreo.dev/environment-uid"] == environment()["metadata"]["uid"]
    assert labels["openchoreo.dev/component"] == "frontend"  # the observer reads the name labels too
    assert is_tracked(rule)
    release = RenderedRelease.of(binding("frontend", PROJECT), "observabilityplane")
    assert labels["openchoreo.dev/rendered-release-uid"] == release.uid


def test_channels_come_from_environment_configs_else_the_default_channel() -> None:
    (own,) = _render("recommendation")
    assert own["spec"]["actions"]["notifications"]["channels"] == ["webhook-notification-channel-development"]
    (fallback,) = _render("frontend")
    assert fallback["spec"]["actions"]["notifications"]["channels"] == [DEFAULT_CHANNEL]
    (empty_list,) = _render(
        "frontend", {"frontend-rpc-unavailable-error-log-alert": {"actions": {"notifications": {}}}}
    )
    assert empty_list["spec"]["actions"]["notifications"]["channels"] == [DEFAULT_CHANNEL]


def test_no_channel_at_all_fails_the_trait_validation() -> None:
    with pytest.raises(RenderError, match="A notification channel is mandatory") as caught:
        _render("frontend", default_channel="")
    assert caught.value.trait == "frontend-rpc-unavailable-error-log-alert"
    assert caught.value.field == "validations[0]"


def test_ai_rca_without_incident_fails_the_trait_validation() -> None:
    configs = {"recommendation-high-cpu-alert": {"actions": {"incident": {"triggerAiRca": True}}}}
    with pytest.raises(RenderError, match="incident.enabled must be true") as caught:
        _render("recommendation", configs)
    assert caught.value.field == "validations[1]"


def test_enabled_defaults_to_true_and_follows_environment_configs() -> None:
    assert _render("frontend")[0]["spec"]["enabled"] is True
    assert _render("cart")[0]["spec"]["enabled"] is False


def test_parameter_defaults_are_applied() -> None:
    component = sample("components-with-alert-rules.yaml", "Component", "frontend")
    component["spec"]["traits"][0]["parameters"] = {"description": "d", "source": {"type": "log"}, "condition": {}}
    doc = binding("frontend", PROJECT)
    (rule,) = render_alert_rules(
        component, doc, environment(), project(PROJECT), dataplane=dataplane(), default_channel="c"
    )
    assert rule["spec"]["severity"] == "warning"
    assert rule["spec"]["condition"] == {"window": "5m", "interval": "1m", "operator": "gt", "threshold": 10}
    assert rule["spec"]["source"] == {"type": "log", "query": "", "metric": ""}


def test_bad_parameters_are_a_render_error_naming_the_field() -> None:
    component = sample("components-with-alert-rules.yaml", "Component", "frontend")
    component["spec"]["traits"][0]["parameters"]["severity"] = "urgent"
    with pytest.raises(RenderError) as caught:
        render_alert_rules(
            component,
            binding("frontend", PROJECT),
            environment(),
            project(PROJECT),
            dataplane=dataplane(),
            default_channel="c",
        )
    assert (caught.value.trait, caught.value.field) == (
        "frontend-rpc-unavailable-error-log-alert",
        "parameters.severity",
    )


def test_no_observability_plane_ref_renders_nothing() -> None:
    """includeWhen: ${has(dataplane.observabilityPlaneRef)}"""
    assert _render("frontend", dataplane=dataplane(with_observability=False)) == []
    assert _render("frontend", dataplane=None) == []


def test_undeploy_and_components_without_the_trait_render_nothing() -> None:
    component = sample("components-with-alert-rules.yaml", "Component", "frontend")
    doc = binding("frontend", PROJECT, state="Undeploy")
    assert (
        render_alert_rules(component, doc, environment(), project(PROJECT), dataplane=dataplane(), default_channel="c")
        == []
    )
    plain = sample("http-service-component.yaml", "Component")
    assert (
        render_alert_rules(
            plain, binding("demo-app-http-service", "default"), environment(), project("default"), dataplane=dataplane()
        )
        == []
    )


def _catalog_with(field: str, expression: str) -> dict[str, Any]:
    catalog = builtin_traits()
    spec = catalog["observability-alert-rule"]["spec"]["creates"][0]["template"]["spec"]
    spec[field] = expression
    return catalog


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("${parameters.nosuchfield}", "nosuchfield"),
        ("${parameters.severity +}", "does not parse"),
        ("${1 / 0}", "divide"),
        ("${parameters.severity", "unclosed"),
    ],
)
def test_a_bad_cel_expression_is_a_render_error_naming_trait_and_field(expression: str, reason: str) -> None:
    catalog = _catalog_with("description", expression)
    with pytest.raises(RenderError) as caught:
        _render("frontend", trait_catalog=catalog)
    error = caught.value
    assert error.trait == "frontend-rpc-unavailable-error-log-alert"
    assert error.field == "creates[0].template.spec.description"
    assert reason in str(error).lower()
    assert "trait frontend-rpc-unavailable-error-log-alert" in str(error)


def test_a_literal_includewhen_is_taken_as_written() -> None:
    catalog = builtin_traits()
    catalog["observability-alert-rule"]["spec"]["creates"][0]["includeWhen"] = False
    assert _render("frontend", trait_catalog=catalog) == []
    catalog["observability-alert-rule"]["spec"]["creates"][0]["includeWhen"] = True
    assert len(_render("frontend", trait_catalog=catalog, dataplane=None)) == 1


def test_includewhen_must_be_boolean() -> None:
    catalog = builtin_traits()
    catalog["observability-alert-rule"]["spec"]["creates"][0]["includeWhen"] = "${'yes'}"
    with pytest.raises(RenderError) as caught:
        _render("frontend", trait_catalog=catalog)
    assert caught.value.field == "creates[0].includeWhen"


def test_interpolation_inside_text_and_native_values() -> None:
    catalog = _catalog_with(
        "description", "rule ${trait.instanceName} in ${metadata.environmentName}: ${parameters.condition.threshold}"
    )
    (rule,) = _render("frontend", trait_catalog=catalog)
    assert rule["spec"]["description"] == "rule frontend-rpc-unavailable-error-log-alert in development: 5"
    assert rule["spec"]["condition"]["threshold"] == 5  # a lone ${...} keeps its type


def test_a_missing_trait_is_a_render_error() -> None:
    with pytest.raises(RenderError, match="no trait named"):
        _render("frontend", trait_catalog={})


def test_default_channel_name() -> None:
    def channel(name: str, env: str, default: bool) -> dict[str, Any]:
        return {"metadata": {"name": name}, "spec": {"environment": env, "isEnvDefault": default}}

    channels = [channel("b", "development", True), channel("a", "development", True), channel("c", "production", True)]
    assert default_channel_name(channels, "development") == "a"
    assert default_channel_name(channels, "staging") == ""
    assert default_channel_name([channel("x", "development", False)], "development") == ""


def test_observability_namespace_is_ensured_not_owned() -> None:
    namespace = observability_namespace("default", environment="development", project=PROJECT)
    assert namespace == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": "default",
            "labels": {
                "openchoreo.dev/created-by": "renderedrelease-controller",
                "openchoreo.dev/namespace": "default",
                "openchoreo.dev/environment": "development",
                "openchoreo.dev/project": PROJECT,
            },
        },
    }
    assert not is_tracked(namespace)


def test_a_binding_of_another_component_is_refused() -> None:
    component = sample("components-with-alert-rules.yaml", "Component", "frontend")
    with pytest.raises(RenderError) as caught:
        render_alert_rules(component, binding("cart", PROJECT), environment(), project(PROJECT), dataplane=dataplane())
    assert caught.value.field == "binding.spec.owner.componentName"
