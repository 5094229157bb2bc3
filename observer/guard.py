"""The one guard every scoped read passes (authorize -> resolve), and the one table of what failures become.

Queries (observer/service.py), alerts and incidents (observer/alerting/service.py) and the MCP tools (which call
those two services) all run `Guard.admit` and map whatever goes wrong through `failures(endpoint)`, so the same
failure is the same status and the same code on every route and tool. Authorization is decided on the names the
caller wrote, before anything is resolved or read: a denied caller costs no resolver or backend call.

The table (status, and which of the endpoint's codes; an outage also carries `Retry-After`: RETRY_AFTER_S, or
the backend's own hint when it has one, such as the reset of Datadog's rate limit, see `retry_after_s`):

| failure                     | status | code (query APIs, e.g. logs)  | code (alerts / incidents)             |
|-----------------------------|--------|-------------------------------|---------------------------------------|
| NotAuthenticated            | 401    | ""                            | ""                                    |
| PermissionDenied            | 403    | ""                            | ""                                    |
| AuthorizationUnavailable    | 503 RA | OBS-V1-L-02                   | AUTHZ_UNAVAILABLE                     |
| ScopeNotFound               | 400    | OBS-V1-L-04                   | SCOPE_NOT_FOUND                       |
| ResolverAuthFailed          | 500    | OBS-V1-SCOPE-AUTH-FAILED      | RESOLVE_SCOPE_FAILED / QUERY_INCIDENTS_FAILED |
| ResolverUnavailable         | 503 RA | OBS-V1-L-04                   | RESOLVE_SCOPE_FAILED / QUERY_INCIDENTS_FAILED |
| InvalidCursor               | 400    | ""                            | (no cursor)                           |
| SpanNotFound                | 404    | OBS-V1-T-07                   | (no span)                             |
| BackendUnavailable          | 503 RA | OBS-V1-L-05                   | QUERY_ALERTS_FAILED / QUERY_INCIDENTS_FAILED |
| anything else (a bug)       | 500    | OBS-V1-L-01                   | QUERY_ALERTS_FAILED / QUERY_INCIDENTS_FAILED |

Why these, where the contract (observer-contract-notes §1.1, §1.12-1.14) disagrees with itself:
- 401 and 403 are the contract's everywhere ("Unauthorized", "Access denied", no code).
- An unavailable authorizer is the alerts' 503 (`AUTHZ_UNAVAILABLE`); the query APIs' contract answer is their
  generic 500, but it is an outage, not a bug, so they answer 503 too, with their own "authz internal" code (-02).
- An unknown scope name is the caller's mistake: the alerts' 400 `SCOPE_NOT_FOUND` (the query APIs' contract
  answer is a 500 -04, and incidents' a 500), so every route answers 400, with its own code.
- A name resolver or backend that cannot be reached is an outage: 503 with Retry-After and the endpoint's code.
  The resolver refusing the observer's own credentials is a misconfiguration: 500 (the contract's code).
The per-signal code prefixes (OBS-V1-L-.., OBS-V1-T-..) and the alerts' SCREAMING_SNAKE codes are the contract's.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from access.model import (
    AllowAll,
    AuthorizationUnavailable,
    Authorizer,
    NotAuthenticated,
    PermissionDenied,
    Subject,
)
from access.resources import cluster_resource, resource_for
from adapters.protocols import (
    BackendUnavailable,
    InvalidCursor,
    NotSupportedByBackend,
    ResolverAuthFailed,
    ResolverUnavailable,
    ScopeNotFound,
    ScopeResolver,
    SpanNotFound,
)
from domain.echo import shown
from domain.model import ComponentScope, WorkflowScope
from observer.errors import ApiError
from observer.validation import NamedScope

log = logging.getLogger(__name__)

#: Seconds a client is asked to wait after an outage (as the authentication middleware's 503).
RETRY_AFTER_S = 5
#: The longest wait an answer asks for, whatever a backend said: a rate limit that resets in an hour should not
#: park a client (or a proxy honouring the header) for that hour; it can ask again and be told again.
MAX_RETRY_AFTER_S = 300

#: The code of the contract's span-details 404, the only not-found a query answers.
SPAN_NOT_FOUND = "OBS-V1-T-07"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """How one endpoint names its failures: the message of its 5xx answers and its code for each kind."""

    failure: str
    authz_unavailable: str
    scope_not_found: str
    resolver_unavailable: str
    resolver_auth_failed: str
    backend_unavailable: str
    internal: str


def query_endpoint(letter: str, failure: str) -> Endpoint:
    """A query API's codes: `OBS-V1-<letter>-NN` with the contract's meanings (-01 generic, -02 authz, -04 resolver,
    -05 retrieval) and the shared `OBS-V1-SCOPE-AUTH-FAILED`."""
    prefix = f"OBS-V1-{letter}"
    return Endpoint(
        failure=failure,
        authz_unavailable=f"{prefix}-02",
        scope_not_found=f"{prefix}-04",
        resolver_unavailable=f"{prefix}-04",
        resolver_auth_failed="OBS-V1-SCOPE-AUTH-FAILED",
        backend_unavailable=f"{prefix}-05",
        internal=f"{prefix}-01",
    )


def store_endpoint(failure: str, failed: str, resolve_failed: str) -> Endpoint:
    """An alert-store endpoint's codes (contract §1.12-1.14): its own `*_FAILED` code for the store and, for the
    name resolver, `RESOLVE_SCOPE_FAILED` (alerts) or the endpoint's own code (incidents)."""
    return Endpoint(
        failure=failure,
        authz_unavailable="AUTHZ_UNAVAILABLE",
        scope_not_found="SCOPE_NOT_FOUND",
        resolver_unavailable=resolve_failed,
        resolver_auth_failed=resolve_failed,
        backend_unavailable=failed,
        internal=failed,
    )


