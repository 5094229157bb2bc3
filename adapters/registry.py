"""The backends a process can use, and the plane it builds from the enabled ones.

A backend is a package under `adapters/` whose `plugin.py` exports `ENTRY`, a `BackendEntry`: its settings
(pydantic-settings, with its own environment variable names), a factory `create(settings, context) -> Backend`,
whether the settings turn it on, and its priority. `BUILTIN` below is the only place that names concrete
backends, one line each; `OBSERVER_BACKENDS` (`module:attr`, comma-separated) adds entries from anywhere on the
import path without editing this file (that is how tests/registry_example registers its backend).

A plane is the enabled backends; every role (logs, events, traces, metrics, topology, the name registry) is
served by the enabled backend of highest priority that serves it, and each signal a collector or the OTLP
receiver delivers goes to the sink of the backend chosen for the role that reads it back (`destinations`).
Everything here is backend-neutral: `observer up`, `observer collect`, the CLI, alerting and the contract tests
build backends through it and never import a concrete one.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import logging
import os
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from adapters.protocols import (
    AuditBackend,
    EventsBackend,
    LogsBackend,
    MetricsBackend,
    PatternsBackend,
    PlatformLogsBackend,
    ScopeResolver,
    TelemetrySink,
    TracesBackend,
    WriteResult,
)
from domain.alerting import AlertFiring
from domain.audit import AuditRecord
from domain.model import EventRecord, Identity, LogRecord, MetricPoint, SpanRecord
from domain.timeutil import now_ns

log = logging.getLogger(__name__)

#: name -> the module whose ENTRY describes it. One line per backend; nothing else names them.
BUILTIN: dict[str, str] = {
    "embedded": "adapters.embedded.plugin",
    "opensearch": "adapters.opensearch.plugin",
    "prometheus": "adapters.prometheus.plugin",
    "datadog": "adapters.datadog.plugin",
    "http": "adapters.http.plugin",
}
#: Extra entries, `module:attr[,module:attr...]`, each attr a BackendEntry.
EXTRA_BACKENDS_ENV = "OBSERVER_BACKENDS"

Signal = Literal["logs", "events", "spans", "metrics"]
SIGNALS: frozenset[str] = frozenset({"logs", "events", "spans", "metrics", "audit"})
#: The signals whose records carry an Identity (an audit record names its actor and resource instead).
IDENTIFIED: frozenset[str] = SIGNALS - {"audit"}
#: Which signal a query role reads: a sink gets the signals of the roles its backend was chosen for.
_ROLE_SIGNAL = {"logs": "logs", "events": "events", "traces": "spans", "metrics": "metrics", "audit": "audit"}
ROLES = ("logs", "events", "traces", "metrics", "topology", "names")

Purpose = Literal["serve", "write", "admin"]


@dataclass(frozen=True, slots=True)
class Context:
    """Why a backend is built. `serve`: `observer up` (queries, plus upkeep such as retention and indexing);
    `write`: the collector, which only delivers (no upkeep, which belongs to the serving process); `admin`: a
    setup job (`observer opensearch init`). `searchable_writes`: a write is visible to the next query at once,
    whatever it costs (the contract tests; never a process)."""

    purpose: Purpose = "serve"
    searchable_writes: bool = False


class Learner(Protocol):
    """The name registry's write half: names and UIDs learned from telemetry stored anywhere."""

    async def learn(self, identities: Sequence[Identity]) -> None: ...


@dataclass(frozen=True, slots=True)
class RuleTargetContext:
    """What a backend needs to build its rule target: where firings are posted back, with which token."""

    webhook_url: str
    webhook_token: str = ""


#: A backend's rule target, built once at start (it may ask the backend what it supports); None: this backend
#: evaluates no rules here (the observer's own evaluator then does). The result is an alert_rules RuleTarget.
RuleTargetFactory = Callable[[RuleTargetContext], Awaitable[Any]]


