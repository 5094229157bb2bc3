"""The resource kinds the control plane serves: one table, read by the validator, the store and the REST router.

Every fact about a kind lives in its row, so adding a kind is one line here and one CRD file in `crds/`. The
path segments and parameter names are those of OpenChoreo's `openchoreo-api.yaml`, so OpenChoreo's CLI, portal
and the observer's `OpenChoreoResolver` reach the same URLs they reach upstream.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

GROUP = "openchoreo.dev"
VERSION = "v1alpha1"
API_PREFIX = "/api/v1"


@dataclass(frozen=True)
class Kind:
    """One resource kind: its Kubernetes identity, its REST location and the CRD file that validates it."""

    kind: str
    plural: str
    namespaced: bool
    # The collection's last path segment in openchoreo-api.yaml (`/api/v1/namespaces/{namespaceName}/<segment>`
    # for namespaced kinds, `/api/v1/<segment>` for cluster ones) and the item's path parameter name there.
    path_segment: str
    path_param: str
    # A file in controlplane/crds/ (package data).
    crd_file: str
    group: str = GROUP
    version: str = VERSION
    # List filters beyond labelSelector: query parameter -> the dotted field it matches.
    list_filters: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def api_version(self) -> str:
        """`group/version`, or the bare version for the core group (Namespace is core `v1`)."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def scope(self) -> str:
        """The CRD's `spec.scope` spelling."""
        return "Namespaced" if self.namespaced else "Cluster"

    def collection_path(self, namespace: str | None = None) -> str:
        """The collection URL path; a namespaced kind needs its namespace (raises ValueError without one)."""
        if not self.namespaced:
            return f"{API_PREFIX}/{self.path_segment}"
        if not namespace:
            raise ValueError(f"{self.kind} is namespaced: a namespace is required")
        return f"{API_PREFIX}/namespaces/{namespace}/{self.path_segment}"

    def item_path(self, name: str, namespace: str | None = None) -> str:
        """One object's URL path."""
        return f"{self.collection_path(namespace)}/{name}"


def _filters(**pairs: str) -> Mapping[str, str]:
    return MappingProxyType(dict(pairs))


_N = "openchoreo.dev_"

KINDS: tuple[Kind, ...] = (
    # Namespace is core v1 and Cluster-scoped; its collection is /api/v1/namespaces (openchoreo-api.yaml l.191).
    Kind("Namespace", "namespaces", False, "namespaces", "namespaceName", "namespaces.yaml", group="", version="v1"),
    # Core v1 too, ours (not in openchoreo-api.yaml): the Secrets plane CRs and channels point at. The API never
    # returns their values (controlplane/api.py); reconcilers read them with Store.secret_value.
    Kind("Secret", "secrets", True, "secrets", "secretName", "secrets.yaml", group="", version="v1"),
    Kind("Project", "projects", True, "projects", "projectName", _N + "projects.yaml"),
    Kind(
        "Component",
        "components",
        True,
        "components",
        "componentName",
        _N + "components.yaml",
        list_filters=_filters(project="spec.owner.projectName"),
    ),
    Kind(
        "Workload",
        "workloads",
        True,
        "workloads",
        "workloadName",
        _N + "workloads.yaml",
        list_filters=_filters(component="spec.owner.componentName"),
    ),
    Kind("Environment", "environments", True, "environments", "envName", _N + "environments.yaml"),
    Kind(
        "DeploymentPipeline",
        "deploymentpipelines",
        True,
        "deploymentpipelines",
        "deploymentPipelineName",
        _N + "deploymentpipelines.yaml",
    ),
    Kind("DataPlane", "dataplanes", True, "dataplanes", "dpName", _N + "dataplanes.yaml"),
    # Ours, derived from dataplanes.yaml: the reference has no ClusterDataPlane CRD (see the file's header).
    Kind("ClusterDataPlane", "clusterdataplanes", False, "clusterdataplanes", "cdpName", _N + "clusterdataplanes.yaml"),
    Kind(
        "ObservabilityPlane",
        "observabilityplanes",
        True,
        "observabilityplanes",
        "observabilityPlaneName",
        _N + "observabilityplanes.yaml",
    ),
    Kind(
        "ClusterObservabilityPlane",
        "clusterobservabilityplanes",
        False,
        "clusterobservabilityplanes",
        "clusterObservabilityPlaneName",
        _N + "clusterobservabilityplanes.yaml",
    ),
    Kind(
        "ReleaseBinding",
        "releasebindings",
        True,
        "releasebindings",
        "releaseBindingName",
        _N + "releasebindings.yaml",
        list_filters=_filters(component="spec.owner.componentName"),
    ),
    Kind(
        "ObservabilityAlertsNotificationChannel",
        "observabilityalertsnotificationchannels",
        True,
        "observabilityalertsnotificationchannels",
        "observabilityAlertsNotificationChannelName",
        _N + "observabilityalertsnotificationchannels.yaml",
    ),
    Kind("AuthzRole", "authzroles", True, "authzroles", "name", _N + "authzroles.yaml"),
    Kind("AuthzRoleBinding", "authzrolebindings", True, "authzrolebindings", "name", _N + "authzrolebindings.yaml"),
    Kind("ClusterAuthzRole", "clusterauthzroles", False, "clusterauthzroles", "name", _N + "clusterauthzroles.yaml"),
    Kind(
        "ClusterAuthzRoleBinding",
        "clusterauthzrolebindings",
        False,
        "clusterauthzrolebindings",
        "name",
        _N + "clusterauthzrolebindings.yaml",
    ),
)

BY_KIND: Mapping[str, Kind] = MappingProxyType({k.kind: k for k in KINDS})
BY_PLURAL: Mapping[str, Kind] = MappingProxyType({k.plural: k for k in KINDS})


def get(kind: str) -> Kind:
    """The row for `kind` (exact spelling, as in a manifest's `kind:`); KeyError names the kinds we serve."""
    try:
        return BY_KIND[kind]
    except KeyError:
        raise KeyError(f"unknown kind {kind!r}; known: {', '.join(BY_KIND)}") from None
