"""Validate a manifest against its kind's CRD `openAPIV3Schema`, as the Kubernetes API server would, strictly.

The control plane has no API server of its own, so it does what the API server does on create and update:
drop `null`s the schema does not allow, apply `default`s, check the structural schema (types, required, enums,
patterns, bounds), and check `apiVersion`, `kind` and `metadata` (names are DNS-1123, labels are qualified names).
Unknown fields are REJECTED, as `kubectl apply --validate=strict` has the server do, rather than silently pruned:
a typo in a manifest should be a 400 that names the field, not a setting that quietly does nothing.

Every problem comes back as `(field path, message)`, the path in Kubernetes' spelling (`spec.containers[0].image`),
so the REST API can answer with `details[].field`.

CEL rules (`x-kubernetes-validations`) are evaluated by controlplane/cel.py once the structural checks pass (a
rule over a malformed document would only add noise); transition rules (`oldSelf`) need the stored object, `old`.
Not yet here: `format` checks, and key uniqueness of `x-kubernetes-list-type: map` lists.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import resources
from typing import Any

import jsonschema
import yaml

from controlplane import cel, kinds

FieldError = tuple[str, str]

# DNS-1123 as k8s.io/apimachinery/pkg/util/validation spells them.
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")

# The ObjectMeta fields a client may send (metav1.ObjectMeta); anything else is an unknown field.
_META_STRINGS = ("name", "generateName", "namespace", "uid", "resourceVersion", "selfLink")
_META_TIMESTAMPS = ("creationTimestamp", "deletionTimestamp")
_META_INTEGERS = ("generation", "deletionGracePeriodSeconds")
_META_LISTS = ("finalizers", "ownerReferences", "managedFields")
_META_MAPS = ("labels", "annotations")
_META_FIELDS = frozenset(_META_STRINGS + _META_TIMESTAMPS + _META_INTEGERS + _META_LISTS + _META_MAPS)


def load_crd(kind: str) -> dict[str, Any]:
    """The CRD document for `kind`, read from the package data in controlplane/crds/."""
    row = kinds.get(kind)
    text = resources.files("controlplane").joinpath("crds", row.crd_file).read_text(encoding="utf-8")
    for doc in yaml.safe_load_all(text):
        if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
            return doc
    raise ValueError(f"{row.crd_file}: no CustomResourceDefinition document")


def crd_schema(kind: str) -> dict[str, Any]:
    """The `openAPIV3Schema` of the CRD version we serve for `kind` (a fresh copy: callers may change it)."""
    row = kinds.get(kind)
    crd = load_crd(kind)
    for version in crd["spec"]["versions"]:
        if version["name"] == row.version:
            schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
            return schema
    raise ValueError(f"{row.crd_file}: no version {row.version}")


def to_json_schema(node: Mapping[str, Any], *, root: bool = True) -> dict[str, Any]:
    """Translate a structural OpenAPI v3 schema into JSON Schema (2020-12) with Kubernetes' semantics.

    - `nullable: true` admits `null`; `x-kubernetes-int-or-string` admits an integer or a string;
    - an object that does not say `x-kubernetes-preserve-unknown-fields: true` and has no `additionalProperties`
      admits only the properties it lists (Kubernetes prunes the rest; we reject them);
    - OpenAPI 3.0's boolean `exclusiveMinimum`/`exclusiveMaximum` become 2020-12's numeric ones;
    - `x-kubernetes-list-type: set` means the items are unique.
    The root's `metadata` is left open here: ObjectMeta is checked by `_check_metadata`, as the API server does.
    """
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {
                name: ({"type": "object"} if root and name == "metadata" else to_json_schema(sub, root=False))
                for name, sub in value.items()
            }
        elif key == "items" and isinstance(value, Mapping):
            out[key] = to_json_schema(value, root=False)
        elif key == "additionalProperties" and isinstance(value, Mapping):
            out[key] = to_json_schema(value, root=False)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [to_json_schema(sub, root=False) for sub in value]
        elif key == "not":
            out[key] = to_json_schema(value, root=False)
        elif key in ("exclusiveMinimum", "exclusiveMaximum", "minimum", "maximum"):
            continue  # handled below, together
        elif key.startswith("x-kubernetes-") or key in ("nullable", "default", "description", "example", "format"):
            continue
        else:
            out[key] = value
    for bound, exclusive in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        if bound in node:
            out[exclusive if node.get(exclusive) is True else bound] = node[bound]
    if node.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
        # controller-gen also writes `anyOf: [{type: integer}, {type: string}]`: the same rule, a second error.
        if all(set(sub) == {"type"} for sub in out.get("anyOf", [{}])):
            out.pop("anyOf", None)
    if node.get("x-kubernetes-list-type") == "set":
        out["uniqueItems"] = True
    preserve = bool(node.get("x-kubernetes-preserve-unknown-fields"))
    if node.get("type") == "object" and "additionalProperties" not in node and not preserve:
        out["additionalProperties"] = False
    if node.get("nullable"):
        types = out.get("type")
        if isinstance(types, str):
            out["type"] = [types, "null"]
        elif isinstance(types, list):
            out["type"] = [*types, "null"]
        if "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
    return out


def apply_defaults(schema: Mapping[str, Any], value: Any) -> None:
    """Default `value` in place from the OpenAPI schema, as apiextensions-apiserver does before validating.

    A property that is absent, or `null` where the schema does not allow `null`, takes a deep copy of its
    `default`; a non-nullable `null` without a default is dropped. Defaults apply inside objects that exist (a
    default is never invented for a missing parent) and inside the defaults just set.
    """
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        for name, sub in properties.items():
            present = name in value
            if present and value[name] is None and not sub.get("nullable"):
                if "default" in sub:
                    value[name] = copy.deepcopy(sub["default"])
                else:
                    del value[name]
            elif not present and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
        extra = schema.get("additionalProperties")
        for name, item in value.items():
            if name in properties:
                apply_defaults(properties[name], item)
            elif isinstance(extra, Mapping):
                apply_defaults(extra, item)
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, Mapping):
            for item in value:
                apply_defaults(items, item)


@cache
def _validator(kind: str) -> tuple[dict[str, Any], jsonschema.protocols.Validator]:
    """The kind's OpenAPI schema (for defaulting) and its compiled JSON Schema validator, built once per kind."""
    schema = crd_schema(kind)
    json_schema = to_json_schema(schema)
    validator_class = jsonschema.validators.validator_for(json_schema, default=jsonschema.Draft202012Validator)
    validator_class.check_schema(json_schema)
    return schema, validator_class(json_schema)