@dataclass
class Roles:
    """What a backend serves; None is not served. `topology_from_spans`: its topology is derived from spans,
    so its sink must get them even when another backend keeps the traces."""

    logs: LogsBackend | None = None
    platform_logs: PlatformLogsBackend | None = None  # every line by Kubernetes placement
    audit: AuditBackend | None = None  # the audit trail (its sink takes the `audit` part of a batch)
    patterns: PatternsBackend | None = None  # log patterns where the lines live (else sampled by the observer)
    events: EventsBackend | None = None
    traces: TracesBackend | None = None
    metrics: MetricsBackend | None = None
    topology: MetricsBackend | None = None  # query_topology
    names: ScopeResolver | None = None  # names -> UIDs
    learns: Learner | None = None  # with `names`: learns the names of records other backends store
    sink: TelemetrySink | None = None
    rule_target: RuleTargetFactory | None = None
    topology_from_spans: bool = False


class Backend(Protocol):
    """One built backend: its roles and its lifecycle. `start` runs before the process serves (keep it short;
    a backend that must wait for a server retries in a task); `tasks` are the background work (coroutines the
    process runs until it stops; one that dies stops the process); `health` is a short state for logs and
    banners; `close` releases everything (called once, in reverse order of the plane)."""

    name: str
    roles: Roles

    async def start(self) -> None: ...

    def tasks(self) -> list[Coroutine[Any, Any, None]]: ...

    def health(self) -> str: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class BackendEntry:
    """A registry line's target: `settings` is read from the environment (or validated from the collector's
    YAML); `enabled(settings, context)` says whether those settings turn the backend on; among the enabled,
    the highest `priority` serves each role."""

    name: str
    settings: type[BaseSettings]
    create: Callable[[Any, Context], Backend]
    enabled: Callable[[Any, Context], bool]
    priority: int = 100
    describe: Callable[[Any], str] = lambda settings: ""  # one phrase for the start-up banner
    #: Reads the alert payloads this backend's own alerting posts to the observer's webhook: the firings, or None
    #: when a body is not its shape. Datadog's monitors post Datadog's template; most backends post none of their own.
    webhook: Callable[[Mapping[str, Any]], list[AlertFiring] | None] | None = None


def entries(environ: Mapping[str, str] | None = None) -> dict[str, BackendEntry]:
    """Every known backend by name: the built-in ones, then those OBSERVER_BACKENDS names."""
    environ = os.environ if environ is None else environ
    found = {name: _load(f"{module}:ENTRY") for name, module in BUILTIN.items()}
    for spec in filter(None, (part.strip() for part in environ.get(EXTRA_BACKENDS_ENV, "").split(","))):
        entry = _load(spec)
        found[entry.name] = entry
    return found


@functools.cache
def webhook_decoders() -> tuple[Callable[[Mapping[str, Any]], list[AlertFiring] | None], ...]:
    """The payload readers of every known backend (enabled or not: a webhook may arrive before or after a backend
    is configured here), for the alert webhook to try before the contract's own shape."""
    return tuple(entry.webhook for entry in entries().values() if entry.webhook is not None)


def _load(spec: str) -> BackendEntry:
    module, _, attr = spec.partition(":")
    try:
        entry = getattr(importlib.import_module(module), attr or "ENTRY")
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"{EXTRA_BACKENDS_ENV}: cannot load backend {spec!r} ({exc})") from None
    if not isinstance(entry, BackendEntry):
        raise ValueError(f"{EXTRA_BACKENDS_ENV}: {spec!r} is not a BackendEntry")
    return entry


def env_names(settings: type[BaseSettings], field_name: str) -> tuple[str, ...]:
    """The environment variables that set one field (its validation alias, or its choices)."""
    alias = settings.model_fields[field_name].validation_alias
    if isinstance(alias, AliasChoices):
        return tuple(str(choice) for choice in alias.choices)
    return (alias,) if isinstance(alias, str) else (field_name.upper(),)


def settings_from(settings: type[BaseSettings], values: Mapping[str, Any], environ: Mapping[str, str]) -> BaseSettings:
    """A backend's settings from explicit values (field names) with `environ` over them: the collector's YAML
    and its environment, read through the very model `observer up` reads the environment with."""
    merged = dict(values)
    lowered = {key.lower(): value for key, value in environ.items()}
    for name in settings.model_fields:
        for variable in env_names(settings, name):
            if variable.lower() in lowered:
                merged[name] = lowered[variable.lower()]
                break
    return settings.model_validate(merged)


