"""The cost of the adapter hop: a component logs query through our Observer -> our adapter server (`observer
adapter serve --signal logs`, OpenChoreo's logs adapter contract) -> the embedded store, next to our Observer on
the embedded store directly. Same 1,000,000-record dataset (bench/logs_query.py's, cached), same queries, same
run, timed in turns (`interleaved`) so that both see the same load; the difference is the hop: one more HTTP
request, the contract's validation on both sides, and the JSON written and read once more."""

from __future__ import annotations

import contextlib
import itertools
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench import data
from bench.harness import interleaved, report
from bench.logs_query import DATASET, END_NS, KEEP_ALL, QUERIES, RECORDS, build_dataset, observer_body, stored_records
from devservers.local import free_port, wait_until_answering
from devservers.observer import observer_up
from domain.model import TimeRange

ENVIRONMENT = "production"


def registry_file(directory: Path) -> Path:
    """The bench dataset's names for the Observer behind the adapter, whose own store is empty: it resolves
    names to UIDs before calling the adapter, as OpenChoreo's observer does."""
    document = {
        "namespaces": [
            {
                "name": data.NAMESPACE,
                "environments": [{"name": ENVIRONMENT, "uid": data.uid("environment", ENVIRONMENT)}],
                "projects": [
                    {
                        "name": data.PROJECT,
                        "uid": data.uid("project", data.PROJECT),
                        "components": [{"name": "cart", "uid": data.uid("component", "cart")}],
                    }
                ],
            }
        ]
    }
    path = directory / "registry.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


@contextlib.contextmanager
def adapter_serving(data_dir: Path, log_file: Path) -> Iterator[str]:
    """`observer adapter serve --signal logs` over the dataset, on a free loopback port; yields its URL."""
    port = free_port()
    command = [sys.executable, "-m", "observer.cli", "adapter", "serve", "--signal", "logs", "--port", str(port)]
    command += ["--data-dir", str(data_dir)]
    with open(log_file, "wb") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=output, env={**os.environ, "LOG_LEVEL": "warning", **KEEP_ALL}
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_answering(
                process, lambda: httpx.get(f"{url}/health", timeout=1).status_code == 200, "adapter serve", 60
            )
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def run(repeat: int = 300) -> dict[str, Any]:
    build_dataset()
    window = TimeRange(END_NS - 24 * data.HOUR_NS, END_NS)
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        adapter = stack.enter_context(adapter_serving(DATASET, workdir / "adapter.log"))
        direct = stack.enter_context(observer_up(DATASET, env=KEEP_ALL, log_file=workdir / "direct.log"))
        hop = stack.enter_context(
            observer_up(
                workdir / "hop",
                "--registry",
                str(registry_file(workdir)),
                env={**KEEP_ALL, "LOGS_ADAPTER_URL": adapter},
                log_file=workdir / "hop.log",
            )
        )
        clients = {
            name: stack.enter_context(httpx.Client(base_url=server.api, timeout=30))
            for name, server in (("direct", direct), ("hop", hop))
        }

        def answer(name: str, phrase: str, levels: tuple[str, ...]) -> list[dict[str, Any]]:
            response = clients[name].post("/api/v1/logs/query", json=observer_body(window, phrase, levels))
            assert response.status_code == 200, response.text
            logs: list[dict[str, Any]] = response.json()["logs"]
            assert logs, f"{name}: no lines for {phrase!r}"
            return logs

        for phrase, levels in QUERIES:  # the same data: the same lines either way
            assert answer("direct", phrase, levels) == answer("hop", phrase, levels), phrase

        def turn(name: str) -> Callable[[], object]:
            """One query per call, the next of QUERIES, through `name`'s Observer."""
            queries = itertools.cycle(QUERIES)
            return lambda: answer(name, *next(queries))

        timed = interleaved({name: turn(name) for name in clients}, repeat)
    assert stored_records() == RECORDS, "an Observer under test deleted part of the dataset"
    direct_ms, hop_ms = timed["direct"], timed["hop"]
    raw = {
        "records": RECORDS,
        "direct": direct_ms,
        "hop": hop_ms,
        "hop_cost_p50_ms": round(hop_ms["p50_ms"] - direct_ms["p50_ms"], 3),
        "hop_cost_p99_ms": round(hop_ms["p99_ms"] - direct_ms["p99_ms"], 3),
    }
    report(
        "adapter_hop",
        [
            ("records stored", f"{RECORDS:,}", ""),
            ("Observer -> embedded p50 / p99 (ms)", f"{direct_ms['p50_ms']} / {direct_ms['p99_ms']}", "baseline"),
            ("Observer -> adapter -> embedded p50 / p99 (ms)", f"{hop_ms['p50_ms']} / {hop_ms['p99_ms']}", ""),
            ("hop cost at p50 / p99 (ms)", f"{raw['hop_cost_p50_ms']} / {raw['hop_cost_p99_ms']}", ""),
            ("hop cost, median of paired differences (ms)", f"{hop_ms['paired_p50_over_baseline_ms']}", ""),
        ],
        raw,
    )
    return raw


if __name__ == "__main__":
    run()
