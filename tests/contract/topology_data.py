"""One set of synthetic HTTP requests for the topology contract (tests/contract/test_topology.py), in three forms:
spans for the embedded backend, Cilium Hubble + kube-state-metrics history (OpenMetrics text) for Prometheus
with the `kubernetes` scheme, and the topology the rules give (nearest-rank percentiles), computed here.

Everything is named with a per-process token, so the session's shared Prometheus is not polluted for others.
See the test module's docstring for why the two backends can agree exactly on this data.
"""

from __future__ import annotations

import math
import random
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from domain import semconv
from domain.model import (
    EdgeMetrics,
    Identity,
    NodeRef,
    SpanRecord,
    TimeRange,
    Topology,
    TopologyEdge,
    TopologyNode,
    TopologyQuery,
)

S = 1_000_000_000
MS = 1_000_000
SCRAPE = 15
TOKEN = uuid.uuid4().hex[:8]

# The window: 30 minutes ending on a minute boundary 90 minutes ago (well inside the 30 d retention, clear of
# the head block). The history runs from 10 minutes before it to 10 minutes after it, one sample every 15 s,
# so there are samples exactly at START and at END.
END = (int(time.time()) // 60 - 90) * 60
START = END - 30 * 60
DATA_START = START - 10 * 60
DATA_END = END + 10 * 60
WINDOW = TimeRange(START * S, END * S)
SCRAPES = list(range(DATA_START, DATA_END + 1, SCRAPE))

#: Hubble's duration buckets (prometheus.DefBuckets), +Inf implicit.
BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# ============================================================================================ the platform

OC_NS = f"oc-topo-{TOKEN}"  # the OpenChoreo namespace most of it lives in
PARTNER_NS = f"oc-partner-{TOKEN}"  # another OpenChoreo namespace
DEV, PROD, STAGING = f"env-dev-{TOKEN}", f"env-prod-{TOKEN}", f"env-staging-{TOKEN}"
CANARY = f"env-canary-{TOKEN}"
PARTNER_ENV = f"env-partner-{TOKEN}"
SHOP, BILLING, PARTNER = f"p-shop-{TOKEN}", f"p-billing-{TOKEN}", f"p-partner-{TOKEN}"
ENV_NAMES = {DEV: "dev", PROD: "prod", STAGING: "staging", CANARY: "canary", PARTNER_ENV: "live"}


@dataclass(frozen=True)
class Component:
    name: str
    uid: str
    project: str
    project_uid: str
    namespace: str = OC_NS


WEB = Component("web", f"c-web-{TOKEN}", "shop", SHOP)
API = Component("api", f"c-api-{TOKEN}", "shop", SHOP)
CART = Component("cart", f"c-cart-{TOKEN}", "shop", SHOP)
LEDGER = Component("ledger", f"c-ledger-{TOKEN}", "billing", BILLING)
CRM = Component("crm", f"c-crm-{TOKEN}", "partner", PARTNER, PARTNER_NS)


@dataclass(frozen=True)
class Pod:
    """A Kubernetes pod; with a component it carries OpenChoreo's labels (and its spans that identity)."""

    name: str
    kube_ns: str
    component: Component | None = None
    env_uid: str = ""

    @property
    def identity(self) -> Identity:
        c = self.component
        if c is None:  # no OpenChoreo labels: a platform pod, the gateway, something hand-deployed
            return Identity(pod=self.name, pod_namespace=self.kube_ns, container="main")
        return Identity(
            namespace=c.namespace,
            project=c.project,
            project_uid=c.project_uid,
            component=c.name,
            component_uid=c.uid,
            environment=ENV_NAMES[self.env_uid],
            environment_uid=self.env_uid,
            pod=self.name,
            pod_namespace=self.kube_ns,
            container="main",
        )


K_DEV, K_PROD, K_STAGING = f"dp-{TOKEN}-dev", f"dp-{TOKEN}-prod", f"dp-{TOKEN}-staging"
K_CANARY, K_PARTNER, K_GW = f"dp-{TOKEN}-canary", f"dp-{TOKEN}-partner", f"gw-{TOKEN}"

WEB1 = Pod("web-1", K_DEV, WEB, DEV)
API1 = Pod("api-1", K_DEV, API, DEV)
API2 = Pod("api-2", K_DEV, API, DEV)
CART1 = Pod("cart-1", K_DEV, CART, DEV)
LEDGER1 = Pod("ledger-1", K_DEV, LEDGER, DEV)
STRAY = Pod("stray-1", K_DEV)  # no OpenChoreo labels
GATEWAY = Pod("gateway-1", K_GW)  # the ingress gateway: no OpenChoreo labels either
CRM1 = Pod("crm-1", K_PARTNER, CRM, PARTNER_ENV)
# The same pod names in other environments (other kube namespaces): the joins must use the namespace too.
WEB_PROD, API_PROD = Pod("web-1", K_PROD, WEB, PROD), Pod("api-1", K_PROD, API, PROD)
WEB_STAGING, API_STAGING = Pod("web-1", K_STAGING, WEB, STAGING), Pod("api-1", K_STAGING, API, STAGING)
WEB_CANARY, API_CANARY = Pod("web-1", K_CANARY, WEB, CANARY), Pod("api-1", K_CANARY, API, CANARY)
PODS = (
    WEB1, API1, API2, CART1, LEDGER1, STRAY, GATEWAY, CRM1, WEB_PROD, API_PROD, WEB_STAGING, API_STAGING,
    WEB_CANARY, API_CANARY,
)  # fmt: skip

# ============================================================================================ the traffic

Shape = tuple[tuple[float, int], ...]  # (duration in seconds, how many requests took it)


@dataclass(frozen=True)
class Flow:
    """Requests from one pod to another. `when` places them: inside the window, wholly before it, wholly
    after it, starting inside and ending after it (`straddle`), or starting before it and answered inside it
    (`early`: only in the canary environment, see the test's known difference). A caller without a component sends no
    traceable parent (`gateway`: the server spans are roots) or a Client span of an unlabelled pod (`stray`)."""

    src: Pod
    dst: Pod
    shape: Shape
    statuses: tuple[tuple[int, int], ...] = ()  # (HTTP status, how many), the rest are 200
    when: str = "window"
    root: bool = False  # the server spans have no parent (the caller is not traced: the gateway)
    seed: int = 0

    @property
    def count(self) -> int:
        return sum(n for _, n in self.shape)


# Every flow into a node (and so every edge and every node's total) has its ranks 0.5 n, 0.9 n and 0.99 n on
# cumulative bucket counts, and the largest duration in each of those buckets is the bucket's upper bound.
# api receives 400 in dev: p50 0.01, p90 0.05, p99 0.25.
F_WEB_API1 = Flow(WEB1, API1, ((0.003, 25), (0.01, 35), (0.02, 20), (0.05, 30), (0.25, 10), (1.0, 2)),
                  ((503, 6), (404, 3), (201, 4)), seed=1)  # fmt: skip
F_WEB_API2 = Flow(WEB1, API2, ((0.003, 15), (0.01, 25), (0.05, 30), (0.25, 8)), ((503, 2),), seed=2)
F_CRM_API = Flow(CRM1, API1, ((0.01, 50), (0.05, 40), (0.1, 5), (0.25, 4), (2.5, 1)), ((429, 5),), seed=3)
F_SELF = Flow(API2, API1, ((0.005, 50), (0.05, 40), (0.25, 9), (0.5, 1)), ((500, 1),), seed=4)  # no edge
# cart receives 200: p50 0.1, p90 0.5, p99 2.5.
F_API_CART = Flow(API1, CART1, ((0.1, 50), (0.25, 20), (0.5, 20), (2.5, 9), (5.0, 1)), ((503, 10),), seed=5)
F_STRAY_CART = Flow(STRAY, CART1, ((0.075, 30), (0.1, 20), (0.5, 40), (1.0, 4), (2.5, 5), (10.0, 1)), seed=6)
# ledger (project billing) receives 100: p50 0.005, p90 0.025, p99 0.1.
F_API_LEDGER = Flow(API2, LEDGER1, ((0.005, 50), (0.01, 20), (0.025, 20), (0.1, 9), (0.5, 1)),
                    ((404, 7), (301, 3)), seed=7)  # fmt: skip
# web receives 300: p50 0.05, p90 0.25, p99 1.0.
F_LEDGER_WEB = Flow(LEDGER1, WEB1, ((0.05, 50), (0.25, 40), (1.0, 9), (2.5, 1)), ((502, 4),), seed=8)
F_GATEWAY_WEB = Flow(GATEWAY, WEB1, ((0.03, 60), (0.05, 40), (0.1, 50), (0.25, 30), (0.5, 10), (1.0, 8), (10.0, 2)),
                     ((503, 20),), root=True, seed=9)  # fmt: skip
# Into another OpenChoreo namespace: crm receives 100 in its own: p50 0.025, p90 0.05, p99 0.1.
F_API_CRM = Flow(API1, CRM1, ((0.025, 50), (0.05, 40), (0.1, 9), (0.25, 1)), seed=10)
# prod: api receives 100: p50 0.01, p90 0.1, p99 1.0.
F_PROD = Flow(WEB_PROD, API_PROD, ((0.01, 50), (0.1, 40), (1.0, 9), (10.0, 1)), ((500, 2),), seed=11)
# ... and web, which calls in the window, received only before and after it: its node has no metrics.
F_PROD_BACK_BEFORE = Flow(API_PROD, WEB_PROD, ((0.05, 12),), ((503, 2),), when="before", seed=19)
F_PROD_BACK_AFTER = Flow(API_PROD, WEB_PROD, ((0.05, 7),), when="after", seed=20)
# Outside the window, which neither backend may count.
F_BEFORE = Flow(WEB1, API1, ((0.01, 10), (2.5, 27)), ((503, 30),), when="before", seed=12)
F_AFTER = Flow(WEB1, API1, ((5.0, 31),), ((404, 31),), when="after", seed=13)
F_STRADDLE = Flow(API1, CART1, ((2.5, 1), (10.0, 2)), ((503, 3),), when="straddle", seed=14)
F_STAGING_BEFORE = Flow(WEB_STAGING, API_STAGING, ((0.1, 20),), ((503, 5),), when="before", seed=15)
F_STAGING_AFTER = Flow(WEB_STAGING, API_STAGING, ((0.5, 20),), when="after", seed=16)
# canary: web -> api, half of it started before the window and answered inside it. 100 answered in the
# window: p50 2.5, p90 5, p99 10 (the last one took 20 s: Hubble's +Inf bucket).
F_CANARY_EARLY = Flow(WEB_CANARY, API_CANARY, ((2.5, 50),), ((503, 5),), when="early", seed=17)
F_CANARY = Flow(WEB_CANARY, API_CANARY, ((5.0, 40), (10.0, 9), (20.0, 1)), ((404, 3),), seed=18)

FLOWS = (
    F_WEB_API1, F_WEB_API2, F_CRM_API, F_SELF, F_API_CART, F_STRAY_CART, F_API_LEDGER, F_LEDGER_WEB, F_GATEWAY_WEB,
    F_API_CRM, F_PROD, F_PROD_BACK_BEFORE, F_PROD_BACK_AFTER, F_BEFORE, F_AFTER, F_STRADDLE, F_STAGING_BEFORE,
    F_STAGING_AFTER, F_CANARY_EARLY, F_CANARY,
)  # fmt: skip


@dataclass(frozen=True)
class Request:
    flow: Flow
    start_ns: int
    duration_ns: int
    status: int
    seq: int  # unique over all requests: trace and span ids

    @property
    def end_ns(self) -> int:
        return self.start_ns + self.duration_ns

    @property
    def seconds(self) -> float:
        return self.duration_ns / S  # exactly what the embedded backend computes, and the literal bound

    @property
    def failed(self) -> bool:
        return self.status >= 400


def _requests(flow: Flow, first_seq: int) -> list[Request]:
    rng = random.Random(flow.seed)
    durations = [round(d * S) for d, n in flow.shape for _ in range(n)]
    statuses = [code for code, n in flow.statuses for _ in range(n)]
    statuses += [200] * (len(durations) - len(statuses))
    rng.shuffle(durations)
    rng.shuffle(statuses)
    n = len(durations)
    if flow.when == "window":  # starts spread over the window, clear of both ends (durations are <= 10 s)
        lo, hi = (START + 5) * S, (END - 15) * S
    elif flow.when == "before":
        lo, hi = (DATA_START + 5) * S, (START - 12) * S
    elif flow.when == "after":
        lo, hi = (END + 1) * S, (DATA_END - 60) * S
    elif flow.when == "straddle":  # start inside, end after END (every duration here is longer than 2 s)
        lo, hi = END * S - 2 * S, END * S - 1 * S
    elif flow.when == "early":  # start before START, end inside (every duration here is longer than 2 s)
        lo, hi = START * S - 2 * S, START * S - 1 * S
    else:
        raise ValueError(flow.when)
    spacing = (hi - lo) // n
    offset = rng.randrange(0, spacing // 2) // MS * MS
    out = []
    for i, (duration, status) in enumerate(zip(durations, statuses)):
        start = lo + offset + i * spacing
        out.append(Request(flow, start, duration, status, first_seq + i))
    return out


def all_requests() -> list[Request]:
    out: list[Request] = []
    for flow in FLOWS:
        out += _requests(flow, len(out) + 1)
    for r in out:
        assert r.flow.count == sum(1 for x in out if x.flow is r.flow)
        if r.flow.when == "window":
            assert START * S < r.start_ns - MS and r.end_ns + MS < END * S
        elif r.flow.when == "before":
            assert r.end_ns + MS < START * S
        elif r.flow.when == "after":
            assert r.start_ns - MS > END * S and r.end_ns < DATA_END * S
        elif r.flow.when == "straddle":
            assert r.start_ns - MS > START * S and r.start_ns < END * S < r.end_ns < DATA_END * S
        else:
            assert r.flow.dst.env_uid == CANARY and r.start_ns < START * S < r.end_ns - MS < END * S
    return out


REQUESTS = all_requests()

# ============================================================================================ as spans


def spans(requests: Iterable[Request] = REQUESTS) -> list[SpanRecord]:
    """A Server span in the receiving pod per request; a Client span (1 ms longer on each side) in the calling
    pod, the server span's parent, unless the caller is not traced (`root`). Server spans of 5xx responses have
    status error (as OpenTelemetry's HTTP conventions set it); every one carries the HTTP status."""
    out = []
    for r in requests:
        trace_id = f"{r.seq:032x}"
        client_id, server_id = f"{2 * r.seq:016x}", f"{2 * r.seq + 1:016x}"
        if not r.flow.root:
            out.append(
                SpanRecord(
                    trace_id=trace_id,
                    span_id=client_id,
                    parent_span_id="",
                    name="GET",
                    kind="Client",
                    start_ns=r.start_ns - MS,
                    end_ns=r.end_ns + MS,
                    identity=r.flow.src.identity,
                    status_code="error" if r.status >= 500 else "unset",
                    attributes={semconv.HTTP_STATUS_ATTRIBUTE: r.status, "http.request.method": "GET"},
                )
            )
        out.append(
            SpanRecord(
                trace_id=trace_id,
                span_id=server_id,
                parent_span_id="" if r.flow.root else client_id,
                name="GET /things",
                kind="Server",
                start_ns=r.start_ns,
                end_ns=r.end_ns,
                identity=r.flow.dst.identity,
                status_code="error" if r.status >= 500 else "unset",
                attributes={semconv.HTTP_STATUS_ATTRIBUTE: r.status, "http.request.method": "GET"},
            )
        )
    return out


# ============================================================================================ as Prometheus series


def _om_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(bound)


class _History:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, name: str, labels: dict[str, str], values: Iterable[float]) -> None:
        selector = name + "{" + ",".join(f'{k}="{_om_escape(v)}"' for k, v in labels.items()) + "}"
        self.lines += [f"{selector} {float(v)!r} {t}" for t, v in zip(SCRAPES, values, strict=True)]


def _running(requests: list[Request], value) -> Iterator[float]:  # noqa: ANN001
    """A counter scraped every 15 s: the total of `value(r)` over the requests answered by each scrape (Hubble
    counts a request when its response passes), 0 before the first."""
    ends = sorted((r.end_ns, value(r)) for r in requests)
    total, i = 0.0, 0
    for t in SCRAPES:
        while i < len(ends) and ends[i][0] <= t * S:
            total += ends[i][1]
            i += 1
        yield total


def openmetrics(requests: Iterable[Request] = REQUESTS) -> str:
    """`kube_pod_labels` of every pod (OpenChoreo's labels on those with a component) and Hubble's HTTP series
    per (source pod, destination pod): `reporter="server"` as measured by the receiver, and client-side
    duplicates (`reporter="client"`, durations doubled, every request a 500) that must never be counted. All
    series exist from the first sample, so every counter has a sample at START and at END."""
    h = _History()
    for pod in PODS:
        labels = {"job": "kube-state-metrics", "instance": "ksm-0", "namespace": pod.kube_ns, "pod": pod.name}
        if (c := pod.component) is not None:
            labels |= {
                "label_openchoreo_dev_namespace": c.namespace,
                "label_openchoreo_dev_project": c.project,
                "label_openchoreo_dev_project_uid": c.project_uid,
                "label_openchoreo_dev_component": c.name,
                "label_openchoreo_dev_component_uid": c.uid,
                "label_openchoreo_dev_environment": ENV_NAMES[pod.env_uid],
                "label_openchoreo_dev_environment_uid": pod.env_uid,
            }
        labels["label_app"] = pod.name
        h.add("kube_pod_labels", labels, [1.0] * len(SCRAPES))
    by_pods: dict[tuple[Pod, Pod], list[Request]] = defaultdict(list)
    for r in requests:
        by_pods[(r.flow.src, r.flow.dst)].append(r)
    for (src, dst), rs in by_pods.items():
        ends = {
            "source_namespace": src.kube_ns,
            "source_pod": src.name,
            "destination_namespace": dst.kube_ns,
            "destination_pod": dst.name,
        }
        for reporter in ("server", "client"):
            common = {"job": "hubble", **ends, "method": "GET", "reporter": reporter}
            if reporter == "server":
                observed = rs
            else:
                observed = [Request(r.flow, r.start_ns, 2 * r.duration_ns, 500, r.seq) for r in rs]
            for status in sorted({r.status for r in observed}):
                mine = [r for r in observed if r.status == status]
                labels = common | {"protocol": "HTTP/1.1", "status": str(status)}
                h.add("hubble_http_requests_total", labels, _running(mine, lambda r: 1.0))
            for bound in (*BOUNDS, math.inf):
                mine = [r for r in observed if r.seconds <= bound]
                h.add("hubble_http_request_duration_seconds_bucket", common | {"le": _le(bound)},
                      _running(mine, lambda r: 1.0))  # fmt: skip
            h.add("hubble_http_request_duration_seconds_sum", common, _running(observed, lambda r: r.seconds))
            h.add("hubble_http_request_duration_seconds_count", common, _running(observed, lambda r: 1.0))
    return "\n".join(h.lines) + "\n# EOF\n"


# ============================================================================================ the expectation


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(round(q * 100) * len(ordered) / 100) - 1]


