"""Monitors: the v1 CRUD, list filters and validation the reconciler relies on, checked as Datadog checks them.

A monitor's query must parse for its type (the grammars in the create_monitor docs): a `log alert` is
`logs("<search>").index("<i>").rollup("count"|"avg"|"cardinality"[, "<measure>"])[.by("<facet>",...)]
.last("<n>m"|"<n>h") <op> <number>` with a search this fake can parse and a window of 1..2880 minutes or
1..48 hours; a `query alert` is `<time_aggr>(last_<n><m|h|d|w>):<metric expression> <op> <number>` whose
metric parts parse as timeseries queries, joined by arithmetic. In both, `options.thresholds.critical` (when
given) must equal the number in the query. Other types are stored unchecked.

Answers carry what Datadog adds: `id`, `created`, `modified`, `creator`, `overall_state` ("No Data" until
evaluated), `multi`, `deleted: null`, and default options, so a reconciler that compares what it wrote with
what it reads must ignore server-filled fields, as against the real thing.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from devservers.datadog.metrics import parse_query as parse_metric_query
from devservers.datadog.models import BadRequest
from devservers.datadog.query import QueryError, compile_query
from devservers.datadog.store import Store

CREATOR = {"email": "fake@datadog.invalid", "handle": "fake@datadog.invalid", "name": "Datadog Fake"}
DEFAULT_OPTIONS = {"notify_no_data": False, "notify_audit": False, "include_tags": True, "silenced": {}}

_STR = r'"((?:[^"\\]|\\.)*)"'
_LOG = re.compile(
    rf"logs\({_STR}\)\.index\({_STR}(?:\s*,\s*{_STR})*\)"
    rf'\.rollup\("(count|avg|cardinality)"(?:\s*,\s*{_STR})?\)'
    rf"(?:\.by\({_STR}(?:\s*,\s*{_STR})*\))?"
    rf'\.last\("(\d+)([mh])"\)\s*(>=|<=|>|<|==|!=)\s*(-?\d+(?:\.\d+)?)\s*',
    re.DOTALL,
)
_METRIC = re.compile(
    r"\s*(avg|sum|max|min|change|pct_change)\(last_(\d+)([mhdw])\):(.+?)\s*(>=|<=|>|<|==|!=)\s*(-?\d+(?:\.\d+)?)\s*"
)
_METRIC_PART = re.compile(
    r"(?:avg|sum|min|max):[A-Za-z0-9_.]+\{[^}]*\}(?:\s+by\s+\{[^}]*\})?(?:\.rollup\([^)]*\))?(?:\.as_(?:count|rate)\(\))?"
)
_WINDOW_LIMITS = {"m": 2880, "h": 48}
_METRIC_WINDOW_LIMITS = {"m": 10080, "h": 168, "d": 7, "w": 1}


def _invalid(reason: str) -> BadRequest:
    return BadRequest(f"The value provided for parameter 'query' is invalid: {reason}")


def check(monitor: dict[str, Any]) -> None:
    """BadRequest unless the monitor's query parses for its type and agrees with its critical threshold."""
    kind, query = monitor.get("type"), monitor.get("query")
    if not kind:
        raise BadRequest("Missing required field 'type'")
    if not query:
        raise BadRequest("Missing required field 'query'")
    if kind == "log alert":
        match = _LOG.fullmatch(query)
        if match is None:
            raise _invalid("not a log alert query")
        search = re.sub(r"\\(.)", r"\1", match.group(1))
        try:
            compile_query(search)
        except QueryError as error:
            raise _invalid(f"log search: {error}") from None
        amount, unit, number = int(match.group(8)), match.group(9), match.group(11)
        if not 1 <= amount <= _WINDOW_LIMITS[unit]:
            raise _invalid(f"window {amount}{unit} out of range")
    elif kind == "query alert":
        match = _METRIC.fullmatch(query)
        if match is None:
            raise _invalid("not a metric alert query")
        amount, unit, expression, number = int(match.group(2)), match.group(3), match.group(4), match.group(6)
        if not 1 <= amount <= _METRIC_WINDOW_LIMITS[unit]:
            raise _invalid(f"window last_{amount}{unit} out of range")
        parts = _METRIC_PART.findall(expression)
        if not parts or re.fullmatch(r"[\s()+\-*/0-9.]*", _METRIC_PART.sub("", expression)) is None:
            raise _invalid("metric expression")
        for part in parts:
            parse_metric_query(part)
    else:
        return
    critical = ((monitor.get("options") or {}).get("thresholds") or {}).get("critical")
    if critical is not None and float(critical) != float(number):
        raise BadRequest("Alert threshold (critical) does not match that used in the query")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def create(store: Store, body: dict[str, Any]) -> dict[str, Any]:
    check(body)
    now = _now()
    query = body["query"]
    monitor: dict[str, Any] = {
        "name": "",
        "message": "",
        "tags": [],
        "priority": None,
        "restricted_roles": None,
        **body,
        "options": {**DEFAULT_OPTIONS, **(body.get("options") or {})},
        "created": now,
        "modified": now,
        "creator": CREATOR,
        "overall_state": "No Data",
        "multi": " by " in query or ".by(" in query,
        "deleted": None,
    }
    with store.lock:
        monitor["id"] = store.next_monitor_id()
        store.monitors[monitor["id"]] = monitor
    return monitor


def get(store: Store, monitor_id: int) -> dict[str, Any] | None:
    with store.lock:
        return store.monitors.get(monitor_id)


def update(store: Store, monitor_id: int, body: dict[str, Any]) -> dict[str, Any] | None:
    with store.lock:
        current = store.monitors.get(monitor_id)
    if current is None:
        return None
    if body.get("type") not in (None, current["type"]):
        raise BadRequest("A monitor's type cannot be changed")
    merged = {**current, **body}
    if "options" in body:
        merged["options"] = {**DEFAULT_OPTIONS, **(body.get("options") or {})}
    check(merged)
    merged["modified"] = _now()
    merged["multi"] = " by " in merged["query"] or ".by(" in merged["query"]
    with store.lock:
        if monitor_id not in store.monitors:
            return None
        store.monitors[monitor_id] = merged
    return merged


def delete(store: Store, monitor_id: int) -> bool:
    with store.lock:
        return store.monitors.pop(monitor_id, None) is not None


def listing(store: Store, params: dict[str, str]) -> list[dict[str, Any]]:
    """GET /api/v1/monitor: `name` (substring), `tags` (scope tags in the query), `monitor_tags` (all of
    them on the monitor), `id_offset`, `page` and `page_size` (all at once when `page` is absent)."""
    with store.lock:
        monitors = sorted(store.monitors.values(), key=lambda m: m["id"])
    name = params.get("name")
    scope = [t for t in (params.get("tags") or "").split(",") if t]
    wanted = [t for t in (params.get("monitor_tags") or "").split(",") if t]
    id_offset = int(params.get("id_offset") or 0)
    chosen = [
        m
        for m in monitors
        if m["id"] > id_offset
        and (not name or name.lower() in m.get("name", "").lower())
        and all(t in m.get("tags", []) for t in wanted)
        and all(t in m["query"] for t in scope)
    ]
    if "page" in params:
        size = int(params.get("page_size") or 100)
        if not 1 <= size <= 1000:
            raise BadRequest("page_size must be between 1 and 1000")
        start = int(params["page"]) * size
        chosen = chosen[start : start + size]
    return chosen
