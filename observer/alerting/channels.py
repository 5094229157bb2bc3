"""Notification senders: one POST to a webhook, one message through an SMTP server (contract notes §2.5).

A sender delivers one notification once and says how it went: it returns a `Delivery` (delivered, or skipped on
purpose) or raises `SendError`. Retrying, backoff and bookkeeping are the outbox's (observer/alerting/outbox.py).
Every `SendError.detail` and `Delivery.detail` is stored in `notification_attempts` and may be logged, so none
may hold a secret: header values, SMTP credentials and the signing secret are never put into one, any that an
underlying error message happens to echo are masked, and a webhook URL is shown as scheme://host[:port] only,
since URLs like Slack's carry their credential in the path.

Webhook (upstream's behaviour, plus three additions)
- `POST url` with `Content-Type: application/json` and the channel's headers (inline values, or Secret keys
  resolved through the resource store at send time, so a rotated secret applies to the next try). The body is the
  AlertDetails JSON, or the channel's payload template rendered (observer/alerting/templates.py). A 30 s timeout;
  anything but 2xx is an error; redirects are not followed (a 3xx is an error too: re-POSTing to wherever a
  redirect points is not what the channel says).
- Addition: `X-OpenChoreo-Idempotency-Key: <notification id>`, the same on every retry, so a receiver can drop
  a redelivery (the outbox delivers at least once).
- Addition, when the channel names a `signingSecret`: `X-OpenChoreo-Timestamp: <unix seconds>` and
  `X-OpenChoreo-Signature: sha256=<hex>`, where hex = HMAC-SHA256(key = the secret's UTF-8 bytes,
  message = timestamp ASCII + b"." + the exact body bytes). To verify, a receiver recomputes the MAC over the raw
  body it received with the timestamp header it received, compares in constant time, and rejects timestamps too
  far from its clock (five minutes is usual), which bounds replay; putting the timestamp inside the MAC is what
  stops a replayer from refreshing it. Each retry is signed afresh (new timestamp, same body and key).

E-mail
- Nothing is sent when the SMTP host is empty or upstream's placeholder `smtp.example.com`: the attempt is
  recorded as skipped, so a sample channel never makes a mail server a dependency of the tests or the demo.
- `host:port` (587 by default). Port 465 is implicit TLS (SMTPS). Otherwise STARTTLS whenever the server offers
  it, and REQUIRED when credentials are configured: upstream would send AUTH PLAIN in clear to a server without
  it; here credentials never cross the wire unencrypted. `tls.insecureSkipVerify` turns certificate checks off
  (the system trust store applies otherwise; SSL_CERT_FILE points it at a private CA).
- AUTH PLAIN, else LOGIN, with the Secret's username and password, when both are configured.
- Headers: From, To, Subject, Date, `Message-ID: <notification id@sender's domain>` (the same on every retry, so
  a mailbox or a relay can drop a duplicate) and `X-OpenChoreo-Idempotency-Key`. The body is text/plain UTF-8.
- Defaults (§2.5): subject `OpenChoreo alert triggered: <alertName>`; body "An alert was triggered at <time> UTC.\n
  \nPayload:\n<AlertDetails JSON, indented>\n". Upstream prints the time of sending; we print the alert's own
  time (RFC3339, seconds, UTC), so a retry an hour later does not claim the alert fired then.
- Templates render in a worker thread too: the first one builds the CEL parser (about a second), and the event
  loop serves the API meanwhile.
- smtplib runs in a worker thread (no new dependency for an SMTP client: the standard library's is complete, and
  a notification is one short conversation); each SMTP operation times out after `timeout_s`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import smtplib
import ssl
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Protocol

import httpx

from domain.alerting import EmailConfig, NotificationChannel, SecretRef
from domain.timeutil import format_rfc3339, parse_rfc3339
from observer.alerting.details import AlertDetails
from observer.alerting.templates import TemplateError, render_json, render_text

log = logging.getLogger(__name__)

IDEMPOTENCY_HEADER = "X-OpenChoreo-Idempotency-Key"
SIGNATURE_HEADER = "X-OpenChoreo-Signature"
TIMESTAMP_HEADER = "X-OpenChoreo-Timestamp"
PLACEHOLDER_SMTP_HOSTS = ("", "smtp.example.com")
DEFAULT_TIMEOUT_S = 30.0


class SendError(Exception):
    """This try failed; `detail` says why in words safe to store and log (no secrets)."""

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Delivery:
    """A try that needs no retry: delivered, or `skipped` on purpose (nothing was sent)."""

    detail: str = ""
    skipped: bool = False


class SecretSource(Protocol):
    async def secret_value(self, namespace: str, name: str, key: str) -> str | None: ...


class Sender(Protocol):
    async def send(self, channel: NotificationChannel, details: AlertDetails) -> Delivery: ...


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The `X-OpenChoreo-Signature` value: `sha256=` + hex HMAC-SHA256(secret, timestamp + "." + body)."""
    mac = hmac.new(secret.encode(), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    secret: str, timestamp: str, body: bytes, header: str, *, now_s: float, tolerance_s: float = 300.0
) -> bool:
    """What a receiver does: recompute over the raw body and compare in constant time; refuse stale timestamps."""
    try:
        if abs(now_s - int(timestamp)) > tolerance_s:
            return False
    except ValueError:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body), header)


