"""The frames the gateway puts on the wire and accepts (CPN §4), seen by a test-side agent: a WebSocket client
with a client certificate. A proxied PATCH becomes exactly upstream's HTTPTunnelRequest, field for field; the
agent's HTTPTunnelResponse becomes the caller's HTTP answer; refusals never reach the agent."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from yarl import URL

from devservers.gateway_certs import DictTrust, GatewayRig, gateway_rig, issue
from devservers.tls_proxy import make_ca

WAIT_S = 10.0  # bound on waits; never asserted on
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
PROXY = "/api/proxy/observabilityplane/obs-a/default/obs-a/k8s"
DEPLOYMENT = "/apis/apps/v1/namespaces/dp-x/deployments/cart"
APPLY_QUERY = "fieldManager=renderedrelease-controller&force=true"


@dataclass
class Wired:
    rig: GatewayRig
    agent: aiohttp.ClientWebSocketResponse
    caller: aiohttp.ClientSession
    caller_ssl: ssl.SSLContext

    async def frame(self) -> dict[str, Any]:
        """The next frame the agent receives, as the raw JSON object (text frames only)."""
        async with asyncio.timeout(WAIT_S):
            message = await self.agent.receive()
        assert message.type == aiohttp.WSMsgType.TEXT, message
        document: dict[str, Any] = json.loads(message.data)
        return document

    async def reply(self, document: dict[str, Any]) -> None:
        await self.agent.send_str(json.dumps(document))

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        kwargs.setdefault("skip_auto_headers", ("Accept", "Accept-Encoding", "User-Agent", "Content-Type"))
        url = URL(self.rig.internal_url(path), encoded=True)  # sent as written, no re-quoting
        return self.caller.request(method, url, ssl=self.caller_ssl, **kwargs)


@pytest.fixture
async def wired(tmp_path: Path) -> AsyncIterator[Wired]:
    plane_ca = make_ca(tmp_path, "plane-a-ca")
    trust = DictTrust()
    trust.set("observabilityplane", "obs-a", "default/obs-a", plane_ca)
    trust.set("observabilityplane", "obs-a", "/obs-a-cluster", plane_ca)
    agent_cert = issue(plane_ca, tmp_path, "obs-a-agent", client=True)
    async with gateway_rig(tmp_path, trust, proxy_timeout=2.0) as rig, aiohttp.ClientSession() as agent_session:
        agent = await agent_session.ws_connect(rig.agent_url(plane_id="obs-a"), ssl=rig.client_ssl(agent_cert))
        async with aiohttp.ClientSession() as caller:
            yield Wired(rig, agent, caller, rig.internal_ssl())
        await agent.close()


async def test_proxied_patch_is_upstreams_request_frame_field_for_field(wired: Wired) -> None:
    body = json.dumps({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "cart"}}).encode()
    headers = {"Content-Type": "application/apply-patch+yaml", "X-Request-ID": "req-0123"}
    call = asyncio.create_task(
        _read(wired.call("PATCH", f"{PROXY}{DEPLOYMENT}?{APPLY_QUERY}", data=body, headers=headers))
    )
    frame = await wired.frame()
    assert UUID4.match(frame["requestID"]), frame["requestID"]
    assert frame == {
        "requestID": frame["requestID"],
        "gatewayRequestID": "req-0123",
        "target": "k8s",
        "method": "PATCH",
        "path": DEPLOYMENT,
        "query": APPLY_QUERY,
        "headers": {"Content-Type": ["application/apply-patch+yaml"], "X-Request-Id": ["req-0123"]},
        "body": base64.b64encode(body).decode(),
    }
    assert list(frame) == ["requestID", "gatewayRequestID", "target", "method", "path", "query", "headers", "body"]
    answer = base64.b64encode(b'{"kind":"Deployment"}').decode()
    await wired.reply(
        {
            "requestID": frame["requestID"],
            "statusCode": 201,
            "headers": {"Content-Type": ["application/json"], "X-Extra": ["a", "b"]},
            "body": answer,
        }
    )
    status, response_headers, response_body = await call
    assert status == 201
    assert response_headers.getall("X-Extra") == ["a", "b"]
    assert response_headers["Content-Type"] == "application/json"
    assert response_headers["X-Request-ID"] == "req-0123"
    assert response_body == b'{"kind":"Deployment"}'


async def test_get_without_body_omits_empty_fields_and_generates_a_request_id(wired: Wired) -> None:
    call = asyncio.create_task(_read(wired.call("GET", f"{PROXY}/api/v1/namespaces")))
    frame = await wired.frame()
    assert set(frame) == {"requestID", "gatewayRequestID", "target", "method", "path"}
    assert re.fullmatch(r"gw-[0-9a-f]{16}", frame["gatewayRequestID"])
    assert frame["path"] == "/api/v1/namespaces"
    await wired.reply({"requestID": frame["requestID"], "statusCode": 200, "body": base64.b64encode(b"{}").decode()})
    status, headers, body = await call
    assert (status, body) == (200, b"{}")
    assert headers["X-Request-ID"] == frame["gatewayRequestID"]


async def test_each_send_gets_a_fresh_request_id(wired: Wired) -> None:
    seen = []
    for _ in range(2):
        call = asyncio.create_task(_read(wired.call("GET", f"{PROXY}/api", headers={"X-Request-ID": "same"})))
        frame = await wired.frame()
        seen.append(frame["requestID"])
        await wired.reply({"requestID": frame["requestID"], "statusCode": 200})
        assert (await call)[0] == 200
    assert seen[0] != seen[1]


async def test_cluster_cr_and_raw_path_and_query(wired: Wired) -> None:
    path = "/api/proxy/observabilityplane/obs-a/_cluster/obs-a-cluster/k8s/api/v1/namespaces/a%2Fb/configmaps"
    call = asyncio.create_task(_read(wired.call("GET", f"{path}?labelSelector=a%3Db%2Cc")))
    frame = await wired.frame()
    assert frame["path"] == "/api/v1/namespaces/a%2Fb/configmaps"
    assert frame["query"] == "labelSelector=a%3Db%2Cc"
    await wired.reply({"requestID": frame["requestID"], "statusCode": 204})
    assert (await call)[0] == 204


async def test_agent_error_response_becomes_the_callers_answer(wired: Wired) -> None:
    call = asyncio.create_task(_read(wired.call("GET", f"{PROXY}/api")))
    frame = await wired.frame()
    error = {"code": 502, "message": "backend request failed: connection refused"}
    await wired.reply({"requestID": frame["requestID"], "statusCode": 502, "error": error})
    status, _, body = await call
    assert (status, body) == (502, b"backend request failed: connection refused")


@pytest.mark.parametrize(
    ("method", "path", "status", "message"),
    [
        ("GET", f"{PROXY}/api/v1/pods?watch=true", 501, "not yet supported"),
        ("GET", f"{PROXY}/api/v1/namespaces/a/pods/p/log?follow=true", 501, "not yet supported"),
        ("GET", f"{PROXY}/api/v1/namespaces/kube-system/secrets", 403, "forbidden"),
        ("GET", "/api/proxy/observabilityplane/obs-a/default/obs-a/hubble/x", 404, "unknown target: hubble"),
        ("TRACE", f"{PROXY}/api", 405, "method not allowed"),
        ("GET", "/api/proxy/observabilityplane/obs-a/default/obs-a", 400, "invalid proxy path"),
        ("GET", "/api/proxy/nosuchplane/obs-a/default/obs-a/k8s/api", 400, "invalid planeType"),
        (
            "GET",
            "/api/proxy/observabilityplane/obs-a/default/other/k8s/api",
            403,
            "Agent not authorized for CR default/other",
        ),
        ("GET", "/api/proxy/observabilityplane/obs-b/default/obs-b/k8s/api", 502, "no agents found for plane"),
    ],
)
async def test_refusals_never_reach_the_agent(wired: Wired, method: str, path: str, status: int, message: str) -> None:
    got, _, body = await _read(wired.call(method, path))
    assert got == status
    assert message in body.decode()
    await _agent_received_nothing(wired)


async def test_upgrade_header_and_oversized_body_are_refused(wired: Wired) -> None:
    got, _, _ = await _read(
        wired.call("GET", f"{PROXY}/api", headers={"Upgrade": "websocket", "Connection": "Upgrade"})
    )
    assert got == 501
    got, _, _ = await _read(wired.call("PUT", f"{PROXY}/api/v1/x", data=b"x" * (10 * 1024 * 1024 + 1)))
    assert got == 413
    await _agent_received_nothing(wired)


async def test_no_reply_within_the_timeout_is_502(wired: Wired) -> None:
    call = asyncio.create_task(_read(wired.call("GET", f"{PROXY}/api")))
    await wired.frame()  # the agent never answers
    status, _, body = await call
    assert status == 502
    assert body.decode().startswith("proxy request failed")


async def _read(request: Any) -> tuple[int, Any, bytes]:
    async with request as response:
        return response.status, response.headers, await response.read()


async def _agent_received_nothing(wired: Wired) -> None:
    """Proves nothing was queued for the agent: the next frame it sees is a probe sent after the refusals."""
    call = asyncio.create_task(_read(wired.call("GET", f"{PROXY}/probe")))
    frame = await wired.frame()
    assert frame["path"] == "/probe"
    await wired.reply({"requestID": frame["requestID"], "statusCode": 200})
    await call
