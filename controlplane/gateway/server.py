"""Running the gateway's two listeners: the agent listener (8443) and the internal listener (8444).

The health endpoints of upstream's hard-coded :8080 are not served here: that port is the observer's, and the
lead's run.py decides where health lives.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from controlplane.gateway.agent_server import agent_app
from controlplane.gateway.internal import internal_app
from controlplane.gateway.service import PROXY_TIMEOUT_S, Gateway

SHUTDOWN_TIMEOUT_S = 5.0


@dataclass
class Listeners:
    """The running listeners and the ports they got (useful when asked for port 0)."""

    gateway: Gateway
    agent_port: int
    internal_port: int
    _runners: tuple[web.AppRunner, ...]

    async def close(self) -> None:
        """Stop accepting first (an agent redialling at once must not land on a closing listener), then disconnect
        the agents (their handlers would hold the shutdown), then finish both listeners."""
        for runner in self._runners:
            for site in list(runner.sites):
                await site.stop()
        await self.gateway.close()
        for runner in self._runners:
            await runner.cleanup()


def plain_tls_context(cert_file: str | Path, key_file: str | Path) -> ssl.SSLContext:
    """The internal listener with INTERNAL_MTLS_ENABLED=false: TLS >= 1.2 and no client certificate (upstream's
    switch for clusters where the network already restricts who reaches 8444)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert_file), str(key_file))
    return context


def _port(runner: web.AppRunner) -> int:
    address = runner.addresses[0]
    return int(address[1])


async def start(
    gateway: Gateway,
    *,
    host: str = "127.0.0.1",
    agent_port: int = 0,
    internal_port: int = 0,
    agent_ssl: ssl.SSLContext,
    internal_ssl: ssl.SSLContext,
    proxy_timeout: float = PROXY_TIMEOUT_S,
    agent_sock: socket.socket | None = None,
    internal_sock: socket.socket | None = None,
) -> Listeners:
    """Serve both listeners: on sockets already bound (`serving.bind_all`, so a port clash is reported before
    anything starts), else on `host` and the ports (0 picks a free one). `agent_ssl` is attached to the gateway,
    so plane CAs learnt through notify reach its handshake."""
    gateway.attach_tls(agent_ssl)
    runners: list[web.AppRunner] = []
    ports: list[int] = []
    try:
        for app, port, sock, context in (
            (agent_app(gateway), agent_port, agent_sock, agent_ssl),
            (internal_app(gateway, proxy_timeout), internal_port, internal_sock, internal_ssl),
        ):
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
            await runner.setup()
            runners.append(runner)
            site: web.BaseSite
            if sock is not None:
                site = web.SockSite(runner, sock, ssl_context=context)
            else:
                site = web.TCPSite(runner, host, port, ssl_context=context)
            await site.start()
            ports.append(_port(runner))
    except BaseException:
        for runner in runners:
            await runner.cleanup()
        raise
    return Listeners(gateway, ports[0], ports[1], tuple(runners))
