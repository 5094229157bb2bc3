"""Plane-agent identities on the test kube-apiserver (`kube_api`; RBAC and ServiceAccount token signing are on).

What a plane's Helm chart does for its cluster-agent, done by the tests: a ServiceAccount bound to upstream's agent
ClusterRole (CPN §1: deployments get/list/patch + deployments/scale; secrets, configmaps, namespaces *; pods,
events get/list; openchoreo.dev observabilityalertrules *), plus, for a data plane, services and deployment
create/delete (ours: the Service rendering and pruning), and for an observability plane the rules' status
subresource (ours: the agent's alert-rule reconciler reports there). The token is minted with a TokenRequest (as the kubelet
projects one) and written to a file that the kubeconfig names as `tokenFile`, so a test can rotate it.

    account = agent_account(kube_api, tmp_path, "observabilityplane")
    account.kubeconfig   # -> `observer agent --kubeconfig ...`
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s

from devservers.kube import KubeServer, _current_cluster

_OBSERVABILITY_RULES: list[dict[str, Any]] = [
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list", "patch"]},
    {"apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["get", "patch", "update"]},
    {"apiGroups": [""], "resources": ["secrets", "configmaps", "namespaces"], "verbs": ["*"]},
    {"apiGroups": [""], "resources": ["pods", "events"], "verbs": ["get", "list"]},
    {"apiGroups": ["openchoreo.dev"], "resources": ["observabilityalertrules"], "verbs": ["*"]},
]
# Ours: the observability-plane agent's alert-rule reconciler writes each rule's status subresource (upstream's
# separate controller did it with its own account). The observability-plane chart grants the same.
_OBSERVABILITY_EXTRA: list[dict[str, Any]] = [
    {
        "apiGroups": ["openchoreo.dev"],
        "resources": ["observabilityalertrules/status"],
        "verbs": ["get", "patch", "update"],
    },
]
_DATA_PLANE_EXTRA: list[dict[str, Any]] = [
    {"apiGroups": [""], "resources": ["services"], "verbs": ["get", "list", "patch", "create", "delete"]},
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["create", "delete"]},
]


def agent_rules(plane_type: str) -> list[dict[str, Any]]:
    """The ClusterRole rules of a plane's agent."""
    return _OBSERVABILITY_RULES + (_DATA_PLANE_EXTRA if plane_type == "dataplane" else _OBSERVABILITY_EXTRA)


@dataclass(frozen=True)
class AgentAccount:
    namespace: str
    name: str
    token: str
    token_file: Path
    kubeconfig: Path


def agent_account(server: KubeServer, directory: Path, plane_type: str, name: str = "") -> AgentAccount:
    """A fresh namespace + ServiceAccount + ClusterRole(Binding) for a `plane_type` agent, a minted token in
    `<directory>/<name>.token` and a kubeconfig `<directory>/<name>.kubeconfig` that uses it."""
    name = name or f"agent-{uuid.uuid4().hex[:8]}"
    api = server.api_client()
    core, rbac = k8s.CoreV1Api(api), k8s.RbacAuthorizationV1Api(api)
    meta = k8s.V1ObjectMeta(name=name)
    core.create_namespace(k8s.V1Namespace(metadata=meta))
    core.create_namespaced_service_account(name, k8s.V1ServiceAccount(metadata=meta))
    rules = [
        k8s.V1PolicyRule(api_groups=rule["apiGroups"], resources=rule["resources"], verbs=rule["verbs"])
        for rule in agent_rules(plane_type)
    ]
    rbac.create_cluster_role(k8s.V1ClusterRole(metadata=meta, rules=rules))
    rbac.create_cluster_role_binding(
        k8s.V1ClusterRoleBinding(
            metadata=meta,
            role_ref=k8s.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=name),
            subjects=[k8s.RbacV1Subject(kind="ServiceAccount", name=name, namespace=name)],
        )
    )
    token = mint_token(server, name, name)
    directory.mkdir(parents=True, exist_ok=True)
    token_file = directory / f"{name}.token"
    token_file.write_text(token)
    kubeconfig = write_kubeconfig(server, directory / f"{name}.kubeconfig", token_file=token_file)
    return AgentAccount(name, name, token, token_file, kubeconfig)


def mint_token(server: KubeServer, namespace: str, name: str, seconds: int = 3600) -> str:
    """A bound ServiceAccount token from the TokenRequest API (audience: the API server's own)."""
    core = k8s.CoreV1Api(server.api_client())
    request = k8s.AuthenticationV1TokenRequest(spec=k8s.V1TokenRequestSpec(audiences=[], expiration_seconds=seconds))
    response = core.create_namespaced_service_account_token(name, namespace, request)
    if response.status is None or not response.status.token:
        raise RuntimeError(f"the TokenRequest for {namespace}/{name} returned no token")
    return str(response.status.token)


def admin_token(server: KubeServer) -> str:
    """The admin bearer token of the server's own kubeconfig (a credential the agent must never forward)."""
    document = yaml.safe_load(server.kubeconfig.read_text())
    return str(document["users"][0]["user"]["token"])


def write_kubeconfig(server: KubeServer, path: Path, *, token_file: Path, server_url: str = "") -> Path:
    """A kubeconfig for the server (its CA, optionally another `server_url`, e.g. a relay or a dead port) that
    authenticates with the token in `token_file`."""
    cluster = dict(_current_cluster(yaml.safe_load(server.kubeconfig.read_text())))
    if server_url:
        cluster["server"] = server_url
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "plane", "cluster": cluster}],
        "users": [{"name": "agent", "user": {"tokenFile": str(token_file)}}],
        "contexts": [{"name": "agent", "context": {"cluster": "plane", "user": "agent"}}],
        "current-context": "agent",
    }
    path.write_text(yaml.safe_dump(document))
    return path
