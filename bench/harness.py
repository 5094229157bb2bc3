"""Benchmark plumbing: timing statistics, starting the real `observer up`, and the results table."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

RESULTS = Path(__file__).parent / "results"
CACHE = Path(os.environ.get("OBSERVER_CACHE", Path.home() / ".cache/observer-plane"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def timings_ms(run: Callable[[], object], repeat: int, warmup: int = 20) -> dict[str, float]:
    for _ in range(warmup):
        run()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        samples.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": round(percentile(samples, 0.5), 3), "p99_ms": round(percentile(samples, 0.99), 3),
            "mean_ms": round(sum(samples) / len(samples), 3), "n": repeat}


@contextmanager
def observer_up(data_dir: Path) -> Iterator[dict[str, str]]:
    """The real all-in-one as a separate process (its own core), on free ports."""
    ports = {"port": free_port(), "internal": free_port(), "otlp": free_port()}
    command = [sys.executable, "-m", "observer.cli", "up", "--data-dir", str(data_dir), "--port", str(ports["port"]),
               "--internal-port", str(ports["internal"]), "--otlp-port", str(ports["otlp"])]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "LOG_LEVEL": "warning"})
    urls = {"api": f"http://127.0.0.1:{ports['port']}", "otlp": f"http://127.0.0.1:{ports['otlp']}"}
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(urls["api"] + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("observer up did not start")
            time.sleep(0.1)
        yield urls
    finally:
        process.terminate()
        process.wait(timeout=30)


def report(name: str, rows: list[tuple[str, str, str]], raw: dict) -> None:
    """Prints a table (what, measured, target) and writes the raw figures as JSON."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(raw, indent=2))
    width = max(len(row[0]) for row in rows)
    print(f"\n## {name}")
    for what, measured, target in rows:
        print(f"  {what:<{width}}  {measured:>22}   {target}")
