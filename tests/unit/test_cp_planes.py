"""controlplane/planes.py over a real SQLite store: the client CAs the gateway trusts (inline and from Secrets,
namespaced and cluster CRs), plane CR and Secret writes turned into notify calls, and the agentConnection status
written back (first sight, transitions, heartbeat-only refreshes, nothing written when nothing changed)."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import delete

from controlplane.gateway.connections import AgentConnection
from controlplane.gateway.service import Gateway, NotifyResult, PlaneStatus
from controlplane.planes import PlaneWatcher, StatusWriter, StoreTrust, next_status
from controlplane.store import Store, changes

API = "openchoreo.dev/v1alpha1"
NOW = datetime.datetime(2026, 12, 5, 3, 0, tzinfo=datetime.UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path / 'cp.db'}")
    for namespace in ("acme", "ops"):
        store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    yield store
    store.close()


def plane(kind: str, name: str, namespace: str | None = None, **spec: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    spec.setdefault("clusterAgent", {"clientCA": {"value": f"PEM-{name}"}})
    return {"apiVersion": API, "kind": kind, "metadata": meta, "spec": spec}


def by_secret(name: str, key: str = "ca.crt", namespace: str | None = None) -> dict[str, Any]:
    ref = {"name": name, "key": key} | ({"namespace": namespace} if namespace else {})
    return {"clientCA": {"secretKeyRef": ref}}


def secret(namespace: str, name: str, value: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace},
            "stringData": {"ca.crt": value}}  # fmt: skip


async def test_trust_reads_inline_and_secret_cas_of_every_cr_with_the_plane_id(store: Store) -> None:
    store.create(plane("DataPlane", "dp", "acme"))
    store.create(plane("DataPlane", "other", "ops", planeID="dp", clusterAgent=by_secret("agent-ca")))
    store.create(plane("ClusterDataPlane", "shared", planeID="dp", clusterAgent=by_secret("ca", namespace="ops")))
    store.create(plane("ClusterDataPlane", "no-ns", planeID="dp", clusterAgent=by_secret("ca")))
    store.create(plane("DataPlane", "elsewhere", "acme"))  # another plane ID
    store.create(plane("ObservabilityPlane", "dp", "acme", observerURL="http://o"))  # another plane type
    store.create(secret("ops", "ca", "PEM-from-ops"))
    trust = StoreTrust(store)

    cas = await trust.client_cas("dataplane", "dp")

    assert cas == {
        "acme/dp": ["PEM-dp"],
        "ops/other": [],  # its Secret does not exist (yet): the CR exists, no agent can be valid for it
        "/shared": ["PEM-from-ops"],
        "/no-ns": [],  # a cluster CR's reference must name the Secret's namespace
    }
    store.create(secret("ops", "agent-ca", "PEM-other"))
    assert (await trust.client_cas("dataplane", "dp"))["ops/other"] == ["PEM-other"]
    assert await trust.client_cas("workflowplane", "dp") == {}
    # Every CA of every plane CR (the observability plane "dp" has its own inline "PEM-dp").
    assert sorted(trust.all_cas()) == ["PEM-dp", "PEM-dp", "PEM-elsewhere", "PEM-from-ops", "PEM-other"]


class Recorder:
    """The watcher's view of the gateway, recording the notify calls (the gateway's own notify is tested in
    test_gateway_planes.py; here what matters is which plane hears of which write)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    async def notify(self, plane_type: str, plane_id: str, event: str) -> NotifyResult:
        self.calls.append((plane_type, plane_id, event))
        return NotifyResult("revalidate")

    def status(self, plane_type: str, plane_id: str, cr_key: str | None = None) -> PlaneStatus:
        return PlaneStatus(plane_type, plane_id, False, 0, None)


async def test_plane_cr_writes_reach_the_plane_they_belong_to(store: Store) -> None:
    store.create(plane("DataPlane", "dp", "acme"))
    recorder = Recorder()
    refreshed: list[tuple[str, str]] = []

    async def after(plane_type: str, plane_id: str) -> None:
        refreshed.append((plane_type, plane_id))

    watcher = PlaneWatcher(store, recorder, after_notify=after)
    watcher.start_now()
    assert await watcher.step() == 0

    store.create(plane("ClusterObservabilityPlane", "obs", observerURL="http://o", planeID="obs-id"))
    store.replace(plane("DataPlane", "dp", "acme", clusterAgent={"clientCA": {"value": "NEW"}}))
    await watcher.step()
    assert recorder.calls == [("observabilityplane", "obs-id", "created"), ("dataplane", "dp", "updated")]
    assert refreshed == [("observabilityplane", "obs-id"), ("dataplane", "dp")]

    recorder.calls.clear()
    store.replace(plane("DataPlane", "dp", "acme", planeID="dp-2"))  # moves to another plane ID
    await watcher.step()
    assert recorder.calls == [("dataplane", "dp", "updated"), ("dataplane", "dp-2", "updated")]

    recorder.calls.clear()
    store.put_status("DataPlane", "acme", "dp", {"agentConnection": {"connected": False, "connectedAgents": 0}})
    store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "unrelated"}})
    assert await watcher.step() == 0  # status writes (ours) and other kinds are not plane CR writes

    store.delete("DataPlane", "acme", "dp")
    await watcher.step()
    assert recorder.calls == [("dataplane", "dp-2", "deleted")]  # the plane ID it had, though the CR is gone


