"""`documents.log_actions`, the fast path from log records to bulk body lines, writes byte for byte what the
reference path (`log_id` and `log_document` through `bulk.encode_action`) writes: same index, same
deterministic `_id` (so a batch buffered before an upgrade still overwrites itself after it), same document."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.opensearch import documents
from adapters.opensearch.bulk import encode_action
from adapters.opensearch.layout import IndexLayout
from devservers.sample import BASE_NS
from domain.model import Identity, LogRecord

LAYOUT = IndexLayout("logs-x-")


def reference(logs: list[LogRecord]) -> list[bytes]:
    return [
        encode_action(LAYOUT.daily(LAYOUT.logs, r.ts_ns), documents.log_id(r), documents.log_document(r)) for r in logs
    ]


CART = Identity("acme", "shop", "p-uid", "cart", "c-uid", "prod", "e-uid", "cart-7d9f", "dp-acme-prod", "main")
BUILD = Identity(
    "acme", pod="build-x", pod_namespace="workflows-acme", container="main", workflow_run="run-1", task="step-a"
)


def test_typical_lines_match_the_reference() -> None:
    logs = [
        LogRecord(BASE_NS, "level=info msg=ok", CART, "INFO", stream="stdout"),
        LogRecord(BASE_NS + 1, 'quote " backslash \\ tab \t newline \n ü 🚀', CART, "WARN", stream="stderr"),
        LogRecord(BASE_NS + 10**9, "no level or stream stored", CART),
        LogRecord(BASE_NS + 10**9 + 500, "traced", BUILD, "ERROR", "a" * 32, "b" * 16, "stdout"),
        LogRecord(BASE_NS + 86_400 * 10**9, "next day, whole second", CART, "INFO", span_id="c" * 16),
        LogRecord(0, "the epoch", Identity()),
    ]
    assert documents.log_actions(LAYOUT, logs) == reference(logs)
    action, document = documents.log_actions(LAYOUT, logs[3:4])[0].splitlines()
    index = LAYOUT.daily(LAYOUT.logs, logs[3].ts_ns)
    assert orjson.loads(action) == {"index": {"_index": index, "_id": documents.log_id(logs[3])}}
    assert orjson.loads(document) == documents.log_document(logs[3])


texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
identities = st.builds(Identity, *[texts] * 12)
records = st.builds(
    LogRecord,
    st.integers(-(2**62), 2**62),
    texts,
    st.sampled_from([CART, BUILD]) | identities,
    st.sampled_from(["", "INFO", "ERROR"]),
    st.sampled_from(["", "0af7651916cd43dd8448eb211c80319c"]),
    st.sampled_from(["", "b7ad6b7169203331"]),
    st.sampled_from(["", "stdout", "stderr", "otlp"]),
)


labels = st.dictionaries(
    st.sampled_from(["app", "a.b", "app.kubernetes.io/name", "openchoreo.dev/namespace", "x_y"]), texts
)
placed = st.builds(
    Identity,
    namespace=st.sampled_from(["", "acme"]),
    component_uid=st.sampled_from(["", "c-uid"]),
    pod=texts,
    pod_namespace=texts,
    container=texts,
    cluster=st.sampled_from(["", "east", 'we"st']),
    node=texts,
    pod_ip=st.sampled_from(["", "10.0.0.1"]),
    image=texts,
    labels=labels.map(lambda pairs: tuple(sorted(pairs.items()))),
)
placed_records = st.builds(LogRecord, st.integers(0, 2**62), texts, placed, st.sampled_from(["", "INFO"]))


def test_placed_lines_match_the_reference() -> None:
    where = Identity(
        pod="coredns-0",
        pod_namespace="kube-system",
        container="coredns",
        cluster="east",
        node="node-1",
        pod_ip="10.1.2.3",
        image="registry.example/coredns:1.0",
        labels=(("app.kubernetes.io/name", "dns"), ("k8s-app", "kube-dns")),
    )
    logs = [LogRecord(BASE_NS, "placed", where, "INFO"), LogRecord(BASE_NS + 1, "component", CART, "WARN")]
    assert documents.log_actions(LAYOUT, logs) == reference(logs)


@settings(max_examples=200)
@given(st.lists(placed_records, max_size=10))
def test_any_placed_records_match_the_reference(logs: list[LogRecord]) -> None:
    assert documents.log_actions(LAYOUT, logs) == reference(logs)


@settings(max_examples=300)
@given(st.lists(records, max_size=20))
def test_any_records_match_the_reference(logs: list[LogRecord]) -> None:
    assert documents.log_actions(LAYOUT, logs) == reference(logs)


def _field_names() -> set[str]:
    """Every document key and path `adapters/opensearch/fields.py` names (strings, and those in its tuples and
    dicts)."""
    from adapters.opensearch import fields

    names: set[str] = set()
    for name, value in vars(fields).items():
        if name.startswith("__"):
            continue
        values = value.values() if isinstance(value, dict) else value if isinstance(value, tuple) else (value,)
        names.update(item for item in values if isinstance(item, str) and item)
    return names


def _string_literals(module: object) -> set[str]:
    """The string constants of a module's code, docstrings left out."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(module))  # type: ignore[arg-type]
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    }


def test_no_field_path_is_spelled_outside_the_fields_module():
    """The modules that build documents, mappings and queries name the documents' fields only through fields.py."""
    from adapters.opensearch import audit, facets, layout, monitors, platform, queries

    names = _field_names()
    #: Words that are also keys of other JSON than documents: an ISM policy state's `name`; a monitor's `name`,
    #: its trigger's `severity`, the `_id` OpenSearch answers a create with, and the rule source type `log`.
    #: And the platform-logs filter `level`, the contract's name of a filter (the field is fields.LOG_LEVEL).
    not_fields = {layout: {"name"}, monitors: {"name", "severity", "_id", "log"}, platform: {"level"}}
    for module in (queries, documents, layout, monitors, platform, audit, facets):
        spelled = _string_literals(module) & names - not_fields.get(module, set())
        assert not spelled, (module.__name__, sorted(spelled))
