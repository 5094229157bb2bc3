"""CEL rules (`x-kubernetes-validations`) as the API server runs them: each on the values at its node, transition
rules (`oldSelf`) only on replace against the stored object, a failed rule an Invalid naming the concrete field,
and a rule that cannot be evaluated a refusal naming the field rather than a crash."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from controlplane import cel
from controlplane.errors import Invalid
from controlplane.schema import validate
from controlplane.store import Store

API = "openchoreo.dev/v1alpha1"
SAMPLES = Path(__file__).resolve().parents[1] / "data" / "controlplane" / "samples"


def _sample(kind: str, name: str) -> dict[str, Any]:
    for path in sorted(SAMPLES.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if isinstance(doc, dict) and doc.get("kind") == kind and doc["metadata"]["name"] == name:
                return copy.deepcopy(doc)
    raise LookupError(kind, name)


def _meta(name: str, ns: str | None = "acme") -> dict[str, Any]:
    return {"name": name, "namespace": ns} if ns else {"name": name}


def project(name: str = "shop", type_name: str = "default") -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "Project",
        "metadata": _meta(name),
        "spec": {"deploymentPipelineRef": {"name": "default"}, "type": {"name": type_name}},
    }


def component(name: str = "cart", project_name: str = "shop", type_name: str = "deployment/service") -> dict:
    return {
        "apiVersion": API,
        "kind": "Component",
        "metadata": _meta(name),
        "spec": {"owner": {"projectName": project_name}, "componentType": {"name": type_name}},
    }


def binding(environment: str = "development", component_name: str = "cart") -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "ReleaseBinding",
        "metadata": _meta(f"{component_name}-{environment}"),
        "spec": {"owner": {"projectName": "shop", "componentName": component_name}, "environment": environment},
    }


def environment(data_plane: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if data_plane:
        spec["dataPlaneRef"] = {"kind": "DataPlane", "name": data_plane}
    return {"apiVersion": API, "kind": "Environment", "metadata": _meta("development"), "spec": spec}


def role_binding(scope: dict[str, str], *, cluster: bool = False, role_kind: str = "") -> dict[str, Any]:
    kind = "ClusterAuthzRoleBinding" if cluster else "AuthzRoleBinding"
    role_kind = role_kind or ("ClusterAuthzRole" if cluster else "AuthzRole")
    return {
        "apiVersion": API,
        "kind": kind,
        "metadata": _meta("devs", None if cluster else "acme"),
        "spec": {
            "entitlement": {"claim": "groups", "value": "devs"},
            "roleMappings": [{"roleRef": {"kind": role_kind, "name": "viewer"}, "scope": scope}],
        },
    }


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(f"sqlite:///{tmp_path / 'cp.db'}")
    s.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "acme"}})
    return s


# ----------------------------------------------------------------- rules on create


def test_channel_needs_the_config_of_its_type() -> None:
    doc = _sample("ObservabilityAlertsNotificationChannel", "email-notification-channel-development")
    assert validate(doc["kind"], copy.deepcopy(doc)) == []
    del doc["spec"]["emailConfig"]
    assert validate(doc["kind"], doc) == [("spec", "emailConfig is required when type is email")]


def test_a_map_value_rule_names_the_key() -> None:
    doc = _sample("ObservabilityAlertsNotificationChannel", "webhook-notification-channel-development")
    doc["spec"]["webhookConfig"]["headers"]["X-API-Key"]["value"] = "inline"  # and valueFrom: both set
    assert validate(doc["kind"], doc) == [
        ("spec.webhookConfig.headers.X-API-Key", "exactly one of value or valueFrom must be set")
    ]


def test_a_list_item_rule_names_the_index() -> None:
    doc = _sample("Workload", "demo-app-http-service-workload")
    env = doc["spec"]["container"].setdefault("env", [])
    env.append({"key": "A", "value": "1"})
    env.append({"key": "B", "value": "2", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}})
    problems = validate(doc["kind"], doc)
    assert problems == [(f"spec.container.env[{len(env) - 1}]", "value and valueFrom are mutually exclusive")]


@pytest.mark.parametrize(
    ("scope", "message"),
    [
        ({"component": "cart"}, "scope.component requires scope.project"),
        ({"resource": "x"}, "scope.resource requires scope.project"),
    ],
)
def test_authz_binding_scope_needs_its_parents(scope: dict[str, str], message: str) -> None:
    problems = validate("AuthzRoleBinding", role_binding(scope))
    assert ("spec.roleMappings[0]", message) in problems
    assert validate("AuthzRoleBinding", role_binding({"project": "shop", "component": "cart"})) == []


def test_cluster_binding_scope_and_role_kind() -> None:
    problems = validate("ClusterAuthzRoleBinding", role_binding({"project": "shop"}, cluster=True))
    assert [path for path, _ in problems] == ["spec.roleMappings[0]"]
    assert problems[0][1].startswith("scope.project requires scope.namespace")
    problems = validate("ClusterAuthzRoleBinding", role_binding({}, cluster=True, role_kind="AuthzRole"))
    assert problems == [("spec", "ClusterAuthzRoleBinding can only reference ClusterAuthzRole")]
    assert (
        validate("ClusterAuthzRoleBinding", role_binding({"namespace": "acme", "project": "shop"}, cluster=True)) == []
    )


def test_transition_rules_are_skipped_on_create() -> None:
    assert validate("Project", project()) == []
    assert validate("Project", project(type_name="other"), old=project()) == [
        ("spec.type", "spec.type cannot be changed after creation")
    ]


def test_cel_runs_only_on_a_structurally_valid_document() -> None:
    doc = _sample("ObservabilityAlertsNotificationChannel", "email-notification-channel-development")
    del doc["spec"]["emailConfig"]
    doc["spec"]["bogus"] = 1
    assert validate(doc["kind"], doc) == [("spec.bogus", "unknown field")]


# ----------------------------------------------------------------- immutability through the store


@pytest.mark.parametrize(
    ("first", "changed", "field", "message"),
    [
        (project(), project(type_name="other"), "spec.type", "spec.type cannot be changed after creation"),
        (
            component(),
            component(type_name="statefulset/db"),
            "spec.componentType",
            "spec.componentType cannot be changed after creation",
        ),
        (component(), component(project_name="other"), "spec.owner", "spec.owner is immutable"),
        (
            binding(),
            {**binding(), "spec": {**binding()["spec"], "environment": "prod"}},
            "spec.environment",
            "spec.environment is immutable",
        ),
        (
            binding(),
            {**binding(), "spec": {**binding()["spec"], "owner": {"projectName": "x", "componentName": "cart"}}},
            "spec.owner",
            "spec.owner is immutable",
        ),
        (environment("a"), environment("b"), "spec", "dataPlaneRef is immutable once set"),
    ],
    ids=["project-type", "component-type", "component-owner", "binding-env", "binding-owner", "env-dataplane"],
)
def test_immutable_fields_refuse_a_change(
    store: Store, first: dict[str, Any], changed: dict[str, Any], field: str, message: str
) -> None:
    stored = store.create(first)
    with pytest.raises(Invalid) as caught:
        store.replace(changed)
    assert caught.value.details == [(field, message)]
    assert caught.value.status == 400
    assert store.get(first["kind"], "acme", first["metadata"]["name"]) == stored


def test_refused_transition_writes_nothing(store: Store) -> None:
    stored = store.create(project())
    revision = store.revision()
    with pytest.raises(Invalid):
        store.replace(project(type_name="other"))
    assert store.revision() == revision
    assert store.get("Project", "acme", "shop") == stored


def test_environment_data_plane_may_be_set_once(store: Store) -> None:
    store.create(environment())
    assert store.replace(environment("a"))["spec"]["dataPlaneRef"]["name"] == "a"
    with pytest.raises(Invalid):
        store.replace(environment("b"))


def test_channel_environment_is_immutable(store: Store) -> None:
    doc = _sample("ObservabilityAlertsNotificationChannel", "email-notification-channel-development")
    doc["metadata"]["namespace"] = "acme"
    store.create(copy.deepcopy(doc))
    doc["spec"]["environment"] = "production"
    with pytest.raises(Invalid) as caught:
        store.replace(doc)
    assert caught.value.details == [("spec.environment", "spec.environment is immutable")]


def test_mutable_fields_still_change(store: Store) -> None:
    store.create(component())
    changed = component()
    changed["spec"]["autoDeploy"] = True
    assert store.replace(changed)["metadata"]["generation"] == 2


# ----------------------------------------------------------------- evaluation bounds and caching


def test_a_rule_that_cannot_be_evaluated_is_a_refusal_naming_the_field() -> None:
    schema = {
        "type": "object",
        "properties": {"spec": {"type": "object", "x-kubernetes-validations": [{"rule": "self.x / 0 == 1"}]}},
    }
    problems = cel.check(schema, {"spec": {"x": 1}})
    assert [path for path, _ in problems] == ["spec"]
    assert problems[0][1].startswith("failed rule: self.x / 0 == 1 (the rule could not be evaluated")
    missing = cel.check(schema, {"spec": {}})
    assert [path for path, _ in missing] == ["spec"]


def test_a_rule_that_is_not_boolean_fails() -> None:
    schema = {"type": "object", "x-kubernetes-validations": [{"rule": "1 + 1", "message": "m"}]}
    assert cel.check(schema, {}) == [("", "m (the rule gave IntType, not a boolean)")]


def test_a_deeply_nested_value_is_refused_not_a_crash() -> None:
    deep: Any = "leaf"
    for _ in range(5000):
        deep = {"a": deep}
    schema = {"type": "object", "x-kubernetes-validations": [{"rule": "has(self.a)", "message": "m"}]}
    problems = cel.check(schema, deep)
    assert [path for path, _ in problems] == [""]
    assert problems[0][1].startswith("m (the rule could not be evaluated")


def test_each_rule_is_compiled_once() -> None:
    doc = _sample("ObservabilityAlertsNotificationChannel", "email-notification-channel-development")
    validate(doc["kind"], copy.deepcopy(doc))
    before = cel._program.cache_info()
    for _ in range(3):
        validate(doc["kind"], copy.deepcopy(doc))
    after = cel._program.cache_info()
    assert after.misses == before.misses
    assert after.hits > before.hits


def test_no_rule_sits_on_status_so_status_writes_skip_cel() -> None:
    """`put_status` validates with `evaluate_rules=False`: safe only while no CEL rule is on a status field."""
    from controlplane import kinds
    from controlplane.schema import cel_rules

    for row in kinds.KINDS:
        assert not [path for path, _ in cel_rules(row.kind) if path.startswith("status")], row.kind
    doc = _sample("ObservabilityAlertsNotificationChannel", "email-notification-channel-development")
    del doc["spec"]["emailConfig"]
    assert validate(doc["kind"], doc, evaluate_rules=False) == []
