"""Our queries as Datadog search queries and request bodies. Pure functions: a query in, a request body out.

User input reaches a Datadog query only through `quoted` (a double-quoted value: exact match, where only `"`
and `\\` are special and are escaped) or `wildcard_literal` (a bare value where every character of Datadog's
search syntax, and whitespace, is escaped with `\\`, so only our own `*` is a wildcard). The semantics follow
the embedded backend's where Datadog can express them:

- a component scope matches the namespace tag and the UIDs given, and leaves out workflow pods; a workflow
  scope matches the run exactly, the task as a substring of the Argo node name, and leaves out Argo's `init`
  and `wait` containers;
- a level filter matches Datadog's `status`, which our intake sets from the level (fields.LEVEL_STATUS), so
  logs other agents shipped are filtered the same way;
- the phrase is a quoted full-text search on the message. Datadog documents a quoted phrase as a sequence of
  words, case-insensitive, not a literal substring: a documented difference from the contract's phrase;
- time ranges are inclusive, to the millisecond (Datadog keeps milliseconds).
"""

from __future__ import annotations

from typing import Any

from adapters.datadog import fields
from domain.audit import AUDIT_SOURCE, AuditQuery
from domain.loglevel import stored_levels
from domain.model import ComponentScope, Scope, SortOrder, TimeRange, WorkflowScope
from domain.platform import PlatformLogsQuery

WORKFLOW_SIDECARS = ("init", "wait")

#: Datadog's search syntax: these characters (and whitespace) must be escaped in a bare value.
_SPECIAL = frozenset('+-=&|><!(){}[]^"“”~*?:\\/')


