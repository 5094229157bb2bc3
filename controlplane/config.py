"""The control plane's settings, from the environment (pydantic-settings), with the observer's naming habits.

`CONTROLPLANE_DB` picks the store: a `sqlite:///path` or `postgresql://...` URL. Without it the store is SQLite in
the observer's data directory (`OBSERVER_DATA_DIR`, default `./data`), so `observer up` and `observer controlplane`
started from one directory keep their state side by side.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ControlPlaneSettings(BaseSettings):
    """What `observer controlplane` (controlplane/run.py) reads from the environment; flags override it."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    host: str = Field("127.0.0.1", validation_alias=AliasChoices("CONTROLPLANE_HOST", "OBSERVER_HOST", "HOST"))
    api_port: int = Field(8090, validation_alias="CONTROLPLANE_API_PORT", gt=0, lt=65536)
    db: str = Field("", validation_alias="CONTROLPLANE_DB")
    data_dir: Path = Field(Path("data"), validation_alias="OBSERVER_DATA_DIR")
    log_level: str = Field("info", validation_alias="LOG_LEVEL")
    jwt_disabled: bool = Field(False, validation_alias="JWT_DISABLED")

    @property
    def db_url(self) -> str:
        """The store's URL: CONTROLPLANE_DB, else SQLite at `<data dir>/controlplane.db`."""
        return self.db or f"sqlite:///{self.data_dir / 'controlplane.db'}"
