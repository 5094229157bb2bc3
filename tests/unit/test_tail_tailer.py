"""The Tailer over real files written by the test itself, step by step (the writer-process tests, with
concurrent writes, are in tests/integration/test_tail_writer.py): identity, checkpoints and restarts at every
batch boundary, rotation, copytruncate, overlong lines, exclusions and backpressure.

Timeouts are guards against hanging, never assertions about speed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from collectors.tail.checkpoint import encode_checkpoint
from collectors.tail.formats import (
    BAD_STREAM,
    BAD_TIMESTAMP,
    INVALID_UTF8,
    MALFORMED,
    TRUNCATED,
    TRUNCATION_MARKER,
    cri_line,
    docker_line,
)
from collectors.tail.model import TailBatch
from collectors.tail.paths import PodContainer
from collectors.tail.tailer import TailConfig, Tailer

UID_A = "11111111-1111-1111-1111-111111111111"
UID_B = "22222222-2222-2222-2222-222222222222"
T = 1_767_261_601_000_000_000
GUARD = 30.0


def pod_file(root: Path, namespace: str, pod: str, uid: str, container: str, n: int = 0) -> Path:
    path = root / f"var/log/pods/{namespace}_{pod}_{uid}/{container}/{n}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as out:
        out.write(data)


def numbered(prefix: str, start: int, count: int, stream: str = "stdout") -> bytes:
    return b"".join(cri_line(T + i, stream, f"{prefix} {i}".encode()) for i in range(start, start + count))


def config(root: Path, **overrides: object) -> TailConfig:
    values: dict[str, object] = dict(
        checkpoint_path=root / "state/checkpoint.json",
        globs=(str(root / "var/log/pods/*/*/*.log"),),
        refresh_interval=0.02,
        poll_interval=0.005,
        rotate_wait=0.05,
    )
    values.update(overrides)
    return TailConfig(**values)  # type: ignore[arg-type]


class Reader:
    """Pulls batches from a tailer on demand; commits only when told to."""

    def __init__(self, tailer: Tailer) -> None:
        self.tailer = tailer
        self._batches: AsyncIterator[TailBatch] = tailer.batches()

    async def next(self) -> TailBatch:
        return await asyncio.wait_for(anext(self._batches), GUARD)

    async def until(self, done: Callable[[list[TailBatch]], bool], *, commit: bool = True) -> list[TailBatch]:
        got: list[TailBatch] = []
        while not done(got):
            batch = await self.next()
            got.append(batch)
            if commit:
                await self.tailer.commit(batch.checkpoint)
        return got

    async def lines(self, count: int, *, commit: bool = True) -> list[tuple[str, str, str]]:
        batches = await self.until(lambda got: sum(len(b.records) for b in got) >= count, commit=commit)
        return bodies(batches)

    async def close(self) -> None:
        with contextlib.suppress(RuntimeError):
            await self._batches.aclose()  # type: ignore[attr-defined]
        self.tailer.close()


async def read_then_stop(cfg: TailConfig, count: int) -> None:
    """A tail that reads and commits `count` lines, then stops: what a restart resumes from."""
    reader = Reader(Tailer(cfg))
    try:
        assert len(await reader.lines(count)) == count
    finally:
        await reader.close()


def bodies(batches: list[TailBatch]) -> list[tuple[str, str, str]]:
    return [(r.pod, r.stream, r.body) for b in batches for r in b.records]


def counts(batches: list[TailBatch], field: str) -> dict[str, int]:
    total: dict[str, int] = {}
    for batch in batches:
        for reason, count in getattr(batch, field).items():
            total[reason] = total.get(reason, 0) + count
    return total


async def test_lines_arrive_with_the_pod_identity_from_the_path(tmp_path: Path) -> None:
    a = pod_file(tmp_path, "dp-acme-prod", "cart-1", UID_A, "main")
    b = pod_file(tmp_path, "dp-acme-prod", "payments-1", UID_B, "sidecar")
    append(a, numbered("a", 0, 3))
    append(b, numbered("b", 0, 2, "stderr"))
    reader = Reader(Tailer(config(tmp_path)))
    try:
        batches = await reader.until(lambda got: sum(len(x.records) for x in got) >= 5)
        records = [r for x in batches for r in x.records]
        by_pod = {r.source for r in records}
        assert by_pod == {
            PodContainer("dp-acme-prod", "cart-1", UID_A, "main", 0),
            PodContainer("dp-acme-prod", "payments-1", UID_B, "sidecar", 0),
        }
        assert [r.body for r in records if r.pod == "cart-1"] == ["a 0", "a 1", "a 2"]
        assert [(r.stream, r.body) for r in records if r.pod == "payments-1"] == [("stderr", "b 0"), ("stderr", "b 1")]
        assert [r.ts_ns for r in records if r.pod == "cart-1"] == [T, T + 1, T + 2]
    finally:
        await reader.close()


def interleaved_file() -> tuple[bytes, list[tuple[str, str]]]:
    """stdout messages in 1-4 chunks with stderr lines between the chunks, plus garbage and an overlong line,
    so that batch boundaries fall inside unfinished sequences with delivered lines after their start."""
    out: list[bytes] = []
    expected: list[tuple[str, str]] = []
    for i in range(40):
        chunks = [f"m{i}-{k} ".encode() for k in range(i % 4 + 1)]
        for k, chunk in enumerate(chunks):
            last = k == len(chunks) - 1
            out.append(cri_line(T + i, "stdout", chunk, partial=not last))
            if not last:
                out.append(cri_line(T + i, "stderr", f"e{i}-{k}".encode()))
                expected.append(("stderr", f"e{i}-{k}"))
        expected.append(("stdout", b"".join(chunks).decode()))
        if i % 9 == 4:
            out.append(b"\xde\xad garbage \xbe\xef\n")
        if i % 13 == 6:
            out.append(cri_line(T + i, "stderr", b"L" * 300))
            expected.append(("stderr", "L" * 200 + TRUNCATION_MARKER))
    return b"".join(out), expected


async def test_restart_after_committing_any_number_of_batches_loses_and_repeats_nothing(tmp_path: Path) -> None:
    data, expected = interleaved_file()
    total_batches = None
    cut = 0
    while total_batches is None or cut <= total_batches:
        root = tmp_path / f"cut{cut}"
        path = pod_file(root, "ns", "pod", UID_A, "c")
        path.write_bytes(data)
        cfg = config(root, max_lines=3, max_line_bytes=200)
        first = Reader(Tailer(cfg))
        committed: list[TailBatch] = []
        uncommitted: list[TailBatch] = []
        try:
            while len(committed) < cut and sum(len(b.records) for b in committed) < len(expected):
                batch = await first.next()
                await first.tailer.commit(batch.checkpoint)
                committed.append(batch)
            if sum(len(b.records) for b in committed) < len(expected):
                uncommitted.append(await first.next())  # delivered, never committed: may come again
        finally:
            await first.close()
        second = Reader(Tailer(cfg))
        try:
            already = sum(len(b.records) for b in committed)
            rest = await second.until(
                lambda got, already=already: already + sum(len(b.records) for b in got) >= len(expected)
            )
        finally:
            await second.close()
        got = [(stream, body) for _, stream, body in bodies(committed + rest)]
        assert got == expected, f"after {cut} committed batches"
        # what was delivered but not committed comes again, identical
        assert bodies(uncommitted) == bodies(rest)[: len(bodies(uncommitted))]
        assert counts(committed + rest, "rejected") == {BAD_STREAM: 4}  # i = 4, 13, 22, 31
        assert counts(committed + rest, "repaired") == {TRUNCATED: 3}  # i = 6, 19, 32
        if total_batches is None:
            total_batches = len(committed + rest)
        cut += 1
    assert total_batches > 10


async def test_rotation_finishes_the_old_file_first_then_reads_the_new_one(tmp_path: Path) -> None:
    path = pod_file(tmp_path, "ns", "pod", UID_A, "c")
    append(path, numbered("x", 0, 5))
    reader = Reader(Tailer(config(tmp_path)))
    try:
        assert [b for _, _, b in await reader.lines(5)] == [f"x {i}" for i in range(5)]
        # the runtime writes on, and a P sequence is unfinished at the rename
        append(path, numbered("x", 5, 3) + cri_line(T, "stdout", b"split ", partial=True))
        os.rename(path, str(path) + ".20260101-100001")
        # the runtime still writes to the renamed file until it reopens (kubelet's ReopenContainerLog)
        with open(str(path) + ".20260101-100001", "ab") as old:
            old.write(cri_line(T, "stdout", b"end") + numbered("x", 8, 2))
        append(path, numbered("x", 10, 5))
        got = [b for _, _, b in await reader.lines(8)]
        assert got == [f"x {i}" for i in range(5, 8)] + ["split end"] + [f"x {i}" for i in range(8, 15)]
        # the rotated file is closed once drained, waited for, and committed; lines keep flowing meanwhile
        i = 15
        while reader.tailer.stats.files_closed == 0:
            assert i < 10_000, "the rotated file was never released"
            append(path, numbered("x", i, 1))
            assert [b for _, _, b in await reader.lines(1)] == [f"x {i}"]
            i += 1
    finally:
        await reader.close()
    saved = json.loads((tmp_path / "state/checkpoint.json").read_text())
    assert [f["path"] for f in saved["files"]] == [str(path)]


async def test_a_sequence_cut_by_rotation_is_flushed_when_the_old_file_is_released(tmp_path: Path) -> None:
    """The runtime reopened between a P and its F: the old file ends unfinished. After `rotate_wait` its
    chunks become a message of their own, before the new file's lines (Fluent Bit does the same)."""
    path = pod_file(tmp_path, "ns", "pod", UID_A, "c")
    append(path, numbered("x", 0, 1) + cri_line(T, "stdout", b"cut ", partial=True) + b"2026-01-01T10:00:01Z std")
    reader = Reader(Tailer(config(tmp_path)))
    try:
        assert [b for _, _, b in await reader.lines(1)] == ["x 0"]
        os.rename(path, str(path) + ".20260101-100001")
        append(path, cri_line(T, "stdout", b"short"))
        got = [(s, b) for _, s, b in await reader.lines(2)]
        assert got == [("stdout", "cut "), ("stdout", "short")]
        assert reader.tailer.stats.rejected == {MALFORMED: 1}  # the torn last line of the old file
    finally:
        await reader.close()


