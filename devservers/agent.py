"""The plane agent (`python -m agents.run`, i.e. `observer agent`) as a separate process for tests.

The agent listens on nothing, so "up" cannot be probed from outside: the test's gateway sees it dial in. What
`agent_up` guarantees is that the process started and is stopped (SIGTERM, then SIGKILL after 30 s) on exit;
`Agent.output()` is its log, for assertions and for failure messages.

    with agent_up(tmp_path, plane_type="observabilityplane", plane_id="obs", server_url=url,
                  client_cert=cert, client_key=key, server_ca=ca, kubeconfig=account.kubeconfig) as agent:
        ...                                       # the gateway gets a connection
        assert agent.process.poll() is None
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Agent:
    process: subprocess.Popen[bytes]
    log_file: Path

    def output(self) -> str:
        return self.log_file.read_bytes().decode(errors="replace")

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
