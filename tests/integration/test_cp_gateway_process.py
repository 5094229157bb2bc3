"""`python -m controlplane.run` with its cluster gateway, as one real process: plane CRs written through the REST
API decide which agents may connect, the agent's connection shows in the CR's `status.agentConnection`, the 8444
proxy reaches the plane's kube-apiserver through a real agent process, and a changed clientCA (inline, or in the
Secret a `secretKeyRef` names) disconnects the agent."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from controlplane import run
from devservers.agent import Agent, agent_up
from devservers.controlplane import RunningControlPlane, controlplane_process, controlplane_up
from devservers.gateway_certs import GatewayPki, ca_pem, gateway_env, gateway_pki, issue
from devservers.kube import KubeServer
from devservers.kube_accounts import AgentAccount, agent_account
from devservers.tls_proxy import Ca, make_ca
from tunnel.tls import client_context

WAIT_S = 60.0
NS = "/api/v1/namespaces/acme"


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cp-gateway")


@pytest.fixture(scope="module")
def pki(directory: Path) -> GatewayPki:
    return gateway_pki(directory)


@pytest.fixture(scope="module")
def agent_cas(directory: Path) -> tuple[Ca, Ca]:
    """The CA that signed the agent's certificate, and another one."""
    return make_ca(directory, "agent-ca"), make_ca(directory, "other-ca")


@pytest.fixture(scope="module")
def account(kube_api: KubeServer, directory: Path) -> AgentAccount:
    return agent_account(kube_api, directory / "kube", "dataplane")


@pytest.fixture(scope="module")
def control(directory: Path, pki: GatewayPki) -> Iterator[tuple[RunningControlPlane, httpx.Client]]:
    # The periodic refresh is out of reach of the test: every status seen comes from a transition or a notify.
    env = {"LOG_LEVEL": "info", "STATUS_UPDATE_INTERVAL": "1h"}
    with (
        controlplane_process(directory / "data", env=env, gateway=gateway_env(pki)) as running,
        httpx.Client(base_url=running.url, timeout=10) as api,
    ):
        assert api.post("/api/v1/namespaces", json={"metadata": {"name": "acme"}}).status_code == 201
        yield running, api


def dataplane(name: str, client_ca: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"clusterAgent": {"clientCA": client_ca}}}


