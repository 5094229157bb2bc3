"""Observer queries as OpenSearch query DSL. Pure functions: a query in, a request body out.

Every condition is a `bool.filter` clause (no scoring, cacheable). User input reaches the DSL only as a `term`
value, a range bound, or a wildcard pattern built by `wildcard_literal`, which escapes the wildcard syntax, so
a phrase is always a literal substring. The semantics match the embedded backend's, clause for clause:

- component scopes match the namespace label and the UIDs given, and leave out workflow pods;
- workflow scopes match the run's label exactly and the task as a substring of the Argo node name, and leave
  out Argo's `init` and `wait` containers;
- time ranges are inclusive at both ends, to the nanosecond (`date_nanos`);
- a level filter matches the parsed `level` field, and on documents without one (Fluent Bit writes none)
  a case-insensitive level word in the raw line, as OpenChoreo's adapter does.
"""

from __future__ import annotations

from typing import Any

from adapters.opensearch import fields
from domain.loglevel import stored_levels
from domain.model import TOTAL_CAP, ComponentScope, Scope, SortOrder, TimeRange, WorkflowScope
from domain.timeutil import format_rfc3339_exact

Clause = dict[str, Any]

WORKFLOW_SIDECARS = ("init", "wait")


def wildcard_literal(text: str) -> str:
    """`text` with `\\`, `*` and `?` escaped, so it matches only itself inside a wildcard pattern."""
    return text.replace("\\", "\\\\").replace("*", "\\*").replace("?", "\\?")


_REGEXP_RESERVED = frozenset('.?+*|{}[]()"\\#@&<>~')


def regexp_literal(text: str) -> str:
    """`text` with every Lucene regular-expression operator escaped."""
    return "".join("\\" + char if char in _REGEXP_RESERVED else char for char in text)


def contains(field: str, text: str, case_insensitive: bool = False) -> Clause:
    """`text` anywhere in the field, literally. OpenSearch's wildcard field misreads an escaped backslash
    right before the closing `*` (`*a\\\\*` matches nothing), so such text goes as a regular expression."""
    if text.endswith("\\"):
        value: dict[str, Any] = {"value": f".*{regexp_literal(text)}.*"}
        kind = "regexp"
    else:
        value = {"value": f"*{wildcard_literal(text)}*"}
        kind = "wildcard"
    if case_insensitive:
        value["case_insensitive"] = True
    return {kind: {field: value}}


def term(field: str, value: str) -> Clause:
    return {"term": {field: value}}


def any_of(*clauses: Clause) -> Clause:
    return {"bool": {"should": list(clauses), "minimum_should_match": 1}}


def time_range(field: str, window: TimeRange) -> Clause:
    return {
        "range": {field: {"gte": format_rfc3339_exact(window.start_ns), "lte": format_rfc3339_exact(window.end_ns)}}
    }


def time_sort(field: str, order: SortOrder, tiebreaker: str = "") -> list[Clause]:
    """Newest or oldest first; with a tiebreaker, a unique order (pages are exact without one: timeline.py).
    `numeric_type` lets indices mapped `date` (OpenChoreo's) and `date_nanos` (ours) sort together."""
    sort: list[Clause] = [{field: {"order": order, "numeric_type": "date_nanos"}}]
    if tiebreaker:
        sort.append({tiebreaker: {"order": order}})
    return sort


def instant(field: str, ts_ns: int) -> Clause:
    """Documents of exactly this instant (inclusive bounds at the same nanosecond)."""
    moment = format_rfc3339_exact(ts_ns)
    return {"range": {field: {"gte": moment, "lte": moment}}}


def search_body(filters: list[Clause], must_not: list[Clause], sort: list[Clause], size: int) -> dict[str, Any]:
    query: dict[str, Any] = {"filter": filters}
    if must_not:
        query["must_not"] = must_not
    return {"query": {"bool": query}, "sort": sort, "size": size, "track_total_hits": TOTAL_CAP}


