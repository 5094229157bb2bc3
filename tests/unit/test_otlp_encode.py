"""Domain records -> OTLP requests (collectors/otlp/encode.py) -> bytes -> our receiver's mapping gives the same
records back, field for field: what forwarding between two collectors relies on."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from collectors.otlp.decode import decode_request
from collectors.otlp.encode import OtlpRequest, encode_batch
from collectors.otlp.mapping import Mapped, map_logs, map_metrics, map_traces
from domain.identity import identity_attributes, identity_from_attributes
from domain.log_batch import LogBatch
from domain.model import EventRecord, Identity, LogRecord, MetricKind, MetricPoint, SpanKind, SpanRecord

MAPPERS = {"logs": map_logs, "traces": map_traces, "metrics": map_metrics}

text = st.text(max_size=12)
names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-0123456789", min_size=1, max_size=10)
maybe = st.one_of(st.just(""), names)
hex32 = st.binary(min_size=16, max_size=16).filter(any).map(bytes.hex)
hex16 = st.binary(min_size=8, max_size=8).filter(any).map(bytes.hex)
times = st.integers(min_value=1, max_value=2**63 - 1)


@st.composite
def identities(draw) -> Identity:
    """Identities as `identity_from_attributes` makes them (the only ones records ever carry)."""
    attributes = {
        key: draw(maybe)
        for key in (
            "openchoreo.dev/namespace",
            "openchoreo.dev/project",
            "openchoreo.dev/project-uid",
            "openchoreo.dev/component",
            "openchoreo.dev/component-uid",
            "openchoreo.dev/environment",
            "openchoreo.dev/environment-uid",
            "k8s.pod.name",
            "k8s.container.name",
            "openchoreo.dev/workflow-run",
            "workflows.argoproj.io/node-name",
        )
    }
    attributes["k8s.namespace.name"] = draw(st.one_of(maybe, names.map(lambda n: "workflows-" + n)))
    return identity_from_attributes(attributes)


levels = st.sampled_from(["DEBUG", "INFO", "WARN", "ERROR", "FATAL", "SEVERE"])
logs = st.builds(
    LogRecord,
    ts_ns=times,
    body=text,
    identity=identities(),
    level=levels,
    trace_id=st.one_of(st.just(""), hex32),
    span_id=st.one_of(st.just(""), hex16),
    stream=st.sampled_from(["stdout", "stderr", "otlp"]),
)
events = st.builds(
    EventRecord,
    ts_ns=times,
    message=text,
    identity=identities(),
    type=st.sampled_from(["", "Normal", "Warning"]),
    reason=maybe,
    object_kind=maybe,
    object_name=maybe,
    object_namespace=maybe,
)


values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.floats(allow_nan=False),
        text,
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(names, inner, max_size=3)),
    max_leaves=6,
)


@st.composite
def spans(draw) -> SpanRecord:
    identity = draw(identities())
    resource = {**identity_attributes(identity), **draw(st.dictionaries(st.just("service.version"), text))}
    return SpanRecord(
        trace_id=draw(hex32),
        span_id=draw(hex16),
        parent_span_id=draw(st.one_of(st.just(""), hex16)),
        name=draw(text),
        kind=draw(st.sampled_from([kind.value for kind in SpanKind])),
        start_ns=draw(times),
        end_ns=draw(times),
        identity=identity,
        status_code=draw(st.sampled_from(["unset", "ok", "error"])),
        status_message=draw(text),
        attributes=draw(st.dictionaries(names, values, max_size=4)),
        resource=resource,
    )


@st.composite
def metric_points(draw) -> MetricPoint:
    kind = draw(st.sampled_from(list(MetricKind)))
    common = dict(
        name=draw(names),
        unit=draw(st.sampled_from(["", "s", "By"])),
        kind=kind,
        ts_ns=draw(times),
        identity=draw(identities()),
        attributes=draw(st.dictionaries(names, text, max_size=3)),
        start_ns=draw(st.integers(min_value=0, max_value=2**63 - 1)),
    )
    if kind == MetricKind.HISTOGRAM:
        bounds = tuple(sorted(set(draw(st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=4)))))
        buckets = st.lists(st.integers(0, 10**6), min_size=len(bounds) + 1, max_size=len(bounds) + 1)
        counts = tuple(float(c) for c in draw(buckets))
        return MetricPoint(
            **common,
            cumulative=draw(st.booleans()),
            count=sum(counts),
            sum=draw(st.floats(allow_nan=False)),
            bounds=bounds,
            bucket_counts=counts,
        )
    cumulative = draw(st.booleans()) if kind == MetricKind.SUM else True
    return MetricPoint(**common, cumulative=cumulative, value=draw(st.floats(allow_nan=False)))


def round_trip(requests: list[OtlpRequest]) -> Mapped:
    """Every request through the wire format and our receiver's decoding and mapping, merged."""
    out = Mapped()
    for request in requests:
        body = request.message().SerializeToString()
        mapped = MAPPERS[request.signal](decode_request(request.signal, body, "protobuf"))
        out.logs = LogBatch.of([*out.logs, *mapped.logs])
        out.events += mapped.events
        out.spans += mapped.spans
        out.metrics += mapped.metrics
        out.reject(mapped.rejected, "rejected", "rejected")
    return out


