"""Log context: the lines one container wrote just before and just after one log line, like `grep -C`.

Built on plain logs queries over narrow windows, so every backend serves it without anything of its own. The
anchor instant is read first (a range of one nanosecond), which also tells which container wrote the line when
the caller did not say. Then each direction walks away from the anchor through windows of growing width (1 min,
10 min, 1 h, 6 h, 24 h), paging each with cursors and keeping only the container's lines, until enough are
found, the reach is exhausted, or the page budget is spent; the windows never overlap, so no line is read twice
and one call stays cheap however noisy the component's other containers are.

The query service (observer/service.py) authorizes and resolves the scope once and hands `read_log_context` a
reader already bound to it; REST (`POST /api/v1alpha1/logs/context`) and the MCP tool `get_log_context` both
call that one service method.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from domain.model import ComponentScope, LogRecord, LogsQuery, Page, SortOrder, TimeRange
from domain.timeutil import format_rfc3339

#: How far from the anchor each direction looks, successively wider.
CONTEXT_REACH_NS = tuple(seconds * 10**9 for seconds in (60, 600, 3600, 6 * 3600, 24 * 3600))
#: Lines read per page, and pages per direction at most.
CONTEXT_PAGE = 500
CONTEXT_MAX_PAGES = 20
#: The most lines read at the anchor instant itself.
ANCHOR_LIMIT = 1000

Reader = Callable[[LogsQuery], Awaitable[Page[LogRecord]]]


@dataclass(frozen=True, slots=True)
class LogContextRequest:
    """A checked log-context request, without its scope (observer/requests.py explains why)."""

    anchor_ns: int
    before: int
    after: int
    pod: str = ""
    container: str = ""


@dataclass(frozen=True, slots=True)
class LogContext:
    pod: str
    container: str
    before: list[LogRecord]
    anchor: list[LogRecord]
    after: list[LogRecord]
    searched: TimeRange


class AnchorUnclear(ValueError):
    """The anchor does not pick one container: several wrote at that instant, or none and the caller named
    none. The message says what to pass (in REST's field names)."""


async def read_log_context(read: Reader, scope: ComponentScope, request: LogContextRequest) -> LogContext:
    pod, container = request.pod, request.container

    def named_container(record: LogRecord) -> bool:
        who = record.identity
        return (not pod or who.pod == pod) and (not container or who.container == container)

    instant = TimeRange(request.anchor_ns, request.anchor_ns)
    anchored = await read(LogsQuery(scope, instant, ANCHOR_LIMIT, "asc"))
    at_anchor = [record for record in anchored.items if named_container(record)]
    writers = sorted({(record.identity.pod, record.identity.container) for record in at_anchor})
    anchor_text = format_rfc3339(request.anchor_ns)
    if len(writers) > 1:
        listed = ", ".join(f"{p}/{c}" for p, c in writers)
        raise AnchorUnclear(
            f"{len(writers)} containers logged at {anchor_text} ({listed}); pass podName and containerName to"
            " choose one"
        )
    if writers:
        pod, container = writers[0]
    elif not (pod and container):
        raise AnchorUnclear(
            f"no log line at {anchor_text} in this scope; pass the exact timestamp of a line a logs query"
            " returned, or podName and containerName to read around any instant"
        )

    def same_container(record: LogRecord) -> bool:
        return record.identity.pod == pod and record.identity.container == container

    earlier, searched_from = await _walk(read, scope, request.anchor_ns, request.before, "desc", same_container)
    later, searched_to = await _walk(read, scope, request.anchor_ns, request.after, "asc", same_container)
    earlier.reverse()
    return LogContext(pod, container, earlier, at_anchor, later, TimeRange(searched_from, searched_to))


async def _walk(
    read: Reader,
    scope: ComponentScope,
    anchor: int,
    wanted: int,
    sort: SortOrder,
    keep: Callable[[LogRecord], bool],
) -> tuple[list[LogRecord], int]:
    """Up to `wanted` lines strictly before (desc) or after (asc) the anchor, nearest first, and how far the
    search reached."""
    found: list[LogRecord] = []
    reached = anchor
    pages = 0
    previous = 0
    for reach in CONTEXT_REACH_NS:
        if len(found) >= wanted or pages >= CONTEXT_MAX_PAGES:
            break
        if sort == "desc":
            window = TimeRange(max(0, anchor - reach), anchor - previous - 1)
            reached = window.start_ns
        else:
            window = TimeRange(anchor + previous + 1, anchor + reach)
            reached = window.end_ns
        previous = reach
        cursor = ""
        while len(found) < wanted and pages < CONTEXT_MAX_PAGES:
            page = await read(LogsQuery(scope, window, CONTEXT_PAGE, sort, cursor=cursor))
            pages += 1
            found += [record for record in page.items if keep(record)][: wanted - len(found)]
            cursor = page.next_cursor
            if not cursor:
                break
    return found, reached
