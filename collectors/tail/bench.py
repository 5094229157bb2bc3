"""Throughput of the tail: `python -m collectors.tail.bench [--lines N] [--partial-every K]`.

Writes N CRI lines of about 200 bytes (every K-th message split into P/P/F chunks) into a kubelet-style
`/var/log/pods` layout under a temporary directory, then measures, on one core:

- parse: the chunked split plus `Assembler.feed` over the file's bytes, already in memory;
- tail: a `Tailer` from the first batch to the last, file reads and batching included (page cache warm), and
  the CPU time it used (the GIL keeps it to about one core).

Prints lines per second for each. No assertion: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from collectors.tail.assembler import Assembler, Sink
from collectors.tail.paths import PodContainer
from collectors.tail.tailer import TailConfig, Tailer

_BASE_NS = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z


def write_file(path: Path, lines: int, partial_every: int) -> int:
    """Writes the file; returns how many messages it holds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pad = "x" * 120
    messages = 0
    with open(path, "wb", buffering=1 << 20) as out:
        written = 0
        while written < lines:
            ts_ns = _BASE_NS + written * 1_000_003
            seconds, nanos = divmod(ts_ns, 1_000_000_000)
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"
            body = f'level=info msg="request handled" seq={written} {pad}'
            if partial_every and messages % partial_every == 0 and written + 3 <= lines:
                third = len(body) // 3
                for tag, chunk in (("P", body[:third]), ("P", body[third : 2 * third]), ("F", body[2 * third :])):
                    out.write(f"{stamp} stdout {tag} {chunk}\n".encode())
                written += 3
            else:
                out.write(f"{stamp} stdout F {body}\n".encode())
                written += 1
            messages += 1
    return messages


def bench_parse(path: Path, source: PodContainer) -> tuple[int, float]:
    data = path.read_bytes()
    started = time.perf_counter()
    assembler = Assembler(source, 1 << 20)
    chunk, offset, carry, messages = 1 << 20, 0, b"", 0
    for at in range(0, len(data), chunk):
        lines = (carry + data[at : at + chunk]).split(b"\n")
        carry = lines.pop()
        sink = Sink(1 << 62, 1 << 62)  # a batch per chunk, dropped after, as a consumer would
        _, offset = assembler.feed(lines, 0, offset, (1 << 20) + 4096, sink)
        messages += len(sink.records)
    return messages, time.perf_counter() - started


async def bench_tail(root: Path, state: Path, expected: int) -> tuple[int, float, float]:
    config = TailConfig(
        checkpoint_path=state / "checkpoint.json",
        globs=(str(root / "var/log/pods/*/*/*.log"),),
        max_lines=20_000,
        max_bytes=8 << 20,
    )
    tailer = Tailer(config)
    total, started, cpu = 0, time.perf_counter(), time.process_time()
    try:
        async for batch in tailer.batches():
            total += len(batch.records)
            if total >= expected:
                break
    finally:
        tailer.close()
    return total, time.perf_counter() - started, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--partial-every", type=int, default=20, help="split every K-th message (0: never)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        source = PodContainer("dp-acme-prod", "cart-7d9f-x2x", "0b6c5e34-7d1e-4c1a-9a57-0f1a2b3c4d5e", "main", 0)
        path = root / f"var/log/pods/{source.namespace}_{source.pod}_{source.pod_uid}/{source.container}/0.log"
        messages = write_file(path, args.lines, args.partial_every)
        size = path.stat().st_size
        print(
            f"file: {args.lines:,} lines ({messages:,} messages), {size / args.lines:.0f} bytes/line, "
            f"{size / 1e6:.0f} MB"
        )
        parsed, seconds = bench_parse(path, source)
        assert parsed == messages, (parsed, messages)
        print(f"parse: {args.lines / seconds:,.0f} lines/s ({parsed / seconds:,.0f} messages/s, {seconds:.2f} s)")
        tailed, seconds, cpu = asyncio.run(bench_tail(root, root / "state", messages))
        assert tailed == messages, (tailed, messages)
        print(
            f"tail:  {args.lines / seconds:,.0f} lines/s ({tailed / seconds:,.0f} messages/s, {seconds:.2f} s; "
            f"{cpu:.2f} s of CPU, {cpu / seconds:.2f} cores)"
        )


if __name__ == "__main__":
    main()
