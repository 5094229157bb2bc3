"""The notification outbox: every notification of an accepted alert is delivered, after any crash or restart.

Writing. The alert intake calls `enqueue(conn, ...)` inside the transaction that records the alert, so the alert
and its notifications commit together or not at all (upstream sends from goroutines after answering the webhook,
so a crash in between loses them). A notification's id is derived from (alert, channel): enqueueing the same
alert again writes nothing and returns the same ids. The id is also the idempotency key the receiver sees.

Delivering. `OutboxWorker.run()` claims due rows, sends each through the sender for its channel type, and records
the outcome. Every try is a row in `notification_attempts`, written when the try starts ("in progress") and
completed with its outcome, so a try cut short by a crash is still on record (as "interrupted").

- Claim = lease. A claim moves `next_attempt_ns` to now + `lease_s` and increments `attempts`, with a
  compare-and-set on the attempt count, in one transaction (on PostgreSQL the candidates are read `FOR UPDATE
  SKIP LOCKED`, so concurrent workers take different rows instead of queueing on the same ones). Only the worker
  whose update matched holds the row; the attempt count it set is its fencing token: a failure is recorded only
  while the row still carries that count, so a worker that overran its lease cannot reschedule a row another
  worker has since taken. A success is recorded whoever sent it (the receiver has it; that is the truth).
- Restart safety. A row whose worker died stays `pending` with its lease as its due time; once the lease expires
  any worker claims it again and sends the SAME payload with the SAME idempotency key. A death after the
  receiver answered but before `delivered` was written therefore means one duplicate the receiver can drop by
  key: delivery is at least once, processing can be exactly once. The lease must outlast a send (each send is cut
  off at 90% of it), which the 120 s default does for the senders' 30 s timeouts.
- Backoff. After failed try n, the next is due after min(max_delay_s, base_delay_s * 2^(n-1)), scaled by a
  random factor in [1 - jitter, 1] ("equal jitter": receivers recovering from an outage are not hit by every
  notification at once, yet retries never come sooner than half the nominal delay). After `max_attempts` tries
  the row is `failed` and an error is logged. A channel that does not exist (yet) or a Secret key that is missing
  fails the try like any error, with a detail that says so, because the resource may simply not have been applied
  yet.
- States: pending -> delivered | skipped (the sender chose to send nothing, e.g. the smtp.example.com
  placeholder) | failed (gave up).

Waking. `kick()` (the intake calls it after its commit) wakes the worker at once; otherwise it sleeps until the
next row is due, at most `poll_interval_s` (rows enqueued by another process are found by polling).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from sqlalchemy import Connection, Engine, func, insert, select, update

from domain.alerting import NotificationChannel
from observer.alerting.channels import Delivery, Sender, SendError
from observer.alerting.details import AlertDetails
from observer.alerting.tables import notification_attempts, notifications
from serving.waiting import wait_at_most

log = logging.getLogger(__name__)

PENDING, DELIVERED, SKIPPED, FAILED = "pending", "delivered", "skipped", "failed"
IN_PROGRESS = "in progress: claimed, no outcome recorded yet"
INTERRUPTED = "interrupted: the worker stopped before recording an outcome; retried once the lease expired"

#: Test hook, for tests/integration/test_outbox_crash.py only: "claimed" or "sent" makes the worker SIGKILL its
#: own process right after a claim commits, or right after a send succeeded (before `delivered` is written).
CRASH_HOOK_ENV = "OBSERVER_TEST_OUTBOX_KILL_AT"

_ID_NAMESPACE = uuid.UUID("6f2b7f0e-3c1a-5d4b-9a8e-0c7d1e2f3a4b")


def notification_id(alert_id: str, channel_namespace: str, channel_name: str) -> str:
    """Deterministic, so a repeated enqueue of the same alert names the same rows."""
    return str(uuid.uuid5(_ID_NAMESPACE, f"{alert_id}\x00{channel_namespace}\x00{channel_name}"))


# ----------------------------------------------------------------------------------------------- enqueue


def enqueue(conn: Connection, alert_id: str, channels: Sequence[tuple[str, str]], payload: AlertDetails) -> list[str]:
    """One `pending` notification per (namespace, name) channel, in the caller's transaction; returns their ids
    (the idempotency keys), in channel order. Rows that exist already are left alone."""
    now = time.time_ns()
    rows = []
    for namespace, name in dict.fromkeys(channels):
        key = notification_id(alert_id, namespace, name)
        details = replace(payload, alert_id=alert_id, idempotency_key=key)
        rows.append(
            dict(
                id=key,
                alert_id=alert_id,
                channel_namespace=namespace,
                channel_name=name,
                payload=details.to_json(),
                state=PENDING,
                attempts=0,
                next_attempt_ns=now,
                created_ns=now,
                delivered_ns=None,
                last_error=None,
            )
        )
    if not rows:
        return []
    dialect = conn.dialect.name
    if dialect in ("sqlite", "postgresql"):
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            conn.execute(sqlite_insert(notifications).on_conflict_do_nothing(), rows)
        else:
            from sqlalchemy.dialects.postgresql import insert as postgresql_insert

            conn.execute(postgresql_insert(notifications).on_conflict_do_nothing(), rows)
    else:  # no portable "insert if absent": look first (the unique constraint still guards a race)
        existing = set(conn.scalars(select(notifications.c.id).where(notifications.c.id.in_([r["id"] for r in rows]))))
        fresh = [row for row in rows if row["id"] not in existing]
        if fresh:
            conn.execute(insert(notifications), fresh)
    return [str(row["id"]) for row in rows]


# ----------------------------------------------------------------------------------------------- status


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    attempt: int
    started_ns: int
    finished_ns: int
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class NotificationStatus:
    id: str
    channel_namespace: str
    channel_name: str
    state: str
    attempts: int
    next_attempt_ns: int
    delivered_ns: int | None
    last_error: str | None
    history: tuple[AttemptRecord, ...] = field(default=())


def notification_status(engine: Engine, alert_id: str) -> list[NotificationStatus]:
    """Every notification of an alert with its tries, for tests and operators (blocking: run it in a thread)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(notifications)
            .where(notifications.c.alert_id == alert_id)
            .order_by(notifications.c.channel_namespace, notifications.c.channel_name)
        ).all()
        tries = (
            conn.execute(
                select(notification_attempts)
                .where(notification_attempts.c.notification_id.in_([row.id for row in rows]))
                .order_by(notification_attempts.c.attempt)
            ).all()
            if rows
            else []
        )
    by_id: dict[str, list[AttemptRecord]] = {}
    for t in tries:
        by_id.setdefault(t.notification_id, []).append(
            AttemptRecord(t.attempt, t.started_ns, t.finished_ns, bool(t.ok), t.detail)
        )
    return [
        NotificationStatus(
            row.id,
            row.channel_namespace,
            row.channel_name,
            row.state,
            row.attempts,
            row.next_attempt_ns,
            row.delivered_ns,
            row.last_error,
            tuple(by_id.get(row.id, ())),
        )
        for row in rows
    ]


