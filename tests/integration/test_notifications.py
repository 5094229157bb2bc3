"""Notifications end to end: the outbox worker delivering to a real webhook receiver and a real SMTP server on
loopback (devservers/receivers.py), with channels and Secrets in the real resource store over SQLite.

Waits below are guards against hanging (a test that never settles fails), never assertions about speed; the
backoff check compares timestamps the worker itself recorded.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from devservers.receivers import SmtpServer, WebhookReceiver
from domain.alerting import API_VERSION, CHANNEL_KIND
from observer.alerting.channels import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    close_senders,
    default_senders,
    verify_signature,
)
from observer.alerting.db import open_engine
from observer.alerting.details import ADDED_KEYS, UPSTREAM_KEYS, AlertDetails
from observer.alerting.outbox import (
    DELIVERED,
    FAILED,
    IN_PROGRESS,
    PENDING,
    SKIPPED,
    NotificationStatus,
    OutboxWorker,
    RetryPolicy,
    enqueue,
    notification_status,
)
from observer.alerting.resources import ResourceStore
from observer.alerting.tables import notifications

NS = "acme"
GUARD_S = 30.0
FAST = RetryPolicy(max_attempts=5, base_delay_s=0.05, max_delay_s=0.4, jitter=0.5)

SMTP_USER, SMTP_PASSWORD = "alerts", "smtp-pass-7Q2x"
HEADER_INLINE, HEADER_SECRET, SIGNING_KEY, URL_TOKEN = (
    "Bearer inline-tok-31",
    "from-secret-9f",
    "whsec-k3y-77",
    "tok-in-url-5",
)


def details(**overrides: Any) -> AlertDetails:
    base = dict(
        alert_name="High CPU",
        alert_timestamp="2026-03-01T10:00:00Z",
        alert_severity="critical",
        alert_description='CPU above "90%" on \\node\nsecond line',
        alert_threshold="90",
        alert_value="97.5",
        alert_type="metric",
        namespace=NS,
        component="checkout",
        project="shop",
        environment="dev",
        component_id="c-uid",
        project_id="p-uid",
        environment_id="e-uid",
        notification_channels=("hook",),
        incident_enabled=True,
    )
    return AlertDetails(**(base | overrides))


def channel_doc(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": CHANNEL_KIND,
        "metadata": {"name": name, "namespace": NS},
        "spec": {"environment": "dev"} | spec,
    }


def webhook_doc(name: str, url: str, **config: Any) -> dict[str, Any]:
    return channel_doc(name, {"type": "webhook", "webhookConfig": {"url": url} | config})


def email_doc(
    name: str,
    host: str,
    port: int,
    *,
    auth: bool = True,
    skip_verify: bool = True,
    template: dict[str, str] | None = None,
    secret: str = "smtp-auth",
) -> dict[str, Any]:
    smtp: dict[str, Any] = {"host": host, "port": port, "tls": {"insecureSkipVerify": skip_verify}}
    if auth:
        smtp["auth"] = {
            "username": {"secretKeyRef": {"name": secret, "key": "username"}},
            "password": {"secretKeyRef": {"name": secret, "key": "password"}},
        }
    config: dict[str, Any] = {
        "from": "alerts@observer.test",
        "to": ["oncall@acme.test", "lead@acme.test"],
        "smtp": smtp,
    }
    if template:
        config["template"] = template
    return channel_doc(name, {"type": "email", "emailConfig": config})


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """The alert store on both of its databases: the claim differs (FOR UPDATE SKIP LOCKED on PostgreSQL)."""
    if request.param == "sqlite":
        engine = open_engine(str(tmp_path / "alerts.db"))
    else:
        engine = open_engine(request.getfixturevalue("postgres_server").fresh_database())
    yield engine
    engine.dispose()


@pytest.fixture
def store(engine: Engine) -> ResourceStore:
    return ResourceStore(engine)


def accept(engine: Engine, alert_id: str, channels: list[str], payload: AlertDetails) -> list[str]:
    """What the intake does: enqueue inside its own transaction."""
    with engine.begin() as conn:
        return enqueue(conn, alert_id, [(NS, name) for name in channels], payload)


@asynccontextmanager
async def running(worker: OutboxWorker) -> AsyncIterator[OutboxWorker]:
    task = asyncio.create_task(worker.run())
    worker.kick()
    try:
        yield worker
    finally:
        worker.stop()
        await asyncio.wait_for(task, GUARD_S)
        await close_senders(worker.senders.values())


async def settled(engine: Engine, alert_id: str) -> list[NotificationStatus]:
    """Every notification of the alert out of `pending` (a guard, not a timing assertion)."""
    deadline = time.monotonic() + GUARD_S
    while True:
        statuses = await asyncio.to_thread(notification_status, engine, alert_id)
        if statuses and all(s.state != PENDING for s in statuses):
            return statuses
        assert time.monotonic() < deadline, f"notifications never settled: {statuses}"
        await asyncio.sleep(0.02)


def worker_over(engine: Engine, store: ResourceStore, retry: RetryPolicy = FAST, **options: Any) -> OutboxWorker:
    return OutboxWorker(engine, store, default_senders(store), retry=retry, poll_interval_s=0.2, **options)


def assert_no_secret(statuses: list[NotificationStatus], caplog: pytest.LogCaptureFixture, *secrets: str) -> None:
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("observer"))
    for status in statuses:
        texts = [status.last_error or ""] + [a.detail for a in status.history]
        for secret in secrets:
            assert not any(secret in text for text in texts), f"a secret reached the attempt record: {texts}"
            assert secret not in ours, "a secret reached the log"


# ----------------------------------------------------------------------------------------------- webhook

PAYLOAD_TEMPLATE = json.dumps(
    {
        "text": "[${alert.severity}] ${alert.name} fired at ${alert.startsAt}: ${alertDescription}",
        "${alertSeverity}": "${incidentEnabled}",
        "value": "${alertValue}",
        "threshold": "${alert.threshold}",
        "channels": "${notificationChannels}",
        "key": "${idempotencyKey}",
        "alert": "${alertId}",
        "summary": "${alertSeverity == 'critical' ? 'PAGE' : 'log'}: ${alert.name.upperAscii()}",
        "scope": {"component": "${component}", "project": "${alert.project}"},
    }
)


async def test_webhook_headers_template_and_signature(
    engine: Engine, store: ResourceStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="observer")
    await store.put_secret(NS, "hook-secrets", {"custom": HEADER_SECRET, "signing": SIGNING_KEY})
    async with WebhookReceiver() as hook:
        await store.put_channel(
            webhook_doc(
                "hook",
                f"{hook.url}/alerts?token={URL_TOKEN}",
                headers={
                    "Authorization": {"value": HEADER_INLINE},
                    "X-Custom-Header": {"valueFrom": {"secretKeyRef": {"name": "hook-secrets", "key": "custom"}}},
                },
                payloadTemplate=PAYLOAD_TEMPLATE,
                signingSecret={"secretKeyRef": {"name": "hook-secrets", "key": "signing"}},
            )
        )
        [key] = accept(engine, "alert-1", ["hook"], details())
        async with running(worker_over(engine, store)):
            [status] = await settled(engine, "alert-1")

    assert status.state == DELIVERED and status.attempts == 1
    assert [(a.attempt, a.ok) for a in status.history] == [(1, True)]
    [request] = hook.requests
    assert request.method == "POST" and request.path == f"/alerts?token={URL_TOKEN}"
    assert request.header("Content-Type") == "application/json"
    assert request.header("Authorization") == HEADER_INLINE
    assert request.header("X-Custom-Header") == HEADER_SECRET
    assert request.header(IDEMPOTENCY_HEADER) == key
    assert request.json() == {
        "text": '[critical] High CPU fired at 2026-03-01T10:00:00Z: CPU above "90%" on \\node\nsecond line',
        "critical": True,  # a lone expression keeps its type; map keys are rendered
        "value": "97.5",
        "threshold": "90",
        "channels": ["hook"],
        "key": key,
        "alert": "alert-1",
        "summary": "PAGE: HIGH CPU",
        "scope": {"component": "checkout", "project": "shop"},
    }
    # The receiver's check, done by hand: HMAC-SHA256 over timestamp "." raw body, with the shared key.
    timestamp, sent = request.header(TIMESTAMP_HEADER), request.header(SIGNATURE_HEADER)
    assert timestamp is not None and sent is not None
    expected = hmac.new(SIGNING_KEY.encode(), timestamp.encode() + b"." + request.body, hashlib.sha256).hexdigest()
    assert sent == f"sha256={expected}"
    assert verify_signature(SIGNING_KEY, timestamp, request.body, sent, now_s=int(timestamp))
    assert not verify_signature(SIGNING_KEY, timestamp, request.body + b" ", sent, now_s=int(timestamp))
    assert not verify_signature(SIGNING_KEY, timestamp, request.body, sent, now_s=int(timestamp) + 301)
    assert_no_secret([status], caplog, HEADER_INLINE, HEADER_SECRET, SIGNING_KEY, URL_TOKEN)


async def test_webhook_default_payload_and_broken_expressions(engine: Engine, store: ResourceStore) -> None:
    """Without a template the body is AlertDetails (contract keys in order, empty notificationChannels omitted,
    then our additions). A template expression that fails stays as written; the rest is still rendered."""
    async with WebhookReceiver() as hook:
        await store.put_channel(webhook_doc("plain", hook.url))
        await store.put_channel(
            webhook_doc(
                "typo",
                hook.url,
                payloadTemplate=json.dumps(
                    {"text": "${alert.name} on ${alert.nosuchfield}", "sev": "${alert.severity}"}
                ),
            )
        )
        accept(engine, "alert-2", ["plain", "typo"], details(notification_channels=()))
        async with running(worker_over(engine, store)):
            statuses = await settled(engine, "alert-2")

    assert [s.state for s in statuses] == [DELIVERED, DELIVERED]
    by_key = {r.header(IDEMPOTENCY_HEADER): r for r in hook.requests}
    plain, typo = (by_key[s.id] for s in statuses)
    body = plain.json()
    assert list(body) == [k for k in UPSTREAM_KEYS if k != "notificationChannels"] + list(ADDED_KEYS)
    assert body == details(notification_channels=(), alert_id="alert-2", idempotency_key=statuses[0].id).to_dict()
    assert typo.json() == {"text": "High CPU on ${alert.nosuchfield}", "sev": "critical"}
    assert "alert.nosuchfield" in statuses[1].history[0].detail  # the attempt says which expression broke


async def test_invalid_json_template_is_a_send_error(engine: Engine, store: ResourceStore) -> None:
    async with WebhookReceiver() as hook:
        await store.put_channel(webhook_doc("bad", hook.url, payloadTemplate='{"text": "${alertName}"'))
        accept(engine, "alert-3", ["bad"], details())
        async with running(worker_over(engine, store, RetryPolicy(max_attempts=2, base_delay_s=0.01))):
            [status] = await settled(engine, "alert-3")
    assert status.state == FAILED and not hook.requests
    assert all("not valid JSON" in a.detail for a in status.history) and len(status.history) == 2


async def test_failure_then_recovery_backs_off_and_delivers_once(engine: Engine, store: ResourceStore) -> None:
    policy = RetryPolicy(max_attempts=6, base_delay_s=0.05, max_delay_s=0.4, jitter=0.5)
    async with WebhookReceiver(fail_first=2) as hook:
        await store.put_channel(webhook_doc("flaky", hook.url))
        [key] = accept(engine, "alert-4", ["flaky"], details())
        async with running(worker_over(engine, store, policy, rand=lambda: 1.0)):  # jitter factor 1: nominal delays
            [status] = await settled(engine, "alert-4")

    assert status.state == DELIVERED and status.attempts == 3
    assert [r.status for r in hook.requests] == [503, 503, 200]
    assert {r.header(IDEMPOTENCY_HEADER) for r in hook.requests} == {key}
    assert len({r.body for r in hook.requests}) == 1  # every retry carries the same payload
    assert len(hook.processed) == 1
    tries = status.history
    assert [(a.ok, a.detail.split(":")[0]) for a in tries[:2]] == [(False, "POST http"), (False, "POST http")]
    assert all("HTTP 503" in a.detail for a in tries[:2]) and tries[2].ok
    for previous, following in zip(tries, tries[1:]):  # never sooner than the backoff asked
        assert following.started_ns - previous.finished_ns >= policy.delay_s(previous.attempt, 1.0) * 1e9
    assert policy.delay_s(2, 1.0) == 2 * policy.delay_s(1, 1.0)
    assert policy.delay_s(30, 1.0) == policy.max_delay_s and policy.delay_s(30, 0.0) == policy.max_delay_s / 2


async def test_always_failing_receiver_gives_up_with_every_attempt_recorded(
    engine: Engine, store: ResourceStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="observer")
    async with WebhookReceiver(always_fail=True, fail_status=500) as hook:
        await store.put_channel(webhook_doc("down", hook.url))
        [key] = accept(engine, "alert-5", ["down"], details())
        async with running(worker_over(engine, store, RetryPolicy(max_attempts=3, base_delay_s=0.02))):
            [status] = await settled(engine, "alert-5")

    assert status.state == FAILED and status.attempts == 3 and "HTTP 500" in (status.last_error or "")
    assert [(a.attempt, a.ok) for a in status.history] == [(1, False), (2, False), (3, False)]
    assert all("HTTP 500" in a.detail for a in status.history)
    assert len(hook.requests) == 3 and {r.header(IDEMPOTENCY_HEADER) for r in hook.requests} == {key}
    assert any("gave up after 3 attempts" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)


async def test_missing_channel_is_retried_until_it_exists(engine: Engine, store: ResourceStore) -> None:
    async with WebhookReceiver() as hook:
        accept(engine, "alert-6", ["late"], details())
        retry = RetryPolicy(max_attempts=50, base_delay_s=0.02, max_delay_s=0.1)
        async with running(worker_over(engine, store, retry)):
            deadline = time.monotonic() + GUARD_S
            while not any(
                s.history and s.history[0].detail != IN_PROGRESS
                for s in await asyncio.to_thread(notification_status, engine, "alert-6")
            ):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
            await store.put_channel(webhook_doc("late", hook.url))
            [status] = await settled(engine, "alert-6")

    assert status.state == DELIVERED and len(hook.requests) == 1
    assert "notification channel acme/late not found" in status.history[0].detail
    assert status.history[-1].ok


async def test_enqueue_twice_is_a_no_op(engine: Engine) -> None:
    first = accept(engine, "alert-7", ["a", "b", "a"], details())
    again = accept(engine, "alert-7", ["a", "b"], details(alert_description="changed"))
    assert first == again and len(set(first)) == 2
    with engine.connect() as conn:
        assert (
            conn.scalar(select(func.count()).select_from(notifications).where(notifications.c.alert_id == "alert-7"))
            == 2
        )
        payloads = [
            AlertDetails.from_json(p)
            for p in conn.scalars(select(notifications.c.payload).where(notifications.c.alert_id == "alert-7"))
        ]
    assert {p.idempotency_key for p in payloads} == set(first)
    assert {p.alert_id for p in payloads} == {"alert-7"} and {p.alert_description for p in payloads} == {
        details().alert_description
    }


# ----------------------------------------------------------------------------------------------- e-mail


async def test_email_over_starttls_with_auth(
    engine: Engine, store: ResourceStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="observer")
    await store.put_secret(NS, "smtp-auth", {"username": SMTP_USER, "password": SMTP_PASSWORD})
    with SmtpServer(tmp_path, username=SMTP_USER, password=SMTP_PASSWORD) as smtp:
        await store.put_channel(email_doc("mail", smtp.host, smtp.port))
        await store.put_channel(
            email_doc(
                "mail-templated",
                smtp.host,
                smtp.port,
                template={
                    "subject": "[${alert.severity}] - ${alert.name} Triggered",
                    "body": "Alert ${alertName} (${alert.severity}) at ${alert.startsAt}: value ${alertValue} > "
                    "${alertThreshold}\n${alert.description}\nkey=${idempotencyKey}",
                },
            )
        )
        keys = accept(engine, "alert-8", ["mail", "mail-templated"], details())
        async with running(worker_over(engine, store)):
            statuses = await settled(engine, "alert-8")
        mails = smtp.messages
        attempts = smtp.auth_attempts

    assert [s.state for s in statuses] == [DELIVERED, DELIVERED]
    assert len(mails) == 2 and all(m.tls and m.login == SMTP_USER for m in mails)
    assert {mechanism for mechanism, _ in attempts} <= {"PLAIN", "LOGIN"}
    by_id = {m.message["Message-ID"]: m for m in mails}
    plain, templated = by_id[f"<{keys[0]}@observer.test>"], by_id[f"<{keys[1]}@observer.test>"]
    for mail in (plain, templated):
        assert mail.mail_from == "alerts@observer.test"
        assert mail.rcpt_tos == ("oncall@acme.test", "lead@acme.test")
        assert mail.message["From"] == "alerts@observer.test"
        assert mail.message["To"] == "oncall@acme.test, lead@acme.test"
    assert plain.message["X-OpenChoreo-Idempotency-Key"] == keys[0]

    assert plain.message["Subject"] == "OpenChoreo alert triggered: High CPU"
    body = plain.message.get_content().replace("\r\n", "\n")
    head, _, payload = body.partition("Payload:\n")
    assert head == "An alert was triggered at 2026-03-01T10:00:00Z UTC.\n\n"
    assert json.loads(payload) == details(alert_id="alert-8", idempotency_key=keys[0]).to_dict()

    assert templated.message["Subject"] == "[critical] - High CPU Triggered"
    assert templated.message.get_content().replace("\r\n", "\n").rstrip("\n") == (
        "Alert High CPU (critical) at 2026-03-01T10:00:00Z: value 97.5 > 90\n"
        f'CPU above "90%" on \\node\nsecond line\nkey={keys[1]}'
    )
    assert_no_secret(statuses, caplog, SMTP_PASSWORD)


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # the cleartext server, on purpose
async def test_email_failures_are_recorded_without_secrets(
    engine: Engine, store: ResourceStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Wrong password: the server's 535, retried, then given up. A self-signed certificate without
    insecureSkipVerify: the verification error. A server without STARTTLS: credentials are never sent."""
    caplog.set_level(logging.DEBUG, logger="observer")
    wrong = "not-the-password-4Kq"
    await store.put_secret(NS, "smtp-auth", {"username": SMTP_USER, "password": SMTP_PASSWORD})
    await store.put_secret(NS, "smtp-wrong", {"username": SMTP_USER, "password": wrong})
    (tmp_path / "tls").mkdir()
    with (
        SmtpServer(tmp_path / "tls", username=SMTP_USER, password=SMTP_PASSWORD) as smtp,
        SmtpServer(tmp_path, starttls=False, username=SMTP_USER, password=SMTP_PASSWORD) as cleartext,
    ):
        await store.put_channel(email_doc("wrong-pass", smtp.host, smtp.port, secret="smtp-wrong"))
        await store.put_channel(email_doc("unverified", smtp.host, smtp.port, skip_verify=False))
        await store.put_channel(email_doc("no-tls", cleartext.host, cleartext.port))
        accept(engine, "alert-9", ["wrong-pass", "unverified", "no-tls"], details())
        async with running(worker_over(engine, store, RetryPolicy(max_attempts=2, base_delay_s=0.02))):
            statuses = await settled(engine, "alert-9")
        assert not smtp.messages and not cleartext.messages
        assert [login for _, login in smtp.auth_attempts] == [SMTP_USER, SMTP_USER]  # the two wrong-pass tries
        assert cleartext.auth_attempts == []

    by_name = {s.channel_name: s for s in statuses}
    assert all(s.state == FAILED and len(s.history) == 2 for s in statuses)
    assert all("535" in a.detail for a in by_name["wrong-pass"].history)
    assert all("CERTIFICATE_VERIFY_FAILED" in a.detail for a in by_name["unverified"].history)
    assert all("does not offer STARTTLS" in a.detail for a in by_name["no-tls"].history)
    assert_no_secret(statuses, caplog, wrong, SMTP_PASSWORD)


