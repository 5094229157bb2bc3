"""One tail as a `text/event-stream` response: its lines as they arrive, and the events that bound it.

Events, in order: `start` (the bounds in force; once it is read, every line ingested after is on its way),
then `log` (one per line, `data` = the logs query's entry JSON) and `dropped` (`{"count", "total"}`: lines over
the tail's rate, left out since the previous one), a `: heartbeat` comment after `heartbeat_seconds` of silence,
and last `end` (`{"reason", "lines", "dropped", "discarded"}`) with reason `max duration`, `slow consumer` or
`shutdown`. A client that goes away ends the tail without an `end`.

Written as a raw ASGI response so that a write the client does not take can be abandoned: uvicorn waits for the
socket to drain before it writes, so a client that stopped reading parks the writer, and nothing of the parked
chunk is written yet. The hub cuts such a tail off when its buffer fills (hub.py); the writer then abandons the
parked write, offers the `end` event for `end_grace_seconds` (a client that reads again gets everything sent so
far, then `end`) and, if even that is not taken, returns with the response unfinished, which makes the server
drop the connection. Either way the tail's slot and buffer are released at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from domain.model import LogRecord
from domain.timeutil import format_rfc3339, now_ns
from observer.tail.hub import MAX_DURATION, SLOW_CONSUMER, Tail, TailHub
from observer.tail.settings import TailSettings
from serving.waiting import wait_at_most

#: Lines written in one chunk at most (the rest follow in the next).
CHUNK_LINES = 1000
HEARTBEAT = b": heartbeat\n\n"
CLIENT_CLOSED = "client closed"
HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),  # nginx and friends: pass each event on at once
    (b"connection", b"close"),  # one tail per connection: when it ends, so does the connection
]


def event(name: str, data: Any) -> bytes:
    """One server-sent event; orjson's compact JSON holds no newline, so `data` is always one line."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class TailStream(Response):
    """The response of one admitted tail; it owns the tail from here on and always takes it out of the hub."""

    def __init__(
        self,
        hub: TailHub,
        tail: Tail,
        *,
        seconds: int,
        render: Callable[[list[LogRecord]], Iterable[bytes]],
        settings: TailSettings,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(status_code=200, media_type="text/event-stream")
        self.hub, self.tail, self.seconds, self.entries = hub, tail, seconds, render
        self.settings = settings
        self.clock = clock
        self.lines = 0  # sent (or being sent)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tail = self.tail
        watcher = asyncio.ensure_future(self._watch(receive))
        try:
            await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
            start = {
                "startTime": format_rfc3339(now_ns()),
                "maxSeconds": self.seconds,
                "maxLinesPerSecond": int(tail.rate),
            }
            if await self._write(send, event("start", start), 0):
                await self._pump(send)
            self.hub.unsubscribe(tail)  # the slot is free before the last lines and the `end` go out
            if tail.ended == CLIENT_CLOSED:
                return
            if tail.ended != SLOW_CONSUMER:  # what the tail took before its time was up goes out first
                await self._drain(send)
            await self._finish(send)
        finally:
            self.hub.unsubscribe(tail)
            tail.end(CLIENT_CLOSED)  # a no-op when it has ended already
            watcher.cancel()

    async def _pump(self, send: Send) -> None:
        """Writes lines as they come until the tail ends (cut off, shut down, its time up) or the client goes."""
        tail, settings = self.tail, self.settings
        deadline = self.clock() + self.seconds
        beat = self.clock() + settings.heartbeat_seconds
        while not tail.ended:
            now = self.clock()
            if now >= deadline:  # checked first: a busy tail always has lines waiting
                tail.end(MAX_DURATION)
                return
            if tail.buffer or tail.dropped:
                body, lines = self._chunk()
                if not await self._write(send, body, lines):
                    return
                beat = self.clock() + settings.heartbeat_seconds
                continue
            if now >= beat:
                if not await self._write(send, HEARTBEAT, 0):
                    return
                beat = self.clock() + settings.heartbeat_seconds
                continue
            tail.wake.clear()
            await wait_at_most(tail.wake.wait(), min(deadline, beat) - now)

    def _chunk(self) -> tuple[bytes, int]:
        """The waiting lines and then the dropped count (if any) as one chunk of events, and how many lines it
        holds. The count comes last: the rate drops the tail of a burst, after the lines it let through."""
        tail = self.tail
        lines = tail.take(CHUNK_LINES)
        parts = list(self.entries(lines))
        if tail.dropped and not tail.buffer:
            parts.append(event("dropped", {"count": tail.dropped, "total": tail.dropped_total}))
            tail.dropped = 0
        self.lines += len(lines)
        return b"".join(parts), len(lines)

    async def _drain(self, send: Send) -> None:
        """The lines the tail took before it ended, as long as the client takes them."""
        while self.tail.buffer or self.tail.dropped:
            body, lines = self._chunk()
            if not await self._write(send, body, lines, finishing=True):
                return

    async def _finish(self, send: Send) -> None:
        """The `end` event and the end of the response, given `end_grace_seconds` to be taken."""
        tail = self.tail
        body = event(
            "end",
            {"reason": tail.ended, "lines": self.lines, "dropped": tail.dropped_total, "discarded": tail.discarded},
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                send({"type": "http.response.body", "body": body, "more_body": False}),
                self.settings.end_grace_seconds,
            )

    async def _write(self, send: Send, body: bytes, lines: int, finishing: bool = False) -> bool:
        """Writes one chunk of `lines` lines; False when the tail ended while the write waited for the client
        (the write is abandoned, nothing of it written, its lines counted as discarded). Once the tail has ended
        (`finishing`), a write waits at most `end_grace_seconds`."""
        tail = self.tail
        writing = asyncio.ensure_future(send({"type": "http.response.body", "body": body, "more_body": True}))
        if finishing:
            waiting: asyncio.Future[Any] = asyncio.ensure_future(asyncio.sleep(self.settings.end_grace_seconds))
        else:
            waiting = asyncio.ensure_future(tail.done.wait())
        try:
            await asyncio.wait({writing, waiting}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiting.cancel()
        if writing.done():
            writing.result()
            return tail.ended != CLIENT_CLOSED
        writing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writing
        self.lines -= lines
        tail.discarded += lines
        return False

    async def _watch(self, receive: Receive) -> None:
        """Ends the tail when the client disconnects (which wakes the writer)."""
        while (await receive())["type"] != "http.disconnect":
            pass
        self.tail.end(CLIENT_CLOSED)