def quoted(text: str) -> str:
    """`text` as a double-quoted Datadog value: matched exactly, whatever it holds."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def wildcard_literal(text: str) -> str:
    """`text` escaped for a bare (unquoted) value, so that inside `*...*` it matches only itself."""
    return "".join("\\" + char if char in _SPECIAL or char.isspace() else char for char in text)


def term(key: str, value: str) -> str:
    """`key:"value"`: a tag (or, with `@`, an attribute) equal to `value`."""
    return f"{key}:{quoted(value)}"


def any_value(key: str, values: list[str]) -> str:
    """`key:("a" OR "b")`."""
    return f"{key}:(" + " OR ".join(quoted(value) for value in values) + ")"


def attribute(name: str) -> str:
    return "@" + name


def conjunction(clauses: list[str]) -> str:
    """Clauses joined with AND (a space, in Datadog's syntax)."""
    return " ".join(clause for clause in clauses if clause)


def scope_clauses(scope: Scope) -> list[str]:
    """The scope as tag clauses, the same for logs, events and metrics (fields.IDENTITY_TAGS)."""
    clauses = [term(fields.NAMESPACE, scope.namespace)]
    if isinstance(scope, ComponentScope):
        clauses += [
            term(tag, getattr(scope, attr)) for attr, tag in fields.SCOPE_UID_TAGS.items() if getattr(scope, attr)
        ]
        clauses.append(term(fields.WORKLOAD, fields.WORKLOAD_COMPONENT))
        return clauses
    assert isinstance(scope, WorkflowScope)
    clauses.append(term(fields.WORKLOAD, fields.WORKLOAD_WORKFLOW))
    if scope.workflow_run:
        clauses.append(term(fields.WORKFLOW_RUN, scope.workflow_run))
    if scope.task:
        clauses.append(f"{attribute(fields.TASK)}:*{wildcard_literal(scope.task)}*")
    return clauses


def level_statuses(levels: tuple[str, ...]) -> list[str]:
    """The Datadog statuses a `logLevels` filter selects: every status that reads back as a selected level."""
    wanted = set(stored_levels(levels))
    return sorted(status for status, level in fields.STATUS_LEVEL.items() if level in wanted)


def logs_query(scope: Scope, levels: tuple[str, ...] = (), phrase: str = "", trace_id: str = "") -> str:
    """The search query of logs in a scope with the given levels, phrase and trace (shared with log monitors).
    The trace is the `trace_id` attribute our intake writes (32 hex, as OpenTelemetry has it)."""
    clauses = scope_clauses(scope)
    clauses.append("-" + term(fields.SOURCE_KEY, fields.EVENTS_SOURCE))
    if isinstance(scope, WorkflowScope):
        clauses += ["-" + term(fields.CONTAINER_NAME, name) for name in WORKFLOW_SIDECARS]
    if levels:
        clauses.append(any_value(fields.STATUS, level_statuses(levels)))
    if trace_id:
        clauses.append(term(attribute(fields.TRACE_ID), trace_id))
    if phrase:
        clauses.append(quoted(phrase))
    return conjunction(clauses)


def events_query(scope: Scope) -> str:
    """Kubernetes events of a scope: logs with `source:kubernetes` (fields.EVENTS_SOURCE says why)."""
    return conjunction([*scope_clauses(scope), term(fields.SOURCE_KEY, fields.EVENTS_SOURCE)])


def millis(window: TimeRange) -> tuple[str, str]:
    """`from` and `to` as epoch milliseconds, widened to whole milliseconds so the range stays inclusive: `to`
    is exclusive in Datadog, so it is the millisecond after the one the end falls in."""
    return str(window.start_ns // 1_000_000), str(window.end_ns // 1_000_000 + 1)


def logs_search_body(
    query: str, window: TimeRange, sort: SortOrder, limit: int, indexes: tuple[str, ...], cursor: str = ""
) -> dict[str, Any]:
    """A Logs Search v2 body (`POST /api/v2/logs/events/search`: flat, not JSON:API)."""
    start, end = millis(window)
    page: dict[str, Any] = {"limit": limit}
    if cursor:
        page["cursor"] = cursor
    return {
        "filter": {"query": query, "from": start, "to": end, "indexes": list(indexes)},
        "sort": "timestamp" if sort == "asc" else "-timestamp",
        "page": page,
    }


def logs_count_body(query: str, window: TimeRange, indexes: tuple[str, ...]) -> dict[str, Any]:
    """A Logs Aggregate body (`POST /api/v2/logs/analytics/aggregate`): one count, no groups."""
    start, end = millis(window)
    return {
        "compute": [{"aggregation": "count", "type": "total"}],
        "filter": {"query": query, "from": start, "to": end, "indexes": list(indexes)},
    }


# ----------------------------------------------------------------------------------------------- spans


def spans_scope_query(scope: ComponentScope) -> str:
    """Spans of a component scope: the scope tags our intake adds as resource attributes, which Datadog
    keeps among a span's attributes (`@openchoreo.namespace`)."""
    clauses = [term(attribute(fields.NAMESPACE), scope.namespace)]
    clauses += [
        term(attribute(tag), getattr(scope, attr))
        for attr, tag in fields.SCOPE_UID_TAGS.items()
        if getattr(scope, attr)
    ]
    return conjunction(clauses)


def span_query(trace_id: str, span_id: str) -> str:
    """One span: Datadog names span ids in decimal."""
    return conjunction([term(fields.SPAN_TRACE_ID, trace_id), term(fields.SPAN_ID_KEY, str(int(span_id, 16)))])


def trace_ids_query(trace_ids: list[str]) -> str:
    return any_value(fields.SPAN_TRACE_ID, trace_ids)


def spans_search_body(query: str, window: TimeRange, sort: SortOrder, limit: int, cursor: str = "") -> dict[str, Any]:
    """A Spans search body (`POST /api/v2/spans/events/search`: JSON:API wrapped, unlike logs)."""
    start, end = millis(window)
    page: dict[str, Any] = {"limit": limit}
    if cursor:
        page["cursor"] = cursor
    return {
        "data": {
            "type": "search_request",
            "attributes": {
                "filter": {"query": query, "from": start, "to": end},
                "sort": "timestamp" if sort == "asc" else "-timestamp",
                "page": page,
            },
        }
    }


# ----------------------------------------------------------------------------------------------- platform logs

#: Datadog's largest group-by (`limit`): a facet's values beyond it are not listed (the answer says so).
FACET_LIMIT = 10_000


def tag_literal(value: str) -> str:
    """A user's value compared with a tag: as Datadog stores tags (lowercased, commas replaced)."""
    return value.replace(",", "_").lower()


def platform_query(query: PlatformLogsQuery) -> str:
    """Every line (ours and other shippers') but Kubernetes events and audit records, by placement: each
    coordinate a tag clause of alternatives, each label pair an exact element of the labels attribute."""
    clauses = ["-" + term(fields.SOURCE_KEY, fields.EVENTS_SOURCE), "-" + term(fields.SOURCE_KEY, AUDIT_SOURCE)]
    for tag, values in (
        (fields.CLUSTER_NAME, query.clusters),
        (fields.KUBE_NAMESPACE, query.namespaces),
        (fields.POD_NAME, query.pods),
        (fields.CONTAINER_NAME, query.containers),
    ):
        if values:
            clauses.append(any_value(tag, [tag_literal(value) for value in values]))
    clauses += [term(attribute(fields.POD_LABELS), f"{key}={value}") for key, value in query.labels]
    if query.levels:
        clauses.append(any_value(fields.STATUS, level_statuses(query.levels)))
    if query.phrase:
        clauses.append(quoted(query.phrase))
    return conjunction(clauses)


def label_key_clause(key: str) -> str:
    """Lines carrying some value of pod label `key` (a wildcard on the labels attribute, the key escaped)."""
    return f"{attribute(fields.POD_LABELS)}:{wildcard_literal(key + '=')}*"


def facet_body(
    query: str, window: TimeRange, indexes: tuple[str, ...], facet: str, distinct: str = ""
) -> dict[str, Any]:
    """A Logs Aggregate body: lines (or, with `distinct`, distinct values of that facet) per value of `facet`,
    the most first, up to FACET_LIMIT values."""
    start, end = millis(window)
    compute: dict[str, Any] = {"aggregation": "count", "type": "total"}
    if distinct:
        compute = {"aggregation": "cardinality", "metric": distinct, "type": "total"}
    sort: dict[str, Any] = {"type": "measure", "order": "desc"}
    sort.update({key: compute[key] for key in ("aggregation", "metric") if key in compute})
    return {
        "compute": [compute],
        "filter": {"query": query, "from": start, "to": end, "indexes": list(indexes)},
        "group_by": [{"facet": facet, "limit": FACET_LIMIT, "sort": sort}],
    }


# ----------------------------------------------------------------------------------------------- audit


def audit_query(query: AuditQuery) -> str:
    """Audit records (their own source) matching every filter (alternatives within one) and the phrase."""
    clauses = [term(fields.SOURCE_KEY, AUDIT_SOURCE)]
    clauses += [any_value(attribute(fields.AUDIT_ATTRIBUTES[name]), list(values)) for name, values in query.filters]
    if query.phrase:
        clauses.append(quoted(query.phrase))
    return conjunction(clauses)


def datadog_interval(interval_ns: int) -> str:
    """A bucket width as Datadog's `interval` (`1h`, `90s`; milliseconds when not whole seconds)."""
    millis_ = max(1, interval_ns // 1_000_000)
    for unit, size in (("w", 604_800_000), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if millis_ % size == 0:
            return f"{millis_ // size}{unit}"
    return str(millis_)


def distinct_body(query: str, window: TimeRange, indexes: tuple[str, ...], distinct: str) -> dict[str, Any]:
    """A Logs Aggregate body: the number of distinct values of `distinct` among the matches."""
    start, end = millis(window)
    return {
        "compute": [{"aggregation": "cardinality", "metric": distinct, "type": "total"}],
        "filter": {"query": query, "from": start, "to": end, "indexes": list(indexes)},
    }


def timeline_body(
    query: str, window: TimeRange, indexes: tuple[str, ...], interval_ns: int, facet: str, distinct: str
) -> dict[str, Any]:
    """A Logs Aggregate body: distinct `distinct` values per time bucket of `interval_ns`, per value of `facet`."""
    start, end = millis(window)
    return {
        "compute": [
            {
                "aggregation": "cardinality",
                "metric": distinct,
                "type": "timeseries",
                "interval": datadog_interval(interval_ns),
            }
        ],
        "filter": {"query": query, "from": start, "to": end, "indexes": list(indexes)},
        "group_by": [{"facet": facet, "limit": 100}],
    }
