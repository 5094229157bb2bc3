"""The live tail's process-wide bounds, from the environment (OBSERVER_TAIL_*).

They bound what one observer process spends on tails whatever its callers ask: how many run at once, how many
lines one may have waiting before it counts as a slow consumer, how long a tail may run, how fast it may be
fed. A request may ask for less (its own `maxSeconds`, `maxLinesPerSecond`), never for more.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class TailSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OBSERVER_TAIL_", extra="ignore")

    #: Tails served at once by this process; one more is refused with 503 and Retry-After.
    max_tails: int = Field(100, gt=0, le=10_000)
    #: Lines one tail may have waiting to be written; a tail whose client lets more pile up is cut off.
    queue_lines: int = Field(10_000, gt=0, le=1_000_000)
    #: The longest a tail may run (a request's `maxSeconds` is checked against it).
    max_seconds: int = Field(3600, gt=0, le=24 * 3600)
    #: A tail's duration when the request names none.
    default_seconds: int = Field(300, gt=0, le=24 * 3600)
    #: The highest line rate a request may ask for, and the rate when it asks for none.
    max_lines_per_second: int = Field(10_000, gt=0, le=1_000_000)
    default_lines_per_second: int = Field(1_000, gt=0, le=1_000_000)
    #: Seconds between heartbeat comments on an idle stream (proxies close connections that stay silent).
    heartbeat_seconds: float = Field(15.0, gt=0, le=300)
    #: How long the final `end` event may wait for a client that stopped reading before the connection is dropped.
    end_grace_seconds: float = Field(10.0, gt=0, le=300)
