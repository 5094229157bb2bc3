"""The `kubernetes` scheme: metrics as OpenChoreo instruments a cluster, in PromQL.

Where the series come from:

- cAdvisor (the kubelet): `container_cpu_usage_seconds_total`, `container_memory_working_set_bytes`,
  `container_fs_{reads,writes}_bytes_total` per container, `container_network_{receive,transmit}_bytes_total`
  per pod network namespace; each carries `namespace` and `pod`.
- kube-state-metrics: `kube_pod_labels` (the pod's `openchoreo.dev/*` labels as `label_openchoreo_dev_*`),
  `kube_pod_container_resource_{requests,limits}{resource="cpu"|"memory"}`, `kube_pod_status_phase`.
- Cilium Hubble: `hubble_http_requests_total` and `hubble_http_request_duration_seconds_{bucket,sum}`, with
  `source_{namespace,pod}` and `destination_{namespace,pod}`; `reporter="server"` is the receiving side.

No usage series knows its component. Every query therefore joins to `kube_pod_labels` on the pod, filtered
by F (the scope's `openchoreo.dev/namespace` and the UIDs it sets) -- see `join` and `to_destination`.

What this fixes in OpenChoreo's adapter (adapters-notes §3.3, §8):

- The rate window is the step, not a fixed 2m: a point at t covers (t - step, t] (see schemes.py), so a 1h
  step does not report the last two minutes only and a 15s step does not smear four points together.
- Every query is one `sum(...)`: upstream used `result[0]`, one arbitrary series of possibly several.
- The network and disk series exist; topology returns the nodes too.

The `>= 0` filters upstream appends are left out: rates and increases of counters are never negative, and the
only other outcome they removed, NaN (0/0 for a mean with no requests, `histogram_quantile` over empty
buckets), is dropped by the client with the infinities.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from adapters.prometheus import promql
from adapters.prometheus.schemes import SIDE_LABELS, FamilyQueries, HistogramQuantiles, TopologyQueries
from domain.model import ComponentScope, MetricFamily, TopologyQuery

_MS = 1_000_000

#: `kube_pod_labels` names of the OpenChoreo pod labels (kube-state-metrics' `label_` + `/.-` -> `_`).
LABEL_NAMESPACE = "label_openchoreo_dev_namespace"
LABEL_PROJECT = "label_openchoreo_dev_project"
LABEL_PROJECT_UID = "label_openchoreo_dev_project_uid"
LABEL_COMPONENT = "label_openchoreo_dev_component"
LABEL_COMPONENT_UID = "label_openchoreo_dev_component_uid"
LABEL_ENVIRONMENT_UID = "label_openchoreo_dev_environment_uid"

#: The `kube_pod_labels` label behind each of schemes.SIDE_LABELS.
_SIDE_SOURCES = {
    "namespace": LABEL_NAMESPACE,
    "project_uid": LABEL_PROJECT_UID,
    "project": LABEL_PROJECT,
    "component_uid": LABEL_COMPONENT_UID,
    "component": LABEL_COMPONENT,
}

KSM = 'job="kube-state-metrics"'
#: Application containers only. `container=""` is the pod's cgroup, which cAdvisor reports as the sum of its
#: containers (counting it too would double the pod), and `container="POD"` the sandbox (pause) container of
#: Docker and CRI-O.
APP_CONTAINERS = ('container!=""', 'container!="POD"')
SERVER = 'reporter="server"'
UNSUCCESSFUL = 'status=~"[45].."'  # PromQL regexes are anchored: a three-character 4xx or 5xx
SUCCESSFUL = 'status!~"[45].."'
QUANTILES = (("latencyP50", 0.5), ("latencyP90", 0.9), ("latencyP99", 0.99))

REQUESTS = "hubble_http_requests_total"
DURATION_SUM = "hubble_http_request_duration_seconds_sum"
DURATION_BUCKET = "hubble_http_request_duration_seconds_bucket"


# ============================================================================================ building blocks


def scope_filter(scope: ComponentScope) -> list[tuple[str, str]]:
    """F: the scope as `kube_pod_labels` matchers, widest first; the UIDs not set are left out.

    The namespace is required: without it F would match every pod of the cluster.
    """
    if not scope.namespace:
        raise ValueError("a component scope needs a namespace")
    return [
        (LABEL_NAMESPACE, scope.namespace),
        (LABEL_PROJECT_UID, scope.project_uid),
        (LABEL_COMPONENT_UID, scope.component_uid),
        (LABEL_ENVIRONMENT_UID, scope.environment_uid),
    ]


def pod_labels(pairs: Sequence[tuple[str, str]], *extra: str) -> str:
    """`kube_pod_labels` of the pods whose labels match `pairs` (escaped) and `extra` (ours)."""
    return promql.selector("kube_pod_labels", pairs, KSM, *extra)


def copy_label(expr: str, target: str, source: str) -> str:
    """`expr` with label `target` set to the value of `source` (both label names are ours)."""
    return f'label_replace({expr}, "{target}", "$1", "{source}", "(.*)")'


def join(expr: str, pairs: Sequence[tuple[str, str]]) -> str:
    """`expr` (series with `pod` and `namespace`) kept only for the pods in scope, values unchanged.

    `kube_pod_labels` is 1, so the product keeps the left values. `max by (pod, namespace)` makes the right side
    one series per pod even when it is scraped twice (two kube-state-metrics replicas, or a second job with
    the same name), which would otherwise fail the whole query with "duplicate series for the match group".
    """
    labels = f"max by (pod, namespace) ({pod_labels(pairs)})"
    return f"{expr} * on (pod, namespace) group_left () {labels}"


def to_destination(expr: str, pairs: Sequence[tuple[str, str]]) -> str:
    """`join` for Hubble series, which name the receiving pod `destination_{namespace,pod}`: the labels side
    gets those names by `label_replace` (adapters-notes §3.3, M)."""
    labels = copy_label(copy_label(pod_labels(pairs), "destination_namespace", "namespace"), "destination_pod", "pod")
    right = f"max by (destination_namespace, destination_pod) ({labels})"
    return f"{expr} * on (destination_namespace, destination_pod) group_left () {right}"


def side_labels(prefix: str) -> list[str]:
    """`src_namespace, src_project_uid, ...`: one end of a topology edge (schemes.SIDE_LABELS)."""
    return [f"{prefix}_{name}" for name in SIDE_LABELS]


def side(end: str, prefix: str, pairs: Sequence[tuple[str, str]], *extra: str) -> str:
    """One end of an edge (adapters-notes §3.4, side(x)): `kube_pod_labels` of the matching pods, joinable on
    `<end>_namespace, <end>_pod` (`end` is Hubble's `source` or `destination`) and carrying the pod's scope as
    `<prefix>_namespace, <prefix>_project_uid, ...`; one series per pod, as in `join`."""
    expr = pod_labels(pairs, *extra)
    renames = [(f"{end}_namespace", "namespace"), (f"{end}_pod", "pod")]
    renames += [(f"{prefix}_{name}", _SIDE_SOURCES[name]) for name in SIDE_LABELS]
    for target, source in renames:
        expr = copy_label(expr, target, source)
    keys = ", ".join([f"{end}_namespace", f"{end}_pod", *side_labels(prefix)])
    return f"max by ({keys}) ({expr})"


def series(metric: str, *matchers: str) -> str:
    """A selector with our own matchers only (no user value reaches these)."""
    return promql.selector(metric, (), *matchers) if matchers else metric


def rate(metric: str, window: str, *matchers: str) -> str:
    """Per-second increase of a counter over `window` (the step: the sample at t - step to the one at t)."""
    return f"rate({series(metric, *matchers)}[{window}])"


def increase(metric: str, window: str, *matchers: str) -> str:
    return f"increase({series(metric, *matchers)}[{window}])"


def average(metric: str, window: str, *matchers: str) -> str:
    """Mean of a gauge's samples in `window` (step minus 1 ms: the samples in (t - step, t])."""
    return f"avg_over_time({series(metric, *matchers)}[{window}])"


def running(expr: str) -> str:
    """`expr` only for pods whose phase is Running at the point (requests and limits of pending, finished or
    failed pods reserve nothing)."""
    phase = series("kube_pod_status_phase", KSM, 'phase="Running"')
    return f"({expr} and on (pod, namespace) ({phase} == 1))"


# ============================================================================================ the scheme


class KubernetesScheme:
    """schemes.Scheme over cAdvisor, kube-state-metrics and Hubble series, joined through `kube_pod_labels`."""

    name = "kubernetes"

    def family(self, family: MetricFamily, scope: ComponentScope, step_ns: int) -> dict[str, str]:
        return self.family_queries(family, scope, step_ns).expressions()

    def family_queries(self, family: MetricFamily, scope: ComponentScope, step_ns: int) -> FamilyQueries:
        pairs = scope_filter(scope)
        step = promql.duration(max(step_ns, _MS))
        gauge_window = promql.duration(max(step_ns - _MS, _MS))
        if family == "resource":
            return FamilyQueries(_resource(pairs, step, gauge_window))
        if family == "http":
            return _http(pairs, step)
        raise ValueError(f"unknown metric family {family!r}")

    def topology(self, query: TopologyQuery) -> TopologyQueries:
        """Instant queries at the window's end over the whole window, on Hubble's server-side series.

        The receiving end is any component of the scope's namespace and environment, whatever its project (a
        call from or into another project is an edge too, shown when external calls are wanted); the calling
        end is any pod with an OpenChoreo component. The backend then applies the project, external and
        component rules (backend._allowed).

        Requests from pods without OpenChoreo labels -- the ingress gateway, other platform pods -- and from
        outside the cluster cannot be attributed to a caller: they are in no edge (there is no gateway node),
        but they are in the receiving node's metrics, which count everything it received.
        """
        scope = query.scope
        if not scope.namespace:
            raise ValueError("a topology scope needs a namespace")
        window = promql.duration(max(query.range.end_ns - query.range.start_ns, _MS))
        receiving = [(LABEL_NAMESPACE, scope.namespace), (LABEL_ENVIRONMENT_UID, scope.environment_uid)]
        component = f'{LABEL_COMPONENT_UID}!=""'
        dst = f"group_left ({', '.join(side_labels('dst'))}) {side('destination', 'dst', receiving, component)}"
        src = f"group_left ({', '.join(side_labels('src'))}) {side('source', 'src', (), component)}"

        def edge(expr: str) -> str:
            received = f"({expr} * on (destination_namespace, destination_pod) {dst})"
            return f"{received} * on (source_namespace, source_pod) {src}"

        def node(expr: str) -> str:
            return f"{expr} * on (destination_namespace, destination_pod) {dst}"

        edge_keys = ", ".join([*side_labels("src"), *side_labels("dst")])
        node_keys = ", ".join(side_labels("dst"))
        return TopologyQueries(
            edges=_received(edge, edge_keys, window),
            nodes=_received(node, node_keys, window),
        )


# ============================================================================================ per family


def _resource(pairs: list[tuple[str, str]], step: str, gauge_window: str) -> dict[str, str]:
    def usage(expr: str) -> str:
        return f"sum({join(expr, pairs)})"

    def reserved(metric: str, resource: str) -> str:
        return usage(running(average(metric, gauge_window, KSM, f'resource="{resource}"')))

    requests, limits = "kube_pod_container_resource_requests", "kube_pod_container_resource_limits"
    return {
        "cpuUsage": usage(rate("container_cpu_usage_seconds_total", step, *APP_CONTAINERS)),
        "cpuRequests": reserved(requests, "cpu"),
        "cpuLimits": reserved(limits, "cpu"),
        "memoryUsage": usage(average("container_memory_working_set_bytes", gauge_window, *APP_CONTAINERS)),
        "memoryRequests": reserved(requests, "memory"),
        "memoryLimits": reserved(limits, "memory"),
        # Network: no container filter. A pod's containers share one network namespace, which cAdvisor reports
        # once, on the sandbox: `container=""` under containerd, `container="POD"` under Docker and CRI-O;
        # application containers have no network series. Summed over interfaces (cAdvisor already leaves out
        # `lo`); the node's own interfaces have no pod and fall out of the join.
        "networkReceiveBytes": usage(rate("container_network_receive_bytes_total", step)),
        "networkTransmitBytes": usage(rate("container_network_transmit_bytes_total", step)),
        # Disk: per application container (the pod cgroup would count it twice), summed over devices.
        "diskReadBytes": usage(rate("container_fs_reads_bytes_total", step, *APP_CONTAINERS)),
        "diskWriteBytes": usage(rate("container_fs_writes_bytes_total", step, *APP_CONTAINERS)),
    }


def _http(pairs: list[tuple[str, str]], step: str) -> FamilyQueries:
    """Requests received by the scope's pods (Hubble's server side), per second; latencies in seconds.

    The mean divides the duration sum by `hubble_http_requests_total`, as upstream does: of the histogram,
    only `_bucket` and `_sum` are series OpenChoreo's setup is known to keep (adapters-notes §3.1).
    """

    def received(expr: str) -> str:
        return to_destination(expr, pairs)

    out = {
        "requestCount": f"sum({received(rate(REQUESTS, step, SERVER))})",
        "successfulRequestCount": f"sum({received(rate(REQUESTS, step, SERVER, SUCCESSFUL))})",
        "unsuccessfulRequestCount": f"sum({received(rate(REQUESTS, step, SERVER, UNSUCCESSFUL))})",
        "meanLatency": (
            f"sum({received(rate(DURATION_SUM, step, SERVER))}) / sum({received(rate(REQUESTS, step, SERVER))})"
        ),
    }
    buckets = f"sum by (le) ({received(rate(DURATION_BUCKET, step, SERVER))})"
    return FamilyQueries(out, HistogramQuantiles(buckets, dict(QUANTILES)))


def _received(attribute: Callable[[str], str], keys: str, window: str) -> dict[str, str]:
    """The topology metrics (schemes.EDGE_METRICS) of server-side requests over `window`, `attribute`d to
    edges or nodes and summed by their `keys`: counts are increases over the window, not rates."""

    def total(expr: str, by: str = keys) -> str:
        return f"sum by ({by}) ({attribute(expr)})"

    out = {
        "requestCount": total(increase(REQUESTS, window, SERVER)),
        "unsuccessfulRequestCount": total(increase(REQUESTS, window, SERVER, UNSUCCESSFUL)),
        "meanLatency": f"{total(increase(DURATION_SUM, window, SERVER))} / {total(increase(REQUESTS, window, SERVER))}",
    }
    for key, q in QUANTILES:
        out[key] = f"histogram_quantile({q}, {total(increase(DURATION_BUCKET, window, SERVER), f'{keys}, le')})"
    return out
