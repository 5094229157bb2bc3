"""The `kubernetes` scheme against a real Prometheus: deterministic cAdvisor, kube-state-metrics and Hubble
history is backfilled, then PrometheusBackend answers metrics and topology queries, compared with values the
test computes from the same history.

The cluster, in OpenChoreo namespace `oc-<token>` (all names carry a per-module token, so other modules can
share the session's Prometheus):

- environment dev (kube namespace `dp-<token>-dev`): project shop with `api` (pods api-1 with two containers,
  api-2 whose `kube_pod_labels` is scraped twice, api-old that is Pending and must not reserve anything) and
  `web` (web-1), a component whose UID is made of PromQL syntax (`evil`), and project billing with `ledger`;
  a pod without OpenChoreo labels (stray-1) in the same kube namespace;
- environment prod (`dp-<token>-prod`): api-1 (the same pod name as in dev) and web-1 of project shop;
- a gateway pod without OpenChoreo labels (`gw-<token>`).

Decoys that must not be counted: cAdvisor's pod-cgroup series (`container=""`, the sum of the containers) and
the sandbox's (`container="POD"`), the node's own network interfaces, Hubble's client-side duplicates.

History: 70 minutes at a 15 s scrape interval ending at a recent hour boundary; queries cover its last hour.
Counters grow by step-wise constants per scrape, so every rate is (value at t - value at t - step) / step
exactly; gauges change every few scrapes, so an average over the wrong samples shows.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from functools import cache

import pytest

from adapters.prometheus.backend import PrometheusBackend
from adapters.prometheus.client import PrometheusConfig
from adapters.prometheus.kubernetes import KubernetesScheme
from adapters.protocols import BackendUnavailable
from domain.model import (
    ComponentScope,
    EdgeMetrics,
    MetricSeries,
    MetricsQuery,
    NodeRef,
    TimeRange,
    Topology,
    TopologyQuery,
)

pytestmark = pytest.mark.integration

S = 1_000_000_000
MIB = 1024 * 1024
SCRAPE = 15
TOKEN = uuid.uuid4().hex[:8]
END = (int(time.time()) // 3600 - 1) * 3600  # an hour boundary, clear of the head block's newest samples
START = END - 3600
DATA_START = START - 10 * 60  # every window of the queried hour is full, the first point's included
N = (END - DATA_START) // SCRAPE + 1
WINDOW = TimeRange(START * S, END * S)

OC_NS = f"oc-{TOKEN}"
DEV, PROD = f"env-dev-{TOKEN}", f"env-prod-{TOKEN}"
K_DEV, K_PROD, K_GW = f"dp-{TOKEN}-dev", f"dp-{TOKEN}-prod", f"gw-{TOKEN}"
SHOP, BILLING = f"p-shop-{TOKEN}", f"p-billing-{TOKEN}"
INJECTION = 'x"} or vector(1) #'


def idx(t: int) -> int:
    """The sample index of time t (seconds)."""
    assert (t - DATA_START) % SCRAPE == 0 and 0 <= t - DATA_START
    return (t - DATA_START) // SCRAPE


def seg(i: int, period: int, levels: int) -> int:
    """A step-wise multiplier: 1, 2, ..., levels, changing every `period` samples."""
    return 1 + (i // period) % levels


# ============================================================================================ the cluster


@dataclass(frozen=True)
class Component:
    name: str
    uid: str
    project: str
    project_uid: str


API = Component("api", f"c-api-{TOKEN}", "shop", SHOP)
WEB = Component("web", f"c-web-{TOKEN}", "shop", SHOP)
LEDGER = Component("ledger", f"c-ledger-{TOKEN}", "billing", BILLING)
EVIL = Component("evil", f'c-evil-"}} or vector(1) # \\ \n}}-{TOKEN}', "shop", SHOP)


@dataclass(frozen=True)
class Pod:
    name: str
    kube_ns: str
    k: int  # seeds the pod's values
    component: Component | None = None
    env_uid: str = ""
    phase: str = "Running"
    containers: tuple[str, ...] = ("main",)
    cadvisor: bool = True
    duplicate_labels: bool = False

    def in_scope(self, scope: ComponentScope) -> bool:
        c = self.component
        return (
            c is not None
            and scope.namespace == OC_NS
            and scope.project_uid in ("", c.project_uid)
            and scope.component_uid in ("", c.uid)
            and scope.environment_uid in ("", self.env_uid)
        )


API1 = Pod("api-1", K_DEV, 1, API, DEV, containers=("main", "sidecar"))
API2 = Pod("api-2", K_DEV, 2, API, DEV, duplicate_labels=True)
API_OLD = Pod("api-old", K_DEV, 3, API, DEV, phase="Pending", cadvisor=False)
WEB1 = Pod("web-1", K_DEV, 4, WEB, DEV)
LEDGER1 = Pod("ledger-1", K_DEV, 5, LEDGER, DEV)
EVIL1 = Pod("evil-1", K_DEV, 6, EVIL, DEV)
API_P1 = Pod("api-1", K_PROD, 7, API, PROD)
WEB_P1 = Pod("web-1", K_PROD, 8, WEB, PROD)
STRAY = Pod("stray-1", K_DEV, 9)
GATEWAY = Pod("gateway-1", K_GW, 10, cadvisor=False)
PODS = (API1, API2, API_OLD, WEB1, LEDGER1, EVIL1, API_P1, WEB_P1, STRAY, GATEWAY)

BOUNDS = (0.01, 0.05, 0.1, 0.5, 1.0, math.inf)
TYPICAL = (0.005, 0.03, 0.075, 0.3, 0.75, 2.5)  # a duration per bucket, for the histogram's _sum


@dataclass(frozen=True)
class Flow:
    """HTTP requests from one pod to another: per scrape, `dist[j]` requests in bucket j and `statuses`
    (adding up to the same total), both times a step-wise multiplier."""

    src: Pod
    dst: Pod
    dist: tuple[int, ...]
    statuses: tuple[tuple[str, int], ...]
    period: int = 20
    reporter: str = "server"

    def __post_init__(self) -> None:
        assert sum(self.dist) == sum(n for _, n in self.statuses) and len(self.dist) == len(BOUNDS)

    def m(self, i: int) -> int:
        return seg(i, self.period, 2)


F_WEB_API1 = Flow(WEB1, API1, (2, 5, 3, 1, 0, 0), (("200", 8), ("500", 2), ("404", 1)))
F_WEB_API2 = Flow(WEB1, API2, (0, 4, 4, 2, 1, 0), (("200", 11),), period=12)
F_GW_API1 = Flow(GATEWAY, API1, (1, 1, 1, 1, 1, 1), (("200", 5), ("502", 1)), period=30)
F_API_LEDGER = Flow(API1, LEDGER1, (3, 3, 0, 0, 0, 1), (("201", 6), ("503", 1)))
F_LEDGER_WEB = Flow(LEDGER1, WEB1, (0, 0, 2, 2, 0, 0), (("200", 3), ("301", 1)), period=8)
F_API_API = Flow(API2, API1, (1, 0, 2, 0, 0, 0), (("200", 2), ("429", 1)))
F_PROD = Flow(WEB_P1, API_P1, (1, 2, 3, 0, 0, 0), (("200", 6),))
F_CLIENT_SIDE = dataclasses.replace(F_WEB_API1, reporter="client", dist=(0, 0, 0, 0, 0, 9), statuses=(("500", 9),))
FLOWS = (F_WEB_API1, F_WEB_API2, F_GW_API1, F_API_LEDGER, F_LEDGER_WEB, F_API_API, F_PROD, F_CLIENT_SIDE)
SERVER_FLOWS = [f for f in FLOWS if f.reporter == "server"]


# ============================================================================================ the history


def running_total(increments: Iterable[float], start: float) -> tuple[float, ...]:
    out, total = [], start
    for x in increments:
        total += x
        out.append(total)
    return tuple(out)


@cache
def cpu(pod: Pod, c: int) -> tuple[float, ...]:
    return running_total((0.3 * pod.k * (c + 1) * seg(i, 20, 3) for i in range(N)), 1000.0 * pod.k)


@cache
def memory(pod: Pod, c: int) -> tuple[float, ...]:
    return tuple(float((64 + 16 * pod.k + 8 * c) * MIB + ((i // 6) % 4) * MIB) for i in range(N))


@cache
def reserved(pod: Pod, c: int, kind: str, resource: str) -> tuple[float, ...]:
    factor = 2.0 if kind == "limits" else 1.0
    if resource == "cpu":
        return tuple(factor * (0.1 * pod.k + 0.05 * c + (0.05 if i >= N // 2 else 0.0)) for i in range(N))
    return tuple(factor * (128 + 32 * c) * MIB * pod.k for _ in range(N))


@cache
def network(pod: Pod, direction: str, iface: int) -> tuple[float, ...]:
    if direction == "receive":
        incs = (1000.0 * pod.k * (iface + 1) * seg(i, 10, 2) for i in range(N))
    else:
        incs = (400.0 * pod.k * (iface + 1) * seg(i, 14, 3) for i in range(N))
    return running_total(incs, 5e6)


@cache
def disk(pod: Pod, direction: str, c: int, device: int) -> tuple[float, ...]:
    if direction == "reads":
        incs = (4096.0 * pod.k * (c + 1) * (device + 1) * seg(i, 30, 2) for i in range(N))
    else:
        incs = (512.0 * pod.k * (c + 1) * (device + 1) * seg(i, 8, 4) for i in range(N))
    return running_total(incs, 1e8)


@cache
def requests(flow: Flow, status: str) -> tuple[float, ...]:
    per_scrape = dict(flow.statuses)[status]
    return running_total((float(per_scrape * flow.m(i)) for i in range(N)), 0.0)


@cache
def bucket(flow: Flow, j: int) -> tuple[float, ...]:
    """The cumulative (`le`) count of bucket j."""
    per_scrape = sum(flow.dist[: j + 1])
    return running_total((float(per_scrape * flow.m(i)) for i in range(N)), 0.0)


@cache
def duration_sum(flow: Flow) -> tuple[float, ...]:
    per_scrape = sum(n * d for n, d in zip(flow.dist, TYPICAL))
    return running_total((per_scrape * flow.m(i) for i in range(N)), 0.0)


@dataclass
class History:
    lines: list[str] = field(default_factory=list)

    def add(self, name: str, labels: dict[str, str], values: Iterable[float]) -> None:
        selector = name + "{" + ",".join(f'{k}="{_om_escape(v)}"' for k, v in labels.items()) + "}"
        for i, value in enumerate(values):
            self.lines.append(f"{selector} {value!r} {DATA_START + i * SCRAPE}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n# EOF\n"


def _om_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def constant(value: float) -> list[float]:
    return [value] * N


def build_history() -> str:
    h = History()
    ksm = {"job": "kube-state-metrics", "instance": "ksm-0"}
    for pod in PODS:
        where = {"namespace": pod.kube_ns, "pod": pod.name}
        labels = dict(ksm, **where)
        if pod.component is not None:
            c = pod.component
            env = "dev" if pod.env_uid == DEV else "prod"
            labels |= {
                "label_openchoreo_dev_namespace": OC_NS,
                "label_openchoreo_dev_project": c.project,
                "label_openchoreo_dev_project_uid": c.project_uid,
                "label_openchoreo_dev_component": c.name,
                "label_openchoreo_dev_component_uid": c.uid,
                "label_openchoreo_dev_environment": env,
                "label_openchoreo_dev_environment_uid": pod.env_uid,
            }
        labels["label_app"] = pod.name
        h.add("kube_pod_labels", labels, constant(1.0))
        if pod.duplicate_labels:
            h.add("kube_pod_labels", labels | {"instance": "ksm-1"}, constant(1.0))
        for phase in ("Pending", "Running"):
            h.add("kube_pod_status_phase", dict(ksm, **where, phase=phase), constant(float(phase == pod.phase)))
        for ci, container in enumerate(pod.containers):
            for kind in ("requests", "limits"):
                for resource, unit in (("cpu", "core"), ("memory", "byte")):
                    ls = dict(ksm, **where, container=container, resource=resource, unit=unit)
                    h.add(f"kube_pod_container_resource_{kind}", ls, reserved(pod, ci, kind, resource))
        if not pod.cadvisor:
            continue
        kubelet = {"job": "kubelet", "metrics_path": "/metrics/cadvisor", **where}
        for ci, container in enumerate(pod.containers):
            ls = dict(kubelet, container=container, image=f"registry/{container}:1")
            h.add("container_cpu_usage_seconds_total", ls, cpu(pod, ci))
            h.add("container_memory_working_set_bytes", ls, memory(pod, ci))
            for device in (0, 1):
                dev = {"device": f"/dev/vd{'ab'[device]}"}
                h.add("container_fs_reads_bytes_total", ls | dev, disk(pod, "reads", ci, device))
                h.add("container_fs_writes_bytes_total", ls | dev, disk(pod, "writes", ci, device))
        # Decoys: the pod cgroup (the sum of its containers) and, for api-1, a Docker-style sandbox container.
        cgroup = dict(kubelet, container="", image="")
        containers = range(len(pod.containers))
        h.add("container_cpu_usage_seconds_total", cgroup, [sum(cpu(pod, c)[i] for c in containers) for i in range(N)])
        memory_total = [sum(memory(pod, c)[i] for c in containers) for i in range(N)]
        h.add("container_memory_working_set_bytes", cgroup, memory_total)
        h.add("container_fs_reads_bytes_total", cgroup | {"device": "/dev/vda"}, disk(pod, "reads", 0, 0))
        h.add("container_fs_writes_bytes_total", cgroup | {"device": "/dev/vda"}, disk(pod, "writes", 0, 0))
        if pod is API1:
            sandbox = dict(kubelet, container="POD", image="pause:3.9")
            h.add("container_cpu_usage_seconds_total", sandbox, running_total([0.01] * N, 1.0))
            h.add("container_fs_writes_bytes_total", sandbox | {"device": "/dev/vda"}, running_total([1e6] * N, 0.0))
        # Network: once per pod, on the sandbox (containerd: container="", the pause image).
        pause = dict(kubelet, container="", image="registry.k8s.io/pause:3.9")
        for iface in (0, 1):
            for direction in ("receive", "transmit"):
                ls = pause | {"interface": f"eth{iface}"}
                h.add(f"container_network_{direction}_bytes_total", ls, network(pod, direction, iface))
    for direction in ("receive", "transmit"):  # the node's own interface: no pod, no namespace
        node = {"job": "kubelet", "container": "", "id": "/", "interface": "ens3", "namespace": "", "pod": ""}
        h.add(f"container_network_{direction}_bytes_total", node, running_total([1e9] * N, 0.0))
    for flow in FLOWS:
        ends = {
            "source_namespace": flow.src.kube_ns,
            "source_pod": flow.src.name,
            "destination_namespace": flow.dst.kube_ns,
            "destination_pod": flow.dst.name,
        }
        common = {"job": "hubble", "reporter": flow.reporter, "method": "GET", **ends}
        for status, _ in flow.statuses:
            ls = common | {"protocol": "HTTP/1.1", "status": status}
            h.add("hubble_http_requests_total", ls, requests(flow, status))
        for j, le in enumerate(BOUNDS):
            ls = common | {"le": "+Inf" if le == math.inf else repr(le)}
            h.add("hubble_http_request_duration_seconds_bucket", ls, bucket(flow, j))
        h.add("hubble_http_request_duration_seconds_sum", common, duration_sum(flow))
    return h.text()


@pytest.fixture(scope="module")
def prometheus_url(prometheus_server) -> str:  # noqa: ANN001
    prometheus_server.backfill(build_history())
    return prometheus_server.url


@pytest.fixture
async def backend(prometheus_url: str) -> AsyncIterator[PrometheusBackend]:
    backend = PrometheusBackend(PrometheusConfig(prometheus_url, timeout_s=20), KubernetesScheme())
    yield backend
    await backend.close()


# ============================================================================================ expectations


def points(step: int) -> list[int]:
    return list(range(START, END + 1, step))


def delta(values: tuple[float, ...], t: int, seconds: int) -> float:
    """What a counter grew by from the sample at t - seconds to the one at t."""
    return values[idx(t)] - values[idx(t - seconds)]


def mean_in_step(values: tuple[float, ...], t: int, step: int) -> float:
    """The mean of a gauge's samples in (t - step, t]."""
    window = values[idx(t - step) + 1 : idx(t) + 1]
    return sum(window) / len(window)


