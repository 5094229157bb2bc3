"""Who did it: the authenticated Subject (access/subjects.py) as the record's Actor.

The Subject carries its type and entitlements (a user's groups, a service account's `sub`: the record keeps them
under the claim the Subject names, as upstream's `actor.entitlements` map does) and the token it was
verified from, but not the token's `sub` and `iss`. Authentication has already verified that token in this same
request, so its claims are read back here (never verified again, never stored: the token itself goes nowhere).
A request without a Subject (authentication off, or refused) is the `anonymous` actor.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import orjson

from access.model import Subject
from domain.audit import Actor

ANONYMOUS = Actor(type="anonymous", id="anonymous")
#: A caller of the observer's internal port that proved the shared internal token (OBSERVER_INTERNAL_TOKEN):
#: the token says it is one of the plane's own services, not which.
INTERNAL_TOKEN_HOLDER = Actor(type="service_account", id="observer-internal-token")
#: Bounds on what a claim may put in a record, so a token cannot make records arbitrarily large.
MAX_CLAIM_CHARS = 256
MAX_ENTITLEMENTS = 64
MAX_TOKEN_CHARS = 16_384


def _claims(token: str) -> dict[str, Any]:
    """The payload of an already verified compact JWS, or {} when it is not one."""
    parts = token.split(".")
    if len(token) > MAX_TOKEN_CHARS or len(parts) != 3:
        return {}
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = orjson.loads(base64.urlsafe_b64decode(payload))
    except (ValueError, orjson.JSONDecodeError):
        return {}
    return claims if isinstance(claims, dict) else {}


def _text(claims: dict[str, Any], name: str) -> str:
    value = claims.get(name)
    return value[:MAX_CLAIM_CHARS] if isinstance(value, str) else ""


def actor_of(subject: Subject | None) -> Actor:
    """The actor a record names: id = the token's `sub` (a service account's entitlement when the token cannot
    be read), issuer = `iss`, session = `sid`, entitlements = the subject's values under its entitlement claim
    (`groups` for a user, `sub` for a service account, or whatever claim the subject types configure)."""
    if subject is None:
        return ANONYMOUS
    claims = _claims(subject.token) if subject.token else {}
    sub = _text(claims, "sub")
    if not sub and subject.entitlement_claim == "sub" and subject.entitlement_values:
        sub = subject.entitlement_values[0][:MAX_CLAIM_CHARS]
    values = tuple(dict.fromkeys(value[:MAX_CLAIM_CHARS] for value in subject.entitlement_values[:MAX_ENTITLEMENTS]))
    claim = subject.entitlement_claim[:MAX_CLAIM_CHARS]
    entitlements = ((claim, values),) if claim and values else ()
    return Actor(
        type=subject.type,
        id=sub or "unknown",
        issuer=_text(claims, "iss"),
        session_id=_text(claims, "sid"),
        entitlements=entitlements,
    )


def subject_in(scope: Any) -> Subject | None:
    """The Subject authentication left in an ASGI scope's state (None when there is none)."""
    state = scope.get("state") if isinstance(scope, Mapping) else None
    subject = state.get("subject") if isinstance(state, Mapping) else None
    return subject if isinstance(subject, Subject) else None