def histogram_quantile(q: float, seconds: list[float]) -> float:
    """Prometheus' histogram_quantile over Hubble's buckets of these durations (linear in the bucket)."""
    bounds = (*BOUNDS, math.inf)
    cumulative = [float(sum(1 for s in seconds if s <= b)) for b in bounds]
    rank = q * cumulative[-1]
    b = next(i for i, c in enumerate(cumulative[:-1] + [math.inf]) if c >= rank)
    if b == len(bounds) - 1:
        return bounds[-2]
    lower, below = (bounds[b - 1], cumulative[b - 1]) if b > 0 else (0.0, 0.0)
    return lower + (bounds[b] - lower) * (rank - below) / (cumulative[b] - below)


def metrics_of(requests: list[Request]) -> EdgeMetrics:
    seconds = [r.seconds for r in requests]
    return EdgeMetrics(
        request_count=float(len(requests)),
        unsuccessful_request_count=float(sum(r.failed for r in requests)),
        mean_latency=math.fsum(seconds) / len(seconds),
        latency_p50=nearest_rank(seconds, 0.5),
        latency_p90=nearest_rank(seconds, 0.9),
        latency_p99=nearest_rank(seconds, 0.99),
    )


def ref(c: Component, project_uid: str) -> NodeRef:
    return NodeRef(
        kind="component" if c.project_uid == project_uid else "external",
        component=c.name,
        component_uid=c.uid,
        project=c.project,
        project_uid=c.project_uid,
        namespace=c.namespace,
    )


