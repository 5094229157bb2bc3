"""Files the kubelet created and rotated away between two scans of the tail. Scans happen only as the consumer
pulls, so a consumer that stalls (a slow disk under its commits) lets several rotations pass unseen; CI once lost
a whole file that way. Here the test itself stops pulling while it writes and rotates, so no scan sees the file
in between, every run."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from collectors.tail.checkpoint import decode_checkpoint, encode_checkpoint
from collectors.tail.model import Checkpoint, FilePosition
from collectors.tail.tailer import Tailer
from tests.unit.test_tail_tailer import UID_A, UID_B, Reader, append, config, numbered, pod_file


def rotate(path: Path, suffix: str) -> Path:
    """The kubelet's rotation: rename; the runtime reopens a new file at the old name on its next write."""
    rotated = Path(str(path) + suffix)
    os.rename(path, rotated)
    return rotated


async def test_files_rotated_away_between_two_scans_are_read_in_order_and_once(tmp_path: Path) -> None:
    path = pod_file(tmp_path, "ns", "pod", UID_A, "c")
    append(path, numbered("x", 0, 5))
    reader = Reader(Tailer(config(tmp_path, max_lines=3)))
    try:
        assert [b for _, _, b in await reader.lines(5)] == [f"x {i}" for i in range(5)]
        # not pulling: no scan happens while the runtime fills and rotates two files
        append(path, numbered("x", 5, 2))
        rotate(path, ".20260101-100001")
        append(path, numbered("x", 7, 3))
        second = rotate(path, ".20260101-100002")
        append(second, numbered("x", 10, 1))  # a late write to it, before the runtime reopens
        append(path, numbered("x", 11, 4))
        third = rotate(path, ".20260101-100003")
        append(path, numbered("x", 15, 2))
        # the kubelet compressing an older rotated file meanwhile: neither its work file nor its result is CRI
        append(Path(str(path) + ".20260101-100000.tmp"), b"\x1f\x8b partial")
        append(Path(str(path) + ".20260101-100000.gz"), b"\x1f\x8b done")
        got = [b for _, _, b in await reader.lines(12)]
        assert got == [f"x {i}" for i in range(5, 17)]
        assert reader.tailer.stats.files_opened == 4
        # once the missed files are released, the next rotation does not read them again
        while reader.tailer.stats.files_closed < 3:
            append(path, numbered("tick", 0, 1))
            assert [b for _, _, b in await reader.lines(1)] == ["tick 0"]
        rotate(path, ".20260101-100004")
        append(path, numbered("x", 17, 2))
        assert [b for _, _, b in await reader.lines(2)] == ["x 17", "x 18"]
        assert reader.tailer.stats.files_opened == 5
        assert third.exists()
    finally:
        await reader.close()


async def test_a_new_pods_first_file_rotated_before_any_scan_is_read(tmp_path: Path) -> None:
    seen = pod_file(tmp_path, "ns", "a", UID_A, "c")
    append(seen, numbered("a", 0, 1))
    reader = Reader(Tailer(config(tmp_path)))
    try:
        assert [b for _, _, b in await reader.lines(1)] == ["a 0"]
        path = pod_file(tmp_path, "ns", "b", UID_B, "c")
        append(path, numbered("b", 0, 3))
        rotate(path, ".20260101-100001")
        append(path, numbered("b", 3, 2))
        assert [b for _, _, b in await reader.lines(5)] == [f"b {i}" for i in range(5)]
    finally:
        await reader.close()


async def test_a_missed_file_is_resumed_after_a_restart(tmp_path: Path) -> None:
    """The checkpoint names a missed file by the path it was written under, where a restart looks for it."""
    path = pod_file(tmp_path, "ns", "pod", UID_A, "c")
    append(path, numbered("x", 0, 1))
    cfg = config(tmp_path, max_lines=2)
    reader = Reader(Tailer(cfg))
    try:
        assert [b for _, _, b in await reader.lines(1)] == ["x 0"]
        rotate(path, ".20260101-100001")
        append(path, numbered("x", 1, 6))
        rotate(path, ".20260101-100002")
        append(path, numbered("x", 7, 2))
        assert [b for _, _, b in await reader.lines(2)] == ["x 1", "x 2"]  # committed, mid-way through it
    finally:
        await reader.close()
    saved = json.loads((tmp_path / "state/checkpoint.json").read_text())
    assert {f["path"] for f in saved["files"]} == {str(path)}
    reader = Reader(Tailer(cfg))
    try:
        assert [b for _, _, b in await reader.lines(6)] == [f"x {i}" for i in range(3, 9)]
    finally:
        await reader.close()