def field_path(parts: Iterable[str | int]) -> str:
    """`["spec", "containers", 0, "image"]` -> `spec.containers[0].image` (Kubernetes' field path spelling)."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out = f"{out}.{part}" if out else str(part)
    return out


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _show(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


_TYPE_NAMES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number"}


def _type_name(value: Any) -> str:
    return "null" if value is None else _TYPE_NAMES.get(type(value), type(value).__name__)


def _schema_errors(error: jsonschema.ValidationError) -> list[FieldError]:
    """One jsonschema error as (field, message) pairs; `required` and unknown fields name the field itself."""
    path = field_path(error.absolute_path)
    keyword = error.validator
    instance = error.instance
    rule: Any = error.validator_value  # the keyword's value in the schema (a list for required, type and enum)
    if keyword == "required" and isinstance(instance, dict):
        return [(_join(path, name), "Required value") for name in rule if name not in instance]
    if keyword == "additionalProperties" and isinstance(instance, dict):
        known = error.schema.get("properties", {}) if isinstance(error.schema, Mapping) else {}
        return [(_join(path, name), "unknown field") for name in instance if name not in known]
    if keyword == "type":
        wanted = " or ".join(rule) if isinstance(rule, list) else str(rule)
        return [(path, f"Invalid value: {_type_name(instance)}: must be of type {wanted}")]
    if keyword == "enum":
        supported = ", ".join(_show(v) for v in rule)
        return [(path, f"Unsupported value: {_show(instance)}: supported values: {supported}")]
    if keyword == "pattern":
        return [(path, f"Invalid value: {_show(instance)}: should match '{rule}'")]
    return [(path, f"Invalid value: {_show(instance)}: {error.message}")]


def _check_name(path: str, value: Any, *, label: bool) -> list[FieldError]:
    if not isinstance(value, str):
        return [(path, f"Invalid value: {_type_name(value)}: must be of type string")]
    if not value:
        return [(path, "Required value")]
    limit, pattern, what, chars = (
        (63, _DNS1123_LABEL, "a lowercase RFC 1123 label", "'-'")
        if label
        else (253, _DNS1123_SUBDOMAIN, "a lowercase RFC 1123 subdomain", "'-' or '.'")
    )
    if len(value) > limit:
        return [(path, f"Invalid value: {_show(value)}: must be no more than {limit} characters")]
    if not pattern.fullmatch(value):
        return [
            (
                path,
                f"Invalid value: {_show(value)}: {what} must consist of lower case alphanumeric characters, {chars},"
                " and must start and end with an alphanumeric character",
            )
        ]
    return []


def _check_label_key(path: str, key: str) -> list[FieldError]:
    prefix, slash, name = key.rpartition("/")
    problems: list[FieldError] = []
    if slash and (not prefix or len(prefix) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(prefix)):
        problems.append((path, f"Invalid value: {_show(key)}: prefix part must be a lowercase RFC 1123 subdomain"))
    if not name or len(name) > 63 or not _QUALIFIED_NAME.fullmatch(name):
        problems.append(
            (
                path,
                f"Invalid value: {_show(key)}: name part must be at most 63 characters of alphanumerics, '-', '_' "
                "or '.', starting and ending with an alphanumeric character",
            )
        )
    return problems


def _check_metadata(row: kinds.Kind, document: dict[str, Any]) -> list[FieldError]:
    """ObjectMeta as the API server checks it; a cluster-scoped object's `namespace` is cleared, as it does."""
    if "metadata" not in document or document["metadata"] is None:
        return [("metadata.name", "Required value")]
    meta = document["metadata"]
    if not isinstance(meta, dict):
        return [("metadata", f"Invalid value: {_type_name(meta)}: must be of type object")]
    problems: list[FieldError] = [(f"metadata.{k}", "unknown field") for k in meta if k not in _META_FIELDS]
    if "name" not in meta:
        problems.append(("metadata.name", "Required value"))
    else:
        problems += _check_name("metadata.name", meta["name"], label=row.kind == "Namespace")
    if not row.namespaced:
        meta.pop("namespace", None)
    elif meta.get("namespace") not in (None, ""):
        problems += _check_name("metadata.namespace", meta["namespace"], label=True)
    for key in _META_STRINGS + _META_TIMESTAMPS:
        if key not in ("name", "namespace") and meta.get(key) is not None and not isinstance(meta[key], str):
            problems.append((f"metadata.{key}", f"Invalid value: {_type_name(meta[key])}: must be of type string"))
    for key in _META_INTEGERS:
        value = meta.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            problems.append((f"metadata.{key}", f"Invalid value: {_type_name(value)}: must be of type integer"))
    for key in _META_LISTS:
        if meta.get(key) is not None and not isinstance(meta[key], list):
            problems.append((f"metadata.{key}", f"Invalid value: {_type_name(meta[key])}: must be of type array"))
    for key in _META_MAPS:
        mapping = meta.get(key)
        if mapping is None:
            continue
        if not isinstance(mapping, dict):
            problems.append((f"metadata.{key}", f"Invalid value: {_type_name(mapping)}: must be of type object"))
            continue
        for name, value in mapping.items():
            path = f"metadata.{key}.{name}"
            if not isinstance(value, str):
                problems.append((path, f"Invalid value: {_type_name(value)}: must be of type string"))
                continue
            if key == "labels":
                problems += _check_label_key(path, str(name))
                if len(value) > 63 or not _LABEL_VALUE.fullmatch(value):
                    problems.append(
                        (
                            path,
                            f"Invalid value: {_show(value)}: a label value must be empty or at most 63 characters "
                            "of alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric character",
                        )
                    )
    return problems


