"""Benchmark plumbing: timing statistics and the results table."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
CACHE = Path(os.environ.get("OBSERVER_CACHE", Path.home() / ".cache/observer-plane"))


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def latencies(samples: list[float]) -> dict[str, float]:
    """p50, p99 and mean of samples in milliseconds, and their count."""
    return {
        "p50_ms": round(percentile(samples, 0.5), 3),
        "p99_ms": round(percentile(samples, 0.99), 3),
        "mean_ms": round(sum(samples) / len(samples), 3),
        "n": len(samples),
    }


def timings_ms(run: Callable[[], object], repeat: int, warmup: int = 20) -> dict[str, float]:
    for _ in range(warmup):
        run()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        samples.append((time.perf_counter() - started) * 1000)
    return latencies(samples)


def interleaved(runs: Mapping[str, Callable[[], object]], repeat: int, warmup: int = 20) -> dict[str, dict[str, float]]:
    """Each run once per round, round after round, so that all see the same load on a shared machine (timed one
    after the other, a run measured while another process is busy looks slower than one measured after it).
    Also the median of the per-round differences from the first run (the baseline): the paired overhead."""
    for _ in range(warmup):
        for run in runs.values():
            run()
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeat):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            samples[name].append((time.perf_counter() - started) * 1000)
    baseline = samples[next(iter(runs))]
    return {
        name: {
            **latencies(values),
            "paired_p50_over_baseline_ms": round(percentile([v - b for v, b in zip(values, baseline)], 0.5), 3),
        }
        for name, values in samples.items()
    }


def process_cpu_s(pid: int) -> float:
    """CPU time (user + system) a process has used so far, from /proc (in clock ticks, 10 ms here)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int | str = "self") -> float:
    """A process's own peak resident set (VmHWM), which, unlike ru_maxrss, starts afresh at exec: Linux carries
    ru_maxrss across fork+exec, so a child of a large parent would report the parent's size."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM in /proc/{pid}/status")


def report(name: str, rows: list[tuple[str, str, str]], raw: dict) -> None:
    """Prints a table (what, measured, target) and writes the raw figures as JSON."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(raw, indent=2))
    width = max(len(row[0]) for row in rows)
    print(f"\n## {name}")
    for what, measured, target in rows:
        print(f"  {what:<{width}}  {measured:>22}   {target}")
