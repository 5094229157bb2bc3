"""From physical lines to messages (collectors/tail/assembler.py): P/F reassembly per stream, the length limit,
and the replay rule that lets a restarted tail re-read an unfinished sequence without delivering twice."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from collectors.tail.assembler import Assembler, Sink
from collectors.tail.formats import INVALID_UTF8, MALFORMED, TRUNCATED, TRUNCATION_MARKER, cri_line, docker_line
from collectors.tail.paths import PodContainer

SOURCE = PodContainer("ns", "pod", "uid", "c", 0)
T = 1_767_261_601_000_000_000
UNLIMITED = 1 << 62


def run(
    data: bytes,
    *,
    limit: int = 1 << 20,
    physical: int | None = None,
    assembler: Assembler | None = None,
    offset: int = 0,
) -> tuple[list[tuple[str, str, int]], Sink, Assembler]:
    """Feeds complete lines of `data` (which starts at file offset `offset`) in one go."""
    assembler = assembler or Assembler(SOURCE, limit)
    sink = Sink(UNLIMITED, UNLIMITED)
    lines = data.split(b"\n")
    assert lines.pop() == b""
    assembler.feed(lines, 0, offset, physical or limit + 4096, sink)
    return [(r.stream, r.body, r.offset) for r in sink.records], sink, assembler


def test_partial_chunks_are_joined_per_stream_with_the_other_stream_in_between() -> None:
    data = (
        cri_line(T, "stdout", b"one ", partial=True)
        + cri_line(T + 1, "stderr", b"err A")
        + cri_line(T + 2, "stdout", b"two ", partial=True)
        + cri_line(T + 3, "stderr", b"err ", partial=True)
        + cri_line(T + 4, "stdout", b"three")
        + cri_line(T + 5, "stderr", b"B")
    )
    records, sink, assembler = run(data)
    first = len(cri_line(T, "stdout", b"one ", partial=True))
    third = first + len(cri_line(T + 1, "stderr", b"err A")) + len(cri_line(T + 2, "stdout", b"two ", partial=True))
    # each message completes at its F chunk and carries the offset (and time) of its first chunk
    assert records == [("stderr", "err A", first), ("stdout", "one two three", 0), ("stderr", "err B", third)]
    assert not assembler.has_pending and assembler.delivered == len(data)
    assert sink.records[1].ts_ns == T


def test_a_character_split_across_chunks_is_decoded_whole() -> None:
    text = "naïve 😀".encode()
    cut = text.index("😀".encode()) + 2  # in the middle of the emoji's 4 bytes
    data = cri_line(T, "stdout", text[:cut], partial=True) + cri_line(T, "stdout", text[cut:])
    records, sink, _ = run(data)
    assert records == [("stdout", "naïve 😀", 0)] and not sink.repaired


def test_invalid_utf8_is_replaced_and_counted_and_the_next_line_is_fine() -> None:
    data = cri_line(T, "stdout", b"bad \xff\xfe end") + cri_line(T, "stdout", b"good")
    records, sink, _ = run(data)
    assert [body for _, body, _ in records] == ["bad \ufffd\ufffd end", "good"]
    assert sink.repaired == {INVALID_UTF8: 1}


def test_garbage_is_counted_and_good_lines_around_it_arrive() -> None:
    data = cri_line(T, "stdout", b"before") + b"\x00\x9f\x92garbage\xff\n" + cri_line(T, "stdout", b"after")
    records, sink, _ = run(data)
    assert [body for _, body, _ in records] == ["before", "after"]
    assert sink.rejected == {MALFORMED: 1}


def test_an_overlong_message_is_cut_at_once_and_the_rest_of_its_chunks_skipped() -> None:
    chunks = [b"a" * 40, b"b" * 40, b"c" * 40, b"d" * 40]
    data = b"".join(cri_line(T, "stdout", c, partial=i < 3) for i, c in enumerate(chunks))
    data += cri_line(T, "stdout", b"next")
    records, sink, assembler = run(data, limit=100)
    assert records == [
        ("stdout", "a" * 40 + "b" * 40 + "c" * 20 + TRUNCATION_MARKER, 0),
        ("stdout", "next", records[1][2]),
    ]
    assert sink.repaired == {TRUNCATED: 1}
    assert not assembler.has_pending


def test_an_overlong_physical_line_is_cut_before_parsing() -> None:
    data = cri_line(T, "stdout", b"x" * 5000) + cri_line(T, "stdout", b"next")
    records, sink, _ = run(data, limit=1000, physical=1100)
    assert records[0][1] == "x" * 1000 + TRUNCATION_MARKER and records[1][1] == "next"
    assert sink.repaired == {TRUNCATED: 1}


def test_docker_partials_are_joined_and_the_final_newline_dropped() -> None:
    data = docker_line(T, "stdout", "first ", partial=True) + docker_line(T, "stdout", "second")
    records, _, _ = run(data)
    assert records == [("stdout", "first second", 0)]


def test_replay_suppresses_messages_completed_before_the_committed_mark() -> None:
    lines = [
        cri_line(T, "stdout", b"A1 ", partial=True),  # 0: stdout sequence starts
        cri_line(T, "stderr", b"E1"),  # 1: delivered before the cut
        cri_line(T, "stdout", b"A2"),  # 2: stdout sequence completes after the cut
        cri_line(T, "stderr", b"E2"),
    ]
    data = b"".join(lines)
    cut = len(lines[0]) + len(lines[1])
    first, _, assembler = run(data[:cut])
    assert first == [("stderr", "E1", len(lines[0]))]
    assert (assembler.resume_offset(), assembler.delivered_offset()) == (0, cut)
    # a restart reads again from `resume` and skips what completed by `delivered`
    again = Assembler(SOURCE, 1 << 20, delivered=0, replay_until=cut)
    records, _, _ = run(data, assembler=again)
    assert records == [("stdout", "A1 A2", 0), ("stderr", "E2", cut + len(lines[2]))]


# ---------------------------------------------------------------------------------- property: any batching


@dataclass(frozen=True)
class Message:
    stream: str
    chunks: tuple[bytes, ...]


messages = st.lists(
    st.builds(
        Message,
        st.sampled_from(["stdout", "stderr"]),
        st.lists(st.binary(min_size=0, max_size=12).map(lambda b: b.replace(b"\n", b"")), min_size=1, max_size=4).map(
            tuple
        ),
    ),
    min_size=1,
    max_size=25,
)


def render(msgs: list[Message], interleave: list[int]) -> tuple[bytes, list[tuple[str, str]]]:
    """Writes messages with their chunks interleaved across streams as a runtime may; returns the file and the
    messages in completion order."""
    queues = {"stdout": [m for m in msgs if m.stream == "stdout"], "stderr": [m for m in msgs if m.stream == "stderr"]}
    cursor = {"stdout": 0, "stderr": 0}
    out, done, picks = [], [], iter(interleave)
    while queues["stdout"] or queues["stderr"]:
        live = [s for s in ("stdout", "stderr") if queues[s]]
        stream = live[next(picks, 0) % len(live)]
        message = queues[stream][0]
        i = cursor[stream]
        last = i == len(message.chunks) - 1
        out.append(cri_line(T + len(out), stream, message.chunks[i], partial=not last))
        if last:
            queues[stream].pop(0)
            cursor[stream] = 0
            done.append((stream, b"".join(message.chunks).decode("utf-8", "replace")))
        else:
            cursor[stream] = i + 1
    return b"".join(out), done


@settings(deadline=None)  # examples: the profile (tests/conftest.py)
@given(messages, st.lists(st.integers(0, 1), max_size=200), st.integers(1, 7), st.data())
def test_committing_after_any_batch_and_restarting_delivers_each_message_once(
    msgs: list[Message], interleave: list[int], batch_lines: int, data: st.DataObject
) -> None:
    file, expected = render(msgs, interleave)
    lines = file.split(b"\n")[:-1]
    assembler = Assembler(SOURCE, 1 << 20)
    got: list[tuple[str, str]] = []
    index, offset = 0, 0
    while index < len(lines):
        sink = Sink(batch_lines, UNLIMITED)
        index, offset = assembler.feed(lines, index, offset, 1 << 21, sink)
        got += [(r.stream, r.body) for r in sink.records]
        if data.draw(st.booleans(), label="restart here"):
            # commit this batch, crash, restart from the checkpoint
            resume, delivered = assembler.resume_offset(), assembler.delivered_offset()
            assembler = Assembler(SOURCE, 1 << 20, delivered=resume, replay_until=delivered)
            rest = file[resume:].split(b"\n")[:-1]
            lines, index, offset = lines[: len(lines) - len(rest)] + rest, len(lines) - len(rest), resume
    assert got == expected