def settings_with(settings: type[BaseSettings], shared: Mapping[str, Any]) -> BaseSettings:
    """A backend's settings from the environment, except where `shared` (environment variable name -> value,
    the process's own settings, which command-line flags may have changed) holds a variable it reads too: so
    `observer up --data-dir D` reaches the embedded backend that OBSERVER_DATA_DIR configures."""
    given = {}
    for name in settings.model_fields:
        for variable in env_names(settings, name):
            if variable in shared:
                given[name] = shared[variable]
                break
    return settings(**given)


@dataclass(frozen=True, slots=True)
class Destination:
    """One backend's share of every batch: `signals` (of SIGNALS) are the parts of a batch `sink` takes."""

    name: str
    sink: TelemetrySink
    signals: frozenset[str]


@dataclass
class Plane:
    """The enabled backends, in ascending priority (so the default comes first and is closed last)."""

    backends: list[Backend]
    settings: dict[str, BaseSettings] = field(default_factory=dict)

    def served(self, role: str) -> Any:
        """The role's implementation from the highest-priority backend that serves it, or None."""
        chosen = self.chosen(role)
        return getattr(chosen.roles, role) if chosen is not None else None

    def chosen(self, role: str) -> Backend | None:
        for backend in reversed(self.backends):
            if getattr(backend.roles, role) is not None:
                return backend
        return None

    def destinations(self) -> list[Destination]:
        """One per backend whose sink keeps a signal: the signals of the roles it was chosen for, plus the spans
        when its topology is derived from them."""
        wanted: dict[str, set[str]] = {}
        for role, signal in _ROLE_SIGNAL.items():
            backend = self.chosen(role)
            if backend is not None and backend.roles.sink is not None:
                wanted.setdefault(backend.name, set()).add(signal)
        topology = self.chosen("topology")
        if topology is not None and topology.roles.topology_from_spans and topology.roles.sink is not None:
            wanted.setdefault(topology.name, set()).add("spans")
        return [
            Destination(backend.name, backend.roles.sink, frozenset(wanted[backend.name]))
            for backend in self.backends
            if backend.name in wanted and backend.roles.sink is not None
        ]

    def sink(self) -> TelemetrySink:
        """Where the OTLP receiver delivers: every destination its part, and the name registry learns the names
        in the signals its own backend does not store (which it learns from as it stores them)."""
        destinations = self.destinations()
        owner = self.chosen("names")
        own = next(
            (each.signals for each in destinations if owner is not None and each.name == owner.name), frozenset()
        )
        if len(destinations) == 1 and own == SIGNALS:
            return destinations[0].sink  # one backend keeps everything: no fan-out
        return FanOutSink(destinations, owner.roles.learns if owner is not None else None, IDENTIFIED - own)

    async def start(self) -> None:
        for backend in self.backends:
            await backend.start()

    def tasks(self) -> list[asyncio.Task[None]]:
        return [
            asyncio.create_task(work, name=f"{backend.name}-{getattr(work, '__name__', 'task')}")
            for backend in self.backends
            for work in backend.tasks()
        ]

    async def close(self) -> None:
        """Every backend, in reverse order; one failing to close does not keep the others open."""
        for backend in reversed(self.backends):
            try:
                await backend.close()
            except Exception:
                log.exception("closing backend %s failed", backend.name)


def enabled(
    context: Context = Context(),
    *,
    shared: Mapping[str, Any] | None = None,
    configured: Mapping[str, BaseSettings] | None = None,
    known: Mapping[str, BackendEntry] | None = None,
) -> list[tuple[BackendEntry, BaseSettings]]:
    """The backends these settings turn on, in ascending priority, with their settings: from `configured`
    (name -> settings, the collector's) or else from the environment with `shared` over it (`settings_with`)."""
    known = entries() if known is None else known
    chosen = []
    for entry in sorted(known.values(), key=lambda each: each.priority):
        if configured is not None:
            if entry.name not in configured:
                continue
            settings = configured[entry.name]
        else:
            settings = settings_with(entry.settings, shared or {})
        if entry.enabled(settings, context):
            chosen.append((entry, settings))
    return chosen


