"""Platform logs on OpenSearch, without a server: the placement log documents carry (what Fluent Bit's kubernetes
filter and a `record_modifier` write), how documents read back into an Identity, and the query and filter-values
bodies (term values only, every user string escaped)."""

from __future__ import annotations

import re

import pytest

from adapters.opensearch import documents, facets, fields, layout, platform
from domain.model import Identity, LogRecord, TimeRange
from domain.platform import FilterValuesQuery, PlatformLogsQuery

WINDOW = TimeRange(1_790_000_000 * 10**9, 1_790_000_060 * 10**9)
WHERE = Identity(
    pod="coredns-0",
    pod_namespace="kube-system",
    container="coredns",
    cluster="east",
    node="node-1",
    pod_ip="10.1.2.3",
    image="registry.example/coredns:1.0",
    labels=(("app.kubernetes.io/name", "dns"), ("k8s-app", "kube-dns")),
)


# ------------------------------------------------------------------------------------------------- documents


def test_a_placed_line_carries_what_fluent_bit_would_write() -> None:
    document = documents.log_document(LogRecord(WINDOW.start_ns, "hello", WHERE, "INFO"))
    assert document[fields.CLUSTER_NAME] == "east"
    kubernetes = document[fields.KUBERNETES]
    assert (kubernetes[fields.K8S_HOST], kubernetes[fields.K8S_POD_IP], kubernetes[fields.K8S_CONTAINER_IMAGE]) == (
        "node-1",
        "10.1.2.3",
        "registry.example/coredns:1.0",
    )
    assert kubernetes[fields.K8S_LABELS] == {"app_kubernetes_io/name": "dns", "k8s-app": "kube-dns"}
    assert fields.LOG_LABEL_KEYS not in document  # the labels say themselves


def test_a_line_reads_back_with_its_placement() -> None:
    record = LogRecord(WINDOW.start_ns, "hello", WHERE, "INFO")
    assert documents.log_from_document(documents.log_document(record), record.ts_ns).identity == WHERE


@pytest.mark.parametrize(
    "who",
    [
        # A component's identity without pod labels of its own: its OpenChoreo labels are written (queries filter
        # on them) and do not come back as pod labels.
        Identity("acme", "shop", "p-uid", "cart", "c-uid", "prod", "e-uid", "cart-0", "dp-acme", "main"),
        # A key whose dots `dedot` cannot give back (no `/`): kept exactly through `labelKeys`.
        Identity(pod="p", labels=(("a.b", "1"), ("x_y", "2"))),
        Identity(cluster="west", labels=(("openchoreo.dev/namespace", "acme"),), namespace="acme"),
        Identity(),
    ],
)
def test_identities_survive_the_document(who: Identity) -> None:
    record = LogRecord(WINDOW.start_ns, "line", who, "INFO")
    assert documents.log_from_document(documents.log_document(record), record.ts_ns).identity == who


def test_a_fluent_bit_record_reads_with_its_labels_redotted_where_known() -> None:
    """No `cluster_name`, no `labelKeys`, no `level`: label prefixes get their dots back (a DNS prefix has no
    `_`), a name without a prefix stays as stored."""
    source = {
        "@timestamp": "2026-09-21T10:00:01.123Z",
        "log": "level=error msg=boom",
        "kubernetes": {
            "pod_name": "nginx-0",
            "namespace_name": "ingress",
            "container_name": "controller",
            "host": "worker-1",
            "pod_ip": "10.0.0.9",
            "container_image": "nginx:1.27",
            "labels": {"app_kubernetes_io/name": "nginx", "my_label": "x", "openchoreo_dev/namespace": "acme"},
        },
    }
    record = documents.log_from_document(source, 1)
    who = record.identity
    assert (who.cluster, who.node, who.pod_ip, who.image) == ("", "worker-1", "10.0.0.9", "nginx:1.27")
    assert who.labels == (("app.kubernetes.io/name", "nginx"), ("my_label", "x"), ("openchoreo.dev/namespace", "acme"))
    assert who.namespace == "acme"
    assert record.level == "ERROR"  # derived from the line, as before


def test_a_stored_empty_level_stays_empty() -> None:
    record = LogRecord(WINDOW.start_ns, "no level said", Identity(pod="p"), "")
    assert documents.log_from_document(documents.log_document(record), record.ts_ns).level == ""


def test_the_cluster_joins_the_id_only_when_known() -> None:
    plain = LogRecord(WINDOW.start_ns, "x", Identity(pod="p"), "INFO")
    east = LogRecord(WINDOW.start_ns, "x", Identity(pod="p", cluster="east"), "INFO")
    west = LogRecord(WINDOW.start_ns, "x", Identity(pod="p", cluster="west"), "INFO")
    assert documents.log_id(plain) == documents.doc_id(plain.ts_ns, "", "", "p", "", "", "x")  # as before
    assert len({documents.log_id(plain), documents.log_id(east), documents.log_id(west)}) == 3


