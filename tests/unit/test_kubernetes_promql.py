"""The PromQL of the `kubernetes` scheme, read as text: user values stay string literals, windows follow the
step (or the topology window), and every query returns one aggregated series.

What the text means to a real Prometheus is tested in tests/integration/test_prometheus_kubernetes_scheme.py,
and that its parser accepts every query here, hostile scope values included, in
tests/integration/test_kubernetes_promql_parses.py.
"""

from __future__ import annotations

import re

import pytest

from adapters.prometheus import promql
from adapters.prometheus.kubernetes import KubernetesScheme
from adapters.prometheus.schemes import EDGE_METRICS, SIDE_LABELS
from domain import semconv
from domain.model import ComponentScope, TimeRange, TopologyQuery

S = 1_000_000_000
SCHEME = KubernetesScheme()
BENIGN = ComponentScope("acme", "p-shop", "c-cart", "e-dev")
HOSTILE_VALUES = (
    'x"} or vector(1) #',
    "back\\slash\\",
    'a\\"b',
    "new\nline\r",
    "}{)(][,=~!",
    '\\"} or on() vector(1) or kube_pod_labels{job="',
)
RESOURCE_KEYS = [series.key for series in semconv.RESOURCE_SERIES]


def hostile_scopes() -> list[ComponentScope]:
    return [ComponentScope(f"ns{v}", f"p{v}", f"c{v}", f"e{v}") for v in HOSTILE_VALUES]


def topology_query(scope: ComponentScope, seconds: int = 3600) -> TopologyQuery:
    return TopologyQuery(scope=scope, range=TimeRange(1_700_000_000 * S, (1_700_000_000 + seconds) * S))


def all_queries(scope: ComponentScope, step_ns: int = 60 * S) -> dict[str, str]:
    out = {f"resource.{k}": v for k, v in SCHEME.family("resource", scope, step_ns).items()}
    out |= {f"http.{k}": v for k, v in SCHEME.family("http", scope, step_ns).items()}
    topology = SCHEME.topology(topology_query(scope))
    out |= {f"edges.{k}": v for k, v in topology.edges.items()}
    out |= {f"nodes.{k}": v for k, v in topology.nodes.items()}
    return out


# ----------------------------------------------------------------------------------------- a PromQL reader

_UNESCAPE = {"\\": "\\", '"': '"', "n": "\n", "r": "\r", "t": "\t"}


def split_strings(query: str) -> tuple[str, list[str]]:
    """The query with every double-quoted literal emptied (its structure), and the literals' decoded values.

    A value that broke out of its literal would change the structure; one that stays inside decodes back to
    itself."""
    skeleton: list[str] = []
    literals: list[str] = []
    i = 0
    while i < len(query):
        ch = query[i]
        if ch != '"':
            skeleton.append(ch)
            i += 1
            continue
        i += 1
        value: list[str] = []
        while query[i] != '"':
            if query[i] == "\\":
                value.append(_UNESCAPE[query[i + 1]])
                i += 2
            else:
                assert query[i] not in "\n\r", "a raw line break inside a PromQL string"
                value.append(query[i])
                i += 1
        i += 1
        skeleton.append('""')
        literals.append("".join(value))
    return "".join(skeleton), literals