async def test_a_secret_write_reaches_the_planes_whose_client_ca_it_holds(store: Store) -> None:
    store.create(plane("DataPlane", "dp", "acme", clusterAgent=by_secret("agent-ca")))
    store.create(
        plane("ClusterDataPlane", "cdp", planeID="shared", clusterAgent=by_secret("agent-ca", namespace="acme"))
    )
    store.create(plane("DataPlane", "inline", "acme"))
    recorder = Recorder()
    watcher = PlaneWatcher(store, recorder)
    watcher.start_now()

    store.create(secret("acme", "agent-ca", "PEM"))
    store.create(secret("acme", "unrelated", "PEM"))
    store.create(secret("ops", "agent-ca", "PEM"))  # same name, another namespace
    await watcher.step()
    assert recorder.calls == [("dataplane", "dp", "updated"), ("dataplane", "shared", "updated")]

    recorder.calls.clear()
    store.delete("Secret", "acme", "agent-ca")
    await watcher.step()
    assert recorder.calls == [("dataplane", "dp", "updated"), ("dataplane", "shared", "updated")]


def test_status_on_first_sight_then_only_on_change() -> None:
    document = plane("DataPlane", "dp", "acme")
    document["metadata"]["generation"] = 3
    document["status"] = {"observedGeneration": 2}
    down = PlaneStatus("dataplane", "dp", False, 0, None)

    first = next_status("DataPlane", document, down, NOW, heartbeat=False)
    assert first is not None
    assert first["observedGeneration"] == 2  # the rest of the status is kept
    assert first["agentConnection"] == {"connected": False, "connectedAgents": 0, "message": "No agents connected"}
    [created] = first["conditions"]
    assert created["type"] == "Created" and created["status"] == "True" and created["observedGeneration"] == 3
    assert created["lastTransitionTime"] == "2026-12-05T03:00:00Z"

    document["status"] = first
    assert next_status("DataPlane", document, down, NOW, heartbeat=True) is None

    seen = NOW - datetime.timedelta(seconds=5)
    up = PlaneStatus("dataplane", "dp", True, 2, seen)
    second = next_status("DataPlane", document, up, NOW, heartbeat=False)
    assert second is not None and second["conditions"] == first["conditions"]
    assert second["agentConnection"] == {
        "connected": True,
        "connectedAgents": 2,
        "message": "2 agents connected (HA mode)",
        "lastConnectedTime": "2026-12-05T03:00:00Z",
        "lastHeartbeatTime": "2026-12-05T02:59:55Z",
    }

    document["status"] = second
    later = PlaneStatus("dataplane", "dp", True, 2, NOW)
    assert next_status("DataPlane", document, later, NOW, heartbeat=False) is None  # a transition hook: no write
    beat = next_status("DataPlane", document, later, NOW, heartbeat=True)  # the periodic refresh: a write
    assert beat is not None and beat["agentConnection"]["lastHeartbeatTime"] == "2026-12-05T03:00:00Z"


class NoTrust:
    async def client_cas(self, plane_type: str, plane_id: str) -> dict[str, list[str]]:
        return {}


def connection(plane_id: str, *keys: str) -> AgentConnection:
    """A registered connection as the agent listener makes one; its socket is never used by status."""
    return AgentConnection("dataplane", plane_id, frozenset(keys), web.WebSocketResponse(), leaf_der=b"")


async def test_status_writer_follows_the_gateways_connections(store: Store) -> None:
    store.create(plane("DataPlane", "dp", "acme"))
    store.create(plane("ClusterDataPlane", "cdp", planeID="dp"))
    gateway = Gateway(NoTrust())  # no on_change hook: the test calls the writer where the hook would
    writer = StatusWriter(store, gateway)

    assert await writer.refresh_all() == 2
    assert await writer.refresh_all() == 0  # nothing changed, nothing written
    revision = store.revision()

    agent = connection("dp", "acme/dp")  # valid for the namespaced CR only
    gateway.register(agent)
    await writer.on_change("dataplane", "dp")
    namespaced = store.get("DataPlane", "acme", "dp")
    cluster = store.get("ClusterDataPlane", None, "cdp")
    assert namespaced is not None and cluster is not None
    assert namespaced["status"]["agentConnection"]["connected"] is True
    assert namespaced["status"]["agentConnection"]["message"] == "1 agent connected"
    assert "lastConnectedTime" in namespaced["status"]["agentConnection"]
    assert cluster["status"]["agentConnection"]["connected"] is False  # no agent is valid for it
    assert store.revision() > revision

    gateway.drop(agent, "gone")
    assert await writer.refresh("dataplane", "dp") == 1  # only the namespaced CR's status changed
    after = store.get("DataPlane", "acme", "dp")
    assert after is not None
    assert after["status"]["agentConnection"]["connected"] is False
    assert after["status"]["agentConnection"]["connectedAgents"] == 0
    assert "lastDisconnectedTime" in after["status"]["agentConnection"]
    assert [c["type"] for c in after["status"]["conditions"]] == ["Created"]  # set once, on first sight
    await gateway.close()


async def test_a_watcher_left_behind_by_the_pruned_change_log_re_verifies_every_plane(store: Store) -> None:
    store.create(plane("DataPlane", "dp", "acme"))
    recorder = Recorder()
    watcher = PlaneWatcher(store, recorder)
    watcher.start_now()
    store.create(plane("ClusterDataPlane", "cdp", planeID="late"))
    store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "later"}})
    with store.engine.begin() as conn:  # what the store's pruning does to a reader this far behind
        conn.execute(delete(changes).where(changes.c.revision <= watcher.revision + 1))

    await watcher.step()

    assert recorder.calls == [("dataplane", "dp", "updated"), ("dataplane", "late", "updated")]
    assert watcher.revision == store.revision()
    recorder.calls.clear()
    assert await watcher.step() == 0
