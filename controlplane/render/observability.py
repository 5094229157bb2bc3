"""What the control plane puts into an observability plane: alert-rule CRs from traits, and channel data.

Alert rules (CPN §1, OCN §4.1): every `observability-alert-rule` trait instance on a component becomes, per
ReleaseBinding, an `ObservabilityAlertRule` CR. The CR is what the ClusterTrait's `creates[]` templates say (the
built-in copy of upstream's sample is `controlplane/traits/observability-alert-rule.yaml`), evaluated with CEL over
upstream's trait context:
- `parameters`: the instance's `parameters`, defaulted and checked against the trait's parameter schema;
- `environmentConfigs` (alias `envOverrides`): the binding's `traitEnvironmentConfigs[instanceName]`, defaulted
  and checked against the trait's environmentConfigs schema;
- `metadata`: name (`<component>-<environment>`: Judgement, upstream's exact value is not in the notes),
  namespace (the component's control-plane namespace: the observability plane mirrors it), the component,
  project, environment and data plane names and UIDs, `labels` (the identity labels), `annotations`;
- `trait`: `{name, instanceName}`;
- `environment`: the Environment's spec plus `name`, `uid` and `defaultNotificationChannel` (the name of the
  environment's `isEnvDefault` channel, which the caller looks up: see `default_channel_name`);
- `dataplane`: the environment's DataPlane spec plus `name` (so `includeWhen: ${has(dataplane.
  observabilityPlaneRef)}` holds only when the data plane names an observability plane; without the DataPlane
  document nothing is rendered, as upstream has no plane to put it in).
The trait's `validations` are checked first (a rule that is false is a RenderError with its message). Only
`creates[]` entries whose `targetPlane` is `observabilityplane` are rendered here. Each CR keeps the template's
labels and also gets the identity labels (the observer reads the name labels, OCN §4.1) and the tracking labels
of the binding's observability-plane release.

Channels (OCN §2.5, §4.3): one ConfigMap + one Secret per ObservabilityAlertsNotificationChannel, named after the
channel, in its namespace; the keys are exactly those the observer reads; the labels are upstream's three plus
`openchoreo.dev/environment` (the channel's environment, which no key carries). Secret values referenced by the channel
come from `secrets` (Secret name -> {key: value}), which the caller resolves.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import resources
from typing import Any

import jsonschema
import yaml

from controlplane.render.errors import RenderError
from controlplane.render.labels import (
    CHANNEL_CONTROLLER,
    LABEL_APP_MANAGED_BY,
    LABEL_APP_NAME,
    LABEL_CREATED_BY,
    LABEL_NOTIFICATION_CHANNEL,
    RELEASE_CONTROLLER,
    TARGET_OBSERVABILITYPLANE,
    Identity,
    RenderedRelease,
    sanitize_label_value,
)
from controlplane.render.template import ExpressionError, activation, render_string, render_tree
from controlplane.schema import apply_defaults, field_path, to_json_schema
from domain.model import LABEL_ENVIRONMENT, LABEL_NAMESPACE, LABEL_PROJECT

ALERT_RULE_TRAIT = "observability-alert-rule"
TRAIT_FILES = {ALERT_RULE_TRAIT: "observability-alert-rule.yaml"}
MAX_TRAIT_INSTANCES = 100  # a component with more alert traits than this is refused, not rendered half-way


@cache
def _builtin(name: str) -> dict[str, Any]:
    text = resources.files("controlplane").joinpath("traits", TRAIT_FILES[name]).read_text(encoding="utf-8")
    for document in yaml.safe_load_all(text):
        if isinstance(document, dict) and document.get("kind") == "ClusterTrait":
            return document
    raise ValueError(f"{TRAIT_FILES[name]}: no ClusterTrait document")


def builtin_traits() -> dict[str, dict[str, Any]]:
    """The ClusterTraits we ship (name -> document, deep copies): the default `trait_catalog`."""
    return {name: copy.deepcopy(_builtin(name)) for name in TRAIT_FILES}


def default_channel_name(channels: Iterable[Mapping[str, Any]], environment: str) -> str:
    """The name of `environment`'s default channel (`spec.isEnvDefault`) among `channels`, "" when none; the
    alphabetically first when several claim it, so the choice is stable."""
    names = sorted(
        str((channel.get("metadata") or {}).get("name", ""))
        for channel in channels
        if (channel.get("spec") or {}).get("environment") == environment
        and (channel.get("spec") or {}).get("isEnvDefault")
    )
    return names[0] if names else ""


def observability_namespace(namespace: str, *, environment: str = "", project: str = "") -> dict[str, Any]:
    """The Namespace to ensure (never prune) in an observability plane: named after the control-plane namespace,
    labelled `openchoreo.dev/created-by` and the scope names (CPN §1 `ensureNamespaces`). It carries no tracking
    labels on purpose: it may hold other releases' objects and other channels."""
    labels = {LABEL_CREATED_BY: RELEASE_CONTROLLER, LABEL_NAMESPACE: sanitize_label_value(namespace)}
    if environment:
        labels[LABEL_ENVIRONMENT] = sanitize_label_value(environment)
    if project:
        labels[LABEL_PROJECT] = sanitize_label_value(project)
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": labels}}