async def test_a_restarted_container_is_read_after_its_previous_instance(tmp_path: Path) -> None:
    old = pod_file(tmp_path, "ns", "pod", UID_A, "c", 0)
    new = pod_file(tmp_path, "ns", "pod", UID_A, "c", 1)
    append(new, numbered("new", 0, 3))
    append(old, numbered("old", 0, 3))
    reader = Reader(Tailer(config(tmp_path, max_lines=2)))
    try:
        got = [b for _, _, b in await reader.lines(6)]
        assert got == ["old 0", "old 1", "old 2", "new 0", "new 1", "new 2"]
    finally:
        await reader.close()


@pytest.mark.parametrize("rewrite", ["shorter", "longer"])
async def test_copytruncate_starts_over_at_zero(tmp_path: Path, rewrite: str) -> None:
    """Shorter: the size shows it. Longer: the file grew past the old offset before the next poll, and only
    its changed first bytes show it."""
    path = pod_file(tmp_path, "ns", "pod", UID_A, "c")
    append(path, numbered("before", 0, 20))
    reader = Reader(Tailer(config(tmp_path)))
    try:
        assert len(await reader.lines(20)) == 20
        after = numbered("after", 100, 3 if rewrite == "shorter" else 40)
        with open(path, "r+b") as out:  # logrotate's copytruncate: same inode, cut to 0, written again
            out.truncate(0)
            out.write(after)
        got = [b for _, _, b in await reader.lines(3 if rewrite == "shorter" else 40)]
        assert got == [f"after {i}" for i in range(100, 100 + len(got))]
        assert reader.tailer.stats.truncations == 1
    finally:
        await reader.close()


