"""What an OpenChoreo adapter's answers mean to us: its error bodies (either shape), its 501s, its notices.

The contract has two error shapes (http-adapters-notes §4.3): logs adapters answer `{title, errorCode?, message}`,
tracing and metrics adapters `{title, errorCode?, detail}`, and some send only `title` and `message`. Both are
read here, whichever the signal.

A 501 (events, topology or alerting the backend cannot serve, e.g. `OBS-V1-L-GCP-501`) becomes
`AdapterNotImplemented`, carrying the adapter's own code, for the observer to answer 501 with it. The soft "not
implemented" (a 200 with empty series and the `X-OpenChoreo-Adapter-Notice` header, §4.5) becomes a notice:
logged as a warning and collected for the request being served (`collecting_notices`), so the API and MCP can
pass it on as a warning field.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import Any

from adapters.protocols import NotSupportedByBackend, pass_on_warning

log = logging.getLogger(__name__)

NOTICE_HEADER = "X-OpenChoreo-Adapter-Notice"
#: At most this many notices are kept per request, each at most NOTICE_CHARS long (a header is adapter input).
MAX_NOTICES, NOTICE_CHARS = 8, 200
_MESSAGE_CHARS = 500


class AdapterError(Exception):
    """An adapter refused or broke the contract (a 4xx for a request we validated, an answer that does not match
    the spec): a bug somewhere, the observer's 500. `status` is the adapter's HTTP status (0: none)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status, self.code, self.message = status, code, message
        # Exception's own __init__, not the next class in a subclass's MRO (NotSupportedByBackend takes other args)
        Exception.__init__(
            self, f"adapter answered {status}{f' {code}' if code else ''}: {message}" if status else message
        )


class AdapterNotImplemented(AdapterError, NotSupportedByBackend):
    """The adapter answered 501: its backend cannot serve this (events, topology, alert rules). The observer
    answers 501 with `code`, the adapter's own (e.g. `OBS-V1-L-GCP-501`)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        AdapterError.__init__(self, status, code, message)


class AdapterNotFound(AdapterError):
    """The adapter answered 404 (a span, an alert rule): what was asked for is not there."""


class AdapterConflict(AdapterError):
    """The adapter answered 409 (an alert rule that already exists)."""


def error_parts(body: Any) -> tuple[str, str]:
    """(errorCode, message) of an adapter error body of either shape; ("", "") when it is neither."""
    if not isinstance(body, Mapping):
        return "", ""
    code = body.get("errorCode")
    message = body.get("message") or body.get("detail") or body.get("title") or ""
    return (code if isinstance(code, str) else ""), str(message)[:_MESSAGE_CHARS]


_notices: ContextVar[list[str] | None] = ContextVar("adapter_notices", default=None)


@contextlib.contextmanager
def collecting_notices() -> Iterator[list[str]]:
    """The notices adapters send while the block runs (for the request being served): a list filled in place."""
    found: list[str] = []
    token = _notices.set(found)
    try:
        yield found
    finally:
        _notices.reset(token)


def notice(url: str, value: str) -> None:
    """One adapter's soft "not implemented": a warning in the log, and in the current request's notices."""
    text = value[:NOTICE_CHARS]
    log.warning("adapter %s: %s", url, text)
    found = _notices.get()
    if found is not None and len(found) < MAX_NOTICES and text not in found:
        found.append(text)
    pass_on_warning(text)  # the backend-neutral channel the API and MCP read (adapters/protocols.py)
