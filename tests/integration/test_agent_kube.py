"""The agent's replay against the real kube-apiserver (agents/kube.py) with a ServiceAccount token minted for it
(devservers/kube_accounts.py): its own credentials always, never the caller's; refused and unknown requests never
reach the backend; a failed backend is a 502 answer, not an exception."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import yaml
from kubernetes import client as k8s

from agents.kube import KubeReplayer, KubeTarget, from_kubeconfig
from devservers.kube import KubeServer
from devservers.kube_accounts import AgentAccount, admin_token, agent_account, mint_token, write_kubeconfig
from devservers.local import free_port
from devservers.tls_proxy import make_ca
from tunnel.frames import TunnelRequest, TunnelResponse


@pytest.fixture(scope="module")
def account(kube_api: KubeServer, tmp_path_factory: pytest.TempPathFactory) -> AgentAccount:
    return agent_account(kube_api, tmp_path_factory.mktemp("agent-kube"), "observabilityplane")


@pytest.fixture(scope="module")
def target(account: AgentAccount) -> KubeTarget:
    return from_kubeconfig(account.kubeconfig)


async def replay(target: KubeTarget, request: TunnelRequest, **options: int) -> TunnelResponse:
    async with KubeReplayer(target, **options) as replayer:
        return await replayer.handle(request)


def get(
    path: str, *, target: str = "k8s", query: str = "", headers: dict[str, list[str]] | None = None
) -> TunnelRequest:
    return TunnelRequest(request_id="r-1", target=target, method="GET", path=path, query=query, headers=headers or {})


def dead_target(kube_api: KubeServer, account: AgentAccount, tmp_path: Path) -> KubeTarget:
    """The agent's credentials, pointed at a loopback port where nothing listens."""
    path = write_kubeconfig(
        kube_api,
        tmp_path / "dead.kubeconfig",
        token_file=account.token_file,
        server_url=f"https://127.0.0.1:{free_port()}",
    )
    return from_kubeconfig(path)


async def test_a_get_runs_with_the_service_account(target: KubeTarget, account: AgentAccount) -> None:
    response = await replay(target, get(f"/api/v1/namespaces/{account.namespace}"))
    assert response.request_id == "r-1" and response.error is None
    assert response.status_code == 200
    assert json.loads(response.body)["metadata"]["name"] == account.namespace
    assert response.headers["Content-Type"] == ["application/json"]


async def test_an_inbound_authorization_header_is_not_used(
    kube_api: KubeServer, target: KubeTarget, account: AgentAccount
) -> None:
    admin = admin_token(kube_api)
    path = f"/api/v1/namespaces/{account.namespace}/serviceaccounts"  # the agent's role does not cover these
    assert k8s.CoreV1Api(kube_api.api_client()).list_namespaced_service_account(account.namespace).items  # admin may
    response = await replay(target, get(path, headers={"Authorization": [f"Bearer {admin}"], "authorization": ["x"]}))
    assert response.status_code == 403
    status = json.loads(response.body)
    assert status["reason"] == "Forbidden"
    assert f"system:serviceaccount:{account.namespace}:{account.name}" in status["message"]


async def test_without_a_token_of_its_own_the_inbound_authorization_is_still_dropped(
    kube_api: KubeServer, account: AgentAccount, tmp_path: Path
) -> None:
    empty = tmp_path / "empty.token"
    empty.write_text("")
    target = from_kubeconfig(write_kubeconfig(kube_api, tmp_path / "anonymous.kubeconfig", token_file=empty))
    admin = admin_token(kube_api)
    response = await replay(
        target, get(f"/api/v1/namespaces/{account.namespace}", headers={"Authorization": [f"Bearer {admin}"]})
    )
    assert response.status_code in (401, 403)  # anonymous, not the admin the header names
    assert "system:anonymous" in response.body.decode() or response.status_code == 401


async def test_server_side_apply_goes_through_with_body_query_and_content_type(
    target: KubeTarget, account: AgentAccount
) -> None:
    body = json.dumps(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "channel"}, "data": {"to": "[a@x b@y]"}}
    ).encode()
    request = TunnelRequest(
        request_id="apply-1",
        target="k8s",
        method="PATCH",
        path=f"/api/v1/namespaces/{account.namespace}/configmaps/channel",
        query="fieldManager=renderedrelease-controller&force=true",
        headers={"Content-Type": ["application/apply-patch+yaml"]},
        body=body,
    )
    response = await replay(target, request)
    assert response.status_code in (200, 201), response.body
    stored = json.loads((await replay(target, get(f"/api/v1/namespaces/{account.namespace}/configmaps/channel"))).body)
    assert stored["data"] == {"to": "[a@x b@y]"}
    assert stored["metadata"]["managedFields"][0]["manager"] == "renderedrelease-controller"