# ----------------------------------------------------------------------------------------------- alert rules


def render_alert_rules(
    component: Mapping[str, Any],
    binding: Mapping[str, Any],
    environment: Mapping[str, Any],
    project: Mapping[str, Any],
    trait_catalog: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    dataplane: Mapping[str, Any] | None = None,
    default_channel: str = "",
) -> list[dict[str, Any]]:
    """The ObservabilityAlertRule CRs of every alert-rule trait instance of `component` under `binding`.

    `trait_catalog` maps a trait name to its ClusterTrait (default: `builtin_traits()`); `dataplane` is the
    environment's DataPlane/ClusterDataPlane document; `default_channel` the environment's default channel name.
    A binding in state `Undeploy` renders nothing. Raises RenderError naming the trait instance and field.
    """
    if (binding.get("spec") or {}).get("state", "Active") == "Undeploy":
        return []
    catalog = builtin_traits() if trait_catalog is None else trait_catalog
    instances = [t for t in (component.get("spec") or {}).get("traits") or [] if t.get("name") == ALERT_RULE_TRAIT]
    if len(instances) > MAX_TRAIT_INSTANCES:
        raise RenderError(f"more than {MAX_TRAIT_INSTANCES} {ALERT_RULE_TRAIT} traits", field="component.spec.traits")
    if not instances:
        return []
    identity = Identity.of(component, environment, project)
    identity.check_owners(binding)
    release = RenderedRelease.of(binding, TARGET_OBSERVABILITYPLANE)
    rendered: list[dict[str, Any]] = []
    for instance in instances:
        trait = catalog.get(ALERT_RULE_TRAIT)
        instance_name = str(instance.get("instanceName") or "")
        if trait is None:
            raise RenderError(f"no trait named {ALERT_RULE_TRAIT}", trait=instance_name, field="component.spec.traits")
        rendered += _render_instance(
            trait, instance, binding, environment, dataplane, default_channel, identity, release
        )
    return rendered


def _render_instance(
    trait: Mapping[str, Any],
    instance: Mapping[str, Any],
    binding: Mapping[str, Any],
    environment: Mapping[str, Any],
    dataplane: Mapping[str, Any] | None,
    default_channel: str,
    identity: Identity,
    release: RenderedRelease,
) -> list[dict[str, Any]]:
    instance_name = str(instance.get("instanceName") or "")
    if not instance_name:
        raise RenderError("a trait instance needs an instanceName", trait=str(trait["metadata"]["name"]))
    spec = trait.get("spec") or {}
    parameters = _checked(spec.get("parameters"), instance.get("parameters"), instance_name, "parameters")
    overrides = ((binding.get("spec") or {}).get("traitEnvironmentConfigs") or {}).get(instance_name)
    env_configs = _checked(spec.get("environmentConfigs"), overrides, instance_name, "environmentConfigs")
    context = _context(trait, instance_name, parameters, env_configs, environment, dataplane, default_channel, identity)
    variables = activation(context)
    try:
        for index, rule in enumerate(spec.get("validations") or []):
            if render_string(str(rule.get("rule", "")), variables, f"validations[{index}].rule") is not True:
                raise RenderError(
                    str(rule.get("message") or "validation failed"), trait=instance_name, field=f"validations[{index}]"
                )
        out: list[dict[str, Any]] = []
        for index, create in enumerate(spec.get("creates") or []):
            if create.get("targetPlane", "dataplane") != TARGET_OBSERVABILITYPLANE:
                continue
            where = f"creates[{index}]"
            if "includeWhen" in create:
                include = render_tree(create["includeWhen"], variables, f"{where}.includeWhen")
                if not isinstance(include, bool):
                    raise RenderError(
                        f"includeWhen must be a boolean, not {include!r}",
                        trait=instance_name,
                        field=f"{where}.includeWhen",
                    )
                if not include:
                    continue
            document = render_tree(create.get("template") or {}, variables, f"{where}.template")
            out.append(_finish(document, identity, release, f"{instance_name}-{index}", instance_name, where))
        return out
    except ExpressionError as exc:
        raise RenderError(
            exc.reason + f" (expression {exc.expression.strip()!r})", trait=instance_name, field=exc.field
        ) from None


