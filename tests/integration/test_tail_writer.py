"""The Tailer against a separate writer process that behaves like a container runtime and the kubelet: it appends
CRI lines (long messages split into P/F chunks, stdout and stderr interleaved, lines sometimes written in two
pieces), rotates files kubelet-style (rename, late writes to the renamed file, then a new file), copytruncates,
and writes garbage, invalid UTF-8 and a line far over the length limit, all while the tail reads.

The writer runs a plan (a JSON list of operations) that the test generated together with the messages each
container must yield, in order. Every test asserts that each message arrives exactly once, in order per
container, reassembled, with the pod identity from its path; the restart test asserts that a new Tailer over the
same checkpoint neither loses nor repeats committed messages. Timeouts are guards against hanging only; when
one fires, the failure lists the missing messages and the file each was written to.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import random
import sys
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from collectors.tail.formats import (
    BAD_JSON,
    BAD_STREAM,
    BAD_TIMESTAMP,
    INVALID_UTF8,
    MALFORMED,
    TRUNCATED,
    TRUNCATION_MARKER,
    cri_line,
)
from collectors.tail.model import TailBatch, TailedLine
from collectors.tail.paths import PodContainer
from collectors.tail.tailer import TailConfig, Tailer

pytestmark = pytest.mark.integration

GUARD = 120.0
T = 1_767_261_601_000_000_000
UIDS = {"cart-1": "11111111-1111-1111-1111-111111111111", "pay-1": "22222222-2222-2222-2222-222222222222"}

WRITER = r"""
import base64, json, os, shutil, sys, time

plan, root = json.load(open(sys.argv[1])), sys.argv[2]
fds = {}

def path(rel):
    return os.path.join(root, rel)

