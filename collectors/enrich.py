"""Enrichment: a tailed line becomes a `LogRecord` with its platform identity, level and trace context.

The identity comes from the pod's labels and annotations (OpenChoreo's `openchoreo.dev/*` labels, Argo's
workflow label and node-name annotation), looked up by (Kubernetes namespace, pod name, pod UID) in a
`PodMetadata` source (a YAML file here, or the Kubernetes API: collectors/kubernetes/pods.py), and mapped by
`domain.identity` exactly as resource attributes are, so a line read from a file and a record received over
OTLP get the same identity. Every line also carries where it ran (`placed`): the collector's cluster name, and
from the pod's metadata its node, IP, the container's image and all the pod's labels (bounded), which is what
platform logs are found by. A pod the source does not know still gets its Kubernetes namespace, pod and
container (and the cluster), so nothing is dropped for lack of metadata.

Per batch, `Enricher.prepare` asks the source again about each container in the batch: that is how a label
change reaches the lines after it (identities are cached per container in between), and how a source that can
wait (the API's pod cache, for a pod its watch has not delivered yet) gets a bounded chance to.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import orjson
import yaml

from collectors.tail.model import TailedLine
from collectors.tail.paths import PodContainer
from collectors.tail.records import identity_for
from domain.identity import MAX_PLACEMENT_CHARS, bounded_labels
from domain.loglevel import detect_level
from domain.model import Identity, LogRecord

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
    """What the metadata source knows of a pod: labels and annotations (the scope), and where it runs: its node,
    its IP and each container's image (by container name)."""

    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    node: str = ""
    pod_ip: str = ""
    images: Mapping[str, str] = field(default_factory=dict)


class PodMetadata(Protocol):
    def lookup(self, namespace: str, pod: str, uid: str = "") -> Pod | None:
        """The pod's metadata, or None if unknown. `uid` (from the log path, may be empty) tells a pod from
        a newer one of the same name where the source can."""


@runtime_checkable
class WaitingPodMetadata(PodMetadata, Protocol):
    async def wait_for(self, namespace: str, pod: str, uid: str = "") -> Pod | None:
        """`lookup`, but allowed to wait a bounded time for a pod it does not know yet."""


class FileMetadata:
    """Pod labels and annotations from a YAML file, for nodes without a reachable Kubernetes API (and for
    tests); re-read when the file changes. `node`, `podIP` and `images` (container name -> image) are optional.

        pods:
          - namespace: dp-acme-prod
            name: cart-7d9f-abcde
            labels: {openchoreo.dev/component: cart, openchoreo.dev/component-uid: ...}
            annotations: {}
            node: node-1
            podIP: 10.244.1.17
            images: {main: ghcr.io/acme/cart:1.4}
    """

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._stamp: tuple[float, int] | None = None
        self._pods: dict[tuple[str, str], Pod] = {}

    def lookup(self, namespace: str, pod: str, uid: str = "") -> Pod | None:
        """By namespace and name: the file names pods, not their UIDs."""
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
                    str(item.get("node") or ""),
                    str(item.get("podIP") or ""),
                    {str(k): str(v) for k, v in (item.get("images") or {}).items()},
                )
                for item in document.get("pods") or []
            }
            self._stamp = stamp
        except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError) as exc:
            log.warning("pod metadata file %s not usable, keeping the previous contents: %s", self.path, exc)


class Enricher:
    """Tailed lines to LogRecords. Identities are cached per container once its pod is known (and refreshed
    by `prepare`); an unknown pod is asked again for each batch, since its metadata may arrive shortly."""

    def __init__(self, metadata: PodMetadata | None = None, cluster: str = ""):
        self.metadata = metadata
        self.cluster = cluster  # the collector's `cluster` (CLUSTER_NAME): on every line, known pod or not
        self._identities: dict[PodContainer, Identity] = {}
        self._pods: dict[PodContainer, Pod] = {}  # what each cached identity was made from

    def identity(self, source: PodContainer) -> Identity:
        cached = self._identities.get(source)
        if cached is not None:
            return cached
        known = self.metadata.lookup(source.namespace, source.pod, source.pod_uid) if self.metadata else None
        if known is None:
            return placed(identity_for(source), self.cluster)
        return self._learn(source, known)

    async def prepare(self, lines: Sequence[TailedLine]) -> None:
        """Called once per batch before `records`: looks each of the batch's containers up again, so lines
        after a label change carry the new labels, and gives a `WaitingPodMetadata` source (the API's pod cache)
        its bounded wait for pods it does not know yet, all at once. A container whose pod is no longer known
        (deleted) keeps the identity it had."""
        metadata = self.metadata
        if metadata is None:
            return
        sources: dict[PodContainer, None] = {}
        last: PodContainer | None = None
        for line in lines:
            if line.source is not last:
                last = line.source
                sources[last] = None
        unknown = []
        for source in sources:
            known = metadata.lookup(source.namespace, source.pod, source.pod_uid)
            if known is not None:
                self._learn(source, known)
            elif source not in self._identities:
                unknown.append(source)
        if unknown and isinstance(metadata, WaitingPodMetadata):
            found = await asyncio.gather(*(metadata.wait_for(s.namespace, s.pod, s.pod_uid) for s in unknown))
            for source, known in zip(unknown, found):
                if known is not None:
                    self._learn(source, known)

    def _learn(self, source: PodContainer, known: Pod) -> Identity:
        if self._pods.get(source) != known:  # first seen, or its labels or annotations changed
            self._pods[source] = known
            self._identities[source] = placed(
                identity_for(source, {**known.labels, **known.annotations}), self.cluster, known, source.container
            )
        return self._identities[source]

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

    def records(self, lines: Sequence[TailedLine]) -> list[LogRecord]:
        """`record` for a batch, as the tail pipeline calls it: the same records, for less per line. A batch
        comes in runs of lines from one file, so the identity is looked up once per run (an unknown pod is
        asked once per batch and run, not per line), and most lines need no trace-context parsing at all."""
        out: list[LogRecord] = []
        append = out.append
        last_source: PodContainer | None = None
        identity = Identity()
        for line in lines:
            source = line.source
            if source is not last_source:
                last_source, identity = source, self.identity(source)
            body = line.body
            if body[:1] == "{" or "race" in body or "RACE" in body:  # trace_context's own fast exits, inlined
                trace_id, span_id = trace_context(body)
            else:
                trace_id = span_id = ""
            append(LogRecord(line.ts_ns, body, identity, detect_level(body), trace_id, span_id, line.stream))
        return out


def placed(identity: Identity, cluster: str, pod: Pod | None = None, container: str = "") -> Identity:
    """`identity` with where its lines ran: the cluster, and from the pod's metadata its node, IP, the
    container's image and the pod's labels (all of them, bounded: domain.identity.bounded_labels). A pod the
    source does not know gets the cluster alone."""
    if pod is None:
        return dataclasses.replace(identity, cluster=cluster[:MAX_PLACEMENT_CHARS]) if cluster else identity
    return dataclasses.replace(
        identity,
        cluster=cluster[:MAX_PLACEMENT_CHARS],
        node=pod.node[:MAX_PLACEMENT_CHARS],
        pod_ip=pod.pod_ip[:MAX_PLACEMENT_CHARS],
        image=pod.images.get(container, "")[:MAX_PLACEMENT_CHARS],
        labels=bounded_labels(pod.labels),
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
    trace_match = _TEXT_TRACE.search(body)
    span_match = _TEXT_SPAN.search(body) if trace_match else None
    return (
        trace_match.group(1).lower() if trace_match else "",
        span_match.group(1).lower() if span_match else "",
    )