def _checked(schema_holder: Any, value: Any, instance_name: str, what: str) -> dict[str, Any]:
    """`value` defaulted and validated against the trait's `openAPIV3Schema` for `what` (unknown fields refused)."""
    document = copy.deepcopy(dict(value or {}))
    schema = (schema_holder or {}).get("openAPIV3Schema") if isinstance(schema_holder, Mapping) else None
    if not schema:
        return document
    apply_defaults(schema, document)
    validator = jsonschema.Draft202012Validator(to_json_schema(schema, root=False))
    errors = sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        error = errors[0]
        raise RenderError(error.message, trait=instance_name, field=field_path([what, *error.absolute_path]))
    return document


def _context(
    trait: Mapping[str, Any],
    instance_name: str,
    parameters: dict[str, Any],
    env_configs: dict[str, Any],
    environment: Mapping[str, Any],
    dataplane: Mapping[str, Any] | None,
    default_channel: str,
    identity: Identity,
) -> dict[str, Any]:
    environment_view = dict(environment.get("spec") or {})
    environment_view.update(name=identity.environment, uid=identity.environment_uid)
    if default_channel:
        environment_view["defaultNotificationChannel"] = default_channel
    dataplane_view: dict[str, Any] = {}
    dataplane_meta: Mapping[str, Any] = {}
    if dataplane is not None:
        dataplane_view = dict(dataplane.get("spec") or {})
        dataplane_meta = dataplane.get("metadata") or {}
        dataplane_view["name"] = str(dataplane_meta.get("name", ""))
    return {
        "parameters": parameters,
        "environmentConfigs": env_configs,
        "envOverrides": env_configs,
        "metadata": {
            "name": f"{identity.component}-{identity.environment}",
            "namespace": identity.namespace,
            "componentNamespace": identity.namespace,
            "componentName": identity.component,
            "componentUID": identity.component_uid,
            "projectName": identity.project,
            "projectUID": identity.project_uid,
            "environmentName": identity.environment,
            "environmentUID": identity.environment_uid,
            "dataPlaneName": str(dataplane_meta.get("name", "")),
            "dataPlaneUID": str(dataplane_meta.get("uid", "")),
            "labels": identity.labels(),
            "annotations": {},
        },
        "trait": {"name": str(trait["metadata"]["name"]), "instanceName": instance_name},
        "environment": environment_view,
        "dataplane": dataplane_view,
        "gateway": dict((dataplane or {}).get("spec", {}).get("gateway") or {}),
    }


def _finish(
    document: Any, identity: Identity, release: RenderedRelease, resource_id: str, instance_name: str, where: str
) -> dict[str, Any]:
    """The rendered object with its namespace defaulted and identity + tracking labels added (the template's own
    labels win over identity labels; tracking labels always win, the reconciler depends on them)."""
    if not isinstance(document, dict) or not document.get("kind") or not document.get("apiVersion"):
        raise RenderError(
            "the template must render an object with apiVersion and kind",
            trait=instance_name,
            field=f"{where}.template",
        )
    metadata = document.setdefault("metadata", {})
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str) or not metadata["name"]:
        raise RenderError(
            "the template must render metadata.name", trait=instance_name, field=f"{where}.template.metadata.name"
        )
    metadata.setdefault("namespace", identity.namespace)
    own = metadata.get("labels") or {}
    if not isinstance(own, dict):
        raise RenderError(
            "metadata.labels must render a map", trait=instance_name, field=f"{where}.template.metadata.labels"
        )
    metadata["labels"] = {
        **identity.labels(),
        **{str(k): str(v) for k, v in own.items()},
        **release.labels(resource_id),
    }
    return document


# ----------------------------------------------------------------------------------------------- channels


