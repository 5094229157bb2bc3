"""One bulk pipeline for the whole process, shared by every writer (collectors, OTLP requests).

Many small writes are coalesced into few large `_bulk` requests, because OpenSearch indexes a 5,000-document
request far more cheaply than fifty 100-document ones; yet each caller still learns the fate of its own
documents, so an OTLP request is acknowledged only once its records are stored. Every document carries a
deterministic `_id` chosen by the caller, so any retry, ours or a client's, overwrites instead of duplicating.

Callers may hand over documents already serialised as their two NDJSON lines (`index_encoded`, with
`encode_action` or a faster encoder of their own such as `documents.log_actions`): the writer never needs the
dicts, and building the bytes directly is most of the cost of shipping a log line.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import orjson
from opensearchpy import AsyncOpenSearch, TransportError

from adapters.protocols import BackendUnavailable

log = logging.getLogger(__name__)

Action = tuple[str, str, dict[str, Any]]  # (index name, _id, document)

# Only what deciding an item's fate needs: a 5,000-item response shrinks from ~1 MB to ~100 kB to parse.
# `status` must stay, or successful items would vanish from the array and positions would no longer match.
_FILTER_PATH = "errors,items.*.status,items.*.error.type"


@dataclass
class BulkResult:
    indexed: int = 0
    rejected: int = 0  # permanently refused items (4xx other than 429), never retried
    reasons: dict[str, int] = field(default_factory=dict)  # error type -> count, for the rejected ones


class _Call:
    """One `index()` call: counts its outcomes and wakes its caller when the last document is settled."""

    __slots__ = ("since", "remaining", "result", "future")

    def __init__(self, count: int, since: float, future: asyncio.Future[BulkResult]) -> None:
        self.since = since
        self.remaining = count
        self.result = BulkResult()
        self.future = future

    def indexed(self, count: int = 1) -> None:
        self.result.indexed += count
        self.remaining -= count
        if self.remaining == 0 and not self.future.done():
            self.future.set_result(self.result)

    def rejected(self, reason: str) -> None:
        self.result.rejected += 1
        self.result.reasons[reason] = self.result.reasons.get(reason, 0) + 1
        self._settled()

    def _settled(self) -> None:
        self.remaining -= 1
        if self.remaining == 0 and not self.future.done():
            self.future.set_result(self.result)

    def fail(self, exc: BaseException) -> None:
        # done() when the caller gave up (cancelled) or another of its batches already failed it.
        if self.future.done():
            return
        if isinstance(exc, asyncio.CancelledError):
            self.future.cancel()
        else:
            self.future.set_exception(exc)


_Item = tuple[_Call, bytes]  # the caller, and the document's two NDJSON lines


class BulkWriter:
    """Coalesces concurrent `index()` calls into `_bulk` requests of at most `max_docs` documents and
    `max_bytes` bytes, at most `concurrency` of them in flight; a partial batch waits `max_wait_s` for company.

    Failures that may pass (connection errors, timeouts, 429, 5xx, for the whole request or for single items)
    are retried with capped exponential backoff for up to `retry_deadline_s` per batch, after which the callers
    waiting on it get `BackendUnavailable`. Items refused for good (a 4xx such as a mapping conflict) are
    counted in the callers' results and never retried: sending them again would be refused again. A whole
    request refused with another 4xx (413 too large, 401/403) fails its callers with that `TransportError`.
    """

    def __init__(
        self,
        client: AsyncOpenSearch,
        *,
        max_docs: int = 5_000,
        max_bytes: int = 8 * 1024 * 1024,
        max_wait_s: float = 0.05,
        retry_deadline_s: float = 30.0,
        backoff_s: float = 0.1,
        max_backoff_s: float = 5.0,
        concurrency: int = 2,
        refresh: bool = False,
    ) -> None:
        self._client = client
        self._max_docs = max_docs
        self._max_bytes = max_bytes
        self._max_wait_s = max_wait_s
        self._retry_deadline_s = retry_deadline_s
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._concurrency = concurrency
        self._params = {"filter_path": _FILTER_PATH, **({"refresh": "true"} if refresh else {})}
        self._pending: list[_Item] = []
        self._pending_bytes = 0
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._closing = False

    async def index(self, actions: Sequence[Action]) -> BulkResult:
        """Returns once every action is acknowledged or refused for good; raises `BackendUnavailable` when
        OpenSearch stayed unreachable past the retry deadline. Safe to call concurrently."""
        # Serialised here, before anything is queued: a document that cannot be encoded fails its own caller
        # (TypeError) and nobody else's batch.
        return await self.index_encoded([encode_action(index, doc_id, document) for index, doc_id, document in actions])

    async def index_encoded(self, encoded: Sequence[bytes]) -> BulkResult:
        """`index` for documents already serialised, each as its action and document lines (`encode_action`)."""
        if self._closing:
            raise RuntimeError("BulkWriter is closed")
        if not encoded:
            return BulkResult()
        loop = asyncio.get_running_loop()
        call = _Call(len(encoded), loop.time(), loop.create_future())
        self._pending.extend([(call, lines) for lines in encoded])
        self._pending_bytes += sum(map(len, encoded))
        self._pump()
        return await call.future

    async def close(self) -> None:
        """Flushes what is pending without waiting for company, and waits until every request has finished."""
        self._closing = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._pump()
        while self._tasks:  # a finishing request starts the next batch, so new tasks may appear
            await asyncio.wait(set(self._tasks))

    # ------------------------------------------------------------------------------------------- batching

    def _pump(self) -> None:
        """Starts requests while slots are free and a batch is full or has waited long enough. Batches are cut
        only when a slot is free, so documents queued behind busy slots make the next batch fuller."""
        loop = asyncio.get_running_loop()
        while self._pending and self._in_flight < self._concurrency:
            full = len(self._pending) >= self._max_docs or self._pending_bytes >= self._max_bytes
            due_at = self._pending[0][0].since + self._max_wait_s
            if not (full or self._closing or loop.time() >= due_at):
                if self._timer is None:
                    self._timer = loop.call_at(due_at, self._on_timer)
                return
            self._in_flight += 1
            task = loop.create_task(self._send(self._take()))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _on_timer(self) -> None:
        self._timer = None
        self._pump()

    def _take(self) -> list[_Item]:
        count = size = 0
        for _, lines in self._pending:
            if count == self._max_docs or (count and size + len(lines) > self._max_bytes):
                break
            count += 1
            size += len(lines)
        batch, self._pending = self._pending[:count], self._pending[count:]
        self._pending_bytes -= size
        return batch

    # ------------------------------------------------------------------------------------------- sending

    async def _send(self, batch: list[_Item]) -> None:
        """Delivers one batch, holding its slot through the backoff pauses too: when OpenSearch pushes back,
        starting other requests meanwhile would only add to its load."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._retry_deadline_s
        attempt = 0
        try:
            while True:
                body = b"".join([lines for _, lines in batch])
                try:
                    response = await self._client.bulk(body=body, params=self._params)
                except TransportError as exc:
                    if not _transient(exc):
                        raise  # a malformed request or a misconfiguration: repeating it cannot help
                    why = _describe(exc)
                else:
                    batch = _settle(batch, response)
                    if not batch:
                        break
                    why = f"{len(batch)} items refused with 429/5xx"
                if loop.time() >= deadline:
                    raise BackendUnavailable(f"OpenSearch bulk indexing failed for {self._retry_deadline_s:g}s: {why}")
                delay = self._delay(attempt, deadline - loop.time())
                log.warning("bulk request of %d documents not done (%s); retrying in %.2fs", len(batch), why, delay)
                await asyncio.sleep(delay)
                attempt += 1
        except (Exception, asyncio.CancelledError) as exc:
            for call in dict.fromkeys(call for call, _ in batch):
                call.fail(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise  # the loop is shutting down: start nothing new
        finally:
            self._in_flight -= 1
        self._pump()

    def _delay(self, attempt: int, remaining: float) -> float:
        """Exponential, with jitter so that many writers recovering together do not retry in lockstep, and
        never past the deadline, so the last attempt happens right at it."""
        ceiling = min(self._max_backoff_s, self._backoff_s * 2 ** min(attempt, 32))
        return max(0.0, min(remaining, random.uniform(ceiling / 2, ceiling)))


def encode_action(index: str, doc_id: str, document: dict[str, Any]) -> bytes:
    """An `index` action and its document, as the two NDJSON lines of a bulk body."""
    dumps = orjson.dumps
    return b'{"index":{"_index":%b,"_id":%b}}\n%b\n' % (dumps(index), dumps(doc_id), dumps(document))


def _settle(batch: list[_Item], response: dict[str, Any]) -> list[_Item]:
    """Tells each caller the fate of its items; returns the items worth sending again."""
    if not response.get("errors"):
        for call, count in Counter(map(_caller, batch)).items():  # a batch holds few callers: settle them at once
            call.indexed(count)
        return []
    retry = []
    for item, outcome in zip(batch, response["items"], strict=True):
        (result,) = outcome.values()  # {"index": {...}}
        status = result["status"]
        if status < 300:
            item[0].indexed()
        elif status == 429 or status >= 500:
            retry.append(item)
        else:
            item[0].rejected(result.get("error", {}).get("type") or str(status))
    return retry


_caller = itemgetter(0)


def _transient(exc: TransportError) -> bool:
    """Connection errors and timeouts carry no HTTP status (`"N/A"`); they and 429/5xx may pass."""
    status = exc.status_code
    return not isinstance(status, int) or status == 429 or status >= 500


def _describe(exc: TransportError) -> str:
    # Status and error type only: the exception's full text may echo request details.
    # Truncated: a gateway in front of OpenSearch may answer with a whole HTML page.
    return f"{exc.status_code} {str(exc.error)[:200]}" if isinstance(exc.status_code, int) else type(exc).__name__
