"""The control plane (`python -m controlplane.run`) as a separate process on free loopback ports: its REST API
and, given the gateway's certificates, its cluster gateway.

    with controlplane_up(data_dir) as url: ...                       # the API only
    with controlplane_process(data_dir, gateway=gateway_env(pki)) as cp:
        cp.url, cp.agent_url("dataplane", "dp-a"), cp.internal_port  # the API and the gateway
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

from devservers.local import free_port, wait_until_answering

_PORT_RACE = b"is already in use"  # serving.PortUnavailable: another process took the port free_port() handed out
_ATTEMPTS = 3


@dataclass(frozen=True)
class RunningControlPlane:
    """A started control plane: its API URL, its gateway ports (0 when the gateway is off) and its log."""

    url: str
    agent_port: int
    internal_port: int
    log_file: Path
    process: subprocess.Popen[bytes]

    def agent_url(self, plane_type: str, plane_id: str) -> str:
        """The WebSocket URL an agent of that plane dials."""
        return f"wss://127.0.0.1:{self.agent_port}/ws?planeType={plane_type}&planeID={plane_id}"

    def internal_url(self, path: str) -> str:
        """A URL on the internal listener (the proxy and the plane API)."""
        return f"https://127.0.0.1:{self.internal_port}{path}"

    def output(self) -> str:
        return self.log_file.read_bytes().decode(errors="replace")


@contextmanager
def controlplane_up(
    data_dir: Path,
    *extra_args: str,
    db: str = "",
    log_file: Path | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[str]:
    """The control plane's API on a free port, its store in `data_dir` (SQLite) unless `db` names one; yields its
    base URL (see `controlplane_process` for the gateway)."""
    with controlplane_process(data_dir, *extra_args, db=db, log_file=log_file, env=env) as running:
        yield running.url


@contextmanager
def controlplane_process(
    data_dir: Path,
    *extra_args: str,
    db: str = "",
    log_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    gateway: Mapping[str, str] | None = None,
) -> Iterator[RunningControlPlane]:
    """The control plane on free ports; with `gateway` (SERVER_CERT_PATH etc., see
    devservers.gateway_certs.gateway_env) its gateway too, on two more free ports (on a PostgreSQL `db`, a replica:
    CONTROLPLANE_PEER_URL defaults to its own internal port; the CLUSTER_GATEWAY_* client settings come from the
    caller's `env`). When a port was taken between the probe and the bind it is started again on fresh ports; any
    other failure to start raises with the end of the process's output."""
    data_dir.mkdir(parents=True, exist_ok=True)
    output_path = log_file or data_dir.parent / f"{data_dir.name}-controlplane.log"
    for attempt in range(1, _ATTEMPTS + 1):
        port = free_port()
        agent_port = internal_port = 0
        variables = dict(env or {})
        if gateway is not None:
            agent_port, internal_port = free_port(), free_port()
            variables |= {**gateway, "AGENT_SERVER_PORT": str(agent_port), "AGENT_INTERNAL_PORT": str(internal_port)}
            if db.startswith("postgres") and "CONTROLPLANE_PEER_URL" not in variables:
                variables["CONTROLPLANE_PEER_URL"] = f"https://127.0.0.1:{internal_port}"  # a replica (replicas.py)
        url = f"http://127.0.0.1:{port}"
        output = open(output_path, "wb")  # closed in `finally`
        process = _start(data_dir, port, db, extra_args, output, variables)
        try:
            try:
                wait_until_answering(process, functools.partial(_healthy, url), "controlplane", 60)
            except RuntimeError as exc:
                said = output_path.read_bytes()
                if _PORT_RACE in said and attempt < _ATTEMPTS:
                    continue
                raise RuntimeError(f"{exc}; its output ends with:\n{said[-2000:].decode(errors='replace')}") from None
            yield RunningControlPlane(url, agent_port, internal_port, output_path, process)
            return
        finally:
            _stop(process)
            output.close()


def _start(
    data_dir: Path, port: int, db: str, extra_args: tuple[str, ...], output: IO[bytes], env: Mapping[str, str]
) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "controlplane.run", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--data-dir", str(data_dir)]
    if db:
        command += ["--db", db]
    return subprocess.Popen(
        [*command, *extra_args],
        stdout=output,
        stderr=output,
        env={**os.environ, "LOG_LEVEL": "warning", "JWT_DISABLED": "true", **env},
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def _healthy(url: str) -> bool:
    return httpx.get(f"{url}/ready", timeout=1).status_code == 200