def render_channel(channel: Mapping[str, Any], secrets: Mapping[str, Mapping[str, str]]) -> list[dict[str, Any]]:
    """The ConfigMap and Secret (in that order) of one notification channel, keys as OCN §2.5.

    `secrets` maps a Secret name in the channel's namespace to its decoded data; a reference to a missing Secret or
    key is a RenderError naming the channel field (the value itself is never echoed)."""
    metadata = channel.get("metadata") or {}
    name = str(metadata.get("name") or "")
    namespace = str(metadata.get("namespace") or "")
    if not name or not namespace:
        raise RenderError("the channel needs metadata.name and metadata.namespace", field="metadata")
    spec = channel.get("spec") or {}
    kind = spec.get("type")
    data: dict[str, str] = {"type": str(kind), "isEnvDefault": _bool(spec.get("isEnvDefault", False))}
    secret_data: dict[str, str] = {}
    if kind == "email":
        email = spec.get("emailConfig") or {}
        smtp = email.get("smtp") or {}
        template = email.get("template") or {}
        data["from"] = str(email.get("from", ""))
        data["to"] = "[" + " ".join(str(to) for to in email.get("to") or []) + "]"  # Go's %v of a []string
        data["smtp.host"] = str(smtp.get("host", ""))
        data["smtp.port"] = str(smtp.get("port", ""))
        data["smtp.tls.insecureSkipVerify"] = _bool((smtp.get("tls") or {}).get("insecureSkipVerify", False))
        data["template.subject"] = str(template.get("subject", ""))
        data["template.body"] = str(template.get("body", ""))
        auth = smtp.get("auth") or {}
        for part in ("username", "password"):
            ref = (auth.get(part) or {}).get("secretKeyRef")
            if ref:
                where = f"spec.emailConfig.smtp.auth.{part}.secretKeyRef"
                secret_data[f"smtp.auth.{part}"] = _secret_value(secrets, ref, where)
    elif kind == "webhook":
        webhook = spec.get("webhookConfig") or {}
        data["webhook.url"] = str(webhook.get("url", ""))
        if webhook.get("payloadTemplate"):
            data["webhook.payloadTemplate"] = str(webhook["payloadTemplate"])
        headers = webhook.get("headers") or {}
        if headers:
            data["webhook.headers"] = ",".join(sorted(headers))
        for header in sorted(headers):
            source = headers[header] or {}
            ref = (source.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                where = f"spec.webhookConfig.headers.{header}.valueFrom.secretKeyRef"
                secret_data[f"webhook.header.{header}"] = _secret_value(secrets, ref, where)
            else:
                data[f"webhook.header.{header}"] = str(source.get("value", ""))
    else:
        raise RenderError(f"unsupported channel type {kind!r}", field="spec.type")
    labels = {
        LABEL_NOTIFICATION_CHANNEL: sanitize_label_value(name),
        LABEL_APP_MANAGED_BY: CHANNEL_CONTROLLER,
        LABEL_APP_NAME: sanitize_label_value(name),
    }
    if spec.get("environment"):
        # Ours, beyond upstream's three: the observability-plane agent rebuilds the channel from these objects
        # and takes its environment from this label (OCN §2.5 has no key for it).
        labels[LABEL_ENVIRONMENT] = sanitize_label_value(str(spec["environment"]))
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
            "data": data,
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
            "type": "Opaque",
            "data": {
                key: base64.b64encode(value.encode("utf-8")).decode("ascii") for key, value in secret_data.items()
            },
        },
    ]


def secret_values(secret: Mapping[str, Any]) -> dict[str, str]:
    """A Secret document's data decoded (`data` base64, `stringData` plain and winning, as the API server merges
    them): the shape `render_channel` takes per Secret name."""
    out = {str(k): base64.b64decode(str(v)).decode("utf-8", "replace") for k, v in (secret.get("data") or {}).items()}
    out.update({str(k): str(v) for k, v in (secret.get("stringData") or {}).items()})
    return out


def _secret_value(secrets: Mapping[str, Mapping[str, str]], ref: Mapping[str, Any], where: str) -> str:
    secret = secrets.get(str(ref.get("name", "")))
    if secret is None:
        raise RenderError(f"secret {ref.get('name')!r} not found", field=where)
    key = str(ref.get("key", ""))
    if key not in secret:
        raise RenderError(f"secret {ref.get('name')!r} has no key {key!r}", field=where)
    return str(secret[key])


def _bool(value: Any) -> str:
    return "true" if value is True else "false"