# ----------------------------------------------------------------------------------------------- logs


def _scope_clauses(
    scope: Scope,
    namespace_field: str,
    uid_fields: dict[str, str],
    run_fields: tuple[str, ...],
    task_field: str,
    workflow_namespace_field: str,
) -> tuple[list[Clause], list[Clause]]:
    """(filter, must_not) for a scope, given where a signal keeps each key."""
    if isinstance(scope, ComponentScope):
        filters = [term(namespace_field, scope.namespace)]
        filters += [term(field, getattr(scope, attr)) for attr, field in uid_fields.items() if getattr(scope, attr)]
        return filters, [{"exists": {"field": field}} for field in run_fields]
    assert isinstance(scope, WorkflowScope)
    # Workflow pods run in `workflows-<namespace>` and may not carry the namespace label.
    filters = [
        any_of(term(namespace_field, scope.namespace), term(workflow_namespace_field, f"workflows-{scope.namespace}"))
    ]
    filters.append(any_of(*({"exists": {"field": field}} for field in run_fields)))
    if scope.workflow_run:
        filters.append(any_of(*(term(field, scope.workflow_run) for field in run_fields)))
    if scope.task:
        filters.append(contains(task_field, scope.task))
    return filters, []


def log_filters(
    scope: Scope, time_clause: Clause, levels: tuple[str, ...] = (), phrase: str = "", trace_id: str = ""
) -> tuple[list[Clause], list[Clause]]:
    """(filter, must_not) for logs of a scope in a time range with the given levels, phrase and trace: shared by
    the log search, the exact count and the alerting monitor (whose time range is a mustache expression)."""
    filters, must_not = _scope_clauses(
        scope, fields.LOG_NAMESPACE, fields.LOG_UIDS, fields.LOG_WORKFLOW_RUN, fields.LOG_TASK, fields.LOG_POD_NAMESPACE
    )
    if isinstance(scope, WorkflowScope):
        must_not = [term(fields.LOG_CONTAINER, name) for name in WORKFLOW_SIDECARS]
    filters.append(time_clause)
    if trace_id:
        filters.append(term(fields.TRACE_ID, trace_id))
    if phrase:
        filters.append(contains(fields.LOG_BODY, phrase))
    if levels:
        filters.append(level_clause(levels))
    return filters, must_not


def level_clause(levels: tuple[str, ...]) -> Clause:
    """Lines at one of `levels`: the parsed `level`, or on documents without one (Fluent Bit's) a level word in
    the raw line, case-insensitively."""
    stored = list(stored_levels(levels))
    unparsed = {
        "bool": {
            "must_not": [{"exists": {"field": fields.LOG_LEVEL}}],
            "filter": [any_of(*(contains(fields.LOG_BODY, level, True) for level in stored))],
        }
    }
    return any_of({"terms": {fields.LOG_LEVEL: stored}}, unparsed)


def logs_count_body(
    scope: Scope, window: TimeRange, levels: tuple[str, ...] = (), phrase: str = "", trace_id: str = ""
) -> dict[str, Any]:
    """A `_count` body: the same clauses as the log search, so the count is exactly what a search would match."""
    filters, must_not = log_filters(scope, time_range(fields.TIMESTAMP, window), levels, phrase, trace_id)
    query: dict[str, Any] = {"filter": filters}
    if must_not:
        query["must_not"] = must_not
    return {"query": {"bool": query}}


# ----------------------------------------------------------------------------------------------- events


def event_filters(scope: Scope, window: TimeRange) -> tuple[list[Clause], list[Clause]]:
    """(filter, must_not) for Kubernetes events of a scope in a time range."""
    filters, must_not = _scope_clauses(
        scope,
        fields.EVENT_NAMESPACE,
        fields.EVENT_UIDS,
        fields.EVENT_WORKFLOW_RUN,
        fields.EVENT_TASK,
        fields.EVENT_OBJECT_NAMESPACE,
    )
    filters.append(time_range(fields.TIMESTAMP, window))
    return filters, must_not


