"""FastAPI application factories for the observer's two ports."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from pydantic import SecretStr

from access.authn import Authenticator
from access.middleware import AuthMiddleware
from access.settings import AuthSettings
from audit.actions import describe_observer
from audit.actors import ANONYMOUS, INTERNAL_TOKEN_HOLDER
from audit.middleware import AuditMiddleware
from audit.trail import AuditTrail
from observer.alerting import resource_api
from observer.auth.internal import InternalTokenMiddleware, check_token
from observer.body_limit import DEFAULT_MAX_BODY_BYTES, DEFAULT_WEBHOOK_MAX_BODY_BYTES, BodyLimitMiddleware
from observer.console.router import router as console_router
from observer.docs import install_docs
from observer.errors import install_error_handlers
from observer.openapi import install_openapi
from observer.routers import (
    alert_rules,
    alerts,
    audit_logs,
    costs,
    health,
    oauth_metadata,
    patterns,
    platform_logs,
    queries,
    scopes,
    tail,
)
from observer.service import QueryService

if TYPE_CHECKING:
    from observer.alerting.plane import Alerting
    from observer.alerting.service import AlertService
    from observer.mcp.server import McpApp
    from observer.tail.hub import TailHub

API_DESCRIPTION = (
    "The Observer API: logs, Kubernetes events, metrics and traces by platform scope (namespace, project, "
    "component, environment). Wire-compatible with OpenChoreo's observer-api.yaml; extensions are marked."
)
WEBHOOK_PATH = "/api/v1alpha1/alerts/webhook"


def create_public_app(
    service: QueryService,
    cors_allowed_origins: str = "",
    auth: AuthSettings | None = None,
    *,
    authenticator: Authenticator | None = None,
    mcp: McpApp | None = None,
    alert_service: AlertService | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    tail_hub: TailHub | None = None,
    audit: AuditTrail | None = None,
) -> FastAPI:
    """The public port: queries (and, later, MCP at /mcp), behind authentication.

    `auth` decides how requests are authenticated. `None` means authentication OFF, exactly as
    `AuthSettings.disabled()`: that default exists for tests that exercise the queries, and `observer up`
    never relies on it (runtime.py always passes `AuthSettings.from_env()`, which is on unless JWT_DISABLED=true).
    `authenticator` replaces the one built from `auth` (tests use it to drive the JWKS cache's clock); the
    caller then owns it. Otherwise the app owns it, as `app.state.authenticator`, and whoever runs the app
    closes it. A bad auth config file fails here, at startup, not on the first request.

    `mcp` (observer.mcp.build_mcp_app) is served at `/mcp`, behind the same authentication; its session
    manager runs for the app's lifespan, so whoever serves the app must run the lifespan (uvicorn
    `lifespan="on"`).

    Request bodies over `max_body_bytes` are refused with 413 before anything reads them (observer/body_limit.py).

    `tail_hub` (observer/tail/hub.py, fed by the OTLP receiver's sink) serves the live tail; without one the tail
    route answers 501.

    `audit` (audit/trail.py) records every state change, every 401/403 and every read of the audit trail
    (audit/middleware.py, outside authentication); runtime.py hands the same trail to the MCP server.
    """
    if authenticator is not None:
        auth = authenticator.settings
    auth = auth or AuthSettings.disabled()
    if authenticator is None and auth.enabled:
        authenticator = Authenticator(auth)
    app = FastAPI(
        title="OpenChoreo Observer API",
        version="1.0.0",
        description=API_DESCRIPTION,
        lifespan=(lambda _app: mcp.lifespan()) if mcp is not None else None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.query_service = service
    app.state.alert_service = alert_service  # alerts and incidents answer 500 SERVICE_NOT_READY without one
    app.state.auth_settings = auth
    app.state.tail_hub = tail_hub
    app.state.authenticator = authenticator
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(oauth_metadata.router)
    app.include_router(queries.router)
    app.include_router(platform_logs.router)
    app.include_router(audit_logs.router)
    app.include_router(patterns.router)
    app.include_router(tail.router)
    app.include_router(scopes.router)
    app.include_router(alerts.router)
    app.include_router(costs.router)
    app.include_router(console_router)  # the web console at / (observer/console)
    install_docs(app)
    install_openapi(app, bearer_auth=True)
    if mcp is not None:
        from observer.mcp.server import mount_mcp

        mount_mcp(app, mcp)
        app.state.mcp = mcp
    # Added before CORS, so CORS wraps it: preflights are answered before authentication, and a 401 still
    # carries the CORS headers a browser needs to let the page read it.
    app.add_middleware(AuthMiddleware, authenticator=authenticator, settings=auth)
    if audit is not None:  # outside authentication: its 401s are recorded, and the Subject it found named
        app.add_middleware(AuditMiddleware, trail=audit, describe=describe_observer)
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes)  # inside CORS: a 413 carries its headers
    origins = [origin.strip() for origin in cors_allowed_origins.split(",") if origin.strip()]
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PUT", "DELETE", "OPTIONS"],
            allow_headers=["Content-Type", "Authorization"],
            allow_credentials=True,
            max_age=3600,
        )
    return app


def create_internal_app(
    alerting: Alerting | None = None,
    *,
    token: SecretStr | str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    webhook_max_body_bytes: int = DEFAULT_WEBHOOK_MAX_BODY_BYTES,
    audit: AuditTrail | None = None,
) -> FastAPI:
    """The internal port: alert-rule CRUD and the alert webhook (cluster-internal, unauthenticated as upstream).

    `token` (OBSERVER_INTERNAL_TOKEN) turns on the optional shared secret: every route but `GET /health` then
    needs `Authorization: Bearer <token>` (observer/auth/internal.py; a token under 16 bytes raises
    InternalPortConfigError). TLS and client certificates are the server's business (serving.server).

    Bodies are capped at `max_body_bytes`, except the alert webhook's at `webhook_max_body_bytes`: an
    Alertmanager notification of a large group is far bigger than any rule, and refusing it loses alerts.

    `audit` records rule and channel changes, webhook calls and refused tokens; a caller that proved the
    internal token is named as such (audit/actors.py INTERNAL_TOKEN_HOLDER)."""
    app = FastAPI(title="OpenChoreo Observer internal API", version="1.0.0", docs_url=None, redoc_url=None)
    install_error_handlers(app)
    install_docs(app)
    install_openapi(app, bearer_auth=False)
    app.include_router(health.router)
    if alerting is not None:
        app.state.alert_resources = alerting.resources
        app.state.alert_intake = alerting.intake
        app.state.rule_sync = alerting.rule_sync
        app.include_router(alert_rules.router)
        app.include_router(resource_api.router)
    secret = token.get_secret_value() if isinstance(token, SecretStr) else token
    if secret:
        check_token(secret)  # here, because Starlette builds middleware lazily, on the first request
        app.add_middleware(InternalTokenMiddleware, token=secret)
    if audit is not None:  # rule and channel changes, the webhook, and refused tokens are recorded
        caller = INTERNAL_TOKEN_HOLDER if secret else ANONYMOUS
        app.add_middleware(AuditMiddleware, trail=audit, describe=describe_observer, default_actor=caller)
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes, per_path={WEBHOOK_PATH: webhook_max_body_bytes})
    return app
