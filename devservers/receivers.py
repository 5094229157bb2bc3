"""Real notification receivers on loopback: an HTTP webhook endpoint and an SMTP server.

    async with WebhookReceiver(fail_first=2) as hook:      # 503 twice, then 200
        ... hook.url, hook.requests, hook.processed ...

    with SmtpServer(tmp_dir, username="alerts", password="pw") as smtp:   # STARTTLS + AUTH required
        ... smtp.host, smtp.port, smtp.messages ...

The webhook receiver behaves as a careful receiver should: it records every request, and `processed` holds only
the first request per `X-OpenChoreo-Idempotency-Key`, which is how a receiver turns at-least-once delivery into
exactly-once processing. The SMTP server is aiosmtpd with a certificate made at start (devservers/tls_proxy.py),
refusing mail before STARTTLS and AUTH unless told otherwise.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import socket
import ssl
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from devservers.local import free_port
from devservers.tls_proxy import self_signed_cert

IDEMPOTENCY_HEADER = "X-OpenChoreo-Idempotency-Key"


# ----------------------------------------------------------------------------------------------- webhook


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]  # as sent (header names compared case-insensitively by `header`)
    body: bytes
    status: int  # what the receiver answered

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), None)

    def json(self) -> Any:
        return json.loads(self.body)


class WebhookReceiver:
    """Answers `fail_status` to the first `fail_first` requests (or to every one with `always_fail`), 200 after."""

    def __init__(self, *, fail_first: int = 0, fail_status: int = 503, always_fail: bool = False):
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.always_fail = always_fail
        self.requests: list[ReceivedRequest] = []
        self.processed: list[ReceivedRequest] = []  # accepted (2xx) and first of their idempotency key
        self._seen_keys: set[str] = set()
        self._arrived = asyncio.Condition()
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> WebhookReceiver:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        await web.SockSite(self._runner, sock).start()
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        failing = self.always_fail or len(self.requests) < self.fail_first
        status = self.fail_status if failing else 200
        received = ReceivedRequest(request.method, request.path_qs, dict(request.headers), body, status)
        self.requests.append(received)
        key = received.header(IDEMPOTENCY_HEADER) or ""
        if status == 200 and key not in self._seen_keys:
            self._seen_keys.add(key)
            self.processed.append(received)
        async with self._arrived:
            self._arrived.notify_all()
        return web.Response(status=status, text="ok" if status == 200 else "try again")

    async def wait_for(self, count: int, timeout_s: float = 30.0) -> None:
        """Until `count` requests have arrived (a guard against hanging, not a timing assertion)."""
        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(lambda: len(self.requests) >= count), timeout_s)


# ----------------------------------------------------------------------------------------------- SMTP


@dataclass(frozen=True, slots=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage
    login: str | None  # who authenticated, None when nobody did
    tls: bool  # whether the session had switched to TLS (STARTTLS) before the message


@dataclass
class _Record:
    messages: list[ReceivedMail] = field(default_factory=list)
    auth_attempts: list[tuple[str, str]] = field(default_factory=list)  # (mechanism, login); passwords not kept
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler:
    def __init__(self, record: _Record):
        self.record = record

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content or b""
        raw = content if isinstance(content, bytes) else content.encode()
        message = email.message_from_bytes(raw, policy=email.policy.default)
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        with self.record.lock:
            self.record.messages.append(
                ReceivedMail(
                    envelope.mail_from or "", tuple(envelope.rcpt_tos), message, login, session.ssl is not None
                )
            )
        return "250 Message accepted for delivery"


class SmtpServer:
    """aiosmtpd on 127.0.0.1 in its own thread. With `starttls` it offers STARTTLS (self-signed certificate) and
    requires it before anything else; with `auth` it requires AUTH (PLAIN or LOGIN) with exactly these
    credentials before MAIL FROM."""

    def __init__(
        self,
        directory: Path,
        *,
        username: str = "alerts",
        password: str = "s3cret",
        starttls: bool = True,
        auth: bool = True,
    ):
        self.host = "127.0.0.1"
        self.port = free_port()
        self._username, self._password = username.encode(), password.encode()
        self._record = _Record()
        options: dict[str, Any] = {}
        if starttls:
            cert, key = self_signed_cert(directory, common_name="smtp")
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(cert, key)
            options.update(tls_context=context, require_starttls=True)
        if auth:
            options.update(authenticator=self._authenticate, auth_required=True, auth_require_tls=starttls)
        self._controller = Controller(_Handler(self._record), hostname=self.host, port=self.port, **options)

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        with self._record.lock:
            self._record.auth_attempts.append((mechanism, auth_data.login.decode(errors="replace")))
        ok = auth_data.login == self._username and auth_data.password == self._password
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    @property
    def messages(self) -> list[ReceivedMail]:
        with self._record.lock:
            return list(self._record.messages)

    @property
    def auth_attempts(self) -> list[tuple[str, str]]:
        with self._record.lock:
            return list(self._record.auth_attempts)

    def __enter__(self) -> SmtpServer:
        self._controller.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._controller.stop()
