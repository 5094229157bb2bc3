"""Wiring: settings -> backends, resolver, service and apps; and running several HTTP servers in one loop.

`observer up` (the all-in-one) runs the public API, the internal API and the OTLP receiver in one process over
the backends the settings enable (adapters/registry.py: the embedded one always, OpenSearch with
`OPENSEARCH_ADDRESS`, Prometheus with `PROMETHEUS_ADDRESS`, ...), their background work (retention, indexing)
and, on request, demo traffic. Which backend is which is the registry's business: nothing here names one.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import uvicorn

from access.authn import Authenticator
from access.model import AllowAll, Authorizer
from access.settings import AuthSettings, log_auth_posture
from adapters import registry
from adapters.protocols import ScopeResolver, TelemetrySink
from audit.settings import AuditSettings
from audit.trail import AuditTrail
from collectors.otlp.receiver import build_otlp_app
from observer.alerting.plane import Alerting, build_alerting, rule_targets
from observer.app import create_internal_app, create_public_app
from observer.auth.internal import InternalSecurity, log_internal_posture
from observer.config import Settings
from observer.mcp.server import build_mcp_app
from observer.resolver_http import OpenChoreoResolver
from observer.service import QueryService
from observer.tail import TailHub, TailingSink, TailSettings
from serving import Beside, Listen, bind_all, run_servers, server

log = logging.getLogger(__name__)


@dataclass
class Plane:
    """Everything one observer process serves from: the settings, the backends (adapters/registry.py), the
    resolver and the query service over them, and the sink the OTLP receiver delivers to (which also feeds the
    live tails, `tails`)."""

    settings: Settings
    backends: registry.Plane
    resolver: ScopeResolver
    service: QueryService
    sink: TelemetrySink
    tails: TailHub


async def build_plane(settings: Settings, authorizer: Authorizer | None = None) -> Plane:
    """The enabled backends (each role from the highest-priority one that serves it), built but not started."""
    backends = await registry.build_plane(registry.Context("serve"), registry.enabled(shared=settings.by_variable()))
    resolver: ScopeResolver = backends.served("names")
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
    service = QueryService(
        resolver,
        logs=backends.served("logs"),
        events=backends.served("events"),
        traces=backends.served("traces"),
        metrics=backends.served("metrics"),
        topology=backends.served("topology"),
        authorizer=authorizer,
        platform_logs=backends.served("platform_logs"),
        audit=backends.served("audit"),
        patterns=backends.served("patterns"),
    )
    tails = TailHub(TailSettings())
    return Plane(settings, backends, resolver, service, sink=TailingSink(backends.sink(), tails), tails=tails)


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


async def alerting_for(plane: Plane, authorizer: Authorizer) -> Alerting:
    """The alerting half, with the rule targets the backends offer (Prometheus rule files, OpenSearch
    monitors) ahead of the observer's own evaluator."""
    settings = plane.settings
    webhook = registry.RuleTargetContext(
        settings.internal_url or f"http://{settings.host}:{settings.internal_port}/api/v1alpha1/alerts/webhook",
        settings.internal_token.get_secret_value(),
    )
    return build_alerting(
        dsn=settings.alert_store(),
        suppression_window=settings.alert_suppression_window,
        resolver=plane.resolver,
        authorizer=authorizer,
        logs=plane.backends.served("logs"),
        metrics=plane.backends.served("metrics"),
        targets=await rule_targets(plane.backends, webhook),
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
    audit: AuditTrail | None = None,
) -> list[uvicorn.Server]:
    """`internal` defaults to the settings' (Settings.internal_security), so no caller can drop a configured
    token or TLS by forgetting to pass it. `audit` records the public and internal ports' state changes,
    denials and trail reads, and every MCP tool call (audit_trail_for)."""
    settings = plane.settings
    internal = internal if internal is not None else settings.internal_security()
    tls = internal.tls
    mcp = build_mcp_app(
        plane.service, alerting.service if alerting else None, extended=settings.mcp_extended_tools, audit=audit
    )
    public = create_public_app(
        plane.service,
        settings.cors_allowed_origins,
        auth,
        authenticator=authenticator,
        mcp=mcp,
        alert_service=alerting.service if alerting else None,
        max_body_bytes=settings.max_body_bytes,
        tail_hub=plane.tails,
        audit=audit,
    )
    return [
        server(public, settings.host, settings.port, settings.log_level),
        server(
            create_internal_app(
                alerting,
                token=internal.token,
                max_body_bytes=settings.max_body_bytes,
                webhook_max_body_bytes=settings.webhook_max_body_bytes,
                audit=audit,
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
            build_otlp_app(
                plane.sink,
                max_body_bytes=settings.otlp_max_body_bytes,
                default_namespace=settings.default_namespace,
                audit_token=settings.internal_token.get_secret_value(),  # audit over OTLP only from collectors
            ),
            settings.host,
            settings.otlp_port,
            settings.log_level,
        ),
    ]


def audit_trail_for(plane: Plane, settings: AuditSettings, companions: Sequence[AuditTrail] = ()) -> AuditTrail:
    """The observer's trail (producer `observer`), writing where AUDIT_LOG says: `sink` is the plane's own sink,
    so records land in the backend serving the `audit` role, as their own source. `companions` (the trail of a
    control plane served in this process) write there too. Without a backend for audit records, `sink` writes
    nothing and the startup log says so."""
    sink = plane.backends.sink() if plane.backends.served("audit") is not None else None
    if sink is None and "sink" in settings.destinations:
        log.warning("AUDIT_LOG=sink, but no backend here stores audit records: they go only to stdout, if chosen")
    for companion in companions:
        companion.redirect(settings.writers(sink))
    return settings.trail("observer", sink)


def all_in_one_listens(settings: Settings) -> list[Listen]:
    """The all-in-one's three ports, in the order all_in_one_servers returns its servers."""
    return [
        Listen(settings.host, settings.port, "Observer API", "--port or SERVER_PORT / PORT"),
        Listen(
            settings.host,
            settings.internal_port,
            "internal API",
            "--internal-port or SERVER_INTERNAL_PORT / INTERNAL_PORT",
        ),
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
    beside: Beside | None = None,
    audit_companions: Sequence[AuditTrail] = (),
) -> None:
    """Runs the all-in-one until a signal. `auth` defaults to the environment (on unless JWT_DISABLED=true).
    The internal port's settings are checked first (InternalPortConfigError), then the ports are bound
    (PortUnavailable) unless `sockets` (from `bind_all(all_in_one_listens(settings))`) already are, all before
    any store opens. `on_ready` runs once every port accepts connections. `beside` is another component served in
    the same loop (`observer up --with-controlplane`); its coroutines finish after the servers stop.
    `audit_companions` are the trails of what runs beside (the control plane's): they write into this plane's
    sink, as the observer's own trail does (AUDIT_LOG, audit/settings.py; a bad value raises ValueError first)."""
    audit_settings = AuditSettings.from_env()
    internal = settings.internal_security()
    auth = auth if auth is not None else settings.auth()
    log_auth_posture(auth)
    log_internal_posture(internal)
    authenticator = authenticator if authenticator is not None else authenticator_for(auth)
    sockets = list(sockets) if sockets is not None else bind_all(all_in_one_listens(settings))
    authorizer = authorizer if authorizer is not None else authorizer_for(auth)
    plane = await build_plane(settings, authorizer)
    alerting: Alerting | None = None
    try:
        await plane.backends.start()
        alerting = await alerting_for(plane, authorizer)
        background = [*alerting.tasks(), *plane.backends.tasks()]
        if authenticator is not None:
            background.append(asyncio.create_task(authenticator.jwks.prefetch()))
        companions = [asyncio.create_task(each) for each in (beside.coroutines if beside else [])]
        servers = [
            *all_in_one_servers(
                plane,
                auth,
                authenticator,
                alerting,
                internal=internal,
                audit=audit_trail_for(plane, audit_settings, audit_companions),
            ),
            *(beside.servers if beside else []),
        ]
        # Open tails end (with their `end` event) as soon as shutdown begins, instead of holding it up.
        background.append(asyncio.create_task(plane.tails.close_when(lambda: any(s.should_exit for s in servers))))
        try:
            await run_servers(
                servers,
                *background,
                *companions,
                sockets=[*sockets, *(beside.sockets if beside else [])],
                on_ready=on_ready,
            )
        finally:
            for task in companions:
                task.cancel()
            await asyncio.gather(*companions, return_exceptions=True)
    finally:
        if alerting is not None:
            await alerting.close()
        if authenticator is not None:
            await authenticator.close()
        await plane.backends.close()
