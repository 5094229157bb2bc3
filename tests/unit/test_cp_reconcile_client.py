"""PlaneClient and the loop's transport bound: list pages through `continue`, the plane's refusals and silences
become the two errors the passes act on, and no more than `limit` calls are ever in flight."""

from __future__ import annotations

import asyncio

import pytest

from controlplane.proxy_client import PlaneClient, PlaneRef, PlaneRequestFailed, PlaneUnavailable
from controlplane.reconcile.loop import BoundedTransport
from tests.unit.test_cp_reconcile_fixtures import DATA_PLANE, Planes
from tunnel.frames import TunnelError, TunnelRequest, TunnelResponse

PLANE = PlaneRef("dataplane", "default", "/default")


def configmap(name: str, team: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "ns", "labels": {"team": team}},
        "data": {},
    }


async def test_list_follows_continue_and_restores_kind_and_api_version() -> None:
    planes = Planes(DATA_PLANE)
    client = PlaneClient(planes, PLANE)
    for index in range(1203):
        await client.apply(configmap(f"cm-{index:04d}", "a" if index % 2 else "b"), "test")
    found = await client.list("ConfigMap", "team=a")
    assert len(found) == 601 and all(item["kind"] == "ConfigMap" and item["apiVersion"] == "v1" for item in found)
    lists = [query for method, _, query in planes[DATA_PLANE].calls if method == "GET"]
    assert len(lists) == 2 and "continue=500" in lists[1]  # 601 matches: two pages of 500


async def test_refusals_and_silences_are_the_two_errors() -> None:
    planes = Planes(DATA_PLANE)
    client = PlaneClient(planes, PLANE)
    planes[DATA_PLANE].refuse[("PATCH", "configmaps")] = 422
    with pytest.raises(PlaneRequestFailed) as refused:
        await client.apply(configmap("x", "a"), "test")
    assert refused.value.status == 422 and "configmaps x refused" in str(refused.value)
    assert await client.get("ConfigMap", "ns", "x") is None
    assert await client.delete("ConfigMap", "ns", "x") is False  # 404: already done
    planes.down.add(DATA_PLANE)
    with pytest.raises(PlaneUnavailable):
        await client.get("ConfigMap", "ns", "x")


class BackendDown:
    """The agent's answer when its kube-apiserver is unreachable (CPN §4: 502 with an error)."""

    async def send(
        self, plane_type: str, plane_id: str, cr_key: str, request: TunnelRequest, timeout: float
    ) -> TunnelResponse:
        return TunnelResponse(request.request_id, 502, error=TunnelError("backend request failed: refused", 502))


async def test_a_backend_failure_is_plane_unavailable() -> None:
    with pytest.raises(PlaneUnavailable, match="backend request failed"):
        await PlaneClient(BackendDown(), PLANE).get("ConfigMap", "ns", "x")


class Counting:
    """A transport that counts requests in flight, each one yielding to the loop a few times."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.peak = 0

    async def send(
        self, plane_type: str, plane_id: str, cr_key: str, request: TunnelRequest, timeout: float
    ) -> TunnelResponse:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        for _ in range(3):
            await asyncio.sleep(0)
        self.in_flight -= 1
        return TunnelResponse(request.request_id, 404)


async def test_the_bounded_transport_keeps_at_most_limit_calls_in_flight() -> None:
    inner = Counting()
    bounded = BoundedTransport(inner, 4)
    requests = [TunnelRequest(str(i), "k8s", "GET", "/api/v1/namespaces/x") for i in range(40)]
    answers = await asyncio.gather(*(bounded.send("dataplane", "d", "/d", r, 1.0) for r in requests))
    assert len(answers) == 40 and inner.peak == 4
