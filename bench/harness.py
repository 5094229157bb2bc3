"""Benchmark plumbing: timing statistics and the results table."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
CACHE = Path(os.environ.get("OBSERVER_CACHE", Path.home() / ".cache/observer-plane"))


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
    return {
        "p50_ms": round(percentile(samples, 0.5), 3),
        "p99_ms": round(percentile(samples, 0.99), 3),
        "mean_ms": round(sum(samples) / len(samples), 3),
        "n": repeat,
    }


def report(name: str, rows: list[tuple[str, str, str]], raw: dict) -> None:
    """Prints a table (what, measured, target) and writes the raw figures as JSON."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(raw, indent=2))
    width = max(len(row[0]) for row in rows)
    print(f"\n## {name}")
    for what, measured, target in rows:
        print(f"  {what:<{width}}  {measured:>22}   {target}")
