"""`observer agent` / `python -m agents.run`: the plane agent's process (flags in agents/config.py).

Exit codes: 0 after SIGTERM/SIGINT (requests in flight answered first, bounded), 2 when a setting is unusable
(one line on stderr naming the flag to fix). Connection failures never exit: the agent keeps redialling.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import ssl
import sys

from agents.config import AgentConfig, ConfigError, dial_url, parse
from agents.kube import CredentialsError, KubeReplayer, KubeTarget, from_kubeconfig, in_cluster
from agents.tunnel import run as run_tunnel

log = logging.getLogger("agents.run")


def main(argv: list[str] | None = None) -> int:
    """Parse the flags, load the credentials, run until SIGTERM. Returns the process exit code."""
    level = logging.getLevelName(os.environ.get("LOG_LEVEL", "info").upper())
    logging.basicConfig(
        level=level if isinstance(level, int) else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    try:
        config = parse(sys.argv[1:] if argv is None else argv)
        tls = config.gateway_tls()
        target = from_kubeconfig(config.kubeconfig) if config.kubeconfig else in_cluster()
    except (ConfigError, CredentialsError) as exc:
        print(f"observer agent: {exc}", file=sys.stderr)
        return 2
    asyncio.run(_serve(config, tls, target))
    return 0


async def _serve(config: AgentConfig, tls: ssl.SSLContext, target: KubeTarget) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    url = dial_url(config)
    log.info("agent for %s/%s dialling %s", config.plane_type, config.plane_id, url)
    async with KubeReplayer(target, max_connections=config.max_concurrent) as replayer:
        tunnel = run_tunnel(url, tls, replayer.handle, stop, max_concurrent=config.max_concurrent)
        if config.observer_url:
            await asyncio.gather(tunnel, _alert_rules(config, stop))
        else:
            await tunnel
    log.info("agent stopped")


async def _alert_rules(config: AgentConfig, stop: asyncio.Event) -> None:
    """An observability plane's own reconciler (upstream runs it as a separate controller): the plane's alert
    rules and channels into its observer. It needs only this cluster and the observer, so it goes on while the
    control plane is away."""
    from agents.alert_rules import run_alert_rules
    from agents.observer_client import ObserverClient
    from collectors.kubernetes.watch import api_client

    log.info("reconciling alert rules into %s (%s API)", config.observer_url, config.observer_api)
    kube = api_client(config.kubeconfig)
    try:
        async with ObserverClient(config.observer_url, token=config.observer_token) as observer:
            await run_alert_rules(kube, observer, stop, observer_api=config.observer_api)
    finally:
        kube.close()


if __name__ == "__main__":
    sys.exit(main())
