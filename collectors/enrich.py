"""Enrichment: a tailed line becomes a `LogRecord` with its platform identity, level and trace context.

The identity comes from the pod's labels and annotations (OpenChoreo's `openchoreo.dev/*` labels, Argo's
workflow label and node-name annotation), looked up by (Kubernetes namespace, pod name) in a `PodMetadata`
source, and mapped by `collectors.domain` exactly as resource attributes are, so a line read from a file and a
record received over OTLP get the same identity. A pod the source does not know still gets its Kubernetes
namespace, pod and container, so nothing is dropped for lack of metadata.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import orjson
import yaml

from adapters.loglevel import detect_level
from adapters.model import Identity, LogRecord
from collectors.tail.model import TailedLine
from collectors.tail.paths import PodContainer
from collectors.tail.records import identity_for

log = logging.getLogger(__name__)

_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_HEX16 = re.compile(r"^[0-9a-f]{16}$")
#: `trace_id=...`, `traceId: ...`, `"trace_id":"..."` in text lines (logfmt, key: value, embedded JSON).
_TEXT_TRACE = re.compile(r'(?i)\btrace[_.-]?id"?\s*[=:]\s*"?([0-9a-f]{32})\b')
_TEXT_SPAN = re.compile(r'(?i)\bspan[_.-]?id"?\s*[=:]\s*"?([0-9a-f]{16})\b')
_JSON_TRACE_KEYS = ("trace_id", "traceId", "traceid", "trace.id", "logging.googleapis.com/trace")
_JSON_SPAN_KEYS = ("span_id", "spanId", "spanid", "span.id", "logging.googleapis.com/spanId")


@dataclass(frozen=True, slots=True)
class Pod:
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)


class PodMetadata(Protocol):
    def lookup(self, namespace: str, pod: str) -> Pod | None: ...


class FileMetadata:
    """Pod labels and annotations from a YAML file, for nodes without a reachable Kubernetes API (and for
    tests); re-read when the file changes.

        pods:
          - namespace: dp-acme-prod
            name: cart-7d9f-abcde
            labels: {openchoreo.dev/component: cart, openchoreo.dev/component-uid: ...}
            annotations: {}
    """

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._stamp: tuple[float, int] | None = None
        self._pods: dict[tuple[str, str], Pod] = {}

    def lookup(self, namespace: str, pod: str) -> Pod | None:
        self._refresh()
        return self._pods.get((namespace, pod))

    def _refresh(self) -> None:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return
        stamp = (stat.st_mtime, stat.st_size)
        if stamp == self._stamp:
            return
        try:
            document = yaml.safe_load(self.path.read_text()) or {}
            self._pods = {
                (str(item["namespace"]), str(item["name"])): Pod(
                    {str(k): str(v) for k, v in (item.get("labels") or {}).items()},
                    {str(k): str(v) for k, v in (item.get("annotations") or {}).items()},
                )
                for item in document.get("pods") or []
            }
            self._stamp = stamp
        except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError) as exc:
            log.warning("pod metadata file %s not usable, keeping the previous contents: %s", self.path, exc)


class Enricher:
    """Tailed lines to LogRecords. Identities are cached per container once its pod is known; an unknown pod
    is asked again for each batch, since its metadata may arrive shortly."""

    def __init__(self, metadata: PodMetadata | None = None):
        self.metadata = metadata
        self._identities: dict[PodContainer, Identity] = {}

    def identity(self, source: PodContainer) -> Identity:
        cached = self._identities.get(source)
        if cached is not None:
            return cached
        known = self.metadata.lookup(source.namespace, source.pod) if self.metadata else None
        if known is None:
            return identity_for(source)
        identity = self._identities[source] = identity_for(source, {**known.labels, **known.annotations})
        return identity

    def record(self, line: TailedLine) -> LogRecord:
        trace_id, span_id = trace_context(line.body)
        return LogRecord(
            ts_ns=line.ts_ns,
            body=line.body,
            identity=self.identity(line.source),
            level=detect_level(line.body),
            trace_id=trace_id,
            span_id=span_id,
            stream=line.stream,
        )


def trace_context(body: str) -> tuple[str, str]:
    """(trace id, span id) a line carries, as lowercase hex, or empty strings: from the keys OpenTelemetry
    log bridges and common loggers write in JSON lines, else from `trace_id=`-style text."""
    if body.startswith("{"):
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            document = None
        if isinstance(document, dict):
            trace = next((str(document[k]).lower() for k in _JSON_TRACE_KEYS if k in document), "")
            span = next((str(document[k]).lower() for k in _JSON_SPAN_KEYS if k in document), "")
            trace = trace.rsplit("/", 1)[-1]  # Google's `projects/<p>/traces/<id>`
            return (trace if _HEX32.match(trace) else "", span if _HEX16.match(span) else "")
    if "race" not in body and "RACE" not in body:
        return "", ""
    trace = _TEXT_TRACE.search(body)
    span = _TEXT_SPAN.search(body) if trace else None
    return (trace.group(1).lower() if trace else "", span.group(1).lower() if span else "")
