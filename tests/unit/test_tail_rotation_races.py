"""Rotations that land in the tail's blind spots, driven step by step instead of by sleeping and hoping.

The kubelet rotates a container log in two steps: it renames `0.log` to `0.log.<timestamp>`, then asks the
runtime to reopen, which creates a new `0.log`; between the two the runtime still writes to the renamed file.
The Tailer finds files by globbing and stat'ing, then opens them, and notices a rename only at its next scan.
Each test puts one rotation step exactly where the tailer looks away and checks that no line is lost:

- between the scan's stat of a file and its open (at the first scan of a restarted tail, where the file's
  checkpoint is at stake, and at a later scan, where a new file is);
- between the rename and the reopen, for longer than `rotate_wait` (a stalled runtime or a loaded node).

Time is a fake clock the test advances; timeouts are guards against hanging only.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import collectors.tail.tailer as tailer_module
from collectors.tail.follower import Follower
from collectors.tail.tailer import Tailer
from tests.unit.test_tail_tailer import UID_A, UID_B, Reader, append, config, numbered, pod_file, read_then_stop

ROTATED = ".20260101-100001"


def bodies_of(lines: list[tuple[str, str, str]], pod: str) -> list[str]:
    return [body for got_pod, _, body in lines if got_pod == pod]


async def lines_until(reader: Reader, last: str) -> list[tuple[str, str, str]]:
    """Lines (committed batch by batch) until `last` has arrived; what came before it is what the test judges."""
    got: list[tuple[str, str, str]] = []
    while last not in (body for _, _, body in got):
        got += await reader.lines(1)
    return got


def rotate_before_open(
    monkeypatch: pytest.MonkeyPatch, path: Path, rotation: Callable[[], None], *, key: tuple[int, int] | None = None
) -> list[str]:
    """Runs `rotation` once, right before the tailer opens `path` (after its scan stat'ed it), optionally only
    when the file it means to open is `key`. Returns the paths opened, for the test to check it happened."""
    original = Follower.open
    opened: list[str] = []

    def racing_open(cls: type[Follower], at: str, file_key: tuple[int, int], *args: Any, **kwargs: Any) -> Any:
        if at == str(path) and not opened and (key is None or file_key == key):
            opened.append(at)
            rotation()
        return original.__func__(cls, at, file_key, *args, **kwargs)  # type: ignore[attr-defined]

    monkeypatch.setattr(Follower, "open", classmethod(racing_open))
    return opened


def kubelet_rotation(path: Path, late: bytes, fresh: bytes) -> Callable[[], None]:
    """Rename, a late write to the renamed file, a new file at the old name."""

    def rotation() -> None:
        os.rename(path, str(path) + ROTATED)
        append(Path(str(path) + ROTATED), late)
        append(path, fresh)

    return rotation


class FakeClock:
    """Stands in for the `time` module inside tailer.py, so `rotate_wait` passes when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def time_ns(self) -> int:
        """The wall clock stays real: the tail compares it with files' modification times."""
        return time.time_ns()


async def test_a_checkpointed_file_rotated_between_the_first_scan_and_its_open_is_finished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The restart over a checkpoint while the writer rotates: the new tail's first scan stats `0.log` (the
    checkpointed file), the kubelet rotates it, then the tail opens `0.log` and finds another file. The
    checkpointed file's rest must still be read, from its checkpoint, before the new file."""
    path = pod_file(tmp_path, "ns", "pod", UID_A, "c")
    append(path, numbered("x", 0, 4))
    cfg = config(tmp_path)
    await read_then_stop(cfg, 4)
    append(path, numbered("x", 4, 2))  # written while the tail is down, after its checkpoint
    opened = rotate_before_open(monkeypatch, path, kubelet_rotation(path, numbered("x", 6, 1), numbered("x", 7, 2)))
    reader = Reader(Tailer(cfg))
    try:
        got = await lines_until(reader, "x 8")
    finally:
        await reader.close()
    assert opened == [str(path)]
    assert bodies_of(got, "pod") == [f"x {i}" for i in range(4, 9)]


