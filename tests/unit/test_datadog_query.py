"""The Datadog backend's pure parts: escaping user input into Datadog's search syntax, the scope and level
mapping, request bodies, and what the intake sends (records <-> Datadog shapes, chunking, series)."""

from __future__ import annotations

import gzip

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from adapters.datadog import fields, intake, records, spans
from adapters.datadog import query as dq
from adapters.datadog.plugin import Settings
from domain.model import (
    ComponentScope,
    EventRecord,
    Identity,
    LogRecord,
    MetricKind,
    MetricPoint,
    SpanRecord,
    TimeRange,
    WorkflowScope,
)


def unquote(text: str) -> str:
    """The inverse of `quoted`, as Datadog reads a quoted value (a backslash escapes the next character)."""
    assert text[0] == text[-1] == '"'
    out, i, inner = [], 0, text[1:-1]
    while i < len(inner):
        if inner[i] == "\\":
            out.append(inner[i + 1])
            i += 2
        else:
            assert inner[i] != '"', "an unescaped quote ends the value early"
            out.append(inner[i])
            i += 1
    return "".join(out)


@given(st.text())
def test_quoted_values_read_back_exactly(text: str) -> None:
    assert unquote(dq.quoted(text)) == text


@given(st.text())
def test_wildcard_literal_leaves_no_bare_special_character(text: str) -> None:
    escaped = dq.wildcard_literal(text)
    i = 0
    while i < len(escaped):
        if escaped[i] == "\\":
            i += 2
            continue
        assert escaped[i] not in '+-=&|><!(){}[]^"~*?:\\/ ' and not escaped[i].isspace()
        i += 1


def test_special_characters_are_escaped() -> None:
    assert dq.quoted('a "b" \\c') == '"a \\"b\\" \\\\c"'
    assert dq.wildcard_literal("a b*c:(d)") == "a\\ b\\*c\\:\\(d\\)"
    assert dq.term("openchoreo.namespace", 'x" OR *') == 'openchoreo.namespace:"x\\" OR *"'


def test_component_scope_query() -> None:
    scope = ComponentScope("payments", project_uid="p-1", component_uid="c-1")
    assert dq.logs_query(scope) == (
        'openchoreo.namespace:"payments" openchoreo.project_uid:"p-1" openchoreo.component_uid:"c-1" '
        'openchoreo.workload:"component" -source:"kubernetes"'
    )


def test_workflow_scope_query() -> None:
    scope = WorkflowScope("payments", workflow_run="build-7", task="step (1)")
    assert dq.logs_query(scope) == (
        'openchoreo.namespace:"payments" openchoreo.workload:"workflow" openchoreo.workflow_run:"build-7" '
        '@openchoreo.task:*step\\ \\(1\\)* -source:"kubernetes" -kube_container_name:"init" '
        '-kube_container_name:"wait"'
    )


def test_levels_and_phrase() -> None:
    query = dq.logs_query(ComponentScope("ns"), levels=("ERROR", "WARN"), phrase='say "hi"')
    assert 'status:("alert" OR "critical" OR "emerg" OR "emergency" OR "error" OR "warn" OR "warning")' in query
    assert query.endswith('"say \\"hi\\""')


def test_every_level_reads_back_as_a_level_it_was_filtered_by() -> None:
    for level, status in fields.LEVEL_STATUS.items():
        assert fields.STATUS_LEVEL[status] in {"ERROR", "FATAL"} | {level}


def test_events_query_selects_kubernetes_source() -> None:
    assert dq.events_query(ComponentScope("ns")).endswith('source:"kubernetes"')


def test_logs_body_pushes_everything_down() -> None:
    window = TimeRange(1_700_000_000_123_456_789, 1_700_000_060_000_000_001)
    body = dq.logs_search_body("q", window, "asc", 50, ("main",), cursor="abc")
    assert body == {
        "filter": {"query": "q", "from": "1700000000123", "to": "1700000060001", "indexes": ["main"]},
        "sort": "timestamp",
        "page": {"limit": 50, "cursor": "abc"},
    }
    assert dq.logs_search_body("q", window, "desc", 5, ("*",))["sort"] == "-timestamp"


def test_spans_body_is_json_api_wrapped() -> None:
    body = dq.spans_search_body('@openchoreo.namespace:"ns"', TimeRange(0, 10**6), "desc", 10)
    assert body["data"]["type"] == "search_request"
    assert body["data"]["attributes"]["page"] == {"limit": 10}
    assert dq.span_query("ab" * 16, "00000000000000ff") == f'trace_id:"{"ab" * 16}" span_id:"255"'