async def test_a_huge_line_arriving_in_pieces_is_cut_and_later_lines_flow(tmp_path: Path) -> None:
    """Default 1 MiB limit; the line has no newline for a while, so the cut happens on the incomplete line."""
    path = pod_file(tmp_path, "ns", "pod", UID_A, "c")
    append(path, numbered("x", 0, 1))
    head = b"2026-01-01T10:00:01Z stdout F "
    append(path, head + b"y" * (700 << 10))
    reader = Reader(Tailer(config(tmp_path, read_chunk=64 << 10)))
    try:
        assert [b for _, _, b in await reader.lines(1)] == ["x 0"]
        append(path, b"y" * (3 << 20))  # now past the limit, still no newline
        batches = await reader.until(lambda got: sum(len(b.records) for b in got) >= 1)
        (huge,) = [r.body for b in batches for r in b.records]
        assert huge == "y" * (1 << 20) + TRUNCATION_MARKER
        append(path, b"y" * 1000 + b"\n" + numbered("x", 1, 2))
        assert [b for _, _, b in await reader.lines(2)] == ["x 1", "x 2"]
        assert reader.tailer.stats.repaired == {TRUNCATED: 1}
    finally:
        await reader.close()


async def test_garbage_invalid_utf8_and_bad_times_are_counted_and_good_lines_still_arrive(tmp_path: Path) -> None:
    path = pod_file(tmp_path, "ns", "pod", UID_A, "c")
    append(
        path,
        numbered("x", 0, 1)
        + bytes(range(256)).replace(b"\n", b"")
        + b"\n"
        + b"2026-01-01T10:00:99Z stdout F bad second\n"
        + cri_line(T, "stdout", b"caf\xe9")
        + numbered("x", 1, 1),
    )
    reader = Reader(Tailer(config(tmp_path)))
    try:
        batches = await reader.until(lambda got: sum(len(b.records) for b in got) >= 3)
        assert [b for _, _, b in bodies(batches)] == ["x 0", "caf\ufffd", "x 1"]
        assert counts(batches, "rejected") == {MALFORMED: 1, BAD_TIMESTAMP: 1}
        assert counts(batches, "repaired") == {INVALID_UTF8: 1}
    finally:
        await reader.close()


