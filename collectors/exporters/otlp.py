"""Forwarding over OTLP/HTTP: a `TelemetrySink` that ships the collector's buffered batches to another collector
or to the all-in-one (a data plane's collector shipping to the observability plane).

Each batch becomes export requests (collectors/otlp/encode.py: logs and Kubernetes events to `/v1/logs`, spans
to `/v1/traces`, metric points to `/v1/metrics`, each cut to about `max_request_bytes`), sent as gzip'd
protobuf, and maps back to equal records in our own receiver.

What each answer does, so the pipeline (collectors/pipeline.py) neither loses data nor wedges (the `write`
returns a `WriteResult`; the pipeline counts what it says was dropped):

- **2xx**: delivered. Items a partial success reports as rejected are dropped (`destination_partial_success`)
  and logged; the receiver has already said it will never take them.
- **429, 502, 503, 504, 408, and no answer at all** (connection refused or reset, timeouts, TLS failures):
  `retry`, so the pipeline keeps the batch and retries it. A `Retry-After` (seconds or an HTTP date, capped at
  `MAX_RETRY_AFTER_S`) is the result's `retry_after_s`, and is honoured here too: the next `write` waits until
  then, however soon it is called.
- **413** for a request of several records: it is split in halves, recursively, until each part fits; one
  record that still does not fit is dropped (`destination_too_large`).
- **400**: the destination says this request can never be accepted, so retrying would hold up everything behind
  it forever. Its records are dropped (`destination_invalid`) and the batch's refusals are logged once, with the
  destination's message. When every request of a batch is refused the result is `dropped`, else `delivered` with
  the count (under the reason that refused most records; the log line has each). Our encoder only produces what our receiver accepts, so this means a
  version mismatch or a bug, which the log line and the counter make visible.
- **anything else** (401, 403, 404, 415, 500, ...): a configuration problem (endpoint, credentials,
  certificates) or a destination failure that an operator can fix: retried like an outage, never dropped. The
  pipeline's retry counter and the buffer filling up show it; the data waits in the buffer.

Idempotency: every request carries `X-Batch-Id: <batch id>/<signal>/<n>` (our receiver's extension; halves
add `.0`/`.1`), so a request retried after a timeout, or after a restart from the disk buffer, is stored once
by a receiver of ours. Within one process, requests of a batch already delivered are not sent again when a
later request of the same batch fails and the batch is retried.

Audit records go in requests of their own (`OtlpRequest.audit`), sent with `Authorization: Bearer <audit token>`
(the observer's internal token, OBSERVER_INTERNAL_TOKEN; without one, the bearer token): the receiver believes
the records' audit marker only on requests carrying its internal token, so that no other OTLP client can write
audit records (collectors/otlp/receiver.py).

Secrets: configured headers and the bearer token are sent, never logged; error messages name the URL only.
"""

from __future__ import annotations

import asyncio
import email.utils
import gzip
import hashlib
import logging
import os
import re
import ssl
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import httpx
from google.protobuf.message import DecodeError as ProtobufDecodeError
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from adapters.protocols import BackendUnavailable, WriteResult
from collectors.otlp.encode import DEFAULT_MAX_REQUEST_BYTES, OtlpRequest, encode_batch
from collectors.otlp.receiver import BATCH_ID_HEADER
from domain.audit import AuditRecord
from domain.model import EventRecord, LogRecord, MetricPoint, SpanRecord

log = logging.getLogger(__name__)

#: Statuses OTLP/HTTP calls retryable (plus 408): the batch stays and is sent again.
RETRYABLE_STATUSES = frozenset({408, 429, 502, 503, 504})
#: The longest `Retry-After` obeyed; a destination asking for more is asked again after this.
MAX_RETRY_AFTER_S = 120.0
#: Drop reasons (the `reason` label of `collector_records_dropped_total{pipeline=<destination>}`).
DROPPED_INVALID = "destination_invalid"
DROPPED_TOO_LARGE = "destination_too_large"
DROPPED_PARTIAL = "destination_partial_success"

#: Batches of more records than this are encoded and compressed in a worker thread, off the event loop.
_INLINE_RECORDS = 256
_SAFE_BATCH_ID = re.compile(r"[A-Za-z0-9._:-]{1,100}")
#: Each signal's export response type, and the count field of its `partial_success`.
_RESPONSES: dict[
    str, tuple[type[ExportLogsServiceResponse | ExportTraceServiceResponse | ExportMetricsServiceResponse], str]
] = {
    "logs": (ExportLogsServiceResponse, "rejected_log_records"),
    "traces": (ExportTraceServiceResponse, "rejected_spans"),
    "metrics": (ExportMetricsServiceResponse, "rejected_data_points"),
}


