"""Remote write without a server: the hand-written protobuf encoder, checked by decoding with the protobuf
library itself (message classes built here from a FileDescriptorProto of remote write 1.0's `prometheus.WriteRequest`,
so nothing mirrors the encoder), the snappy framing, Prometheus naming, and delta -> running total conversion."""

from __future__ import annotations

import math
import struct

import cramjam
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from hypothesis import given
from hypothesis import strategies as st

from adapters.prometheus.remote_write import (
    Accumulator,
    Series,
    _halves,
    chunks,
    encode_write_request,
    format_le,
)
from domain.model import Identity, MetricKind, MetricPoint

# ----------------------------------------------------------------------------------------------- decoding


def _write_request_class() -> type:
    """prometheus.WriteRequest as in Prometheus's prompb/{remote,types}.proto (the remote write 1.0 subset)."""
    F = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name="test_remote_write.proto", package="prometheus", syntax="proto3")

    def message(name: str, *fields: tuple[str, int, int, str]) -> None:
        msg = file.message_type.add(name=name)
        for field_name, number, kind, type_name in fields:
            f = msg.field.add(name=field_name, number=number, type=kind, label=F.LABEL_OPTIONAL)
            if type_name:  # the repeated message fields
                f.label, f.type_name = F.LABEL_REPEATED, type_name

    message("Label", ("name", 1, F.TYPE_STRING, ""), ("value", 2, F.TYPE_STRING, ""))
    message("Sample", ("value", 1, F.TYPE_DOUBLE, ""), ("timestamp", 2, F.TYPE_INT64, ""))
    message(
        "TimeSeries",
        ("labels", 1, F.TYPE_MESSAGE, ".prometheus.Label"),
        ("samples", 2, F.TYPE_MESSAGE, ".prometheus.Sample"),
    )
    message("WriteRequest", ("timeseries", 1, F.TYPE_MESSAGE, ".prometheus.TimeSeries"))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("prometheus.WriteRequest"))


WriteRequest = _write_request_class()


def decode(body: bytes) -> list[Series]:
    request = WriteRequest()
    request.ParseFromString(body)
    return [
        (tuple((label.name, label.value) for label in ts.labels), [(s.timestamp, s.value) for s in ts.samples])
        for ts in request.timeseries
    ]


def _bits(series: list[Series]) -> list[Series]:
    """Values as their bit patterns, so NaN compares equal to itself and -0.0 differs from 0.0."""
    return [(labels, [(t, struct.pack("<d", v)) for t, v in samples]) for labels, samples in series]


# ----------------------------------------------------------------------------------------------- encoder


def test_encodes_a_write_request_protobuf_reads_back() -> None:
    series: list[Series] = [
        ((("__name__", "up"), ("job", "a")), [(1_700_000_000_000, 1.0), (1_700_000_015_000, 0.0)]),
        ((("__name__", "x_total"), ("k", 'ü "}\\\n')), [(0, -2.5), (-1, 1e300)]),
        ((("__name__", "empty"),), []),
    ]
    assert decode(encode_write_request(series)) == series


def test_long_fields_use_multi_byte_lengths() -> None:
    series: list[Series] = [((("__name__", "n"), ("v", "x" * 70_000)), [(2**62, 1.5)] * 300)]
    assert decode(encode_write_request(series)) == series


_label = st.tuples(st.text(min_size=1, max_size=20), st.text(max_size=40))
_sample = st.tuples(st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=True, allow_infinity=True))


@given(st.lists(st.tuples(st.lists(_label, max_size=5).map(tuple), st.lists(_sample, max_size=5)), max_size=5))
def test_any_series_round_trip(series: list[Series]) -> None:
    assert _bits(decode(encode_write_request(series))) == _bits(series)


def test_snappy_block_format_round_trips() -> None:
    """Prometheus wants snappy's block format (not the framed stream format): compress_raw / decompress_raw."""
    body = encode_write_request([((("__name__", "m"),), [(i * 15_000, float(i)) for i in range(1000)])])
    assert bytes(cramjam.snappy.decompress_raw(cramjam.snappy.compress_raw(body))) == body


@pytest.mark.parametrize(
    ("bound", "text"),
    [
        (0.005, "0.005"),
        (0.1, "0.1"),
        (1.0, "1"),
        (2.5, "2.5"),
        (100.0, "100"),
        (1e6, "1000000"),
        (1e-7, "0.0000001"),
        (0.30000000000000004, "0.30000000000000004"),
        (-1.0, "-1"),
        (0.0, "0"),
        (math.inf, "+Inf"),
    ],
)
def test_le_is_formatted_like_the_collector(bound: float, text: str) -> None:
    assert format_le(bound) == text
    assert math.isinf(bound) or float(text) == bound


