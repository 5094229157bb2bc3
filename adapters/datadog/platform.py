"""Platform logs from Datadog: every line by where it ran (domain/platform.py), and the values of one filter.

Lines are found by the tags Datadog's Kubernetes integration puts on them (fields.py: `kube_cluster_name`,
`kube_namespace`, `pod_name`, `kube_container_name`) and by the pod-labels attribute our intake writes, through
Logs Search with the same paging, cursor and capped total as component logs (backend.py `logs_page`).

Filter values are one Logs Aggregate request: lines per value of the filter's facet (fields.PLATFORM_FACETS; a
`labels.<key>` filter groups the labels attribute among the lines carrying that key), at most
query.FACET_LIMIT values, Datadog's largest group-by. `value_search` (a case-insensitive substring), the order
(most lines first, then value) and `max_values` are applied here to what Datadog answered; `total_values` counts
the values that matched among those listed, a lower bound when Datadog had more (the caller is told by a
warning). The `level` filter counts Datadog's statuses as the levels they read back as (fields.STATUS_LEVEL).

Where Datadog's semantics differ from the contract's (tag values are lowercased, so cluster, namespace, pod and
container values are matched and listed lowercased; the phrase is Datadog's case-insensitive full-text search;
times are kept to the millisecond), the contract suite names the difference.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from adapters.cursor import fingerprint
from adapters.datadog import fields, records
from adapters.datadog import query as dq
from adapters.protocols import pass_on_warning
from domain.model import LogRecord, Page
from domain.platform import FilterValue, FilterValues, FilterValuesQuery, PlatformLogsQuery, label_filter_key

if TYPE_CHECKING:
    from adapters.datadog.backend import DatadogBackend


async def query_platform_logs(backend: DatadogBackend, query: PlatformLogsQuery) -> Page[LogRecord]:
    key = fingerprint(
        "datadog-platform",
        query.range,
        query.sort,
        query.clusters,
        query.namespaces,
        query.pods,
        query.containers,
        query.labels,
        query.levels,
        query.phrase,
    )
    return await backend.logs_page(
        dq.platform_query(query), query.range, query.sort, query.limit, query.cursor, key, records.log_from_event
    )


async def platform_filter_values(backend: DatadogBackend, query: FilterValuesQuery[PlatformLogsQuery]) -> FilterValues:
    started = time.monotonic()
    search = dq.platform_query(query.query)
    label = label_filter_key(query.filter)
    if label:
        facet = dq.attribute(fields.POD_LABELS)
        search = dq.conjunction([search, dq.label_key_clause(label)])
    elif query.filter in fields.PLATFORM_FACETS:
        facet = fields.PLATFORM_FACETS[query.filter]
    else:
        raise ValueError(f"unknown platform filter {query.filter!r}")
    body = dq.facet_body(search, query.query.range, backend.indexes, facet)
    buckets = await backend.aggregate_buckets(body, "listing filter values")
    counted: Counter[str] = Counter()
    for bucket in buckets:
        value, count = _bucket_value(bucket, facet), _bucket_count(bucket)
        if label:
            pair_key, _, value = value.partition("=")
            if pair_key != label:
                continue
        elif query.filter == "level":
            value = fields.STATUS_LEVEL.get(value.lower(), "")
        if value:
            counted[value] += count
    if len(buckets) >= dq.FACET_LIMIT:
        pass_on_warning(f"{query.filter}: Datadog listed its first {dq.FACET_LIMIT} values only")
    return ranked(query.filter, counted, query.value_search, query.max_values, started)


def ranked(name: str, counted: Counter[str], value_search: str, max_values: int, started: float) -> FilterValues:
    """The contract's answer from counts per value: those containing `value_search` (case-insensitively), most
    frequent first then value, at most `max_values`; `total_values` all that matched."""
    wanted = value_search.lower()
    matching = [(value, count) for value, count in counted.items() if wanted in value.lower() and count > 0]
    matching.sort(key=lambda item: (-item[1], item[0]))
    values = [FilterValue(value, count) for value, count in matching[:max_values]]
    return FilterValues(name, values, len(matching), round((time.monotonic() - started) * 1000))


def _bucket_value(bucket: Any, facet: str) -> str:
    value = (bucket.get("by") or {}).get(facet)
    return "" if value is None or isinstance(value, (dict, list)) else str(value)


def _bucket_count(bucket: Any) -> int:
    value = (bucket.get("computes") or {}).get("c0", 0)
    return int(value) if isinstance(value, int | float) else 0
