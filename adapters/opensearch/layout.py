"""Where documents live: daily indices per signal, their templates, and their retention.

The keys and types follow OpenChoreo's setup jobs (`container-logs-*`, `k8s-events-*`, `otel-traces-*`,
`dynamic: false`), so indices written by OpenChoreo's Fluent Bit and OTel Collector are read unchanged. Our
additions are mapped explicitly: `level`, `traceId` and `spanId` on logs, the workflow-run labels, and
`date_nanos` timestamps so a time range keeps its nanoseconds.

The observer shares its cluster with OpenChoreo's logs module, whose setup job owns the templates and ISM
policies named after the prefixes (`container-logs`, `k8s-events`; the tracing module's `otel-traces`). So ours
carry our own names, `observer-<name>`, and never replace theirs:

- our index templates are composable with priority TEMPLATE_PRIORITY (OpenChoreo's have none, i.e. 0), so an
  index created from now on takes our mappings (one template applies per index: the highest priority one);
  indices that exist keep the mappings they were created with;
- our ISM policies have the ism_template priority ISM_PRIORITY, below OpenChoreo's 100: where OpenChoreo's
  retention policy exists it keeps deciding when daily indices are deleted (a warning says so at install),
  and ours applies only where it does not.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from opensearchpy import AsyncOpenSearch, NotFoundError, TransportError

from adapters.opensearch import fields
from domain.audit import AUDIT_SOURCE

log = logging.getLogger(__name__)

_DAY_NS = 86_400 * 10**9
#: A range spanning more days than this is searched through the wildcard pattern rather than by naming each
#: day (URLs stay short; missing days cost nothing either way).
MAX_NAMED_DAYS = 31


@dataclass(frozen=True, slots=True)
class IndexLayout:
    """The index prefixes, with OpenChoreo's defaults. A prefix ends with `-`; daily indices append the UTC
    date (`container-logs-2026-11-23`)."""

    logs: str = "container-logs-"
    events: str = "k8s-events-"
    traces: str = "otel-traces-"
    #: The audit trail, apart from application logs: its own indices, template and retention.
    audit: str = AUDIT_SOURCE + "-"

    @property
    def prefixes(self) -> tuple[str, ...]:
        """Every prefix, each with its own template and retention policy."""
        return (self.logs, self.events, self.traces, self.audit)

    def daily(self, prefix: str, ts_ns: int) -> str:
        return prefix + time.strftime("%Y-%m-%d", time.gmtime(ts_ns // 10**9))

    def covering(self, prefix: str, start_ns: int, end_ns: int) -> str:
        """The indices a time range can touch, comma-separated, for `ignore_unavailable` searches."""
        first, last = start_ns // _DAY_NS, end_ns // _DAY_NS
        if last < first or last - first >= MAX_NAMED_DAYS:
            return prefix + "*"
        return ",".join(self.daily(prefix, day * _DAY_NS) for day in range(first, last + 1))

    def pattern(self, prefix: str) -> str:
        return prefix + "*"


def _keywords(*paths: str) -> dict[str, Any]:
    return {path: {"type": "keyword"} for path in paths}


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    """`{"a.b": m}` -> `{"a": {"properties": {"b": m}}}`: mappings name object fields by nesting."""
    root: dict[str, Any] = {}
    for path, mapping in flat.items():
        node = root
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {"properties": {}})["properties"]
        node[leaf] = mapping
    return root


LOG_FIELDS: dict[str, Any] = {
    fields.TIMESTAMP: {"type": "date_nanos"},
    fields.LOG_BODY: {"type": "wildcard"},
    fields.LOG_LEVEL: {"type": "keyword"},
    fields.TRACE_ID: {"type": "keyword"},
    fields.SPAN_ID: {"type": "keyword"},
    **_keywords(
        fields.LOG_CONTAINER,
        fields.LOG_POD_NAMESPACE,
        fields.LOG_POD,
        fields.LOG_TASK,
        fields.LOG_NODE,
        fields.LOG_POD_IP,
        fields.LOG_IMAGE,
        fields.LOG_CLUSTER,
        *fields.LOG_KEYWORD_LABELS,
    ),
}

#: Objects whose every key is a keyword as it arrives, whatever its name: the pod labels (platform logs filter
#: and count on any label). The root stays `dynamic: false`; these objects are dynamic, with a template mapping
#: each new key as a keyword.
LOG_DYNAMIC_KEYWORDS = (fields.LOG_LABELS,)

EVENT_FIELDS: dict[str, Any] = {
    fields.TIMESTAMP: {"type": "date_nanos"},
    fields.EVENT_BODY: {"type": "wildcard"},
    **_keywords(
        fields.EVENT_SEVERITY,
        fields.EVENT_REASON,
        fields.EVENT_OBJECT_NAMESPACE,
        fields.EVENT_OBJECT_KIND,
        fields.EVENT_OBJECT_NAME,
        *fields.EVENT_KEYWORD_LABELS,
        fields.EVENT_TASK,
    ),
}

SPAN_FIELDS: dict[str, Any] = {
    fields.START_TIME: {"type": "date_nanos"},
    fields.END_TIME: {"type": "date_nanos"},
    **_keywords(
        fields.TRACE_ID, fields.SPAN_ID, fields.PARENT_SPAN_ID, fields.SPAN_STATUS_CODE, *fields.SPAN_KEYWORD_RESOURCE
    ),
}

AUDIT_FIELDS: dict[str, Any] = {
    fields.AUDIT_TIME: {"type": "date_nanos"},
    **_keywords(*fields.AUDIT_FILTER_PATHS.values(), fields.AUDIT_HTTP_METHOD, fields.AUDIT_HTTP_PATH),
}
#: The record's `actor.entitlements` object: its keys are claims (whatever a subject type is entitled by), each a
#: keyword array as it arrives.
AUDIT_DYNAMIC_KEYWORDS = (fields.AUDIT_ENTITLEMENTS,)


#: How many fields a logs index may map (OpenSearch's default is 1,000): every distinct pod label key is one.
MAX_MAPPED_FIELDS = 10_000

#: Above OpenChoreo's templates (which set no priority, so 0): new indices take our mappings.
TEMPLATE_PRIORITY = 200
#: Below OpenChoreo's ISM policies (priority 100): where theirs exists, their retention stays in force.
ISM_PRIORITY = 50
#: Marks what we installed (`_meta.managed_by`), so an operator looking at the cluster can tell.
OWNER = "openchoreo-observer"


def template(pattern: str, fields: dict[str, Any], dynamic_keywords: tuple[str, ...] = ()) -> dict[str, Any]:
    """A composable index template. Replicas follow the cluster default, so one node stays green. Written as
    OpenSearch returns it (settings as strings), so an unchanged template compares equal and is not put again.
    `dynamic_keywords`: objects whose keys, whatever they are, are mapped as keywords when they first arrive."""
    properties = _nest(fields)
    mappings: dict[str, Any] = {"dynamic": "false", "properties": properties}
    settings: dict[str, Any] = {"number_of_shards": "1"}
    if dynamic_keywords:
        # Room for many label keys: past the limit OpenSearch refuses the whole document, and the line is lost.
        settings["mapping"] = {"total_fields": {"limit": str(MAX_MAPPED_FIELDS)}}
        mappings["dynamic_templates"] = [
            {f"keywords_{index}": {"path_match": f"{path}.*", "mapping": {"type": "keyword"}}}
            for index, path in enumerate(dynamic_keywords)
        ]
        for path in dynamic_keywords:
            node: dict[str, Any] = {"properties": properties}
            for part in path.split("."):
                node = node["properties"].setdefault(part, {"properties": {}})
            node["dynamic"] = "true"
    return {
        "index_patterns": [pattern],
        "priority": TEMPLATE_PRIORITY,
        "template": {
            "settings": {"index": settings},
            "mappings": mappings,
        },
        "composed_of": [],
        "_meta": {"managed_by": OWNER},
    }


def ism_policy(pattern: str, min_index_age: str) -> dict[str, Any]:
    """OpenChoreo's retention policy: an index moves from `active` to `delete` at `min_index_age`."""
    return {
        "policy": {
            "description": f"delete {pattern} indices after {min_index_age} (managed by {OWNER})",
            "default_state": "active",
            "states": [
                {
                    "name": "active",
                    "actions": [],
                    "transitions": [{"state_name": "delete", "conditions": {"min_index_age": min_index_age}}],
                },
                {"name": "delete", "actions": [{"delete": {}}], "transitions": []},
            ],
            "ism_template": [{"index_patterns": [pattern], "priority": ISM_PRIORITY}],
        }
    }


