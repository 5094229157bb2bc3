"""Issue 14, goal 2: the embedded name registry resolves on the caller's thread, never from a cache.

A logs query used to hop to the thread pool twice (names, then lines); the names now take microseconds on the
event loop. These tests pin both halves of that: no thread is needed, and what a name means is read afresh on
every call, so a component re-created under the same name (learned by this process or by another one writing
the same file) is never answered with its predecessor's records.
"""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from adapters.embedded.backend import EmbeddedBackend
from adapters.protocols import ScopeNotFound
from devservers.sample import BASE_NS, COMPONENTS, ENVIRONMENTS, NS, PROJECT, PROJECT_UID, identity
from domain.model import LogRecord
from domain.timeutil import format_rfc3339
from observer.app import create_public_app
from observer.service import QueryService

SECOND = 10**9
CART = {"namespace": NS, "project": PROJECT, "component": "cart", "environment": "prod"}
QUERY = {
    "startTime": format_rfc3339(BASE_NS - 60 * SECOND),
    "endTime": format_rfc3339(BASE_NS + 3600 * SECOND),
    "searchScope": CART,
}


def line(body: str, offset_s: int, who: object) -> LogRecord:
    return LogRecord(ts_ns=BASE_NS + offset_s * SECOND, body=body, level="INFO", identity=who)  # type: ignore[arg-type]


async def test_names_resolve_without_the_thread_pool(backend: EmbeddedBackend) -> None:
    await backend.write(batch_id="seed", logs=[line("hello", 0, identity("cart"))])

    async def resolve_with_no_pool() -> tuple[str, str, str]:
        pool = ThreadPoolExecutor(1)
        pool.shutdown()
        asyncio.get_running_loop().set_default_executor(pool)  # any hop to the default pool now raises
        return await backend.registry.resolve(NS, PROJECT, "cart", "prod")

    # A loop of its own (on a thread of its own), so the crippled pool never reaches another test's loop.
    uids = await asyncio.to_thread(asyncio.run, resolve_with_no_pool())

    assert uids == (PROJECT_UID, COMPONENTS["cart"], ENVIRONMENTS["prod"])


async def test_the_first_unknown_name_in_scope_order_is_reported(backend: EmbeddedBackend) -> None:
    await backend.write(batch_id="seed", logs=[line("hello", 0, identity("cart"))])
    registry = backend.registry

    assert await registry.resolve(NS) == ("", "", "")
    assert await registry.resolve(NS, PROJECT) == (PROJECT_UID, "", "")
    assert await registry.resolve(NS, environment="prod") == ("", "", ENVIRONMENTS["prod"])
    for names, kind, name in (
        (("nowhere", PROJECT, "cart", "prod"), "namespace", "nowhere"),
        ((NS, "nope", "nada", "never"), "project", "nope"),
        ((NS, PROJECT, "nada", "never"), "component", "nada"),
        ((NS, PROJECT, "cart", "never"), "environment", "never"),
    ):
        with pytest.raises(ScopeNotFound) as raised:
            await registry.resolve(*names)
        assert (raised.value.kind, raised.value.name, raised.value.namespace) == (kind, name, names[0])


async def test_a_recreated_component_is_resolved_anew_on_the_next_call(backend: EmbeddedBackend) -> None:
    old = identity("cart")
    await backend.write(batch_id="old", logs=[line("old cart", 0, old)])
    assert (await backend.registry.resolve(NS, PROJECT, "cart"))[1] == old.component_uid

    new = replace(old, component_uid=str(uuid.uuid4()), pod="cart-prod-new")
    await backend.write(batch_id="new", logs=[line("new cart", 1, new)])

    assert (await backend.registry.resolve(NS, PROJECT, "cart"))[1] == new.component_uid


async def test_a_component_recreated_by_another_writer_of_the_file_is_never_answered_with_old_lines(
    tmp_path: Path,
) -> None:
    """`observer up` and a collector exporting to the same data directory are two processes on one file: what
    the other one learns must show in this one's very next query, through the API."""
    served, other_writer = EmbeddedBackend(tmp_path / "data"), EmbeddedBackend(tmp_path / "data")
    service = QueryService(served.registry, logs=served, events=served, traces=served, metrics=served)
    old = identity("cart")
    new = replace(old, component_uid=str(uuid.uuid4()), pod="cart-prod-new")
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(create_public_app(service)), base_url="http://observer"
        ) as client:
            await other_writer.write(batch_id="old", logs=[line("old cart", 0, old)])
            first = (await client.post("/api/v1/logs/query", json=QUERY)).json()
            await other_writer.write(batch_id="new", logs=[line("new cart", 1, new)])
            second = (await client.post("/api/v1/logs/query", json=QUERY)).json()
    finally:
        other_writer.close()
        served.close()

    assert [entry["log"] for entry in first["logs"]] == ["old cart"]
    assert [entry["log"] for entry in second["logs"]] == ["new cart"]
    assert second["logs"][0]["metadata"]["componentUid"] == new.component_uid
