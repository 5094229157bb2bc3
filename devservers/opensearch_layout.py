"""Index layouts of a test's own on a shared OpenSearch, and removing everything such a layout installed.

layout = unique_layout("native")           # native1a2b3c4d-container-logs-..., -k8s-events-..., -otel-traces-...,
                                           # -audit-logs-...
...
await drop_layout(client, layout)          # its indices, index templates and ISM policies
"""

from __future__ import annotations

import asyncio
import uuid

from opensearchpy import AsyncOpenSearch, NotFoundError, TransportError

from adapters.opensearch.layout import IndexLayout, template_name


def unique_layout(tag: str) -> IndexLayout:
    """OpenChoreo's index names behind a prefix no other test or session uses (lowercase: index names must be)."""
    prefix = f"{tag.lower()}{uuid.uuid4().hex[:8]}-"
    return IndexLayout(
        logs=prefix + "container-logs-",
        events=prefix + "k8s-events-",
        traces=prefix + "otel-traces-",
        audit=prefix + "audit-logs-",
    )


async def drop_layout(client: AsyncOpenSearch, layout: IndexLayout) -> None:
    """Deletes the layout's daily indices, and the templates and retention policies `install` put for it."""
    for prefix in layout.prefixes:
        await client.indices.delete(index=layout.pattern(prefix), params={"ignore_unavailable": "true"})
        name = template_name(prefix)
        try:
            await client.indices.delete_index_template(name=name)
        except NotFoundError:
            pass
        try:
            await client.transport.perform_request("DELETE", f"/_plugins/_ism/policies/{name}")
        except NotFoundError:
            pass
        except TransportError as exc:  # a cluster without ISM has no such endpoint
            if exc.status_code != 400:
                raise


def drop_layout_at(url: str, layout: IndexLayout) -> None:
    """`drop_layout` for synchronous callers (module fixtures, the benchmarks)."""

    async def drop() -> None:
        client = AsyncOpenSearch(hosts=[url], timeout=120)
        try:
            await drop_layout(client, layout)
        finally:
            await client.close()

    asyncio.run(drop())