async def test_docker_json_files_are_read_too(tmp_path: Path) -> None:
    path = pod_file(tmp_path, "ns", "pod", UID_A, "c")
    append(
        path,
        docker_line(T, "stdout", "hello ", partial=True)
        + docker_line(T, "stdout", "world")
        + docker_line(T, "stderr", "oops"),
    )
    reader = Reader(Tailer(config(tmp_path)))
    try:
        assert await reader.lines(2) == [("pod", "stdout", "hello world"), ("pod", "stderr", "oops")]
    finally:
        await reader.close()


async def test_argo_helper_containers_and_excluded_paths_are_not_read(tmp_path: Path) -> None:
    for container in ("init", "wait", "main"):
        append(pod_file(tmp_path, "workflows-acme", "build-1-step-9", UID_A, container), numbered(container, 0, 1))
    append(pod_file(tmp_path, "logging", "fluent-bit-x", UID_B, "fluent-bit"), numbered("fb", 0, 1))
    reader = Reader(Tailer(config(tmp_path, exclude_paths=("*/logging_fluent-bit-*",))))
    try:
        assert await reader.lines(1) == [("build-1-step-9", "stdout", "main 0")]
        await asyncio.sleep(0.1)
        assert reader.tailer.stats.files_opened == 1
    finally:
        await reader.close()


async def test_containers_symlinks_and_pods_files_are_one_file(tmp_path: Path) -> None:
    path = pod_file(tmp_path, "ns", "pod", UID_A, "c")
    append(path, numbered("x", 0, 2))
    link = tmp_path / f"var/log/containers/pod_ns_c-{'a' * 64}.log"
    link.parent.mkdir(parents=True)
    os.symlink(path, link)
    cfg = config(tmp_path, globs=(str(tmp_path / "var/log/containers/*.log"), str(tmp_path / "var/log/pods/*/*/*.log")))
    reader = Reader(Tailer(cfg))
    try:
        batches = await reader.until(lambda got: sum(len(b.records) for b in got) >= 2)
        assert [r.source for b in batches for r in b.records] == [PodContainer("ns", "pod", UID_A, "c", 0)] * 2
        await asyncio.sleep(0.1)
        assert reader.tailer.stats.files_opened == 1
    finally:
        await reader.close()


async def test_a_file_rotated_while_the_tail_was_down_is_finished_from_its_checkpoint(tmp_path: Path) -> None:
    path = pod_file(tmp_path, "ns", "pod", UID_A, "c")
    append(path, numbered("x", 0, 4))
    cfg = config(tmp_path)
    await read_then_stop(cfg, 4)
    append(path, numbered("x", 4, 2))
    os.rename(path, str(path) + ".20260101-100001")
    append(path, numbered("x", 6, 2))
    reader = Reader(Tailer(cfg))
    try:
        assert [b for _, _, b in await reader.lines(4)] == [f"x {i}" for i in range(4, 8)]
    finally:
        await reader.close()


