"""Opaque pagination cursors (our extension to the contract: `nextCursor` in, `cursor` back).

A cursor holds the sort key of the last record returned plus a fingerprint of the query it belongs to, so a
cursor replayed against a different query is refused instead of silently skipping records.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from adapters.protocols import InvalidCursor


def fingerprint(*parts: Any) -> str:
    return hashlib.blake2b(repr(parts).encode(), digest_size=8).hexdigest()


def encode_cursor(query_fingerprint: str, position: list[Any]) -> str:
    raw = json.dumps({"q": query_fingerprint, "p": position}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, query_fingerprint: str) -> list[Any]:
    """The position stored in a cursor; InvalidCursor when it is malformed or belongs to another query."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        position = data["p"]
        matches = data["q"] == query_fingerprint
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidCursor("cursor is not one this server issued") from exc
    if not matches or not isinstance(position, list):
        raise InvalidCursor("cursor belongs to a different query; repeat the query without it")
    return position
