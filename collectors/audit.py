"""Audit records from tailed lines: only the producers the collector is configured to trust may write them.

The observer and OpenChoreo's API write one JSON line per audit record to their stdout (domain/audit.py
`audit_document`). Any workload can print the same JSON, so the line's content proves nothing: what makes a line
an audit record is WHERE it was read. A line becomes an `AuditRecord` (and leaves the logs) only when

1. its container is a configured trusted producer: exact Kubernetes namespace AND container name, and, when the
   entry has one, a pod name starting with `pod_prefix` (the location comes from the log file's path, which the
   kubelet writes and a workload cannot choose), and
2. the line parses as an audit record (`domain.audit.audit_from_document` on the JSON line).

Every other line stays an ordinary log line, including a perfectly formed audit line from any other container
and a trusted producer's line that is not (or not quite) an audit record. The record gets `collector` = where it
was read, so the trail says which pod wrote it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import orjson

from collectors.tail.model import TailedLine
from collectors.tail.paths import PodContainer
from domain.audit import AuditRecord, Collected, NotAnAuditRecord, audit_from_document
from domain.model import LogRecord

#: An audit line longer than this is not read as one (it stays a log line): a record is a few hundred bytes.
MAX_AUDIT_LINE_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class TrustedProducer:
    """A container whose audit lines are believed: `namespace` and `container` match exactly, `pod_prefix`
    (optional) must start the pod's name."""

    namespace: str
    container: str
    pod_prefix: str = ""

    def matches(self, source: PodContainer) -> bool:
        return (
            source.namespace == self.namespace
            and source.container == self.container
            and source.pod.startswith(self.pod_prefix)
        )


class AuditRouter:
    """Splits enriched tailed lines into logs and the audit records of trusted producers (module docstring).
    Whether a source is trusted is decided once per container and remembered (a bounded number of them)."""

    _REMEMBERED = 10_000

    def __init__(self, producers: Iterable[TrustedProducer]) -> None:
        self.producers = tuple(producers)
        self._trusted: dict[PodContainer, bool] = {}

    def trusted(self, source: PodContainer) -> bool:
        known = self._trusted.get(source)
        if known is None:
            if len(self._trusted) >= self._REMEMBERED:
                self._trusted.clear()
            known = self._trusted[source] = any(producer.matches(source) for producer in self.producers)
        return known

    def split(self, lines: Sequence[TailedLine], records: list[LogRecord]) -> tuple[list[LogRecord], list[AuditRecord]]:
        """(logs, audit records) of a batch: `records` are the Enricher's records of `lines`, in order. Without
        trusted producers, or without a line of one, the records are returned as they are."""
        if not self.producers:
            return records, []
        logs: list[LogRecord] = []
        audit: list[AuditRecord] = []
        last: PodContainer | None = None
        trusted = False
        for line, record in zip(lines, records, strict=True):
            if line.source is not last:
                last = line.source
                trusted = self.trusted(last)
            found = audit_record(line.body, last) if trusted else None
            if found is None:
                logs.append(record)
            else:
                audit.append(found)
        return logs, audit


def audit_record(body: str, source: PodContainer) -> AuditRecord | None:
    """The audit record a trusted producer's line holds, with where it was read; None for any other line."""
    if not body.startswith("{") or len(body) > MAX_AUDIT_LINE_BYTES:
        return None
    try:
        record = audit_from_document(orjson.loads(body))
    except (orjson.JSONDecodeError, NotAnAuditRecord):
        return None
    return dataclasses.replace(record, collector=Collected(source.namespace, source.pod, source.container))
