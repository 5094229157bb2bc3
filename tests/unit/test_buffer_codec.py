"""The disk buffer's record codec: every record type comes back exactly as it went in (compared by repr, which
tells 1 from 1.0 from True, a tuple from a list, an enum from its value, and shows NaN equal to NaN)."""

from __future__ import annotations

import math

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collectors.codec import FORMAT, Batch, CodecError, decode, encode, read_mark
from devservers.sample import BASE_NS, identity
from domain.audit import Actor, AuditRecord, AuditResource, Collected
from domain.model import EventRecord, Identity, LogRecord, MetricKind, MetricPoint, SpanRecord

CART = identity("cart")
PAYMENTS = identity("payments", environment="dev", pod="payments-7f9c-x2")
ATTRIBUTES = {
    "http.route": "/cart/{id}",
    "http.status_code": 503,
    "big": 2**63 - 1,
    "small": -(2**63),
    "ratio": 0.1,
    "whole": 2.0,
    "nan": math.nan,
    "inf": -math.inf,
    "negative_zero": -0.0,
    "retried": True,
    "list": [1, "two", 3.0, False, [None]],
    "kvlist": {"nested": {"deeper": [1, 2]}},
    "none": None,
    "ünïcödé 🚀": "🚀\x00\n",
}


def rich_batch() -> Batch:
    return Batch(
        "otlp-0123abcd",
        logs=[
            LogRecord(BASE_NS + 1, "GET /cart 200", CART, "INFO", "0" * 32, "1" * 16, "stdout"),
            LogRecord(BASE_NS + 2, "", PAYMENTS),
            LogRecord(2**63 - 1, "multi\nline 🚀 \x00 body", CART, stream="stderr"),
        ],
        events=[
            EventRecord(
                BASE_NS, "Back-off restarting failed container", CART, "Warning", "BackOff", "Pod", "cart-0", "dp"
            ),
            EventRecord(0, "", Identity()),
        ],
        spans=[
            SpanRecord(
                "a" * 32,
                "b" * 16,
                "",
                "GET /cart",
                "Server",
                BASE_NS,
                BASE_NS + 5_000_123,
                CART,
                "error",
                "boom",
                dict(ATTRIBUTES),
                {"service.name": "cart", "k8s.pod.name": "cart-0"},
            ),
            SpanRecord("a" * 32, "c" * 16, "b" * 16, "SELECT", "Client", BASE_NS + 1, BASE_NS + 2, PAYMENTS),
        ],
        metrics=[
            MetricPoint(
                "process.cpu.time",
                MetricKind.SUM,
                BASE_NS,
                CART,
                {"state": "user"},
                True,
                BASE_NS - 10**9,
                value=12.5,
                unit="s",
            ),
            MetricPoint("up", MetricKind.GAUGE, BASE_NS, CART, value=math.nan),
            MetricPoint("queue", MetricKind.GAUGE, BASE_NS, PAYMENTS, value=math.inf, cumulative=False),
            MetricPoint(
                "http.server.request.duration",
                MetricKind.HISTOGRAM,
                BASE_NS,
                CART,
                {"http.route": "/"},
                cumulative=False,
                start_ns=BASE_NS - 1,
                count=7.0,
                sum=0.75,
                bounds=(0.005, 0.1, 1.0),
                bucket_counts=(1.0, 4.0, 2.0, 0.0),
                unit="s",
            ),
        ],
    )


def test_every_record_type_round_trips_exactly() -> None:
    batch = rich_batch()
    decoded = decode(encode(batch))
    assert repr(decoded) == repr(batch)
    assert type(decoded.metrics[0].kind) is MetricKind and type(decoded.metrics[3].bounds) is tuple


def test_records_of_one_batch_share_one_stored_identity() -> None:
    """The identity table is why a short log line costs little more than its body."""
    logs = [LogRecord(BASE_NS + i, "x", CART) for i in range(100)]
    decoded = decode(encode(Batch("b", logs=logs)))
    assert all(record.identity is decoded.logs[0].identity for record in decoded.logs)
    assert decoded.logs[0].identity == CART


def test_an_empty_batch_round_trips() -> None:
    assert decode(encode(Batch("empty"))) == Batch("empty")


def test_a_value_that_cannot_be_stored_exactly_is_refused() -> None:
    span = SpanRecord("a" * 32, "b" * 16, "", "x", "Server", 0, 1, CART, attributes={"huge": 2**70})
    with pytest.raises(CodecError, match="cannot be stored"):
        encode(Batch("b", spans=[span]))


@pytest.mark.parametrize("payload", [b"", b"\x00", b"garbage", msgpack.packb([FORMAT + 1, "b", [[], []], []])])
def test_bytes_that_are_not_a_batch_are_refused(payload: bytes) -> None:
    with pytest.raises(CodecError):
        decode(payload)


def test_a_producers_mark_travels_with_the_batch_and_stays_out_of_it() -> None:
    batch = rich_batch()
    with_mark = encode(batch, ("tail", b'{"seq":7}'))
    assert read_mark(with_mark) == ("tail", b'{"seq":7}')
    assert repr(decode(with_mark)) == repr(batch)
    assert read_mark(encode(batch)) is None
    with pytest.raises(CodecError):
        read_mark(b"garbage")


