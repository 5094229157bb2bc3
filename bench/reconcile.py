"""Reconcile time for many ReleaseBindings through the real chain, next to the same calls sent directly.

The world: one control-plane namespace holding N Components (upstream's http-service sample, renamed), their
Workloads and one ReleaseBinding each (N = 1,000 by default), one Project, one Environment and one
ClusterDataPlane, whose agent (`python -m agents.run`, the data plane's ServiceAccount and RBAC) dials a real
gateway (both listeners, real TLS) and talks to a real kube-apiserver. Measured in one run:

- reconcile: `Reconciler.pass_once()` in this process, through the in-process `Gateway.send` -> WebSocket ->
  agent -> kube-apiserver, as production runs it: store reads, rendering, per binding 3 server-side applies
  (Namespace, Deployment, Service) and 3 label-selector lists (ConfigMap, Deployment, Service), the status write,
  then the sweep. The first pass creates everything (and must leave every binding `ResourcesApplied=True`, which
  is checked); the second one finds everything in place (applies are no-ops, no status changes): the settled
  resync. Also calls per second through the tunnel, and the agent's CPU per call.
- direct (the baseline): the same calls (`sync_target`: the same applies and lists, the same PlaneClient code,
  the same rendered objects) sent straight to the kube-apiserver with the agent's token, at the same concurrency
  (16). Rendering is done before the clock starts: the baseline is the cost of the Kubernetes calls alone.

- reconcile without the tunnel (settled pass only): the same `pass_once` over the direct transport, which splits
  the reconciler's gap from the baseline into the tunnel's share and its own (store reads, rendering, statuses).

Both sides write the very same objects (same namespace, same labels; anything else would be taken for an orphan by
the reconciler's sweep, which lists every object of ours cluster-wide), so the order is: direct first pass (creates
them), cleanup (untimed: every Deployment and Service of ours deleted, the Namespace kept, as the reconciler's first
pass also finds it), reconcile first pass (creates them again), direct settled pass, reconcile-without-tunnel
settled pass, reconcile settled pass. The sides alternate, so load that drifts during the run weighs on all. No
assertions but the ResourcesApplied check: figures next to the baseline. The test API server's Service range is a
/24 (scripts/kube.sh), too small for N Services: the bench adds a ServiceCIDR first (`widen_services`).
`python -m bench.reconcile` runs this one alone; BENCH_RECONCILE_BINDINGS overrides N (1,000 take about 3 to 4
minutes on 2 shared cores, most of it the five passes).
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp

from agents.kube import KubeTarget, from_kubeconfig
from bench.harness import process_cpu_s, report
from bench.plane_rig import connected_plane
from controlplane.proxy_client import PlaneClient, PlaneRef, Transport
from controlplane.reconcile.loop import Reconciler
from controlplane.reconcile.releases import RELEASE_KINDS, Target, plan_release, sync_target
from controlplane.render.labels import LABEL_MANAGED_BY, RELEASE_CONTROLLER, TARGET_DATAPLANE
from controlplane.store import Store
from devservers.gateway_certs import ca_pem
from devservers.kube import KubeServer
from tunnel.frames import TunnelRequest, TunnelResponse

API = "openchoreo.dev/v1alpha1"
PLANE = ("dataplane", "default")
CR_KEY = "/default"  # the ClusterDataPlane named default
CONCURRENCY = 16
WAIT_S = 60.0
NAMESPACE = "default"  # the control-plane namespace of the world
_PAGE = 500
EXTRA_SERVICE_CIDR = "10.1.0.0/16"
OURS = f"{LABEL_MANAGED_BY}={RELEASE_CONTROLLER}"


# ---------------------------------------------------------------------------------------------- the world


def _component(namespace: str, name: str) -> list[dict[str, Any]]:
    """Upstream's http-service sample (Component, Workload, ReleaseBinding with 2 replicas) named `name`."""
    owner = {"projectName": "default", "componentName": name}
    return [
        {
            "apiVersion": API,
            "kind": "Component",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "owner": {"projectName": "default"},
                "autoDeploy": True,
                "componentType": {"kind": "ClusterComponentType", "name": "deployment/service"},
            },
        },
        {
            "apiVersion": API,
            "kind": "Workload",
            "metadata": {"name": f"{name}-workload", "namespace": namespace},
            "spec": {
                "owner": owner,
                "endpoints": {"http": {"type": "HTTP", "port": 9090, "visibility": ["external"]}},
                "container": {
                    "image": "ghcr.io/openchoreo/samples/greeter-service:latest",
                    "args": ["--port", "9090"],
                },
            },
        },
        {
            "apiVersion": API,
            "kind": "ReleaseBinding",
            "metadata": {"name": f"{name}-development", "namespace": namespace},
            "spec": {
                "owner": owner,
                "environment": "development",
                "componentTypeEnvironmentConfigs": {
                    "replicas": 2,
                    "resources": {
                        "requests": {"cpu": "50m", "memory": "128Mi"},
                        "limits": {"cpu": "200m", "memory": "256Mi"},
                    },
                },
            },
        },
    ]


