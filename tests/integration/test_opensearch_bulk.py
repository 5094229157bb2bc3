"""BulkWriter against a real OpenSearch, directly or through a fault-injecting proxy that forwards to it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator
from typing import Any

import pytest
from opensearchpy import AsyncOpenSearch

from adapters.opensearch.bulk import Action, BulkResult, BulkWriter
from adapters.protocols import BackendUnavailable
from devservers.faulty_proxy import FaultyProxy
from devservers.local import free_port, serving

pytestmark = pytest.mark.integration

# Quick retries: the tests wait for the writer, never for the clock.
FAST = {"backoff_s": 0.01, "max_backoff_s": 0.05, "refresh": True}
HANG_S = 120


def connect(url: str) -> AsyncOpenSearch:
    # No retries inside the client: the writer's own retrying is what is under test.
    return AsyncOpenSearch(hosts=[url], max_retries=0, timeout=30)


@pytest.fixture
async def opensearch(opensearch_url: str) -> AsyncIterator[AsyncOpenSearch]:
    client = connect(opensearch_url)
    yield client
    await client.close()


@pytest.fixture
async def index(opensearch: AsyncOpenSearch) -> AsyncIterator[str]:
    name = f"bulktest-{uuid.uuid4().hex}"
    yield name
    await opensearch.indices.delete(index=name, params={"ignore_unavailable": "true"})


@pytest.fixture
def proxy(opensearch_url: str) -> Iterator[tuple[FaultyProxy, str]]:
    faulty = FaultyProxy(opensearch_url)
    with serving(faulty.app) as url:
        yield faulty, url


@pytest.fixture
async def via_proxy(proxy: tuple[FaultyProxy, str]) -> AsyncIterator[AsyncOpenSearch]:
    client = connect(proxy[1])
    yield client
    await client.close()


def actions(index: str, count: int, prefix: str = "doc") -> list[Action]:
    return [(index, f"{prefix}-{n}", {"n": n, "msg": f"{prefix} number {n}"}) for n in range(count)]


async def finish(writer: BulkWriter, *calls: Awaitable[BulkResult], return_exceptions: bool = False) -> list[Any]:
    """Runs the calls concurrently, then closes the writer. The bound is a guard against a stuck writer (which
    would otherwise stall the run until CI's limit), not a timing assertion."""

    async def run() -> list[Any]:
        try:
            return await asyncio.gather(*calls, return_exceptions=return_exceptions)
        finally:
            await writer.close()

    return await asyncio.wait_for(run(), HANG_S)


async def count(client: AsyncOpenSearch, index: str) -> int:
    await client.indices.refresh(index=index)
    return (await client.count(index=index))["count"]


async def test_concurrent_calls_coalesce_and_each_gets_its_own_result(opensearch: AsyncOpenSearch, index: str):
    writer = BulkWriter(opensearch, **FAST)
    results = await finish(writer, *(writer.index(actions(index, 100, f"c{caller}")) for caller in range(50)))

    assert results == [BulkResult(indexed=100, rejected=0, reasons={})] * 50
    assert await count(opensearch, index) == 5000


async def test_batches_respect_size_limits_and_concurrency(
    proxy: tuple[FaultyProxy, str], via_proxy: AsyncOpenSearch, opensearch: AsyncOpenSearch, index: str
):
    faulty, _ = proxy
    writer = BulkWriter(via_proxy, max_docs=1000, concurrency=2, **FAST)
    await finish(writer, *(writer.index(actions(index, 100, f"c{caller}")) for caller in range(50)))
    # Small documents, but few enough bytes per request to force cuts below max_docs.
    small = BulkWriter(via_proxy, max_bytes=20_000, concurrency=2, **FAST)
    await finish(small, *(small.index(actions(index, 100, f"s{caller}")) for caller in range(10)))

    by_docs, by_bytes = faulty.bulks[:5], faulty.bulks[5:]
    assert [len(bulk.ids) for bulk in by_docs] == [1000] * 5  # 50 calls of 100 all queued before the first cut
    assert sum(len(bulk.ids) for bulk in by_bytes) == 1000
    assert all(bulk.size <= 20_000 for bulk in by_bytes)
    assert faulty.max_in_flight <= 2
    assert await count(opensearch, index) == 6000


async def test_sending_the_same_actions_again_does_not_duplicate(opensearch: AsyncOpenSearch, index: str):
    writer = BulkWriter(opensearch, **FAST)
    batch = actions(index, 300)
    assert await finish(writer, writer.index(batch)) == [BulkResult(indexed=300, rejected=0, reasons={})]
    writer = BulkWriter(opensearch, **FAST)
    assert await finish(writer, writer.index(batch)) == [BulkResult(indexed=300, rejected=0, reasons={})]

    assert await count(opensearch, index) == 300


async def test_a_refused_item_is_reported_and_its_batch_mates_are_indexed(opensearch: AsyncOpenSearch, index: str):
    await opensearch.indices.create(index=index, body={"mappings": {"properties": {"n": {"type": "integer"}}}})
    writer = BulkWriter(opensearch, **FAST)
    bad = [(index, "bad", {"n": "not-a-number"})]
    mixed, clean = await finish(
        writer, writer.index(actions(index, 10, "m") + bad), writer.index(actions(index, 10, "k"))
    )

    assert mixed == BulkResult(indexed=10, rejected=1, reasons={"mapper_parsing_exception": 1})
    assert clean == BulkResult(indexed=10, rejected=0, reasons={})
    assert await count(opensearch, index) == 20


@pytest.mark.parametrize("statuses", [[429, 429], [503, 502, 500]])
async def test_whole_request_failures_are_retried(
    statuses: list[int],
    proxy: tuple[FaultyProxy, str],
    via_proxy: AsyncOpenSearch,
    opensearch: AsyncOpenSearch,
    index: str,
):
    faulty, _ = proxy
    faulty.fail_statuses = list(statuses)
    writer = BulkWriter(via_proxy, **FAST)
    batch = actions(index, 1000)
    (result,) = await finish(writer, writer.index(batch))

    assert result == BulkResult(indexed=1000, rejected=0, reasons={})
    assert [bulk.status for bulk in faulty.bulks] == [*statuses, 200]
    assert all(bulk.ids == [doc_id for _, doc_id, _ in batch] for bulk in faulty.bulks)
    assert await count(opensearch, index) == 1000


async def test_only_items_refused_with_429_are_sent_again(
    proxy: tuple[FaultyProxy, str], via_proxy: AsyncOpenSearch, opensearch: AsyncOpenSearch, index: str
):
    faulty, _ = proxy
    faulty.refuse_every, faulty.refuse_requests = 3, 2  # the first retry is partly refused too
    writer = BulkWriter(via_proxy, **FAST)
    first, second = actions(index, 600, "a"), actions(index, 400, "b")
    results = await finish(writer, writer.index(first), writer.index(second))

    assert results == [BulkResult(indexed=600, rejected=0, reasons={}), BulkResult(indexed=400, rejected=0, reasons={})]
    sent, retry, last = faulty.bulks
    assert sent.ids == [doc_id for _, doc_id, _ in first + second]
    assert retry.ids == sent.refused and len(retry.ids) == 334
    assert last.ids == retry.refused and len(last.ids) == 112
    assert await count(opensearch, index) == 1000


async def test_a_backend_that_stays_down_raises_backend_unavailable_for_every_caller(
    proxy: tuple[FaultyProxy, str], via_proxy: AsyncOpenSearch, opensearch: AsyncOpenSearch, index: str
):
    faulty, _ = proxy
    faulty.always_status = 503
    writer = BulkWriter(via_proxy, retry_deadline_s=1.0, backoff_s=0.05, max_backoff_s=0.2)
    outcomes = await finish(
        writer, writer.index(actions(index, 10, "x")), writer.index(actions(index, 10, "y")), return_exceptions=True
    )

    assert all(isinstance(outcome, BackendUnavailable) for outcome in outcomes), outcomes
    assert len(faulty.bulks) > 1  # it did retry before giving up
    assert not await opensearch.indices.exists(index=index)


async def test_an_unreachable_backend_raises_backend_unavailable():
    client = connect(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    writer = BulkWriter(client, retry_deadline_s=0.5, backoff_s=0.05, max_backoff_s=0.1)
    try:
        (outcome,) = await finish(writer, writer.index(actions("bulktest-unreachable", 5)), return_exceptions=True)
    finally:
        await client.close()
    assert isinstance(outcome, BackendUnavailable), outcome


async def test_close_flushes_a_partial_batch(opensearch: AsyncOpenSearch, index: str):
    writer = BulkWriter(opensearch, max_wait_s=3600, **FAST)  # only close() can send it
    pending = asyncio.create_task(writer.index(actions(index, 7)))
    await asyncio.sleep(0)
    assert not pending.done()
    await asyncio.wait_for(writer.close(), HANG_S)

    assert await pending == BulkResult(indexed=7, rejected=0, reasons={})
    assert await count(opensearch, index) == 7


async def test_a_document_that_cannot_be_encoded_fails_only_its_own_caller(opensearch: AsyncOpenSearch, index: str):
    writer = BulkWriter(opensearch, **FAST)
    broken, fine = await finish(
        writer, writer.index([(index, "odd", {"n": object()})]), writer.index(actions(index, 5)), return_exceptions=True
    )

    assert isinstance(broken, TypeError)
    assert fine == BulkResult(indexed=5, rejected=0, reasons={})
    assert await count(opensearch, index) == 5