def series(step: int, value: Callable[[int], float | None]) -> list[tuple[int, float]]:
    out = []
    for t in points(step):
        v = value(t)
        if v is not None:
            out.append((t * S, v))
    return out


def histogram_quantile(q: float, cumulative: list[float]) -> float | None:
    """Prometheus' `histogram_quantile` (promql/quantile.go, bucketQuantile) over cumulative counts per BOUNDS:
    the bucket where the rank q * total falls, interpolated linearly inside it; in the +Inf bucket, the largest
    finite bound."""
    total = cumulative[-1]
    if total == 0:
        return None
    rank = q * total
    # On a boundary followed by an empty bucket the result jumps, and float rounding in Prometheus decides
    # which side it lands on; the data avoids that. (Elsewhere a boundary is harmless: both sides agree.)
    for j in range(len(cumulative) - 1):
        assert not (math.isclose(rank, cumulative[j], rel_tol=1e-9) and cumulative[j + 1] == cumulative[j]), (
            "test data: a quantile on the edge of an empty bucket"
        )
    b = next(j for j, c in enumerate(cumulative) if c >= rank)
    if b == len(BOUNDS) - 1:
        return BOUNDS[-2]
    lower, below = (0.0, 0.0) if b == 0 else (BOUNDS[b - 1], cumulative[b - 1])
    return lower + (BOUNDS[b] - lower) * (rank - below) / (cumulative[b] - below)