class ExportThrottled(BackendUnavailable):
    """The destination answered that it cannot take the batch now (429, 503, ...); `retry_after_s` is how long
    it asked us to wait, None when it did not say."""

    def __init__(self, message: str, retry_after_s: float | None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class OtlpExporter:
    """The sink; see the module docstring. Close it with `aclose`. Meant for the pipeline's one exporting task:
    concurrent writes are safe, but only the latest batch's accepted requests are remembered (an earlier one,
    retried, is sent whole again, which the destination deduplicates)."""

    def __init__(
        self,
        endpoint: str,
        *,
        headers: Mapping[str, str] | None = None,
        bearer_token: str = "",
        bearer_token_file: Path | None = None,
        audit_token: str = "",
        audit_token_file: Path | None = None,
        ca_file: Path | None = None,
        tls_skip_verify: bool = False,
        timeout_s: float = 10.0,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self._shown = _redacted(self.endpoint)  # for messages: without any user:password@ in the URL
        self.max_request_bytes = max_request_bytes
        self._headers = {
            "Content-Type": "application/x-protobuf",
            "Content-Encoding": "gzip",
            "User-Agent": "openchoreo-observer-collect",
            **(headers or {}),
        }
        self._token = _Token(bearer_token, bearer_token_file)
        self._audit_token = _Token(audit_token, audit_token_file)
        verify: ssl.SSLContext | bool = True
        if tls_skip_verify:
            verify = False
        elif ca_file is not None:
            verify = ssl.create_default_context(cafile=str(ca_file))
        self._client = httpx.AsyncClient(verify=verify, timeout=timeout_s)
        self._not_before = 0.0  # monotonic time before which the destination asked not to be called
        self._batch_id = ""
        self._delivered: set[str] = set()  # request ids of `_batch_id` already accepted
        self._drops = _Drops()  # what the destination refused of `_batch_id` so far

    @property
    def shown_endpoint(self) -> str:
        """The endpoint as it may be logged (credentials in the URL masked)."""
        return self._shown

    async def aclose(self) -> None:
        await self._client.aclose()

    async def write(
        self,
        *,
        batch_id: str,
        logs: Sequence[LogRecord] = (),
        events: Sequence[EventRecord] = (),
        spans: Sequence[SpanRecord] = (),
        metrics: Sequence[MetricPoint] = (),
        audit: Sequence[AuditRecord] = (),
    ) -> WriteResult:
        """Delivers the batch, or answers `retry` with the batch to be retried whole (requests already accepted
        are not sent again by this process), or `dropped` when the destination refused all of it for good."""
        if batch_id != self._batch_id:  # drops of requests settled by an earlier attempt still count
            self._batch_id, self._delivered, self._drops = batch_id, set(), _Drops()
        count = len(logs) + len(events) + len(spans) + len(metrics) + len(audit)

        def encode() -> list[OtlpRequest]:
            return encode_batch(
                logs=logs,
                events=events,
                spans=spans,
                metrics=metrics,
                audit=audit,
                max_request_bytes=self.max_request_bytes,
            )

        requests = await asyncio.to_thread(encode) if count > _INLINE_RECORDS else encode()
        wire_id = _wire_batch_id(batch_id)
        drops = self._drops
        try:
            for index, request in enumerate(requests):
                kind = "audit" if request.audit else request.signal  # its own id: a receiver dedupes per id
                await self._deliver(f"{wire_id}/{kind}/{index}", request, drops)
        except ExportThrottled as exc:
            return WriteResult.retry(exc.retry_after_s or 0.0, str(exc))
        except BackendUnavailable as exc:
            return WriteResult.retry(reason=str(exc))
        return drops.result(batch_id, self._shown, count)

    async def _deliver(self, request_id: str, request: OtlpRequest, drops: _Drops) -> None:
        if request_id in self._delivered:
            return
        delay = self._not_before - time.monotonic()
        if delay > 0:  # the destination's Retry-After outlasts the pipeline's backoff
            await asyncio.sleep(delay)
        body = await asyncio.to_thread(_body, request) if request.records > _INLINE_RECORDS else _body(request)
        path = f"/v1/{request.signal}"
        url = self._shown + path
        headers = {**self._headers, BATCH_ID_HEADER: request_id}
        token = (self._audit_token.value() or self._token.value()) if request.audit else self._token.value()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            response = await self._client.post(self.endpoint + path, content=body, headers=headers)
        except httpx.TransportError as exc:  # refused, reset, timed out, TLS: nothing was answered
            raise BackendUnavailable(f"{url}: {type(exc).__name__}: {exc or 'no detail'}") from exc
        status = response.status_code
        if 200 <= status < 300:
            rejected, message = _partial_success(request.signal, response)
            if rejected:
                drops.add(DROPPED_PARTIAL, rejected, message)
        elif status in RETRYABLE_STATUSES:
            wait = retry_after_seconds(response.headers.get("retry-after"))
            if wait is not None:
                self._not_before = time.monotonic() + wait
            later = f"retry after {wait:.0f}s" if wait is not None else "retrying"
            raise ExportThrottled(f"{url} answered {status} ({_detail(response)}); {later}", wait)
        elif status == 413 and request.records > 1:
            for half, part in enumerate(request.halves()):
                await self._deliver(f"{request_id}.{half}", part, drops)
        elif status in (400, 413):
            drops.add(DROPPED_INVALID if status == 400 else DROPPED_TOO_LARGE, request.records, _detail(response))
        else:
            raise BackendUnavailable(
                f"{url} answered {status} ({_detail(response)}); the batch is kept and retried until the destination"
                " takes it: check the endpoint, credentials and certificates"
            )
        self._delivered.add(request_id)


def retry_after_seconds(value: str | None) -> float | None:
    """A `Retry-After` header in seconds from now (delta-seconds or an HTTP date), held to
    [0, MAX_RETRY_AFTER_S]; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def _redacted(url: str) -> str:
    """The URL with credentials in it (`https://user:secret@host`) masked."""
    scheme, sep, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = "***@" + authority.rsplit("@", 1)[1]
    return scheme + sep + authority + slash + path


def _wire_batch_id(batch_id: str) -> str:
    """The batch id as it can travel in `X-Batch-Id` (our ids, uuid or sha256 hex, do as they are; anything
    else is hashed, stably)."""
    if _SAFE_BATCH_ID.fullmatch(batch_id):
        return batch_id
    return hashlib.sha256(batch_id.encode("utf-8", "surrogatepass")).hexdigest()


def _body(request: OtlpRequest) -> bytes:
    """The request serialized and gzip'd (level 1: most of the size win for little CPU; mtime 0 so the same
    request gives the same bytes)."""
    return gzip.compress(request.message().SerializeToString(), compresslevel=1, mtime=0)


def _partial_success(signal: str, response: httpx.Response) -> tuple[int, str]:
    """(items rejected, why) from a 2xx export response; (0, "") when it reports none or cannot be read."""
    message_type, field = _RESPONSES[signal]
    if "protobuf" not in response.headers.get("content-type", ""):
        return 0, ""
    try:
        reply = message_type.FromString(response.content)
    except ProtobufDecodeError:
        return 0, ""
    return int(getattr(reply.partial_success, field)), reply.partial_success.error_message


def _detail(response: httpx.Response) -> str:
    """What the destination said about a refusal: a google.rpc.Status message (protobuf or JSON), or the start
    of the body."""
    content_type = response.headers.get("content-type", "")
    if "protobuf" in content_type:
        try:
            return Status.FromString(response.content).message or "no message"
        except ProtobufDecodeError:
            pass
    elif "json" in content_type:
        try:
            document = response.json()
        except ValueError:
            document = None
        message = document.get("message") if isinstance(document, dict) else None
        if isinstance(message, str):
            return message
    text = response.content[:300].decode("utf-8", "replace").strip()
    return text or "no body"


class _Drops:
    """Records one `write` dropped, by reason, with the destination's first message for each: counted and
    logged together once the batch is done."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.messages: dict[str, str] = {}

    def add(self, reason: str, count: int, message: str) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + count
        self.messages.setdefault(reason, message)

    def result(self, batch_id: str, endpoint: str, records: int) -> WriteResult:
        """The batch's result once every request is settled, its refusals logged once. One reason labels the
        count: the one that refused most records."""
        if not self.counts:
            return WriteResult.delivered()
        summary = "; ".join(f"{count} {reason} ({self.messages[reason]})" for reason, count in self.counts.items())
        log.error("batch %s: %s refused records for good, dropped: %s", batch_id, endpoint, summary)
        dropped = sum(self.counts.values())
        reason = max(self.counts, key=lambda r: self.counts[r])
        if dropped >= records:
            return WriteResult.dropped(reason, dropped)
        return WriteResult.delivered(dropped, reason)


class _Token:
    """The bearer token: given, or read from a file (a projected service-account token, which the kubelet
    rotates) and read again whenever the file changes."""

    def __init__(self, token: str, path: Path | None) -> None:
        self._token, self._path = token, path
        self._stamp: tuple[float, int] | None = None
        self._warned = ""

    def value(self) -> str:
        if self._path is None:
            return self._token
        try:
            stat = os.stat(self._path)
            stamp = (stat.st_mtime, stat.st_size)
            if stamp != self._stamp:
                self._token, self._stamp = self._path.read_text().strip(), stamp
        except OSError as exc:  # keep the last token; the destination's 401 will say if it is stale
            problem = str(exc.strerror or exc)
            if problem != self._warned:  # once per new problem, not per request
                log.warning("bearer token file %s unreadable: %s", self._path, problem)
                self._warned = problem
        return self._token
