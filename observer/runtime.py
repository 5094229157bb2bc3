"""Wiring: settings -> backends, resolver, service and apps; and running several HTTP servers in one loop.

`observer up` (the all-in-one) runs the public API, the internal API and the OTLP receiver in one process over
the embedded backend, plus the retention loop and, on request, demo traffic. With `OPENSEARCH_ADDRESS` set,
logs, events and traces live in OpenSearch instead; with `PROMETHEUS_ADDRESS`, metrics live in Prometheus.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import socket
import ssl
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from adapters.embedded.backend import EmbeddedBackend
from adapters.opensearch.backend import OpenSearchBackend
from adapters.prometheus.backend import PrometheusBackend
from adapters.prometheus.client import PrometheusConfig
from adapters.prometheus.kubernetes import KubernetesScheme
from adapters.prometheus.otel import OtelScheme
from adapters.prometheus.remote_write import RemoteWriter
from adapters.protocols import BackendUnavailable, ScopeResolver, TelemetrySink
from adapters.routing import SplitSink
from domain.timeutil import now_ns
from collectors.otlp.receiver import build_otlp_app
from observer.alerting.plane import Alerting, build_alerting
from observer.app import create_internal_app, create_public_app
from observer.auth.authn import Authenticator
from observer.auth.internal import InternalSecurity, log_internal_posture
from observer.auth.model import AllowAll, Authorizer
from observer.auth.settings import AuthSettings, log_auth_posture
from observer.config import Settings
from observer.mcp.server import build_mcp_app
from observer.resolver_http import OpenChoreoResolver
from observer.service import QueryService

log = logging.getLogger(__name__)

RETENTION_EVERY_S = 600


@dataclass
class Plane:
    """Everything one observer process serves from."""

    settings: Settings
    backend: EmbeddedBackend
    resolver: ScopeResolver
    service: QueryService
    sink: TelemetrySink  # where the OTLP receiver delivers
    opensearch: OpenSearchBackend | None = None
    prometheus: PrometheusBackend | None = None


def build_plane(settings: Settings) -> Plane:
    backend = EmbeddedBackend(settings.data_dir)
    if settings.registry_file:
        count = backend.registry.declare_file(settings.registry_file)
        log.info("declared %d registry entries from %s", count, settings.registry_file)
    resolver: ScopeResolver = backend.registry
    if settings.resolver_api_url:
        resolver = OpenChoreoResolver(
            settings.resolver_api_url,
            token_url=settings.resolver_token_url,
            client_id=settings.resolver_client_id,
            client_secret=settings.resolver_client_secret.get_secret_value(),
            scope=settings.resolver_scope,
            timeout_s=settings.resolver_timeout_s,
            max_auth_retry=settings.resolver_max_auth_retry,
            verify_tls=not settings.resolver_tls_insecure_skip_verify,
        )
    opensearch = OpenSearchBackend(config) if (config := settings.opensearch()) else None
    prometheus = _prometheus(settings)
    records = opensearch or backend
    metrics = prometheus or backend
    # Topology: from Hubble's series with the kubernetes scheme, otherwise from spans in the embedded store.
    topology = prometheus if prometheus and settings.metrics_scheme == "kubernetes" else backend
    service = QueryService(resolver, logs=records, events=records, traces=records, metrics=metrics, topology=topology)
    sink: TelemetrySink = backend
    if opensearch or prometheus:
        sink = SplitSink(
            records=records,
            metrics=metrics,
            span_copies=backend if topology is backend and records is not backend else None,
            registry=backend,
        )
    return Plane(settings, backend, resolver, service, sink=sink, opensearch=opensearch, prometheus=prometheus)


def _prometheus(settings: Settings) -> PrometheusBackend | None:
    if not settings.prometheus_address:
        return None
    scheme = KubernetesScheme() if settings.metrics_scheme == "kubernetes" else OtelScheme()
    config = PrometheusConfig(settings.prometheus_address, timeout_s=settings.prometheus_timeout_s)
    # Our collectors' OTLP metrics are remote-written whatever the scheme: with `otel` they are what is queried.
    return PrometheusBackend(config, scheme, RemoteWriter(settings.prometheus_address, timeout_s=settings.prometheus_timeout_s))


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals to the runner, which stops all servers together."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def server(
    app: FastAPI,
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
    lifespan = "on" if getattr(app.state, "mcp", None) is not None else "off"
    config = uvicorn.Config(
        app, host=host, port=port, log_level=log_level.lower(), access_log=False, lifespan=lifespan,
        ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile, ssl_ca_certs=ssl_ca_certs, ssl_cert_reqs=ssl_cert_reqs,
    )
    return _Server(config)


class PortUnavailable(OSError):
    """A port cannot be listened on (in use, not permitted, no such address). The message is one line that
    names the port and the setting that chooses it, for the command line to print as it is."""


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
        raise PortUnavailable(f"cannot listen on {listen.host}:{listen.port}: {listen.host!r} is not an address "
                              f"of this machine ({exc.strerror})") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart reuses ports in TIME_WAIT
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        why = {errno.EADDRINUSE: "is already in use", errno.EACCES: "needs privileges this process lacks",
               errno.EADDRNOTAVAIL: "is on an address this machine does not have"}.get(exc.errno or 0, f"failed: {exc.strerror}")
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
        if task.cancelled() or task.exception() is None:
            return
        failed.append(task.exception())
        log.error("background task %s failed; stopping", task.get_name(), exc_info=task.exception())
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


async def retention_loop(backend: EmbeddedBackend | OpenSearchBackend, retention_hours: float) -> None:
    while True:
        try:
            removed = await backend.prune(now_ns() - int(retention_hours * 3600 * 10**9))
            if removed:
                log.info("retention removed %d records older than %sh", removed, retention_hours)
        except Exception:  # keep the loop alive; the next round retries
            log.exception("retention failed")
        await asyncio.sleep(RETENTION_EVERY_S)


#: While ingest is busy, the phrase index waits, unless this many lines are already waiting for it (queries
#: scan unindexed lines one by one, so the backlog is bounded).
INDEX_BACKLOG_LIMIT = 200_000
INGEST_QUIET_S = 1.0


async def indexing_loop(backend: EmbeddedBackend) -> None:
    """Keeps the phrase index caught up, a chunk per transaction so writers are never held long. Indexing
    costs several times what storing a line does, so during an ingest burst it steps aside and catches up
    after; a backlog past INDEX_BACKLOG_LIMIT is indexed even while ingest is busy."""
    while True:
        try:
            busy = time.monotonic() - backend.last_write < INGEST_QUIET_S
            if busy and await backend.unindexed_logs() < INDEX_BACKLOG_LIMIT:
                await asyncio.sleep(0.25)
                continue
            if await backend.index_logs():
                continue
        except Exception:
            log.exception("phrase indexing failed")
        await asyncio.sleep(0.5)


async def opensearch_loop(opensearch: OpenSearchBackend, retention_hours: float) -> None:
    """Installs the index templates (retrying while OpenSearch is not there yet: queries answer 503 meanwhile),
    then keeps retention where the cluster has no ISM."""
    while True:
        try:
            await opensearch.install(retention_days=retention_hours / 24)
            break
        except BackendUnavailable as exc:
            log.warning("OpenSearch not ready, retrying in 5 s: %s", exc)
            await asyncio.sleep(5)
    await retention_loop(opensearch, retention_hours)


def authenticator_for(auth: AuthSettings) -> Authenticator | None:
    """The process's one Authenticator (None with authentication off). Built before anything starts, so a bad
    OBSERVER_AUTH_CONFIG_PATH stops the process at once (AuthConfigError) instead of failing every request."""
    return Authenticator(auth) if auth.enabled else None


def authorizer_for(auth: AuthSettings) -> Authorizer:
    """Who decides: nobody when authentication is off on purpose (there is no subject to judge), else the
    embedded Casbin policy or OpenChoreo's PDP (observer/auth/authorizers.py; refuses to start without a policy)."""
    if not auth.enabled:
        return AllowAll()
    from observer.auth.authorizers import authorizer_from_env

    return authorizer_from_env()


