"""Manifests checked against the CRD schemas as the API server would, strictly: every upstream sample of our kinds
is valid; each kind of mistake (unknown field, wrong type, missing required, bad enum, bad name) is caught and
names the field; defaults are applied; the OpenAPI extensions (nullable, int-or-string, preserve-unknown-fields)
mean what they mean in Kubernetes."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from controlplane import kinds, schema
from controlplane.schema import apply_defaults, cel_rules, field_path, to_json_schema, validate

# Copies of ../shared/reference/openchoreo/samples/ (and the channel sample one level up): every document of a
# kind we serve must validate (the Secrets among them too). Documents of other kinds (ClusterTrait) are not ours.
SAMPLES = Path(__file__).resolve().parents[1] / "data" / "controlplane" / "samples"


def _sample_documents() -> list[tuple[str, int, dict[str, Any]]]:
    found = []
    for path in sorted(SAMPLES.glob("*.yaml")):
        for index, doc in enumerate(yaml.safe_load_all(path.read_text(encoding="utf-8"))):
            if isinstance(doc, dict) and doc.get("kind") in kinds.BY_KIND:
                found.append((path.name, index, doc))
    return found


SAMPLE_DOCS = _sample_documents()


def _sample(kind: str, name: str | None = None) -> dict[str, Any]:
    """A deep copy of the first sample of `kind` (named `name` when given), to mutate."""
    for _, _, doc in SAMPLE_DOCS:
        if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name):
            return copy.deepcopy(doc)
    raise LookupError(kind)


def _fields(problems: list[tuple[str, str]]) -> list[str]:
    return [path for path, _ in problems]


def test_the_sample_walk_covers_the_kinds_with_samples() -> None:
    seen = {doc["kind"] for _, _, doc in SAMPLE_DOCS}
    assert seen == {
        "Component",
        "Workload",
        "ReleaseBinding",
        "Environment",
        "DataPlane",
        "ClusterDataPlane",
        "ObservabilityPlane",
        "ClusterObservabilityPlane",
        "ObservabilityAlertsNotificationChannel",
        "Secret",
    }
    assert len(SAMPLE_DOCS) == 21  # 17 CRs and 4 Secrets


@pytest.mark.parametrize(("file", "index", "doc"), SAMPLE_DOCS, ids=[f"{f}#{i}" for f, i, _ in SAMPLE_DOCS])
def test_every_sample_is_valid(file: str, index: int, doc: dict[str, Any]) -> None:
    assert validate(doc["kind"], copy.deepcopy(doc)) == []


def test_a_null_spec_is_dropped_as_the_api_server_does() -> None:
    """The kubebuilder scaffolds (`spec:` with only a comment) are valid: a non-nullable null is pruned."""
    doc = _sample("DataPlane")
    assert doc["spec"] is None
    assert validate("DataPlane", doc) == []
    assert "spec" not in doc


# --- mutations: each names the field ------------------------------------------------------------------------------


def test_unknown_field_is_rejected_and_named() -> None:
    doc = _sample("Component", "frontend")
    doc["spec"]["owner"]["team"] = "payments"
    doc["spec"]["replicas"] = 3
    doc["extra"] = True
    problems = validate("Component", doc)
    assert problems == [
        ("extra", "unknown field"),
        ("spec.owner.team", "unknown field"),
        ("spec.replicas", "unknown field"),
    ]


def test_unknown_metadata_field_is_rejected() -> None:
    doc = _sample("Environment")
    doc["metadata"]["labelz"] = {"a": "b"}
    assert validate("Environment", doc) == [("metadata.labelz", "unknown field")]


def test_preserved_fields_accept_anything() -> None:
    """Trait parameters and environment configs are x-kubernetes-preserve-unknown-fields: free-form."""
    doc = _sample("Component", "frontend")
    doc["spec"]["traits"][0]["parameters"]["anything"] = {"nested": [1, "two", None]}
    assert validate("Component", doc) == []
    binding = _sample("ReleaseBinding")
    binding["spec"]["componentTypeEnvironmentConfigs"]["whatever"] = {"x": 1}
    assert validate("ReleaseBinding", binding) == []


def test_wrong_type_names_the_field() -> None:
    doc = _sample("Environment")
    doc["spec"]["isProduction"] = "yes"
    problems = validate("Environment", doc)
    assert _fields(problems) == ["spec.isProduction"]
    assert "must be of type boolean" in problems[0][1]


def test_wrong_type_inside_a_list_names_the_index() -> None:
    doc = _sample("Component", "frontend")
    doc["spec"]["traits"][0]["instanceName"] = 7
    assert _fields(validate("Component", doc)) == ["spec.traits[0].instanceName"]


def test_missing_required_names_the_missing_field() -> None:
    doc = _sample("Component", "frontend")
    del doc["spec"]["owner"]["projectName"]
    assert validate("Component", doc) == [("spec.owner.projectName", "Required value")]
    doc = _sample("ReleaseBinding")
    del doc["spec"]["environment"]
    del doc["spec"]["owner"]
    assert validate("ReleaseBinding", doc) == [
        ("spec.environment", "Required value"),
        ("spec.owner", "Required value"),
    ]


def test_missing_required_inside_a_list_item() -> None:
    doc = _sample("Component", "frontend")
    del doc["spec"]["traits"][0]["name"]
    assert validate("Component", doc) == [("spec.traits[0].name", "Required value")]


def test_bad_enum_lists_the_supported_values() -> None:
    doc = _sample("Environment")
    doc["spec"]["dataPlaneRef"]["kind"] = "Cluster"
    problems = validate("Environment", doc)
    assert _fields(problems) == ["spec.dataPlaneRef.kind"]
    assert problems[0][1] == 'Unsupported value: "Cluster": supported values: "DataPlane", "ClusterDataPlane"'


def test_pattern_and_bounds() -> None:
    doc = _sample("ReleaseBinding")
    doc["spec"]["state"] = "Paused"
    assert _fields(validate("ReleaseBinding", doc)) == ["spec.state"]
    plane = {
        "apiVersion": "openchoreo.dev/v1alpha1",
        "kind": "DataPlane",
        "metadata": {"name": "dp", "namespace": "default"},
        "spec": {
            "clusterAgent": {"clientCA": {"value": "pem"}},
            "observabilityPlaneRef": {"kind": "ObservabilityPlane", "name": "Not_A_Name"},
        },
    }
    problems = validate("DataPlane", plane)
    assert _fields(problems) == ["spec.observabilityPlaneRef.name"]
    assert "should match" in problems[0][1]


def test_cluster_data_plane_may_not_point_at_a_namespaced_observability_plane() -> None:
    doc = {
        "apiVersion": "openchoreo.dev/v1alpha1",
        "kind": "ClusterDataPlane",
        "metadata": {"name": "default"},
        "spec": {
            "clusterAgent": {"clientCA": {"value": "pem"}},
            "observabilityPlaneRef": {"kind": "ObservabilityPlane", "name": "default"},
        },
    }
    assert _fields(validate("ClusterDataPlane", doc)) == ["spec.observabilityPlaneRef.kind"]
    doc["spec"]["observabilityPlaneRef"]["kind"] = "ClusterObservabilityPlane"
    assert validate("ClusterDataPlane", doc) == []


@pytest.mark.parametrize(
    "name",
    ["Bad_Name", "UPPER", "-leading", "trailing-", "a" * 254, "", "with space"],
)
def test_bad_names_are_rejected(name: str) -> None:
    doc = _sample("Environment")
    doc["metadata"]["name"] = name
    problems = validate("Environment", doc)
    assert _fields(problems) == ["metadata.name"]


def test_names_are_dns1123_subdomains_but_namespaces_are_labels() -> None:
    doc = _sample("Environment")
    doc["metadata"]["name"] = "dev.eu-west"
    assert validate("Environment", doc) == []
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "dev.eu-west"}}
    assert _fields(validate("Namespace", namespace)) == ["metadata.name"]
    namespace["metadata"]["name"] = "a" * 64
    assert _fields(validate("Namespace", namespace)) == ["metadata.name"]
    namespace["metadata"]["name"] = "team-a"
    namespace["metadata"]["labels"] = {"openchoreo.dev/control-plane": "true"}
    assert validate("Namespace", namespace) == []
    namespace["status"] = {"phase": "Gone"}
    assert _fields(validate("Namespace", namespace)) == ["status.phase"]


def test_missing_name_and_bad_namespace() -> None:
    doc = _sample("Workload")
    del doc["metadata"]["name"]
    doc["metadata"]["namespace"] = "Not.A.Label"
    assert validate("Workload", doc) == [
        ("metadata.name", "Required value"),
        ("metadata.namespace", validate_namespace_message("Not.A.Label")),
    ]
    assert validate("Workload", {"apiVersion": "openchoreo.dev/v1alpha1", "kind": "Workload", "spec": {}}) == [
        ("metadata.name", "Required value"),
        ("spec.container", "Required value"),
        ("spec.owner", "Required value"),
    ]


def validate_namespace_message(value: str) -> str:
    return schema._check_name("metadata.namespace", value, label=True)[0][1]


def test_bad_labels_and_annotations() -> None:
    doc = _sample("Environment")
    doc["metadata"]["labels"] = {"ok": "fine", "bad key!": "x", "openchoreo.dev/v": "no spaces", "n": 3}
    doc["metadata"]["annotations"] = {"free": "any text at all, even spaces", "count": 2}
    assert _fields(validate("Environment", doc)) == [
        "metadata.annotations.count",
        "metadata.labels.bad key!",
        "metadata.labels.n",
        "metadata.labels.openchoreo.dev/v",
    ]


def test_api_version_and_kind_are_checked() -> None:
    doc = _sample("Environment")
    doc["apiVersion"] = "openchoreo.dev/v1"
    problems = validate("Environment", doc)
    assert _fields(problems) == ["apiVersion"]
    assert '"openchoreo.dev/v1alpha1"' in problems[0][1]
    doc = _sample("Environment")
    doc["kind"] = "Project"
    assert _fields(validate("Environment", doc)) == ["kind"]
    doc = _sample("Environment")
    del doc["apiVersion"], doc["kind"]
    assert validate("Environment", doc) == [("apiVersion", "Required value"), ("kind", "Required value")]


def test_unknown_kind_and_non_object() -> None:
    assert _fields(validate("Pod", {"kind": "Pod"})) == ["kind"]
    assert _fields(validate("Project", ["not", "an", "object"])) == [""]


def test_cluster_scoped_namespace_is_cleared() -> None:
    doc = _sample("ClusterObservabilityPlane")
    doc["metadata"]["namespace"] = "default"
    assert validate("ClusterObservabilityPlane", doc) == []
    assert "namespace" not in doc["metadata"]


# --- defaults -----------------------------------------------------------------------------------------------------


def test_defaults_are_applied() -> None:
    doc = _sample("Component", "frontend")
    del doc["spec"]["traits"][0]["kind"]
    del doc["spec"]["componentType"]["kind"]
    assert validate("Component", doc) == []
    assert doc["spec"]["traits"][0]["kind"] == "Trait"
    assert doc["spec"]["componentType"]["kind"] == "ComponentType"
    binding = _sample("ReleaseBinding")
    assert "state" not in binding["spec"]
    assert validate("ReleaseBinding", binding) == []
    assert binding["spec"]["state"] == "Active"


def test_defaults_fill_a_non_nullable_null_and_keep_given_values() -> None:
    doc = _sample("Component", "frontend")
    doc["spec"]["traits"][0]["kind"] = None
    assert validate("Component", doc) == []
    assert doc["spec"]["traits"][0]["kind"] == "Trait"
    doc["spec"]["traits"][0]["kind"] = "ClusterTrait"
    assert validate("Component", doc) == []
    assert doc["spec"]["traits"][0]["kind"] == "ClusterTrait"


def test_defaults_inside_list_items_of_a_binding() -> None:
    doc = {
        "apiVersion": "openchoreo.dev/v1alpha1",
        "kind": "AuthzRoleBinding",
        "metadata": {"name": "devs", "namespace": "default"},
        "spec": {
            "entitlement": {"claim": "groups", "value": "devs"},
            "roleMappings": [{"roleRef": {"kind": "AuthzRole", "name": "viewer"}}],
        },
    }
    assert validate("AuthzRoleBinding", doc) == []
    assert doc["spec"]["effect"] == "allow"


def test_defaults_are_not_invented_for_missing_parents() -> None:
    doc = _sample("Component", "frontend")
    del doc["spec"]["traits"]
    validate("Component", doc)
    assert "traits" not in doc["spec"]


# --- the OpenAPI extensions, on small schemas ---------------------------------------------------------------------

EXTENSIONS = {
    "type": "object",
    "properties": {
        "port": {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]},
        "note": {"type": "string", "nullable": True},
        "mode": {"type": "string", "enum": ["a", "b"], "nullable": True},
        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        "closed": {"type": "object", "properties": {"x": {"type": "integer", "minimum": 0, "exclusiveMinimum": True}}},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
        "withDefault": {"type": "string", "default": "d"},
        "plain": {"type": "string"},
    },
}


def _errors(instance: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(to_json_schema(EXTENSIONS, root=False))
    return sorted(field_path(e.absolute_path) for e in validator.iter_errors(instance))


def test_int_or_string() -> None:
    assert _errors({"port": 8080}) == []
    assert _errors({"port": "http"}) == []
    assert _errors({"port": 1.5}) == ["port"]
    assert _errors({"port": None}) == ["port"]


def test_nullable() -> None:
    assert _errors({"note": None, "mode": None}) == []
    assert _errors({"plain": None}) == ["plain"]
    assert _errors({"mode": "c"}) == ["mode"]


def test_preserve_unknown_fields_versus_closed_objects() -> None:
    assert _errors({"free": {"any": {"thing": 1}}, "labels": {"k": "v"}}) == []
    assert _errors({"closed": {"x": 1, "y": 2}}) == ["closed"]
    assert _errors({"labels": {"k": 1}}) == ["labels.k"]


def test_exclusive_minimum_and_sets() -> None:
    assert _errors({"closed": {"x": 0}}) == ["closed.x"]
    assert _errors({"closed": {"x": 1}}) == []
    assert _errors({"tags": ["a", "a"]}) == ["tags"]


def test_apply_defaults_on_small_schema() -> None:
    value: dict[str, Any] = {"plain": None, "note": None, "withDefault": None}
    apply_defaults(EXTENSIONS, value)
    assert value == {"note": None, "withDefault": "d"}


# --- what is left for later ---------------------------------------------------------------------------------------


def test_cel_rules_are_listed() -> None:
    """Every x-kubernetes-validations rule is found, with its node's path; controlplane/cel.py evaluates them."""
    rules = cel_rules("ObservabilityAlertsNotificationChannel")
    assert ("spec", "self.type == 'email' ? has(self.emailConfig) : true") in rules
    assert ("spec.webhookConfig.headers.*", "has(self.value) != has(self.valueFrom)") in rules
    assert ("spec.roleMappings[*]", "!has(self.scope) || !has(self.scope.component) || has(self.scope.project)") in (
        cel_rules("AuthzRoleBinding")
    )


@pytest.mark.parametrize("row", kinds.KINDS, ids=lambda r: r.kind)
def test_every_kind_compiles_and_reports_only_missing_required_on_a_bare_manifest(row: kinds.Kind) -> None:
    """Each CRD translates to a schema jsonschema accepts; a bare manifest's only problems are its required fields."""
    doc: dict[str, Any] = {"apiVersion": row.api_version, "kind": row.kind, "metadata": {"name": "x"}}
    if row.kind != "Secret":  # the one kind without a spec
        doc["spec"] = {}
    problems = validate(row.kind, doc)
    assert all(message == "Required value" and path.startswith("spec.") for path, message in problems), problems