def expected_resource(scope: ComponentScope, step: int) -> MetricSeries:
    pods = [p for p in PODS if p.in_scope(scope)]
    with_cadvisor = [p for p in pods if p.cadvisor]
    running = [p for p in pods if p.phase == "Running"]

    def rate_of(counters: list[tuple[float, ...]]) -> Callable[[int], float]:
        return lambda t: sum(delta(c, t, step) / step for c in counters)

    def mean_of(gauges: list[tuple[float, ...]]) -> Callable[[int], float]:
        return lambda t: sum(mean_in_step(g, t, step) for g in gauges)

    def containers(ps: list[Pod]) -> list[tuple[Pod, int]]:
        return [(p, c) for p in ps for c in range(len(p.containers))]

    out: MetricSeries = {
        "cpuUsage": series(step, rate_of([cpu(p, c) for p, c in containers(with_cadvisor)])),
        "cpuRequests": series(step, mean_of([reserved(p, c, "requests", "cpu") for p, c in containers(running)])),
        "cpuLimits": series(step, mean_of([reserved(p, c, "limits", "cpu") for p, c in containers(running)])),
        "memoryUsage": series(step, mean_of([memory(p, c) for p, c in containers(with_cadvisor)])),
        "memoryRequests": series(step, mean_of([reserved(p, c, "requests", "memory") for p, c in containers(running)])),
        "memoryLimits": series(step, mean_of([reserved(p, c, "limits", "memory") for p, c in containers(running)])),
        "networkReceiveBytes": series(step, rate_of([network(p, "receive", n) for p in with_cadvisor for n in (0, 1)])),
        "networkTransmitBytes": series(
            step, rate_of([network(p, "transmit", n) for p in with_cadvisor for n in (0, 1)])
        ),
        "diskReadBytes": series(
            step, rate_of([disk(p, "reads", c, d) for p, c in containers(with_cadvisor) for d in (0, 1)])
        ),
        "diskWriteBytes": series(
            step, rate_of([disk(p, "writes", c, d) for p, c in containers(with_cadvisor) for d in (0, 1)])
        ),
    }
    return {k: v for k, v in out.items() if v} if pods else {}


