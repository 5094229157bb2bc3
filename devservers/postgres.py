"""A real PostgreSQL for the alert store's tests, started once per session on loopback.

Order: ``POSTGRES_DSN`` if set; else Debian's server binaries (/usr/lib/postgresql/*/bin, installed by
`make servers` when missing), run as the ``postgres`` user when the tests run as root (PostgreSQL refuses root).
Each test gets its own database from `fresh_database()`, so tests never see each other's rows.
"""

from __future__ import annotations

import atexit
import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg


def _bin_dir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    if not candidates:
        raise RuntimeError("no PostgreSQL server binaries: run `make servers` (installs Debian's postgresql)")
    return Path(candidates[0])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    def __init__(self, dsn: str, stopper=None):
        self.dsn = dsn
        self._stopper = stopper
        self._names = itertools.count()
        atexit.register(self.stop)

    def fresh_database(self) -> str:
        """A new empty database; returns its SQLAlchemy DSN."""
        name = f"t{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        base, _, _ = self.dsn.rpartition("/")
        return f"postgresql+psycopg://{base.split('://', 1)[1]}/{name}"

    def stop(self) -> None:
        if self._stopper:
            stopper, self._stopper = self._stopper, None
            stopper()


def start_postgres(data_root: Path) -> PostgresServer:
    if os.environ.get("POSTGRES_DSN"):
        return PostgresServer(os.environ["POSTGRES_DSN"])
    bin_dir = _bin_dir()
    # pytest's own tmp tree is private to root; the postgres user needs a directory it can reach.
    data_root = Path(tempfile.mkdtemp(prefix="observer-postgres-"))
    data = data_root / "pgdata"
    port = _free_port()
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_postgres:
        shutil.chown(data_root, "postgres")
    subprocess.run(
        [*as_postgres, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"],
        check=True,
        capture_output=True,
    )
    process = subprocess.Popen(
        [
            *as_postgres,
            str(bin_dir / "postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-h",
            "127.0.0.1",
            "-k",
            str(data_root),
            "-c",
            "fsync=off",
            "-c",
            "max_connections=200",
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(data_root / "postgres.log", "wb"),
    )
    dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    deadline = time.monotonic() + 60
    while True:
        try:
            psycopg.connect(dsn, connect_timeout=2).close()
            break
        except psycopg.OperationalError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not start; see {data_root / 'postgres.log'}") from None
            time.sleep(0.2)

    def stop() -> None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(data_root, ignore_errors=True)

    return PostgresServer(dsn, stop)
