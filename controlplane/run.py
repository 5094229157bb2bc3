"""`observer controlplane` / `python -m controlplane.run`: the control plane's REST API and its cluster gateway.

One process serves the resource API (CONTROLPLANE_API_PORT, 8090) and, when it has a certificate
(SERVER_CERT_PATH), the cluster gateway: agents' WebSockets on AGENT_SERVER_PORT (8443) and the internal proxy and
plane API on AGENT_INTERNAL_PORT (8444, mutual TLS against INTERNAL_CLIENT_CA_PATH unless
INTERNAL_MTLS_ENABLED=false). The gateway trusts what the plane CRs in the store say (controlplane/planes.py),
and writes each plane CR's `status.agentConnection` back. The reconcilers (controlplane/reconcile/) run with the
gateway, since every plane they write to is reached through it (RECONCILE_INTERVAL, RECONCILE_PROGRESSING_INTERVAL).
Several processes may share one PostgreSQL store (controlplane/replicas.py): the reconcilers and the periodic plane
status writer run on the one holding the leader lock, and a call for an agent held by another replica is forwarded
to that replica's 8444 (CONTROLPLANE_PEER_URL, CLUSTER_GATEWAY_CA_CERT / _CLIENT_CERT / _CLIENT_KEY).

The API authenticates bearer tokens and authorizes every call with the store's Authz* policy (controlplane/auth.py:
JWKS_URL, JWT_ISSUER, JWT_AUDIENCE, CONTROLPLANE_ADMIN_GROUPS); `JWT_DISABLED=true` opens it, and the startup line
says so. Every port is bound before the store is opened, so a clash is reported in one line and nothing was
started for nothing. Every state-changing call and every 401/403 is an audit record (audit/, producer
`openchoreo-api`): one JSON line on stdout for the collector to ship (AUDIT_LOG=stdout, the default, or off);
inside `observer up --with-controlplane`, into the observer's sink with the observer's own records.

For the pieces that come next, and for `observer up --with-controlplane`:

    control = ControlPlane.open(settings)            # the store, the gateway and its TLS contexts
    control.secure(AccessSettings.from_env())        # authentication and authorization (before `parts`)
    control.tasks.append(lambda: reconciler.run(...))  # a coroutine factory, run beside the servers
    parts = control.parts(sockets)                   # sockets = bind_all(listens(settings)), in that order
    # parts is a serving.Beside: its servers with its sockets go to serving.run_servers, its coroutines become
    # background tasks, awaited after run_servers returns so the gateway says goodbye to its agents (`serve`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import ssl
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from controlplane.config import ControlPlaneSettings

if TYPE_CHECKING:
    from starlette.middleware import Middleware

    from audit.trail import AuditTrail
    from controlplane.auth import AccessSettings, ApiAccess, Guard
    from controlplane.gateway.service import Gateway
    from controlplane.planes import PlaneWatcher, StatusWriter
    from controlplane.reconcile.loop import Reconciler
    from controlplane.replicas import Replicas
    from controlplane.store import Store
    from serving import Beside, Listen

log = logging.getLogger(__name__)

TaskFactory = Callable[[], Coroutine[Any, Any, None]]
#: The producer name of the control plane's audit records (OpenChoreo's API server's).
AUDIT_PRODUCER = "openchoreo-api"


class Unstartable(Exception):
    """The process cannot start as configured; the message is the one line to print."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="observer controlplane", description=__doc__.splitlines()[0])
    parser.add_argument("--host", help="address to listen on (CONTROLPLANE_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="REST API port (CONTROLPLANE_API_PORT, default 8090)")
    parser.add_argument("--db", help="store URL: sqlite:///path or postgresql://... (CONTROLPLANE_DB)")
    parser.add_argument("--data-dir", help="where the default SQLite store lives (OBSERVER_DATA_DIR)")
    return parser


def listens(settings: ControlPlaneSettings) -> list[Listen]:
    """The ports to bind, in the order `ControlPlane.parts` takes their sockets: the API, then (gateway on) the
    agent listener and the internal listener."""
    from serving import Listen

    out = [Listen(settings.host, settings.api_port, "control plane API", "--port or CONTROLPLANE_API_PORT")]
    if settings.gateway_enabled:
        out.append(Listen(settings.host, settings.agent_port, "cluster gateway, agents", "AGENT_SERVER_PORT"))
        out.append(
            Listen(settings.host, settings.internal_port, "cluster gateway, internal API", "AGENT_INTERNAL_PORT")
        )
    return out


def startup_line(settings: ControlPlaneSettings) -> str:
    """What the process says it serves (the gateway being off is said, not left to guess)."""
    api = f"API on http://{settings.host}:{settings.api_port}"
    if not settings.gateway_enabled:
        return f"observer controlplane: {api}; cluster gateway off (SERVER_CERT_PATH is not set)"
    internal = "mutual TLS" if settings.internal_mtls_enabled else "TLS, no client certificate"
    shared = f"; a replica on a shared store, peers reach it at {settings.peer_url}" if settings.shared_store else ""
    return (
        f"observer controlplane: {api}; cluster gateway: agents on {settings.host}:{settings.agent_port}, "
        f"internal API on {settings.host}:{settings.internal_port} ({internal}){shared}"
    )


@dataclass
class GatewayParts:
    """The gateway and what runs it: its TLS contexts, the plane CR watcher and the status writer."""

    gateway: Gateway
    agent_ssl: ssl.SSLContext
    internal_ssl: ssl.SSLContext
    watcher: PlaneWatcher
    status: StatusWriter
    reconciler: Reconciler
    replicas: Replicas


@dataclass
class ControlPlane:
    """The control plane of one process: the store, the API's middleware, the gateway (None when off) and the
    coroutines that run beside the servers. Built by `open`, served by `parts`/`serve`."""

    settings: ControlPlaneSettings
    store: Store
    gateway_parts: GatewayParts | None = None
    middleware: list[Middleware] = field(default_factory=list)
    tasks: list[TaskFactory] = field(default_factory=list)
    guard: Guard | None = None
    audit: AuditTrail | None = None  # records the API's state changes and denials (producer openchoreo-api)

    @property
    def gateway(self) -> Gateway | None:
        """The in-process gateway (the reconcilers' `Transport`), None when the gateway is off."""
        return self.gateway_parts.gateway if self.gateway_parts is not None else None

    @classmethod
    def open(cls, settings: ControlPlaneSettings) -> ControlPlane:
        """Open the store and, when configured, build the gateway over it. Unstartable names what is wrong."""
        from controlplane.store import Store

        try:
            store = Store(settings.db_url)
            store.revision()  # reach the database now, not at the first request
        except (SQLAlchemyError, ValueError) as exc:  # a malformed URL, or a database we cannot reach
            raise Unstartable(f"cannot open the store {settings.db_url!r}: {exc}") from exc
        try:
            parts = _gateway(settings, store) if settings.gateway_enabled else None
        except BaseException:
            store.close()
            raise
        return cls(settings, store, parts)

    def secure(self, access_settings: AccessSettings) -> ApiAccess:
        """Put the API behind authentication and the store's Authz* policy (none with JWT_DISABLED=true); the
        policy is loaded now, so one that cannot load stops the start (Unstartable)."""
        from access.policy_sources import PolicyError
        from controlplane.auth import ApiAccess

        try:
            access = ApiAccess.open(access_settings, self.store)
        except (PolicyError, SQLAlchemyError) as exc:
            raise Unstartable(f"cannot load the authorization policy from the store: {exc}") from exc
        self.middleware[:0] = access.middleware()
        self.guard = access.guard
        return access

    def parts(self, sockets: list[socket.socket]) -> Beside:
        """The API server and the coroutines to run, on `sockets` bound from `listens(settings)` (same order).
        The coroutines are created here and start only when the caller schedules them (in its event loop)."""
        from controlplane.api import create_app
        from serving import Beside, server

        settings = self.settings
        middleware = list(self.middleware)
        if self.audit is not None:  # outside authentication, so its 401s are recorded too
            from starlette.middleware import Middleware

            from audit.actions import describe_controlplane
            from audit.middleware import AuditMiddleware

            audit = Middleware(AuditMiddleware, trail=self.audit, describe=describe_controlplane, names_from_body=True)
            middleware.insert(0, audit)
        app = create_app(self.store, middleware=middleware, guard=self.guard, transport=self.gateway)
        api = server(app, settings.host, settings.api_port, settings.log_level)
        coroutines: list[Coroutine[Any, Any, None]] = []
        if self.gateway_parts is not None:
            if len(sockets) != 3:
                raise ValueError("the gateway needs the API, agent and internal sockets")
            coroutines.append(_serve_gateway(self.gateway_parts, settings, sockets[1], sockets[2]))
            coroutines.append(self.gateway_parts.watcher.run())
            reconciler = self.gateway_parts.reconciler  # stops when cancelled; both run on the leader only
            singletons = [self.gateway_parts.status.run, lambda: reconciler.run(asyncio.Event())]
            coroutines.append(self.gateway_parts.replicas.run(singletons))
        coroutines += [factory() for factory in self.tasks]
        return Beside([api], sockets[:1], coroutines)

    async def serve(self, sockets: list[socket.socket]) -> None:
        """Serve until SIGINT/SIGTERM (serving.run_servers), then let every coroutine finish its cleanup: the
        gateway closes its agents' sockets and writes their plane CRs' status before the store closes."""
        from serving import run_servers

        parts = self.parts(sockets)
        tasks = [asyncio.create_task(each) for each in parts.coroutines]
        try:
            await run_servers(parts.servers, *tasks, sockets=parts.sockets)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def close(self) -> None:
        """Release the store (after `serve` returned)."""
        self.store.close()


def _gateway(settings: ControlPlaneSettings, store: Store) -> GatewayParts:
    """The gateway over the store's plane CRs, its TLS contexts loaded now so a bad file stops the start."""
    from controlplane.gateway.server import plain_tls_context
    from controlplane.gateway.service import Gateway
    from controlplane.planes import PlaneWatcher, StatusWriter, StoreTrust
    from controlplane.reconcile.loop import Reconciler
    from controlplane.replicas import Replicas
    from tunnel.tls import gateway_server_context, internal_server_context

    assert settings.server_cert_path is not None and settings.server_key_path is not None
    cert, key = settings.server_cert_path, settings.server_key_path
    trust = StoreTrust(store)
    status = StatusWriter(store, interval=settings.status_interval)
    reconciler: Reconciler | None = None
    replicas: Replicas | None = None

    async def connection_changed(plane_type: str, plane_id: str) -> None:
        """An agent came or went: its plane CRs' status, and the reconcilers retry what waited for it."""
        if replicas is not None:
            replicas.changed()
        await status.on_change(plane_type, plane_id)
        if reconciler is not None:
            await reconciler.plane_changed(plane_type, plane_id)

    gateway = Gateway(
        trust,
        ping_interval=settings.heartbeat_interval,
        read_timeout=settings.heartbeat_timeout,
        on_change=connection_changed,
    )
    try:
        replicas = Replicas.open(settings, store.engine, gateway, connection_changed)
    except (ssl.SSLError, OSError) as exc:
        raise Unstartable(f"cannot load CLUSTER_GATEWAY_CA_CERT / CLUSTER_GATEWAY_CLIENT_CERT / _KEY: {exc}") from exc
    except SQLAlchemyError as exc:
        raise Unstartable(f"cannot create the replicas' gateway_agents table: {exc}") from exc
    status.gateway = replicas.directory or gateway  # with replicas, the agents of every replica count
    reconciler = Reconciler(
        store, gateway, resync_s=settings.reconcile_interval, progressing_s=settings.progressing_interval
    )
    watcher = PlaneWatcher(store, gateway, after_notify=status.refresh)
    try:
        watcher.start_now()  # the revision first, then the CAs: a CR written in between is replayed
        agent_ssl = gateway_server_context(cert, key, trust.all_cas())
    except (ssl.SSLError, OSError) as exc:
        raise Unstartable(f"cannot load SERVER_CERT_PATH {cert} / SERVER_KEY_PATH {key}: {exc}") from exc
    except SQLAlchemyError as exc:
        raise Unstartable(f"cannot read the plane CRs from the store: {exc}") from exc
    try:
        if settings.internal_mtls_enabled:
            assert settings.internal_client_ca_path is not None
            internal_ssl = internal_server_context(cert, key, settings.internal_client_ca_path)
        else:
            internal_ssl = plain_tls_context(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise Unstartable(f"cannot load INTERNAL_CLIENT_CA_PATH {settings.internal_client_ca_path}: {exc}") from exc
    return GatewayParts(gateway, agent_ssl, internal_ssl, watcher, status, reconciler, replicas)


async def _serve_gateway(
    parts: GatewayParts, settings: ControlPlaneSettings, agent_sock: socket.socket, internal_sock: socket.socket
) -> None:
    """Both gateway listeners on their bound sockets until cancelled; then the agents are disconnected."""
    from controlplane.gateway.server import start

    listeners = await start(
        parts.gateway,
        agent_ssl=parts.agent_ssl,
        internal_ssl=parts.internal_ssl,
        proxy_timeout=settings.proxy_timeout,
        agent_sock=agent_sock,
        internal_sock=internal_sock,
    )
    try:
        await asyncio.Event().wait()
    finally:
        await listeners.close()


def _settings(argv: list[str] | None) -> ControlPlaneSettings:
    args = _parser().parse_args(argv)
    overrides: dict[str, object] = {}
    if args.host:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["api_port"] = args.port
    if args.db:
        overrides["db"] = args.db
    if args.data_dir:
        overrides["data_dir"] = args.data_dir
    try:
        return ControlPlaneSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        wrong = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise Unstartable(f"bad settings: {wrong}") from exc


def prepare(settings: ControlPlaneSettings) -> tuple[ControlPlane, list[socket.socket], str]:
    """Everything that can stop a start, in order: the access and gateway settings, the ports (bound), the store,
    the authorization policy. Returns the control plane, its bound sockets (`listens` order) and how the API is
    protected (for the startup line). Unstartable (one line) on any failure, with nothing left open."""
    from audit.settings import AuditSettings
    from controlplane.auth import AccessSettings
    from serving import PortUnavailable, bind_all

    try:
        access_settings = AccessSettings.from_env()  # AuthConfigError (a ValueError) names the variable
        audit_settings = AuditSettings.from_env(default="stdout")  # standalone, stdout is the way out
    except ValueError as exc:
        raise Unstartable(str(exc)) from exc
    problems = settings.gateway_problems()
    if problems:
        raise Unstartable("; ".join(problems))
    try:
        sockets = bind_all(listens(settings))
    except PortUnavailable as exc:
        raise Unstartable(str(exc)) from exc
    control: ControlPlane | None = None
    try:
        control = ControlPlane.open(settings)
        control.audit = audit_settings.trail(AUDIT_PRODUCER, None)
        access = control.secure(access_settings)
    except BaseException:
        for sock in sockets:
            sock.close()
        if control is not None:
            control.close()
        raise
    return control, sockets, access.describe()


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGINT/SIGTERM; 0 on a clean stop, 2 when it cannot start (the reason on stderr, one line)."""
    from serving import run_loop

    try:
        settings = _settings(argv)
        logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        control, sockets, protection = prepare(settings)
    except Unstartable as exc:
        print(f"observer controlplane: {exc}", file=sys.stderr)
        return 2
    print(f"{startup_line(settings)}; API access: {protection}", file=sys.stderr, flush=True)
    try:
        run_loop(control.serve(sockets))
    finally:
        control.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
