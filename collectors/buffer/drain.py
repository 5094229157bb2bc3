"""The recent ack rate, for a `BufferFull` that says how long to wait rather than a fixed guess: a client told
too little retries into a still-full buffer, one told too much leaves the exporters idle."""

from __future__ import annotations

import collections
import time

#: Suggested waits for a full buffer: without a recent ack rate, and the range any estimate is held to.
DEFAULT_RETRY_AFTER_S = 2.0
RETRY_AFTER_RANGE_S = (0.25, 30.0)
#: The rate is measured over this many recent seconds.
DRAIN_WINDOW_S = 10.0


class DrainRate:
    """Bytes freed per second lately (a batch's bytes are freed when its last consumer acknowledges it)."""

    def __init__(self) -> None:
        self._acks: collections.deque[tuple[float, int]] = collections.deque()  # (when, bytes)
        self._bytes = 0

    def note(self, size: int) -> None:
        now = time.monotonic()
        self._acks.append((now, size))
        self._bytes += size
        self._forget(now)

    def wait_for(self, needed: int) -> float:
        """Seconds until `needed` more bytes are likely freed, held to a sane range."""
        now = time.monotonic()
        self._forget(now)
        if not self._acks:  # nothing freed lately: an exporter is stuck or just started
            return DEFAULT_RETRY_AFTER_S
        rate = self._bytes / max(now - self._acks[0][0], 0.1)
        low, high = RETRY_AFTER_RANGE_S
        return min(max(needed / rate, low), high)

    def _forget(self, now: float) -> None:
        while self._acks and self._acks[0][0] < now - DRAIN_WINDOW_S:
            self._bytes -= self._acks.popleft()[1]
