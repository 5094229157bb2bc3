"""The real all-in-one (`observer up`) as a separate process on free loopback ports."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

from devservers.local import free_port, wait_until_answering


@dataclass(frozen=True)
class AllInOne:
    api: str
    internal: str
    otlp: str
    process: subprocess.Popen


@contextmanager
def observer_up(
    data_dir: Path, *extra_args: str, log_file: Path | None = None, env: dict[str, str] | None = None
) -> Iterator[AllInOne]:
    ports = [free_port() for _ in range(3)]
    command = [
        sys.executable,
        "-m",
        "observer.cli",
        "up",
        "--data-dir",
        str(data_dir),
        "--port",
        str(ports[0]),
        "--internal-port",
        str(ports[1]),
        "--otlp-port",
        str(ports[2]),
        *extra_args,
    ]
    output: IO[bytes] | int = open(log_file, "wb") if log_file else subprocess.DEVNULL  # closed in `finally`
    process = subprocess.Popen(
        command,
        stdout=output,
        stderr=output,
        env={**os.environ, "LOG_LEVEL": "warning", "JWT_DISABLED": "true", **(env or {})},
    )
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        wait_until_answering(process, lambda: all(_healthy(url) for url in urls), "observer up", 60)
        yield AllInOne(urls[0], urls[1], urls[2], process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        if not isinstance(output, int):
            output.close()


def _healthy(url: str) -> bool:
    return httpx.get(f"{url}/health", timeout=1).status_code == 200
