"""The control plane's settings, from the environment (pydantic-settings), with the observer's naming habits.

`CONTROLPLANE_DB` picks the store: a `sqlite:///path` or `postgresql://...` URL. Without it the store is SQLite in
the observer's data directory (`OBSERVER_DATA_DIR`, default `./data`), so `observer up` and `observer controlplane`
started from one directory keep their state side by side.

The cluster gateway takes upstream's variable names (CPN §2): `AGENT_SERVER_PORT` (8443, agents' WebSockets),
`AGENT_INTERNAL_PORT` (8444, the proxy and plane API), `SERVER_CERT_PATH` / `SERVER_KEY_PATH` (its certificate),
`INTERNAL_MTLS_ENABLED` (default true) with `INTERNAL_CLIENT_CA_PATH`, `HEARTBEAT_INTERVAL` / `HEARTBEAT_TIMEOUT`
(seconds, or Go durations such as `30s`, `1m30s`). Unlike upstream there is no default certificate path: without
SERVER_CERT_PATH the gateway is off (the process serves only the API and says so), so a laptop needs no PKI.

Replicas (controlplane/replicas.py): on a PostgreSQL store with the gateway on, each replica needs
`CONTROLPLANE_PEER_URL` (its own 8444 as the others reach it, `https://host:8444`) and `CLUSTER_GATEWAY_CA_CERT`
(the CA of the peers' SERVER_CERT_PATH), plus `CLUSTER_GATEWAY_CLIENT_CERT` / `CLUSTER_GATEWAY_CLIENT_KEY` (a
certificate of INTERNAL_CLIENT_CA_PATH's CA) when INTERNAL_MTLS_ENABLED: upstream's controller-manager names for
its gateway client. `REPLICA_HEARTBEAT_INTERVAL` (5s) paces the leader-lock retry and the agent directory.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def seconds(value: Any) -> Any:
    """`30`, `30.5`, `"30"` or a Go duration (`"30s"`, `"1m30s"`, `"500ms"`) -> seconds; anything else is left
    for pydantic to refuse with its own message."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        return value
    return sum(float(number) * _UNIT_S[unit] for number, unit in parts)


