"""What the tunnel refuses to carry (OpenChoreo's proxy `validator.go`, CPN §2 "Internal API").

Both ends call `refusal`: the gateway before it sends a request down a socket, the agent before it replays one
against its backend, so a request that slipped past one side (or came from a foreign gateway) still stops.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote

TARGETS = frozenset({"k8s", "monitoring", "logs"})
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
MAX_BODY_BYTES = 10 * 1024 * 1024
BLOCKED_PATHS = ("/api/v1/namespaces/kube-system/secrets", "/apis/v1/serviceaccounts")

# Go's strconv.ParseBool true values: what the kube-apiserver accepts for watch= and follow=.
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_SLASHES = re.compile(r"/{2,}")
# The deprecated `/api/v1/watch/...` endpoints stream like `?watch=true`.
_WATCH_PATH = re.compile(r"^/(api/v1|apis/[^/]+/[^/]+)/watch(/|$)")


@dataclass(frozen=True)
class Refusal:
    """An HTTP status and message to answer with instead of forwarding the request."""

    status: int
    message: str


def _normalised(path: str) -> str:
    """The path as the backend will route it: percent-decoded (twice, so %252e stays caught), slashes collapsed.

    Why: a plain substring test on the raw path lets `//api/v1/...` or `%2e%2e` walk around the block list.
    """
    decoded = unquote(unquote(path))
    return _SLASHES.sub("/", decoded)


def _truthy(query: str, key: str) -> bool:
    return any(k == key and v in _TRUE for k, v in parse_qsl(query, keep_blank_values=True))


def refusal(
    target: str, method: str, path: str, query: str, headers: Mapping[str, list[str]], body_size: int
) -> Refusal | None:
    """None when the request may be forwarded, else the Refusal to answer with.

    Order: unknown target 404, method 405, `..` or NUL 400, blocked path 403, body over 10 MiB 413, streaming
    (watch, log follow, Upgrade) 501.
    """
    if target not in TARGETS:
        return Refusal(404, f"unknown target: {target}")
    if method not in METHODS:
        return Refusal(405, f"method not allowed: {method}")
    clean = _normalised(path)
    if "\x00" in clean or ".." in clean or "\x00" in path:
        return Refusal(400, "invalid path: path traversal or NUL byte")
    lowered = posixpath.normpath("/" + clean.lstrip("/")).lower()  # "." segments gone; ".." refused above
    if any(blocked in lowered for blocked in BLOCKED_PATHS):
        return Refusal(403, f"access to path is forbidden: {path}")
    if body_size > MAX_BODY_BYTES:
        return Refusal(413, f"request body too large: {body_size} bytes exceeds {MAX_BODY_BYTES}")
    if _truthy(query, "watch") or _WATCH_PATH.match(lowered):
        return Refusal(501, "watch requests are not yet supported through the HTTP proxy")
    if clean.rstrip("/").endswith("/log") and _truthy(query, "follow"):
        return Refusal(501, "log follow requests are not yet supported through the HTTP proxy")
    if any(name.lower() == "upgrade" and any(v.strip() for v in values) for name, values in headers.items()):
        return Refusal(501, "upgrade requests are not yet supported through the HTTP proxy")
    return None
