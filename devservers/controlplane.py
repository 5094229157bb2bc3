"""The control plane's REST API (`python -m controlplane.run`) as a separate process on a free loopback port."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx

from devservers.local import free_port, wait_until_answering

_PORT_RACE = b"is already in use"  # serving.PortUnavailable: another process took the port free_port() handed out
_ATTEMPTS = 3


@contextmanager
def controlplane_up(
    data_dir: Path,
    *extra_args: str,
    db: str = "",
    log_file: Path | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[str]:
    """The control plane on a free port, its store in `data_dir` (SQLite) unless `db` names one; yields its base
    URL. When the port was taken between the probe and the bind it is started again on a fresh port; any other
    failure to start raises with the end of the process's output."""
    data_dir.mkdir(parents=True, exist_ok=True)
    output_path = log_file or data_dir.parent / f"{data_dir.name}-controlplane.log"
    for attempt in range(1, _ATTEMPTS + 1):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        output = open(output_path, "wb")  # closed in `finally`
        process = _start(data_dir, port, db, extra_args, output, env)
        try:
            try:
                wait_until_answering(process, functools.partial(_healthy, url), "controlplane", 60)
            except RuntimeError as exc:
                said = output_path.read_bytes()
                if _PORT_RACE in said and attempt < _ATTEMPTS:
                    continue
                raise RuntimeError(f"{exc}; its output ends with:\n{said[-2000:].decode(errors='replace')}") from None
            yield url
            return
        finally:
            _stop(process)
            output.close()


def _start(
    data_dir: Path, port: int, db: str, extra_args: tuple[str, ...], output: IO[bytes], env: dict[str, str] | None
) -> subprocess.Popen:
    command = [sys.executable, "-m", "controlplane.run", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--data-dir", str(data_dir)]
    if db:
        command += ["--db", db]
    return subprocess.Popen(
        [*command, *extra_args],
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


def _healthy(url: str) -> bool:
    return httpx.get(f"{url}/ready", timeout=1).status_code == 200
