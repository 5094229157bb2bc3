"""The collector's throughput and memory: tail -> enrich -> durable buffer -> bulk export, for CRI lines of about
200 bytes, next to a baseline in the same run that only reads the same file (this machine's floor).

Two cases, each in a child process of its own, so its CPU time and peak RSS are its alone:

- **OpenSearch**: 1,000,000 lines into a real OpenSearch, in lines/s per core (the child's CPU time from the
  first line read to the last document acknowledged, all threads) and peak RSS;
- **slow destination**: a destination deliberately slower than the tail (`ThrottledBulk`: it builds each bulk
  body as the OpenSearch backend does, then holds a fixed pace), so the tail must be held back. It reports peak
  RSS against the 250 MB target, the most the buffer held in memory and on disk, how often the tail waited (for
  the exporter to take what the buffer holds in memory, or for room on disk), and that every line arrived
  exactly once.

Peak RSS is the child's own high-water mark (`VmHWM`), not `ru_maxrss`: Linux carries `ru_maxrss` across
fork+exec, so a child of a large parent (`make bench` holds a million-record store by then) reports the parent's
size. That is what made an earlier run report 2,218 MB for a collector that never held more than ~150 MB.

On a shared machine the figures move with the load: compare them with the floor of the same run, and repeat.
`python -m bench.collector` runs this one alone. BENCH_COLLECTOR_LINES and BENCH_COLLECTOR_SLOW_LINES override
the line counts; OPENSEARCH_URL picks the server (else one is started).

Where the CPU goes per line (py-spy, real OpenSearch, after issue 14): building the bulk body
(`documents.log_actions`) about 30%, reading and reassembling (tail) about 19%, enrichment about 13% (level
detection 5 of them), the event loop and thread hand-offs about a fifth, the bulk writer 4%, the rest msgpack,
the buffer and the bulk response. Before issue 14, CPython's cyclic garbage collector took a quarter on top of
all that (it also made parsing each bulk response look expensive), and page faults on freshly mapped buffers
about a fifth (`perf`, mostly system time); collectors/runtime_tuning.py says what settles both. OpenSearch on the
same cores indexes more slowly than the collector reads, so the tail waits for the exporter (DiskBuffer
`wait_for_memory`) and every batch is handed over in memory.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.harness import peak_rss_mb, report

POD_DIR = "dp-bench-prod_cart-0_9f0c3c1e-0000-4000-8000-000000000001/main"
#: The slow destination's pace, well under what the tail reads (over 100,000 lines/s on one core).
SLOW_LINES_PER_S = 40_000
RSS_TARGET_MB = 250


def _cpu_s() -> float:
    return time.process_time()  # user + system time of every thread of this process


def child_read(path: str) -> None:
    """The floor: read the file in 1 MiB chunks and count the lines."""
    started, cpu, lines = time.perf_counter(), _cpu_s(), 0
    with open(path, "rb", buffering=0) as handle:
        while chunk := handle.read(1 << 20):
            lines += chunk.count(b"\n")
    print(
        json.dumps(
            {
                "lines": lines,
                "wall_s": time.perf_counter() - started,
                "cpu_s": _cpu_s() - cpu,
                "peak_rss_mb": peak_rss_mb(),
            }
        )
    )


class ThrottledBulk:
    """An OpenSearch-like destination deliberately slower than the tail: it builds each batch's bulk body as the
    OpenSearch backend does (`documents.log_actions`, the costly part of a write), counts the documents, and
    keeps to `lines_per_s`, the way a loaded OpenSearch holds the exporter back, but reproducibly."""

    def __init__(self, lines_per_s: float) -> None:
        from adapters.opensearch.layout import IndexLayout

        self.layout = IndexLayout()
        self.lines_per_s = lines_per_s
        self.documents = 0
        self._next_at = 0.0

    async def write(
        self,
        *,
        batch_id: str,
        logs: Sequence[Any] = (),
        events: Sequence[Any] = (),
        spans: Sequence[Any] = (),
        metrics: Sequence[Any] = (),
    ) -> Any:
        from adapters.opensearch import documents
        from adapters.protocols import WriteResult

        body = b"".join(documents.log_actions(self.layout, logs))
        now = time.monotonic()
        self._next_at = max(now, self._next_at) + len(logs) / self.lines_per_s
        await asyncio.sleep(self._next_at - now)
        self.documents += body.count(b'{"index":')
        return WriteResult.delivered()


def child_collect(workdir: str, destination: str, lines: int) -> None:
    """Runs the pipelines until `lines` messages (reassembled lines) are delivered: to the OpenSearch at
    `destination`, or to a `ThrottledBulk` when it is `slow`."""
    from adapters.opensearch.backend import OpenSearchBackend
    from adapters.opensearch.client import OpenSearchConfig
    from collectors.buffer import DiskBuffer
    from collectors.enrich import Enricher, FileMetadata
    from collectors.pipeline import export_pipeline, tail_pipeline
    from collectors.runtime_tuning import tune_runtime
    from collectors.tail.tailer import TailConfig, Tailer
    from collectors.telemetry import CollectorTelemetry
    from devservers.opensearch_layout import unique_layout

    async def run() -> dict[str, Any]:
        tune_runtime()  # as `observer collect` does (collectors/run.py)
        root = Path(workdir)
        telemetry = CollectorTelemetry()
        slow = destination == "slow"
        backend: OpenSearchBackend | None = None
        if slow:
            sink: Any = ThrottledBulk(SLOW_LINES_PER_S)
        else:
            layout = unique_layout("bench-collect")
            sink = backend = OpenSearchBackend(OpenSearchConfig(address=destination, layout=layout))
            await backend.install(retention_days=3650)
        buffer = DiskBuffer(root / "buffer")  # the defaults: 256 MB on disk, 32 MB / 150,000 records in memory
        tailer = Tailer(
            TailConfig(checkpoint_path=root / "tail.json", globs=(str(root / "pods/*/*/*.log"),), refresh_interval=0.5)
        )
        started, cpu = time.perf_counter(), _cpu_s()
        tasks = [
            asyncio.create_task(tail_pipeline(tailer, Enricher(FileMetadata(root / "pods.yaml")), buffer, telemetry)),
            asyncio.create_task(export_pipeline(buffer, sink, telemetry)),
        ]
        most_held_bytes = most_held_records = most_used = 0
        while telemetry.records_out.labels("export")._value.get() < lines or buffer.backlog:
            most_held_bytes = max(most_held_bytes, buffer.held_bytes)
            most_held_records = max(most_held_records, buffer.held_records)
            most_used = max(most_used, buffer.used_bytes)
            await asyncio.sleep(0.05)
        figures = {"wall_s": time.perf_counter() - started, "cpu_s": _cpu_s() - cpu}
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        tailer.close()
        buffer.close()
        delivered = int(telemetry.records_out.labels("export")._value.get())
        if backend is not None:
            await backend.client.indices.refresh(index=backend.layout.pattern(backend.layout.logs))
            stored = await backend.client.count(index=backend.layout.pattern(backend.layout.logs))
            figures["stored"] = stored["count"]
            await backend.client.indices.delete(
                index=backend.layout.pattern(backend.layout.logs), params={"ignore_unavailable": "true"}
            )
            await backend.close()
        else:
            figures["stored"] = sink.documents
        waits = {
            reason: telemetry.registry.get_sample_value(
                "collector_backpressure_waits_total", {"pipeline": "tail", "reason": reason}
            )
            for reason in ("memory", "full")
        }
        return {
            **figures,
            "delivered": delivered,
            "most_held_mb": most_held_bytes / 2**20,
            "most_held_records": most_held_records,
            "most_buffered_mb": most_used / 2**20,
            "tail_waits_for_memory": int(waits["memory"] or 0),
            "tail_waits_for_disk": int(waits["full"] or 0),
        }

    figures = asyncio.run(run())
    print(json.dumps({"lines": lines, **figures, "cpu_total_s": _cpu_s(), "peak_rss_mb": peak_rss_mb()}))


def _child(*args: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "bench.collector", *args], check=True, capture_output=True, text=True)
    figures: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return figures


def _write_pods(root: Path) -> None:
    namespace, pod, _ = POD_DIR.split("/")[0].split("_")
    labels = {
        "openchoreo.dev/namespace": "bench",
        "openchoreo.dev/component": "cart",
        "openchoreo.dev/component-uid": "9f0c3c1e-0000-4000-8000-0000000000c1",
    }
    (root / "pods.yaml").write_text(json.dumps({"pods": [{"namespace": namespace, "name": pod, "labels": labels}]}))


def run() -> dict[str, Any]:
    from collectors.tail.bench import write_file
    from devservers.opensearch import start_opensearch

    lines = int(os.environ.get("BENCH_COLLECTOR_LINES", 1_000_000))
    slow_lines = int(os.environ.get("BENCH_COLLECTOR_SLOW_LINES", 600_000))
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        fast_dir, slow_dir = root / "opensearch-case", root / "slow-case"
        messages = write_file(fast_dir / "pods" / POD_DIR / "0.log", lines, partial_every=20)  # P/P/F every 20th
        slow_messages = write_file(slow_dir / "pods" / POD_DIR / "0.log", slow_lines, partial_every=20)
        _write_pods(fast_dir)
        _write_pods(slow_dir)
        floor = _child("--read", str(fast_dir / "pods" / POD_DIR / "0.log"))
        slow = _child("--collect", str(slow_dir), "slow", str(slow_messages))
        server = start_opensearch(root / "opensearch")
        try:
            collect = _child("--collect", str(fast_dir), server.url, str(messages))
        finally:
            server.stop()
    floor_per_core = lines / max(floor["cpu_s"], 1e-6)
    per_core = lines / collect["cpu_s"]
    raw = {
        "lines": lines,
        "read_only": floor,
        "collector": collect,
        "lines_per_core_s": per_core,
        "slow_destination": {"lines": slow_lines, "lines_per_s": SLOW_LINES_PER_S, **slow},
    }
    exact = "yes" if slow["stored"] == slow_messages == slow["delivered"] else "NO"
    report(
        "collector",
        [
            ("CRI lines (~200 B)", f"{lines:,}", ""),
            ("read only: lines/s per core", f"{floor_per_core:,.0f}", "floor (baseline)"),
            ("tail->enrich->buffer->OpenSearch: lines/s per core", f"{per_core:,.0f}", "target >= 100,000"),
            ("  wall-clock lines/s (OpenSearch shares the machine)", f"{lines / collect['wall_s']:,.0f}", ""),
            ("  documents in OpenSearch / messages", f"{collect['stored']:,} / {messages:,}", "equal"),
            ("  peak RSS (MB)", f"{collect['peak_rss_mb']:.0f}", f"target <= {RSS_TARGET_MB}"),
            (f"slow destination ({SLOW_LINES_PER_S:,} lines/s), lines", f"{slow_lines:,}", ""),
            ("  peak RSS (MB)", f"{slow['peak_rss_mb']:.0f}", f"target <= {RSS_TARGET_MB}"),
            (
                "  most held in memory (MB of frames / records)",
                f"{slow['most_held_mb']:.0f} / {slow['most_held_records']:,}",
                "<= 32 / 150,000",
            ),
            ("  most buffered on disk (MB)", f"{slow['most_buffered_mb']:.0f}", "<= 256"),
            (
                "  tail held back: waits for memory / for a full disk buffer",
                f"{slow['tail_waits_for_memory']:,} / {slow['tail_waits_for_disk']:,}",
                "> 0 either way",
            ),
            ("  every message delivered exactly once", exact, "yes"),
            ("  lines/s per core", f"{slow_lines / slow['cpu_s']:,.0f}", ""),
        ],
        raw,
    )
    return raw


if __name__ == "__main__":
    if sys.argv[1:2] == ["--read"]:
        child_read(sys.argv[2])
    elif sys.argv[1:2] == ["--collect"]:
        child_collect(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        run()
