"""A destination: one backend the collector delivers to, and which parts of each batch it takes.

The collector runs one export loop per destination (collectors/pipeline.py), each with its own acknowledgement
cursor in the buffer, so a slow or dead destination delays only itself. `collectors/destinations.py` builds the
list from the configuration; this module only names the shape, so the pipeline does not depend on how backends
are chosen.
"""

from __future__ import annotations

from dataclasses import dataclass

from adapters.protocols import TelemetrySink
from collectors.codec import Batch

#: The parts of a batch a destination may take (as adapters/registry.py SIGNALS: audit records are a part of
#: their own, so they go to the backend serving the `audit` role).
SIGNALS: frozenset[str] = frozenset({"logs", "events", "spans", "metrics", "audit"})


@dataclass(frozen=True)
class Destination:
    """`name` names the destination's ack cursor in the buffer and its `pipeline` label on /metrics, so it must
    stay the same across restarts (a new name starts from the oldest batch still buffered). `signals` is a
    subset of `SIGNALS`."""

    name: str
    sink: TelemetrySink
    signals: frozenset[str]

    def __post_init__(self) -> None:
        unknown = self.signals - SIGNALS
        if unknown or not self.signals:
            raise ValueError(f"destination {self.name!r}: signals must be a non-empty subset of {sorted(SIGNALS)}")
        if not self.name:
            raise ValueError("a destination needs a name")

    def part(self, batch: Batch) -> Batch:
        """The part of `batch` this destination takes (the batch itself when it takes everything there is)."""
        signals = self.signals
        if signals == SIGNALS:
            return batch
        return Batch(
            batch_id=batch.batch_id,
            logs=batch.logs if "logs" in signals else [],
            events=batch.events if "events" in signals else [],
            spans=batch.spans if "spans" in signals else [],
            metrics=batch.metrics if "metrics" in signals else [],
            audit=batch.audit if "audit" in signals else [],
        )
