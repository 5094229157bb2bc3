"""Who is asking and what they ask for: the vocabulary authentication and authorization share.

Authentication (access/authn.py) turns a bearer token into a `Subject`; the query service turns a scope
into a `Resource` (access/resources.py) and asks an `Authorizer` (access/casbin_pdp.py embedded,
observer/auth/remote_pdp.py for OpenChoreo's PDP) before any resolver or backend is touched. REST and MCP share
all of it, so both ways in answer the same question the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

#: The actions of OpenChoreo's authz model (contract notes §2.1).
LOGS_VIEW = "logs:view"
EVENTS_VIEW = "events:view"
METRICS_VIEW = "metrics:view"
TRACES_VIEW = "traces:view"
ALERTS_VIEW = "alerts:view"
INCIDENTS_VIEW = "incidents:view"
INCIDENTS_UPDATE = "incidents:update"
FINOPS_VIEW = "finops:view"
#: Cluster-scoped (asked on no namespace, access/resources.py cluster_resource): only a cluster-wide grant covers
#: the platform's own logs and the audit trail.
PLATFORMLOGS_VIEW = "platformlogs:view"
AUDITLOGS_VIEW = "auditlogs:view"
ACTIONS = (
    LOGS_VIEW,
    EVENTS_VIEW,
    METRICS_VIEW,
    TRACES_VIEW,
    ALERTS_VIEW,
    INCIDENTS_VIEW,
    INCIDENTS_UPDATE,
    FINOPS_VIEW,
    PLATFORMLOGS_VIEW,
    AUDITLOGS_VIEW,
)


@dataclass(frozen=True, slots=True)
class Subject:
    """An authenticated caller, as OpenChoreo's SubjectContext: `user` (entitled by its `groups`) or
    `service_account` (entitled by its `sub`). The raw token travels along only to be forwarded to a remote PDP;
    it is never printed."""

    type: str  # "user" | "service_account"
    entitlement_claim: str  # "groups" | "sub"
    entitlement_values: tuple[str, ...]
    token: str = field(default="", repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Resource:
    """What an action is asked on: the most specific level of the scope (`component`, `project`, `namespace`,
    or `workflowRun`), its hierarchy, and the environment as an attribute ("" when the query names none)."""

    type: str  # "namespace" | "project" | "component" | "workflowRun"
    id: str
    namespace: str
    project: str = ""
    component: str = ""
    environment: str = ""


class NotAuthenticated(Exception):
    """No subject, or the PDP refused the caller's credentials: 401."""


class PermissionDenied(Exception):
    """The PDP said no: 403."""


class AuthorizationUnavailable(Exception):
    """The PDP could not be asked (down, timed out, answered nonsense): fail closed."""


class Authorizer(Protocol):
    async def authorize(self, subject: Subject | None, action: str, resource: Resource) -> None:
        """Returns when `subject` may perform `action` on `resource`; raises NotAuthenticated, PermissionDenied or
        AuthorizationUnavailable otherwise. Decisions are never cached past a policy change."""
        ...


class AllowAll:
    """The decision point when authentication is switched off on purpose (JWT_DISABLED=true)."""

    async def authorize(self, subject: Subject | None, action: str, resource: Resource) -> None:
        return None


#: The JWT layer's 401 codes and their exact texts (contract notes §0, "Authentication"). These bodies are
#: `{"error": CODE, "message": text}`, not the ErrorResponse shape the query APIs use.
MISSING_TOKEN = "MISSING_TOKEN"
INVALID_TOKEN = "INVALID_TOKEN"
INVALID_CLAIMS = "INVALID_CLAIMS"
AUTHENTICATION_MESSAGES = {
    MISSING_TOKEN: "missing or invalid authentication token",
    INVALID_TOKEN: "invalid or expired token",
    INVALID_CLAIMS: "token claims validation failed",
}
#: The resolver's own INVALID_CLAIMS text, when a verified token fits no configured subject type.
SUBJECT_UNRESOLVED_MESSAGE = "Failed to resolve subject from token"


class AuthenticationFailed(Exception):
    """The request's credentials do not prove who is asking: 401 with `{"error": code, "message": message}`.
    `reason` says what exactly was wrong, for the log only: telling a caller which check failed helps an
    attacker more than it helps a client."""

    def __init__(self, code: str, message: str | None = None, reason: str = "") -> None:
        self.code = code
        self.message = AUTHENTICATION_MESSAGES.get(code, "") if message is None else message
        self.reason = reason
        super().__init__(f"{code}: {self.message}" + (f" ({reason})" if reason else ""))


class AuthenticationUnavailable(Exception):
    """The token cannot be checked right now (the issuer's JWKS is unreachable and no usable key is cached):
    a fault on our side, so 503 rather than a 401 that would tell the client its token is bad."""