def unsuccessful(status: str) -> bool:
    return status[:1] in ("4", "5")


@dataclass(frozen=True)
class Traffic:
    """Server-side traffic of some flows over a window: counts, failures, duration sum and cumulative buckets."""

    count: float
    failed: float
    ok: float
    seconds: float
    buckets: list[float]

    @classmethod
    def of(cls, flows: Iterable[Flow], t: int, window: int) -> Traffic:
        flows = [f for f in flows if f.reporter == "server"]
        counts = [(s, delta(requests(f, s), t, window)) for f in flows for s, _ in f.statuses]
        return cls(
            count=sum(n for _, n in counts),
            failed=sum(n for s, n in counts if unsuccessful(s)),
            ok=sum(n for s, n in counts if not unsuccessful(s)),
            seconds=sum(delta(duration_sum(f), t, window) for f in flows),
            buckets=[sum(delta(bucket(f, j), t, window) for f in flows) for j in range(len(BOUNDS))],
        )

    def quantile(self, q: float) -> float | None:
        return histogram_quantile(q, self.buckets)


def expected_http(scope: ComponentScope, step: int) -> MetricSeries:
    flows = [f for f in SERVER_FLOWS if f.dst.in_scope(scope)]
    if not flows:
        return {}
    traffic = {t: Traffic.of(flows, t, step) for t in points(step)}
    # A status class with no series at all has no series (sum over nothing); one with series that did not
    # grow in a step has 0 there.
    statuses = [unsuccessful(s) for f in flows for s, _ in f.statuses]
    out = {
        "requestCount": series(step, lambda t: traffic[t].count / step),
        "successfulRequestCount": series(step, lambda t: traffic[t].ok / step) if not all(statuses) else [],
        "unsuccessfulRequestCount": series(step, lambda t: traffic[t].failed / step) if any(statuses) else [],
        "meanLatency": series(step, lambda t: traffic[t].seconds / traffic[t].count),
        "latencyP50": series(step, lambda t: traffic[t].quantile(0.5)),
        "latencyP90": series(step, lambda t: traffic[t].quantile(0.9)),
        "latencyP99": series(step, lambda t: traffic[t].quantile(0.99)),
    }
    return {k: v for k, v in out.items() if v}