def describe(chosen: Sequence[tuple[BackendEntry, BaseSettings]]) -> str:
    """Where the data lives, for the start-up banner: the default backend alone, or the others."""
    phrases = [entry.describe(settings) for entry, settings in chosen]
    return "; ".join(filter(None, phrases[1:] if len(phrases) > 1 else phrases))


async def build_plane(context: Context, chosen: Sequence[tuple[BackendEntry, BaseSettings]]) -> Plane:
    """The chosen backends, built (not started). A factory that raises closes the ones built before it."""
    plane = Plane([])
    try:
        for entry, settings in chosen:
            plane.settings[entry.name] = settings
            plane.backends.append(entry.create(settings, context))
    except BaseException:
        await plane.close()
        raise
    return plane


class Prunable(Protocol):
    async def prune(self, older_than_ns: int) -> int: ...


RETENTION_EVERY_S = 600


async def retention_loop(store: Prunable, retention_hours: float) -> None:
    """Deletes what is older than the retention every RETENTION_EVERY_S; a failed round is retried next time.
    Shared by the backends that keep their own retention (a backend task)."""
    while True:
        try:
            removed = await store.prune(now_ns() - int(retention_hours * 3600 * 10**9))
            if removed:
                log.info("retention removed %d records older than %sh", removed, retention_hours)
        except Exception:
            log.exception("retention failed")
        await asyncio.sleep(RETENTION_EVERY_S)


class FanOutSink:
    """One sink in front of a plane's destinations: each gets its part of a batch, all at once, and the name
    registry learns every identity. The result is the worst of the parts (any retry: retry the whole batch,
    which every destination makes a no-op where it already stored it)."""

    def __init__(
        self, destinations: Sequence[Destination], names: Learner | None = None, learn: frozenset[str] = IDENTIFIED
    ):
        self.destinations = list(destinations)
        self.names = names
        self.learn = learn  # the signals whose identities the name registry learns here

    async def write(
        self,
        *,
        batch_id: str,
        logs: Sequence[LogRecord] = (),
        events: Sequence[EventRecord] = (),
        spans: Sequence[SpanRecord] = (),
        metrics: Sequence[MetricPoint] = (),
        audit: Sequence[AuditRecord] = (),
    ) -> WriteResult:
        batch: dict[str, Sequence[Any]] = {
            "logs": logs,
            "events": events,
            "spans": spans,
            "metrics": metrics,
            "audit": audit,
        }
        work: list[Awaitable[Any]] = []
        for destination in self.destinations:
            part = {signal: batch[signal] for signal in destination.signals if batch[signal]}
            if part:  # one write per destination, so its batch id makes a redelivery a no-op there
                work.append(destination.sink.write(batch_id=batch_id, **part))
        if self.names is not None:
            identities = [record.identity for signal in self.learn for record in batch[signal]]
            if identities:
                work.append(self.names.learn(identities))
        results = await asyncio.gather(*work)
        return combine([result for result in results if isinstance(result, WriteResult)])


def combine(results: Sequence[WriteResult]) -> WriteResult:
    """The result of a batch written to several destinations: retry if any must, else dropped if any
    refused it whole, else delivered (with every destination's refused records counted)."""
    retries = [result for result in results if result.outcome == "retry"]
    if retries:
        return WriteResult.retry(
            max(r.retry_after_s for r in retries), "; ".join(filter(None, (r.reason for r in retries)))
        )
    dropped = [result for result in results if result.outcome == "dropped"]
    if dropped:
        return WriteResult.dropped("; ".join(r.reason for r in dropped), sum(r.count for r in dropped))
    count = sum(result.count for result in results)
    return (
        WriteResult.delivered(count, "; ".join(filter(None, (r.reason for r in results))))
        if count
        else WriteResult.delivered()
    )