Slot = Literal[
    "",
    "authz_unavailable",
    "scope_not_found",
    "resolver_unavailable",
    "resolver_auth_failed",
    "backend_unavailable",
    "internal",
]


@dataclass(frozen=True, slots=True)
class Outcome:
    """One row of the table: the status, which of the endpoint's codes ("" for none, or a fixed code), whether
    to ask for a retry, and the message."""

    status: int
    slot: Slot
    message: Callable[[Any, Endpoint], str]
    retry: bool = False
    code: str = ""
    code_of_exception: bool = False  # the failure carries its own code (a backend's 501)


def _outage(what: str) -> Callable[[Any, Endpoint], str]:
    return lambda _, endpoint: f"{endpoint.failure}: {what} unavailable, retry shortly"


#: The table, in the order the failures are matched (the last row catches everything else).
FAILURES: tuple[tuple[type[Exception], Outcome], ...] = (
    (NotAuthenticated, Outcome(401, "", lambda _, __: "Unauthorized")),
    (PermissionDenied, Outcome(403, "", lambda _, __: "Access denied")),
    (AuthorizationUnavailable, Outcome(503, "authz_unavailable", _outage("the authorization service is"), True)),
    (ScopeNotFound, Outcome(400, "scope_not_found", lambda exc, _: f"{not_found(exc)}; check the searchScope names")),
    # before its base class, ResolverUnavailable: refused credentials are ours to fix, not an outage
    (
        ResolverAuthFailed,
        Outcome(500, "resolver_auth_failed", lambda _, __: "the observer could not authenticate to its name resolver"),
    ),
    (ResolverUnavailable, Outcome(503, "resolver_unavailable", _outage("the name resolver is"), True)),
    (InvalidCursor, Outcome(400, "", lambda exc, _: str(exc))),
    (SpanNotFound, Outcome(404, "", lambda _, __: "Span not found", code=SPAN_NOT_FOUND)),
    (BackendUnavailable, Outcome(503, "backend_unavailable", _outage("the backend is"), True)),
    (NotSupportedByBackend, Outcome(501, "", lambda exc, _: exc.message, code_of_exception=True)),
    (Exception, Outcome(500, "internal", lambda _, endpoint: endpoint.failure)),
)


def outcome_of(exc: Exception) -> Outcome:
    return next(outcome for kind, outcome in FAILURES if isinstance(exc, kind))


