"""The name of what a create call created, read from its request body: a control-plane `POST` names its object
only in the body (`metadata.name`), and "who created component X" is the question an audit trail is for.

Only that one string leaves the body, bounded and made printable; nothing else of it reaches a record. The body
is kept while the app reads it, up to MAX_PEEK_BYTES (the control plane refuses bodies over 1 MiB before this
sees them); a larger one is not kept, and its record simply names no object.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.types import Message, Receive

MAX_PEEK_BYTES = 1024 * 1024
MAX_NAME_CHARS = 253


class BodyPeek:
    """Wraps an ASGI `receive`, keeping the request body's bytes (within the bound) as the app reads them."""

    def __init__(self, receive: Receive, limit: int = MAX_PEEK_BYTES) -> None:
        self._receive = receive
        self._limit = limit
        self._chunks: list[bytes] = []
        self._size = 0
        self._overflow = False

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request" and not self._overflow:
            chunk = bytes(message.get("body", b""))
            self._size += len(chunk)
            if self._size > self._limit:
                self._overflow, self._chunks = True, []
            else:
                self._chunks.append(chunk)
        return message

    def metadata_name(self) -> str:
        """`metadata.name` of the JSON object the body held, "" when there is none (or it was too large)."""
        if self._overflow or not self._chunks:
            return ""
        try:
            document: Any = orjson.loads(b"".join(self._chunks))
        except orjson.JSONDecodeError:
            return ""
        metadata = document.get("metadata") if isinstance(document, dict) else None
        name = metadata.get("name") if isinstance(metadata, dict) else None
        if not isinstance(name, str):
            return ""
        return "".join(ch for ch in name[:MAX_NAME_CHARS] if ch.isprintable())