def closing(text: str, open_at: int) -> int:
    """Index of the parenthesis closing the one at `open_at` (strings already emptied)."""
    depth = 0
    for i in range(open_at, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return i
    raise AssertionError(f"unbalanced parentheses in {text!r}")


def top_level_terms(query: str) -> list[str]:
    """The operands of the top-level `/` (a query is one term unless it is a ratio)."""
    skeleton, _ = split_strings(query)
    terms, depth, start = [], 0, 0
    for i, ch in enumerate(skeleton):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "/" and depth == 0:
            terms.append(skeleton[start:i].strip())
            start = i + 1
    terms.append(skeleton[start:].strip())
    return terms


def is_one_aggregate(term: str) -> bool:
    """`sum(...)`, `sum by (...) (...)` or `histogram_quantile(q, sum by (...) (...))`, closing at the end."""
    m = re.match(r"(sum(?: by \([^()]*\))? ?)\(", term)
    if m:
        return closing(term, m.end() - 1) == len(term) - 1
    m = re.match(r"histogram_quantile\(0\.\d+, ", term)
    if m and closing(term, len("histogram_quantile")) == len(term) - 1:
        return is_one_aggregate(term[m.end() : -1])
    return False


def windows(query: str) -> list[tuple[str, str]]:
    """(function, range) of every range selector, e.g. ("rate", "60s")."""
    skeleton, _ = split_strings(query)
    return re.findall(r"(\w+)\(\w+(?:\{[^{}]*\})?\[([^\]]+)\]\)", skeleton)


# ----------------------------------------------------------------------------------------- escaping


@pytest.mark.parametrize("scope", hostile_scopes(), ids=[repr(v) for v in HOSTILE_VALUES])
def test_a_hostile_scope_value_changes_no_query_structure(scope: ComponentScope) -> None:
    benign, hostile = all_queries(BENIGN), all_queries(scope)
    assert benign.keys() == hostile.keys()
    for key, query in hostile.items():
        skeleton, literals = split_strings(query)
        assert skeleton == split_strings(benign[key])[0], key
        # Each scope value the query filters on is one literal, decoded back to exactly itself.
        values = (scope.namespace, scope.project_uid, scope.component_uid, scope.environment_uid)
        used = [v for v in values if v in literals]
        assert scope.namespace in used and scope.environment_uid in used, key


def test_the_filter_holds_the_scope_uids_as_escaped_matchers() -> None:
    scope = ComponentScope('n"s', "p\\1", "c\n2", "")
    query = SCHEME.family("resource", scope, 60 * S)["cpuUsage"]
    assert (
        f'kube_pod_labels{{label_openchoreo_dev_namespace="{promql.escape(scope.namespace)}",'
        f'label_openchoreo_dev_project_uid="{promql.escape(scope.project_uid)}",'
        f'label_openchoreo_dev_component_uid="{promql.escape(scope.component_uid)}",job="kube-state-metrics"}}'
    ) in query
    assert "environment_uid" not in query  # a UID not set is no filter at all, not an empty match


def test_topology_filters_the_receiving_end_on_namespace_and_environment_only() -> None:
    queries = SCHEME.topology(topology_query(BENIGN))
    for query in [*queries.edges.values(), *queries.nodes.values()]:
        _, literals = split_strings(query)
        assert "acme" in literals and "e-dev" in literals
        assert "p-shop" not in literals and "c-cart" not in literals  # the backend applies those rules


def test_a_scope_without_a_namespace_is_refused() -> None:
    with pytest.raises(ValueError):
        SCHEME.family("resource", ComponentScope(""), 60 * S)
    with pytest.raises(ValueError):
        SCHEME.topology(topology_query(ComponentScope("")))


# ----------------------------------------------------------------------------------------- shape


def test_the_families_have_the_series_keys_of_the_semantic_conventions() -> None:
    assert list(SCHEME.family("resource", BENIGN, 60 * S)) == RESOURCE_KEYS
    assert list(SCHEME.family("http", BENIGN, 60 * S)) == list(semconv.HTTP_SERIES)
    topology = SCHEME.topology(topology_query(BENIGN))
    assert list(topology.edges) == list(EDGE_METRICS) and list(topology.nodes) == list(EDGE_METRICS)


@pytest.mark.parametrize("family", ["resource", "http"])
def test_every_family_query_is_one_sum(family: str) -> None:
    for key, query in SCHEME.family(family, BENIGN, 60 * S).items():  # type: ignore[arg-type]
        terms = top_level_terms(query)
        assert len(terms) == (2 if key == "meanLatency" else 1), key
        for term in terms:
            assert is_one_aggregate(term), (key, term)
            assert term.startswith(("sum(", "histogram_quantile(")), (key, term)  # no `by`: one series
        if key.startswith("latency"):
            assert "sum by (le) (" in query


def test_topology_queries_are_sums_by_the_side_labels() -> None:
    topology = SCHEME.topology(topology_query(BENIGN))
    edge_by = ", ".join([*(f"src_{n}" for n in SIDE_LABELS), *(f"dst_{n}" for n in SIDE_LABELS)])
    node_by = ", ".join(f"dst_{n}" for n in SIDE_LABELS)
    for queries, by in ((topology.edges, edge_by), (topology.nodes, node_by)):
        for key, query in queries.items():
            terms = top_level_terms(query)
            assert len(terms) == (2 if key == "meanLatency" else 1), key
            for term in terms:
                assert is_one_aggregate(term), (key, term)
                expected = f"sum by ({by}, le) (" if key.startswith("latency") else f"sum by ({by}) ("
                assert expected in term, (key, term)
    for query in topology.nodes.values():
        assert "source_pod" not in query  # a node counts everything it received, attributable or not
    for query in topology.edges.values():
        assert "on (source_namespace, source_pod)" in query


@pytest.mark.parametrize("step_s", [15, 60, 300, 3600, 90])
def test_windows_follow_the_step(step_s: int) -> None:
    gauge = promql.duration(step_s * S - 1_000_000)
    for family in ("resource", "http"):
        for key, query in SCHEME.family(family, BENIGN, step_s * S).items():  # type: ignore[arg-type]
            found = windows(query)
            assert found, key
            for function, window in found:
                assert (function, window) in {("rate", f"{step_s}s"), ("avg_over_time", gauge)}, (key, function, window)
    assert "2m]" not in str(all_queries(BENIGN, step_s * S))


def test_counters_are_rates_and_gauges_averages() -> None:
    queries = SCHEME.family("resource", BENIGN, 60 * S)
    kinds = {key: {function for function, _ in windows(q)} for key, q in queries.items()}
    assert kinds == {
        "cpuUsage": {"rate"},
        "cpuRequests": {"avg_over_time"},
        "cpuLimits": {"avg_over_time"},
        "memoryUsage": {"avg_over_time"},
        "memoryRequests": {"avg_over_time"},
        "memoryLimits": {"avg_over_time"},
        "networkReceiveBytes": {"rate"},
        "networkTransmitBytes": {"rate"},
        "diskReadBytes": {"rate"},
        "diskWriteBytes": {"rate"},
    }
    for key in ("cpuRequests", "cpuLimits", "memoryRequests", "memoryLimits"):
        assert 'kube_pod_status_phase{job="kube-state-metrics",phase="Running"} == 1' in queries[key]
    for key in ("cpuUsage", "memoryUsage", "diskReadBytes", "diskWriteBytes"):
        assert '{container!="",container!="POD"}' in queries[key]  # not the pod cgroup, not the sandbox
    for key in ("networkReceiveBytes", "networkTransmitBytes"):
        assert "container=" not in queries[key] and "container!=" not in queries[key]  # once per pod, on the sandbox


@pytest.mark.parametrize("seconds", [60, 3600, 86_400 + 1])
def test_topology_counts_increase_over_the_whole_window(seconds: int) -> None:
    topology = SCHEME.topology(topology_query(BENIGN, seconds))
    for query in [*topology.edges.values(), *topology.nodes.values()]:
        found = windows(query)
        assert found and set(found) == {("increase", f"{seconds}s")}


def test_http_counts_server_side_requests_by_status_class() -> None:
    queries = SCHEME.family("http", BENIGN, 60 * S)
    assert all('reporter="server"' in q for q in queries.values())
    assert 'status!~"[45].."' in queries["successfulRequestCount"]
    assert 'status=~"[45].."' in queries["unsuccessfulRequestCount"]
    assert "status" not in queries["requestCount"]
    edges = SCHEME.topology(topology_query(BENIGN)).edges
    assert 'status=~"[45].."' in edges["unsuccessfulRequestCount"] and "status" not in edges["requestCount"]
