"""Platform logs over the logs-adapter contract, both ways: `POST /api/v1alpha1/platform-logs/query` and
`/api/v1alpha1/platform-logs/filter-values` (OpenChoreo's `PlatformLogsQueryRequest`, `PlatformLogsResponse`,
`PlatformLogFilterValuesRequest`, `PlatformLogFilterValuesResponse`; field names as OpenChoreo's generated
adapter code has them, http-adapters-notes §3).

Extensions, as for component logs (wire.py): `cursor` in the request and `nextCursor` in the answer (our
paging); on each line `traceId`, `spanId` and a `metadata` object with the line's OpenChoreo scope (the
component logs' `metadata`), so a component's line read as a platform line keeps its whole identity; the
filters `level` and `labels.<key>` besides the contract's four. A foreign adapter never sends the extensions
and refuses the extra filters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from adapters.http_contract.strict import Reader, RequestInvalid, valid_label_key
from adapters.http_contract.wire import identity_metadata, identity_of
from domain.loglevel import API_LEVELS
from domain.model import LogRecord, Page, TimeRange
from domain.platform import (
    MAX_FILTER_VALUES,
    PLATFORM_FILTERS,
    FilterValue,
    FilterValues,
    FilterValuesQuery,
    PlatformLogsQuery,
    label_filter_key,
)
from domain.timeutil import format_rfc3339, parse_rfc3339

#: The contract's largest page (as for component logs).
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
_COORDINATES = (
    ("clusterInstance", "clusters"),
    ("namespace", "namespaces"),
    ("podName", "pods"),
    ("containerName", "containers"),
)
#: Where a line ran, by the contract's names on a PlatformLog.
_PLACEMENT = (
    ("clusterInstance", "cluster"),
    ("namespaceName", "pod_namespace"),
    ("podName", "pod"),
    ("containerName", "container"),
    ("podIp", "pod_ip"),
    ("nodeName", "node"),
    ("containerImage", "image"),
)
#: What `metadata` carries besides: the OpenChoreo scope (the placement travels in the contract's fields).
_SCOPE_KEYS = frozenset(
    {"componentName", "projectName", "environmentName", "namespaceName", "componentUid", "projectUid"}
    | {"environmentUid", "workflowRunName", "taskName"}
)


# ----------------------------------------------------------------------------------------------- the query


def platform_request(query: PlatformLogsQuery) -> dict[str, Any]:
    body: dict[str, Any] = {
        "startTime": format_rfc3339(query.range.start_ns),
        "endTime": format_rfc3339(query.range.end_ns),
    }
    for key, attr in _COORDINATES:
        if getattr(query, attr):
            body[key] = list(getattr(query, attr))
    if query.labels:
        body["labels"] = dict(query.labels)
    if query.phrase:
        body["searchPhrase"] = query.phrase
    if query.levels:
        body["logLevels"] = list(dict.fromkeys(query.levels))
    body["limit"] = query.limit
    body["sortOrder"] = query.sort
    if query.cursor:
        body["cursor"] = query.cursor
    return body


def read_platform_query(reader: Reader) -> PlatformLogsQuery:
    """A PlatformLogsQueryRequest, strictly: RequestInvalid names what is wrong."""
    start, end = reader.window()
    coordinates = {attr: reader.texts(key) for key, attr in _COORDINATES}
    query = PlatformLogsQuery(
        range=TimeRange(start, end),
        labels=reader.labels("labels"),
        phrase=reader.text("searchPhrase"),
        levels=reader.texts("logLevels", API_LEVELS),
        limit=reader.integer("limit", 1, MAX_LIMIT, DEFAULT_LIMIT),
        sort=reader.choice("sortOrder", ("asc", "desc"), "desc"),  # type: ignore[arg-type]
        cursor=reader.text("cursor"),
        **coordinates,
    )
    reader.done()
    return query


def parse_platform_request(body: Any) -> PlatformLogsQuery:
    return read_platform_query(Reader(body))


# ----------------------------------------------------------------------------------------------- the answer


def platform_log(record: LogRecord) -> dict[str, Any]:
    identity = record.identity
    entry: dict[str, Any] = {"timestamp": format_rfc3339(record.ts_ns), "log": record.body}
    if record.level:
        entry["level"] = record.level
    entry.update({key: getattr(identity, attr) for key, attr in _PLACEMENT if getattr(identity, attr)})
    if identity.labels:
        entry["labels"] = dict(identity.labels)
    # The contract's own `namespaceName` is the Kubernetes namespace; metadata's is OpenChoreo's, as on a
    # component line.
    scope = {key: value for key, value in identity_metadata(identity).items() if key in _SCOPE_KEYS}
    if scope:
        entry["metadata"] = scope
    entry.update({key: value for key, value in (("traceId", record.trace_id), ("spanId", record.span_id)) if value})
    return entry


def parse_platform_log(entry: Mapping[str, Any]) -> LogRecord:
    metadata = entry.get("metadata") if isinstance(entry.get("metadata"), Mapping) else {}
    assert isinstance(metadata, Mapping)
    scope = identity_of({key: value for key, value in metadata.items() if key in _SCOPE_KEYS})
    labels = entry.get("labels") if isinstance(entry.get("labels"), Mapping) else {}
    assert isinstance(labels, Mapping)
    placement = {attr: entry.get(key) for key, attr in _PLACEMENT}
    identity = replace(
        scope,
        **{attr: value for attr, value in placement.items() if isinstance(value, str)},
        labels=tuple(sorted((str(key), str(value)) for key, value in labels.items())),
    )
    return LogRecord(
        ts_ns=parse_rfc3339(str(entry["timestamp"])),
        body=str(entry.get("log") or ""),
        identity=identity,
        level=str(entry.get("level") or ""),
        trace_id=str(entry.get("traceId") or ""),
        span_id=str(entry.get("spanId") or ""),
    )


def platform_response(page: Page[LogRecord]) -> dict[str, Any]:
    body: dict[str, Any] = {"logs": [platform_log(record) for record in page.items], "total": page.total}
    body["tookMs"] = page.took_ms
    if page.next_cursor:
        body["nextCursor"] = page.next_cursor
    return body


def parse_platform_response(body: Any) -> Page[LogRecord]:
    """ValueError (or KeyError, TypeError) when the answer is not a PlatformLogsResponse."""
    if not isinstance(body, Mapping) or not isinstance(body.get("logs"), list):
        raise ValueError("a PlatformLogsResponse has a `logs` list")
    logs = [parse_platform_log(entry) for entry in body["logs"]]
    return Page(logs, int(body.get("total") or 0), int(body.get("tookMs") or 0), str(body.get("nextCursor") or ""))


# ----------------------------------------------------------------------------------------------- filter values


def known_platform_filter(name: str) -> bool:
    key = label_filter_key(name)
    return name in PLATFORM_FILTERS or (bool(key) and valid_label_key(key))


def platform_values_request(query: FilterValuesQuery[PlatformLogsQuery]) -> dict[str, Any]:
    body: dict[str, Any] = {"query": platform_request(replace(query.query, cursor="")), "filter": query.filter}
    if query.value_search:
        body["valueSearch"] = query.value_search
    body["maxValues"] = query.max_values
    return body


def parse_platform_values_request(body: Any) -> FilterValuesQuery[PlatformLogsQuery]:
    """The request as it came (its filter's own selection NOT cleared yet: the caller does that)."""
    reader = Reader(body)
    name = reader.text("filter")
    if not known_platform_filter(name):
        raise RequestInvalid(f"filter must be one of {', '.join(PLATFORM_FILTERS)} or labels.<a Kubernetes label key>")
    inner = reader.object("query")
    if inner is None:
        raise RequestInvalid("query is required: the platform logs query the values are listed under")
    query = read_platform_query(inner)  # its limit and sortOrder are read (typed) and otherwise ignored
    values = FilterValuesQuery(
        query,
        name,
        reader.text("valueSearch"),
        reader.integer("maxValues", 1, MAX_FILTER_VALUES, 100),
    )
    reader.done()
    return values


def filter_values_response(values: FilterValues) -> dict[str, Any]:
    return {
        "filter": values.filter,
        "values": [{"value": each.value, "count": each.count} for each in values.values],
        "totalValues": values.total_values,
        "tookMs": values.took_ms,
    }


def parse_filter_values_response(body: Any) -> FilterValues:
    if not isinstance(body, Mapping) or not isinstance(body.get("values"), list):
        raise ValueError("a filter-values answer has a `values` list")
    values = [FilterValue(str(item["value"]), int(item["count"])) for item in body["values"]]
    return FilterValues(
        str(body.get("filter") or ""), values, int(body.get("totalValues") or 0), int(body.get("tookMs") or 0)
    )
