"""Serving HTTP apps: bind every port first, then run several uvicorn servers in one event loop until a signal.

Neutral ground for every process that serves (`observer up`, `observer collect`, the test servers): it imports
nothing of ours, so the collector need not import the observer to run its `/metrics` port.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import socket
import ssl
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import uvicorn
from starlette.applications import Starlette

log = logging.getLogger(__name__)

T = TypeVar("T")


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals to the runner, which stops all servers together."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def server(
    app: Starlette,
    host: str,
    port: int,
    log_level: str = "info",
    *,
    ssl_certfile: Path | str | None = None,
    ssl_keyfile: Path | str | None = None,
    ssl_ca_certs: Path | str | None = None,
    ssl_cert_reqs: int = ssl.CERT_NONE,
) -> uvicorn.Server:
    """Lifespan runs only for apps that declare one (the public app with MCP: its session manager).

    With `ssl_certfile` the port serves HTTPS; `ssl_ca_certs` with `ssl_cert_reqs=ssl.CERT_REQUIRED` makes the
    handshake demand a client certificate signed by that CA (the internal port's mutual TLS; the files are
    checked beforehand by observer.auth.internal.internal_security, so a mistake never gets this far)."""
    lifespan: Literal["on", "off"] = "on" if getattr(app.state, "mcp", None) is not None else "off"
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level.lower(),
        access_log=False,
        lifespan=lifespan,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        ssl_ca_certs=ssl_ca_certs,
        ssl_cert_reqs=ssl_cert_reqs,
    )
    return _Server(config)


class PortUnavailable(OSError):
    """A port cannot be listened on (in use, not permitted, no such address). The message is one line that
    names the port and the setting that chooses it, for the command line to print as it is."""


@dataclass
class Beside:
    """What one more component runs in a process's event loop: uvicorn servers on their bound sockets, and
    coroutines next to them (the control plane inside `observer up`). The coroutines are awaited after the
    servers stop, so they can say goodbye (close their connections, write a last status)."""

    servers: list[uvicorn.Server]
    sockets: list[socket.socket]
    coroutines: list[Coroutine[Any, Any, None]]


@dataclass(frozen=True, slots=True)
class Listen:
    """A port to open: what it serves, and which flag or variables choose it (for the message on a clash)."""

    host: str
    port: int
    serves: str = ""
    setting: str = ""


def bind(listen: Listen) -> socket.socket:
    """A listening socket for `listen`, or PortUnavailable. Binding happens before anything else starts, so a
    clash is reported at once, in one line, and nothing (no store, no demo traffic) was started for nothing."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(listen.host, listen.port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise PortUnavailable(
            f"cannot listen on {listen.host}:{listen.port}: {listen.host!r} is not an address "
            f"of this machine ({exc.strerror})"
        ) from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart reuses ports in TIME_WAIT
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        why = {
            errno.EADDRINUSE: "is already in use",
            errno.EACCES: "needs privileges this process lacks",
            errno.EADDRNOTAVAIL: "is on an address this machine does not have",
        }.get(exc.errno or 0, f"failed: {exc.strerror}")
        choose = f"; choose another with {listen.setting}" if listen.setting else ""
        serves = f" ({listen.serves})" if listen.serves else ""
        raise PortUnavailable(f"port {listen.port} on {listen.host}{serves} {why}{choose}") from None
    return sock


def bind_all(listens: Sequence[Listen]) -> list[socket.socket]:
    """Every port, or none: on the first failure the ones already open are closed and PortUnavailable raised."""
    bound: list[socket.socket] = []
    try:
        for listen in listens:
            bound.append(bind(listen))
    except PortUnavailable:
        for sock in bound:
            sock.close()
        raise
    return bound


async def _when_started(servers: Sequence[uvicorn.Server], on_ready: Callable[[], object]) -> None:
    """Runs `on_ready` (in a thread: it may print and send demo traffic to our own ports) once every server
    has started accepting connections."""
    while not all(each.started for each in servers):
        if any(each.should_exit for each in servers):
            return
        await asyncio.sleep(0.05)
    try:
        await asyncio.get_running_loop().run_in_executor(None, on_ready)
    except Exception:  # a failing hook (the banner, demo traffic) must not take the servers down
        log.exception("start-up hook failed")


async def run_servers(
    servers: list[uvicorn.Server],
    *background: asyncio.Task,
    sockets: Sequence[socket.socket] | None = None,
    on_ready: Callable[[], object] | None = None,
) -> None:
    """Serves until SIGINT/SIGTERM, then shuts every server down gracefully and cancels the background tasks.
    A background task that dies stops the process too (with its traceback logged), so an orchestrator restarts
    it rather than leaving it up with a pipeline silently gone.

    `sockets` (one per server, from `bind_all`) are what the servers listen on; without them every server's
    port is bound here first, so a port in use raises PortUnavailable before any server starts. `on_ready`
    runs once all of them accept connections (where `observer up` says it is up)."""
    loop = asyncio.get_running_loop()
    if sockets is None:
        try:
            sockets = bind_all([Listen(each.config.host, each.config.port) for each in servers])
        except PortUnavailable:
            for task in background:
                task.cancel()
            raise
    if len(sockets) != len(servers):
        raise ValueError("run_servers needs one socket per server")
    failed: list[BaseException] = []

    def stop() -> None:
        for each in servers:
            each.should_exit = True

    def watch(task: asyncio.Task) -> None:
        error = None if task.cancelled() else task.exception()
        if error is None:
            return
        failed.append(error)
        log.error("background task %s failed; stopping", task.get_name(), exc_info=error)
        stop()

    for task in background:
        task.add_done_callback(watch)
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop)
    ready = [asyncio.create_task(_when_started(servers, on_ready), name="on-ready")] if on_ready else []
    try:
        await asyncio.gather(*(each.serve(sockets=[sock]) for each, sock in zip(servers, sockets, strict=True)))
    finally:
        for task in (*background, *ready):
            task.cancel()
        for sock in sockets:
            sock.close()
    if failed:
        raise SystemExit(1)


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run` on uvloop where it is installed (uvicorn[standard] brings it on Linux and macOS): its
    sockets cost a fraction of the standard loop's, and a query's own socket work (its client's request, the
    authorization call, the name lookups, the backend search) was a fifth of the observer's CPU on the
    standard loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)