class ControlPlaneSettings(BaseSettings):
    """What `observer controlplane` (controlplane/run.py) reads from the environment; flags override it. The API's
    authentication settings (JWT_DISABLED, JWKS_URL, ...) are access/settings.py's, read by controlplane/auth.py."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    host: str = Field("127.0.0.1", validation_alias=AliasChoices("CONTROLPLANE_HOST", "OBSERVER_HOST", "HOST"))
    api_port: int = Field(8090, validation_alias="CONTROLPLANE_API_PORT", gt=0, lt=65536)
    db: str = Field("", validation_alias="CONTROLPLANE_DB")
    data_dir: Path = Field(Path("data"), validation_alias="OBSERVER_DATA_DIR")
    log_level: str = Field("info", validation_alias="LOG_LEVEL")

    agent_port: int = Field(8443, validation_alias="AGENT_SERVER_PORT", gt=0, lt=65536)
    internal_port: int = Field(8444, validation_alias="AGENT_INTERNAL_PORT", gt=0, lt=65536)
    server_cert_path: Path | None = Field(None, validation_alias="SERVER_CERT_PATH")
    server_key_path: Path | None = Field(None, validation_alias="SERVER_KEY_PATH")
    internal_mtls_enabled: bool = Field(True, validation_alias="INTERNAL_MTLS_ENABLED")
    internal_client_ca_path: Path | None = Field(None, validation_alias="INTERNAL_CLIENT_CA_PATH")
    heartbeat_interval: float = Field(30.0, validation_alias="HEARTBEAT_INTERVAL", gt=0, le=3600)
    heartbeat_timeout: float = Field(90.0, validation_alias="HEARTBEAT_TIMEOUT", gt=0, le=3600)
    status_interval: float = Field(60.0, validation_alias="STATUS_UPDATE_INTERVAL", gt=0, le=3600)
    proxy_timeout: float = Field(30.0, validation_alias="PROXY_TIMEOUT", gt=0, le=600)
    peer_url: str = Field("", validation_alias="CONTROLPLANE_PEER_URL")
    gateway_ca_cert: Path | None = Field(None, validation_alias="CLUSTER_GATEWAY_CA_CERT")
    gateway_client_cert: Path | None = Field(None, validation_alias="CLUSTER_GATEWAY_CLIENT_CERT")
    gateway_client_key: Path | None = Field(None, validation_alias="CLUSTER_GATEWAY_CLIENT_KEY")
    replica_interval: float = Field(5.0, validation_alias="REPLICA_HEARTBEAT_INTERVAL", gt=0, le=600)
    # The reconcilers (upstream's RenderedRelease `Interval` and `ProgressingInterval`): a full pass that restores
    # drift, and the requeue of a binding whose objects are still becoming ready.
    reconcile_interval: float = Field(300.0, validation_alias="RECONCILE_INTERVAL", gt=0, le=86400)
    progressing_interval: float = Field(10.0, validation_alias="RECONCILE_PROGRESSING_INTERVAL", gt=0, le=3600)

    @field_validator(
        "heartbeat_interval",
        "heartbeat_timeout",
        "status_interval",
        "proxy_timeout",
        "reconcile_interval",
        "progressing_interval",
        "replica_interval",
        mode="before",
    )
    @classmethod
    def _durations(cls, value: Any) -> Any:
        return seconds(value)

    @field_validator(
        "server_cert_path",
        "server_key_path",
        "internal_client_ca_path",
        "gateway_ca_cert",
        "gateway_client_cert",
        "gateway_client_key",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def db_url(self) -> str:
        """The store's URL: CONTROLPLANE_DB, else SQLite at `<data dir>/controlplane.db`."""
        return self.db or f"sqlite:///{self.data_dir / 'controlplane.db'}"

    @property
    def shared_store(self) -> bool:
        """Whether replicas may share the store (PostgreSQL), so they route agent calls to each other."""
        return self.db_url.startswith(("postgresql", "postgres:"))

    @property
    def gateway_enabled(self) -> bool:
        """The gateway runs when it has a certificate to serve with."""
        return self.server_cert_path is not None

    def gateway_problems(self) -> list[str]:
        """Why the gateway cannot start as configured, one line each naming the variable (empty: it can, or it
        is off). Files are checked for existence here; whether they load is the TLS layer's answer."""
        if not self.gateway_enabled:
            return []
        problems: list[str] = []
        files: list[tuple[str, Path | None]] = [
            ("SERVER_CERT_PATH", self.server_cert_path),
            ("SERVER_KEY_PATH", self.server_key_path),
        ]
        if self.internal_mtls_enabled:
            files.append(("INTERNAL_CLIENT_CA_PATH", self.internal_client_ca_path))
        for variable, path in files:
            if path is None:
                why = " (INTERNAL_MTLS_ENABLED is true)" if variable == "INTERNAL_CLIENT_CA_PATH" else ""
                problems.append(f"{variable} is required to serve the cluster gateway{why}")
            elif not path.is_file():
                problems.append(f"{variable}: no such file {path}")
        if self.heartbeat_timeout <= self.heartbeat_interval:
            problems.append("HEARTBEAT_TIMEOUT must be longer than HEARTBEAT_INTERVAL")
        return problems + self.replica_problems()

    def replica_problems(self) -> list[str]:
        """On a shared (PostgreSQL) store the replicas call each other's 8444: what that needs is set."""
        if not self.gateway_enabled or not self.shared_store:
            return []
        why = " (CONTROLPLANE_DB is PostgreSQL: replicas forward agent calls to each other)"
        problems: list[str] = []
        if not self.peer_url.startswith("https://"):
            problems.append(f"CONTROLPLANE_PEER_URL (this replica's https://host:8444) is required{why}")
        files: list[tuple[str, Path | None]] = [("CLUSTER_GATEWAY_CA_CERT", self.gateway_ca_cert)]
        if self.internal_mtls_enabled:
            files += [
                ("CLUSTER_GATEWAY_CLIENT_CERT", self.gateway_client_cert),
                ("CLUSTER_GATEWAY_CLIENT_KEY", self.gateway_client_key),
            ]
        for variable, path in files:
            if path is None:
                problems.append(f"{variable} is required{why}")
            elif not path.is_file():
                problems.append(f"{variable}: no such file {path}")
        return problems