def edge_metrics(flows: Iterable[Flow]) -> EdgeMetrics:
    traffic = Traffic.of(flows, END, END - START)
    return EdgeMetrics(
        request_count=traffic.count,
        unsuccessful_request_count=traffic.failed,
        mean_latency=traffic.seconds / traffic.count,
        latency_p50=traffic.quantile(0.5) or 0.0,
        latency_p90=traffic.quantile(0.9) or 0.0,
        latency_p99=traffic.quantile(0.99) or 0.0,
    )


def ref(component: Component, scope_project: str) -> NodeRef:
    return NodeRef(
        kind="component" if component.project_uid == scope_project else "external",
        component=component.name,
        component_uid=component.uid,
        project=component.project,
        project_uid=component.project_uid,
        namespace=OC_NS,
    )


def received(component: Component, env_uid: str) -> list[Flow]:
    """Every server-side request a component received in an environment: from any caller, attributable or not."""
    return [f for f in SERVER_FLOWS if f.dst.component == component and f.dst.env_uid == env_uid]


def assert_series_equal(actual: MetricSeries, expected: MetricSeries) -> None:
    actual = {key: points for key, points in actual.items() if points}  # every key is answered, some empty
    assert sorted(actual) == sorted(expected)
    for key, points_ in expected.items():
        assert [t for t, _ in actual[key]] == [t for t, _ in points_], key
        assert [v for _, v in actual[key]] == pytest.approx([v for _, v in points_], rel=1e-9), key


