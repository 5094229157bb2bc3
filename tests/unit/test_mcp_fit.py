"""observer/mcp/fit.py: results are measured as the server writes them (both copies, escapes included), and
what does not fit is cut to what does."""

from __future__ import annotations

from observer.mcp.fit import (
    CLIENT_EVENT_LIMIT,
    RESULT_BUDGET,
    fits,
    records_that_fit,
    result_of,
    result_size,
    series_too_large,
    shorten,
)


def test_a_small_page_is_kept_whole() -> None:
    body = {"logs": [{"log": f"line {i}"} for i in range(10)], "total": 10, "tookMs": 1}
    assert records_that_fit(body, "logs") == 10


def test_escapes_count_twice_and_the_cut_page_fits_with_its_note() -> None:
    """A line of quotes and control characters grows about 6x in structuredContent and 7x in the escaped
    text: counting raw characters would overshoot the client's limit."""
    line = '"\x01\\' * 2000
    body = {"logs": [{"log": line} for i in range(200)], "total": 200, "tookMs": 1}
    kept = records_that_fit(body, "logs")
    assert 0 < kept < 200
    assert fits({**body, "logs": body["logs"][:kept], "note": "n" * 500})
    assert not fits({**body, "logs": body["logs"][: kept + 3]})  # and not far below what would fit
    assert result_size(result_of({**body, "logs": body["logs"][:kept]})) <= RESULT_BUDGET < CLIENT_EVENT_LIMIT


def test_one_record_too_large_has_its_long_strings_shortened() -> None:
    body = {"spanId": "a" * 16, "attributes": {"sql": "x" * 3_000_000, "small": "kept"}}
    short, cut = shorten(body)
    assert cut == 1 and fits(short)
    assert short["spanId"] == "a" * 16 and short["attributes"]["small"] == "kept"
    assert short["attributes"]["sql"].endswith(" more characters cut]")
    assert shorten({"fine": "x"}) == ({"fine": "x"}, 0)


def test_series_too_large_name_the_step_that_would_fit() -> None:
    points = [{"timestamp": "2026-01-01T00:00:00Z", "value": 0.123456789} for _ in range(12_000)]
    body = {name: points for name in ("cpuUsage", "memoryUsage", "cpuRequests")}
    problem = series_too_large(body, step_ns=10**9)
    assert problem is not None and "use a step of at least 5s" in problem  # 4.3 MB / ~1 MB, rounded up
    assert series_too_large({"cpuUsage": points[:10]}, step_ns=10**9) is None
