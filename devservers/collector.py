"""The real collector (`observer collect`) and the real all-in-one (`observer up`) as separate processes, on
ports the test chooses (so a stopped one can come back on the same address), and the collector's /metrics
read as numbers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from collectors.config import ENV_OVERRIDES
from devservers.local import free_port

#: The environment of a child process, without anything that would override its configuration file.
CLEAN_ENV = {key: value for key, value in os.environ.items() if key not in ENV_OVERRIDES}


@dataclass(frozen=True)
class Collector:
    process: subprocess.Popen
    telemetry: str  # http://127.0.0.1:<port> of /metrics and /health
    otlp: str  # the OTLP receiver's base URL, "" when not configured

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample of /metrics: (name, sorted labels) -> value."""
        return scrape(self.telemetry)

    def value(self, name: str, **labels: str) -> float:
        """One sample (0 when absent), e.g. `value("collector_records_dropped_total", pipeline="tail",
        reason="malformed")`."""
        return self.metrics().get((name, tuple(sorted(labels.items()))), 0.0)


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _wait_healthy(urls: list[str], process: subprocess.Popen, what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if all(httpx.get(f"{url}/health", timeout=1).status_code == 200 for url in urls):
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start (exit code {process.poll()})")
        time.sleep(0.1)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextmanager
def collector(directory: Path, document: dict[str, Any], *, env: dict[str, str] | None = None) -> Iterator[Collector]:
    """`observer collect` with `document` as its configuration file (a `telemetry` port is added when missing),
    its output in `directory/collector.log`. Ready once /health (and the OTLP receiver's, if any) answers."""
    document = {**document, "telemetry": document.get("telemetry") or {"port": free_port()}}
    config = directory / "collector.yaml"
    config.write_text(yaml.safe_dump(document))
    telemetry = f"http://127.0.0.1:{document['telemetry']['port']}"
    otlp_port = ((document.get("receivers") or {}).get("otlp") or {}).get("port")
    otlp = f"http://127.0.0.1:{otlp_port}" if otlp_port else ""
    with open(directory / "collector.log", "ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "observer.cli", "collect", "--config", str(config)],
            stdout=output,
            stderr=output,
            env={**CLEAN_ENV, "LOG_LEVEL": "warning", **(env or {})},
        )
        try:
            _wait_healthy([telemetry, *([otlp] if otlp else [])], process, "observer collect")
            yield Collector(process, telemetry, otlp)
        finally:
            _stop(process)


@dataclass(frozen=True)
class AllInOnePorts:
    api: int
    internal: int
    otlp: int

    @classmethod
    def free(cls) -> AllInOnePorts:
        return cls(free_port(), free_port(), free_port())


@contextmanager
def all_in_one(data_dir: Path, ports: AllInOnePorts, log_file: Path) -> Iterator[subprocess.Popen]:
    """`observer up` (the embedded backend in `data_dir`) on the given ports."""
    command = [
        sys.executable,
        "-m",
        "observer.cli",
        "up",
        "--data-dir",
        str(data_dir),
        "--port",
        str(ports.api),
        "--internal-port",
        str(ports.internal),
        "--otlp-port",
        str(ports.otlp),
    ]
    with open(log_file, "ab") as output:
        # Its query API is not what these tests use, so no identity provider: authentication off.
        env = {**CLEAN_ENV, "LOG_LEVEL": "warning", "JWT_DISABLED": "true"}
        process = subprocess.Popen(command, stdout=output, stderr=output, env=env)
        try:
            urls = [f"http://127.0.0.1:{port}" for port in (ports.api, ports.internal, ports.otlp)]
            _wait_healthy(urls, process, "observer up")
            yield process
        finally:
            _stop(process)
