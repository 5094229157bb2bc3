"""Log documents into OpenSearch: our BulkWriter, fed like collectors feed it (many concurrent calls of 1,000
documents), next to opensearch-py's `helpers.async_bulk` (chunks of 5,000) on the same documents and ids, in the
same run, each into fresh daily indices under the logs template (as `observer up` writes them). The writer's
indices are then kept for the query benchmark (bench/opensearch_query.py) and dropped at the end.

OPENSEARCH_URL picks the server (else one is started in a temporary directory); BENCH_OS_DOCS the document
count (default 1,000,000).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from opensearchpy import AsyncOpenSearch, helpers

from adapters.opensearch.bulk import BulkWriter
from adapters.opensearch.documents import log_document, log_id
from adapters.opensearch.layout import IndexLayout, install
from bench import data, opensearch_query
from bench.harness import report
from devservers.opensearch import start_opensearch
from devservers.opensearch_layout import drop_layout, drop_layout_at, unique_layout
from domain.model import TimeRange

END_NS = 1_790_000_000 * 10**9
Docs = list[tuple[int, str, dict[str, Any]]]  # (timestamp ns, _id, document)

CHUNK = 5_000  # async_bulk's chunk_size, and our max_docs
CALL = 1_000  # documents per index() call
CALLERS = 16  # concurrent index() callers
WARMUP = 20_000  # documents indexed (and thrown away) first, so neither side pays for a cold JVM


def documents(count: int) -> Docs:
    return [(record.ts_ns, log_id(record), log_document(record)) for record in data.log_records(count, END_NS)]


# Each side takes its actions in its own input shape, built before the clock starts; the loaders return what
# is timed.
Load = Callable[[], Awaitable[object]]


def with_async_bulk(client: AsyncOpenSearch, layout: IndexLayout, docs: Docs) -> Load:
    actions = [{"_index": layout.daily(layout.logs, ts), "_id": doc_id, "_source": doc} for ts, doc_id, doc in docs]
    return lambda: helpers.async_bulk(client, actions, chunk_size=CHUNK)


def with_writer(client: AsyncOpenSearch, layout: IndexLayout, docs: Docs) -> Load:
    actions = [(layout.daily(layout.logs, ts), doc_id, doc) for ts, doc_id, doc in docs]

    async def load() -> None:
        writer = BulkWriter(client, max_docs=CHUNK)
        starts = iter(range(0, len(actions), CALL))

        async def collector() -> None:
            for start in starts:
                await writer.index(actions[start : start + CALL])

        await asyncio.gather(*(collector() for _ in range(CALLERS)))
        await writer.close()

    return load


async def timed(
    client: AsyncOpenSearch,
    layout: IndexLayout,
    loader: Callable[[AsyncOpenSearch, IndexLayout, Docs], Load],
    docs: Docs,
) -> float:
    """docs/s until every document is acknowledged; checks they all arrived."""
    await install(client, layout, retention_days=30)
    load = loader(client, layout, docs)
    started = time.perf_counter()
    await load()
    rate = len(docs) / (time.perf_counter() - started)
    pattern = layout.pattern(layout.logs)
    await client.indices.refresh(index=pattern)
    stored = (await client.count(index=pattern))["count"]
    assert stored == len(docs), f"{pattern}: {stored} documents stored of {len(docs)}"
    return rate


async def measure(url: str, docs: Docs, kept: IndexLayout) -> dict[str, Any]:
    """Loads with both; the writer's indices (`kept`) stay for the query benchmark."""
    client = AsyncOpenSearch(hosts=[url], timeout=120)
    try:
        for layout, loader, part in (
            (unique_layout("bench-os-warmup-"), with_async_bulk, docs[:WARMUP]),
            (unique_layout("bench-os-async-bulk-"), with_async_bulk, docs),
        ):
            try:
                rate = await timed(client, layout, loader, part)
            finally:
                await drop_layout(client, layout)
        ours = await timed(client, kept, with_writer, docs)
        await client.indices.forcemerge(index=kept.pattern(kept.logs), params={"max_num_segments": "1"})
    finally:
        await client.close()
    return {"async_bulk_rate": rate, "writer_rate": ours}


def run() -> None:
    count = int(os.environ.get("BENCH_OS_DOCS", 1_000_000))
    started = time.perf_counter()
    docs = documents(count)
    generated_s = time.perf_counter() - started
    doc_bytes = sum(len(orjson.dumps(doc)) for _, _, doc in docs[:1000]) / min(1000, count)
    kept = unique_layout("bench-os-")

    with tempfile.TemporaryDirectory() as scratch:
        server = start_opensearch(Path(scratch))  # OPENSEARCH_URL if set; stop() leaves that one running
        try:
            rates = asyncio.run(measure(server.url, docs, kept))
            del docs  # the query benchmark starts an observer process; give it the memory back
            ratio = rates["writer_rate"] / rates["async_bulk_rate"]
            report(
                "opensearch_ingest",
                [
                    (
                        f"log documents (~{doc_bytes:.0f} B JSON each)",
                        f"{count:,}",
                        f"built in {generated_s:.1f}s, untimed",
                    ),
                    (
                        f"helpers.async_bulk, chunks of {CHUNK:,} (docs/s)",
                        f"{rates['async_bulk_rate']:,.0f}",
                        "baseline",
                    ),
                    (f"BulkWriter, {CALLERS} callers x {CALL:,} (docs/s)", f"{rates['writer_rate']:,.0f}", ""),
                    ("ratio BulkWriter / async_bulk", f"{ratio:.2f}x", "target >= 0.9x"),
                ],
                {"docs": count, **rates, "ratio": ratio, "chunk": CHUNK, "call": CALL, "callers": CALLERS},
            )
            window = TimeRange(END_NS - 24 * data.HOUR_NS, END_NS)
            opensearch_query.run(server.url, kept, count, window, Path(scratch))
        finally:
            drop_layout_at(server.url, kept)
            server.stop()


if __name__ == "__main__":
    run()