def until(probe: Callable[[], Any], what: str, running: RunningControlPlane) -> Any:
    """Poll `probe` until it returns something truthy; fail naming `what`, with the control plane's log."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"{what}; the control plane said:\n{running.output()[-3000:]}")


def connection(api: httpx.Client, name: str) -> dict[str, Any]:
    response = api.get(f"{NS}/dataplanes/{name}")
    assert response.status_code == 200, response.text
    return dict((response.json().get("status") or {}).get("agentConnection") or {})


@contextmanager
def start_agent(
    directory: Path, running: RunningControlPlane, pki: GatewayPki, ca: Ca, account: AgentAccount, plane_id: str
) -> Iterator[Agent]:
    """A real agent process of the data plane `plane_id`, with a certificate of `ca`."""
    cert = issue(ca, directory, f"{plane_id}-agent", client=True)
    with agent_up(
        directory,
        plane_type="dataplane",
        plane_id=plane_id,
        server_url=f"wss://127.0.0.1:{running.agent_port}/ws",
        client_cert=cert.cert,
        client_key=cert.key,
        server_ca=pki.server_ca.path,
        kubeconfig=account.kubeconfig,
        name=f"agent-{plane_id}",
    ) as agent:
        yield agent


def test_an_agent_trusted_by_a_dataplane_cr_connects_proxies_and_is_cut_off_when_the_ca_changes(
    control: tuple[RunningControlPlane, httpx.Client],
    pki: GatewayPki,
    agent_cas: tuple[Ca, Ca],
    account: AgentAccount,
    directory: Path,
) -> None:
    running, api = control
    agent_ca, other_ca = agent_cas
    created = api.post(f"{NS}/dataplanes", json=dataplane("dp-a", {"value": ca_pem(agent_ca)}))
    assert created.status_code == 201, created.text
    # The watcher saw the CR (its first status write): the CA is in the gateway's handshake from now on.
    until(lambda: connection(api, "dp-a").get("message") == "No agents connected", "no first status", running)
    conditions = api.get(f"{NS}/dataplanes/dp-a").json()["status"]["conditions"]
    assert [(c["type"], c["status"]) for c in conditions] == [("Created", "True")]

    with start_agent(directory, running, pki, agent_ca, account, "dp-a") as agent:
        status = until(
            lambda: connection(api, "dp-a").get("connected") and connection(api, "dp-a"), "never up", running
        )
        assert status["connectedAgents"] == 1 and status["message"] == "1 agent connected"
        assert status["lastConnectedTime"] and status["lastHeartbeatTime"]
        assert "lastDisconnectedTime" not in status

        tls = client_context(pki.server_ca.path, pki.internal_client.cert, pki.internal_client.key)
        with httpx.Client(verify=tls, timeout=30) as internal:
            url = running.internal_url(f"/api/proxy/dataplane/dp-a/acme/dp-a/k8s/api/v1/namespaces/{account.namespace}")
            proxied = internal.get(url)
            assert proxied.status_code == 200, proxied.text
            assert proxied.json()["metadata"]["name"] == account.namespace
            plane = internal.get(running.internal_url("/api/v1/planes/dataplane/dp-a/status")).json()
            assert plane["connected"] is True and plane["connectedAgents"] == 1

        document = api.get(f"{NS}/dataplanes/dp-a").json()
        document["spec"]["clusterAgent"]["clientCA"] = {"value": ca_pem(other_ca)}
        assert api.put(f"{NS}/dataplanes/dp-a", json=document).status_code == 200
        after = until(lambda: connection(api, "dp-a").get("connected") is False and connection(api, "dp-a"),
                      "the agent stayed connected after its CA was replaced", running)  # fmt: skip
        assert after["connectedAgents"] == 0 and after["message"] == "No agents connected"
        assert after["lastDisconnectedTime"] >= after["lastConnectedTime"]
        assert agent.process.poll() is None  # the agent lives on, redialling (and refused)
        until(lambda: agent.failed_dials() > 0, "the agent was not refused on its redial", running)
        assert not connection(api, "dp-a")["connected"]


def test_a_client_ca_from_a_secret_lets_the_agent_in_and_a_changed_secret_cuts_it_off(
    control: tuple[RunningControlPlane, httpx.Client],
    pki: GatewayPki,
    agent_cas: tuple[Ca, Ca],
    account: AgentAccount,
    directory: Path,
) -> None:
    running, api = control
    agent_ca, other_ca = agent_cas
    secret = {"metadata": {"name": "agent-ca"}, "stringData": {"ca.crt": ca_pem(agent_ca)}}
    assert api.post(f"{NS}/secrets", json=secret).status_code == 201
    ref = {"secretKeyRef": {"name": "agent-ca", "key": "ca.crt"}}
    assert api.post(f"{NS}/dataplanes", json=dataplane("dp-s", ref)).status_code == 201
    until(lambda: connection(api, "dp-s").get("message") == "No agents connected", "no first status", running)

    with start_agent(directory, running, pki, agent_ca, account, "dp-s"):
        until(lambda: connection(api, "dp-s").get("connectedAgents") == 1, "never up through the Secret", running)

        stored = api.get(f"{NS}/secrets/agent-ca").json()
        stored["stringData"] = {"ca.crt": ca_pem(other_ca)}
        stored.pop("data", None)
        assert api.put(f"{NS}/secrets/agent-ca", json=stored).status_code == 200, "the Secret was not replaced"
        after = until(lambda: connection(api, "dp-s").get("connected") is False and connection(api, "dp-s"),
                      "the agent stayed connected after its Secret changed", running)  # fmt: skip
        assert after["lastDisconnectedTime"]


def test_without_a_certificate_the_process_serves_the_api_and_says_the_gateway_is_off(directory: Path) -> None:
    log = directory / "no-gateway.log"
    with controlplane_up(directory / "no-gateway", log_file=log) as url:
        assert httpx.get(f"{url}/ready", timeout=10).status_code == 200
        assert "cluster gateway off (SERVER_CERT_PATH is not set)" in log.read_text()


def test_a_taken_gateway_port_stops_the_start_in_one_line(
    pki: GatewayPki, directory: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for variable, value in gateway_env(pki).items():
        monkeypatch.setenv(variable, value)
    monkeypatch.setenv("JWT_DISABLED", "true")
    with socket.socket() as taken, socket.socket() as api_port:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        api_port.bind(("127.0.0.1", 0))  # a port nobody listens on, for the API
        free = api_port.getsockname()[1]
        api_port.close()
        monkeypatch.setenv("AGENT_SERVER_PORT", str(taken.getsockname()[1]))
        data = directory / "clash"
        assert run.main(["--port", str(free), "--data-dir", str(data)]) == 2
    err = capsys.readouterr().err
    assert "is already in use; choose another with AGENT_SERVER_PORT" in err
    assert len(err.strip().splitlines()) == 1
    assert not (data / "controlplane.db").exists()


def test_with_internal_mtls_off_the_internal_api_needs_no_client_certificate(directory: Path, pki: GatewayPki) -> None:
    env = gateway_env(pki, internal_mtls=False)
    with (
        controlplane_process(directory / "plain", gateway=env) as running,
        httpx.Client(verify=client_context_without_cert(pki), timeout=10) as internal,
    ):
        answer = internal.get(running.internal_url("/api/v1/planes/status"))
        assert answer.status_code == 200 and answer.json() == {"planes": [], "total": 0}
        assert "(TLS, no client certificate)" in running.output()


def client_context_without_cert(pki: GatewayPki) -> ssl.SSLContext:
    """Verifies the gateway, presents nothing."""
    return ssl.create_default_context(cafile=str(pki.server_ca.path))
