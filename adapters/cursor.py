"""Opaque pagination cursors (our extension to the contract: `nextCursor` in, `cursor` back).

A cursor holds the sort key of the last record returned plus a fingerprint of the query it belongs to, so a
cursor replayed against a different query is refused instead of silently skipping records. A cursor is user
input like any other: its position is checked on decode (shape, types, int64 range), so one we did not issue
is a 400, never a backend error.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
from typing import Any

from adapters.protocols import InvalidCursor

#: Longer than any cursor we issue (a timestamp and an OpenSearch document id of at most 512 bytes, in base64).
MAX_CURSOR_CHARS = 4096
_MAX_POSITION = 8
_MAX_KEY_CHARS = 1024
_INT64 = range(-(2**63), 2**63)
NOT_OURS = "cursor is not one this server issued"


def fingerprint(*parts: Any) -> str:
    return hashlib.blake2b(repr(parts).encode(), digest_size=8).hexdigest()


def encode_cursor(query_fingerprint: str, position: list[Any]) -> str:
    raw = json.dumps({"q": query_fingerprint, "p": position}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, query_fingerprint: str, shape: tuple[type, ...] | None = None) -> list[Any]:
    """The position stored in a cursor; InvalidCursor when it is malformed, belongs to another query, or holds a
    position we could not have issued. `shape` is the type of each sort key when the caller knows it (the
    embedded store's `(int, int)`); without it any short list of int64 integers, finite floats and short strings
    passes, which is what OpenSearch's `search_after` keys are."""
    try:
        if len(cursor) > MAX_CURSOR_CHARS:
            raise ValueError("too long")
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        position = data["p"]
        matches = data["q"] == query_fingerprint
    except (ValueError, KeyError, TypeError, RecursionError, binascii.Error) as exc:
        raise InvalidCursor(NOT_OURS) from exc
    if not matches:
        raise InvalidCursor("cursor belongs to a different query; repeat the query without it")
    if not _plausible(position, shape):
        raise InvalidCursor(NOT_OURS)
    return list(position)


def _plausible(position: Any, shape: tuple[type, ...] | None) -> bool:
    if not isinstance(position, list) or not 0 < len(position) <= _MAX_POSITION:
        return False
    if shape is not None and (len(position) != len(shape) or not all(map(_is, position, shape))):
        return False
    return all(_sort_key(key) for key in position)


def _is(value: Any, kind: type) -> bool:
    return type(value) is kind  # exact: bool is an int subclass, and True is no timestamp


def _sort_key(value: Any) -> bool:
    if type(value) is int:
        return value in _INT64
    if type(value) is float:
        return math.isfinite(value)
    if type(value) is str:
        return len(value) <= _MAX_KEY_CHARS and value.isprintable()
    return False
