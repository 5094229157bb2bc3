"""Domain identity from the key/value metadata a record arrives with.

Every collector ends up holding a flat map of keys to values that says where a record came from: OTLP resource
attributes (where the OpenTelemetry `k8sattributes` processor has copied every pod label under its exact key),
Kubernetes pod labels read by the container-log tail, or the `k8s.object.label.*` attributes of a Kubernetes
event. One function turns any of them into an `Identity`, so a record gets the same scope whichever way it came.

Precedence, most specific first:

- OpenChoreo pod labels (`openchoreo.dev/*`) always win: they carry the UIDs queries filter on.
- OpenTelemetry semantic conventions fill in names the labels did not give: `service.name` -> component,
  `service.namespace` -> project, `deployment.environment.name` (or the older `deployment.environment`) ->
  environment. Next to some OpenChoreo labels they never give UIDs (the labels' UIDs are the truth there).
  The SDK's placeholder `unknown_service[:<process>]` is not a component name and is ignored.
- A plain OpenTelemetry application (a `service.name`, no `openchoreo.dev/*` attribute at all, not a workflow
  pod) gets a whole scope from those conventions, so it is queryable by name like any component (see
  `plain_otel_identity`): namespace and project `service.namespace` (else the configured default namespace and
  the project `default`), component `service.name`, environment `deployment.environment.name` /
  `deployment.environment` (else `default`), with UIDs derived from the names (`derived_uid`), so the same
  service is the same component after every restart, in every process that maps it.
- `k8s.namespace.name`, `k8s.pod.name` and `k8s.container.name` say where the record ran (pod_namespace, pod,
  container), and so do `k8s.cluster.name`, `k8s.node.name`, `k8s.pod.ip`, `container.image.name` (+
  `container.image.tag`) and `k8s.pod.label.<key>` (cluster, node, pod_ip, image, labels: what platform logs are
  found by), bounded (`bounded_labels`, MAX_PLACEMENT_CHARS). `identity_attributes` writes all of them back.

The namespace: `openchoreo.dev/namespace`, else, for a Kubernetes namespace named `workflows-<ns>` (where
OpenChoreo runs the workflow pods of namespace `<ns>`), `<ns>`. A Kubernetes namespace is otherwise NOT an
OpenChoreo namespace: workloads run in generated data-plane namespaces (`dp-...`), and system pods in `kube-system`
and the like, and since the embedded registry learns namespaces from the records it stores, using the Kubernetes
namespace would invent OpenChoreo namespaces that do not exist. Such records keep an empty namespace (stored,
but outside every scope) until they arrive with the label.

Workflow runs: `openchoreo.dev/workflow-run`, else the Argo label `workflows.argoproj.io/workflow` names the run;
the Argo pod annotation `workflows.argoproj.io/node-name` (which OpenChoreo matches task names against) is the
task.
"""

from __future__ import annotations

import dataclasses
import functools
import uuid
from collections.abc import Mapping
from typing import Any

from domain.model import (
    LABEL_COMPONENT,
    LABEL_COMPONENT_UID,
    LABEL_ENVIRONMENT,
    LABEL_ENVIRONMENT_UID,
    LABEL_NAMESPACE,
    LABEL_PROJECT,
    LABEL_PROJECT_UID,
    Identity,
)

LABEL_WORKFLOW_RUN = "openchoreo.dev/workflow-run"
ARGO_WORKFLOW_LABEL = "workflows.argoproj.io/workflow"
ARGO_NODE_NAME = "workflows.argoproj.io/node-name"

SERVICE_NAME = "service.name"
SERVICE_NAMESPACE = "service.namespace"
DEPLOYMENT_ENVIRONMENT = ("deployment.environment.name", "deployment.environment")
K8S_NAMESPACE = "k8s.namespace.name"
K8S_POD = "k8s.pod.name"
K8S_CONTAINER = "k8s.container.name"
# Where a record ran, in OpenTelemetry's semantic conventions (the `k8sattributes` processor's names).
K8S_CLUSTER = "k8s.cluster.name"
K8S_NODE = "k8s.node.name"
K8S_POD_IP = "k8s.pod.ip"
IMAGE_NAME = "container.image.name"
IMAGE_TAG = "container.image.tag"
#: A pod label `<key>` travels as the attribute `k8s.pod.label.<key>`.
POD_LABEL_PREFIX = "k8s.pod.label."

#: Bounds of the placement an identity carries, so a pod with a thousand labels or an attacker's OTLP resource
#: cannot make every record it sends (and the per-batch identity tables) huge: at most MAX_LABELS labels (the
#: first by key), a label dropped when its key or value is longer than Kubernetes allows (253 + 1 + 63 for a
#: key, 63 for a value; MAX_LABEL_VALUE leaves room for OTLP resources that are not Kubernetes'), and the other
#: placement fields cut to MAX_PLACEMENT_CHARS.
MAX_LABELS = 64
MAX_LABEL_KEY = 317
MAX_LABEL_VALUE = 256
MAX_PLACEMENT_CHARS = 512