# ----------------------------------------------------------------------------------------------- series

IDENTITY = Identity(namespace="ns", component="api", component_uid="c-1", pod="api-0")
BASE = (
    ("k8s_pod_name", "api-0"),
    ("openchoreo_dev_component", "api"),
    ("openchoreo_dev_component_uid", "c-1"),
    ("openchoreo_dev_namespace", "ns"),
)


def point(name: str, kind: MetricKind, ts_s: int, **fields: object) -> MetricPoint:
    ts_ns = ts_s * 1_000_000_000
    return MetricPoint(name=name, kind=kind, ts_ns=ts_ns, identity=IDENTITY, **fields)  # type: ignore[arg-type]


def series_of(*points: MetricPoint, accumulator: Accumulator | None = None) -> dict[str, list[tuple[int, float]]]:
    """name{labels other than the identity ones} -> samples, for short assertions."""
    out = {}
    for labels, samples in (accumulator or Accumulator()).series(points).series:
        rest = dict(label for label in labels if label not in BASE)
        name = rest.pop("__name__")
        out[name + "".join(f",{k}={v}" for k, v in sorted(rest.items()))] = samples
    return out


def test_gauge_name_carries_its_unit_and_labels_are_sorted_with_name() -> None:
    p = point("k8s.pod.memory.working_set", MetricKind.GAUGE, 10, value=5.0, attributes={"b.x": "1", "a-y": "2"})
    [(labels, samples)] = Accumulator().series([p]).series
    assert labels == tuple(
        sorted((*BASE, ("__name__", "k8s_pod_memory_working_set_bytes"), ("a_y", "2"), ("b_x", "1")))
    )
    assert samples == [(10_000, 5.0)]


def test_point_unit_wins_over_the_semconv_table() -> None:
    assert list(series_of(point("k8s.pod.memory.working_set", MetricKind.GAUGE, 1, unit="s"))) == [
        "k8s_pod_memory_working_set_seconds"
    ]
    assert list(series_of(point("k8s.pod.cpu.usage", MetricKind.GAUGE, 1))) == ["k8s_pod_cpu_usage"]  # {cpu}


def test_attribute_labels_never_replace_identity_name_or_le_and_collisions_join() -> None:
    p = point(
        "m",
        MetricKind.GAUGE,
        1,
        attributes={
            "openchoreo.dev/component": "spoof",
            "__name__": "spoof",
            "le": "spoof",
            "a.b": "1",
            "a_b": "2",
            "empty": "",
        },
    )
    assert series_of(p) == {"m,a_b=1;2": [(1000, 0.0)]}


def test_cumulative_sum_goes_as_it_is() -> None:
    points = [point("k8s.pod.network.io", MetricKind.SUM, t, value=v) for t, v in [(30, 7.0), (15, 3.0)]]
    assert series_of(*points) == {"k8s_pod_network_io_bytes_total": [(15_000, 3.0), (30_000, 7.0)]}


def test_delta_sums_become_running_totals_in_time_order() -> None:
    acc = Accumulator()
    deltas = [point("req", MetricKind.SUM, t, value=v, cumulative=False) for t, v in [(30, 2.0), (15, 1.0), (45, 3.0)]]
    first = acc.series(deltas)
    assert first.series[0][1] == [(15_000, 1.0), (30_000, 3.0), (45_000, 6.0)]
    acc.commit(first)
    later = acc.series([point("req", MetricKind.SUM, 60, value=4.0, cumulative=False)])
    assert later.series[0][1] == [(60_000, 10.0)]


def test_series_are_kept_apart_by_labels() -> None:
    deltas = [
        point("req", MetricKind.SUM, t, value=1.0, cumulative=False, attributes={"code": code})
        for t in (15, 30)
        for code in ("200", "500")
    ]
    assert series_of(*deltas) == {
        "req_total,code=200": [(15_000, 1.0), (30_000, 2.0)],
        "req_total,code=500": [(15_000, 1.0), (30_000, 2.0)],
    }


def test_a_redelivered_delta_is_not_counted_twice() -> None:
    acc = Accumulator()
    batch = [point("req", MetricKind.SUM, t, value=1.0, cumulative=False) for t in (15, 30)]
    acc.commit(acc.series(batch))
    again = acc.series(batch)
    assert again.series == [] and again.skipped == 2
    mixed = acc.series([*batch, point("req", MetricKind.SUM, 45, value=1.0, cumulative=False)])
    assert mixed.series[0][1] == [(45_000, 3.0)] and mixed.skipped == 2