# ----------------------------------------------------------------------------------------------- traces


def span_filters(scope: ComponentScope, window: TimeRange) -> list[Clause]:
    """Spans of the scope lying wholly inside the window."""
    filters = [term(fields.SPAN_NAMESPACE, scope.namespace)]
    filters += [term(field, getattr(scope, attr)) for attr, field in fields.SPAN_UIDS.items() if getattr(scope, attr)]
    filters.append({"range": {fields.START_TIME: {"gte": format_rfc3339_exact(window.start_ns)}}})
    filters.append({"range": {fields.END_TIME: {"lte": format_rfc3339_exact(window.end_ns)}}})
    return filters


def matched_traces_body(scope: ComponentScope, window: TimeRange, sort: SortOrder, limit: int) -> dict[str, Any]:
    """Phase one of the trace list: the traces with a span in the scope and window, ordered by when they
    first entered the scope (their earliest such span, to the millisecond: `min` aggregates milliseconds),
    then by trace id; and how many there are (exact below the cap)."""
    order = {"first_seen": sort}
    return {
        "size": 0,
        "query": {"bool": {"filter": span_filters(scope, window)}},
        "aggs": {
            "total": {"cardinality": {"field": fields.TRACE_ID, "precision_threshold": TOTAL_CAP * 3}},
            "traces": {
                "terms": {
                    "field": fields.TRACE_ID,
                    "size": limit,
                    "shard_size": max(limit * 10, 500),
                    "order": [order, {"_key": sort}],
                },
                "aggs": {"first_seen": {"min": {"field": fields.START_TIME}}},
            },
        },
    }


def trace_summaries_body(trace_ids: list[str]) -> dict[str, Any]:
    """Phase two: each trace summarised over all its spans, wherever they are."""
    root_fields = [fields.SPAN_ID, fields.SPAN_NAME, fields.SPAN_KIND, fields.START_TIME]
    return {
        "size": 0,
        "query": {"bool": {"filter": [{"terms": {fields.TRACE_ID: trace_ids}}]}},
        "aggs": {
            "traces": {
                "terms": {"field": fields.TRACE_ID, "size": len(trace_ids)},
                "aggs": {
                    # top_hits, not min/max: those aggregate doubles of milliseconds and lose the nanoseconds.
                    "latest": {
                        "top_hits": {
                            "size": 1,
                            "sort": [{fields.END_TIME: {"order": "desc", "numeric_type": "date_nanos"}}],
                            "_source": [fields.END_TIME],
                        }
                    },
                    "errors": {
                        "filter": {"term": {fields.SPAN_STATUS_CODE: {"value": "error", "case_insensitive": True}}}
                    },
                    "root": {
                        "filter": {"term": {fields.PARENT_SPAN_ID: ""}},
                        "aggs": {
                            "first": {"top_hits": {"size": 1, "sort": _span_order("asc"), "_source": root_fields}}
                        },
                    },
                    "earliest": {"top_hits": {"size": 1, "sort": _span_order("asc"), "_source": root_fields}},
                },
            }
        },
    }


def _span_order(sort: SortOrder) -> list[Clause]:
    return [{fields.START_TIME: {"order": sort, "numeric_type": "date_nanos"}}, {fields.SPAN_ID: {"order": sort}}]


def spans_body(trace_id: str, scope: ComponentScope, window: TimeRange, sort: SortOrder, limit: int) -> dict[str, Any]:
    return search_body([term(fields.TRACE_ID, trace_id), *span_filters(scope, window)], [], _span_order(sort), limit)


def span_body(trace_id: str, span_id: str) -> dict[str, Any]:
    return {"size": 1, "query": {"bool": {"filter": [term(fields.TRACE_ID, trace_id), term(fields.SPAN_ID, span_id)]}}}
