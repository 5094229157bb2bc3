"""Platform logs: every log line the collectors ship, found by where it ran in Kubernetes rather than by which
component wrote it, for platform engineers reading the control plane, system workloads and third-party
controllers (OpenChoreo's `platform-logs` family; field names in http-adapters-notes §3).

And the filter-values companion every facet picker needs: the values one filter can take, with counts, under the
rest of the query. Its rule: the listed filter's own selection is cleared first, so the picker shows the
alternatives to what is chosen and a choice can never be widened by a value the caller did not ask about.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Generic, TypeVar

from domain.model import Identity, SortOrder, TimeRange

Q = TypeVar("Q")

#: Filter names of platform-logs filter values: the request's coordinates, one value per log line each, plus
#: `labels.<key>` for the values of one pod label.
PLATFORM_FILTERS = ("clusterInstance", "namespace", "podName", "containerName", "level")
LABEL_FILTER_PREFIX = "labels."

#: The most values a filter-values answer lists (`maxValues`), and its default.
MAX_FILTER_VALUES, DEFAULT_FILTER_VALUES = 1_000, 100


@dataclass(frozen=True, slots=True)
class PlatformLogsQuery:
    """Lines in `range` whose placement matches every non-empty filter (each a list of alternatives; `labels`
    all of its pairs), containing `phrase`, at one of `levels`."""

    range: TimeRange
    clusters: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()  # Kubernetes namespaces (Identity.pod_namespace)
    pods: tuple[str, ...] = ()
    containers: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()  # sorted by key
    phrase: str = ""
    levels: tuple[str, ...] = ()
    limit: int = 100
    sort: SortOrder = "desc"
    cursor: str = ""


@dataclass(frozen=True, slots=True)
class FilterValuesQuery(Generic[Q]):
    """The values of `filter` among the records `query` selects once that filter's own selection is cleared
    (`without_own_selection` does that; backends receive the query already cleared), those containing
    `value_search` (a case-insensitive substring) only, at most `max_values` of them, most frequent first."""

    query: Q
    filter: str
    value_search: str = ""
    max_values: int = DEFAULT_FILTER_VALUES


@dataclass(frozen=True, slots=True)
class FilterValue:
    value: str
    count: int


@dataclass(slots=True)
class FilterValues:
    """`total_values` is how many distinct values matched, as far as the backend counted: a sense of scale, not a
    guaranteed total (the contract's words)."""

    filter: str
    values: list[FilterValue] = field(default_factory=list)
    total_values: int = 0
    took_ms: int = 0


def label_filter_key(filter_name: str) -> str:
    """The label key of a `labels.<key>` filter, "" for any other filter."""
    return filter_name[len(LABEL_FILTER_PREFIX) :] if filter_name.startswith(LABEL_FILTER_PREFIX) else ""


def platform_filter_value(identity: Identity, level: str, filter_name: str) -> str:
    """What one line contributes to a platform filter: the value a backend that counts in memory counts."""
    key = label_filter_key(filter_name)
    if key:
        return dict(identity.labels).get(key, "")
    values = {
        "clusterInstance": identity.cluster,
        "namespace": identity.pod_namespace,
        "podName": identity.pod,
        "containerName": identity.container,
        "level": level,
    }
    if filter_name not in values:
        raise ValueError(f"unknown platform filter {filter_name!r}")
    return values[filter_name]


def without_own_selection(query: PlatformLogsQuery, filter_name: str) -> PlatformLogsQuery:
    """The query with `filter_name`'s own selection cleared, and no cursor (filter values are not paged)."""
    key = label_filter_key(filter_name)
    if key:
        return replace(query, labels=tuple(pair for pair in query.labels if pair[0] != key), cursor="")
    if filter_name == "clusterInstance":
        return replace(query, clusters=(), cursor="")
    if filter_name == "namespace":
        return replace(query, namespaces=(), cursor="")
    if filter_name == "podName":
        return replace(query, pods=(), cursor="")
    if filter_name == "containerName":
        return replace(query, containers=(), cursor="")
    if filter_name == "level":
        return replace(query, levels=(), cursor="")
    raise ValueError(f"unknown platform filter {filter_name!r}")


def matches_platform(query: PlatformLogsQuery, identity: Identity) -> bool:
    """Whether a line's placement passes the query's coordinate filters (not time, phrase or level): the one
    definition in-memory backends and tests share."""
    if query.clusters and identity.cluster not in query.clusters:
        return False
    if query.namespaces and identity.pod_namespace not in query.namespaces:
        return False
    if query.pods and identity.pod not in query.pods:
        return False
    if query.containers and identity.container not in query.containers:
        return False
    if query.labels:
        labels = dict(identity.labels)
        return all(labels.get(key) == value for key, value in query.labels)
    return True