def assert_topology(
    actual: Topology, scope: ComponentScope, edges: dict[tuple[Component, Component], list[Flow]]
) -> None:
    project = scope.project_uid
    got = {(e.source.component_uid, e.target.component_uid): e for e in actual.edges}
    assert sorted(got) == sorted((s.uid, d.uid) for s, d in edges)
    for (src, dst), flows in edges.items():
        edge = got[(src.uid, dst.uid)]
        assert (edge.source, edge.target) == (ref(src, project), ref(dst, project))
        assert dataclasses.astuple(edge.metrics) == pytest.approx(dataclasses.astuple(edge_metrics(flows)), rel=1e-9)
    components = {c for pair in edges for c in pair}
    nodes = {n.ref.component_uid: n for n in actual.nodes}
    assert sorted(nodes) == sorted(c.uid for c in components)
    assert len(actual.nodes) == len(nodes)
    for c in components:
        node = nodes[c.uid]
        assert node.ref == ref(c, project)
        flows = received(c, scope.environment_uid)
        if not flows:
            assert node.metrics is None  # it only called
            continue
        assert node.metrics is not None
        expected = edge_metrics(flows)
        assert dataclasses.astuple(node.metrics) == pytest.approx(dataclasses.astuple(expected), rel=1e-9)


# ============================================================================================ metrics

