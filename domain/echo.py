"""How an error message quotes what the user sent: short, and always encodable.

Messages that echo input help a user find the bad value, but a 100,000-character name must not come back as a
100 KB message, and a lone surrogate or a control character must not break the JSON encoder or the log line
that carries it. Every message that quotes user input goes through `shown`.
"""

from __future__ import annotations

import re

#: How many characters of the user's text a message quotes before cutting it short.
ECHO_CHARS = 64

_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def shown(value: object, limit: int = ECHO_CHARS) -> str:
    """`value` as a message may quote it: the first `limit` characters (then "…"), with control characters and
    lone surrogates written as `\\uXXXX` escapes so the text is valid UTF-8 and one line."""
    text = value if isinstance(value, str) else repr(value)
    cut = text[:limit]
    escaped = _UNPRINTABLE.sub(lambda match: f"\\u{ord(match.group()):04x}", cut)
    return escaped + ("…" if len(text) > limit else "")