async def test_placeholder_smtp_host_sends_nothing(engine: Engine, store: ResourceStore, tmp_path: Path) -> None:
    await store.put_secret(NS, "smtp-auth", {"username": SMTP_USER, "password": SMTP_PASSWORD})
    with SmtpServer(tmp_path, username=SMTP_USER, password=SMTP_PASSWORD) as smtp:
        await store.put_channel(email_doc("sample", "smtp.example.com", 587))
        accept(engine, "alert-10", ["sample"], details())
        async with running(worker_over(engine, store)):
            [status] = await settled(engine, "alert-10")
        assert not smtp.messages and not smtp.auth_attempts

    assert status.state == SKIPPED and status.attempts == 1
    [attempt] = status.history
    assert attempt.ok and attempt.detail.startswith("skipped: SMTP host is smtp.example.com")


async def test_two_workers_never_deliver_the_same_notification(
    engine: Engine, store: ResourceStore, caplog: pytest.LogCaptureFixture
) -> None:
    """Two workers (separate engines, as two processes would have) race over the same rows: both read the same
    due rows, and the claim's compare-and-set gives each row to exactly one of them, without errors."""
    caplog.set_level(logging.WARNING, logger="observer")
    other_engine = open_engine(engine.url.render_as_string(hide_password=False))
    async with WebhookReceiver() as hook:
        names = [f"hook-{i}" for i in range(12)]
        for name in names:
            await store.put_channel(webhook_doc(name, hook.url))
        keys = accept(engine, "alert-11", names, details())
        first = worker_over(engine, store, batch_size=3)
        second = worker_over(other_engine, ResourceStore(other_engine), batch_size=3)
        async with running(first), running(second):
            statuses = await settled(engine, "alert-11")
    other_engine.dispose()

    assert all(s.state == DELIVERED and s.attempts == 1 for s in statuses)
    assert sorted(r.header(IDEMPOTENCY_HEADER) for r in hook.requests) == sorted(keys)
    assert not [r for r in caplog.records if r.name.startswith("observer") and r.levelno >= logging.ERROR]