IDENTITY = Identity(
    namespace="payments",
    project="shop",
    project_uid="p-1",
    component="api",
    component_uid="c-1",
    environment="dev",
    environment_uid="e-1",
    pod="api-0",
    pod_namespace="dp-shop",
    container="main",
)


def search_result(entry: dict[str, object]) -> dict[str, object]:
    """An intake entry as Logs Search returns it (reserved attributes lifted, the rest under `attributes`)."""
    attributes = dict(entry)
    tags = str(attributes.pop(fields.TAGS)).split(",") + [f"source:{attributes.pop(fields.SOURCE)}"]
    message = attributes.pop(fields.MESSAGE)
    status = attributes.pop(fields.STATUS, "info")
    return {"attributes": {"message": message, "status": status, "tags": tags, "attributes": attributes}}


def test_log_round_trip() -> None:
    record = LogRecord(
        1_700_000_000_123_456_789,
        "boom",
        IDENTITY,
        "FATAL",
        "0af7651916cd43dd8448eb211c80319c",
        "b7ad6b7169203331",
        "stderr",
    )
    entry = records.log_entry(record)
    assert entry[fields.STATUS] == "critical"
    assert entry[fields.DD_TRACE_ID] == str(int("8448eb211c80319c", 16))
    assert "openchoreo.component_uid:c-1" in str(entry[fields.TAGS]).split(",")
    assert records.log_from_event(search_result(entry)) == record


def test_event_round_trip() -> None:
    record = EventRecord(
        1_700_000_000_000_000_001, "Back-off", IDENTITY, "Warning", "BackOff", "Pod", "api-0", "dp-shop"
    )
    entry = records.event_entry(record)
    assert entry[fields.SOURCE] == fields.EVENTS_SOURCE
    assert records.k8s_event_from_event(search_result(entry)) == record


def test_log_from_another_agent_takes_level_from_status() -> None:
    log = records.log_from_event(
        {"attributes": {"timestamp": "2026-01-01T00:00:00.001Z", "message": "x", "status": "warn", "tags": []}}
    )
    assert (log.level, log.ts_ns) == ("WARN", 1_767_225_600_001_000_000)


def test_chunks_respect_entry_and_size_limits() -> None:
    assert [len(c) for c in intake.chunks([b"{}"] * 2500)] == [1000, 1000, 500]
    big = b"x" * (2 * 1024 * 1024)
    assert [len(c) for c in intake.chunks([big, big, big])] == [2, 1]


def test_an_oversized_entry_is_cut_to_the_limit() -> None:
    raw = intake._entry_bytes({fields.MESSAGE: "y" * (3 * 1024 * 1024), "other": 1})
    assert len(raw) <= intake.MAX_ENTRY_BYTES
    assert orjson.loads(raw)["other"] == 1


def test_series_of_gauges_counts_and_histograms() -> None:
    gauge = MetricPoint("cpu", MetricKind.GAUGE, 5 * 10**9, IDENTITY, {"state": "used"}, value=0.5)
    delta = MetricPoint("req", MetricKind.SUM, 20 * 10**9, IDENTITY, cumulative=False, start_ns=10 * 10**9, value=3)
    hist = MetricPoint(
        "lat", MetricKind.HISTOGRAM, 5 * 10**9, IDENTITY, count=3, sum=1.5, bounds=(0.1, 1.0), bucket_counts=(1, 1, 1)
    )
    series = intake.series_of([gauge, delta, hist])
    assert series[0]["type"] == 3 and series[0]["points"] == [{"timestamp": 5, "value": 0.5}]
    assert "state:used" in series[0]["tags"] and "openchoreo.namespace:payments" in series[0]["tags"]
    assert (series[1]["type"], series[1]["interval"]) == (1, 10)
    assert [s["metric"] for s in series[2:]] == ["lat.count", "lat.sum", "lat.bucket", "lat.bucket", "lat.bucket"]
    assert series[-1]["tags"][-2:] == ["lower_bound:1", "upper_bound:inf"]


