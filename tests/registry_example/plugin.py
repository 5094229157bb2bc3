"""The example backend's registry entry: everything a backend needs to be used by `observer up` and the
collector, without touching a file outside this package."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from adapters.registry import BackendEntry, Context, Roles
from tests.registry_example.memory import MemoryLogs


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    enabled: bool = Field(False, validation_alias="EXAMPLE_LOGS")


class Example:
    name = "example"

    def __init__(self, settings: Settings, context: Context):
        self.logs = MemoryLogs()
        self.roles = Roles(logs=self.logs, sink=self.logs)

    async def start(self) -> None:
        return None

    def tasks(self) -> list[Coroutine[Any, Any, None]]:
        return []

    def health(self) -> str:
        return f"{len(self.logs.lines)} lines in memory"

    async def close(self) -> None:
        self.logs.lines.clear()


ENTRY = BackendEntry(
    name="example",
    settings=Settings,
    create=Example,
    enabled=lambda settings, context: settings.enabled,
    priority=50,
    describe=lambda settings: "logs in memory (tests.registry_example)",
)
