"""The tail's fast path for CRI lines (`parse_cri_whole`, issue 14's throughput work) agrees with `parse_cri`:
it takes exactly the whole messages tagged plain `F` and leaves everything else to the general parser."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from collectors.tail.formats import Fragment, cri_line, parse_cri, parse_cri_whole
from devservers.sample import BASE_NS

stamps = st.sampled_from(
    [b"2026-01-01T10:00:01.123456789Z", b"2026-01-01T10:00:01Z", b"2026-01-01T10:00:01.5Z", b"yesterday", b""]
)
streams = st.sampled_from([b"stdout", b"stderr", b"stdin", b""])
tags = st.sampled_from([b"F", b"P", b"F:x", b"P:x", b"X", b""])
contents = st.binary(max_size=40)


@given(stamps, streams, tags, contents, st.sampled_from([b" ", b"  ", b""]))
def test_the_fast_path_takes_plain_whole_lines_and_agrees_with_the_general_parser(
    stamp: bytes, stream: bytes, tag: bytes, content: bytes, separator: bytes
) -> None:
    line = b" ".join([stamp, stream, tag]) + separator + content
    whole = parse_cri_whole(line)
    general = parse_cri(line)
    if whole is None:  # left to the general parser: a bad line, a partial chunk, an extra tag, no content field
        parts = line.split(b" ", 3)
        assert not (isinstance(general, Fragment) and len(parts) == 4 and parts[2] == b"F")
    else:
        assert isinstance(general, Fragment) and not general.partial
        assert whole == (general.ts_ns, general.stream, general.content)


@given(st.integers(min_value=0, max_value=10**12), st.sampled_from(["stdout", "stderr"]), contents)
def test_every_whole_line_the_runtime_writes_takes_the_fast_path(offset: int, stream: str, content: bytes) -> None:
    line = cri_line(BASE_NS + offset, stream, content.replace(b"\n", b" ")).rstrip(b"\n")
    general = parse_cri(line)
    assert isinstance(general, Fragment)
    assert parse_cri_whole(line) == (general.ts_ns, general.stream, general.content)
