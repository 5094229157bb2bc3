"""The plane agent's settings: upstream cluster-agent's flags (CPN §2-§3), plus `--kubeconfig` (ours, for tests).

Upstream connects to the gateway unverified when `--server-ca` is missing or unreadable (CPN §3, agent.go `New`).
We refuse instead: the agent replays whatever arrives on that socket with its ServiceAccount, so an unverified
gateway is a cluster takeover. `parse` raises `ConfigError` with one line that says what to fix.
"""

from __future__ import annotations

import argparse
import os
import re
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from agents.alert_rules import DEFAULT_OBSERVER_API, OBSERVER_APIS, ObserverApi

PLANE_TYPES = ("dataplane", "observabilityplane", "workflowplane")
DEFAULT_SERVER_URL = "wss://cluster-gateway:8443/ws"  # upstream's binary default (env SERVER_URL)
DEFAULT_OBSERVER_URL = "http://observer-internal.openchoreo-observability-plane:8081"  # upstream's controller default
MAX_CONCURRENT_REQUESTS = 64
_PLANE_ID = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")  # the CRDs' spec.planeID pattern (CPN §5)


class ConfigError(ValueError):
    """A setting the agent cannot run with; the message is one line naming the flag to fix."""


@dataclass(frozen=True)
class AgentConfig:
    plane_type: str
    plane_id: str
    server_url: str
    client_cert: Path
    client_key: Path
    server_ca: Path
    kubeconfig: Path | None = None
    max_concurrent: int = MAX_CONCURRENT_REQUESTS
    # On an observability plane: the observer whose internal port the alert-rule reconciler writes to.
    observer_url: str = ""
    observer_token: str = field(default="", repr=False)
    observer_api: ObserverApi = DEFAULT_OBSERVER_API

    def gateway_tls(self) -> ssl.SSLContext:
        """Client-side TLS to the gateway: the server verified against --server-ca (hostname checked), our client
        certificate presented. Raises ConfigError when a file is not a usable PEM certificate or key."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies and checks the hostname; no system CAs
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_verify_locations(cafile=str(self.server_ca))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"--server-ca {self.server_ca}: not a readable PEM CA certificate ({exc})") from None
        try:
            context.load_cert_chain(str(self.client_cert), str(self.client_key))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"--client-cert {self.client_cert} / --client-key {self.client_key}: not a matching PEM "
                f"certificate and key ({exc})"
            ) from None
        return context


def parser() -> argparse.ArgumentParser:
    """The flags, named as upstream's cluster-agent names them; each may also come from an environment variable."""
    env = os.environ.get
    p = argparse.ArgumentParser(
        prog="observer agent",
        description="Dial the control plane's cluster gateway and replay its requests against this plane's "
        "Kubernetes API with this agent's ServiceAccount.",
    )
    p.add_argument("--plane-type", default=env("PLANE_TYPE"), help=f"one of {', '.join(PLANE_TYPES)}")
    p.add_argument("--plane-id", default=env("PLANE_ID"), help="the plane CR's spec.planeID (or its name)")
    p.add_argument("--server-url", default=env("SERVER_URL", DEFAULT_SERVER_URL), help="the gateway's wss:// URL")
    p.add_argument("--client-cert", default=env("CLIENT_CERT_PATH"), help="PEM client certificate (clientAuth)")
    p.add_argument("--client-key", default=env("CLIENT_KEY_PATH"), help="PEM key of --client-cert")
    p.add_argument("--server-ca", default=env("SERVER_CA_PATH"), help="PEM CA that signed the gateway's certificate")
    p.add_argument(
        "--kubeconfig",
        default=env("AGENT_KUBECONFIG"),
        help="kubeconfig of the plane's API server (default: in-cluster ServiceAccount)",
    )
    p.add_argument("--max-concurrent", type=int, default=MAX_CONCURRENT_REQUESTS, help="requests in flight at once")
    p.add_argument(
        "--observer-url",
        default=env("OBSERVER_INTERNAL_ENDPOINT", env("OBSERVER_ENDPOINT", DEFAULT_OBSERVER_URL)),
        help="observability planes: the observer's internal port, where alert rules and channels are reconciled "
        "(upstream's OBSERVER_INTERNAL_ENDPOINT; default %(default)s)",
    )
    p.add_argument(
        "--observer-api",
        choices=OBSERVER_APIS,
        default=env("OBSERVER_API", DEFAULT_OBSERVER_API),
        help="'resources' for this project's observer (whole rules with their channels), 'upstream' for "
        "OpenChoreo's observer (its rule API only)",
    )
    return p


def parse(argv: list[str]) -> AgentConfig:
    """Flags -> AgentConfig; ConfigError (one line) on a missing or invalid setting. Files are checked for being
    readable here; their contents are checked by `AgentConfig.gateway_tls` and the kube credential loader."""
    ns = parser().parse_args(argv)
    if ns.plane_type not in PLANE_TYPES:
        raise ConfigError(f"--plane-type must be one of {', '.join(PLANE_TYPES)} (got {ns.plane_type!r})")
    if not ns.plane_id or len(ns.plane_id) > 63 or not _PLANE_ID.match(ns.plane_id):
        raise ConfigError(f"--plane-id must be a DNS label of at most 63 characters (got {ns.plane_id!r})")
    if not str(ns.server_url).startswith("wss://"):
        raise ConfigError(f"--server-url must be a wss:// URL (got {ns.server_url!r})")
    if not ns.server_ca:
        raise ConfigError(
            "--server-ca is required: the PEM CA that signed the gateway's certificate (the agent never connects "
            "unverified)"
        )
    if ns.observer_api not in OBSERVER_APIS:
        raise ConfigError(f"--observer-api must be one of {', '.join(OBSERVER_APIS)} (got {ns.observer_api!r})")
    if not 1 <= ns.max_concurrent <= 4096:
        raise ConfigError(f"--max-concurrent must be between 1 and 4096 (got {ns.max_concurrent})")
    files = {"--server-ca": ns.server_ca, "--client-cert": ns.client_cert, "--client-key": ns.client_key}
    if ns.kubeconfig:
        files["--kubeconfig"] = ns.kubeconfig
    for flag, value in files.items():
        if not value:
            raise ConfigError(f"{flag} is required")
        if not os.access(value, os.R_OK) or not Path(value).is_file():
            raise ConfigError(f"{flag} {value}: no readable file there")
    return AgentConfig(
        plane_type=ns.plane_type,
        plane_id=ns.plane_id,
        server_url=ns.server_url,
        client_cert=Path(ns.client_cert),
        client_key=Path(ns.client_key),
        server_ca=Path(ns.server_ca),
        kubeconfig=Path(ns.kubeconfig) if ns.kubeconfig else None,
        max_concurrent=ns.max_concurrent,
        observer_url=ns.observer_url if ns.plane_type == "observabilityplane" else "",
        observer_token=os.environ.get("OBSERVER_INTERNAL_TOKEN", ""),  # never a flag: it would show in `ps`
        observer_api=ns.observer_api,
    )


def dial_url(config: AgentConfig) -> str:
    """The gateway URL with `?planeType=&planeID=` (agent.go `connect`). Upstream's server URL already ends in /ws
    (chart default `wss://cluster-gateway...:8443/ws`); a bare `wss://host:port` gets /ws appended."""
    base = config.server_url.split("?", 1)[0].rstrip("/")
    if not base.endswith("/ws"):
        base += "/ws"
    return f"{base}?planeType={config.plane_type}&planeID={config.plane_id}"