# ----------------------------------------------------------------------------------------------- worker


class ChannelStore(Protocol):
    """What the worker needs of the resource store (observer/alerting/resources.py's ResourceStore)."""

    async def channel(self, namespace: str, name: str) -> NotificationChannel | None: ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 10
    base_delay_s: float = 10.0
    max_delay_s: float = 1800.0
    jitter: float = 0.5  # the delay is scaled by a random factor in [1 - jitter, 1]

    def delay_s(self, failed_attempt: int, rand: float) -> float:
        nominal = min(self.max_delay_s, self.base_delay_s * 2 ** min(max(0, failed_attempt - 1), 60))
        return nominal * (1.0 - self.jitter + self.jitter * rand)


@dataclass(frozen=True, slots=True)
class _Claim:
    id: str
    attempt: int  # this try's number, and the fencing token
    channel_namespace: str
    channel_name: str
    payload: str


class OutboxWorker:
    def __init__(
        self,
        engine: Engine,
        store: ChannelStore,
        senders: Mapping[str, Sender],
        *,
        retry: RetryPolicy = RetryPolicy(),
        lease_s: float = 120.0,
        poll_interval_s: float = 5.0,
        batch_size: int = 16,
        rand: Callable[[], float] = random.random,
    ):
        self.engine = engine
        self.store = store
        self.senders = dict(senders)
        self.retry = retry
        self.lease_s = lease_s
        self.poll_interval_s = poll_interval_s
        self.batch_size = batch_size
        self._rand = rand
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self._kill_at = os.environ.get(CRASH_HOOK_ENV, "")

    # --------------------------------------------------------------------------------------- control

    def kick(self) -> None:
        """Something was enqueued: look now. Safe from any thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            self._wake.set()  # not running yet: run() starts with a pass anyway
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake.set()
        else:
            loop.call_soon_threadsafe(self._wake.set)

    def stop(self) -> None:
        self._stopping = True
        self.kick()

    async def run(self) -> None:
        """Delivers until `stop()`; a failing pass (e.g. the database briefly unavailable) is logged and retried."""
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        while not self._stopping:
            self._wake.clear()
            try:
                claimed = await self.run_once()
            except Exception:  # noqa: BLE001  (the worker must outlive a bad pass)
                log.exception("notification outbox pass failed; retrying in %.1fs", self.poll_interval_s)
                claimed, wait_s = 0, self.poll_interval_s
            else:
                wait_s = 0.0 if claimed else await asyncio.to_thread(self._next_due_in_s)
            if self._stopping or claimed:
                continue
            await wait_at_most(self._wake.wait(), wait_s)

    async def run_once(self) -> int:
        """One pass: claims what is due (at most `batch_size`), delivers it concurrently; returns how many."""
        claims = await asyncio.to_thread(self._claim)
        if claims:
            self._crash_point("claimed")
            await asyncio.gather(*(self._deliver(claim) for claim in claims))
        return len(claims)

    # --------------------------------------------------------------------------------------- claiming

    def _claim(self) -> list[_Claim]:
        now = time.time_ns()
        lease_ns = int(self.lease_s * 1e9)
        n = notifications.c
        with self.engine.begin() as conn:
            query = (
                select(n.id, n.attempts, n.channel_namespace, n.channel_name, n.payload)
                .where(n.state == PENDING, n.next_attempt_ns <= now)
                .order_by(n.next_attempt_ns)
                .limit(self.batch_size)
            )
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            claims = []
            for row in conn.execute(query).all():
                if row.attempts >= self.retry.max_attempts:  # its last try was interrupted: nothing left to try
                    self._close_interrupted(conn, row.id)
                    if conn.execute(
                        update(notifications)
                        .where(n.id == row.id, n.state == PENDING, n.attempts == row.attempts)
                        .values(state=FAILED, last_error=INTERRUPTED)
                    ).rowcount:
                        log.error(
                            "notification %s to channel %s/%s failed: gave up after %d attempts (the last "
                            "was interrupted)",
                            row.id,
                            row.channel_namespace,
                            row.channel_name,
                            row.attempts,
                        )
                    continue
                attempt = row.attempts + 1
                taken = conn.execute(
                    update(notifications)
                    .where(n.id == row.id, n.state == PENDING, n.attempts == row.attempts)
                    .values(attempts=attempt, next_attempt_ns=now + lease_ns)
                ).rowcount
                if taken != 1:
                    continue  # another worker got there first
                self._close_interrupted(conn, row.id)
                conn.execute(
                    insert(notification_attempts).values(
                        notification_id=row.id,
                        attempt=attempt,
                        started_ns=now,
                        finished_ns=now,
                        ok=False,
                        detail=IN_PROGRESS,
                    )
                )
                claims.append(_Claim(row.id, attempt, row.channel_namespace, row.channel_name, row.payload))
        return claims

    @staticmethod
    def _close_interrupted(conn: Connection, notification: str) -> None:
        a = notification_attempts.c
        conn.execute(
            update(notification_attempts)
            .where(a.notification_id == notification, a.detail == IN_PROGRESS)
            .values(detail=INTERRUPTED)
        )

    def _next_due_in_s(self) -> float:
        with self.engine.connect() as conn:
            due = conn.scalar(select(func.min(notifications.c.next_attempt_ns)).where(notifications.c.state == PENDING))
        if due is None:
            return self.poll_interval_s
        return min(self.poll_interval_s, max(0.0, (due - time.time_ns()) / 1e9))

    # --------------------------------------------------------------------------------------- sending

    async def _deliver(self, claim: _Claim) -> None:
        where = f"{claim.channel_namespace}/{claim.channel_name}"
        delivery: Delivery | None = None
        try:
            channel = await self.store.channel(claim.channel_namespace, claim.channel_name)
            if channel is None:
                raise SendError(f"notification channel {where} not found (not applied yet?); will retry")
            sender = self.senders.get(channel.type)
            if sender is None:
                raise SendError(f"no sender for channel type {channel.type!r}")
            details = AlertDetails.from_json(claim.payload)
            limit_s = self.lease_s * 0.9
            try:
                delivery = await asyncio.wait_for(sender.send(channel, details), timeout=limit_s)
            except TimeoutError:
                raise SendError(f"send to channel {where} took longer than {limit_s:g}s (90% of the lease)") from None
            self._crash_point("sent")
            ok, state, detail = True, SKIPPED if delivery.skipped else DELIVERED, delivery.detail
        except SendError as exc:
            ok, state, detail = False, PENDING, exc.detail
        except Exception as exc:  # noqa: BLE001  (a bug in a sender must not stop the others or lose the row)
            log.exception("unexpected error sending notification %s to channel %s", claim.id, where)
            ok, state, detail = False, PENDING, f"unexpected {type(exc).__name__} (see the observer's log)"
        try:
            await asyncio.to_thread(self._finish, claim, ok, state, detail)
        except Exception:  # noqa: BLE001  (the lease expires and the row is tried again)
            log.exception(
                "could not record the outcome of notification %s; it will be retried after its lease", claim.id
            )

    def _finish(self, claim: _Claim, ok: bool, state: str, detail: str) -> None:
        now = time.time_ns()
        n, a = notifications.c, notification_attempts.c
        with self.engine.begin() as conn:
            conn.execute(
                update(notification_attempts)
                .where(a.notification_id == claim.id, a.attempt == claim.attempt)
                .values(finished_ns=now, ok=ok, detail=detail)
            )
            if ok:
                conn.execute(
                    update(notifications)
                    .where(n.id == claim.id, n.state == PENDING)
                    .values(state=state, delivered_ns=now, next_attempt_ns=now, last_error=None)
                )
                return
            fenced = update(notifications).where(n.id == claim.id, n.state == PENDING, n.attempts == claim.attempt)
            if claim.attempt >= self.retry.max_attempts:
                if conn.execute(fenced.values(state=FAILED, last_error=detail)).rowcount:
                    log.error(
                        "notification %s to channel %s/%s failed: gave up after %d attempts; last error: %s",
                        claim.id,
                        claim.channel_namespace,
                        claim.channel_name,
                        claim.attempt,
                        detail,
                    )
                return
            delay_s = self.retry.delay_s(claim.attempt, self._rand())
            if conn.execute(fenced.values(next_attempt_ns=now + int(delay_s * 1e9), last_error=detail)).rowcount:
                log.warning(
                    "notification %s to channel %s/%s: attempt %d failed (%s); next try in %.1fs",
                    claim.id,
                    claim.channel_namespace,
                    claim.channel_name,
                    claim.attempt,
                    detail,
                    delay_s,
                )

    def _crash_point(self, point: str) -> None:
        if self._kill_at == point:
            os.kill(os.getpid(), signal.SIGKILL)
