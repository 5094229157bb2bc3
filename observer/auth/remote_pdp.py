"""OpenChoreo's decision point over HTTP: `POST {AUTHZ_SERVICE_URL}/api/v1/authz/evaluates` (contract §2.1).

The body is a one-element JSON array of EvaluateRequest (access/resources.py builds it), sent with the
caller's own bearer token, since the authz service decides for the caller and may check the token itself. The
answer is a JSON array of `{decision, context: {reason}}`.

Outcomes, as the Go client maps them: the service's 401 is NotAuthenticated and its 403 PermissionDenied (so the
caller gets 401/403, not a 500); a decision of false is PermissionDenied; anything else (connection refused, a
timeout, another status, a body that is not a decision array) is AuthorizationUnavailable, so the query fails
closed. The token is a credential: it is never logged and never put in an exception message; the client's
failures (observer/outbound.py) carry only their kind.
"""

from __future__ import annotations

import logging

import orjson

from access.model import AuthorizationUnavailable, NotAuthenticated, PermissionDenied, Resource, Subject
from access.resources import context_for, evaluate_request
from observer.outbound import OutboundClient, OutboundFailed

log = logging.getLogger(__name__)

EVALUATES_PATH = "/api/v1/authz/evaluates"
DEFAULT_SERVICE_URL = "http://localhost:8080"
DEFAULT_TIMEOUT_S = 30.0
_BODY_IN_LOG = 200  # characters of an unexpected response body worth keeping in the log


def _scrub(text: str, token: str) -> str:
    """The text with the token cut out, for anything that might echo a request back (error bodies, messages)."""
    return text.replace(token, "[token]") if token else text


class RemoteAuthorizer:
    """The `Authorizer` that asks OpenChoreo's authz service. One pooled HTTP client for the process (it never
    follows a redirect: that would carry the token somewhere nobody configured); close it with `aclose()`."""

    def __init__(
        self,
        service_url: str = DEFAULT_SERVICE_URL,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        tls_insecure_skip_verify: bool = False,
    ):
        if timeout_s <= 0:
            raise ValueError("the authz timeout must be positive")
        self.url = service_url.rstrip("/") + EVALUATES_PATH
        self.timeout_s = timeout_s
        self._client = OutboundClient(timeout_s, verify_tls=not tls_insecure_skip_verify)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def authorize(self, subject: Subject | None, action: str, resource: Resource) -> None:
        """Returns when the service says yes; raises as the module docstring lists."""
        if subject is None:
            raise NotAuthenticated()
        body = [evaluate_request(subject, action, resource, with_context=context_for(action))]
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if subject.token:
            headers["Authorization"] = f"Bearer {subject.token}"
        token = subject.token
        try:
            response = await self._client.request("POST", self.url, body=orjson.dumps(body), headers=headers)
        except OutboundFailed as exc:
            if exc.timed_out:
                log.error("authz service %s did not answer within %gs", self.url, self.timeout_s)
                raise AuthorizationUnavailable(f"authorization service timed out after {self.timeout_s:g}s") from None
            log.error("authz service %s request failed: %s", self.url, exc.kind)
            raise AuthorizationUnavailable(f"authorization service unreachable ({exc.kind})") from None

        if response.status == 401:
            log.warning("authz service %s answered 401 for the caller's token", self.url)
            raise NotAuthenticated()
        if response.status == 403:
            log.debug("authz service %s answered 403", self.url)
            raise PermissionDenied()
        if response.status != 200:
            log.error(
                "authz service %s answered %d: %s",
                self.url,
                response.status,
                _scrub(response.text[:_BODY_IN_LOG], token),
            )
            raise AuthorizationUnavailable(f"authorization service answered {response.status}")
        try:
            decisions = response.json()
            decision = decisions[0]["decision"]
        except (ValueError, LookupError, TypeError):
            log.error(
                "authz service %s answered something that is not a decision array: %s",
                self.url,
                _scrub(response.text[:_BODY_IN_LOG], token),
            )
            raise AuthorizationUnavailable("authorization service answered an invalid response") from None
        if not isinstance(decision, bool):
            log.error("authz service %s answered a decision that is not a boolean: %r", self.url, decision)
            raise AuthorizationUnavailable("authorization service answered an invalid response")
        if not decision:
            reason = ""
            context = decisions[0].get("context")
            if isinstance(context, dict):
                reason = str(context.get("reason") or "")
            log.debug("authz service denied %s on %s %r: %s", action, resource.type, resource.id, _scrub(reason, token))
            raise PermissionDenied()