def in_window(r: Request, window: TimeRange) -> bool:
    """Answered in (start, end]: what Hubble's counters sampled at both ends count. The embedded backend asks
    for the server span wholly inside [start, end] instead, which only differs for the canary's early requests
    (and for none at all if it asked for `end_ns > start AND end_ns <= end`)."""
    return window.start_ns < r.end_ns <= window.end_ns


def received(query: TopologyQuery, requests: Iterable[Request] = REQUESTS) -> list[Request]:
    """Requests answered by a component in the scope's namespace and environment, whatever its project."""
    scope = query.scope
    return [
        r
        for r in requests
        if in_window(r, query.range)
        and r.flow.dst.component is not None
        and r.flow.dst.component.namespace == scope.namespace
        and r.flow.dst.env_uid == scope.environment_uid
    ]


def expected_topology(query: TopologyQuery, requests: Iterable[Request] = REQUESTS) -> Topology:
    """The rules both backends state: an edge is a call between two different components (callers without a
    component, the gateway included, draw none -- gateways are left out here, see the test); it touches the
    scope's project, stays inside it unless external calls are wanted, and touches the scope's component when
    one is given. Nodes are the ends of the edges, with what each received in the scope's namespace and
    environment (None for a node that received nothing there)."""
    project, component = query.scope.project_uid, query.scope.component_uid
    mine = received(query, requests)
    edges: dict[tuple[Component, Component], list[Request]] = defaultdict(list)
    for r in mine:
        src, dst = r.flow.src.component, r.flow.dst.component
        assert dst is not None
        if src is None or src.uid == dst.uid or project not in (src.project_uid, dst.project_uid):
            continue
        if not query.include_external and not src.project_uid == dst.project_uid == project:
            continue
        if component and component not in (src.uid, dst.uid):
            continue
        edges[(src, dst)].append(r)
    by_node: dict[str, list[Request]] = defaultdict(list)
    for r in mine:
        by_node[r.flow.dst.component.uid].append(r)  # type: ignore[union-attr]
    nodes: dict[str, TopologyNode] = {}
    for src, dst in edges:
        for c in (src, dst):
            if c.uid not in nodes:
                nodes[c.uid] = TopologyNode(ref(c, project), metrics_of(by_node[c.uid]) if by_node[c.uid] else None)
    return Topology(
        nodes=list(nodes.values()),
        edges=[TopologyEdge(ref(s, project), ref(d, project), metrics_of(rs)) for (s, d), rs in edges.items()],
    )