def test_totals_advance_only_on_commit() -> None:
    """A write that failed is retried by its sender with the same points: they must give the same samples."""
    acc = Accumulator()
    batch = [point("req", MetricKind.SUM, 15, value=5.0, cumulative=False)]
    assert acc.series(batch).series == acc.series(batch).series


def test_cumulative_histogram_buckets_are_running_sums() -> None:
    p = point(
        "http.server.request.duration",
        MetricKind.HISTOGRAM,
        15,
        count=100.0,
        sum=42.0,
        bounds=(0.005, 0.1, 1.0),
        bucket_counts=(10.0, 30.0, 40.0, 20.0),
    )
    assert series_of(p) == {
        "http_server_request_duration_seconds_bucket,le=0.005": [(15_000, 10.0)],
        "http_server_request_duration_seconds_bucket,le=0.1": [(15_000, 40.0)],
        "http_server_request_duration_seconds_bucket,le=1": [(15_000, 80.0)],
        "http_server_request_duration_seconds_bucket,le=+Inf": [(15_000, 100.0)],
        "http_server_request_duration_seconds_sum": [(15_000, 42.0)],
        "http_server_request_duration_seconds_count": [(15_000, 100.0)],
    }


def test_delta_histograms_accumulate_per_bucket() -> None:
    def delta(t: int, counts: tuple[float, ...], total: float) -> MetricPoint:
        return point(
            "lat",
            MetricKind.HISTOGRAM,
            t,
            cumulative=False,
            count=sum(counts),
            sum=total,
            bounds=(1.0, 2.0),
            bucket_counts=counts,
            unit="s",
        )

    assert series_of(delta(30, (0.0, 1.0, 1.0), 5.0), delta(15, (1.0, 2.0, 0.0), 3.5)) == {
        "lat_seconds_bucket,le=1": [(15_000, 1.0), (30_000, 1.0)],
        "lat_seconds_bucket,le=2": [(15_000, 3.0), (30_000, 4.0)],
        "lat_seconds_bucket,le=+Inf": [(15_000, 3.0), (30_000, 5.0)],
        "lat_seconds_sum": [(15_000, 3.5), (30_000, 8.5)],
        "lat_seconds_count": [(15_000, 3.0), (30_000, 5.0)],
    }


def test_a_bound_kept_across_a_layout_change_keeps_counting() -> None:
    acc = Accumulator()
    acc.commit(
        acc.series(
            [point("h", MetricKind.HISTOGRAM, 15, cumulative=False, count=3.0, bounds=(1.0,), bucket_counts=(1.0, 2.0))]
        )
    )
    out = series_of(
        point(
            "h", MetricKind.HISTOGRAM, 30, cumulative=False, count=2.0, bounds=(1.0, 5.0), bucket_counts=(1.0, 1.0, 0.0)
        ),
        accumulator=acc,
    )
    assert out["h_bucket,le=1"] == [(30_000, 2.0)]
    assert out["h_bucket,le=5"] == [(30_000, 2.0)]  # new bound: counts from its first delta
    assert out["h_bucket,le=+Inf"] == [(30_000, 5.0)]
    assert out["h_count"] == [(30_000, 5.0)]


# ----------------------------------------------------------------------------------------------- splitting


def _labels(i: int) -> tuple[tuple[str, str], ...]:
    return (("__name__", f"s{i}"),)


def test_chunks_hold_at_most_the_limit_and_keep_order() -> None:
    series = [(_labels(i), [(t, float(t)) for t in range(n)]) for i, n in enumerate([3, 10, 1, 0, 4])]
    batches = list(chunks(series, 4))
    assert [sum(len(s) for _, s in batch) for batch in batches] == [4, 4, 4, 4, 2]
    joined: dict = {}
    for batch in batches:
        for labels, samples in batch:
            joined.setdefault(labels, []).extend(samples)
    assert joined == {labels: samples for labels, samples in series if samples}


def test_halves_split_by_samples_even_within_one_series() -> None:
    one = [(_labels(0), [(t, 0.0) for t in range(5)])]
    assert _halves(one, 5) == ([(_labels(0), [(t, 0.0) for t in range(3)])], [(_labels(0), [(3, 0.0), (4, 0.0)])])
    two = [(_labels(0), [(0, 0.0)]), (_labels(1), [(0, 0.0), (1, 0.0), (2, 0.0)])]
    assert _halves(two, 4) == (
        [(_labels(0), [(0, 0.0)]), (_labels(1), [(0, 0.0)])],
        [(_labels(1), [(1, 0.0), (2, 0.0)])],
    )
