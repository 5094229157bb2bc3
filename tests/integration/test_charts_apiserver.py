"""Every manifest the charts render, applied to the real kube-apiserver (`kube_api`) with server-side apply and
`dryRun=All`, so the Kubernetes API itself validates every object (as `helm install --server-side` would); and
the RBAC each chart grants, proven sufficient by running the agent's and the collector's own code with a token of
the chart's ServiceAccount: what they do succeeds, a call outside the grant is refused with 403.

CRDs first: the chart's own (ObservabilityAlertRule, from crds/), and for the kinds of operators the charts
reference but do not ship (cert-manager's Issuer and Certificate, prometheus-operator's ServiceMonitor) minimal
CRDs of ours (`THIRD_PARTY_CRDS`): their group, version, kind and scope are the real ones and their schema
requires the fields the real ones require of what the charts render; the rest of each spec is kept unchecked.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ApiException as DynamicApiException

from agents.kube import KubeReplayer, from_kubeconfig
from collectors.kubernetes.pods import PodCache
from collectors.kubernetes.watch import api_client
from devservers.helm import template
from devservers.kube import KubeServer
from devservers.kube_accounts import mint_token, write_kubeconfig
from tests.integration.test_charts_render import CASES, FULL, helm_bin  # noqa: F401  (the session fixture)
from tunnel.frames import TunnelRequest

FIELD_MANAGER = "helm"


def _crd(group: str, kind: str, plural: str, required: dict[str, list[str]]) -> dict[str, Any]:
    """A namespaced v1 CRD whose spec must carry `required[""]` and, under each other key, that object's fields."""
    spec_properties: dict[str, Any] = {
        key: {"type": "object", "required": fields, "x-kubernetes-preserve-unknown-fields": True}
        for key, fields in required.items()
        if key
    }
    spec: dict[str, Any] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    if spec_properties:
        spec["properties"] = spec_properties
    if required.get(""):
        spec["required"] = required[""]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "required": ["spec"],
                            "properties": {"spec": spec},
                        }
                    },
                }
            ],
        },
    }


THIRD_PARTY_CRDS = [
    _crd("cert-manager.io", "Issuer", "issuers", {}),
    _crd("cert-manager.io", "Certificate", "certificates", {"": ["secretName", "issuerRef"], "issuerRef": ["name"]}),
    _crd("monitoring.coreos.com", "ServiceMonitor", "servicemonitors", {"": ["selector", "endpoints"]}),
]


def dynamic(server: KubeServer, directory: Path) -> DynamicClient:
    """A dynamic client with its own discovery cache (new CRDs are seen by a new client)."""
    return DynamicClient(server.api_client(), cache_file=str(directory / f"discovery-{uuid.uuid4().hex}.json"))


def apply(client: DynamicClient, document: dict[str, Any], namespace: str, *, dry_run: bool) -> Any:
    resource = client.resources.get(api_version=document["apiVersion"], kind=document["kind"])
    return resource.server_side_apply(
        body=document,
        name=document["metadata"]["name"],
        namespace=namespace if resource.namespaced else None,
        field_manager=FIELD_MANAGER,
        force_conflicts=True,
        dry_run="All" if dry_run else None,
    )


def wait_established(server: KubeServer, names: list[str], timeout_s: float = 30.0) -> None:
    extensions = k8s.ApiextensionsV1Api(server.api_client())
    deadline = time.monotonic() + timeout_s
    for name in names:
        while True:
            status = extensions.read_custom_resource_definition(name).status
            conditions = (status.conditions if status is not None else None) or []
            if any(c.type == "Established" and c.status == "True" for c in conditions):
                break
            assert time.monotonic() < deadline, f"CRD {name} not established"
            time.sleep(0.1)


@pytest.fixture(scope="module")
def crds_installed(kube_api: KubeServer, helm_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> None:  # noqa: F811
    """The chart's CRDs and the third-party ones, applied for real (server-side apply is idempotent, so a CRD
    another test module installed already is simply kept)."""
    chart_crds = [o for o in template(*CASES["op-embedded"]) if o["kind"] == "CustomResourceDefinition"]
    client = dynamic(kube_api, tmp_path_factory.mktemp("crds"))
    for crd in chart_crds + THIRD_PARTY_CRDS:
        apply(client, crd, "", dry_run=False)
    wait_established(kube_api, [c["metadata"]["name"] for c in chart_crds + THIRD_PARTY_CRDS])


def new_namespace(server: KubeServer, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    k8s.CoreV1Api(server.api_client()).create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name)))
    return name


# ------------------------------------------------------------------------------------------------ dry-run


