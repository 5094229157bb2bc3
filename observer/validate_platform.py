"""Checking a platform-logs request (and its filter-values companion) into the domain query, or a 400 naming
the field to fix.

The order: the form (unknown fields, text), then what the adapters check (end after start, label keys valid
Kubernetes label keys), then the bounds the component logs keep (30 days, limit 1..1000, phrase length, levels),
then our own bounds (how many alternatives, how long a name). There is no scope to resolve: the query names
Kubernetes coordinates, and authorization is cluster-wide (observer/service.py), so the domain query comes
straight out of here.
"""

from __future__ import annotations

import re
from dataclasses import replace

from domain.echo import shown
from domain.platform import (
    DEFAULT_FILTER_VALUES,
    LABEL_FILTER_PREFIX,
    MAX_FILTER_VALUES,
    PLATFORM_FILTERS,
    FilterValuesQuery,
    PlatformLogsQuery,
    label_filter_key,
)
from observer.errors import bad_request
from observer.strict_form import check_form
from observer.validation import (
    MAX_NAME_CHARS,
    log_levels,
    plain_limit,
    search_phrase,
    sort_order,
    time_range,
)
from observer.wire_platform import (
    MAX_FILTER_ITEMS,
    MAX_LABELS,
    MAX_VALUE_SEARCH_CHARS,
    PlatformFilterValuesRequest,
    PlatformLogsQueryRequest,
)

ENDPOINT = "platform logs"

# A Kubernetes label key: an optional DNS-subdomain prefix and `/`, then a name of at most 63 characters,
# alphanumeric at both ends with `-`, `_`, `.` between (apimachinery's IsQualifiedName).
_LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")


def valid_label_key(key: str) -> bool:
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix)):
        return False
    return bool(_LABEL_NAME.fullmatch(name))


def label_key(field: str, key: str) -> str:
    if not valid_label_key(key):
        raise bad_request(
            f"{field}: '{shown(key)}' is not a valid Kubernetes label key (an optional DNS subdomain prefix and '/',"
            " then at most 63 letters, digits, '-', '_' or '.', beginning and ending with a letter or digit)"
        )
    return key


def _labels(values: dict[str, str] | None) -> tuple[tuple[str, str], ...]:
    values = values or {}
    if len(values) > MAX_LABELS:
        raise bad_request(f"labels has {len(values)} pairs; at most {MAX_LABELS} are allowed")
    for key, value in values.items():
        label_key("labels", key)
        if not _LABEL_VALUE.fullmatch(value):
            raise bad_request(
                f"labels.{shown(key)}: '{shown(value)}' is not a valid Kubernetes label value (at most 63 letters,"
                " digits, '-', '_' or '.', beginning and ending with a letter or digit)"
            )
    return tuple(sorted(values.items()))


def _alternatives(field: str, values: list[str] | None) -> tuple[str, ...]:
    values = [value.strip() for value in values or []]
    if len(values) > MAX_FILTER_ITEMS:
        raise bad_request(f"{field} has {len(values)} values; at most {MAX_FILTER_ITEMS} are allowed")
    for index, value in enumerate(values):
        if not value:
            raise bad_request(f"{field}[{index}] is empty; leave the value out to match every one")
        if len(value) > MAX_NAME_CHARS:
            raise bad_request(f"{field}[{index}] is {len(value)} characters long; names are at most {MAX_NAME_CHARS}")
    return tuple(dict.fromkeys(values))


def platform_query(body: PlatformLogsQueryRequest, *, paged: bool = True) -> PlatformLogsQuery:
    """The checked query. With `paged` False (filter values), `limit`, `sortOrder` and `cursor` are ignored, not
    checked: the adapters' rule, so a picker may send its list query unchanged."""
    window = time_range(body.startTime, body.endTime)
    labels = _labels(body.labels)
    query = PlatformLogsQuery(
        range=window,
        clusters=_alternatives("clusterInstance", body.clusterInstance),
        namespaces=_alternatives("namespace", body.namespace),
        pods=_alternatives("podName", body.podName),
        containers=_alternatives("containerName", body.containerName),
        labels=labels,
        phrase=search_phrase(body.searchPhrase),
        levels=log_levels(body.logLevels),
    )
    if not paged:
        return query
    return replace(query, limit=plain_limit(body.limit), sort=sort_order(body.sortOrder), cursor=body.cursor or "")


def validate_platform_logs(body: PlatformLogsQueryRequest) -> PlatformLogsQuery:
    check_form(body, ENDPOINT)
    return platform_query(body)


def max_values(value: int | None) -> int:
    if not value:
        return DEFAULT_FILTER_VALUES
    if not 1 <= value <= MAX_FILTER_VALUES:
        raise bad_request(f"maxValues must be a whole number from 1 to {MAX_FILTER_VALUES}")
    return value


def value_search(value: str | None) -> str:
    value = value or ""
    if len(value) > MAX_VALUE_SEARCH_CHARS:
        raise bad_request(f"valueSearch is {len(value)} characters long; at most {MAX_VALUE_SEARCH_CHARS} are allowed")
    return value


def platform_filter(name: str | None) -> str:
    if not name:
        raise bad_request(f"filter is required: one of {', '.join(PLATFORM_FILTERS)}, or {LABEL_FILTER_PREFIX}<key>")
    if name in PLATFORM_FILTERS:
        return name
    if name.startswith(LABEL_FILTER_PREFIX):
        label_key("filter", label_filter_key(name))
        return name
    raise bad_request(
        f"filter '{shown(name)}' is not a platform-logs filter; use one of {', '.join(PLATFORM_FILTERS)}, or"
        f" {LABEL_FILTER_PREFIX}<key> for the values of one pod label"
    )


def validate_platform_filter_values(body: PlatformFilterValuesRequest) -> FilterValuesQuery[PlatformLogsQuery]:
    """The filter-values question, its query NOT yet cleared of the filter's own selection: the service clears
    it (domain.platform.without_own_selection), so every way in gets the rule from one place."""
    check_form(body, ENDPOINT)
    if body.query is None:
        raise bad_request("query is required: the platform-logs query whose values to list")
    query = platform_query(body.query, paged=False)
    return FilterValuesQuery(
        query=query,
        filter=platform_filter(body.filter),
        value_search=value_search(body.valueSearch),
        max_values=max_values(body.maxValues),
    )