#: Where the scope of a plain OpenTelemetry application comes from when its resource does not say.
DEFAULT_NAMESPACE = "default"
DEFAULT_PROJECT = "default"
DEFAULT_ENVIRONMENT = "default"
#: The prefix every OpenChoreo label has: one of them present means the record is OpenChoreo's, not plain OTel.
OPENCHOREO_PREFIX = "openchoreo.dev/"

#: OpenChoreo runs the workflow pods of namespace `<ns>` in the Kubernetes namespace `workflows-<ns>`.
WORKFLOWS_NAMESPACE_PREFIX = "workflows-"
#: What OpenTelemetry SDKs put in `service.name` when the application did not set one.
_UNKNOWN_SERVICE = "unknown_service"


def _first(attrs: Mapping[str, Any], *keys: str) -> str:
    """The first of `keys` with a non-empty value, as text; "" when none has one."""
    for key in keys:
        value = attrs.get(key)
        if value is not None and value != "":
            return str(value)
    return ""


def identity_from_attributes(
    attrs: Mapping[str, Any], *, default_namespace: str = DEFAULT_NAMESPACE, plain_otel: bool = True
) -> Identity:
    """The identity that resource attributes or pod labels describe. Values that are not strings are turned
    into strings; missing keys leave the field empty. `default_namespace` is the namespace of a plain
    OpenTelemetry application that does not name one (`OBSERVER_DEFAULT_NAMESPACE`); `plain_otel=False` where
    `service.name` is not the record's subject (a Kubernetes event is about its object, not its emitter)."""
    plain = plain_otel_identity(attrs, default_namespace=default_namespace) if plain_otel else None
    if plain is not None:
        return with_placement(plain, attrs)

    def first(*keys: str) -> str:
        return _first(attrs, *keys)

    service = _service_name(attrs)
    pod_namespace = first(K8S_NAMESPACE)
    namespace = first(LABEL_NAMESPACE)
    if not namespace and pod_namespace.startswith(WORKFLOWS_NAMESPACE_PREFIX):
        namespace = pod_namespace[len(WORKFLOWS_NAMESPACE_PREFIX) :]
    identity = Identity(
        namespace=namespace,
        project=first(LABEL_PROJECT, SERVICE_NAMESPACE),
        project_uid=first(LABEL_PROJECT_UID),
        component=first(LABEL_COMPONENT) or service,
        component_uid=first(LABEL_COMPONENT_UID),
        environment=first(LABEL_ENVIRONMENT, *DEPLOYMENT_ENVIRONMENT),
        environment_uid=first(LABEL_ENVIRONMENT_UID),
        pod=first(K8S_POD),
        pod_namespace=pod_namespace,
        container=first(K8S_CONTAINER),
        workflow_run=first(LABEL_WORKFLOW_RUN, ARGO_WORKFLOW_LABEL),
        task=first(ARGO_NODE_NAME),
    )
    return with_placement(identity, attrs)


def with_placement(identity: Identity, attrs: Mapping[str, Any]) -> Identity:
    """`identity` with where it ran as the attributes say (`k8s.cluster.name`, `k8s.node.name`, `k8s.pod.ip`,
    `container.image.name` + `container.image.tag`, `k8s.pod.label.<key>`), bounded; unchanged (the same
    object) when they say nothing, which is the common case of a plain OpenTelemetry application."""
    labels = bounded_labels(
        {key[len(POD_LABEL_PREFIX) :]: value for key, value in attrs.items() if key.startswith(POD_LABEL_PREFIX)}
    )
    name, tag = _first(attrs, IMAGE_NAME), _first(attrs, IMAGE_TAG)
    placement = {
        "cluster": _bounded(_first(attrs, K8S_CLUSTER)),
        "node": _bounded(_first(attrs, K8S_NODE)),
        "pod_ip": _bounded(_first(attrs, K8S_POD_IP)),
        "image": _bounded(f"{name}:{tag}" if name and tag else name),
    }
    changes: dict[str, Any] = {key: value for key, value in placement.items() if value}
    if labels:
        changes["labels"] = labels
    return dataclasses.replace(identity, **changes) if changes else identity


def _bounded(value: str) -> str:
    return value[:MAX_PLACEMENT_CHARS]


