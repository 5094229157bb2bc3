"""The audit middleware (plain ASGI, one job): after the app has decided, and before the client sees the
answer, one AuditRecord for

- every state-changing call (what the plane's describer says changes state: audit/actions.py),
- every 401 or 403, on any path (category `authorization`, result `denied`),
- every read of the trail itself (`/api/v1alpha1/audit-logs/...`, category `access`).

The record is stored (AuditTrail.record awaits its writers) when the app starts its response and before that
start is passed on, so an answer the client received always has its record. Result: `success` for 2xx/3xx,
`denied` for 401/403, `failure` for any other 4xx/5xx (and for an exception, re-raised after recording).

It goes outside authentication, so it sees authentication's 401s and, after it, the Subject authentication
left in `scope["state"]` (audit/actors.py). It reads no body, request or response, and keeps no header but the
request id and a bounded user agent.
"""

from __future__ import annotations

import dataclasses

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from audit.actions import READ_METHODS, Described, Describer, is_trail_path
from audit.actors import ANONYMOUS, actor_of, subject_in
from audit.context import request_facts
from audit.created import BodyPeek
from audit.trail import AuditTrail, new_event_id
from domain.audit import Actor, AuditRecord
from domain.timeutil import now_ns

DENIED_STATUSES = frozenset({401, 403})


def result_of(status: int) -> str:
    if status in DENIED_STATUSES:
        return "denied"
    return "success" if status < 400 else "failure"


class AuditMiddleware:
    """Records through `trail` what `describe` (the plane's describer) says is worth a record.

    `default_actor`: who a request without a Subject is (anonymous; the internal port names its callers
    by the credential they proved, when it has one). A 401 is always anonymous: nothing was proved.
    `names_from_body`: a POST whose route names no object (a control-plane create) takes the object's name
    from the body's `metadata.name` (audit/created.py), and nothing else from it."""

    def __init__(
        self,
        app: ASGIApp,
        trail: AuditTrail,
        describe: Describer,
        *,
        surface: str = "rest",
        default_actor: Actor = ANONYMOUS,
        names_from_body: bool = False,
    ) -> None:
        self.app = app
        self.trail = trail
        self.describe = describe
        self.surface = surface
        self.default_actor = default_actor
        self.names_from_body = names_from_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.trail.enabled:
            await self.app(scope, receive, send)
            return
        started = False
        peek = BodyPeek(receive) if self.names_from_body and scope.get("method") == "POST" else None

        async def recording_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start" and not started:
                started = True
                await self._record(scope, int(message["status"]), peek)
            await send(message)

        try:
            await self.app(scope, peek.receive if peek is not None else receive, recording_send)
        except Exception:
            if not started:  # the framework's last-resort handler outside us answers 500
                started = True
                await self._record(scope, 500, peek)
            raise

    async def _record(self, scope: Scope, status: int, peek: BodyPeek | None = None) -> None:
        denied = status in DENIED_STATUSES
        if not denied and scope.get("method") in READ_METHODS and not is_trail_path(str(scope.get("path", ""))):
            return  # the common case, decided without asking the describer
        try:
            described = self.describe(scope)
        except Exception:  # an unforeseen scope: still a record for a denial, under a plain name
            described = Described(f"http.{str(scope.get('method', '')).lower()}", "management")
        if not (denied or described.changes_state or described.reads_trail):
            return
        resource = described.resource
        if peek is not None and resource is not None and not resource.name:
            resource = dataclasses.replace(resource, name=peek.metadata_name())
        facts = request_facts(scope, trust_forwarded_for=self.trail.trust_forwarded_for)
        subject = subject_in(scope)
        record = AuditRecord(
            event_id=new_event_id(),
            time_ns=now_ns(),
            actor=actor_of(subject) if subject is not None else ANONYMOUS if status == 401 else self.default_actor,
            action=described.action,
            category="authorization" if denied else described.category,
            result=result_of(status),
            surface=self.surface,
            producer=self.trail.producer,
            operation_id=described.operation_id,
            request_id=facts.request_id,
            source_ip=facts.source_ip,
            user_agent=facts.user_agent,
            http_method=facts.method,
            http_path=facts.path,
            resource=resource,
            metadata={"status": str(status)},
        )
        await self.trail.record(record)