def validate(
    kind: str, document: Any, old: Mapping[str, Any] | None = None, *, evaluate_rules: bool = True
) -> list[FieldError]:
    """Check `document` as a `kind` manifest; return every problem as (field path, message), [] when valid.

    The document is normalised IN PLACE first, as the API server would before storing it: disallowed `null`s
    dropped, `default`s applied, a cluster-scoped object's `metadata.namespace` cleared. A caller that must
    keep the original passes a copy. `old` is the stored object on replace: with it the CEL transition rules
    (immutability) run too; without it (a create) they are skipped, as Kubernetes does. `evaluate_rules=False`
    leaves CEL out, for a status write (no rule of ours is on `status`, and CEL costs milliseconds a document).
    """
    row = kinds.BY_KIND.get(kind)
    if row is None:
        supported = ", ".join(_show(k) for k in kinds.BY_KIND)
        return [("kind", f"Unsupported value: {_show(kind)}: supported values: {supported}")]
    if not isinstance(document, dict):
        return [("", f"Invalid value: {_type_name(document)}: a manifest must be an object")]
    problems: list[FieldError] = []
    for key, expected in (("apiVersion", row.api_version), ("kind", row.kind)):
        if document.get(key) in (None, ""):
            problems.append((key, "Required value"))
        elif document[key] != expected:
            problems.append((key, f"Invalid value: {_show(document[key])}: must be {_show(expected)} for {row.kind}"))
    problems += _check_metadata(row, document)
    schema, validator = _validator(row.kind)
    apply_defaults(schema, document)
    seen = set(problems)
    for error in validator.iter_errors(document):
        for problem in _schema_errors(error):
            if problem not in seen:
                seen.add(problem)
                problems.append(problem)
    if not problems and evaluate_rules:
        problems = cel.check(schema, document, old)
    return sorted(problems, key=lambda p: p[0])


def transition_problems(kind: str, document: Mapping[str, Any], old: Mapping[str, Any]) -> list[FieldError]:
    """The CEL transition rules (those reading `oldSelf`, i.e. immutability) that `document` breaks against the
    stored `old`: what a replace checks inside its write transaction, after `validate(kind, document)` passed."""
    schema, _ = _validator(kinds.get(kind).kind)
    return sorted(cel.check(schema, document, old, transitions_only=True), key=lambda p: p[0])


def cel_rules(kind: str) -> list[tuple[str, str]]:
    """Every CEL rule in `kind`'s schema as (field path, rule), `[*]` for list items and `.*` for map values."""
    found: list[tuple[str, str]] = []

    def walk(node: Mapping[str, Any], path: str) -> None:
        for rule in node.get("x-kubernetes-validations") or []:
            found.append((path, str(rule.get("rule", ""))))
        for name, sub in (node.get("properties") or {}).items():
            walk(sub, _join(path, name))
        items = node.get("items")
        if isinstance(items, Mapping):
            walk(items, path + "[*]")
        extra = node.get("additionalProperties")
        if isinstance(extra, Mapping):
            walk(extra, path + ".*")

    walk(crd_schema(kind), "")
    return found
