"""What one ReleaseBinding puts into its data plane: a Namespace, a Deployment, a Service and a files ConfigMap.

Upstream renders through ComponentTypes (CEL templates per type); that machinery is out of scope, so this is the
built-in renderer every `deployment/*` component type gets (plan §4):
- Namespace `dp-<ns>-<project>-<env>`, shared by the project's components in that environment: ensured, never
  owned (no tracking labels, see `_namespace`; `labels.is_tracked` tells the reconciler which objects to prune);
- Deployment named after the component: replicas and `resources` from the binding's
  `componentTypeEnvironmentConfigs`, the container from the Workload's `spec.container` with the binding's
  `workloadOverrides.container` env and files merged over it (same key: the override wins), container ports from
  `spec.endpoints`;
- Service named after the component, only when the workload has endpoints (one port per endpoint, ClusterIP);
- ConfigMap `<component>-files` when the container has literal files; files from a secret mount that Secret.
Every object carries the identity labels (the pod template too, so our collectors attribute its telemetry) and the
tracking labels of the binding's data-plane release. A binding in state `Undeploy` renders nothing, so the
reconciler prunes everything it had put there.

Pure: documents in, Kubernetes objects out (plain dicts, ready for server-side apply), the same output for the same
input, keys in a fixed order.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Mapping
from typing import Any

from controlplane.render.errors import RenderError
from controlplane.render.labels import (
    LABEL_CREATED_BY,
    RELEASE_CONTROLLER,
    TARGET_DATAPLANE,
    Identity,
    RenderedRelease,
    dataplane_namespace,
    sanitize_name,
)
from domain.model import LABEL_ENVIRONMENT, LABEL_ENVIRONMENT_UID, LABEL_NAMESPACE, LABEL_PROJECT, LABEL_PROJECT_UID

CONTAINER_NAME = "main"
FILES_VOLUME = "files"
_PORT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def render_release(
    component: Mapping[str, Any],
    workload: Mapping[str, Any],
    binding: Mapping[str, Any],
    environment: Mapping[str, Any],
    project: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """The data-plane objects of `binding` (Namespace first, so an in-order apply creates it before the rest)."""
    binding_spec = binding.get("spec") or {}
    if binding_spec.get("state", "Active") == "Undeploy":
        return []
    identity = Identity.of(component, environment, project)
    identity.check_owners(binding, workload)
    release = RenderedRelease.of(binding, TARGET_DATAPLANE)
    namespace = dataplane_namespace(identity.namespace, identity.project, identity.environment)
    workload_spec = workload.get("spec") or {}
    container_spec = workload_spec.get("container") or {}
    if not container_spec.get("image"):
        raise RenderError("the workload has no container image", field="workload.spec.container.image")
    overrides = (binding_spec.get("workloadOverrides") or {}).get("container") or {}
    env_config = binding_spec.get("componentTypeEnvironmentConfigs") or {}
    endpoints = workload_spec.get("endpoints") or {}
    name = sanitize_name(identity.component)

    def meta(object_name: str, resource_id: str) -> dict[str, Any]:
        labels = {**identity.labels(), **release.labels(resource_id)}
        return {"name": object_name, "namespace": namespace, "labels": labels}

    objects: list[dict[str, Any]] = [_namespace(namespace, identity)]
    files = _merge_by_key(container_spec.get("files"), overrides.get("files"))
    literal_files = [item for item in files if "valueFrom" not in item]
    files_configmap = sanitize_name(f"{identity.component}-files")
    if literal_files:
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": meta(files_configmap, "files"),
                "data": {_file_item(item): str(item.get("value", "")) for item in literal_files},
            }
        )
    pod_spec = _pod_spec(container_spec, overrides, env_config, endpoints, files, files_configmap)
    objects.append(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta(name, "deployment"),
            "spec": {
                "replicas": _replicas(env_config),
                "selector": {"matchLabels": identity.selector()},
                "template": {"metadata": {"labels": identity.labels()}, "spec": pod_spec},
            },
        }
    )
    if endpoints:
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": meta(name, "service"),
                "spec": {
                    "type": "ClusterIP",
                    "selector": identity.selector(),
                    "ports": [
                        {
                            "name": _port_name(endpoint_name),
                            "port": int(endpoint["port"]),
                            "targetPort": int(endpoint.get("targetPort") or endpoint["port"]),
                            "protocol": _protocol(endpoint),
                        }
                        for endpoint_name, endpoint in sorted(endpoints.items())
                    ],
                },
            }
        )
    return objects


def _namespace(name: str, identity: Identity) -> dict[str, Any]:
    """The shared namespace of a project in an environment: every component's release ensures it, none owns it.
    It carries no tracking labels ON PURPOSE: it holds other components' objects, so no release may prune it
    (upstream's `ensureNamespaces` likewise), and its labels are the same whichever release applies them."""
    scope = identity.labels()
    labels = {LABEL_CREATED_BY: RELEASE_CONTROLLER}
    labels.update(
        {
            key: scope[key]
            for key in (LABEL_NAMESPACE, LABEL_PROJECT, LABEL_PROJECT_UID, LABEL_ENVIRONMENT, LABEL_ENVIRONMENT_UID)
        }
    )
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def _replicas(env_config: Mapping[str, Any]) -> int:
    replicas = env_config.get("replicas", 1)
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
        raise RenderError(
            f"replicas must be a non-negative integer, not {replicas!r}",
            field="binding.spec.componentTypeEnvironmentConfigs.replicas",
        )
    return replicas


def _pod_spec(
    container_spec: Mapping[str, Any],
    overrides: Mapping[str, Any],
    env_config: Mapping[str, Any],
    endpoints: Mapping[str, Any],
    files: list[Mapping[str, Any]],
    files_configmap: str,
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": CONTAINER_NAME, "image": container_spec["image"]}
    if container_spec.get("command"):
        container["command"] = list(container_spec["command"])
    if container_spec.get("args"):
        container["args"] = list(container_spec["args"])
    env = _merge_by_key(container_spec.get("env"), overrides.get("env"))
    if env:
        container["env"] = [_env_var(item) for item in env]
    if endpoints:
        container["ports"] = [
            {
                "name": _port_name(endpoint_name),
                "containerPort": int(endpoint.get("targetPort") or endpoint["port"]),
                "protocol": _protocol(endpoint),
            }
            for endpoint_name, endpoint in sorted(endpoints.items())
        ]
    resources = env_config.get("resources")
    if isinstance(resources, Mapping) and resources:
        container["resources"] = {
            part: dict(resources[part]) for part in ("requests", "limits") if isinstance(resources.get(part), Mapping)
        }
    pod: dict[str, Any] = {"containers": [container]}
    if files:
        volumes, mounts = _file_volumes(files, files_configmap)
        container["volumeMounts"] = mounts
        pod["volumes"] = volumes
    return pod


def _merge_by_key(base: Any, override: Any) -> list[Mapping[str, Any]]:
    """Base entries in their order, each replaced by the override of the same `key`; new override keys appended."""
    merged: dict[str, Mapping[str, Any]] = {}
    for item in [*(base or []), *(override or [])]:
        merged[str(item["key"])] = item
    return list(merged.values())


def _env_var(item: Mapping[str, Any]) -> dict[str, Any]:
    ref = (item.get("valueFrom") or {}).get("secretKeyRef")
    if ref:
        return {"name": item["key"], "valueFrom": {"secretKeyRef": {"name": ref["name"], "key": ref["key"]}}}
    return {"name": item["key"], "value": str(item.get("value", ""))}


def _file_item(item: Mapping[str, Any]) -> str:
    """A ConfigMap key for a file: its own key when legal there, else a hash (two mount paths may share a key)."""
    key = str(item["key"])
    mount = str(item.get("mountPath", ""))
    if re.match(r"^[-._a-zA-Z0-9]+$", key) and len(key) <= 253:
        return key
    return "file-" + hashlib.sha256(f"{mount}\0{key}".encode()).hexdigest()[:12]


def _file_volumes(
    files: list[Mapping[str, Any]], files_configmap: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One volume for the literal files (the ConfigMap) and one per referenced secret; each file mounted on its
    own at `<mountPath>/<key>` via subPath, so files from different sources can share a directory."""
    volumes: dict[str, dict[str, Any]] = {}
    mounts: list[dict[str, Any]] = []
    for item in files:
        path = posixpath.join(str(item["mountPath"]), str(item["key"]))
        ref = (item.get("valueFrom") or {}).get("secretKeyRef")
        if ref:
            volume = sanitize_name(f"secret-{ref['name']}")
            volumes.setdefault(volume, {"name": volume, "secret": {"secretName": ref["name"]}})
            mounts.append({"name": volume, "mountPath": path, "subPath": str(ref["key"]), "readOnly": True})
        else:
            volumes.setdefault(FILES_VOLUME, {"name": FILES_VOLUME, "configMap": {"name": files_configmap}})
            mounts.append({"name": FILES_VOLUME, "mountPath": path, "subPath": _file_item(item), "readOnly": True})
    return sorted(volumes.values(), key=lambda volume: str(volume["name"])), mounts


def _port_name(endpoint_name: str) -> str:
    """A port name is an IANA service name (at most 15, lowercase alphanumerics and `-`, a letter somewhere);
    an endpoint name that is not one gets `ep-<hash>`."""
    if len(endpoint_name) <= 15 and _PORT_NAME.match(endpoint_name) and re.search("[a-z]", endpoint_name):
        return endpoint_name
    return "ep-" + hashlib.sha256(endpoint_name.encode()).hexdigest()[:8]


def _protocol(endpoint: Mapping[str, Any]) -> str:
    return "UDP" if endpoint.get("type") == "UDP" else "TCP"
