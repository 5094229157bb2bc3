"""The labels every rendered object carries, and the sanitizer that keeps names and label values legal.

Two families:
- identity labels (`openchoreo.dev/namespace|project|project-uid|component|component-uid|environment|
  environment-uid`): exactly the keys `domain/identity.py` maps from a pod into a record's scope, so telemetry from
  what we deploy is attributed without any other configuration;
- tracking labels (`openchoreo.dev/managed-by=renderedrelease-controller`, `openchoreo.dev/rendered-release-*`,
  CPN §1): the reconciler lists live objects by them to find what it owns, prune what is no longer rendered and
  read health back.

Kubernetes limits names (DNS-1123 label: lowercase alphanumerics and `-`, at most 63) and label values (at most
63, alphanumerics, `-`, `_`, `.`, alphanumeric at both ends). Inputs that break a rule are cleaned and get an
8-hex hash of the original, so two different inputs never collide on one cleaned value and the result is stable.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controlplane.render.errors import RenderError
from domain.model import (
    LABEL_COMPONENT,
    LABEL_COMPONENT_UID,
    LABEL_ENVIRONMENT,
    LABEL_ENVIRONMENT_UID,
    LABEL_NAMESPACE,
    LABEL_PROJECT,
    LABEL_PROJECT_UID,
)

MAX_NAME = 63
MAX_LABEL_VALUE = 63

LABEL_MANAGED_BY = "openchoreo.dev/managed-by"
LABEL_CREATED_BY = "openchoreo.dev/created-by"
LABEL_RELEASE_RESOURCE_ID = "openchoreo.dev/rendered-release-resource-id"
LABEL_RELEASE_UID = "openchoreo.dev/rendered-release-uid"
LABEL_RELEASE_NAME = "openchoreo.dev/rendered-release-name"
LABEL_RELEASE_NAMESPACE = "openchoreo.dev/rendered-release-namespace"
LABEL_NOTIFICATION_CHANNEL = "openchoreo.dev/notification-channel-name"
LABEL_APP_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_APP_NAME = "app.kubernetes.io/name"

#: The field owners (server-side apply) and `managed-by` values of upstream's two controllers.
RELEASE_CONTROLLER = "renderedrelease-controller"
CHANNEL_CONTROLLER = "observabilityalertsnotificationchannel-controller"

TARGET_DATAPLANE = "dataplane"
TARGET_OBSERVABILITYPLANE = "observabilityplane"

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_HASH_LEN = 8


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:_HASH_LEN]


def _with_hash(cleaned: str, original: str, limit: int, trim: str) -> str:
    """`cleaned` cut so that `-<hash>` fits within `limit`; the cut never leaves a separator before the dash."""
    head = cleaned[: limit - _HASH_LEN - 1].rstrip(trim)
    return f"{head}-{_digest(original)}" if head else _digest(original)


def sanitize_name(value: str, limit: int = MAX_NAME) -> str:
    """A DNS-1123 label (at most `limit`): `value` itself when legal, else cleaned with a hash of `value`."""
    if len(value) <= limit and _NAME.match(value):
        return value
    cleaned = re.sub(r"[^a-z0-9-]+", "-", value.lower()).strip("-")
    cleaned = re.sub(r"-{2,}", "-", cleaned)
    return _with_hash(cleaned, value, limit, "-")


def sanitize_label_value(value: str) -> str:
    """A legal label value: `value` itself when legal, else cleaned with a hash of `value`."""
    if len(value) <= MAX_LABEL_VALUE and _LABEL_VALUE.match(value):
        return value
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", value).strip("-_.")
    return _with_hash(cleaned, value, MAX_LABEL_VALUE, "-_.")


def _meta(document: Mapping[str, Any], what: str, key: str) -> str:
    value = (document.get("metadata") or {}).get(key)
    if not isinstance(value, str) or not value:
        raise RenderError(f"the {what} has no metadata.{key}", field=f"{what}.metadata.{key}")
    return value


@dataclass(frozen=True, slots=True)
class Identity:
    """The scope of one component in one environment, names and UIDs, as read from the stored documents."""

    namespace: str
    project: str
    project_uid: str
    component: str
    component_uid: str
    environment: str
    environment_uid: str

    @classmethod
    def of(cls, component: Mapping[str, Any], environment: Mapping[str, Any], project: Mapping[str, Any]) -> Identity:
        """Built from the Component, Environment and Project documents (each must carry metadata.uid, which the
        store sets; a missing one is a RenderError rather than an unattributable pod)."""
        return cls(
            namespace=_meta(component, "component", "namespace"),
            project=_meta(project, "project", "name"),
            project_uid=_meta(project, "project", "uid"),
            component=_meta(component, "component", "name"),
            component_uid=_meta(component, "component", "uid"),
            environment=_meta(environment, "environment", "name"),
            environment_uid=_meta(environment, "environment", "uid"),
        )

    def check_owners(self, binding: Mapping[str, Any], workload: Mapping[str, Any] | None = None) -> None:
        """The documents must describe this one component in this one environment: a wiring mistake (another
        component's workload, another environment's binding) is a RenderError, not objects under wrong labels."""
        binding_spec = binding.get("spec") or {}
        binding_owner = binding_spec.get("owner") or {}
        checks = [
            ("binding.spec.owner.componentName", binding_owner.get("componentName"), self.component),
            ("binding.spec.owner.projectName", binding_owner.get("projectName"), self.project),
            ("binding.spec.environment", binding_spec.get("environment"), self.environment),
        ]
        if workload is not None:
            workload_owner = (workload.get("spec") or {}).get("owner") or {}
            checks[:0] = [
                ("workload.spec.owner.componentName", workload_owner.get("componentName"), self.component),
                ("workload.spec.owner.projectName", workload_owner.get("projectName"), self.project),
            ]
        for field, found, expected in checks:
            if found != expected:
                raise RenderError(f"{found!r} does not match {expected!r}", field=field)

    def labels(self) -> dict[str, str]:
        """The seven `openchoreo.dev/*` identity labels (values made legal)."""
        pairs = {
            LABEL_NAMESPACE: self.namespace,
            LABEL_PROJECT: self.project,
            LABEL_PROJECT_UID: self.project_uid,
            LABEL_COMPONENT: self.component,
            LABEL_COMPONENT_UID: self.component_uid,
            LABEL_ENVIRONMENT: self.environment,
            LABEL_ENVIRONMENT_UID: self.environment_uid,
        }
        return {key: sanitize_label_value(value) for key, value in pairs.items()}

    def selector(self) -> dict[str, str]:
        """The pod selector of a Deployment and Service: the two UIDs, which never change for the life of the
        component and environment (a Deployment's selector is immutable), so a rename never orphans pods."""
        return {
            LABEL_COMPONENT_UID: sanitize_label_value(self.component_uid),
            LABEL_ENVIRONMENT_UID: sanitize_label_value(self.environment_uid),
        }


@dataclass(frozen=True, slots=True)
class RenderedRelease:
    """What upstream calls a RenderedRelease: the set of objects one binding puts into one target plane."""

    name: str
    namespace: str
    uid: str
    target_plane: str

    @classmethod
    def of(cls, binding: Mapping[str, Any], target_plane: str) -> RenderedRelease:
        """One per (binding, target plane). The name is the binding's for the data plane and
        `<binding>-observability` for the observability plane; the uid is derived (uuid5) from the binding's uid
        and the plane, so the two releases of one binding never claim each other's objects even when both planes
        are the same cluster, and re-rendering yields the same labels."""
        name = _meta(binding, "binding", "name")
        namespace = _meta(binding, "binding", "namespace")
        binding_uid = _meta(binding, "binding", "uid")
        try:
            base = uuid.UUID(binding_uid)
        except ValueError:
            base = uuid.uuid5(uuid.NAMESPACE_URL, binding_uid)
        suffix = "" if target_plane == TARGET_DATAPLANE else "-observability"
        return cls(
            name=sanitize_name(name + suffix),
            namespace=namespace,
            uid=str(uuid.uuid5(base, target_plane)),
            target_plane=target_plane,
        )

    def labels(self, resource_id: str) -> dict[str, str]:
        """The tracking labels of one rendered object (`resource_id` names it within the release)."""
        return {
            LABEL_MANAGED_BY: RELEASE_CONTROLLER,
            LABEL_RELEASE_RESOURCE_ID: sanitize_label_value(resource_id),
            LABEL_RELEASE_UID: self.uid,
            LABEL_RELEASE_NAME: sanitize_label_value(self.name),
            LABEL_RELEASE_NAMESPACE: sanitize_label_value(self.namespace),
        }

    def selector(self) -> str:
        """The label selector that lists every live object of this release (for inventory and pruning)."""
        return f"{LABEL_MANAGED_BY}={RELEASE_CONTROLLER},{LABEL_RELEASE_UID}={self.uid}"


def is_tracked(obj: Mapping[str, Any]) -> bool:
    """Whether a rendered object belongs to a release (apply, list, prune) or is only ensured (a shared
    Namespace: apply, never prune)."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return labels.get(LABEL_MANAGED_BY) == RELEASE_CONTROLLER and LABEL_RELEASE_UID in labels


def dataplane_namespace(namespace: str, project: str, environment: str) -> str:
    """`dp-<ns>-<project>-<env>`, a legal namespace name (hash-suffixed when longer than 63)."""
    return sanitize_name(f"dp-{namespace}-{project}-{environment}")
