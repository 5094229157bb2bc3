"""Tailed lines are stored exactly once in the embedded backend (which dedupes by batch id only) when the
collector is SIGKILLed in the worst window: after a tail batch is durable in the buffer, before the tail's
checkpoint file says so. A resumed tail that trusted its file alone would read those lines again into a new
batch, under a new id, and the embedded store would keep them twice.

The child (run as `python -m tests.integration.test_tail_exactly_once CHILD NODE MODE AT EXPECTED`) wires the
production pieces, `tail_pipeline` and `export_pipeline` over a real Tailer, DiskBuffer and EmbeddedBackend. Its
buffer kills the process with SIGKILL right after the AT-th tail append returns, before `tail_pipeline` gets to
commit: at once (`appended`), or once the exporter has stored and acknowledged that batch and its segment has been
deleted (`delivered`), so the checkpoint can only survive in the buffer's marks file. `finish` runs until
EXPECTED lines are stored and the buffer is empty, then exits normally.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import yaml

from collectors.buffer import Batch, DiskBuffer
from collectors.codec import Mark
from collectors.tail.checkpoint import CheckpointStore, decode_checkpoint
from collectors.tail.formats import cri_line
from devservers.sample import BASE_NS, CART_PROD_LABELS

ROOT = Path(__file__).resolve().parents[2]
GUARD_S = 120  # kills a child that hangs; never reached when things work
POD_NAMESPACE, POD, CONTAINER = "dp-acme-prod", "cart-7d9f-abcde", "main"
POD_UID = "0b9e4c1a-1111-4a2b-9c3d-123456789abc"
BATCH_LINES = 100  # the tail's max_lines: many batches per run


# ----------------------------------------------------------------------------------------------- the child


async def child(node: Path, mode: str, at: int, expected: int) -> None:
    from adapters.embedded.backend import EmbeddedBackend
    from collectors.enrich import Enricher, FileMetadata
    from collectors.pipeline import TAIL_PRODUCER, export_pipeline, tail_pipeline
    from collectors.tail.tailer import TailConfig, Tailer
    from collectors.telemetry import CollectorTelemetry

    def say(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    async def until(condition: Callable[[], bool | Awaitable[bool]]) -> None:
        while True:
            outcome = condition()
            if await outcome if isinstance(outcome, Awaitable) else outcome:
                return
            await asyncio.sleep(0.02)

    class KillingBuffer(DiskBuffer):
        """Dies in the window between a tail batch's append and the tail's commit."""

        tail_appends = 0

        async def append_async(self, batch: Batch, mark: Mark | None = None) -> int:
            seq = await super().append_async(batch, mark)
            if mode == "finish" or mark is None or mark[0] != TAIL_PRODUCER:
                return seq
            self.tail_appends += 1
            if self.tail_appends == at:
                if mode == "delivered":
                    await until(lambda: self.backlog == 0)  # stored downstream and acknowledged
                    await super().append_async(Batch(f"filler-{uuid.uuid4().hex}"))  # rotates: the segment goes
                    assert not (node / "buffer" / f"{seq:020d}.seg").exists(), "the batch's segment is still there"
                say(f"KILL {seq}")
                os.kill(os.getpid(), signal.SIGKILL)
            return seq

    backend = EmbeddedBackend(node / "data")
    buffer = KillingBuffer(node / "buffer", segment_bytes=1)  # a segment per batch, deleted once it is acknowledged
    telemetry = CollectorTelemetry()
    tailer = Tailer(
        TailConfig(
            checkpoint_path=node / "tail.json",
            globs=(str(node / "pods/*/*/*.log"),),
            refresh_interval=0.2,
            poll_interval=0.05,
            max_lines=BATCH_LINES,
        )
    )
    tasks = [
        asyncio.create_task(tail_pipeline(tailer, Enricher(FileMetadata(node / "pods.yaml")), buffer, telemetry)),
        asyncio.create_task(export_pipeline(buffer, backend, telemetry)),
    ]

    async def stored() -> bool:
        count = await backend.store.read(lambda conn: conn.execute("SELECT count(*) FROM logs").fetchone()[0])
        return count >= expected and buffer.backlog == 0

    try:
        await asyncio.wait_for(until(stored) if mode == "finish" else asyncio.Event().wait(), GUARD_S)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        tailer.close()
        buffer.close()
        backend.close()
    say("DONE")


# ----------------------------------------------------------------------------------------------- the parent


def make_node(tmp_path: Path) -> Path:
    (tmp_path / "pods" / f"{POD_NAMESPACE}_{POD}_{POD_UID}" / CONTAINER).mkdir(parents=True)
    (tmp_path / "pods.yaml").write_text(
        yaml.safe_dump({"pods": [{"namespace": POD_NAMESPACE, "name": POD, "labels": CART_PROD_LABELS}]})
    )
    return tmp_path


def write_lines(node: Path, first: int, count: int) -> list[str]:
    """Appends `count` messages to the container's log, every seventh split into P and F chunks; returns the
    bodies the store must end up with."""
    bodies = []
    with open(node / "pods" / f"{POD_NAMESPACE}_{POD}_{POD_UID}" / CONTAINER / "0.log", "ab") as out:
        for n in range(first, first + count):
            ts = BASE_NS + n * 1_000_000
            if n % 7 == 3:
                out.write(cri_line(ts, "stdout", f"line {n:05d} first half ".encode(), partial=True))
                out.write(cri_line(ts, "stdout", b"second half"))
                bodies.append(f"line {n:05d} first half second half")
            else:
                out.write(cri_line(ts, "stdout", f"line {n:05d} level=info".encode()))
                bodies.append(f"line {n:05d} level=info")
    return bodies


def run_child(node: Path, mode: str, at: int = 0, expected: int = 0) -> list[str]:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.integration.test_tail_exactly_once",
            "CHILD",
            str(node),
            mode,
            str(at),
            str(expected),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=GUARD_S + 30,
    )
    output = proc.stdout.splitlines()
    if mode == "finish":
        assert proc.returncode == 0 and output[-1:] == ["DONE"], proc.stderr
    else:
        assert proc.returncode == -signal.SIGKILL and output[-1:][0].startswith("KILL"), (output, proc.stderr)
    return output


def assert_killed_in_the_window(node: Path) -> None:
    """The kill left the tail's file behind the checkpoint the buffer holds: without the buffer's copy, the tail
    would read the last batch again."""
    with DiskBuffer(node / "buffer") as buffer:
        mark = buffer.mark("tail")
    assert mark is not None
    assert decode_checkpoint(mark).seq > CheckpointStore(node / "tail.json").load().seq


def stored_bodies(node: Path) -> list[str]:
    with sqlite3.connect(node / "data" / "telemetry.db") as conn:
        return [body for (body,) in conn.execute("SELECT body FROM logs")]


def assert_exactly_once(node: Path, expected: list[str]) -> None:
    stored = Counter(stored_bodies(node))
    twice = sorted(body for body, count in stored.items() if count > 1)
    assert not twice, f"{len(twice)} lines stored more than once, e.g. {twice[:3]}"
    assert set(stored) == set(expected)


def test_a_kill_right_after_an_append_stores_each_line_once(tmp_path: Path) -> None:
    node = make_node(tmp_path)
    expected = write_lines(node, 0, 1000)
    for at in (3, 1, 2):  # the first batch of a run, too: it follows a restart that resumed from the buffer
        run_child(node, "appended", at)
        assert_killed_in_the_window(node)
    expected += write_lines(node, 1000, 500)
    run_child(node, "appended", 2)
    assert_killed_in_the_window(node)
    run_child(node, "finish", expected=len(expected))
    assert_exactly_once(node, expected)


def test_a_kill_after_the_batch_was_delivered_and_its_segment_deleted_stores_each_line_once(tmp_path: Path) -> None:
    """The batch is stored and acknowledged and its segment is gone: the tail's checkpoint survives only in the
    buffer's marks file."""
    node = make_node(tmp_path)
    expected = write_lines(node, 0, 1000)
    for at in (2, 1):
        run_child(node, "delivered", at)
        assert (node / "buffer" / "marks").exists()
        assert_killed_in_the_window(node)
    run_child(node, "finish", expected=len(expected))
    assert_exactly_once(node, expected)


if __name__ == "__main__" and sys.argv[1:2] == ["CHILD"]:
    asyncio.run(child(Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])))