# ----------------------------------------------------------------------------------------------- webhook


class WebhookSender:
    def __init__(
        self,
        secrets: SecretSource,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.secrets = secrets
        self.timeout_s = timeout_s
        self._client = client or httpx.AsyncClient(follow_redirects=False)
        self._owns_client = client is None
        self._clock = clock

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def send(self, channel: NotificationChannel, details: AlertDetails) -> Delivery:
        config = channel.webhook
        if config is None:
            raise SendError(f"channel {channel.namespace}/{channel.name} has type webhook but no webhook config")
        where = redact_url(config.url)
        secrets: list[str] = []
        problems: tuple[str, ...] = ()
        if config.payload_template:
            try:
                rendered = await asyncio.to_thread(render_json, config.payload_template, details)
            except TemplateError as exc:
                raise SendError(str(exc)) from None
            body, problems = rendered.text.encode(), rendered.problems
        else:
            body = details.to_json().encode()
        headers = {"Content-Type": "application/json"}
        for name, header in config.headers.items():
            if header.secret is not None:
                value = await _secret(self.secrets, channel, header.secret, f"header {name}")
                secrets.append(value)
            else:
                value = header.value
            if "\r" in value or "\n" in value:
                raise SendError(f"header {name}: the value contains a line break")
            headers[name] = value
        headers[IDEMPOTENCY_HEADER] = details.idempotency_key
        if config.signing_secret is not None:
            key = await _secret(self.secrets, channel, config.signing_secret, "signingSecret")
            secrets.append(key)
            timestamp = str(int(self._clock()))
            headers[TIMESTAMP_HEADER] = timestamp
            headers[SIGNATURE_HEADER] = signature(key, timestamp, body)
        try:
            response = await self._client.post(config.url, content=body, headers=headers, timeout=self.timeout_s)
        except httpx.TimeoutException as exc:
            raise SendError(f"POST {where}: timed out after {self.timeout_s:g}s ({type(exc).__name__})") from None
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:  # ValueError: a header httpx cannot encode
            raise SendError(_masked(f"POST {where}: {type(exc).__name__}: {exc}", secrets, config.url, where)) from None
        if not 200 <= response.status_code < 300:
            raise SendError(_with_problems(f"POST {where}: HTTP {response.status_code}", problems))
        return Delivery(_with_problems(f"HTTP {response.status_code} from {where}", problems))


def redact_url(url: str) -> str:
    """scheme://host[:port]: enough to say where, nothing of the path or query a credential may hide in."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid URL>"
    return f"{parts.scheme or '?'}://{host}{port}"


# ----------------------------------------------------------------------------------------------- e-mail


class EmailSender:
    def __init__(
        self, secrets: SecretSource, *, timeout_s: float = DEFAULT_TIMEOUT_S, now_ns: Callable[[], int] = time.time_ns
    ):
        self.secrets = secrets
        self.timeout_s = timeout_s
        self._now_ns = now_ns

    async def send(self, channel: NotificationChannel, details: AlertDetails) -> Delivery:
        config = channel.email
        if config is None:
            raise SendError(f"channel {channel.namespace}/{channel.name} has type email but no email config")
        host = config.host.strip()
        if host.lower() in PLACEHOLDER_SMTP_HOSTS:
            return Delivery(f"skipped: SMTP host is {host or 'empty'} (a placeholder); nothing was sent", skipped=True)
        problems: list[str] = []
        if config.subject_template:
            rendered = await asyncio.to_thread(render_text, config.subject_template, details)
            subject, problems = rendered.text, [*problems, *rendered.problems]
        else:
            subject = f"OpenChoreo alert triggered: {details.alert_name}"
        if config.body_template:
            rendered = await asyncio.to_thread(render_text, config.body_template, details)
            body, problems = rendered.text, [*problems, *rendered.problems]
        else:
            body = default_body(details, self._now_ns())
        credentials: tuple[str, str] | None = None
        if config.username is not None and config.password is not None:
            credentials = (
                await _secret(self.secrets, channel, config.username, "smtp.auth.username"),
                await _secret(self.secrets, channel, config.password, "smtp.auth.password"),
            )
        try:
            message = build_message(config, details, subject, body)
        except ValueError as exc:  # e.g. a line break in an address: the header would be refused or forged
            raise SendError(f"cannot build the message: {exc}") from None
        secrets = list(credentials or ())
        try:
            refused = await asyncio.to_thread(self._deliver, config, host, message, credentials)
        except SendError as exc:
            raise SendError(_masked(_with_problems(exc.detail, problems), secrets)) from None
        except smtplib.SMTPResponseException as exc:
            text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
            raise SendError(_masked(f"SMTP {host}:{config.port}: {exc.smtp_code} {text}", secrets)) from None
        except (smtplib.SMTPException, OSError) as exc:  # ssl.SSLError and socket timeouts are OSErrors
            raise SendError(_masked(f"SMTP {host}:{config.port}: {type(exc).__name__}: {exc}", secrets)) from None
        detail = f"accepted by {host}:{config.port} for {len(config.to) - len(refused)} recipient(s)"
        if refused:
            detail += f"; refused: {', '.join(sorted(refused))}"
            log.warning(
                "SMTP server %s refused some recipients of notification %s: %s",
                host,
                details.idempotency_key,
                ", ".join(sorted(refused)),
            )
        return Delivery(_with_problems(detail, problems))

    def _deliver(
        self, config: EmailConfig, host: str, message: EmailMessage, credentials: tuple[str, str] | None
    ) -> dict[str, tuple[int, bytes]]:
        context = ssl.create_default_context()
        if config.tls_skip_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        implicit_tls = config.port == 465
        smtp: smtplib.SMTP = (
            smtplib.SMTP_SSL(host, config.port, timeout=self.timeout_s, context=context)
            if implicit_tls
            else smtplib.SMTP(host, config.port, timeout=self.timeout_s)
        )
        with smtp:
            smtp.ehlo()
            if not implicit_tls:
                if smtp.has_extn("starttls"):
                    smtp.starttls(context=context)
                    smtp.ehlo()
                elif credentials is not None:
                    raise SendError(
                        f"SMTP {host}:{config.port} does not offer STARTTLS; credentials are never sent unencrypted"
                    )
            if credentials is not None:
                offered = smtp.esmtp_features.get("auth", "").upper().split()
                smtp.user, smtp.password = credentials
                if "PLAIN" in offered:
                    smtp.auth("PLAIN", smtp.auth_plain)
                elif "LOGIN" in offered:
                    smtp.auth("LOGIN", smtp.auth_login)
                else:
                    raise SendError(
                        f"SMTP {host}:{config.port} offers no AUTH PLAIN or LOGIN "
                        f"(offers: {' '.join(offered) or 'none'})"
                    )
            return smtp.send_message(message, from_addr=config.sender, to_addrs=list(config.to))


def build_message(config: EmailConfig, details: AlertDetails, subject: str, body: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = config.sender
    message["To"] = ", ".join(config.to)
    message["Subject"] = " ".join(subject.split())  # a rendered line break would end the header early
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = message_id(details.idempotency_key, config.sender)
    if details.idempotency_key:
        message[IDEMPOTENCY_HEADER] = details.idempotency_key
    message.set_content(body)
    return message


def message_id(idempotency_key: str, sender: str) -> str:
    """The same on every retry of one notification, so duplicates can be recognised by any mail system."""
    domain = sender.rpartition("@")[2].strip(" >") or "openchoreo.observer"
    return f"<{idempotency_key}@{domain}>" if idempotency_key else make_msgid(domain=domain)


def default_body(details: AlertDetails, now_ns: int) -> str:
    try:
        when = format_rfc3339(parse_rfc3339(details.alert_timestamp) // 1_000_000_000 * 1_000_000_000)
    except ValueError:
        when = format_rfc3339(now_ns // 1_000_000_000 * 1_000_000_000)
    return f"An alert was triggered at {when} UTC.\n\nPayload:\n{details.to_json(indent=2)}\n"


# ----------------------------------------------------------------------------------------------- helpers


def default_senders(secrets: SecretSource) -> dict[str, Sender]:
    """Senders by channel type, as the outbox worker takes them."""
    return {"webhook": WebhookSender(secrets), "email": EmailSender(secrets)}


async def close_senders(senders: Iterable[object]) -> None:
    """Releases what senders hold (the webhook sender's connection pool)."""
    for sender in senders:
        close = getattr(sender, "aclose", None)
        if close is not None:
            await close()


async def _secret(secrets: SecretSource, channel: NotificationChannel, ref: SecretRef, what: str) -> str:
    value = await secrets.secret_value(channel.namespace, ref.name, ref.key)
    if value is None:
        raise SendError(f"{what}: Secret {channel.namespace}/{ref.name} has no key {ref.key!r} (yet)")
    return value


def _masked(text: str, secrets: Iterable[str], url: str = "", redacted: str = "") -> str:
    """Belt and braces: whatever an exception message echoed, no secret or full URL reaches storage or logs."""
    if url and redacted:
        text = text.replace(url, redacted)
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _with_problems(detail: str, problems: Iterable[str]) -> str:
    problems = list(problems)
    return f"{detail}; template: {'; '.join(problems)}" if problems else detail