def alerting_for(plane: Plane, authorizer: Authorizer) -> Alerting:
    settings = plane.settings
    return build_alerting(
        dsn=settings.alert_store(),
        suppression_window=settings.alert_suppression_window,
        resolver=plane.resolver,
        authorizer=authorizer,
        logs=plane.opensearch or plane.backend,
        metrics=plane.prometheus or plane.backend,
        prometheus_url=settings.prometheus_address,
        prometheus_rules_dir=settings.prometheus_rules_dir,
        scheme=plane.prometheus.scheme if plane.prometheus is not None else None,
        reconcile_interval_s=settings.rule_reconcile_interval_s,
        notification_lease_s=settings.notification_lease_s,
    )


def all_in_one_servers(
    plane: Plane,
    auth: AuthSettings,
    authenticator: Authenticator | None = None,
    alerting: Alerting | None = None,
    *,
    internal: InternalSecurity | None = None,
) -> list[uvicorn.Server]:
    """`internal` defaults to the settings' (Settings.internal_security), so no caller can drop a configured
    token or TLS by forgetting to pass it."""
    settings = plane.settings
    internal = internal if internal is not None else settings.internal_security()
    tls = internal.tls
    mcp = build_mcp_app(plane.service, alerting.service if alerting else None, extended=settings.mcp_extended_tools)
    public = create_public_app(
        plane.service, settings.cors_allowed_origins, auth, authenticator=authenticator, mcp=mcp,
        alert_service=alerting.service if alerting else None, max_body_bytes=settings.max_body_bytes,
    )
    return [
        server(public, settings.host, settings.port, settings.log_level),
        server(
            create_internal_app(
                alerting,
                token=internal.token,
                max_body_bytes=settings.max_body_bytes,
                webhook_max_body_bytes=settings.webhook_max_body_bytes,
            ),
            settings.host,
            settings.internal_port,
            settings.log_level,
            ssl_certfile=tls.certfile if tls else None,
            ssl_keyfile=tls.keyfile if tls else None,
            ssl_ca_certs=tls.client_ca_file if tls else None,
            ssl_cert_reqs=tls.cert_reqs if tls else ssl.CERT_NONE,
        ),
        server(
            build_otlp_app(plane.sink, max_body_bytes=settings.otlp_max_body_bytes),
            settings.host,
            settings.otlp_port,
            settings.log_level,
        ),
    ]