async def test_a_slow_consumer_holds_reading_back(tmp_path: Path) -> None:
    path = pod_file(tmp_path, "ns", "pod", UID_A, "c")
    append(path, numbered("x", 0, 1000))
    reader = Reader(Tailer(config(tmp_path, max_lines=10)))
    try:
        await reader.next()
        await asyncio.sleep(0.2)  # the consumer is busy; nothing more is parsed meanwhile
        assert reader.tailer.stats.records == 10
        await reader.next()
        assert reader.tailer.stats.records == 20
    finally:
        await reader.close()


async def test_batch_limits_and_old_checkpoints(tmp_path: Path) -> None:
    path = pod_file(tmp_path, "ns", "pod", UID_A, "c")
    append(path, numbered("x", 0, 50))
    cfg = config(tmp_path, max_lines=7, max_bytes=1 << 20)
    reader = Reader(Tailer(cfg))
    try:
        first, second = await reader.next(), await reader.next()
        assert len(first.records) == len(second.records) == 7
        await reader.tailer.commit(second.checkpoint)
        await reader.tailer.commit(first.checkpoint)  # older: ignored
    finally:
        await reader.close()
    reader = Reader(Tailer(cfg))
    try:
        assert (await reader.next()).records[0].body == "x 14"
    finally:
        await reader.close()
    reader = Reader(Tailer(config(tmp_path, max_lines=1000, max_bytes=500)))
    try:
        batch = await reader.next()
        assert 1 <= len(batch.records) <= 500 // len(cri_line(T, "stdout", b"x 14")) + 1
    finally:
        await reader.close()


async def test_checkpoint_seqs_keep_counting_across_restarts(tmp_path: Path) -> None:
    """So a checkpoint stored elsewhere (with a buffered batch) can be told older or newer than the file."""
    path = pod_file(tmp_path, "ns", "pod", UID_A, "c")
    append(path, numbered("x", 0, 20))
    cfg = config(tmp_path, max_lines=5)
    reader = Reader(Tailer(cfg))
    try:
        committed = await reader.until(lambda got: len(got) == 2)
    finally:
        await reader.close()
    reader = Reader(Tailer(cfg))
    try:
        assert (await reader.next()).checkpoint.seq > committed[-1].checkpoint.seq
    finally:
        await reader.close()


async def test_adopt_resumes_from_a_newer_checkpoint_than_the_file_and_only_from_a_newer_one(tmp_path: Path) -> None:
    path = pod_file(tmp_path, "ns", "pod", UID_A, "c")
    append(path, numbered("x", 0, 20))
    cfg = config(tmp_path, max_lines=5)
    reader = Reader(Tailer(cfg))
    try:
        first = (await reader.until(lambda got: len(got) == 1))[0]  # committed to the file
        second = await reader.next()  # stored by the consumer with its checkpoint, never committed
    finally:
        await reader.close()
    assert [r.body for r in second.records][-1] == "x 9"

    async def resumed_at(mark: bytes | None, adopted: bool) -> str:
        tailer = Tailer(cfg)
        reader = Reader(tailer)
        try:
            if mark is not None:
                assert tailer.adopt(mark) is adopted
            batch = await reader.next()
            with pytest.raises(RuntimeError):
                tailer.adopt(encode_checkpoint(second.checkpoint))  # too late: reading has begun
            return batch.records[0].body
        finally:
            await reader.close()

    assert await resumed_at(None, False) == "x 5"
    assert await resumed_at(encode_checkpoint(second.checkpoint), True) == "x 10"
    assert await resumed_at(encode_checkpoint(first.checkpoint), False) == "x 5"  # not newer than the file
    assert await resumed_at(b"{torn", False) == "x 5"


async def test_an_unreadable_checkpoint_is_set_aside(tmp_path: Path) -> None:
    path = pod_file(tmp_path, "ns", "pod", UID_A, "c")
    append(path, numbered("x", 0, 2))
    state = tmp_path / "state"
    state.mkdir()
    (state / "checkpoint.json").write_text("{torn")
    reader = Reader(Tailer(config(tmp_path)))
    try:
        assert len(await reader.lines(2)) == 2
    finally:
        await reader.close()
    assert (state / "checkpoint.json.corrupt").read_text() == "{torn"
    assert json.loads((state / "checkpoint.json").read_text())["version"] == 1