def test_spans_are_encoded_as_otlp_and_read_back() -> None:
    span = SpanRecord(
        "0af7651916cd43dd8448eb211c80319c",
        "b7ad6b7169203331",
        "",
        "GET /orders",
        "Server",
        1_700_000_000_000_000_123,
        1_700_000_000_500_000_456,
        IDENTITY,
        "error",
        attributes={"http.method": "GET"},
        resource={"service.name": "api"},
    )
    request = ExportTraceServiceRequest.FromString(intake.otlp_traces([span]))
    resource = {kv.key: kv.value.string_value for kv in request.resource_spans[0].resource.attributes}
    assert resource["openchoreo.namespace"] == "payments"
    otlp = request.resource_spans[0].scope_spans[0].spans[0]
    assert (otlp.kind, otlp.status.code) == (2, 2)
    # As Datadog presents it: decimal span ids, attributes merged, its own keys added.
    merged: dict[str, object] = {**resource, **{kv.key: kv.value.string_value for kv in otlp.attributes}}
    merged.update({"span.kind": "server", "status.code": 2, "operation_name": "GET /orders"})
    result = {
        "attributes": {
            "trace_id": span.trace_id,
            "span_id": str(int(span.span_id, 16)),
            "parent_id": "0",
            "resource_name": span.name,
            "attributes": merged,
        }
    }
    back = spans.span_from_result(result)
    assert (back.span_id, back.parent_span_id, back.kind, back.status_code) == (span.span_id, "", "Server", "error")
    assert (back.start_ns, back.end_ns, back.attributes) == (span.start_ns, span.end_ns, {"http.method": "GET"})
    assert back.identity.component_uid == "c-1" and back.resource["service.name"] == "api"


def test_summary_uses_root_span() -> None:
    def span(span_id: str, parent: str, start: int, status: str = "unset") -> SpanRecord:
        return SpanRecord("t", span_id, parent, f"n{span_id}", "Server", start, start + 10, IDENTITY, status)

    summary = spans.summarise("t", [span("2", "1", 5, "error"), span("1", "", 7), span("3", "1", 9)])
    assert (summary.root_span_id, summary.span_count, summary.start_ns, summary.end_ns) == ("1", 3, 5, 19)
    assert summary.has_errors


@pytest.mark.parametrize(
    ("environ", "api", "logs"),
    [
        ({"DD_API_KEY": "s3cr3t-key"}, "https://api.datadoghq.com", "https://http-intake.logs.datadoghq.com"),
        ({"DATADOG_SITE": "datadoghq.eu"}, "https://api.datadoghq.eu", "https://http-intake.logs.datadoghq.eu"),
        ({"DATADOG_API_URL": "http://127.0.0.1:9/"}, "http://127.0.0.1:9", "http://127.0.0.1:9"),
    ],
)
def test_settings_hosts(monkeypatch: pytest.MonkeyPatch, environ: dict[str, str], api: str, logs: str) -> None:
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert (settings.url("api"), settings.url("http-intake.logs")) == (api, logs)
    assert "s3cr3t" not in repr(settings)


def test_gzip_body_is_what_the_intake_reads() -> None:
    assert orjson.loads(gzip.decompress(gzip.compress(intake._json_array([b'{"a":1}'])))) == [{"a": 1}]


def test_cumulative_sums_and_histograms_become_deltas_once_delivered() -> None:
    from adapters.datadog.deltas import DeltaConverter

    def total(ts: int, value: float, start: int = 1) -> MetricPoint:
        return MetricPoint("req", MetricKind.SUM, ts * 10**9, IDENTITY, start_ns=start * 10**9, value=value)

    def hist(ts: int, counts: tuple[float, ...]) -> MetricPoint:
        return MetricPoint(
            "lat",
            MetricKind.HISTOGRAM,
            ts * 10**9,
            IDENTITY,
            start_ns=10**9,
            count=sum(counts),
            sum=sum(counts),
            bounds=(1.0,),
            bucket_counts=counts,
        )

    converter = DeltaConverter()
    first, pending = converter.convert([total(10, 5), hist(10, (1, 1))])
    assert [p.value for p in first if p.kind == MetricKind.SUM] == [5]
    again, _ = converter.convert([total(10, 5)])  # not committed: a retry converts the same way
    assert [p.value for p in again] == [5]
    converter.commit(pending)
    later, pending = converter.convert([total(10, 5), total(20, 8), hist(20, (3, 1))])
    assert [(p.value, p.cumulative, p.start_ns) for p in later if p.kind == MetricKind.SUM] == [(3, False, 10 * 10**9)]
    assert [p.bucket_counts for p in later if p.kind == MetricKind.HISTOGRAM] == [(2, 0)]
    converter.commit(pending)
    reset, _ = converter.convert([total(30, 2), total(40, 9, start=35)])
    assert [p.value for p in reset] == [2, 9]  # a decrease, then a new start: each counts in full
    assert intake.series_of(later)[0]["type"] == 1
