"""Issue 14, goal 2: a page of log lines is shaped per stream, not per line, with the same answer as before.

The embedded backend builds one Identity per stream of a page, and the API builds each stream's metadata once
per page (observer/wire.py component_log_entries); every entry must still be exactly what component_log_entry
makes of its line, keys in the same order.
"""

from __future__ import annotations

from dataclasses import replace

import orjson

from adapters.embedded import logs as embedded_logs
from adapters.embedded.backend import EmbeddedBackend
from devservers.sample import BASE_NS, COMPONENTS, ENVIRONMENTS, NS, PROJECT_UID, identity
from domain.model import ComponentScope, Identity, LogRecord, LogsQuery, TimeRange
from observer.wire import component_log_entries, component_log_entry

SECOND = 10**9
TRACE, SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


def records() -> list[LogRecord]:
    cart, other_pod = identity("cart"), identity("cart", pod="cart-prod-1")
    no_uids = Identity(namespace=NS, project="shop", component="cart", environment="prod", pod="p", container="c")
    return [
        LogRecord(ts_ns=BASE_NS, body="plain", level="INFO", identity=cart),
        LogRecord(ts_ns=BASE_NS + 1, body="traced", level="ERROR", identity=cart, trace_id=TRACE, span_id=SPAN),
        LogRecord(ts_ns=BASE_NS + SECOND, body="no level", identity=other_pod),
        LogRecord(ts_ns=BASE_NS + 2 * SECOND, body="trace only", level="WARN", identity=cart, trace_id=TRACE),
        LogRecord(ts_ns=BASE_NS + 3 * SECOND, body="span only", level="DEBUG", identity=other_pod, span_id=SPAN),
        LogRecord(ts_ns=BASE_NS + 4 * SECOND, body="equal, not the same object", identity=replace(cart)),
        LogRecord(ts_ns=BASE_NS + 5 * SECOND, body="names but no uids", level="INFO", identity=no_uids),
    ]


def test_a_page_of_entries_is_each_line_entry_byte_for_byte() -> None:
    page = records()

    entries = component_log_entries(page)

    assert orjson.dumps(entries) == orjson.dumps([component_log_entry(record) for record in page])
    assert [list(entry) for entry in entries][:2] == [
        ["timestamp", "log", "level", "metadata"],
        ["timestamp", "log", "level", "metadata", "traceId", "spanId"],
    ]
    assert "componentUid" not in entries[-1]["metadata"] and entries[-1]["metadata"]["componentName"] == "cart"


def test_lines_of_one_stream_share_one_identity_in_a_page(backend: EmbeddedBackend) -> None:
    cart, other_pod = identity("cart"), identity("cart", pod="cart-prod-1")
    written = [
        LogRecord(ts_ns=BASE_NS + i * SECOND, body=f"line {i}", level="INFO", identity=(cart, other_pod)[i % 2])
        for i in range(6)
    ]
    with backend.store.transaction() as conn:
        backend.apply(conn, "batch", written, (), (), ())
    scope = ComponentScope(NS, PROJECT_UID, COMPONENTS["cart"], ENVIRONMENTS["prod"])
    query = LogsQuery(scope, TimeRange(BASE_NS - SECOND, BASE_NS + 60 * SECOND), 100, "asc")

    page = embedded_logs.query_logs(backend.store.reader(), query)

    assert [(record.body, record.identity) for record in page.items] == [(r.body, r.identity) for r in written]
    assert len({id(record.identity) for record in page.items}) == 2