def fd(rel):
    if rel not in fds:
        os.makedirs(os.path.dirname(path(rel)), exist_ok=True)
        fds[rel] = os.open(path(rel), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    return fds[rel]

for op in plan:
    kind = op[0]
    if kind == "write":
        data = memoryview(base64.b64decode(op[2]))
        while data:
            data = data[os.write(fd(op[1]), data):]
    elif kind == "rename":  # kubelet rotation, step 1: the runtime keeps writing to the renamed file
        fd(op[1])
        os.rename(path(op[1]), path(op[1]) + op[2])
    elif kind == "reopen":  # step 2: ReopenContainerLog, a new file at the old name
        os.close(fds.pop(op[1]))
        fd(op[1])
    elif kind == "copytruncate":  # logrotate: copy, then cut the same inode to zero
        shutil.copyfile(path(op[1]), path(op[1]) + ".1")
        os.ftruncate(fd(op[1]), 0)
    elif kind == "sleep":
        time.sleep(op[1])
    elif kind == "wait":
        print("waiting", flush=True)
        sys.stdin.readline()
print("done", flush=True)
"""


def rel_path(pod: str, n: int = 0) -> str:
    return f"var/log/pods/dp-acme-prod_{pod}_{UIDS[pod]}/main/{n}.log"


class Plan:
    """Operations for the writer and, alongside, the messages each pod must yield in order."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.ops: list[list[object]] = []
        self.expected: dict[str, list[tuple[str, str]]] = defaultdict(list)
        self.rejected: Counter[str] = Counter()
        self.repaired: Counter[str] = Counter()
        self._clock = T
        self._rotations = 0
        #: Which file each message went to, for failure messages: the pod's n-th file, and whether the message
        #: was a late write to it after its rename; `renamed` holds the name each rotation gave a file.
        self.files: dict[tuple[str, str], tuple[int, bool]] = {}
        self.renamed: dict[tuple[str, int], str] = {}
        self._file: dict[str, tuple[int, bool]] = defaultdict(lambda: (0, False))

    def _ts(self) -> int:
        self._clock += self.rng.randint(1, 5_000_000)
        return self._clock

    def raw(self, pod: str, data: bytes) -> None:
        """Writes bytes, sometimes in two pieces with a pause between (the tail sees half a line)."""
        if len(data) > 8 and self.rng.random() < 0.1:
            cut = self.rng.randint(1, len(data) - 1)
            self.ops += [
                ["write", rel_path(pod), _b64(data[:cut])],
                ["sleep", 0.001],
                ["write", rel_path(pod), _b64(data[cut:])],
            ]
        else:
            self.ops.append(["write", rel_path(pod), _b64(data)])

    def message(self, pod: str, i: int) -> None:
        """A stdout message in 1-4 chunks, cut at arbitrary bytes (inside characters too), with whole stderr
        messages sometimes written between its chunks."""
        text = f"{pod} m{i} " + "".join(
            self.rng.choice("abcdef é😀 {}=\"'\\\t") for _ in range(self.rng.randint(0, 120))
        )
        data = text.encode()
        cuts = sorted(self.rng.sample(range(1, len(data)), min(self.rng.randint(0, 3), len(data) - 1)))
        pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        for k, piece in enumerate(pieces):
            last = k == len(pieces) - 1
            self.raw(pod, cri_line(self._ts(), "stdout", piece, partial=not last))
            if not last and self.rng.random() < 0.3:
                err = f"{pod} e{i}-{k} warning"
                self.raw(pod, cri_line(self._ts(), "stderr", err.encode()))
                self.expected[pod].append(("stderr", err))
                self.files[(pod, err)] = self._file[pod]
        self.expected[pod].append(("stdout", text))
        self.files[(pod, text)] = self._file[pod]

    def rotate(self, pod: str, late: int) -> None:
        """Kubelet rotation between messages: rename, `late` messages still written to the renamed file, new
        file."""
        self._rotations += 1
        suffix = f".2026010{self._rotations % 10}-1000{self._rotations:02d}"
        self.ops.append(["rename", rel_path(pod), suffix])
        generation = self._file[pod][0]
        self.renamed[(pod, generation)] = "0.log" + suffix
        self._file[pod] = (generation, True)
        for j in range(late):
            self.message(pod, -1000 * self._rotations - j)
        self.ops.append(["reopen", rel_path(pod)])
        self._file[pod] = (generation + 1, False)

    def file_of(self, pod: str, body: str) -> str:
        """Which of the pod's files a message was written to, by its name now, for failure messages."""
        if (pod, body) not in self.files:
            return "?"
        generation, late = self.files[(pod, body)]
        name = self.renamed.get((pod, generation), "0.log")
        return f"file #{generation} (now {name}{', a late write after its rename' if late else ''})"

    def missing(self, records: list[TailedLine], root: Path) -> str:
        """What a run still lacks, message by message with the file it was written to, and the files as they
        are now: what a guard timeout says instead of nothing."""
        got = Counter((record.pod, record.body) for record in records)
        report = []
        for pod, messages in sorted(self.expected.items()):
            lost = [body for _, body in messages if got[(pod, body)] == 0]
            by_file = Counter(self.file_of(pod, body) for body in lost)
            report.append(f"{pod}: {len(lost)} of {len(messages)} missing, by file {dict(by_file)}; first:")
            report += [f"  {body[:60]!r} in {self.file_of(pod, body)}" for body in lost[:10]]
        for path in sorted((root / "var/log/pods").glob("*/*/*")):
            report.append(f"on disk: {path.relative_to(root)} {path.stat().st_size} bytes")
        return "\n".join(report)

    def pause(self, seconds: float = 0.002) -> None:
        self.ops.append(["sleep", seconds])


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class Writer:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, plan: Plan, root: Path) -> Writer:
        script, plan_file = root / "writer.py", root / "plan.json"
        script.write_text(WRITER)
        plan_file.write_text(json.dumps(plan.ops))
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(script),
            str(plan_file),
            str(root),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        return cls(proc)

    async def expect(self, line: str) -> None:
        assert self.proc.stdout is not None
        got = await asyncio.wait_for(self.proc.stdout.readline(), GUARD)
        assert got.decode().strip() == line

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")

    async def finish(self) -> None:
        await self.expect("done")
        assert await asyncio.wait_for(self.proc.wait(), GUARD) == 0

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()


