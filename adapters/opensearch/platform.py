"""Platform logs as query DSL: every line in the logs indices, found by Kubernetes placement (domain/platform.py)
rather than by component. Pure functions.

Each coordinate is a `terms` filter on the keyword Fluent Bit's kubernetes filter writes (the cluster on the
top-level `cluster_name` a `record_modifier` adds), each label a `term` on `kubernetes.labels.<dedotted key>`;
user input reaches the DSL only as term values, and the phrase and levels as the component-logs search has them
(queries.py). Pages come from the same (timestamp, `_id`) machinery as component logs (timeline.py).
"""

from __future__ import annotations

from typing import Any

from adapters.opensearch import facets, fields, queries, timeline
from domain.platform import FilterValuesQuery, PlatformLogsQuery, label_filter_key

#: The field each coordinate filter (and filter-values name but `labels.<key>`) reads.
PLATFORM_FIELDS = {
    "clusterInstance": fields.LOG_CLUSTER,
    "namespace": fields.LOG_POD_NAMESPACE,
    "podName": fields.LOG_POD,
    "containerName": fields.LOG_CONTAINER,
    "level": fields.LOG_LEVEL,
}


def filter_field(filter_name: str) -> str:
    """The document field a filter-values name counts: a label's dedotted path, or a coordinate's keyword."""
    key = label_filter_key(filter_name)
    if key:
        return fields.log_label(key)
    if filter_name not in PLATFORM_FIELDS:
        raise ValueError(f"unknown platform filter {filter_name!r}")
    return PLATFORM_FIELDS[filter_name]


def platform_filters(query: PlatformLogsQuery) -> list[queries.Clause]:
    """The `bool.filter` clauses of a platform-logs query: time, coordinates, labels, phrase, levels."""
    filters = [queries.time_range(fields.TIMESTAMP, query.range)]
    for name, wanted in (
        ("clusterInstance", query.clusters),
        ("namespace", query.namespaces),
        ("podName", query.pods),
        ("containerName", query.containers),
    ):
        if wanted:
            filters.append({"terms": {PLATFORM_FIELDS[name]: list(wanted)}})
    filters += [queries.term(fields.log_label(key), value) for key, value in query.labels]
    if query.phrase:
        filters.append(queries.contains(fields.LOG_BODY, query.phrase))
    if query.levels:
        filters.append(queries.level_clause(query.levels))
    return filters


def platform_timeline(query: PlatformLogsQuery, after: tuple[int, str] | None = None) -> timeline.Timeline:
    return timeline.Timeline(platform_filters(query), [], query.sort, query.limit, after=after)


def filter_values_body(query: FilterValuesQuery[PlatformLogsQuery]) -> dict[str, Any]:
    """Counts of `query.filter`'s values among the lines `query.query` selects (its own selection already
    cleared by the caller)."""
    return {
        "size": 0,
        "track_total_hits": False,
        "query": {"bool": {"filter": platform_filters(query.query)}},
        "aggs": facets.values_aggs(filter_field(query.filter), query.value_search, query.max_values),
    }
