"""The real all-in-one (`observer up`) as a separate process on free loopback ports."""

from __future__ import annotations

import functools
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


_PORT_RACE = b"is already in use"  # serving.PortUnavailable: another process took a port free_port() handed out
_ATTEMPTS = 3


@contextmanager
def observer_up(
    data_dir: Path, *extra_args: str, log_file: Path | None = None, env: dict[str, str] | None = None
) -> Iterator[AllInOne]:
    """`observer up` on three free loopback ports. A free port can be taken by another process between the probe
    and the bind; when the observer says so, it is started again on fresh ports. Any other failure to start raises,
    with the end of the observer's own output in the message."""
    output_path = log_file or data_dir.parent / f"{data_dir.name}-observer.log"
    for attempt in range(1, _ATTEMPTS + 1):
        ports = [free_port() for _ in range(3)]
        output = open(output_path, "wb")  # closed in `finally`
        process = _start(data_dir, ports, extra_args, output, env)
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        try:
            try:
                wait_until_answering(process, functools.partial(_all_healthy, urls), "observer up", 60)
            except RuntimeError as exc:
                said = output_path.read_bytes()
                if _PORT_RACE in said and attempt < _ATTEMPTS:
                    continue
                raise RuntimeError(f"{exc}; its output ends with:\n{said[-2000:].decode(errors='replace')}") from None
            yield AllInOne(urls[0], urls[1], urls[2], process)
            return
        finally:
            _stop(process)
            output.close()


def _start(
    data_dir: Path, ports: list[int], extra_args: tuple[str, ...], output: IO[bytes], env: dict[str, str] | None
) -> subprocess.Popen:
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
    return subprocess.Popen(
        command,
        stdout=output,
        stderr=output,
        env={**os.environ, "LOG_LEVEL": "warning", "JWT_DISABLED": "true", **(env or {})},
    )


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def _all_healthy(urls: list[str]) -> bool:
    return all(_healthy(url) for url in urls)


def _healthy(url: str) -> bool:
    return httpx.get(f"{url}/health", timeout=1).status_code == 200