def all_in_one_listens(settings: Settings) -> list[Listen]:
    """The all-in-one's three ports, in the order all_in_one_servers returns its servers."""
    return [
        Listen(settings.host, settings.port, "Observer API", "--port or SERVER_PORT / PORT"),
        Listen(settings.host, settings.internal_port, "internal API", "--internal-port or SERVER_INTERNAL_PORT / INTERNAL_PORT"),
        Listen(settings.host, settings.otlp_port, "OTLP/HTTP receiver", "--otlp-port or OTLP_HTTP_PORT / OTLP_PORT"),
    ]


async def up(
    settings: Settings,
    auth: AuthSettings | None = None,
    authenticator: Authenticator | None = None,
    authorizer: Authorizer | None = None,
    *,
    sockets: Sequence[socket.socket] | None = None,
    on_ready: Callable[[], object] | None = None,
) -> None:
    """Runs the all-in-one until a signal. `auth` defaults to the environment (on unless JWT_DISABLED=true).
    The internal port's settings are checked first (InternalPortConfigError), then the ports are bound
    (PortUnavailable) unless `sockets` (from `bind_all(all_in_one_listens(settings))`) already are, all before
    any store opens. `on_ready` runs once every port accepts connections."""
    internal = settings.internal_security()
    auth = auth if auth is not None else settings.auth()
    log_auth_posture(auth)
    log_internal_posture(internal)
    authenticator = authenticator if authenticator is not None else authenticator_for(auth)
    sockets = list(sockets) if sockets is not None else bind_all(all_in_one_listens(settings))
    plane = build_plane(settings)
    plane.service.authorizer = authorizer if authorizer is not None else authorizer_for(auth)
    alerting = alerting_for(plane, plane.service.authorizer)
    background = [
        *alerting.tasks(plane.opensearch, settings.internal_url or f"http://{settings.host}:{settings.internal_port}"
                        "/api/v1alpha1/alerts/webhook", settings.internal_token.get_secret_value()),
        asyncio.create_task(retention_loop(plane.backend, settings.retention_hours)),
        asyncio.create_task(indexing_loop(plane.backend)),
    ]
    if plane.opensearch is not None:
        background.append(asyncio.create_task(opensearch_loop(plane.opensearch, settings.retention_hours)))
    if authenticator is not None:
        background.append(asyncio.create_task(authenticator.jwks.prefetch()))
    try:
        await run_servers(
            all_in_one_servers(plane, auth, authenticator, alerting, internal=internal), *background,
            sockets=sockets, on_ready=on_ready,
        )
    finally:
        await alerting.close()
        if authenticator is not None:
            await authenticator.close()
        if plane.opensearch is not None:
            await plane.opensearch.close()
        if plane.prometheus is not None:
            await plane.prometheus.close()
        plane.backend.close()