AUDIT = AuditRecord(
    event_id="e-1",
    time_ns=BASE_NS + 123,
    actor=Actor("user", "alice", "https://idp", "s-1", (("groups", ("admin", "viewer")),)),
    action="incident.update",
    category="management",
    result="denied",
    surface="rest",
    producer="observer",
    request_id="r-1",
    source_ip="10.0.0.9",
    user_agent="curl/8",
    http_method="PUT",
    http_path="/api/v1alpha1/incidents/i-1",
    resource=AuditResource(type="incident", namespace="acme", name="i-1"),
    metadata={"reason": "nope"},
    collector=Collected("openchoreo-control-plane", "observer-0", "observer"),
)


def test_identities_with_placement_and_labels_round_trip() -> None:
    placed = Identity(
        namespace="acme",
        pod="cart-0",
        cluster="prod-1",
        node="node-a",
        pod_ip="10.1.2.3",
        image="ghcr.io/acme/cart:1.4",
        labels=(("app", "cart"), ("tier", "")),
    )
    decoded = decode(encode(Batch("placed", logs=[LogRecord(BASE_NS, "x", placed)])))
    assert decoded.logs[0].identity == placed
    assert isinstance(decoded.logs[0].identity.labels[0], tuple)
    hash(decoded.logs[0].identity)  # identities key the encoder's table: they must stay hashable


def test_audit_records_travel_with_the_batch() -> None:
    batch = Batch(
        "audited",
        logs=[LogRecord(BASE_NS, "x", CART)],
        audit=[AUDIT, AuditRecord("e-2", BASE_NS, Actor("anonymous", ""), "a", "access", "success")],
    )
    decoded = decode(encode(batch))
    assert decoded.audit == batch.audit
    assert decoded.logs == batch.logs
    assert len(decoded) == 3


def test_a_batch_without_audit_keeps_the_four_section_layout() -> None:
    """Frames written before audit records existed (and batches without any) have four sections."""
    assert len(msgpack.unpackb(encode(Batch("plain", logs=[LogRecord(BASE_NS, "x", CART)])))[3]) == 4


def test_a_batch_written_by_an_older_model_still_decodes() -> None:
    """A buffer outlives an upgrade: fields are matched by name, new ones take their defaults, gone ones are
    dropped."""
    identity_fields = ["namespace", "pod", "retired_field"]
    old = msgpack.packb(
        [
            FORMAT,
            "old",
            [identity_fields, [["acme", "cart-0", "x"]]],
            [[["body", "ts_ns", "identity", "retired"], [["hello"], [BASE_NS], [0], ["?"]]], None, None, None],
        ]
    )
    assert decode(old).logs == [LogRecord(BASE_NS, "hello", Identity(namespace="acme", pod="cart-0"))]


# ----------------------------------------------------------------------------------------------- properties

texts = st.text(max_size=20)
ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)
floats = st.floats(allow_nan=True, allow_infinity=True)
scalars = st.none() | st.booleans() | ints | floats | texts
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3), max_leaves=8
)
label_pairs = st.dictionaries(texts, texts, max_size=3).map(lambda labels: tuple(sorted(labels.items())))
identities = st.builds(
    Identity,
    namespace=texts,
    project_uid=texts,
    pod=texts,
    container=texts,
    cluster=texts,
    node=texts,
    pod_ip=texts,
    image=texts,
    labels=label_pairs,
)
logs = st.builds(LogRecord, ts_ns=ints, body=texts, identity=identities, level=texts, stream=texts)
events = st.builds(EventRecord, ts_ns=ints, message=texts, identity=identities, reason=texts)
spans = st.builds(
    SpanRecord,
    trace_id=texts,
    span_id=texts,
    parent_span_id=texts,
    name=texts,
    kind=texts,
    start_ns=ints,
    end_ns=ints,
    identity=identities,
    attributes=st.dictionaries(texts, values, max_size=4),
    resource=st.dictionaries(texts, values, max_size=2),
)
metrics = st.builds(
    MetricPoint,
    name=texts,
    kind=st.sampled_from(MetricKind),
    ts_ns=ints,
    identity=identities,
    attributes=st.dictionaries(texts, texts, max_size=3),
    cumulative=st.booleans(),
    start_ns=ints,
    value=floats,
    count=floats,
    sum=floats,
    bounds=st.lists(floats, max_size=4).map(tuple),
    bucket_counts=st.lists(floats, max_size=5).map(tuple),
)
batches = st.builds(
    Batch,
    batch_id=texts,
    logs=st.lists(logs, max_size=4),
    events=st.lists(events, max_size=3),
    spans=st.lists(spans, max_size=3),
    metrics=st.lists(metrics, max_size=3),
)


@settings(max_examples=200, deadline=None)
@given(batches)
def test_any_batch_round_trips_exactly(batch: Batch) -> None:
    assert repr(decode(encode(batch))) == repr(batch)
