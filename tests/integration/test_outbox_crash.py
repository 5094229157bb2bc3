"""The outbox across SIGKILL: a child process runs an OutboxWorker over a SQLite file holding one notification and
kills itself (the `OBSERVER_TEST_OUTBOX_KILL_AT` hook in observer/alerting/outbox.py) at a chosen point:

- `claimed`: the claim has committed, nothing was sent. After a restart the row is sent once its lease expires:
  the receiver gets it exactly once.
- `sent`: the receiver answered 200, `delivered` was never written. After a restart the receiver gets a second
  POST with the SAME idempotency key and body (so its dedup processes one), and the store says delivered.

Run as a module, this file is the child: `python -m tests.integration.test_outbox_crash CHILD DB_PATH`; it runs
the worker until the notification leaves `pending`, then exits 0 (unless the hook killed it first).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from devservers.receivers import WebhookReceiver
from domain.alerting import API_VERSION, CHANNEL_KIND
from observer.alerting.channels import IDEMPOTENCY_HEADER, close_senders, default_senders
from observer.alerting.db import open_engine
from observer.alerting.details import AlertDetails
from observer.alerting.outbox import (
    CRASH_HOOK_ENV,
    DELIVERED,
    IN_PROGRESS,
    INTERRUPTED,
    PENDING,
    OutboxWorker,
    RetryPolicy,
    enqueue,
    notification_status,
)
from observer.alerting.resources import ResourceStore

ROOT = Path(__file__).resolve().parents[2]
ALERT_ID = "alert-crash-1"
LEASE_S = 1.0  # short, so the restarted worker re-claims the orphaned row soon
GUARD_S = 60.0  # kills a child that hangs; never reached when things work


# ----------------------------------------------------------------------------------------------- the child


async def child(db_path: str) -> None:
    engine = open_engine(db_path)
    store = ResourceStore(engine)
    worker = OutboxWorker(
        engine,
        store,
        default_senders(store),
        lease_s=LEASE_S,
        poll_interval_s=0.1,
        retry=RetryPolicy(max_attempts=5, base_delay_s=0.05, max_delay_s=0.2),
    )
    task = asyncio.create_task(worker.run())
    deadline = time.monotonic() + GUARD_S
    while any(s.state == PENDING for s in await asyncio.to_thread(notification_status, engine, ALERT_ID)):
        if time.monotonic() > deadline:
            raise SystemExit("the notification never left pending")
        await asyncio.sleep(0.02)
    worker.stop()
    await task
    await close_senders(worker.senders.values())
    engine.dispose()


# ----------------------------------------------------------------------------------------------- the parent


async def run_child(db_path: Path, kill_at: str = "") -> int:
    env = {k: v for k, v in os.environ.items() if k != CRASH_HOOK_ENV}
    if kill_at:
        env[CRASH_HOOK_ENV] = kill_at
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.integration.test_outbox_crash",
        "CHILD",
        str(db_path),
        cwd=ROOT,
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, stderr = await asyncio.wait_for(proc.communicate(), GUARD_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    if proc.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(f"child failed ({proc.returncode}):\n{stderr.decode(errors='replace')}")
    return proc.returncode


@pytest.mark.parametrize("kill_at", ["claimed", "sent"])
async def test_a_killed_worker_leaves_the_notification_to_its_successor(tmp_path: Path, kill_at: str) -> None:
    db_path = tmp_path / "alerts.db"
    engine = open_engine(str(db_path))
    store = ResourceStore(engine)
    async with WebhookReceiver() as hook:
        await store.put_channel(
            {
                "apiVersion": API_VERSION,
                "kind": CHANNEL_KIND,
                "metadata": {"name": "hook", "namespace": "acme"},
                "spec": {"environment": "dev", "type": "webhook", "webhookConfig": {"url": hook.url}},
            }
        )
        with engine.begin() as conn:
            [key] = enqueue(conn, ALERT_ID, [("acme", "hook")], AlertDetails(alert_name="High CPU"))

        assert await run_child(db_path, kill_at) == -signal.SIGKILL
        [status] = notification_status(engine, ALERT_ID)
        assert status.state == PENDING and status.attempts == 1
        assert [(a.attempt, a.ok, a.detail) for a in status.history] == [(1, False, IN_PROGRESS)]
        assert len(hook.requests) == (1 if kill_at == "sent" else 0)

        assert await run_child(db_path) == 0

    [status] = notification_status(engine, ALERT_ID)
    assert status.state == DELIVERED and status.attempts == 2
    assert [(a.attempt, a.ok) for a in status.history] == [(1, False), (2, True)]
    assert status.history[0].detail == INTERRUPTED
    keys = [r.header(IDEMPOTENCY_HEADER) for r in hook.requests]
    if kill_at == "claimed":
        assert keys == [key]  # never sent before the crash: exactly once
    else:
        assert keys == [key, key]  # resent after the crash, under the same key and with the same body
        assert hook.requests[0].body == hook.requests[1].body
    assert [r.header(IDEMPOTENCY_HEADER) for r in hook.processed] == [key]  # the receiver's dedup sees one
    engine.dispose()


if __name__ == "__main__" and sys.argv[1:2] == ["CHILD"]:
    asyncio.run(child(sys.argv[2]))
