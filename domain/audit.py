"""The audit trail: one record per state-changing call (and per denied attempt, and per read of the trail
itself) on the observer and the control plane, in the schema OpenChoreo's adapters query (`AuditLogRecord`).

`audit_document` / `audit_from_document` are the record's one JSON shape: the line a producer writes to its log,
what the collector recognises from a trusted producer, what the OpenSearch backend stores and what the API
returns. Its keys are upstream's as its generated adapter models spell them (observability-logs-dynatrace
`api/gen/models.gen.go`): snake_case for the record (`event_id`, `source_ip`, `actor.session_id`; the frozen
shape a SIEM consumes key for key), camelCase only inside `collector`; `actor.entitlements` maps a claim to its
values. (http-adapters-notes §3 lists camelCase names; upstream's code is what its producers write.) Times are
nanoseconds below the wire, RFC3339 in the document.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from domain.model import SortOrder, TimeRange
from domain.timeutil import format_rfc3339, parse_rfc3339

SCHEMA_VERSION = "1.0"
#: The source audit records are kept under, apart from application logs (the collector's route name upstream).
AUDIT_SOURCE = "openchoreo-audit-logs"

CATEGORIES = ("access", "authorization", "management")
RESULTS = ("success", "failure", "denied")
SURFACES = ("rest", "mcp")
Category = Literal["access", "authorization", "management"]
Result = Literal["success", "failure", "denied"]

#: `limit` default and most; filter values share domain.platform's bounds.
DEFAULT_AUDIT_LIMIT, MAX_AUDIT_LIMIT = 100, 1_000
#: A timeline has at most this many buckets: an interval that would give more is coarsened (coarsened_interval),
#: not refused, as upstream's contract says.
MAX_TIMELINE_BUCKETS = 500
#: The units of a timeline interval (`<count><unit>`), in nanoseconds.
INTERVAL_UNITS = {"m": 60 * 10**9, "h": 3600 * 10**9, "d": 86400 * 10**9, "w": 7 * 86400 * 10**9}
#: The widths a coarsened or default timeline takes, smallest first.
_LADDER = tuple(
    count * INTERVAL_UNITS[unit]
    for count, unit in (
        (1, "m"), (5, "m"), (10, "m"), (15, "m"), (30, "m"), (1, "h"), (3, "h"), (6, "h"), (12, "h"), (1, "d"), (1, "w"),
    )
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Actor:
    type: str  # user | service_account | anonymous
    id: str
    issuer: str = ""
    session_id: str = ""
    # claim -> its values (a user's `groups`, a service account's `sub`), sorted by claim
    entitlements: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def entitlement_values(self) -> tuple[str, ...]:
        """Every claim's values, once each: what an `actor.entitlements` filter matches (upstream matches the values
        of every claim, so a caller need not know which claim a subject kind uses)."""
        return tuple(dict.fromkeys(value for _, values in self.entitlements for value in values))


@dataclass(frozen=True, slots=True)
class AuditResource:
    type: str = ""
    namespace: str = ""
    environment: str = ""
    project: str = ""
    component: str = ""
    resource: str = ""
    uid: str = ""
    name: str = ""


@dataclass(frozen=True, slots=True)
class Collected:
    """Where the collector read a record (the producer's pod), when it came through one."""

    namespace: str = ""
    pod: str = ""
    container: str = ""


@dataclass(frozen=True, slots=True)
class AuditRecord:
    event_id: str  # unique: a redelivered record is the same record
    time_ns: int
    actor: Actor
    action: str  # e.g. incident.update, alertrule.apply, mcp.query_component_logs
    category: str  # one of CATEGORIES
    result: str  # one of RESULTS
    surface: str = ""  # rest | mcp
    producer: str = ""  # observer | openchoreo-api
    operation_id: str = ""
    request_id: str = ""
    source_ip: str = ""
    user_agent: str = ""
    http_method: str = ""
    http_path: str = ""
    resource: AuditResource | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    collector: Collected | None = None
    schema_version: str = SCHEMA_VERSION


#: Filter names of audit filter values (the contract's). Each is also the record's document path (upstream names
#: and nests a filter exactly as the field it matches), which backends that store the document filter on.
AUDIT_FILTERS: tuple[str, ...] = (
    "actor.id",
    "actor.type",
    "actor.issuer",
    "actor.session_id",
    "actor.entitlements",
    "resource.type",
    "resource.namespace",
    "resource.environment",
    "resource.project",
    "resource.component",
    "resource.resource",
    "resource.name",
    "action",
    "category",
    "result",
    "producer",
    "surface",
    "operation_id",
    "source_ip",
    "user_agent",
)


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Records in `range` matching every non-empty filter (each a list of alternatives), containing `phrase`
    anywhere in their document. `filters` maps an AUDIT_FILTERS name (plus `request_id`, `event_id`) to its
    alternatives, sorted by name so equal queries compare equal."""

    range: TimeRange
    filters: tuple[tuple[str, tuple[str, ...]], ...] = ()
    phrase: str = ""
    limit: int = DEFAULT_AUDIT_LIMIT
    sort: SortOrder = "desc"
    cursor: str = ""
    timeline_interval_ns: int = 0  # 0: no timeline; buckets start at range.start_ns (timeline_start)


#: Filters an AuditQuery accepts that are not facets (an id is not worth counting).
EXACT_ONLY_FILTERS = ("request_id", "event_id")
#: Every filter an AuditQuery takes.
QUERY_FILTERS = AUDIT_FILTERS + EXACT_ONLY_FILTERS


def document_paths(entitlement_values: str) -> dict[str, str]:
    """Each filter's path in a stored audit document, for a backend that keeps `audit_document` as it is plus
    `entitlement_values`, every claim's values in one array (a filter on `actor.entitlements` matches the
    values of any claim, and a query language cannot name "any key under this object")."""
    return {name: entitlement_values if name == "actor.entitlements" else name for name in QUERY_FILTERS}


@dataclass(slots=True)
class TimelineBucket:
    start_ns: int
    total: int
    counts: dict[str, int] = field(default_factory=dict)  # per result


@dataclass(slots=True)
class AuditPage:
    """`total` is exact, never capped (upstream: an audit reader told an understated total draws the wrong
    conclusion about how much happened); `timeline` holds a backend's non-empty buckets, the service fills the
    rest (contiguous_timeline)."""

    records: list[AuditRecord]
    total: int
    took_ms: int
    next_cursor: str = ""
    timeline: list[TimelineBucket] | None = None


def record_value(record: AuditRecord, name: str) -> tuple[str, ...]:
    """The values a record has for a filter name (several for `actor.entitlements`, none when unset): what
    in-memory backends filter and count on."""
    if name == "actor.entitlements":
        return record.actor.entitlement_values
    if name.startswith("actor."):
        value = getattr(record.actor, name[len("actor.") :])
    elif name.startswith("resource."):
        value = getattr(record.resource, name[len("resource.") :]) if record.resource else ""
    else:
        value = getattr(record, name)
    return (value,) if value else ()


def matches_filters(record: AuditRecord, filters: tuple[tuple[str, tuple[str, ...]], ...]) -> bool:
    return all(set(record_value(record, name)) & set(wanted) for name, wanted in filters)


def timeline_start(time_ns: int, interval_ns: int, origin_ns: int) -> int:
    """The start of the bucket a time falls in: buckets run from the window's start (`origin_ns`) on, each
    `interval_ns` wide (the last may be cut short by the window's end)."""
    return origin_ns + (time_ns - origin_ns) // interval_ns * interval_ns


def contiguous_timeline(window: TimeRange, interval_ns: int, found: list[TimelineBucket]) -> list[TimelineBucket]:
    """Every bucket of the window, ascending, the empty ones with zero counts (upstream: a sparse array would let
    a caller draw a continuous line across a gap in activity). `found` are a backend's non-empty buckets."""
    by_start = {bucket.start_ns: bucket for bucket in found}
    return [
        by_start.get(start) or TimelineBucket(start, 0)
        for start in range(window.start_ns, max(window.end_ns, window.start_ns + 1), interval_ns)
    ]


def parse_interval(text: str) -> int:
    """`<count><unit>` (unit m, h, d or w) in nanoseconds; ValueError says what is accepted."""
    unit = text[-1:]
    count = text[:-1]
    if unit not in INTERVAL_UNITS or not count.isdigit() or not 0 < int(count) <= 100_000:
        raise ValueError("an interval is <count><unit>, the unit one of m, h, d, w (e.g. 5m, 1h, 1d)")
    return int(count) * INTERVAL_UNITS[unit]


def format_interval(interval_ns: int) -> str:
    """The largest unit that divides the interval: 90m, 1h, 2d, 1w."""
    for unit in ("w", "d", "h", "m"):
        if interval_ns % INTERVAL_UNITS[unit] == 0:
            return f"{interval_ns // INTERVAL_UNITS[unit]}{unit}"
    raise ValueError("an interval is a whole number of minutes")


def coarsened_interval(window: TimeRange, requested_ns: int = 0) -> int:
    """The interval a timeline of `window` uses: the one requested while it gives at most MAX_TIMELINE_BUCKETS
    buckets, else (or with none requested) the smallest width of the ladder that does (at least the requested);
    a window longer than the ladder's widest 500 times gets whole weeks."""
    span = max(window.end_ns - window.start_ns, 1)
    if requested_ns and -(-span // requested_ns) <= MAX_TIMELINE_BUCKETS:
        return requested_ns
    limit = MAX_TIMELINE_BUCKETS if requested_ns else 100  # a default gives a readable chart, not the most bars
    for width in _LADDER:
        if width >= requested_ns and -(-span // width) <= limit:
            return width
    week = INTERVAL_UNITS["w"]
    return -(-span // (MAX_TIMELINE_BUCKETS * week)) * week


# ----------------------------------------------------------------------------------------------- the document


def _drop_empty(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value not in ("", None, (), [], {})}


def audit_document(record: AuditRecord) -> dict[str, Any]:
    """The record as JSON: the contract's `AuditLogRecord` (empty optional fields left out)."""
    actor = _drop_empty(
        {
            "type": record.actor.type,
            "id": record.actor.id,
            "issuer": record.actor.issuer,
            "session_id": record.actor.session_id,
            "entitlements": {claim: list(values) for claim, values in record.actor.entitlements},
        }
    )
    actor.setdefault("id", "")  # required upstream, even when unknown
    document: dict[str, Any] = {
        "schema_version": record.schema_version,
        "event_id": record.event_id,
        "event_time": format_rfc3339(record.time_ns),
        "actor": actor,
        "action": record.action,
        "category": record.category,
        "result": record.result,
    }
    document.update(
        _drop_empty(
            {
                "request_id": record.request_id,
                "source_ip": record.source_ip,
                "user_agent": record.user_agent,
                "producer": record.producer,
                "surface": record.surface,
                "operation_id": record.operation_id,
                "metadata": dict(record.metadata),
            }
        )
    )
    if record.http_method or record.http_path:
        document["http"] = {"method": record.http_method, "path": record.http_path}
    if record.resource is not None:
        resource = record.resource
        document["resource"] = _drop_empty(
            {
                "type": resource.type,
                "namespace": resource.namespace,
                "environment": resource.environment,
                "project": resource.project,
                "component": resource.component,
                "resource": resource.resource,
                "uid": resource.uid,
                "name": resource.name,
            }
        )
    if record.collector is not None:
        document["collector"] = _drop_empty(
            {
                "namespaceName": record.collector.namespace,
                "podName": record.collector.pod,
                "containerName": record.collector.container,
            }
        )
    return document


class NotAnAuditRecord(ValueError):
    """A JSON value that is not an audit record in our schema."""


def _text(source: Mapping[str, Any], key: str, required: bool = False) -> str:
    value = source.get(key, "")
    if not isinstance(value, str) or (required and not value):
        raise NotAnAuditRecord(f"{key} must be a{' non-empty' if required else ''} string")
    return value


def _object(source: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    value = source.get(key)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise NotAnAuditRecord(f"{key} must be an object")
    return value


def audit_from_document(document: Any, *, closed_vocabulary: bool = True) -> AuditRecord:
    """The record a JSON document holds, or NotAnAuditRecord: required fields present and typed, enums known.

    `closed_vocabulary=False` reads a record another system published (the adapter contract's answer): a newer
    schema's category, result or surface is kept rather than refused, as an older reader must not break on a
    vocabulary that grew."""
    if not isinstance(document, Mapping) or "schema_version" not in document or "event_id" not in document:
        raise NotAnAuditRecord("not an audit record")
    actor = _object(document, "actor")
    if actor is None:
        raise NotAnAuditRecord("actor is required")
    entitlements = _object(actor, "entitlements") or {}
    if not all(
        isinstance(values, list) and all(isinstance(item, str) for item in values) for values in entitlements.values()
    ):
        raise NotAnAuditRecord("actor.entitlements must map each claim to a list of strings")
    category, result = _text(document, "category", True), _text(document, "result", True)
    surface = _text(document, "surface")
    if closed_vocabulary and (category not in CATEGORIES or result not in RESULTS):
        raise NotAnAuditRecord("unknown category or result")
    if closed_vocabulary and surface and surface not in SURFACES:
        raise NotAnAuditRecord("unknown surface")
    try:
        time_ns = parse_rfc3339(_text(document, "event_time", True))
    except ValueError as error:
        raise NotAnAuditRecord(f"event_time: {error}") from None
    metadata = _object(document, "metadata") or {}
    http = _object(document, "http") or {}
    resource = _object(document, "resource")
    collector = _object(document, "collector")
    return AuditRecord(
        schema_version=_text(document, "schema_version", True),
        event_id=_text(document, "event_id", True),
        time_ns=time_ns,
        actor=Actor(
            type=_text(actor, "type", True),
            id=_text(actor, "id"),
            issuer=_text(actor, "issuer"),
            session_id=_text(actor, "session_id"),
            entitlements=tuple(sorted((str(claim), tuple(values)) for claim, values in entitlements.items())),
        ),
        action=_text(document, "action", True),
        category=category,
        result=result,
        surface=surface,
        producer=_text(document, "producer"),
        operation_id=_text(document, "operation_id"),
        request_id=_text(document, "request_id"),
        source_ip=_text(document, "source_ip"),
        user_agent=_text(document, "user_agent"),
        http_method=_text(http, "method"),
        http_path=_text(http, "path"),
        metadata={str(key): str(value) for key, value in metadata.items()},
        resource=None
        if resource is None
        else AuditResource(
            **{name: _text(resource, name) for name in AuditResource.__dataclass_fields__}  # noqa: SLF001
        ),
        collector=None
        if collector is None
        else Collected(
            _text(collector, "namespaceName"), _text(collector, "podName"), _text(collector, "containerName")
        ),
    )
