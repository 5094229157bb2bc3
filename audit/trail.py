"""The recorder: `AuditTrail.record` stores one AuditRecord through each of its writers before it returns, so a
response goes out only after its record is stored (nothing accepted is lost to a crash in between).

Two writers:

- `SinkWriter`: into a telemetry sink (the plane's, under `observer up`), as a batch of one record whose batch id
  is the record's event id, so a retried write is stored once. A sink answering `retry` (or raising) is tried
  again a bounded number of times with backoff; a record it still will not take is logged (its event id and
  action only: never an actor's token, never a body) and counted in `AuditTrail.failed`.
- `StreamWriter`: one JSON line per record (domain.audit.audit_document) on a text stream, for a process whose
  logs a collector ships (the standalone control plane, the observer in Kubernetes): the collector turns a
  trusted producer's lines into audit records.

audit/ imports no adapters code (the control plane may not, even indirectly), so the sink is described here by
the one method the writer calls; adapters.protocols.TelemetrySink fits it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TextIO

import orjson

from domain.audit import AuditRecord, audit_document

log = logging.getLogger(__name__)

#: Attempts of one sink write (the first included) and the backoff between them: bounded, so a dead backend
#: delays a state-changing call by seconds at most, never indefinitely.
SINK_ATTEMPTS = 4
FIRST_BACKOFF_S = 0.05
MAX_BACKOFF_S = 1.0


def new_event_id() -> str:
    """A fresh record id (uuid4, hex): unique without coordination between producers."""
    return uuid.uuid4().hex


class WriteOutcome(Protocol):
    """What a sink answers (adapters.protocols.WriteResult has these)."""

    @property
    def outcome(self) -> str: ...
    @property
    def retry_after_s(self) -> float: ...
    @property
    def reason(self) -> str: ...


class AuditSink(Protocol):
    """The part of a TelemetrySink the trail uses."""

    async def write(self, *, batch_id: str, audit: Sequence[AuditRecord]) -> WriteOutcome: ...


class NotStored(Exception):
    """A writer gave a record up; the message is safe to log (no record content beyond its id)."""


class AuditWriter(Protocol):
    async def write(self, record: AuditRecord) -> None:
        """Store `record` or raise NotStored."""
        ...


class SinkWriter:
    """Writes each record into a telemetry sink, retrying what the sink asks to be retried (bounded)."""

    def __init__(
        self,
        sink: AuditSink,
        *,
        attempts: int = SINK_ATTEMPTS,
        first_backoff_s: float = FIRST_BACKOFF_S,
        max_backoff_s: float = MAX_BACKOFF_S,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.sink = sink
        self.attempts = attempts
        self.first_backoff_s = first_backoff_s
        self.max_backoff_s = max_backoff_s
        self.sleep = sleep

    async def write(self, record: AuditRecord) -> None:
        reason, asked_s = "", 0.0
        for attempt in range(self.attempts):
            if attempt:
                await self.sleep(self._backoff(attempt, asked_s))
            asked_s = 0.0
            try:
                result = await self.sink.write(batch_id=record.event_id, audit=[record])
            except Exception as exc:  # a sink may raise BackendUnavailable or anything: that is a retry
                reason = f"the sink raised {type(exc).__name__}"
                continue
            if result.outcome == "delivered":
                return
            if result.outcome == "dropped":
                raise NotStored(f"the sink refused it: {result.reason or 'no reason given'}")
            reason, asked_s = f"the sink asked to retry: {result.reason or 'no reason given'}", result.retry_after_s
        raise NotStored(f"{reason} ({self.attempts} attempts)")

    def _backoff(self, attempt: int, asked_s: float) -> float:
        """Exponential from `first_backoff_s`, at least what the sink asked for, never above `max_backoff_s`."""
        exponential: float = self.first_backoff_s * 2.0 ** (attempt - 1)
        return min(self.max_backoff_s, max(asked_s, exponential))


class StreamWriter:
    """One JSON line per record on `stream` (stdout in a container), flushed at once so a crash loses none."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    async def write(self, record: AuditRecord) -> None:
        line = orjson.dumps(audit_document(record)).decode() + "\n"
        try:
            self.stream.write(line)
            self.stream.flush()
        except (OSError, ValueError) as exc:  # a closed or broken stream
            raise NotStored(f"the stream refused it: {type(exc).__name__}") from None


class AuditTrail:
    """Where one producer (`observer`, `openchoreo-api`) records. `record` returns once every writer stored the
    record or gave it up; it never raises, because the call it records has already happened. `stored` and
    `failed` count records (failed: given up by at least one writer). `trust_forwarded_for` is how this
    process's producers read a source address (audit/context.py): behind a proxy that sets X-Forwarded-For."""

    def __init__(
        self, producer: str, writers: Sequence[AuditWriter] = (), *, trust_forwarded_for: bool = False
    ) -> None:
        self.producer = producer
        self.trust_forwarded_for = trust_forwarded_for
        self.writers: list[AuditWriter] = list(writers)
        self.stored = 0
        self.failed = 0

    @property
    def enabled(self) -> bool:
        return bool(self.writers)

    def redirect(self, writers: Sequence[AuditWriter]) -> None:
        """Write to `writers` from now on (a control plane served inside `observer up` writes into the
        observer's sink once the observer has built it)."""
        self.writers = list(writers)

    async def record(self, record: AuditRecord) -> None:
        if not self.writers:
            return
        if not record.producer:
            record = dataclasses.replace(record, producer=self.producer)
        failed = False
        for writer in list(self.writers):
            try:
                await writer.write(record)
            except NotStored as exc:
                failed = True
                log.error("audit record %s (%s) not stored: %s", record.event_id, record.action, exc)
            except Exception:  # a bug in a writer must not fail the call it records
                failed = True
                log.exception("audit record %s (%s): the writer failed", record.event_id, record.action)
        if failed:
            self.failed += 1
        else:
            self.stored += 1
