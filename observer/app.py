"""FastAPI application factories for the observer's two ports."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from observer.errors import install_error_handlers
from observer.routers import health, queries
from observer.service import QueryService

API_DESCRIPTION = (
    "The Observer API: logs, Kubernetes events, metrics and traces by platform scope (namespace, project, "
    "component, environment). Wire-compatible with OpenChoreo's observer-api.yaml; extensions are marked."
)


def create_public_app(service: QueryService, cors_allowed_origins: str = "") -> FastAPI:
    """The public port: queries (and, later, MCP), behind authentication."""
    app = FastAPI(title="OpenChoreo Observer API", version="1.0.0", description=API_DESCRIPTION)
    app.state.query_service = service
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(queries.router)
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


def create_internal_app() -> FastAPI:
    """The internal port: alert-rule CRUD and the alert webhook live here (cluster-internal, not public)."""
    app = FastAPI(title="OpenChoreo Observer internal API", version="1.0.0")
    install_error_handlers(app)
    app.include_router(health.router)
    return app