class Consumer:
    def __init__(self, tailer: Tailer, *, commit: bool = True) -> None:
        self.tailer = tailer
        self.commit = commit
        self.batches: list[TailBatch] = []
        #: Committed messages of an earlier tail over the same checkpoint, for failure messages.
        self.earlier: list[TailedLine] = []
        self._iter: AsyncIterator[TailBatch] = tailer.batches()

    async def next(self) -> TailBatch:
        batch = await asyncio.wait_for(anext(self._iter), GUARD)
        self.batches.append(batch)
        if self.commit:
            await self.tailer.commit(batch.checkpoint)
        return batch

    async def until_count(self, count: int, plan: Plan | None = None, root: Path | None = None) -> None:
        """Batches until `count` messages; on a guard timeout with a `plan`, fails saying what is missing
        (counting `earlier`, the messages an earlier tail over the same checkpoint delivered and committed)."""
        try:
            while self.count() < count:
                await self.next()
        except TimeoutError:
            if plan is None or root is None:
                raise
            raise AssertionError(
                f"{self.count()} of {count} messages after {GUARD} s\n"
                + plan.missing([*self.earlier, *self.records()], root)
            ) from None

    def count(self) -> int:
        return sum(len(b.records) for b in self.batches)

    def records(self) -> list[TailedLine]:
        return [r for b in self.batches for r in b.records]

    def totals(self, field: str) -> Counter[str]:
        total: Counter[str] = Counter()
        for batch in self.batches:
            total.update(getattr(batch, field))
        return total

    async def close(self) -> None:
        with contextlib.suppress(RuntimeError):
            await self._iter.aclose()  # type: ignore[attr-defined]
        self.tailer.close()


def config(root: Path, **overrides: object) -> TailConfig:
    values: dict[str, object] = dict(
        checkpoint_path=root / "state/checkpoint.json",
        globs=(str(root / "var/log/pods/*/*/*.log"),),
        refresh_interval=0.01,
        poll_interval=0.002,
        rotate_wait=0.05,
        max_lines=200,
    )
    values.update(overrides)
    return TailConfig(**values)  # type: ignore[arg-type]


def per_pod(records: list[TailedLine]) -> dict[str, list[tuple[str, str]]]:
    got: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for record in records:
        assert record.source == PodContainer(
            "dp-acme-prod", record.pod, UIDS[record.pod], "main", record.source.restart
        )
        got[record.pod].append((record.stream, record.body))
    return got


def total(plan: Plan) -> int:
    return sum(len(messages) for messages in plan.expected.values())


async def test_partials_interleaved_streams_and_kubelet_rotations(tmp_path: Path) -> None:
    plan = Plan(seed=1)
    for i in range(2500):
        for pod in ("cart-1", "pay-1"):
            plan.message(pod, i)
        if i % 600 == 300:
            plan.rotate("cart-1", late=3)
        if i % 900 == 450:
            plan.rotate("pay-1", late=0)
        if i % 50 == 0:
            plan.pause()
    writer = await Writer.start(plan, tmp_path)
    consumer = Consumer(Tailer(config(tmp_path)))
    try:
        await consumer.until_count(total(plan), plan, tmp_path)
        await writer.finish()
        got = per_pod(consumer.records())
        for pod in ("cart-1", "pay-1"):
            assert got[pod] == plan.expected[pod], pod
        assert not consumer.totals("rejected") and not consumer.totals("repaired")
        # the first two files, then one per rotation: cart-1 at i = 300, 900, 1500, 2100, pay-1 at 450, 1350, 2250
        assert consumer.tailer.stats.files_opened == 2 + 4 + 3
    finally:
        writer.kill()
        await consumer.close()


@pytest.mark.parametrize("rewrite", [100, 2000])
async def test_copytruncate_while_the_writer_keeps_writing(tmp_path: Path, rewrite: int) -> None:
    """100 messages after the cut: the file is shorter than the offset read. 2000: it has outgrown the old
    offset before the tail looks, and only its first bytes tell."""
    plan = Plan(seed=2)
    for i in range(500):
        plan.message("cart-1", i)
    before = len(plan.expected["cart-1"])
    plan.ops.append(["wait"])
    plan.ops.append(["copytruncate", rel_path("cart-1")])
    for i in range(500, 500 + rewrite):
        plan.message("cart-1", i)
    writer = await Writer.start(plan, tmp_path)
    consumer = Consumer(Tailer(config(tmp_path)))
    try:
        await consumer.until_count(before)
        await writer.expect("waiting")
        assert consumer.count() == before
        writer.go()
        await consumer.until_count(total(plan), plan, tmp_path)
        await writer.finish()
        assert per_pod(consumer.records())["cart-1"] == plan.expected["cart-1"]
        assert consumer.tailer.stats.truncations == 1
    finally:
        writer.kill()
        await consumer.close()


