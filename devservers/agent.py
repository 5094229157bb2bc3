"""The plane agent (`python -m agents.run`, i.e. `observer agent`) as a separate process for tests.

The agent listens on nothing, so "up" cannot be probed from outside: the test's gateway sees it dial in. What
`agent_up` guarantees is that the process started and is stopped (SIGTERM, then SIGKILL after 30 s) on exit;
`Agent.output()` is its log, for assertions and for failure messages. `kill()` is the crash (SIGKILL), and
`connects()`, `failed_dials()` and `redial_delays()` read the tunnel's reconnect history from that log, so fault
tests assert on what the agent did rather than on wall time.

    with agent_up(tmp_path, plane_type="observabilityplane", plane_id="obs", server_url=url,
                  client_cert=cert, client_key=key, server_ca=ca, kubeconfig=account.kubeconfig) as agent:
        ...                                       # the gateway gets a connection
        assert agent.process.poll() is None
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# The agent's own log lines (agents/tunnel.py `run`) that the tests count.
_CONNECTED = "connected to the gateway"
_DIAL_FAILED = "cannot connect to the gateway"
_REDIAL = re.compile(r"redialling in ([0-9.]+) s")


@dataclass(frozen=True)
class Agent:
    process: subprocess.Popen[bytes]
    log_file: Path

    def output(self) -> str:
        return self.log_file.read_bytes().decode(errors="replace")

    def kill(self, timeout: float = 30) -> int:
        """SIGKILL: no drain and no close frame, the socket just drops (a node dying); returns the exit code."""
        if self.process.poll() is None:
            self.process.kill()
        return int(self.process.wait(timeout=timeout))

    def connects(self) -> int:
        """How many times the agent's tunnel came up (its `connected to the gateway` log lines)."""
        return self.output().count(_CONNECTED)

    def failed_dials(self) -> int:
        """How many dials failed (`cannot connect to the gateway`)."""
        return self.output().count(_DIAL_FAILED)

    def redial_delays(self) -> list[tuple[int, float]]:
        """Every redial wait the agent logged, as (failures since its last successful connect, seconds): the
        backoff's attempt number n and the delay it drew, which full jitter bounds by min(30, 2^n)."""
        delays: list[tuple[int, float]] = []
        attempt = 0
        for line in self.output().splitlines():
            if _CONNECTED in line:
                attempt = 0
            elif (found := _REDIAL.search(line)) is not None:
                delays.append((attempt, float(found.group(1))))
                attempt += 1
        return delays

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, wait (then SIGKILL); returns the exit code."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        return int(self.process.returncode)


def agent_command(
    *,
    plane_type: str,
    plane_id: str,
    server_url: str,
    client_cert: Path | None,
    client_key: Path | None,
    server_ca: Path | None,
    kubeconfig: Path | None,
    extra_args: tuple[str, ...] = (),
) -> list[str]:
    """The agent's command line; a None file flag is left out (to test the refusals)."""
    command = [sys.executable, "-m", "agents.run", "--plane-type", plane_type, "--plane-id", plane_id]
    command += ["--server-url", server_url]
    for flag, value in (
        ("--client-cert", client_cert),
        ("--client-key", client_key),
        ("--server-ca", server_ca),
        ("--kubeconfig", kubeconfig),
    ):
        if value is not None:
            command += [flag, str(value)]
    return [*command, *extra_args]


@contextmanager
def agent_up(
    directory: Path,
    *,
    plane_type: str,
    plane_id: str,
    server_url: str,
    client_cert: Path | None,
    client_key: Path | None,
    server_ca: Path | None,
    kubeconfig: Path | None,
    extra_args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    name: str = "agent",
) -> Iterator[Agent]:
    """Start the agent; stop it on exit. Its stdout and stderr go to `<directory>/<name>.log`."""
    directory.mkdir(parents=True, exist_ok=True)
    log_file = directory / f"{name}.log"
    command = agent_command(
        plane_type=plane_type,
        plane_id=plane_id,
        server_url=server_url,
        client_cert=client_cert,
        client_key=client_key,
        server_ca=server_ca,
        kubeconfig=kubeconfig,
        extra_args=extra_args,
    )
    with open(log_file, "wb") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=output, env={**os.environ, "LOG_LEVEL": "info", **(env or {})}
        )
        agent = Agent(process, log_file)
        try:
            yield agent
        finally:
            agent.stop()
