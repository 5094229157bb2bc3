"""The rig the tunnel and reconcile benches share: a real kube-apiserver, a plane agent (`python -m agents.run`,
its ServiceAccount and RBAC) dialling a real cluster gateway (both listeners, real TLS), connected before the
bench measures anything.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devservers.agent import agent_up
from devservers.gateway_certs import DictTrust, GatewayRig, gateway_rig, issue
from devservers.kube import KubeServer, start_kube
from devservers.kube_accounts import agent_account
from devservers.tls_proxy import make_ca


@dataclass
class PlaneRig:
    kube: KubeServer
    kubeconfig: Path  # the agent's ServiceAccount
    plane_ca: Any  # what the plane CR's clientCA holds (devservers.gateway_certs.ca_pem reads it)
    gateway: GatewayRig
    agent_pid: int


@asynccontextmanager
async def connected_plane(
    workdir: Path,
    plane: tuple[str, str],
    cr_key: str,
    *,
    wait_s: float,
    prepare: Callable[[KubeServer], None] = lambda kube: None,
) -> AsyncIterator[PlaneRig]:
    """Everything up and the agent connected; `prepare` runs against the kube-apiserver before the agent starts.
    Torn down in reverse, the agent stopped off the loop so the gateway answers its close."""
    kube = start_kube(workdir / "kube")
    try:
        account = agent_account(kube, workdir / "account", plane[0])
        prepare(kube)
        plane_ca = make_ca(workdir, "bench-plane-ca")
        agent_cert = issue(plane_ca, workdir, "bench-agent", client=True)
        trust = DictTrust()
        trust.set(*plane, cr_key, plane_ca)
        (workdir / "gateway").mkdir()
        async with gateway_rig(workdir / "gateway", trust, proxy_timeout=wait_s) as rig:
            with agent_up(
                workdir / "agent",
                plane_type=plane[0],
                plane_id=plane[1],
                server_url=f"wss://127.0.0.1:{rig.listeners.agent_port}/ws",
                client_cert=agent_cert.cert,
                client_key=agent_cert.key,
                server_ca=rig.pki.server_ca.path,
                kubeconfig=account.kubeconfig,
            ) as agent:
                async with asyncio.timeout(wait_s):
                    while not rig.gateway.status(*plane).connected:
                        await asyncio.sleep(0.05)
                yield PlaneRig(kube, account.kubeconfig, plane_ca, rig, agent.process.pid)
                await asyncio.to_thread(agent.stop)
    finally:
        kube.stop()