def upstream_name(prefix: str) -> str:
    """The name OpenChoreo's setup jobs give the template and ISM policy of a prefix:
    `container-logs-` -> `container-logs`. Never written by us."""
    return prefix.rstrip("-_") or prefix


def template_name(prefix: str) -> str:
    """Our index template and ISM policy of a prefix: `container-logs-` -> `observer-container-logs`."""
    return f"observer-{upstream_name(prefix)}"


def templates(layout: IndexLayout) -> dict[str, dict[str, Any]]:
    """Our index template of each prefix."""
    return {
        layout.logs: template(layout.pattern(layout.logs), LOG_FIELDS, LOG_DYNAMIC_KEYWORDS),
        layout.events: template(layout.pattern(layout.events), EVENT_FIELDS),
        layout.traces: template(layout.pattern(layout.traces), SPAN_FIELDS),
        layout.audit: template(layout.pattern(layout.audit), AUDIT_FIELDS, AUDIT_DYNAMIC_KEYWORDS),
    }


async def install(client: AsyncOpenSearch, layout: IndexLayout, retention_days: float) -> bool:
    """Installs our index templates (logs, events, traces, audit), and our ISM retention policies when the
    cluster has ISM, under our own names (`template_name`): OpenChoreo's, named after the prefixes, are left exactly as they are.
    Idempotent: a template or policy is put again only when it differs. Returns whether ISM manages retention (else the caller
    deletes old daily indices itself, see `delete_expired`)."""
    for prefix, wanted in templates(layout).items():
        name = template_name(prefix)
        try:
            current = await client.indices.get_index_template(name=name)
            if current["index_templates"][0]["index_template"] == wanted:
                continue
        except NotFoundError:
            pass
        await client.indices.put_index_template(name=name, body=wanted)
        log.info("installed index template %s for %s", name, layout.pattern(prefix))
    hours = max(1, round(retention_days * 24))
    return await _install_ism(client, layout, f"{hours // 24}d" if hours % 24 == 0 else f"{hours}h")