def bounded_labels(labels: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """A pod's labels as `Identity.labels` holds them (sorted by key), within the bounds above: labels whose key
    or value is too long are left out, and of the rest only the first MAX_LABELS by key are kept."""
    kept = sorted(
        (str(key), str(value))
        for key, value in labels.items()
        if value is not None and 0 < len(str(key)) <= MAX_LABEL_KEY and len(str(value)) <= MAX_LABEL_VALUE
    )
    return tuple(kept[:MAX_LABELS])


def split_image(image: str) -> tuple[str, str]:
    """An image reference as (`container.image.name`, `container.image.tag`): `repo/app:1.2` -> (`repo/app`,
    `1.2`); a reference by digest or without a tag is all name (a registry's `host:port` is not a tag)."""
    if "@" in image:
        return image, ""
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        return image[:colon], image[colon + 1 :]
    return image, ""


def _service_name(attrs: Mapping[str, Any]) -> str:
    """`service.name`, without the SDK's placeholder for "not set"."""
    service = _first(attrs, SERVICE_NAME)
    return "" if service.startswith(_UNKNOWN_SERVICE) else service


def plain_otel_identity(attrs: Mapping[str, Any], *, default_namespace: str = DEFAULT_NAMESPACE) -> Identity | None:
    """The scope of a plain OpenTelemetry application, or None when the attributes are not one's: no
    `service.name` (or the SDK's placeholder), any `openchoreo.dev/*` key, or an Argo workflow pod.

    namespace and project are `service.namespace` (the OpenTelemetry grouping of services; OpenChoreo's two
    levels above a component have no separate counterpart), else `default_namespace` and `DEFAULT_PROJECT`;
    environment is `deployment.environment.name`, else `deployment.environment`, else `DEFAULT_ENVIRONMENT`.
    The UIDs are `derived_uid` of the names, the same the embedded registry derives for a declared entry
    without one, so a restarted application, a second process mapping it, and a registry file naming it all
    agree on which component it is."""
    service = _service_name(attrs)
    if (
        not service
        or _first(attrs, ARGO_WORKFLOW_LABEL)
        or any(isinstance(key, str) and key.startswith(OPENCHOREO_PREFIX) for key in attrs)
    ):
        return None
    group = _first(attrs, SERVICE_NAMESPACE)
    namespace = group or default_namespace
    project = group or DEFAULT_PROJECT
    environment = _first(attrs, *DEPLOYMENT_ENVIRONMENT) or DEFAULT_ENVIRONMENT
    return Identity(
        namespace=namespace,
        project=project,
        project_uid=derived_uid("project", namespace, project),
        component=service,
        component_uid=derived_uid("component", namespace, service),
        environment=environment,
        environment_uid=derived_uid("environment", namespace, environment),
        pod=_first(attrs, K8S_POD),
        pod_namespace=_first(attrs, K8S_NAMESPACE),
        container=_first(attrs, K8S_CONTAINER),
        task=_first(attrs, ARGO_NODE_NAME),
    )


def identity_attributes(identity: Identity) -> dict[str, str]:
    """The attributes `identity_from_attributes` turns back into `identity`: the inverse mapping, for a
    collector that forwards records over OTLP (collectors/otlp/encode.py). OpenChoreo's label keys carry the
    scope, `k8s.*` where the record ran; empty fields are left out, as they read back as empty.

    One identity does not survive the trip: an empty namespace with a `workflows-<ns>` pod namespace reads
    back as namespace `<ns>`. `identity_from_attributes` never produces it, so records that came through any of
    our collectors never have it."""
    pairs = (
        (LABEL_NAMESPACE, identity.namespace),
        (LABEL_PROJECT, identity.project),
        (LABEL_PROJECT_UID, identity.project_uid),
        (LABEL_COMPONENT, identity.component),
        (LABEL_COMPONENT_UID, identity.component_uid),
        (LABEL_ENVIRONMENT, identity.environment),
        (LABEL_ENVIRONMENT_UID, identity.environment_uid),
        (K8S_POD, identity.pod),
        (K8S_NAMESPACE, identity.pod_namespace),
        (K8S_CONTAINER, identity.container),
        (LABEL_WORKFLOW_RUN, identity.workflow_run),
        (ARGO_NODE_NAME, identity.task),
        (K8S_CLUSTER, identity.cluster),
        (K8S_NODE, identity.node),
        (K8S_POD_IP, identity.pod_ip),
        *zip((IMAGE_NAME, IMAGE_TAG), split_image(identity.image)),
    )
    attributes = {key: value for key, value in pairs if value}
    attributes.update((POD_LABEL_PREFIX + key, value) for key, value in identity.labels)  # "" is a label value too
    return attributes


_DERIVED = uuid.UUID("6b1f3c52-5d1e-4a53-9a0e-0c3f6f7d2a11")


@functools.lru_cache(maxsize=4096)
def derived_uid(kind: str, namespace: str, name: str) -> str:
    """The UID a name gets where nothing declared one (the embedded registry, the demo): stable across processes
    and restarts, so the same name always stores and finds its records under the same UID. Cached: the embedded
    store asks for a namespace's on every batch it learns names from, and a UUIDv5 is a SHA-1."""
    return str(uuid.uuid5(_DERIVED, f"{kind}/{namespace}/{name}"))
