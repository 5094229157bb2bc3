"""Keeping every tool answer inside one message an MCP client accepts.

The official clients refuse a server-sent event over 1 MiB ("Server-sent event exceeded the 1048576 byte
limit"), and a result carries its JSON twice: as structuredContent (which the output schema makes a MUST)
and as text content (the spec's SHOULD for clients that read only text, and what OpenChoreo's e2e parses).
So sizes here are measured on the encoded result, both copies included, and a page that would not fit is
cut to the records that do; the handler then says so in a `note` and, where the tool pages, hands out the
cursor of the last record kept. A single record too large on its own has its longest strings shortened,
with the note saying that too, so even a 5 MB log line cannot make an answer fail.
"""

from __future__ import annotations

import math
from typing import Any

import orjson
from mcp import types

#: The default `max_sse_event_size` of the official SDK's streamable HTTP client.
CLIENT_EVENT_LIMIT = 1024 * 1024
#: What one result may take: the client's limit less room for the JSON-RPC envelope and the SSE framing.
RESULT_BUDGET = CLIENT_EVENT_LIMIT - 16 * 1024

Body = dict[str, Any]


def encode(body: Body) -> str:
    """The REST encoder's JSON (orjson; values it does not know written as strings, NaN as null)."""
    return orjson.dumps(body, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def result_of(body: Body) -> types.CallToolResult:
    """A successful result: the JSON as text, and that same JSON read back as structuredContent, so the two
    never differ."""
    text = encode(body)
    return types.CallToolResult(content=[types.TextContent(text=text)], structured_content=orjson.loads(text))


def result_size(result: types.CallToolResult) -> int:
    """Bytes of the result as the server writes it into the event (pydantic, by alias, UTF-8)."""
    return len(result.model_dump_json(by_alias=True, exclude_unset=True).encode())


def fits(body: Body, budget: int = RESULT_BUDGET) -> bool:
    return result_size(result_of(body)) <= budget


def series_too_large(body: Body, step_ns: int, budget: int = RESULT_BUDGET) -> str | None:
    """Why metric series do not fit one result, with the step that would make them fit; None when they fit.
    Series are never cut: a cut would hide their end, and a coarser step says the same in fewer points."""
    size = result_size(result_of(body))
    if size <= budget:
        return None
    seconds = math.ceil(step_ns * math.ceil(size / budget) / 10**9)
    return (
        f"these series take {size} bytes, more than the {CLIENT_EVENT_LIMIT} one MCP message may carry; use a"
        f" step of at least {seconds}s, or a shorter time range"
    )


def _item_cost(item: Any) -> int:
    """An item's share of the result: its JSON once as structured content, once escaped inside the text."""
    raw = orjson.dumps(item, default=str, option=orjson.OPT_NON_STR_KEYS)
    return len(raw) + len(orjson.dumps(raw.decode())) + 2  # + the separators in both copies


def records_that_fit(body: Body, key: str, budget: int = RESULT_BUDGET) -> int:
    """How many leading records of `body[key]` fit in one result together with the rest of `body` (and a
    note of up to a few hundred bytes): all of them when the whole body fits."""
    items = body[key]
    if fits(body, budget):
        return len(items)
    room = budget - result_size(result_of({**body, key: []})) - 1024
    kept, used = 0, 0
    for item in items:
        used += _item_cost(item)
        if used > room:
            break
        kept += 1
    while kept > 0 and not fits({**body, key: items[:kept], "note": "x" * 512}, budget):
        kept = kept * 9 // 10
    return kept


def shorten(body: Body, budget: int = RESULT_BUDGET) -> tuple[Body, int]:
    """`body` with its longest strings cut (each to the same length, marked with how much was cut) until the
    result fits, and how many strings were cut. For what cannot be split into records: one huge log line,
    a span with enormous attributes."""
    if fits(body, budget):
        return body, 0
    low, high = 0, max(_longest(body), 1)
    while low < high:  # the longest cap that fits
        cap = (low + high + 1) // 2
        if fits(_capped(body, cap)[0], budget):
            low = cap
        else:
            high = cap - 1
    return _capped(body, low)


def _longest(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return max((max(len(str(k)), _longest(v)) for k, v in value.items()), default=0)
    if isinstance(value, list):
        return max((_longest(v) for v in value), default=0)
    return 0


def _capped(value: Any, cap: int) -> tuple[Any, int]:
    if isinstance(value, str):
        if len(value) <= cap:
            return value, 0
        return f"{value[:cap]}…[{len(value) - cap} more characters cut]", 1
    if isinstance(value, dict):
        out, count = {}, 0
        for key, item in value.items():
            out[key], cut = _capped(item, cap)
            count += cut
        return out, count
    if isinstance(value, list):
        pairs = [_capped(item, cap) for item in value]
        return [item for item, _ in pairs], sum(cut for _, cut in pairs)
    return value, 0