def _policy_key(policy: dict[str, Any]) -> tuple[Any, ...]:
    """What decides whether a stored policy is ours as wanted: its states and where and how strongly it applies
    (OpenSearch adds timestamps and retry defaults, which are left out)."""
    applies = [(t.get("index_patterns"), t.get("priority")) for t in policy.get("ism_template") or []]
    states = [
        {**state, "actions": [{k: v for k, v in action.items() if k != "retry"} for action in state.get("actions", [])]}
        for state in policy.get("states") or []
    ]
    return states, applies


async def _foreign_policy(client: AsyncOpenSearch, prefix: str) -> bool:
    """Whether OpenChoreo's ISM policy for the prefix exists (then its retention, not ours, applies)."""
    try:
        await client.transport.perform_request("GET", f"/_plugins/_ism/policies/{upstream_name(prefix)}")
    except NotFoundError:
        return False
    return True


async def _install_ism(client: AsyncOpenSearch, layout: IndexLayout, min_index_age: str) -> bool:
    for prefix in layout.prefixes:
        policy_id, wanted = template_name(prefix), ism_policy(layout.pattern(prefix), min_index_age)
        path = f"/_plugins/_ism/policies/{policy_id}"
        try:
            current = await client.transport.perform_request("GET", path)
        except NotFoundError:
            current = None  # ISM is there, the policy is not yet
        except TransportError as exc:
            if exc.status_code == 400 and "no handler found" in str(exc.info):
                return False  # no ISM plugin in this cluster
            raise
        if current is not None:
            if _policy_key(current.get("policy", {})) == _policy_key(wanted["policy"]):
                continue
            params = {"if_seq_no": current["_seq_no"], "if_primary_term": current["_primary_term"]}
            await client.transport.perform_request("PUT", path, params=params, body=wanted)
        else:
            await client.transport.perform_request("PUT", path, body=wanted)
        log.info("installed ISM policy %s (delete after %s)", policy_id, min_index_age)
    for prefix in layout.prefixes:
        if await _foreign_policy(client, prefix):
            log.warning(
                "ISM policy %s (OpenChoreo's) has priority over ours (%s): new %s indices are deleted by its "
                "schedule, not after OBSERVER_RETENTION_HOURS",
                upstream_name(prefix),
                template_name(prefix),
                layout.pattern(prefix),
            )
    return True


async def delete_expired(client: AsyncOpenSearch, layout: IndexLayout, older_than_ns: int) -> list[str]:
    """Retention without ISM: deletes whole daily indices whose day ended before the cut-off. Returns the
    names deleted."""
    keep_from = layout.daily("", older_than_ns)  # the cut-off's own day is kept
    doomed = []
    for prefix in layout.prefixes:
        names = await client.indices.get(
            index=layout.pattern(prefix), params={"ignore_unavailable": "true", "allow_no_indices": "true"}
        )
        for name in names:
            day = name[len(prefix) :]
            if len(day) == 10 and day < keep_from:
                doomed.append(name)
    for name in doomed:
        await client.indices.delete(index=name, params={"ignore_unavailable": "true"})
        log.info("retention deleted index %s", name)
    return doomed