def _world(namespace: str, components: int) -> Iterator[dict[str, Any]]:
    yield {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    yield {
        "apiVersion": API,
        "kind": "Project",
        "metadata": {"name": "default", "namespace": namespace},
        "spec": {"deploymentPipelineRef": {"name": "default"}, "type": {"name": "default"}},
    }
    yield {
        "apiVersion": API,
        "kind": "Environment",
        "metadata": {"name": "development", "namespace": namespace},
        "spec": {"dataPlaneRef": {"kind": "ClusterDataPlane", "name": "default"}, "isProduction": False},
    }
    for index in range(components):
        yield from _component(namespace, f"svc-{index:04d}")


def build_world(store: Store, components: int, client_ca: str) -> None:
    """The ClusterDataPlane and the namespace's world (module docstring)."""
    store.create(
        {
            "apiVersion": API,
            "kind": "ClusterDataPlane",
            "metadata": {"name": "default"},
            "spec": {"clusterAgent": {"clientCA": {"value": client_ca}}},
        }
    )
    for document in _world(NAMESPACE, components):
        store.create(document)


def bindings(store: Store) -> list[dict[str, Any]]:
    """Every ReleaseBinding of the world."""
    items: list[dict[str, Any]] = []
    cursor = ""
    while True:
        page = store.list("ReleaseBinding", NAMESPACE, limit=_PAGE, cursor=cursor)
        items += page.items
        if not page.next_cursor:
            return items
        cursor = page.next_cursor


def applied(store: Store) -> int:
    """How many bindings say ResourcesApplied=True."""
    return sum(
        1
        for binding in bindings(store)
        for condition in (binding.get("status") or {}).get("conditions") or []
        if condition.get("type") == "ResourcesApplied" and condition.get("status") == "True"
    )


def widen_services(kube: KubeServer) -> None:
    """Give the test API server room for N Services: its own range (scripts/kube.sh) is a /24, 254 addresses.
    A second ServiceCIDR (networking.k8s.io/v1, GA since 1.33) extends the allocator at run time; done as the
    cluster admin, since the agent's RBAC does not (and should not) reach ServiceCIDRs."""
    admin = from_kubeconfig(kube.kubeconfig)
    document = {"apiVersion": "networking.k8s.io/v1", "kind": "ServiceCIDR", "metadata": {"name": "bench"}}
    document["spec"] = {"cidrs": [EXTRA_SERVICE_CIDR]}
    request = urllib.request.Request(
        f"{admin.server}/apis/networking.k8s.io/v1/servicecidrs",
        json.dumps(document).encode(),
        {"Content-Type": "application/json", "Authorization": f"Bearer {admin.bearer()}"},
    )
    with urllib.request.urlopen(request, context=admin.tls, timeout=WAIT_S) as response:
        response.read()


# ---------------------------------------------------------------------------------------------- the two sides


class DirectTransport:
    """A Transport that sends each request straight to the kube-apiserver with the agent's credentials (the
    baseline: what the agent itself does with a tunnelled request, without the tunnel)."""

    def __init__(self, target: KubeTarget, session: aiohttp.ClientSession) -> None:
        self._target = target
        self._session = session
        self.calls = 0

    async def send(
        self, plane_type: str, plane_id: str, cr_key: str, request: TunnelRequest, timeout: float
    ) -> TunnelResponse:
        self.calls += 1
        url = f"{self._target.server}{request.path}" + (f"?{request.query}" if request.query else "")
        headers = {name: ", ".join(values) for name, values in request.headers.items()}
        headers["Authorization"] = f"Bearer {self._target.bearer()}"
        async with self._session.request(
            request.method,
            url,
            headers=headers,
            data=request.body or None,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            body = await response.read()
            return TunnelResponse(request.request_id, response.status, {}, body)


class Counted:
    """A Transport that counts the calls it passes on (the reconciler's calls through the tunnel)."""

    def __init__(self, inner: Transport) -> None:
        self._inner = inner
        self.calls = 0

    async def send(
        self, plane_type: str, plane_id: str, cr_key: str, request: TunnelRequest, timeout: float
    ) -> TunnelResponse:
        self.calls += 1
        return await self._inner.send(plane_type, plane_id, cr_key, request, timeout)


async def direct_pass(transport: DirectTransport, targets: list[Target]) -> None:
    """Every target's applies and lists (`sync_target`), `CONCURRENCY` targets at a time, as the reconciler
    bounds its bindings. A refusal is an error: the baseline must do the same work as the reconciler."""
    pending = iter(targets)
    plane = PlaneRef(PLANE[0], PLANE[1], CR_KEY)

    async def worker() -> None:
        for target in pending:
            await sync_target(PlaneClient(transport, plane, WAIT_S), target)

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


def render(store: Store) -> list[Target]:
    """Every binding's data-plane target, rendered by the reconciler's own planning code."""
    return [plan_release(store, binding).targets[0] for binding in bindings(store)]


async def warm_up(transport: Transport) -> None:
    """Connections opened and the API server's first-request costs paid before any clock starts: a few reads at
    full concurrency (not counted in any pass: the counters are read around each pass)."""
    client = PlaneClient(transport, PlaneRef(PLANE[0], PLANE[1], CR_KEY), WAIT_S)
    await asyncio.gather(*(client.get("Namespace", "", "default") for _ in range(CONCURRENCY * 4)))


async def cleanup(transport: DirectTransport) -> int:
    """Delete every Deployment and Service of ours (what the release pass tracks; the Namespace stays), so the
    next first pass creates them again; returns how many were deleted. Background propagation: the API server
    removes the object at once (no finalizer), so nothing is left to wait for."""
    client = PlaneClient(transport, PlaneRef(PLANE[0], PLANE[1], CR_KEY), WAIT_S)
    doomed = [item for kind in RELEASE_KINDS[TARGET_DATAPLANE] for item in await client.list(kind, OURS)]
    pending = iter(doomed)

    async def worker() -> None:
        for item in pending:
            metadata = item["metadata"]
            await client.delete(str(item["kind"]), str(metadata.get("namespace") or ""), str(metadata["name"]))

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    left = [item for kind in RELEASE_KINDS[TARGET_DATAPLANE] for item in await client.list(kind, OURS)]
    if left:
        raise RuntimeError(f"{len(left)} objects survived the cleanup")
    return len(doomed)


# ---------------------------------------------------------------------------------------------- measuring


@contextmanager
def _timed(
    figures: dict[str, Any], name: str, calls: Callable[[], int], agent_pid: int | None = None
) -> Iterator[None]:
    """Wall time, calls, calls/s and this process's CPU of one pass (and the agent's, when given)."""
    before = calls()
    cpu = time.process_time()
    agent_cpu = process_cpu_s(agent_pid) if agent_pid else 0.0
    started = time.perf_counter()
    yield
    wall = time.perf_counter() - started
    made = calls() - before
    figures[name] = {
        "wall_s": round(wall, 3),
        "calls": made,
        "calls_per_s": round(made / wall, 1),
        "caller_cpu_s": round(time.process_time() - cpu, 3),
    }
    if agent_pid:
        figures[name]["agent_cpu_ms_per_call"] = round((process_cpu_s(agent_pid) - agent_cpu) * 1000 / made, 3)


async def _reconcile_pass(
    figures: dict[str, Any],
    name: str,
    reconciler: Reconciler,
    transport: Counted | DirectTransport,
    agent_pid: int | None,
) -> None:
    """One timed `pass_once`, then how many bindings it left ResourcesApplied=True (untimed); `store_writes` is
    how far the store's revision moved (a settled pass writes nothing)."""
    revision = await asyncio.to_thread(reconciler.store.revision)
    with _timed(figures, name, lambda: transport.calls, agent_pid):
        passed = await reconciler.pass_once()
    figures[name]["store_writes"] = await asyncio.to_thread(reconciler.store.revision) - revision
    figures[name]["bindings"] = passed.bindings
    figures[name]["pruned"] = passed.pruned
    figures[name]["applied"] = await asyncio.to_thread(applied, reconciler.store)


async def _measure(workdir: Path, components: int) -> dict[str, Any]:
    async with connected_plane(workdir, PLANE, CR_KEY, wait_s=WAIT_S, prepare=widen_services) as plane:
        store = Store(f"sqlite:///{workdir / 'cp.db'}")
        started = time.perf_counter()
        await asyncio.to_thread(build_world, store, components, ca_pem(plane.plane_ca))
        figures: dict[str, Any] = {"bindings": components, "world_build_s": round(time.perf_counter() - started, 1)}
        targets = await asyncio.to_thread(render, store)
        target = from_kubeconfig(plane.kubeconfig)
        connector = aiohttp.TCPConnector(limit=CONCURRENCY * 2, ssl=target.tls)
        async with aiohttp.ClientSession(connector=connector) as session:
            tunnel = Counted(plane.gateway.gateway)
            reconciler = Reconciler(store, tunnel, concurrency=CONCURRENCY, timeout_s=WAIT_S)
            direct = DirectTransport(target, session)
            await warm_up(direct)
            await warm_up(tunnel)
            with _timed(figures, "direct_first", lambda: direct.calls):
                await direct_pass(direct, targets)
            figures["cleanup_deleted"] = await cleanup(direct)
            await _reconcile_pass(figures, "reconcile_first", reconciler, tunnel, plane.agent_pid)
            with _timed(figures, "direct_settled", lambda: direct.calls):
                await direct_pass(direct, targets)
            untunnelled = Reconciler(store, direct, concurrency=CONCURRENCY, timeout_s=WAIT_S)
            await _reconcile_pass(figures, "untunnelled_settled", untunnelled, direct, None)
            await _reconcile_pass(figures, "reconcile_settled", reconciler, tunnel, plane.agent_pid)
        store.close()
        return figures


def _side_rows(label: str, side: dict[str, Any], base: dict[str, Any], n: int) -> list[tuple[str, str, str]]:
    """A pass's rows: wall time and calls/s against the baseline's; for a reconciler pass also the bindings it
    left ResourcesApplied=True, its store writes, the caller's and the agent's CPU."""
    baseline = side is base
    rows = [
        (
            f"{label}: wall (s)",
            f"{side['wall_s']}",
            "baseline" if baseline else f"{side['wall_s'] / base['wall_s']:.2f}x",
        ),
        (
            f"{label}: calls/s",
            f"{side['calls_per_s']} ({side['calls']} calls)",
            "baseline" if baseline else f"{side['calls_per_s'] / base['calls_per_s']:.2f}x",
        ),
    ]
    if "applied" in side:
        rows.append(
            (f"{label}: ResourcesApplied=True", f"{side['applied']}/{n}", "" if side["applied"] == n else "NOT ALL")
        )
        rows.append((f"{label}: store writes", f"{side['store_writes']}", ""))
    rows.append((f"{label}: caller CPU (s)", f"{side['caller_cpu_s']}", ""))
    if "agent_cpu_ms_per_call" in side:
        rows.append((f"{label}: agent CPU per call (ms)", f"{side['agent_cpu_ms_per_call']}", ""))
    return rows


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        raw = asyncio.run(_measure(Path(scratch), int(os.environ.get("BENCH_RECONCILE_BINDINGS", 1000))))
    n = raw["bindings"]
    rows: list[tuple[str, str, str]] = [
        ("world", f"{n} ReleaseBindings", f"1 namespace, 1 env, 1 data plane; built in {raw['world_build_s']} s"),
        ("concurrency", f"{CONCURRENCY}", "bindings at once, both sides"),
    ]
    first, settled = raw["direct_first"], raw["direct_settled"]
    rows += _side_rows("direct first pass", first, first, n)
    rows += _side_rows("reconcile first pass (tunnel)", raw["reconcile_first"], first, n)
    rows += _side_rows("direct settled pass", settled, settled, n)
    rows += _side_rows("reconcile settled pass (no tunnel)", raw["untunnelled_settled"], settled, n)
    rows += _side_rows("reconcile settled pass (tunnel)", raw["reconcile_settled"], settled, n)
    report("reconcile", rows, raw)
    return raw


if __name__ == "__main__":
    run()