def test_the_logs_template_maps_placement_and_any_label_as_keywords() -> None:
    mappings = layout.templates(layout.IndexLayout())["container-logs-"]["template"]["mappings"]
    kubernetes = mappings["properties"]["kubernetes"]["properties"]
    for key in (fields.K8S_HOST, fields.K8S_POD_IP, fields.K8S_CONTAINER_IMAGE):
        assert kubernetes[key] == {"type": "keyword"}
    assert mappings["properties"][fields.CLUSTER_NAME] == {"type": "keyword"}
    assert kubernetes["labels"]["dynamic"] == "true"
    assert mappings["dynamic"] == "false"  # only the labels object is dynamic
    (rule,) = mappings["dynamic_templates"]
    assert list(rule.values()) == [{"path_match": "kubernetes.labels.*", "mapping": {"type": "keyword"}}]


# ------------------------------------------------------------------------------------------------- queries


def test_coordinates_are_terms_and_labels_are_terms_on_their_dedotted_path() -> None:
    query = PlatformLogsQuery(
        WINDOW,
        clusters=("east",),
        namespaces=("kube-system", "ingress"),
        pods=("coredns-0",),
        containers=("coredns",),
        labels=(("app.kubernetes.io/name", 'dns" OR *'),),
    )
    filters = platform.platform_filters(query)
    assert {"terms": {"cluster_name": ["east"]}} in filters
    assert {"terms": {"kubernetes.namespace_name": ["kube-system", "ingress"]}} in filters
    assert {"terms": {"kubernetes.pod_name": ["coredns-0"]}} in filters
    assert {"terms": {"kubernetes.container_name": ["coredns"]}} in filters
    assert {"term": {"kubernetes.labels.app_kubernetes_io/name": 'dns" OR *'}} in filters  # a value, as it is
    assert len(filters) == 6  # with the time range


def test_phrase_and_levels_as_component_logs_have_them() -> None:
    filters = platform.platform_filters(PlatformLogsQuery(WINDOW, phrase="a*b?", levels=("ERROR",)))
    assert {"wildcard": {"log": {"value": "*a\\*b\\?*"}}} in filters
    assert any("should" in clause.get("bool", {}) for clause in filters)  # the level clause
    assert platform.platform_filters(PlatformLogsQuery(WINDOW)) == [filters[0]]  # time alone


def test_filter_values_body_counts_the_filters_field() -> None:
    query = FilterValuesQuery(PlatformLogsQuery(WINDOW, clusters=("east",)), "labels.app.kubernetes.io/name", "DN")
    body = platform.filter_values_body(query)
    assert body["size"] == 0
    terms = body["aggs"]["values"]["terms"]
    assert terms["field"] == "kubernetes.labels.app_kubernetes_io/name"
    assert terms["include"] == ".*[Dd][Nn].*"
    assert terms["order"] == [{"_count": "desc"}, {"_key": "asc"}]
    assert platform.filter_field("level") == fields.LOG_LEVEL
    with pytest.raises(ValueError):
        platform.filter_field("nodeName")


# ------------------------------------------------------------------------------------------------- facets


@pytest.mark.parametrize("search", ["core", "CoRe", "a.b*", "x[y]\\", 'q"#@&<>~', "10.0.0.1", "é"])
def test_the_include_regexp_is_a_case_insensitive_literal_substring(search: str) -> None:
    """Lucene's regular expressions and Python's agree on these constructs: escaped operators are literal."""
    pattern = re.compile(facets.case_insensitive_regexp(search).replace("\\#", "#").replace("\\@", "@"), re.DOTALL)
    pattern_text = facets.case_insensitive_regexp(search)
    assert not re.search(r"\\[A-Za-z0-9]", pattern_text)  # `\d`, `\w`... would be classes to Lucene
    for value in (search, search.upper(), search.lower(), f"pre-{search}-post"):
        assert pattern.fullmatch(value), value
    assert not pattern.fullmatch("zzz")


def test_values_read_most_frequent_first_and_total_exact_below_the_page() -> None:
    def answer(keys: dict[str, int], distinct: int) -> dict:
        buckets = [{"key": key, "doc_count": count} for key, count in keys.items()]
        return {"values": {"buckets": buckets}, "total": {"distinct": {"value": distinct}}}

    values, total = facets.read_values(answer({"b": 2, "a": 2, "c": 5}, 7), 10)
    assert [(each.value, each.count) for each in values] == [("c", 5), ("a", 2), ("b", 2)]
    assert total == 3  # fewer than asked for: they are all of them
    values, total = facets.read_values(answer({"c": 5, "a": 2}, 7), 2)
    assert total == 7
    assert facets.read_values(None, 5) == ([], 0)