SCOPES = {
    "component": ComponentScope(OC_NS, SHOP, API.uid, DEV),
    "component-all-environments": ComponentScope(OC_NS, SHOP, API.uid),
    "project": ComponentScope(OC_NS, SHOP),
    "project-environment": ComponentScope(OC_NS, SHOP, environment_uid=PROD),
    "other-project": ComponentScope(OC_NS, BILLING, LEDGER.uid, DEV),
    "namespace": ComponentScope(OC_NS),
}


def query(family: str, scope: ComponentScope, step: int) -> MetricsQuery:
    return MetricsQuery(family=family, scope=scope, range=WINDOW, step_ns=step * S)  # type: ignore[arg-type]


@pytest.mark.parametrize("step", [60, 300])
@pytest.mark.parametrize("name", list(SCOPES))
async def test_resource_series(backend: PrometheusBackend, name: str, step: int) -> None:
    scope = SCOPES[name]
    expected = expected_resource(scope, step)
    assert set(expected) == {
        "cpuUsage", "cpuRequests", "cpuLimits", "memoryUsage", "memoryRequests", "memoryLimits",
        "networkReceiveBytes", "networkTransmitBytes", "diskReadBytes", "diskWriteBytes",
    }  # fmt: skip
    assert_series_equal(await backend.query_metrics(query("resource", scope, step)), expected)


@pytest.mark.parametrize("step", [60, 300])
@pytest.mark.parametrize("name", list(SCOPES))
async def test_http_series(backend: PrometheusBackend, name: str, step: int) -> None:
    scope = SCOPES[name]
    expected = expected_http(scope, step)
    assert len(expected) == (6 if name == "project-environment" else 7)  # prod's api has no failures
    assert_series_equal(await backend.query_metrics(query("http", scope, step)), expected)


async def test_windows_follow_the_step(backend: PrometheusBackend) -> None:
    """The same hour at two steps: each point is the rate over its own step, so the 5-minute series is the
    mean of the 1-minute points it covers, not a copy of every fifth one (a fixed window would give that)."""
    scope = SCOPES["component"]
    fine = dict((await backend.query_metrics(query("resource", scope, 60)))["cpuUsage"])
    coarse = dict((await backend.query_metrics(query("resource", scope, 300)))["cpuUsage"])
    for t, value in coarse.items():
        if t - 240 * S < WINDOW.start_ns:
            continue
        covered = [fine[t - k * 60 * S] for k in range(5)]
        assert value == pytest.approx(sum(covered) / 5, rel=1e-9)
    assert any(coarse[t] != pytest.approx(fine[t], rel=1e-6) for t in coarse)


async def test_requests_and_limits_leave_out_pods_that_are_not_running(backend: PrometheusBackend) -> None:
    assert API_OLD.in_scope(SCOPES["component"]) and API_OLD.phase != "Running"
    out = await backend.query_metrics(query("resource", SCOPES["component"], 300))
    pods = (API1, API2, API_OLD)
    everything = sum(reserved(p, c, "requests", "cpu")[idx(END)] for p in pods for c in range(len(p.containers)))
    assert out["cpuRequests"][-1][1] < everything


# ============================================================================================ escaping


async def test_a_uid_made_of_promql_syntax_is_matched_literally(backend: PrometheusBackend) -> None:
    scope = ComponentScope(OC_NS, SHOP, EVIL.uid, DEV)
    assert [p for p in PODS if p.in_scope(scope)] == [EVIL1]
    assert_series_equal(await backend.query_metrics(query("resource", scope, 60)), expected_resource(scope, 60))


@pytest.mark.parametrize(
    "scope",
    [
        ComponentScope(OC_NS, SHOP, INJECTION, DEV),
        ComponentScope(OC_NS, INJECTION),
        ComponentScope(INJECTION),
        ComponentScope(f'{OC_NS}"}} or kube_pod_labels{{job="kube-state-metrics'),
        ComponentScope(OC_NS, environment_uid='\\"}) or vector(1) #\n'),
    ],
    ids=["component", "project", "namespace", "selector", "environment"],
)
async def test_an_injection_attempt_returns_no_data(backend: PrometheusBackend, scope: ComponentScope) -> None:
    for family in ("resource", "http"):
        assert not any((await backend.query_metrics(query(family, scope, 60))).values())  # every key empty
    topology = await backend.query_topology(TopologyQuery(scope, WINDOW))
    assert topology == Topology(nodes=[], edges=[])


