"""`observer up` binds its ports before it says it is up, and a port it cannot have is one line, not a traceback.

The real command runs as a subprocess; the test holds a port with a listening socket of its own, as another
program on the machine would.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from devservers.local import free_port

pytestmark = pytest.mark.integration


@contextmanager
def held_port() -> Iterator[int]:
    """A loopback port some other program listens on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


def up_command(data_dir: Path, port: int, internal: int, otlp: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "observer.cli",
        "up",
        "--data-dir",
        str(data_dir),
        "--port",
        str(port),
        "--internal-port",
        str(internal),
        "--otlp-port",
        str(otlp),
    ]


def run_up(data_dir: Path, port: int, internal: int, otlp: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "JWT_DISABLED": "true"}
    return subprocess.run(
        up_command(data_dir, port, internal, otlp), capture_output=True, text=True, env=env, timeout=60
    )


@pytest.mark.parametrize(
    ("which", "setting"),
    [(0, "--port or SERVER_PORT / PORT"), (1, "--internal-port"), (2, "--otlp-port or OTLP_HTTP_PORT / OTLP_PORT")],
)
def test_a_port_in_use_is_one_line_naming_the_port_and_its_setting(tmp_path: Path, which: int, setting: str) -> None:
    with held_port() as taken:
        ports = [free_port(), free_port(), free_port()]
        ports[which] = taken
        result = run_up(tmp_path / "data", *ports)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and "is up" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"observer up: port {taken} on 127.0.0.1 (")
    assert "is already in use" in lines[0] and setting in lines[0]
    assert not (tmp_path / "data").exists(), "nothing is opened before the ports are had"


def test_is_up_is_printed_only_once_every_port_accepts(tmp_path: Path) -> None:
    ports = [free_port(), free_port(), free_port()]
    env = {**os.environ, "JWT_DISABLED": "true", "LOG_LEVEL": "warning"}
    process = subprocess.Popen(up_command(tmp_path / "data", *ports), stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        assert process.stderr is not None
        for line in process.stderr:
            if "is up" in line:
                break
            assert time.monotonic() < deadline, "no `is up` within 60 s"
        else:
            pytest.fail(f"observer up exited ({process.wait()}) without saying it is up")
        for port in ports:  # the moment it says so, every port answers
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
    assert process.returncode == 0


def test_collect_with_its_port_in_use_says_so_in_one_line(tmp_path: Path) -> None:
    """`observer collect` binds through the same serving.run_servers: a clash is one line naming the port."""
    with held_port() as taken:
        config = tmp_path / "collector.yaml"
        config.write_text(
            f"receivers: {{otlp: {{host: 127.0.0.1, port: {free_port()}}}}}\n"
            f"buffer: {{directory: {tmp_path / 'buffer'}}}\nexporter: {{data_dir: {tmp_path / 'data'}}}\n"
            f"telemetry: {{host: 127.0.0.1, port: {taken}}}\n"
        )
        env = {**os.environ, "LOG_LEVEL": "warning"}
        result = subprocess.run(
            [sys.executable, "-m", "observer.cli", "collect", "--config", str(config)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"observer collect: port {taken} on 127.0.0.1 is already in use (set it in {config})"
    ]