#: The matrix, and each chart with every value set (PodDisruptionBudget, pull secrets, extra peers, ...).
DRY_RUN_CASES = {**CASES, **{f"full-{chart.name}": (chart, values) for chart, values in FULL.items()}}


@pytest.mark.parametrize("case", sorted(DRY_RUN_CASES))
def test_every_rendered_object_passes_server_side_dry_run(
    kube_api: KubeServer, crds_installed: None, tmp_path: Path, case: str
) -> None:
    namespace = new_namespace(kube_api, case[:40])
    chart, values = DRY_RUN_CASES[case]
    objects = [o for o in template(chart, values, namespace=namespace) if o["kind"] != "CustomResourceDefinition"]
    client = dynamic(kube_api, tmp_path)
    for document in objects:
        applied = apply(client, document, namespace, dry_run=True)
        assert applied.metadata.name == document["metadata"]["name"]
    core = k8s.CoreV1Api(kube_api.api_client())
    assert core.list_namespaced_config_map(namespace).items == [], "a dry run stores nothing"


def test_the_dry_run_refuses_a_broken_object(kube_api: KubeServer, crds_installed: None, tmp_path: Path) -> None:
    """The check has teeth: an object the API server would refuse is refused here too (a probe port that is
    neither a number nor a port name; a Certificate without its issuer)."""
    namespace = new_namespace(kube_api, "broken")
    objects = template(*CASES["op-embedded"], namespace=namespace)
    client = dynamic(kube_api, tmp_path)
    deployment = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "observer")
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["port"] = "not a port!"
    with pytest.raises(DynamicApiException) as caught:
        apply(client, deployment, namespace, dry_run=True)
    assert caught.value.status == 422
    certificate = next(o for o in objects if o["kind"] == "Certificate")
    del certificate["spec"]["issuerRef"]
    with pytest.raises(DynamicApiException) as caught:
        apply(client, certificate, namespace, dry_run=True)
    assert caught.value.status == 422


# ------------------------------------------------------------------------------------------------ RBAC


@pytest.fixture(scope="module")
def installed(kube_api: KubeServer, crds_installed: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The observability-plane chart's ServiceAccounts and RBAC objects applied for real in a new namespace."""
    namespace = new_namespace(kube_api, "op-rbac")
    client = dynamic(kube_api, tmp_path_factory.mktemp("rbac"))
    wanted = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding"}
    for document in template(*CASES["op-embedded"], namespace=namespace):
        if document["kind"] in wanted:
            apply(client, document, namespace, dry_run=False)
    yield namespace


def token_kubeconfig(server: KubeServer, namespace: str, account: str, directory: Path) -> Path:
    """A kubeconfig that authenticates as the chart's ServiceAccount (a minted, bound token)."""
    token_file = directory / f"{account}.token"
    token_file.write_text(mint_token(server, namespace, account))
    return write_kubeconfig(server, directory / f"{account}.kubeconfig", token_file=token_file)


def rule_manifest(namespace: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "openchoreo.dev/v1alpha1",
        "kind": "ObservabilityAlertRule",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "name": name,
            "severity": "critical",
            "source": {"type": "log", "query": "error"},
            "condition": {"window": "5m", "interval": "1m", "operator": "gt", "threshold": 10},
            "actions": {"notifications": {"channels": ["ops"]}},
        },
    }


async def test_the_collector_runs_with_the_chart_s_service_account(
    kube_api: KubeServer, installed: str, tmp_path: Path
) -> None:
    """The collector's own pod cache (collectors/kubernetes/pods.py): its node's pods listed and watched, and a
    pod the watch has not delivered fetched directly; a Secret is refused."""
    namespace = installed
    admin = k8s.CoreV1Api(kube_api.api_client())
    node = f"node-{uuid.uuid4().hex[:6]}"
    pod = k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name="app", namespace=namespace, labels={"app": "shop"}),
        spec=k8s.V1PodSpec(node_name=node, containers=[k8s.V1Container(name="c", image="busybox")]),
    )
    admin.create_namespaced_pod(namespace, pod)
    api = api_client(token_kubeconfig(kube_api, namespace, "collector", tmp_path))
    async with PodCache(api, node, wait_s=5.0) as cache:
        assert await cache.wait_synced(30.0), "the list+watch of this node's pods failed under the chart's RBAC"
        found = cache.lookup(namespace, "app")
        assert found is not None and found.labels["app"] == "shop"
        admin.create_namespaced_pod(
            namespace,
            k8s.V1Pod(
                metadata=k8s.V1ObjectMeta(name="late", namespace=namespace),
                spec=k8s.V1PodSpec(node_name=node, containers=[k8s.V1Container(name="c", image="busybox")]),
            ),
        )
        late = await cache.wait_for(namespace, "late")
        assert late is not None
    core = k8s.CoreV1Api(api)
    # The direct GET the cache makes for a pod its watch has not delivered (whichever came first above).
    fetched = await asyncio.to_thread(core.read_namespaced_pod, "late", namespace)
    assert fetched.spec is not None and fetched.spec.node_name == node
    with pytest.raises(k8s.ApiException) as caught:
        await asyncio.to_thread(core.list_namespaced_secret, namespace)
    assert caught.value.status == 403
    with pytest.raises(k8s.ApiException) as caught:
        await asyncio.to_thread(core.delete_namespaced_pod, "app", namespace)
    assert caught.value.status == 403


