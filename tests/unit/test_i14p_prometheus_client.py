"""The Prometheus client's decoding of range answers (adapters/prometheus/client.py): columns that share the
steps' timestamps, NaN kept in columns and dropped in series, and the garbage collector paused only while
decoding."""

from __future__ import annotations

import gc
import math

import pytest

from adapters.prometheus.client import _data, _finite, _Stamps, collector_paused
from adapters.protocols import BackendUnavailable


def test_columns_round_to_milliseconds_and_share_the_steps():
    stamps = _Stamps()
    first = stamps.columns([[1700000000, "1"], [1700000060.5, "NaN"], [1700000120.0004, "+Inf"]])
    second = stamps.columns([[1700000000, "2"], [1700000060.5, "3"], [1700000120.0004, "4"]])
    other = stamps.columns([[1700000060.5, "5"]])
    assert first[0] == (1700000000 * 10**9, 1700000060500 * 10**6, 1700000120000 * 10**6)
    assert math.isnan(first[1][1]) and first[1][2] == math.inf and second[1] == [2.0, 3.0, 4.0]
    assert second[0] is first[0]  # the same steps, converted once
    assert other == ((1700000060500 * 10**6,), [5.0])
    assert stamps.columns([]) == ((), [])


def test_series_leave_out_nan_and_infinities():
    assert _finite((1, 2, 3, 4), [1.0, math.nan, -math.inf, 4.0]) == [(1, 1.0), (4, 4.0)]
    assert _finite((1, 2), [1.0, 2.0]) == [(1, 1.0), (2, 2.0)]


@pytest.mark.parametrize("enabled", [True, False])
def test_the_collector_is_paused_and_then_left_as_it_was(enabled):
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        with pytest.raises(BackendUnavailable), collector_paused():
            assert not gc.isenabled()
            _data(b"<html>a proxy's page</html>")
        assert gc.isenabled() == enabled
    finally:
        (gc.enable if was else gc.disable)()