async def test_a_copy_set_aside_by_copytruncate_is_not_read_again(tmp_path: Path) -> None:
    """logrotate's copytruncate leaves `<path>.1`, a copy of lines already read. A later new file at the path
    (the old one deleted, not renamed) is not a rotation, and the copy is not a missed file."""
    path = pod_file(tmp_path, "ns", "pod", UID_A, "c")
    append(path, numbered("x", 0, 3))
    reader = Reader(Tailer(config(tmp_path)))
    try:
        assert len(await reader.lines(3)) == 3
        shutil.copyfile(path, str(path) + ".1")
        os.truncate(path, 0)
        append(path, numbered("y", 0, 2))
        assert [b for _, _, b in await reader.lines(2)] == ["y 0", "y 1"]
        os.unlink(path)
        append(path, numbered("z", 0, 2))
        assert [b for _, _, b in await reader.lines(2)] == ["z 0", "z 1"]
        append(path, numbered("z", 2, 1))
        assert [b for _, _, b in await reader.lines(1)] == ["z 2"]
    finally:
        await reader.close()


async def test_files_rotated_away_while_the_tail_was_down_are_read_after_the_checkpointed_one(tmp_path: Path) -> None:
    """Down, the tail scans nothing: the file it had checkpointed and the next one are rotated away, and a third
    is being written; a new pod's first file is rotated away too. The checkpoint records when its last scan was,
    so the restarted tail knows those were written after it, and reads every file in order; a file it had
    released before is not read again."""
    path = pod_file(tmp_path, "ns", "pod", UID_A, "c")
    append(path, numbered("x", 0, 2))
    cfg = config(tmp_path)
    reader = Reader(Tailer(cfg))
    try:
        assert [b for _, _, b in await reader.lines(2)] == ["x 0", "x 1"]
        rotate(path, ".20260101-100001")
        append(path, numbered("x", 2, 2))
        assert [b for _, _, b in await reader.lines(2)] == ["x 2", "x 3"]
        while reader.tailer.stats.files_closed < 1:  # the first file is released
            append(path, numbered("tick", 0, 1))
            assert [b for _, _, b in await reader.lines(1)] == ["tick 0"]
        append(path, numbered("x", 4, 1))
        assert [b for _, _, b in await reader.lines(1)] == ["x 4"]
    finally:
        await reader.close()
    saved = json.loads((tmp_path / "state/checkpoint.json").read_text())
    assert saved["scanned_ns"] > 0
    append(path, numbered("x", 5, 1))  # written, not yet read
    rotate(path, ".20260101-100002")
    append(path, numbered("x", 6, 3))
    rotate(path, ".20260101-100003")
    append(path, numbered("x", 9, 2))
    born = pod_file(tmp_path, "ns", "born", UID_B, "c")  # a pod started meanwhile, its first file rotated already
    append(born, numbered("b", 0, 3))
    rotate(born, ".20260101-100004")
    append(born, numbered("b", 3, 2))
    reader = Reader(Tailer(cfg))
    try:
        got = await reader.lines(11)
        assert [b for pod, _, b in got if pod == "pod"] == [f"x {i}" for i in range(5, 11)]
        assert [b for pod, _, b in got if pod == "born"] == [f"b {i}" for i in range(5)]
        assert reader.tailer.stats.files_opened == 3 + 2
        append(path, numbered("x", 11, 1))
        assert [b for _, _, b in await reader.lines(1)] == ["x 11"]
    finally:
        await reader.close()


def test_a_checkpoint_keeps_its_scan_time_and_one_written_before_it_existed_reads_as_none() -> None:
    checkpoint = Checkpoint(7, (FilePosition(1, 2, "/p/0.log", 10, 12, b"head"),), 1_767_261_601_000_000_000)
    assert decode_checkpoint(encode_checkpoint(checkpoint)) == checkpoint
    older = b'{"version":1,"seq":3,"files":[]}'
    assert decode_checkpoint(older) == Checkpoint(3, (), 0)


async def test_rotated_files_older_than_the_tail_are_left_alone(tmp_path: Path) -> None:
    """With no checkpoint, nothing says whether a rotated file was read before (by an earlier tail whose state is
    gone): only the current files are read, from their start, and a later rotation does not change that."""
    path = pod_file(tmp_path, "ns", "pod", UID_A, "c")
    append(Path(str(path) + ".20260101-100001"), numbered("old", 0, 2))
    append(path, numbered("x", 0, 2))
    reader = Reader(Tailer(config(tmp_path)))
    try:
        assert [b for _, _, b in await reader.lines(2)] == ["x 0", "x 1"]
        rotate(path, ".20260101-100002")
        append(path, numbered("x", 2, 1))
        assert [b for _, _, b in await reader.lines(1)] == ["x 2"]
        assert reader.tailer.stats.files_opened == 2
    finally:
        await reader.close()