# ============================================================================================ topology


async def test_topology_of_a_project(backend: PrometheusBackend) -> None:
    """Calls within the project and across projects; the gateway's requests to api are in api's node metrics
    but draw no edge, nor do api's calls to itself; prod's traffic is not in dev."""
    scope = ComponentScope(OC_NS, SHOP, environment_uid=DEV)
    topology = await backend.query_topology(TopologyQuery(scope, WINDOW))
    assert_topology(
        topology,
        scope,
        {(WEB, API): [F_WEB_API1, F_WEB_API2], (API, LEDGER): [F_API_LEDGER], (LEDGER, WEB): [F_LEDGER_WEB]},
    )
    api = next(n for n in topology.nodes if n.ref.component_uid == API.uid)
    assert api.metrics is not None
    assert api.metrics.request_count > edge_metrics([F_WEB_API1, F_WEB_API2]).request_count


async def test_topology_without_external_calls(backend: PrometheusBackend) -> None:
    scope = ComponentScope(OC_NS, SHOP, environment_uid=DEV)
    topology = await backend.query_topology(TopologyQuery(scope, WINDOW, include_external=False))
    assert_topology(topology, scope, {(WEB, API): [F_WEB_API1, F_WEB_API2]})


@pytest.mark.parametrize("external", [True, False])
async def test_topology_of_a_component(backend: PrometheusBackend, external: bool) -> None:
    scope = ComponentScope(OC_NS, SHOP, WEB.uid, DEV)
    topology = await backend.query_topology(TopologyQuery(scope, WINDOW, include_external=external))
    edges = {(WEB, API): [F_WEB_API1, F_WEB_API2]}
    if external:
        edges[(LEDGER, WEB)] = [F_LEDGER_WEB]
    assert_topology(topology, scope, edges)


async def test_topology_seen_from_the_other_project(backend: PrometheusBackend) -> None:
    scope = ComponentScope(OC_NS, BILLING, environment_uid=DEV)
    topology = await backend.query_topology(TopologyQuery(scope, WINDOW))
    assert_topology(topology, scope, {(API, LEDGER): [F_API_LEDGER], (LEDGER, WEB): [F_LEDGER_WEB]})
    kinds = {n.ref.component: n.ref.kind for n in topology.nodes}
    assert kinds == {"api": "external", "web": "external", "ledger": "component"}


async def test_topology_of_another_environment(backend: PrometheusBackend) -> None:
    scope = ComponentScope(OC_NS, SHOP, environment_uid=PROD)
    topology = await backend.query_topology(TopologyQuery(scope, WINDOW))
    assert_topology(topology, scope, {(WEB, API): [F_PROD]})


async def test_topology_counts_only_the_window(backend: PrometheusBackend) -> None:
    """Increase over (end - start): the last ten minutes hold what the last ten minutes grew by."""
    scope = ComponentScope(OC_NS, SHOP, environment_uid=DEV)
    window = TimeRange((END - 600) * S, END * S)
    topology = await backend.query_topology(TopologyQuery(scope, window, include_external=False))
    (edge,) = topology.edges
    expected = Traffic.of([F_WEB_API1, F_WEB_API2], END, 600)
    assert edge.metrics.request_count == pytest.approx(expected.count, rel=1e-9)
    assert edge.metrics.unsuccessful_request_count == pytest.approx(expected.failed, rel=1e-9)


# ============================================================================================ faults


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_prometheus_down_is_backend_unavailable() -> None:
    backend = PrometheusBackend(PrometheusConfig(f"http://127.0.0.1:{closed_port()}", timeout_s=2), KubernetesScheme())
    try:
        started = time.monotonic()
        with pytest.raises(BackendUnavailable):
            await asyncio.wait_for(backend.query_metrics(query("resource", SCOPES["component"], 60)), 10)
        with pytest.raises(BackendUnavailable):
            await asyncio.wait_for(backend.query_topology(TopologyQuery(SCOPES["project"], WINDOW)), 10)
        assert time.monotonic() - started < 5
    finally:
        await backend.close()
