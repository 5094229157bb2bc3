"""Where a request came from, as an audit record says it: request id, source address, user agent, method and
path, read from an ASGI scope. Every value is bounded and made printable, since all of it is the caller's to
choose (a header can carry anything)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from audit.trail import new_event_id

MAX_REQUEST_ID_CHARS = 128
MAX_USER_AGENT_CHARS = 256
MAX_PATH_CHARS = 1024


def printable(text: str, limit: int) -> str:
    """`text` without control characters, at most `limit` characters."""
    cleaned = "".join(ch for ch in text[: limit * 2] if ch.isprintable())
    return cleaned[:limit]


def header(scope: Mapping[str, Any], name: bytes) -> str:
    """The first value of header `name` (lowercase), "" when absent."""
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return ""


def _forwarded_for(scope: Mapping[str, Any]) -> str:
    """The address the nearest proxy saw: the last X-Forwarded-For entry (earlier ones are the client's to
    write, so only the last, added by the trusted proxy itself, can be believed)."""
    values = [bytes(v).decode("latin-1") for k, v in scope.get("headers", ()) if k.lower() == b"x-forwarded-for"]
    entries = [entry.strip() for value in values for entry in value.split(",") if entry.strip()]
    return entries[-1] if entries else ""


@dataclass(frozen=True, slots=True)
class RequestFacts:
    request_id: str
    source_ip: str
    user_agent: str
    method: str
    path: str


def request_facts(scope: Mapping[str, Any], *, trust_forwarded_for: bool = False) -> RequestFacts:
    """What the record says about the request: X-Request-ID (a fresh id when there is none), the client's
    address (X-Forwarded-For only when the deployment says a proxy in front sets it), User-Agent, method and
    path (never the query string: it may hold what a body would)."""
    client = scope.get("client")
    source = _forwarded_for(scope) if trust_forwarded_for else ""
    if not source and client:
        source = str(client[0])
    return RequestFacts(
        request_id=printable(header(scope, b"x-request-id"), MAX_REQUEST_ID_CHARS) or new_event_id(),
        source_ip=printable(source, 64),
        user_agent=printable(header(scope, b"user-agent"), MAX_USER_AGENT_CHARS),
        method=str(scope.get("method", "")),
        path=printable(str(scope.get("path", "")), MAX_PATH_CHARS),
    )
