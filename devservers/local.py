"""Run an ASGI app on a free loopback port in a background thread: a real HTTP server for tests."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Literal

import httpx
import uvicorn


def wait_until_answering(process: subprocess.Popen, probe: Callable[[], bool], what: str, timeout_s: float) -> None:
    """Polls `probe` (an HTTP request; a connection error counts as "not yet") until it says yes; RuntimeError,
    naming `what`, when the process exits first or `timeout_s` passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if probe():
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError(f"{what} did not start (exit code {process.poll()})")
        time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serving(app, port: int | None = None, lifespan: Literal["auto", "on", "off"] = "off") -> Iterator[str]:
    """Yields the base URL while the app is served; stops the server on exit. `lifespan="on"` for apps whose
    startup matters (the public app with MCP runs its session manager in it)."""
    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan=lifespan, timeout_graceful_shutdown=5
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def docker_engine_answers() -> bool:
    """True when a Docker engine (not just the CLI) answers quickly, so testcontainers can be used."""
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=3).returncode == 0
    except (subprocess.TimeoutExpired, OSError):
        return False