def key(record) -> str:
    return repr(record)


@settings(deadline=None)  # examples: the profile (tests/conftest.py)
@given(
    st.lists(logs, max_size=8),
    st.lists(events, max_size=8),
    st.lists(spans(), max_size=5),
    st.lists(metric_points(), max_size=8),
)
def test_every_record_comes_back_equal(logs_in, events_in, spans_in, metrics_in):
    back = round_trip(encode_batch(logs=logs_in, events=events_in, spans=spans_in, metrics=metrics_in))
    assert back.rejected == 0
    # Requests group records by resource, so order within a signal may change; the records may not.
    pairs = ((back.logs, logs_in), (back.events, events_in), (back.spans, spans_in), (back.metrics, metrics_in))
    for got, sent in pairs:
        assert sorted(got, key=key) == sorted(sent, key=key)


def test_a_nan_gauge_and_an_infinite_bound_survive():
    identity = Identity(namespace="acme", component="cart")
    nan = MetricPoint("g", MetricKind.GAUGE, 10, identity, value=math.nan)
    histogram = MetricPoint(
        "h",
        MetricKind.HISTOGRAM,
        10,
        identity,
        cumulative=False,
        count=2.0,
        sum=math.inf,
        bounds=(1.0,),
        bucket_counts=(1.0, 1.0),
    )
    (gauge, hist) = round_trip(encode_batch(metrics=[nan, histogram])).metrics
    assert math.isnan(gauge.value) and (gauge.name, gauge.kind) == ("g", MetricKind.GAUGE)
    assert hist == histogram


def test_an_event_whose_pod_namespace_differs_from_its_objects():
    identity = Identity(namespace="acme", component="cart", pod_namespace="dp-acme-prod")
    for object_namespace in ("", "other"):
        event = EventRecord(1, "m", identity, "Warning", "BackOff", "Node", "n1", object_namespace)
        assert round_trip(encode_batch(events=[event])).events == [event]


def test_log_streams_and_levels_travel_as_semantic_attributes():
    identity = Identity(namespace="acme")
    record = LogRecord(1, "plain", identity, level="ERROR", stream="stderr")
    (request,) = encode_batch(logs=[record])
    otlp = request.message().resource_logs[0].scope_logs[0].log_records[0]
    assert (otlp.severity_text, otlp.severity_number) == ("ERROR", 17)
    assert [(kv.key, kv.value.string_value) for kv in otlp.attributes] == [("log.iostream", "stderr")]


def test_requests_are_cut_to_size_the_same_way_every_time():
    identity = Identity(namespace="acme")
    records = [
        LogRecord(i + 1, f"line {i:05d} " + "x" * 1000, identity, level="INFO", stream="stdout") for i in range(300)
    ]
    first = encode_batch(logs=records, max_request_bytes=64 * 1024)
    again = encode_batch(logs=records, max_request_bytes=64 * 1024)
    assert len(first) > 4
    assert [r.message().SerializeToString() for r in first] == [r.message().SerializeToString() for r in again]
    assert all(len(r.message().SerializeToString()) <= 64 * 1024 for r in first)
    assert sorted(round_trip(first).logs, key=key) == sorted(records, key=key)
    halves = first[0].halves()
    assert sum(half.records for half in halves) == first[0].records