async def test_the_token_file_is_read_again_for_each_request(
    kube_api: KubeServer, account: AgentAccount, tmp_path: Path
) -> None:
    core = k8s.CoreV1Api(kube_api.api_client())
    core.create_namespaced_service_account(
        account.namespace, k8s.V1ServiceAccount(metadata=k8s.V1ObjectMeta(name="nobody"))
    )
    token_file = tmp_path / "token"
    token_file.write_text(account.token)
    target = from_kubeconfig(write_kubeconfig(kube_api, tmp_path / "kubeconfig", token_file=token_file))
    path = f"/api/v1/namespaces/{account.namespace}"
    assert (await replay(target, get(path))).status_code == 200
    token_file.write_text(mint_token(kube_api, account.namespace, "nobody"))  # rotated to an SA without rights
    assert (await replay(target, get(path))).status_code == 403


@pytest.mark.parametrize(
    ("method", "path", "query", "headers", "status", "message"),
    [
        ("GET", "/api/v1/namespaces/kube-system/secrets", "", {}, 403, "forbidden"),
        ("GET", "/api/v1/namespaces/../kube-system", "", {}, 400, "invalid path"),
        ("GET", "/api/v1/namespaces", "watch=true", {}, 501, "watch"),
        ("GET", "/api/v1/namespaces/x/pods/p/log", "follow=1", {}, 501, "follow"),
        ("GET", "/api/v1/namespaces", "", {"Upgrade": ["websocket"]}, 501, "upgrade"),
        ("TRACE", "/api/v1/namespaces", "", {}, 405, "method"),
    ],
)
async def test_refused_requests_never_reach_the_backend(
    kube_api: KubeServer,
    account: AgentAccount,
    tmp_path: Path,
    method: str,
    path: str,
    query: str,
    headers: dict[str, list[str]],
    status: int,
    message: str,
) -> None:
    # Against a dead backend, forwarding would answer 502: the refusal's own status proves it never left the agent.
    request = TunnelRequest("r-2", "k8s", method, path, query=query, headers=headers)
    response = await replay(dead_target(kube_api, account, tmp_path), request)
    assert response.status_code == status
    assert response.error is not None and response.error.code == status
    assert message in response.error.message.lower()


@pytest.mark.parametrize("name", ["monitoring", "logs", "hubble"])
async def test_an_unknown_target_is_404(target: KubeTarget, name: str) -> None:
    response = await replay(target, get("/api/v1/namespaces", target=name))
    assert response.status_code == 404
    assert response.error is not None and response.error.message == f"unknown target: {name}"


async def test_an_unreachable_apiserver_is_a_502(kube_api: KubeServer, account: AgentAccount, tmp_path: Path) -> None:
    response = await replay(dead_target(kube_api, account, tmp_path), get("/api/v1/namespaces"))
    assert response.request_id == "r-1" and response.status_code == 502
    assert response.error is not None and response.error.code == 502
    assert response.error.message.startswith("backend request failed: ")


async def test_an_apiserver_not_signed_by_the_cluster_ca_is_a_502(
    kube_api: KubeServer, account: AgentAccount, tmp_path: Path
) -> None:
    wrong = make_ca(tmp_path, "wrong")
    path = write_kubeconfig(kube_api, tmp_path / "wrong.kubeconfig", token_file=account.token_file)
    document = yaml.safe_load(path.read_text())
    document["clusters"][0]["cluster"]["certificate-authority-data"] = base64.b64encode(
        wrong.path.read_bytes()
    ).decode()
    path.write_text(yaml.safe_dump(document))
    response = await replay(from_kubeconfig(path), get("/api/v1/namespaces"))
    assert response.status_code == 502
    assert response.error is not None and "certificate" in response.error.message.lower()


async def test_a_response_larger_than_the_bound_is_a_502(target: KubeTarget) -> None:
    response = await replay(target, get("/api/v1/namespaces"), max_body=512)
    assert response.status_code == 502
    assert response.error is not None and "exceeds 512 bytes" in response.error.message
