"""The disk buffer across SIGKILL: a real child process appends (from several producers, with fsync) and
acknowledges as an exporter would, and is killed mid-stream, twice. Reopened, the buffer must hold every batch
whose append had returned and was not acknowledged, each exactly once and intact, and none that was acknowledged
(the documented window after a crash of the process alone is zero acks).

Run as a module, this file is the child: `python -m tests.integration.test_buffer_crash CHILD DIR RUN`. It prints
`A seq batch_id` after each append returns, `S seq batch_id` before each ack starts and `K seq batch_id` after it
returns, flushing each line, so what the parent reads is what the child knew to be done when it died. A kill
between an ack and its `K` line leaves a batch that may or may not come back (the ack may already be durable): the
`S` line tells the parent which ones those are.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from collectors.buffer import Batch, DiskBuffer
from devservers.sample import BASE_NS, identity
from domain.model import LogRecord, MetricKind, MetricPoint, SpanRecord

ROOT = Path(__file__).resolve().parents[2]
PRODUCERS = 4  # async producers in the child, plus one appending synchronously on the loop
SEGMENT_BYTES = 32 * 1024  # small, so segments rotate and are reclaimed many times during a run
GUARD_S = 120  # kills a child (or a run) that hangs; never reached when things work


def make_batch(batch_id: str) -> Batch:
    """A batch whose content follows from its id, so the parent can check what came back byte for byte."""
    n = int(batch_id.rsplit("-", 1)[1])
    who = identity(("cart", "payments", "frontend")[n % 3])
    logs = [
        LogRecord(BASE_NS + n * 1000 + i, f"{batch_id} line {i} " + "." * (n % 50), who, "INFO")
        for i in range(1 + n % 9)
    ]
    spans = (
        [
            SpanRecord(
                f"{n:032x}",
                f"{n:016x}",
                "",
                "GET /",
                "Server",
                BASE_NS,
                BASE_NS + n,
                who,
                attributes={"n": n, "even": n % 2 == 0},
            )
        ]
        if n % 4 == 0
        else []
    )
    metrics = [MetricPoint("requests", MetricKind.SUM, BASE_NS + n, who, value=float(n))] if n % 5 == 0 else []
    return Batch(batch_id, logs=logs, spans=spans, metrics=metrics)


# ----------------------------------------------------------------------------------------------- the child


async def child(directory: Path, run: int) -> None:
    buffer = DiskBuffer(directory, segment_bytes=SEGMENT_BYTES, max_bytes=64 * 1024 * 1024, fsync=True)
    counter = iter(range(10**9))

    def say(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    async def producer(sync: bool) -> None:
        while True:
            batch = make_batch(f"run{run}-{next(counter)}")
            seq = buffer.append(batch) if sync else await buffer.append_async(batch)
            say(f"A {seq} {batch.batch_id}")
            await asyncio.sleep(0)

    async def exporter() -> None:
        """Acknowledges two batches in three, so each run leaves some handed out and never acknowledged."""
        while True:
            seq, batch = await buffer.next()
            if seq % 3:
                say(f"S {seq} {batch.batch_id}")
                buffer.ack(seq)
                say(f"K {seq} {batch.batch_id}")

    tasks = [producer(sync=False) for _ in range(PRODUCERS)] + [producer(sync=True), exporter()]
    await asyncio.wait_for(asyncio.gather(*tasks), GUARD_S)


# ----------------------------------------------------------------------------------------------- the parent


@dataclass
class Seen:
    appended: dict[str, int] = field(default_factory=dict)  # batch id -> seq
    acked: dict[str, int] = field(default_factory=dict)
    acking: dict[str, int] = field(default_factory=dict)  # an ack had started (it may have finished unreported)


def run_and_kill(directory: Path, run: int, seen: Seen, appends: int) -> None:
    """Runs the child until it has reported `appends` appends and some acks, then SIGKILLs it mid-stream."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.test_buffer_crash", "CHILD", str(directory), str(run)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    guard = threading.Timer(GUARD_S, proc.kill)
    guard.start()
    try:
        appended = acked = 0
        assert proc.stdout is not None
        for line in proc.stdout:
            appended += line.startswith("A ")
            acked += line.startswith("K ")
            record(line, seen)
            if appended >= appends and acked >= appends // 4:
                break
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        for line in proc.stdout.read().splitlines(keepends=True):  # what it printed before it died
            record(line, seen)
    finally:
        guard.cancel()
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the child stopped before it was killed"


def record(line: str, seen: Seen) -> None:
    if not line.endswith("\n"):  # cut off by the kill
        return
    kind, seq, batch_id = line.split()
    {"A": seen.appended, "S": seen.acking, "K": seen.acked}[kind][batch_id] = int(seq)


async def read_everything(directory: Path) -> list[tuple[int, Batch]]:
    with DiskBuffer(directory, segment_bytes=SEGMENT_BYTES) as buffer:
        return [await asyncio.wait_for(buffer.next(), GUARD_S) for _ in range(buffer.backlog)]


async def test_every_returned_append_survives_sigkill_once_and_acks_hold(tmp_path: Path) -> None:
    directory = tmp_path / "buffer"
    seen = Seen()
    run_and_kill(directory, 1, seen, appends=400)
    run_and_kill(directory, 2, seen, appends=400)  # starts by being handed run 1's unacknowledged batches

    delivered = await read_everything(directory)
    ids = [batch.batch_id for _, batch in delivered]
    seqs = [seq for seq, _ in delivered]

    assert len(set(ids)) == len(ids), "a batch was handed out twice"
    assert seqs == sorted(set(seqs)), "batches came out of order"
    for seq, batch in delivered:
        assert batch == make_batch(batch.batch_id), f"batch {batch.batch_id} came back changed"
        if batch.batch_id in seen.appended:
            assert seen.appended[batch.batch_id] == seq

    in_flight = set(seen.acking) - set(seen.acked)
    assert len(in_flight) <= 2, "one exporter per run: at most one ack in flight when each run was killed"
    unacked = set(seen.appended) - set(seen.acked) - in_flight
    assert unacked <= set(ids), f"lost batches whose append had returned: {sorted(unacked - set(ids))[:5]}"
    assert not set(ids) & set(seen.acked), "an acknowledged batch came back"
    # Appends that returned but whose line the kill cut off: at most one per producer per run.
    assert len(set(ids) - set(seen.appended)) <= 2 * (PRODUCERS + 1)
    assert any(batch_id.startswith("run1-") for batch_id in ids), "no run 1 batch was left to redeliver"
    assert {int(batch_id.split("-")[0][3:]) for batch_id in seen.acked} == {1, 2}

    # Acknowledge all but the first three; exactly those come back after the next restart.
    keep = [(seq, batch.batch_id) for seq, batch in delivered[:3]]
    with DiskBuffer(directory, segment_bytes=SEGMENT_BYTES) as buffer:
        for seq, batch in [await asyncio.wait_for(buffer.next(), GUARD_S) for _ in range(buffer.backlog)]:
            if (seq, batch.batch_id) not in keep:
                buffer.ack(seq)
    assert [(seq, batch.batch_id) for seq, batch in await read_everything(directory)] == keep
    assert len(list(directory.glob("*.seg"))) <= len(keep) + 1  # acknowledged segments were reclaimed


if __name__ == "__main__" and sys.argv[1:2] == ["CHILD"]:
    asyncio.run(child(Path(sys.argv[2]), int(sys.argv[3])))