async def test_a_new_file_rotated_between_a_scan_and_its_open_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same race for a file the running tail sees for the first time: it is not lost with its lines."""
    path = pod_file(tmp_path, "ns", "pod", UID_A, "c")
    append(path, numbered("a", 0, 2))
    reader = Reader(Tailer(config(tmp_path)))
    try:
        assert len(await reader.lines(2)) == 2
        os.rename(path, str(path) + ".20260101-100000")
        append(path, numbered("b", 0, 2))  # the next file, which the next scan stats and then opens
        second = (path.stat().st_dev, path.stat().st_ino)
        opened = rotate_before_open(
            monkeypatch, path, kubelet_rotation(path, numbered("b", 2, 1), numbered("c", 0, 1)), key=second
        )
        got = await lines_until(reader, "c 0")
    finally:
        await reader.close()
    assert opened == [str(path)]
    assert bodies_of(got, "pod") == ["b 0", "b 1", "b 2", "c 0"]


@pytest.mark.parametrize("restart", [False, True], ids=["running", "restarted-in-between"])
async def test_late_writes_to_a_renamed_file_count_until_the_runtime_reopens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restart: bool
) -> None:
    """The kubelet renamed the file and the runtime has not reopened yet, for much longer than `rotate_wait`
    (a loaded node), perhaps while the tail restarted: the renamed file is still the one the runtime writes to,
    so it is not released; its late lines come, then the new file's. Once the new file is there, the old one is
    released as before."""
    clock = FakeClock()
    monkeypatch.setattr(tailer_module, "time", clock)
    path = pod_file(tmp_path, "ns", "pod", UID_A, "c")
    other = pod_file(tmp_path, "ns", "other", UID_B, "c")  # keeps batches coming while the pod is silent
    append(path, numbered("x", 0, 2))
    reader = Reader(Tailer(config(tmp_path)))
    try:
        assert len(await reader.lines(2)) == 2
        os.rename(path, str(path) + ROTATED)
        if restart:
            await reader.close()
            reader = Reader(Tailer(config(tmp_path)))
        await pass_time(reader, clock, other, range(10))  # scans, rotate_wait 20 times over, commits
        append(Path(str(path) + ROTATED), numbered("x", 2, 1))  # the runtime's late write
        append(path, numbered("x", 3, 1))  # it reopens
        clock.now += 1.0
        got = await lines_until(reader, "x 3")
        assert bodies_of(got, "pod") == ["x 2", "x 3"]
        assert reader.tailer.stats.files_closed == 0
        await pass_time(reader, clock, other, range(10, 20))
        assert reader.tailer.stats.files_closed == 1
    finally:
        await reader.close()


async def pass_time(reader: Reader, clock: FakeClock, other: Path, numbers: range) -> None:
    """A second per batch, each batch a line of `other` (committed): the tail scans and may retire files."""
    for i in numbers:
        clock.now += 1.0
        append(other, numbered("o", i, 1))
        await lines_until(reader, f"o {i}")


async def test_a_deleted_file_is_released_after_rotate_wait_without_a_successor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deleted file (its pod is gone) will get no successor: it is released after `rotate_wait` anyway."""
    clock = FakeClock()
    monkeypatch.setattr(tailer_module, "time", clock)
    path = pod_file(tmp_path, "ns", "pod", UID_A, "c")
    other = pod_file(tmp_path, "ns", "other", UID_B, "c")
    append(path, numbered("x", 0, 2))
    reader = Reader(Tailer(config(tmp_path)))
    try:
        assert len(await reader.lines(2)) == 2
        os.unlink(path)
        await pass_time(reader, clock, other, range(10))
        assert reader.tailer.stats.files_closed == 1
    finally:
        await reader.close()
