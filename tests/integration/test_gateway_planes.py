"""The plane lifecycle API of the internal listener (CPN §2 `plane_api.go`): notify re-verifies or drops live
agents when a plane CR changes, reconnect drops sockets, and the status endpoints report who is connected."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from devservers.gateway_certs import DictTrust, GatewayRig, gateway_rig, issue
from devservers.tls_proxy import Ca, make_ca

WAIT_S = 10.0  # bound on waits; never asserted on
OBS = "observabilityplane"
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


async def eventually(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT_S):
        while not condition():
            await asyncio.sleep(0.01)


class Planes:
    def __init__(self, rig: GatewayRig, session: aiohttp.ClientSession, ca: Ca, other: Ca, directory: Path) -> None:
        self.rig, self.session, self.ca, self.other, self.directory = rig, session, ca, other, directory
        self.sockets: list[aiohttp.ClientWebSocketResponse] = []

    async def agent(self, plane_id: str = "obs-a") -> aiohttp.ClientWebSocketResponse:
        cert = issue(self.ca, self.directory, f"agent-{len(self.sockets)}", client=True)
        before = len(self.rig.gateway.connections.of_plane(OBS, plane_id))
        ws = await self.session.ws_connect(self.rig.agent_url(plane_id=plane_id), ssl=self.rig.client_ssl(cert))
        self.sockets.append(ws)
        await eventually(lambda: len(self.rig.gateway.connections.of_plane(OBS, plane_id)) > before)
        return ws

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        url = self.rig.internal_url(path)
        async with self.session.request(method, url, json=body, ssl=self.rig.internal_ssl()) as response:
            return response.status, await response.json()


@pytest.fixture
async def planes(tmp_path: Path) -> AsyncIterator[Planes]:
    ca, other = make_ca(tmp_path, "plane-ca"), make_ca(tmp_path, "other-ca")
    trust = DictTrust()
    trust.set(OBS, "obs-a", "default/obs-a", ca)
    trust.set(OBS, "obs-a", "/obs-a", ca)
    trust.set(OBS, "obs-b", "/obs-b", other)
    async with gateway_rig(tmp_path, trust) as rig, aiohttp.ClientSession() as session:
        p = Planes(rig, session, ca, other, tmp_path)
        yield p
        for ws in p.sockets:
            await ws.close()


def notify(event: str, plane_id: str = "obs-a", **extra: str) -> dict[str, str]:
    return {"planeType": OBS, "planeID": plane_id, "event": event, "namespace": "default", "name": plane_id, **extra}


async def test_status_shapes(planes: Planes) -> None:
    assert await planes.call("GET", f"/api/v1/planes/{OBS}/obs-a/status") == (
        200,
        {"planeType": OBS, "planeID": "obs-a", "connected": False, "connectedAgents": 0},
    )
    await planes.agent()
    await planes.agent()
    status, body = await planes.call("GET", f"/api/v1/planes/{OBS}/obs-a/status")
    assert status == 200 and RFC3339.match(body.pop("lastSeen"))
    assert body == {"planeType": OBS, "planeID": "obs-a", "connected": True, "connectedAgents": 2}
    _, cluster = await planes.call("GET", f"/api/v1/planes/{OBS}/obs-a/status?name=obs-a")
    assert cluster["connectedAgents"] == 2
    _, other = await planes.call("GET", f"/api/v1/planes/{OBS}/obs-a/status?namespace=default&name=nope")
    assert (other["connected"], other["connectedAgents"]) == (False, 0)
    status, everything = await planes.call("GET", "/api/v1/planes/status")
    assert status == 200 and everything["total"] == 1
    assert [(p["planeID"], p["connectedAgents"]) for p in everything["planes"]] == [("obs-a", 2)]
    assert (await planes.call("GET", "/api/v1/planes/cluster/obs-a/status"))[0] == 400


async def test_reconnect_drops_every_socket_of_the_plane(planes: Planes) -> None:
    first, second = await planes.agent(), await planes.agent()
    assert await planes.call("POST", f"/api/v1/planes/{OBS}/obs-a/reconnect") == (
        200,
        {"success": True, "disconnectedAgents": 2},
    )
    for ws in (first, second):
        async with asyncio.timeout(WAIT_S):
            message = await ws.receive()
        assert message.type == aiohttp.WSMsgType.CLOSE
    assert not planes.rig.gateway.status(OBS, "obs-a").connected


async def test_notify_updated_revokes_and_grants_per_cr(planes: Planes) -> None:
    ws = await planes.agent()
    trust = planes.rig.trust
    trust.set(OBS, "obs-a", "/obs-a", planes.other)  # the cluster CR now trusts another CA only
    trust.set(OBS, "obs-a", "team/obs-a", planes.ca)  # a new namespaced CR trusts ours
    assert await planes.call("POST", "/api/v1/planes/notify", notify("updated")) == (
        200,
        {"success": True, "action": "revalidate", "authorizationsGranted": 1, "authorizationsRevoked": 1},
    )
    [connection] = planes.rig.gateway.connections.of_plane(OBS, "obs-a")
    assert connection.cr_keys == {"default/obs-a", "team/obs-a"}
    trust.set(OBS, "obs-a", "default/obs-a", planes.other)
    trust.set(OBS, "obs-a", "team/obs-a", planes.other)
    assert await planes.call("POST", "/api/v1/planes/notify", notify("updated")) == (
        200,
        {"success": True, "action": "revalidate", "disconnectedAgents": 1, "authorizationsRevoked": 2},
    )
    async with asyncio.timeout(WAIT_S):
        assert (await ws.receive()).type == aiohttp.WSMsgType.CLOSE


async def test_notify_deleted_disconnects_the_plane(planes: Planes) -> None:
    await planes.agent()
    await planes.agent("obs-a")
    assert await planes.call("POST", "/api/v1/planes/notify", notify("deleted")) == (
        200,
        {"success": True, "action": "disconnect", "disconnectedAgents": 2},
    )
    assert not planes.rig.gateway.status(OBS, "obs-a").connected


async def test_notify_errors(planes: Planes) -> None:
    for bad in (notify("renamed"), {"planeType": "x", "planeID": "obs-a", "event": "updated"}, [1]):
        status, body = await planes.call("POST", "/api/v1/planes/notify", bad)
        assert status == 400 and body["success"] is False
    planes.rig.trust.failing = True
    status, body = await planes.call("POST", "/api/v1/planes/notify", notify("updated"))
    assert status == 503 and body["success"] is False and "error" in body