def error_for(exc: Exception, endpoint: Endpoint) -> ApiError:
    """The ApiError the table gives `exc` on `endpoint`; outages and bugs are logged here, once."""
    outcome = outcome_of(exc)
    code = getattr(endpoint, outcome.slot) if outcome.slot else outcome.code
    if outcome.code_of_exception:
        code = str(getattr(exc, "code", "") or code)
    headers = {"Retry-After": str(retry_after_s(exc))} if outcome.retry else None
    if outcome.slot == "internal":
        log.error("%s", endpoint.failure, exc_info=exc)
    elif outcome.status >= 500:
        log.warning("%s: %s", endpoint.failure, exc)
    return ApiError(outcome.status, outcome.message(exc, endpoint), code, headers=headers)


def retry_after_s(exc: Exception) -> int:
    """The Retry-After an outage answers: when the failure knows when the backend will take requests again (a
    `BackendUnavailable` with `retry_after_s`, e.g. Datadog's rate limit reset), that time rounded up to whole
    seconds (the header's unit; rounding down would send the client back too early) and kept within
    1..MAX_RETRY_AFTER_S; otherwise the fixed RETRY_AFTER_S."""
    hint = getattr(exc, "retry_after_s", None)
    if isinstance(hint, bool) or not isinstance(hint, int | float) or not math.isfinite(hint):
        return RETRY_AFTER_S
    return min(max(math.ceil(hint), 1), MAX_RETRY_AFTER_S)


def not_found(exc: ScopeNotFound) -> str:
    """Which name is unknown, quoted short: the name is the user's input and may be of any length."""
    where = f" in namespace '{shown(exc.namespace)}'" if exc.kind != "namespace" else ""
    return f"{exc.kind} '{shown(exc.name)}' not found{where}"


@contextmanager
def failures(endpoint: Endpoint) -> Iterator[None]:
    """Everything raised inside becomes the table's ApiError for `endpoint` (an ApiError passes unchanged)."""
    try:
        yield
    except ApiError:
        raise
    except Exception as exc:
        raise error_for(exc, endpoint) from None


class Guard:
    """Authorize on the names as written, then resolve them to UIDs. The authorizer may be replaced after
    construction (the runtime chooses it once settings are read), so it is an attribute, read on every call."""

    def __init__(self, resolver: ScopeResolver, authorizer: Authorizer | None = None) -> None:
        self.resolver = resolver
        self.authorizer: Authorizer = authorizer or AllowAll()

    async def authorize(self, caller: Subject | None, action: str, named: NamedScope | WorkflowScope) -> None:
        await self.authorizer.authorize(caller, action, resource_for(named))

    async def authorize_cluster(self, caller: Subject | None, action: str) -> None:
        """A cluster-scoped action (platform logs, the audit trail): asked on no namespace, so only a cluster-wide
        grant covers it, whatever coordinates or filters the query names."""
        await self.authorizer.authorize(caller, action, cluster_resource())

    def require_caller(self, caller: Subject | None) -> None:
        """For lookups by id, which read before they can authorize: no subject at all is refused first."""
        if caller is None and not isinstance(self.authorizer, AllowAll):
            raise NotAuthenticated()

    async def resolve(self, named: NamedScope) -> ComponentScope:
        project_uid, component_uid, environment_uid = await self.resolver.resolve(
            named.namespace, named.project, named.component, named.environment
        )
        return ComponentScope(named.namespace, project_uid, component_uid, environment_uid)

    async def admit(self, caller: Subject | None, action: str, named: NamedScope) -> ComponentScope:
        """The resolved scope of a component query the caller may make."""
        await self.authorize(caller, action, named)
        return await self.resolve(named)

    async def admit_any(
        self, caller: Subject | None, action: str, named: NamedScope | WorkflowScope
    ) -> ComponentScope | WorkflowScope:
        """As `admit`, for logs and events, whose workflow scopes are matched by name and never resolved."""
        if isinstance(named, WorkflowScope):
            await self.authorize(caller, action, named)
            return named
        return await self.admit(caller, action, named)
