"""The embedded backend as a registry entry: SQLite in OBSERVER_DATA_DIR, every role, and the name registry.

It is always on in `observer up` (the default for whatever no other backend keeps, and the registry of names);
the collector writes to it only when told where (`exporter.data_dir`). Its upkeep, when it serves: retention,
and the phrase index kept caught up without competing with ingest bursts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from adapters.registry import BackendEntry, Context, Roles, retention_loop

if TYPE_CHECKING:
    from adapters.embedded.backend import EmbeddedBackend

log = logging.getLogger(__name__)

#: While ingest is busy, the phrase index waits, unless this many lines are already waiting for it (queries
#: scan unindexed lines one by one, so the backlog is bounded).
INDEX_BACKLOG_LIMIT = 200_000
INGEST_QUIET_S = 1.0


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    data_dir: Path = Field(Path("data"), validation_alias="OBSERVER_DATA_DIR")
    registry_file: Path | None = Field(None, validation_alias="OBSERVER_REGISTRY_FILE")
    retention_hours: float = Field(168.0, validation_alias="OBSERVER_RETENTION_HOURS")


class Embedded:
    name = "embedded"

    def __init__(self, settings: Settings, context: Context):
        from adapters.embedded.backend import EmbeddedBackend

        self.settings = settings
        self.context = context
        self.backend = EmbeddedBackend(settings.data_dir)
        if settings.registry_file and context.purpose == "serve":
            count = self.backend.registry.declare_file(settings.registry_file)
            log.info("declared %d registry entries from %s", count, settings.registry_file)
        backend = self.backend
        from adapters.embedded.patterns import EmbeddedPatterns

        self.patterns = EmbeddedPatterns(backend.store)  # templates behind ingest (issue 20, patterns)
        self.roles = Roles(
            logs=backend,
            patterns=self.patterns,
            platform_logs=backend,
            audit=backend,
            events=backend,
            traces=backend,
            metrics=backend,
            topology=backend,
            names=backend.registry,
            learns=backend,
            sink=backend,
            topology_from_spans=True,
        )

    async def start(self) -> None:
        return None

    def tasks(self) -> list[Coroutine[Any, Any, None]]:
        if self.context.purpose != "serve":
            return []  # upkeep belongs to the process that serves the store
        from adapters.embedded.patterns import assigning_loop

        return [
            retention_loop(self.backend, self.settings.retention_hours),
            indexing_loop(self.backend),
            assigning_loop(self.patterns, lambda: self.backend.last_write),
        ]

    def health(self) -> str:
        return f"data in {self.settings.data_dir}"

    async def close(self) -> None:
        self.backend.close()


async def indexing_loop(backend: EmbeddedBackend) -> None:
    """Keeps the phrase index caught up, a chunk per transaction so writers are never held long. Indexing
    costs several times what storing a line does, so during an ingest burst it steps aside and catches up
    after; a backlog past INDEX_BACKLOG_LIMIT is indexed even while ingest is busy."""
    while True:
        try:
            busy = time.monotonic() - backend.last_write < INGEST_QUIET_S
            if busy and await backend.unindexed_logs() < INDEX_BACKLOG_LIMIT:
                await asyncio.sleep(0.25)
                continue
            if await backend.index_logs():
                continue
        except Exception:
            log.exception("phrase indexing failed")
        await asyncio.sleep(0.5)


def _enabled(settings: Settings, context: Context) -> bool:
    """Always when serving (the default and the name registry); a collector only when given a directory."""
    return context.purpose == "serve" or "data_dir" in settings.model_fields_set


ENTRY = BackendEntry(
    name="embedded",
    settings=Settings,
    create=Embedded,
    enabled=_enabled,
    priority=0,
    describe=lambda settings: "embedded backend",
)