async def test_restart_over_the_checkpoint_while_the_writer_writes(tmp_path: Path) -> None:
    plan = Plan(seed=3)
    for i in range(3000):
        for pod in ("cart-1", "pay-1"):
            plan.message(pod, i)
        if i % 700 == 350:
            plan.rotate("cart-1", late=2)
        if i % 20 == 0:
            plan.pause(0.002)
    writer = await Writer.start(plan, tmp_path)
    cfg = config(tmp_path, max_lines=37)
    first = Consumer(Tailer(cfg))
    try:
        while len(first.batches) < 25:  # committed
            await first.next()
        first.commit = False
        for _ in range(3):  # delivered, not committed
            await first.next()
    finally:
        await first.close()
    committed, uncommitted = first.batches[:25], first.batches[25:]
    # some commit fell inside an unfinished P sequence, with lines of the other stream delivered after its start
    assert any(p.resume < p.delivered for b in committed for p in b.checkpoint.files)
    second = Consumer(Tailer(cfg))
    second.earlier = [r for b in committed for r in b.records]
    try:
        committed_count = sum(len(b.records) for b in committed)
        await second.until_count(total(plan) - committed_count, plan, tmp_path)
        await writer.finish()
    finally:
        writer.kill()
        await second.close()
    before = per_pod([r for b in committed for r in b.records])
    again = per_pod([r for b in uncommitted for r in b.records])
    after = per_pod(second.records())
    for pod in ("cart-1", "pay-1"):
        # nothing committed is lost or repeated; what was only delivered comes again, identical
        assert before[pod] + after[pod] == plan.expected[pod], pod
        assert after[pod][: len(again[pod])] == again[pod], pod
    assert second.count() == total(plan) - committed_count


async def test_garbage_invalid_utf8_and_an_overlong_line_do_not_stop_the_flow(tmp_path: Path) -> None:
    plan = Plan(seed=4)
    pod = "cart-1"
    for i in range(300):
        plan.message(pod, i)
        kind = i % 50
        if kind == 10:
            plan.raw(pod, bytes(plan.rng.randrange(256) for _ in range(200)).replace(b"\n", b"") + b"\n")
            plan.rejected["garbage"] += 1
        elif kind == 20:
            body = "caf\ufffd \ufffd end"
            plan.raw(pod, cri_line(plan._ts(), "stdout", b"caf\xe9 \xff end"))
            plan.expected[pod].append(("stdout", body))
            plan.repaired[INVALID_UTF8] += 1
        elif kind == 30:
            plan.raw(pod, b"2026-01-01T10:00:61Z stdout F bad second\n")
            plan.rejected[BAD_TIMESTAMP] += 1
        elif kind == 40:
            plan.raw(pod, b'{"log":"cut short\n')
            plan.rejected[BAD_JSON] += 1
        if i == 150:
            # 3 MiB with no newline, written in 64 KiB pieces while the tail reads; the limit is 1 MiB
            ts = plan._ts()
            head = cri_line(ts, "stdout", b"")[:-1]
            blob = b"z" * (3 << 20)
            plan.ops.append(["write", rel_path(pod), _b64(head)])
            for at in range(0, len(blob), 64 << 10):
                plan.ops.append(["write", rel_path(pod), _b64(blob[at : at + (64 << 10)])])
                plan.pause(0.001)
            plan.ops.append(["write", rel_path(pod), _b64(b"\n")])
            plan.expected[pod].append(("stdout", "z" * (1 << 20) + TRUNCATION_MARKER))
            plan.repaired[TRUNCATED] += 1
    writer = await Writer.start(plan, tmp_path)
    consumer = Consumer(Tailer(config(tmp_path, read_chunk=256 << 10)))
    try:
        await consumer.until_count(total(plan), plan, tmp_path)
        await writer.finish()
        assert per_pod(consumer.records())[pod] == plan.expected[pod]
        rejected = consumer.totals("rejected")
        # random garbage is malformed, or has a bad stream or timestamp field: all counted, none delivered
        garbage = sum(rejected[r] for r in (MALFORMED, BAD_STREAM, BAD_TIMESTAMP)) - plan.rejected[BAD_TIMESTAMP]
        assert garbage == plan.rejected["garbage"]
        assert rejected[BAD_JSON] == plan.rejected[BAD_JSON]
        assert consumer.totals("repaired") == plan.repaired
    finally:
        writer.kill()
        await consumer.close()
