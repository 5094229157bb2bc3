"""The tails of one process and the ingest path's one call into them, `publish`, which never waits.

Ingest hands every delivered batch of log records to `TailHub.publish` on the event loop. For each identity in
the batch it looks up only the tails filed under that identity's keys (match.py `keys_of`), and each such tail
takes its lines into its own bounded buffer (`Tail.offer`): lines over the tail's rate are counted as dropped,
and a tail whose buffer is full (its client does not read fast enough) is ended there, as a slow consumer, and
leaves the hub. Nothing here awaits, so a tail can slow neither ingest nor the other tails; the work per batch
is a few dictionary lookups per identity when no tail matches, and nothing at all when there is no tail.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from domain.model import Identity, LogRecord
from observer.tail.match import Filter, Key, keys_of
from observer.tail.settings import TailSettings

SLOW_CONSUMER = "slow consumer"
MAX_DURATION = "max duration"
SHUTDOWN = "shutdown"


class TooManyTails(Exception):
    """The process already serves its `max_tails`."""


@dataclass
class Tail:
    """One subscriber: what it wants, its rate bucket, its buffer of lines not yet written, and why it ended."""

    want: Filter
    rate: float  # lines per second
    capacity: int  # lines the buffer holds
    buffer: deque[LogRecord] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)  # set for new lines, drops, and the end
    done: asyncio.Event = field(default_factory=asyncio.Event)  # set once, when the tail ends
    ended: str = ""
    dropped: int = 0  # by the rate limit, not yet reported
    dropped_total: int = 0
    discarded: int = 0  # waiting in the buffer when the tail was cut off
    since: float = field(default_factory=time.monotonic)  # when it started, on the hub's clock
    _tokens: float = 0.0
    _refilled: float = 0.0

    def __post_init__(self) -> None:
        self._tokens = self.rate  # one second's worth up front: a batch may arrive all at once
        self._refilled = self.since

    def offer(self, records: Sequence[LogRecord], now: float) -> bool:
        """Takes the matching lines of `records` (one identity the scope covers); False once the tail has ended."""
        if self.ended:
            return False
        lines = self.want.lines(records)
        if not lines:
            return True
        self._tokens = min(self.rate, self._tokens + (now - self._refilled) * self.rate)
        self._refilled = now
        room = int(self._tokens)
        if room < len(lines):
            self.dropped += len(lines) - room
            self.dropped_total += len(lines) - room
            lines = lines[:room]
        if not lines:
            self.wake.set()  # the dropped count is news too
            return True
        self._tokens -= len(lines)
        if len(self.buffer) + len(lines) > self.capacity:
            self.end(SLOW_CONSUMER)
            return False
        self.buffer.extend(lines)
        self.wake.set()
        return True

    def end(self, reason: str) -> None:
        """Ends the tail (the first reason stands). A slow consumer's waiting lines are discarded, never sent."""
        if self.ended:
            return
        self.ended = reason
        if reason == SLOW_CONSUMER:
            self.discarded = len(self.buffer)
            self.buffer.clear()
        self.wake.set()
        self.done.set()

    def take(self, most: int) -> list[LogRecord]:
        """Up to `most` waiting lines, oldest first."""
        buffer = self.buffer
        count = min(most, len(buffer))
        return [buffer.popleft() for _ in range(count)]


class TailHub:
    """Every tail of the process, filed by the narrowest scope level each names."""

    def __init__(self, settings: TailSettings | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings or TailSettings()
        self._clock = clock
        self._by_key: dict[Key, list[Tail]] = {}
        self._count = 0
        self._closed = False

    def __len__(self) -> int:
        return self._count

    def subscribe(self, want: Filter, rate: float) -> Tail:
        """A new tail, receiving from now on; TooManyTails at the process's cap (or once the hub is closed)."""
        if self._closed or self._count >= self.settings.max_tails:
            raise TooManyTails()
        tail = Tail(want, rate, self.settings.queue_lines, since=self._clock())
        self._by_key.setdefault(want.key, []).append(tail)
        self._count += 1
        return tail

    def unsubscribe(self, tail: Tail) -> None:
        tails = self._by_key.get(tail.want.key)
        if tails is None or tail not in tails:
            return
        tails.remove(tail)
        self._count -= 1
        if not tails:
            del self._by_key[tail.want.key]

    def publish(self, records: Sequence[LogRecord]) -> None:
        """Offers ingested records to every tail they match, in order. Never waits, never raises for a tail."""
        if not self._by_key or not records:
            return
        by_identity: dict[int, tuple[Identity, list[LogRecord]]] = {}
        for record in records:
            group = by_identity.get(id(record.identity))
            if group is None:
                by_identity[id(record.identity)] = (record.identity, [record])
            else:
                group[1].append(record)
        now = self._clock()
        ended: list[Tail] = []
        for who, lines in by_identity.values():
            for key in keys_of(who):
                for tail in self._by_key.get(key, ()):
                    if tail.want.covers(who) and not tail.offer(lines, now):
                        ended.append(tail)
        for tail in ended:
            self.unsubscribe(tail)

    def close(self, reason: str = SHUTDOWN) -> None:
        """Ends every tail (the process is stopping) and refuses new ones."""
        self._closed = True
        for tails in list(self._by_key.values()):
            for tail in list(tails):
                tail.end(reason)
                self.unsubscribe(tail)

    async def close_when(self, stopping: Callable[[], bool], poll_s: float = 0.2) -> None:
        """Closes the hub once `stopping()` says so (the servers were asked to exit): an open tail would
        otherwise hold a graceful shutdown for up to its whole duration."""
        while not stopping():
            await asyncio.sleep(poll_s)
        self.close()
