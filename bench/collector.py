"""The collector's throughput: tail -> enrich -> durable buffer -> bulk export to a real OpenSearch, for
1,000,000 CRI lines of about 200 bytes, in lines/s per core (the collector process's CPU time) and peak RSS,
next to a baseline in the same run that only reads the same file (this machine's floor).

Each side runs in a child process of its own, so its CPU time and peak RSS are its alone. On a shared machine
the figures move with the load: compare them with the floor of the same run, and repeat.
`python -m bench.collector` runs this one alone. BENCH_COLLECTOR_LINES overrides the line count; OPENSEARCH_URL
picks the server (else one is started).

Where the CPU goes per line (py-spy, after the collector-throughput work): building the bulk body
(`documents.log_actions`) about a fifth, reading and reassembling (tail) about a fifth, level detection about a
tenth, the rest spread over msgpack encoding, the bulk request and its response, and the event loop. OpenSearch on
the same cores indexes more slowly than the collector reads, so the buffer builds a backlog and some batches are
read back from disk rather than handed over in memory (DiskBuffer `memory_bytes`).
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import report

POD_DIR = "dp-bench-prod_cart-0_9f0c3c1e-0000-4000-8000-000000000001/main"


def _usage() -> dict[str, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"cpu_s": usage.ru_utime + usage.ru_stime, "max_rss_mb": usage.ru_maxrss / 1024}


def child_read(path: str) -> None:
    """The floor: read the file in 1 MiB chunks and count the lines."""
    started, lines = time.perf_counter(), 0
    with open(path, "rb", buffering=0) as handle:
        while chunk := handle.read(1 << 20):
            lines += chunk.count(b"\n")
    print(json.dumps({"lines": lines, "wall_s": time.perf_counter() - started, **_usage()}))


def child_collect(workdir: str, opensearch: str, lines: int) -> None:
    """Runs the pipelines until `lines` messages (reassembled lines) are in OpenSearch."""
    from adapters.opensearch.backend import OpenSearchBackend
    from adapters.opensearch.client import OpenSearchConfig
    from collectors.buffer import DiskBuffer
    from collectors.enrich import Enricher, FileMetadata
    from collectors.pipeline import export_pipeline, tail_pipeline
    from collectors.tail.tailer import TailConfig, Tailer
    from collectors.telemetry import CollectorTelemetry
    from devservers.opensearch_layout import unique_layout

    async def run() -> float:
        root = Path(workdir)
        layout = unique_layout("bench-collect")
        backend = OpenSearchBackend(OpenSearchConfig(address=opensearch, layout=layout))
        await backend.install(retention_days=3650)
        telemetry = CollectorTelemetry()
        buffer = DiskBuffer(root / "buffer")
        tailer = Tailer(
            TailConfig(checkpoint_path=root / "tail.json", globs=(str(root / "pods/*/*/*.log"),), refresh_interval=0.5)
        )
        started = time.perf_counter()
        tasks = [
            asyncio.create_task(tail_pipeline(tailer, Enricher(FileMetadata(root / "pods.yaml")), buffer, telemetry)),
            asyncio.create_task(export_pipeline(buffer, backend, telemetry)),
        ]
        while telemetry.records_out.labels("export")._value.get() < lines:
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await backend.client.indices.delete(index=layout.pattern(layout.logs), params={"ignore_unavailable": "true"})
        await backend.close()
        buffer.close()
        return elapsed

    wall = asyncio.run(run())
    print(json.dumps({"lines": lines, "wall_s": wall, **_usage()}))


def _child(*args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "bench.collector", *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run() -> dict:
    from collectors.tail.bench import write_file
    from devservers.opensearch import start_opensearch

    lines = int(os.environ.get("BENCH_COLLECTOR_LINES", 1_000_000))
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        log_file = root / "pods" / POD_DIR / "0.log"
        messages = write_file(log_file, lines, partial_every=20)  # every 20th message split into P/P/F
        namespace, pod, _ = POD_DIR.split("/")[0].split("_")
        labels = {
            "openchoreo.dev/namespace": "bench",
            "openchoreo.dev/component": "cart",
            "openchoreo.dev/component-uid": "9f0c3c1e-0000-4000-8000-0000000000c1",
        }
        (root / "pods.yaml").write_text(json.dumps({"pods": [{"namespace": namespace, "name": pod, "labels": labels}]}))
        floor = _child("--read", str(log_file))
        server = start_opensearch(root / "opensearch")
        try:
            collect = _child("--collect", scratch, server.url, str(messages))
        finally:
            server.stop()
    per_core = lines / collect["cpu_s"]
    raw = {"lines": lines, "read_only": floor, "collector": collect, "lines_per_core_s": per_core}
    report(
        "collector",
        [
            ("CRI lines (~200 B)", f"{lines:,}", ""),
            ("read only: lines/s per core", f"{lines / floor['cpu_s']:,.0f}", "floor (baseline)"),
            ("tail->enrich->buffer->OpenSearch: lines/s per core", f"{per_core:,.0f}", "target >= 30,000"),
            ("  wall-clock lines/s (OpenSearch shares the machine)", f"{lines / collect['wall_s']:,.0f}", ""),
            ("  peak RSS (MB)", f"{collect['max_rss_mb']:.0f}", "target <= 250"),
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
