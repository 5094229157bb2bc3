"""Logs and events pages from OpenSearch are exactly those of a (timestamp, `_id`) sort, whatever the ties.

OpenSearch sorts our pages by time alone and the tie-breaking on `_id` happens in adapters/opensearch/timeline.py
(cheaper: `_id` has no doc values). This pins the answer against the reference, the (timestamp, `_id`) sort with
`search_after` sent directly, for a table of queries, walking every page: the same lines, in the same order, with
the same totals and page breaks. The documents are made to tie: a hundred lines over eight instants, some
ours (nanosecond timestamps, hex ids), some as Fluent Bit writes them (millisecond timestamps, no `level`, ids
of every character class, including ones OpenSearch generates).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from opensearchpy import AsyncOpenSearch

from adapters.opensearch import fields, queries
from adapters.opensearch.backend import OpenSearchBackend
from adapters.opensearch.client import OpenSearchConfig
from devservers.opensearch_layout import drop_layout, unique_layout
from domain.model import (
    TOTAL_CAP,
    ComponentScope,
    EventRecord,
    EventsQuery,
    Identity,
    LogRecord,
    LogsQuery,
    Scope,
    SortOrder,
    TimeRange,
)

pytestmark = pytest.mark.integration

NS = f"ties{uuid.uuid4().hex[:6]}"
PROJECT_UID, CART_UID, PAY_UID, PROD_UID = (str(uuid.uuid4()) for _ in range(4))
BASE_NS = 1_790_000_000 * 10**9
INSTANTS = [BASE_NS + k * 1_000_000 for k in range(8)]  # millisecond-aligned: Fluent Bit's can tie with ours
WINDOW = TimeRange(BASE_NS - 10**9, BASE_NS + 10**9)
LEVELS = ["ERROR", "WARN", "INFO", "DEBUG"]
FOREIGN_IDS = ["AbC-_z09", "zz", "A", "a", "0", "_", "-", "Zebra", "émile", "b" * 40, "9f", "F00D"]


def identity(component_uid: str, pod: str) -> Identity:
    return Identity(
        namespace=NS,
        project="shop",
        project_uid=PROJECT_UID,
        component="cart" if component_uid == CART_UID else "payments",
        component_uid=component_uid,
        environment="prod",
        environment_uid=PROD_UID,
        pod=pod,
        pod_namespace=f"dp-{NS}",
        container="main",
    )


def fluent_bit(ts_ns: int, line: str, component_uid: str) -> dict[str, Any]:
    return {
        "@timestamp": datetime.fromtimestamp(ts_ns // 10**9, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        + f".{ts_ns // 10**6 % 1000:03d}Z",  # milliseconds, as Fluent Bit writes them
        "log": line,
        "stream": "stdout",
        "kubernetes": {
            "pod_name": "cart-fb-0",
            "namespace_name": f"dp-{NS}",
            "container_name": "main",
            "labels": {
                "openchoreo_dev/namespace": NS,
                "openchoreo_dev/project-uid": PROJECT_UID,
                "openchoreo_dev/component-uid": component_uid,
                "openchoreo_dev/environment-uid": PROD_UID,
            },
        },
    }


@pytest.fixture(scope="module")
async def backend(opensearch_url: str) -> AsyncIterator[OpenSearchBackend]:
    layout = unique_layout("ties")
    backend = OpenSearchBackend(OpenSearchConfig(address=opensearch_url, layout=layout))
    direct = AsyncOpenSearch(hosts=[opensearch_url], max_retries=0, timeout=30)
    rng = random.Random(14)
    try:
        await backend.install(retention_days=30)
        ours = [
            LogRecord(
                ts_ns=rng.choice(INSTANTS) + rng.choice((0, 0, 0, 7)),  # mostly on the millisecond, as Fluent Bit's
                body=f"line {n} {rng.choice(LEVELS)} order {rng.choice(('placed', 'failed'))}",
                identity=identity(rng.choice((CART_UID, CART_UID, PAY_UID)), f"cart-{n % 3}"),
                level=rng.choice(LEVELS),
            )
            for n in range(90)
        ]
        events = [
            EventRecord(
                ts_ns=rng.choice(INSTANTS[:4]),
                reason="Started",
                message=f"event {n}",
                identity=identity(CART_UID, f"cart-{n % 3}"),
            )
            for n in range(16)
        ]
        assert (await backend.write(batch_id="ties", logs=ours, events=events)).outcome == "delivered"
        for n, doc_id in enumerate([*FOREIGN_IDS, *([None] * 12)]):
            document = fluent_bit(rng.choice(INSTANTS), f"foreign {n} {rng.choice(LEVELS)} order placed", CART_UID)
            index = layout.daily(layout.logs, INSTANTS[0])
            await direct.index(index=index, body=document, id=doc_id)  # None: an id OpenSearch generates
        await direct.indices.refresh(index=f"{layout.logs}*,{layout.events}*")
        yield backend
    finally:
        await backend.close()
        await drop_layout(direct, layout)
        await direct.close()


async def reference_pages(
    backend: OpenSearchBackend, index: str, filters: Any, must_not: Any, sort: SortOrder, limit: int
) -> list[tuple[list[str], int, bool]]:
    """Every page as the (timestamp, `_id`) sort gives it: (lines or messages, total, another page follows)."""
    pages, after = [], None
    while True:
        body = queries.search_body(
            filters, must_not, queries.time_sort(fields.TIMESTAMP, sort, fields.DOC_ID), limit + 1
        )
        if after:
            body["search_after"] = after
        response = await backend.client.search(index=index, body=body, params={"ignore_unavailable": "true"})
        hits = response["hits"]["hits"]
        shown = hits[:limit]
        text = [hit["_source"].get("log") or hit["_source"]["body"] for hit in shown]
        pages.append((text, min(response["hits"]["total"]["value"], TOTAL_CAP), len(hits) > limit))
        if len(hits) <= limit:
            return pages
        after = shown[-1]["sort"]


CART = ComponentScope(NS, PROJECT_UID, CART_UID, PROD_UID)
PROJECT = ComponentScope(NS, PROJECT_UID)
CASES = [
    (scope, sort, limit, levels, phrase)
    for scope in (CART, PROJECT)
    for sort in ("desc", "asc")
    for limit, levels, phrase in (
        (3, (), ""),
        (7, ("ERROR", "WARN"), ""),
        (5, (), "order placed"),
        (10, ("INFO",), "order"),
        (1000, (), ""),
    )
]


@pytest.mark.parametrize(("scope", "sort", "limit", "levels", "phrase"), CASES)
async def test_log_pages_are_those_of_the_timestamp_and_id_sort(
    backend: OpenSearchBackend, scope: Scope, sort: SortOrder, limit: int, levels: tuple[str, ...], phrase: str
) -> None:
    layout = backend.layout
    filters, must_not = queries.log_filters(scope, queries.time_range(fields.TIMESTAMP, WINDOW), levels, phrase)
    expected = await reference_pages(backend, f"{layout.logs}*", filters, must_not, sort, limit)
    assert sum(len(lines) for lines, _, _ in expected) > limit or limit == 1000  # the walk crosses ties

    pages, cursor = [], ""
    while True:
        page = await backend.query_logs(LogsQuery(scope, WINDOW, limit, sort, levels, phrase, cursor))
        pages.append(([record.body for record in page.items], page.total, bool(page.next_cursor)))
        cursor = page.next_cursor
        if not cursor:
            break
    assert pages == expected


@pytest.mark.parametrize("sort", ["desc", "asc"])
@pytest.mark.parametrize("limit", [1, 4])
async def test_event_pages_are_those_of_the_timestamp_and_id_sort(
    backend: OpenSearchBackend, sort: SortOrder, limit: int
) -> None:
    filters, must_not = queries.event_filters(CART, WINDOW)
    expected = await reference_pages(backend, f"{backend.layout.events}*", filters, must_not, sort, limit)
    pages, cursor = [], ""
    while True:
        page = await backend.query_events(EventsQuery(CART, WINDOW, limit, sort, cursor))
        pages.append(([event.message for event in page.items], page.total, bool(page.next_cursor)))
        cursor = page.next_cursor
        if not cursor:
            break
    assert pages == expected
