"""Where a process writes its audit records, from the environment.

| variable | meaning | default |
|---|---|---|
| `AUDIT_LOG` | `sink` (into the plane's telemetry sink: the configured logs backend, `observer up`), `stdout` (one JSON line per record, for a collector to ship), both (`sink,stdout`), or `off` | `observer up`: `sink`; the standalone control plane: `stdout` |
| `AUDIT_TRUST_FORWARDED_FOR` | `true`: the source address is the last X-Forwarded-For entry (only behind a proxy that sets it) | `false` |

A control plane served inside `observer up` (`--with-controlplane`) writes into the observer's sink when
`sink` is chosen; standalone it has no sink, so `sink` there means nothing and stdout is its way out.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TextIO

from audit.trail import AuditSink, AuditTrail, AuditWriter, SinkWriter, StreamWriter

DESTINATIONS = ("sink", "stdout")
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


@dataclass(frozen=True, slots=True)
class AuditSettings:
    destinations: tuple[str, ...]  # a subset of DESTINATIONS; empty: off
    trust_forwarded_for: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, default: str = "sink") -> AuditSettings:
        """ValueError names the variable and the accepted values."""
        env = os.environ if environ is None else environ
        raw = env.get("AUDIT_LOG", default).strip().lower() or default
        if raw == "off":
            destinations: tuple[str, ...] = ()
        else:
            destinations = tuple(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))
            unknown = [part for part in destinations if part not in DESTINATIONS]
            if unknown or not destinations:
                raise ValueError(f"AUDIT_LOG={raw[:64]!r}: expected sink, stdout, sink,stdout or off")
        trust = env.get("AUDIT_TRUST_FORWARDED_FOR", "false").strip().lower()
        if trust not in _TRUE | _FALSE:
            raise ValueError(f"AUDIT_TRUST_FORWARDED_FOR={trust[:16]!r}: expected true or false")
        return cls(destinations, trust in _TRUE)

    def trail(self, producer: str, sink: AuditSink | None, stream: TextIO | None = None) -> AuditTrail:
        """The producer's trail, writing where these settings say."""
        return AuditTrail(producer, self.writers(sink, stream), trust_forwarded_for=self.trust_forwarded_for)

    def writers(self, sink: AuditSink | None, stream: TextIO | None = None) -> list[AuditWriter]:
        """The writers these settings ask for; `sink` None (no plane here) leaves the sink out."""
        writers: list[AuditWriter] = []
        if "sink" in self.destinations and sink is not None:
            writers.append(SinkWriter(sink))
        if "stdout" in self.destinations:
            writers.append(StreamWriter(stream if stream is not None else sys.stdout))
        return writers