async def test_the_agent_runs_with_the_chart_s_service_account(
    kube_api: KubeServer, installed: str, tmp_path: Path
) -> None:
    """The agent's replay (agents/kube.py) and the alert-rule reconciler's calls (agents/alert_rules.py: watch
    rules, ConfigMaps and Secrets everywhere; patch a rule's finalizers and its status) succeed with the chart's
    ClusterRole; what the role does not grant is refused with 403."""
    namespace = installed
    kubeconfig = token_kubeconfig(kube_api, namespace, "cluster-agent", tmp_path)
    api = api_client(kubeconfig)
    custom, core = k8s.CustomObjectsApi(api), k8s.CoreV1Api(api)
    k8s.CustomObjectsApi(kube_api.api_client()).create_namespaced_custom_object(
        "openchoreo.dev", "v1alpha1", namespace, "observabilityalertrules", rule_manifest(namespace, "high-errors")
    )

    listing: Any = custom.list_cluster_custom_object("openchoreo.dev", "v1alpha1", "observabilityalertrules")
    assert "high-errors" in {item["metadata"]["name"] for item in listing["items"]}
    version = listing["metadata"]["resourceVersion"]
    for call in (
        lambda: custom.list_cluster_custom_object(
            "openchoreo.dev",
            "v1alpha1",
            "observabilityalertrules",
            watch=True,
            resource_version=version,
            timeout_seconds=1,
            _preload_content=False,
        ),
        lambda: core.list_config_map_for_all_namespaces(watch=True, timeout_seconds=1, _preload_content=False),
        lambda: core.list_secret_for_all_namespaces(watch=True, timeout_seconds=1, _preload_content=False),
    ):
        response: Any = await asyncio.to_thread(call)
        assert response.status == 200
        # The watch ends after its timeout; read it to the end so the connection can be reused.
        await asyncio.to_thread(response.read)
        response.release_conn()
    custom.patch_namespaced_custom_object(
        "openchoreo.dev",
        "v1alpha1",
        namespace,
        "observabilityalertrules",
        "high-errors",
        {"metadata": {"finalizers": ["openchoreo.dev/alertrule-cleanup"]}},
    )
    status: Any = custom.patch_namespaced_custom_object_status(
        "openchoreo.dev",
        "v1alpha1",
        namespace,
        "observabilityalertrules",
        "high-errors",
        {"status": {"phase": "Synced"}},
    )
    assert status["status"]["phase"] == "Synced"

    async with KubeReplayer(from_kubeconfig(kubeconfig)) as replayer:

        async def send(method: str, path: str, body: dict[str, Any] | None = None, query: str = "") -> int:
            headers = {"Content-Type": ["application/apply-patch+yaml"]} if method == "PATCH" else {}
            request = TunnelRequest(
                request_id=uuid.uuid4().hex,
                target="k8s",
                method=method,
                path=path,
                query=query,
                headers=headers,
                body=json.dumps(body).encode() if body else b"",
            )
            return (await replayer.handle(request)).status_code

        # What the control plane sends through the tunnel: a channel's ConfigMap by server-side apply, reads.
        channel = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "ops", "namespace": namespace},
            "data": {"k": "v"},
        }
        apply_query = "fieldManager=observabilityalertsnotificationchannel-controller&force=true"
        assert await send("PATCH", f"/api/v1/namespaces/{namespace}/configmaps/ops", channel, apply_query) in (200, 201)
        assert await send("GET", f"/api/v1/namespaces/{namespace}/pods") == 200
        assert await send("GET", f"/apis/apps/v1/namespaces/{namespace}/deployments") == 200
        # Outside the grant: nodes, cluster roles, deleting pods.
        assert await send("GET", "/api/v1/nodes") == 403
        assert await send("GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles") == 403
        assert await send("DELETE", f"/api/v1/namespaces/{namespace}/pods/app") == 403
