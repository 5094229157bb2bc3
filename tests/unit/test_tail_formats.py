"""Parsing one raw line of a container log file (collectors/tail/formats.py): CRI and Docker json-file, and every
way a line can be bad, which must come back as a `Rejected` with a reason, never as an exception."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collectors.tail.formats import (
    BAD_JSON,
    BAD_STREAM,
    BAD_TAG,
    BAD_TIMESTAMP,
    EMPTY,
    MALFORMED,
    OVERLONG_JSON,
    Fragment,
    Rejected,
    cri_line,
    cri_time,
    cut_text,
    cut_utf8,
    decode_content,
    docker_line,
    parse_cri,
    parse_docker,
    parse_line,
)
from domain.timeutil import format_rfc3339, parse_rfc3339

T0 = parse_rfc3339("2026-01-01T10:00:01.123456789Z")


def frag(line: bytes) -> Fragment:
    result = parse_line(line)
    assert isinstance(result, Fragment), result
    return result


def reason(line: bytes) -> str:
    result = parse_line(line)
    assert isinstance(result, Rejected), result
    return result.reason


# ------------------------------------------------------------------------------------------------------ CRI


def test_cri_full_line_keeps_content_bytes_with_spaces() -> None:
    f = frag(b"2026-01-01T10:00:01.123456789Z stdout F GET /cart  200 took=3ms ")
    assert (f.ts_ns, f.stream, f.content, f.partial) == (T0, "stdout", b"GET /cart  200 took=3ms ", False)


def test_cri_partial_and_stderr() -> None:
    f = frag(b"2026-01-01T10:00:01.123456789Z stderr P first half")
    assert (f.stream, f.content, f.partial) == ("stderr", b"first half", True)


@pytest.mark.parametrize("line", [b"2026-01-01T10:00:01Z stdout F", b"2026-01-01T10:00:01Z stdout F "])
def test_cri_empty_content_is_an_empty_message(line: bytes) -> None:
    assert frag(line).content == b""


def test_cri_extra_tags_after_the_partial_flag_are_ignored() -> None:
    assert frag(b"2026-01-01T10:00:01Z stdout P:future x").partial is True
    assert frag(b"2026-01-01T10:00:01Z stdout F:future x").partial is False


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("2026-01-01T10:00:01Z", "2026-01-01T10:00:01Z"),
        ("2026-01-01T10:00:01.5Z", "2026-01-01T10:00:01.5Z"),
        ("2026-01-01T10:00:01.000000001Z", "2026-01-01T10:00:01.000000001Z"),
        ("2026-01-01T12:00:01.25+02:00", "2026-01-01T10:00:01.25Z"),  # a node not on UTC
        ("2025-12-31T23:00:01.123456789-11:00", "2026-01-01T10:00:01.123456789Z"),
    ],
)
def test_cri_times_to_the_nanosecond_in_any_offset(stamp: str, expected: str) -> None:
    assert frag(f"{stamp} stdout F x".encode()).ts_ns == parse_rfc3339(expected)


@pytest.mark.parametrize(
    ("line", "why"),
    [
        (b"garbage", MALFORMED),
        (b"2026-01-01T10:00:01Z stdout", MALFORMED),
        (b"\x00\x01\x02\xff\xfe binary \x89PNG", BAD_STREAM),
        (b"2026-01-01T10:00:01Z stdin F x", BAD_STREAM),
        (b"2026-01-01T10:00:01Z stdout X x", BAD_TAG),
        (b"2026-01-01T10:00:01Z stdout  F x", BAD_TAG),  # two spaces: the tag field is empty
        (b"yesterday stdout F x", BAD_TIMESTAMP),
        (b"2026-13-01T10:00:01Z stdout F x", BAD_TIMESTAMP),
        (b"2026-02-30T10:00:01.5Z stdout F x", BAD_TIMESTAMP),
        (b"2026-01-01T25:00:01.123Z stdout F x", BAD_TIMESTAMP),
        (b"2026-01-01T10:00:01.1234567890Z stdout F x", BAD_TIMESTAMP),  # 10 fraction digits
        (b"2026-01-01T10:00:\xff1.5Z stdout F x", BAD_TIMESTAMP),  # not even ASCII
        (b"", EMPTY),
    ],
)
def test_bad_cri_lines_are_rejected_with_a_reason(line: bytes, why: str) -> None:
    assert reason(line) == why


@given(st.integers(min_value=0, max_value=4_102_444_800 * 10**9))
def test_cri_time_agrees_with_parse_rfc3339(ts_ns: int) -> None:
    stamp = format_rfc3339(ts_ns)
    assert cri_time(stamp.encode()) == parse_rfc3339(stamp) == ts_ns


@given(st.binary(max_size=60))
def test_any_bytes_parse_or_are_rejected_never_raise(data: bytes) -> None:
    result = parse_line(data.replace(b"\n", b""))
    assert isinstance(result, Fragment | Rejected)


def test_cri_line_writer_round_trips() -> None:
    line = cri_line(T0, "stderr", "ünïcode 😀".encode(), partial=True)
    assert line.endswith(b"\n")
    f = frag(line[:-1])
    assert (f.ts_ns, f.stream, f.content.decode(), f.partial) == (T0, "stderr", "ünïcode 😀", True)


# --------------------------------------------------------------------------------------------------- Docker


def test_docker_line_drops_the_final_newline() -> None:
    f = frag(b'{"log":"hello \\"world\\"\\n","stream":"stdout","time":"2026-01-01T10:00:01.123456789Z"}')
    assert (f.ts_ns, f.stream, f.content, f.partial) == (T0, "stdout", 'hello "world"', False)


def test_docker_line_without_newline_is_partial() -> None:
    f = frag(b'{"log":"first half","stream":"stderr","time":"2026-01-01T10:00:01.123456789Z"}')
    assert (f.stream, f.content, f.partial) == ("stderr", "first half", True)


def test_docker_writer_round_trips() -> None:
    f = frag(docker_line(T0, "stdout", "tab\there")[:-1])
    assert (f.ts_ns, f.content, f.partial) == (T0, "tab\there", False)


@pytest.mark.parametrize(
    ("line", "why"),
    [
        (b'{"log":"truncated', BAD_JSON),
        (b"{not json}", BAD_JSON),
        (b'{"log":1,"stream":"stdout","time":"2026-01-01T10:00:01Z"}', BAD_JSON),
        (b'{"stream":"stdout","time":"2026-01-01T10:00:01Z"}', BAD_JSON),
        (b'{"log":"x\\n","stream":"stdout"}', BAD_JSON),
        (b'{"log":"x\\n","stream":"console","time":"2026-01-01T10:00:01Z"}', BAD_STREAM),
        (b'{"log":"x\\n","stream":"stdout","time":"now"}', BAD_TIMESTAMP),
    ],
)
def test_bad_docker_lines_are_rejected_with_a_reason(line: bytes, why: str) -> None:
    assert reason(line) == why


def test_a_docker_line_cut_at_the_limit_is_overlong_not_bad() -> None:
    result = parse_docker(b'{"log":"aaaaaaaaaaaaaaaa', cut=True)
    assert result == Rejected(OVERLONG_JSON)


def test_invalid_utf8_inside_docker_json_is_replaced_and_flagged() -> None:
    f = frag(b'{"log":"caf\xe9 \xff\\n","stream":"stdout","time":"2026-01-01T10:00:01Z"}')
    assert f.content == "caf\ufffd \ufffd" and f.invalid_utf8


def test_a_lone_surrogate_escape_is_replaced_and_flagged() -> None:
    f = frag(b'{"log":"a\\ud800b\\n","stream":"stdout","time":"2026-01-01T10:00:01Z"}')
    assert f.content == "a\ufffdb" and f.invalid_utf8
    f.content.encode("utf-8")  # storable


def test_parse_cri_and_parse_docker_are_usable_directly() -> None:
    assert isinstance(parse_cri(b"2026-01-01T10:00:01Z stdout F x"), Fragment)
    assert isinstance(parse_docker(b'{"log":"x\\n","stream":"stdout","time":"2026-01-01T10:00:01Z"}'), Fragment)


# ------------------------------------------------------------------------------------------- decoding, cuts


def test_decode_content_replaces_and_says_so() -> None:
    assert decode_content("ok é".encode()) == ("ok é", False)
    assert decode_content(b"bad \xc3(") == ("bad \ufffd(", True)


@given(st.text(max_size=40), st.integers(min_value=0, max_value=200))
def test_cut_utf8_cuts_on_a_character_boundary(text: str, limit: int) -> None:
    data = text.encode("utf-8", "surrogatepass")
    cut = cut_utf8(data, limit)
    assert data.startswith(cut) and len(cut) <= limit
    assert len(cut) >= min(len(data), limit) - 3
    cut.decode("utf-8")  # no character was cut in half


@given(st.text(max_size=40), st.integers(min_value=0, max_value=200))
def test_cut_text_is_a_prefix_within_the_byte_limit(text: str, limit: int) -> None:
    cut = cut_text(text, limit)
    assert text.startswith(cut)
    assert len(cut.encode()) <= limit
    assert len(cut.encode()) >= min(len(text.encode()), limit) - 3
