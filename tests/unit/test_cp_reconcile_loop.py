"""The loop: a disconnected plane and its backoff, waking on store changes (and not on its own status writes),
requeue of progressing bindings, resync, and `run` until stopped."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from controlplane.proxy_client import PlaneRef
from controlplane.reconcile.loop import Reconciler
from controlplane.reconcile.planes import Backoff
from controlplane.store import Store
from tests.unit.test_cp_reconcile_fixtures import (
    BINDING,
    DATA_PLANE,
    DP_NAMESPACE,
    OBSERVABILITY_PLANE,
    Planes,
    conditions,
    world,
)

COMPONENT = "demo-app-http-service"
DP_REF = PlaneRef("dataplane", "default", "/default")


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store(f"sqlite:///{tmp_path / 'cp.db'}")
    world(store)
    return store


@pytest.fixture
def planes() -> Planes:
    return Planes(DATA_PLANE, OBSERVABILITY_PLANE)


def patches(planes: Planes) -> int:
    return sum(1 for method, _, _ in planes[DATA_PLANE].calls if method == "PATCH")


def test_backoff_doubles_to_the_cap_with_jitter_and_resets_on_success() -> None:
    clock = Clock()

    def failures_after_each_delay(backoff: Backoff, count: int) -> list[float]:
        delays = []
        for _ in range(count):
            delays.append(backoff.failed(DP_REF))
            clock.now += delays[-1]
        return delays

    top = Backoff(clock=clock, rng=lambda: 1.0)
    assert failures_after_each_delay(top, 8) == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
    bottom = Backoff(clock=clock, rng=lambda: 0.0)
    assert failures_after_each_delay(bottom, 3) == [0.5, 1.0, 2.0]  # jitter: within [d/2, d]
    bottom.failed(DP_REF)
    assert bottom.blocked_until(DP_REF) == clock.now + 4.0
    clock.now += 4.0
    assert bottom.blocked_until(DP_REF) is None
    bottom.succeeded(DP_REF)
    assert bottom.failures(DP_REF) == 0


def test_failures_of_calls_in_flight_together_count_once() -> None:
    clock = Clock()
    backoff = Backoff(clock=clock, rng=lambda: 1.0)
    assert [backoff.failed(DP_REF) for _ in range(16)] == [1.0] * 16  # 16 bindings hit the same outage
    assert backoff.failures(DP_REF) == 1
    clock.now += 0.25
    assert backoff.failed(DP_REF) == 0.75 and backoff.failures(DP_REF) == 1


async def test_a_disconnected_plane_is_plane_disconnected_and_retried_with_backoff(
    store: Store, planes: Planes
) -> None:
    clock = Clock()
    backoff = Backoff(clock=clock, rng=lambda: 1.0)
    loop = Reconciler(store, planes, resync_s=3600, progressing_s=10, backoff=backoff, clock=clock)
    planes.down.add(DATA_PLANE)
    await loop.step()  # the first turn is a full pass
    found = conditions(store)
    assert found["ResourcesApplied"]["status"] == "False"
    assert found["ResourcesApplied"]["reason"] == "PlaneDisconnected"
    assert "dataplane/default (CR /default) is not connected" in found["ResourcesApplied"]["message"]
    assert found["Ready"]["reason"] == "PlaneDisconnected"
    assert backoff.failures(DP_REF) == 1
    tries = planes.sent.count(("dataplane", "default", "/default"))

    await loop.step()  # within the backoff: the plane is not called again
    assert planes.sent.count(("dataplane", "default", "/default")) == tries

    clock.now += 1.0  # the first retry is due after 1 s
    await loop.step()
    assert backoff.failures(DP_REF) == 2
    assert backoff.blocked_until(DP_REF) == clock.now + 2.0  # then 2 s

    planes.down.clear()
    clock.now += 2.0
    await loop.step()
    assert backoff.failures(DP_REF) == 0
    assert conditions(store)["ResourcesApplied"]["reason"] == "Applied"
    assert planes[DATA_PLANE].get("deployments", DP_NAMESPACE, COMPONENT) is not None


async def test_the_loop_wakes_on_changes_and_not_on_its_own_status_writes(store: Store, planes: Planes) -> None:
    clock = Clock()
    loop = Reconciler(store, planes, resync_s=3600, progressing_s=10, clock=clock)
    await loop.step()  # full pass
    settled = patches(planes)
    assert settled > 0
    for _ in range(3):  # its status write is in the change feed: ignored; nothing is due yet
        await loop.step()
    assert patches(planes) == settled

    binding = store.get("ReleaseBinding", *BINDING)
    assert binding is not None
    binding["spec"]["componentTypeEnvironmentConfigs"]["replicas"] = 3
    store.replace(binding)
    await loop.step()
    deployment = planes[DATA_PLANE].get("deployments", DP_NAMESPACE, COMPONENT)
    assert deployment is not None and deployment["spec"]["replicas"] == 3


async def test_a_component_change_wakes_its_bindings(store: Store, planes: Planes) -> None:
    clock = Clock()
    loop = Reconciler(store, planes, resync_s=3600, progressing_s=10, clock=clock)
    await loop.step()
    before = patches(planes)
    component = store.get("Component", "default", COMPONENT)
    assert component is not None
    component["spec"]["autoDeploy"] = False
    store.replace(component)
    await loop.step()
    assert patches(planes) > before


async def test_a_progressing_binding_is_requeued_and_a_resync_restores_drift(store: Store, planes: Planes) -> None:
    clock = Clock()
    loop = Reconciler(store, planes, resync_s=300, progressing_s=10, clock=clock)
    await loop.step()
    before = patches(planes)
    clock.now += 10  # the Deployment is 0/2 available: progressing, requeued after 10 s
    await loop.step()
    assert patches(planes) > before

    deployment = planes[DATA_PLANE].get("deployments", DP_NAMESPACE, COMPONENT)
    assert deployment is not None
    deployment["status"] = {"observedGeneration": deployment["metadata"]["generation"], "availableReplicas": 2}
    clock.now += 10
    await loop.step()  # now healthy: no longer requeued
    assert conditions(store)["Ready"]["status"] == "True"
    del planes[DATA_PLANE].objects[("deployments", DP_NAMESPACE, COMPONENT)]
    clock.now += 10
    await loop.step()
    assert planes[DATA_PLANE].get("deployments", DP_NAMESPACE, COMPONENT) is None  # not due: nothing ran
    clock.now += 300
    await loop.step()  # the resync
    assert planes[DATA_PLANE].get("deployments", DP_NAMESPACE, COMPONENT) is not None


async def test_run_reconciles_until_stopped(store: Store, planes: Planes) -> None:
    loop = Reconciler(store, planes, resync_s=3600, progressing_s=10, poll_s=0.01)
    stop = asyncio.Event()
    task = asyncio.create_task(loop.run(stop))
    try:
        async with asyncio.timeout(30):
            while planes[DATA_PLANE].get("deployments", DP_NAMESPACE, COMPONENT) is None:
                await asyncio.sleep(0.01)
            store.delete("ReleaseBinding", *BINDING)
            while planes[DATA_PLANE].get("deployments", DP_NAMESPACE, COMPONENT) is not None:
                await asyncio.sleep(0.01)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    assert planes[DATA_PLANE].names("namespaces") == [DP_NAMESPACE]


async def test_an_agent_connecting_ends_the_plane_backoff(store: Store, planes: Planes) -> None:
    clock = Clock()
    backoff = Backoff(clock=clock, rng=lambda: 1.0)
    loop = Reconciler(store, planes, resync_s=3600, progressing_s=10, backoff=backoff, clock=clock)
    planes.down.add(DATA_PLANE)
    await loop.step()
    assert conditions(store)["ResourcesApplied"]["reason"] == "PlaneDisconnected"
    planes.down.clear()
    await loop.plane_changed("dataplane", "default")  # the gateway's on_change hook; the clock has not moved
    await loop.step()
    assert backoff.failures(DP_REF) == 0
    assert conditions(store)["ResourcesApplied"]["reason"] == "Applied"


async def test_a_refused_apply_is_retried_after_the_progressing_interval(store: Store, planes: Planes) -> None:
    clock = Clock()
    loop = Reconciler(store, planes, resync_s=3600, progressing_s=10, clock=clock)
    planes[DATA_PLANE].refuse[("PATCH", "deployments")] = 422
    await loop.step()
    assert conditions(store)["ResourcesApplied"]["reason"] == "ApplyFailed"
    del planes[DATA_PLANE].refuse[("PATCH", "deployments")]
    await loop.step()  # not yet due
    assert conditions(store)["ResourcesApplied"]["reason"] == "ApplyFailed"
    clock.now += 10
    await loop.step()
    assert conditions(store)["ResourcesApplied"]["reason"] == "Applied"
