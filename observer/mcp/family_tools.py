"""The tools of the newer query families: `query_platform_logs` and `query_audit_logs` (OpenChoreo's, in the
default list) and `query_log_patterns` (ours, with the extended tools).

Each is declared once here (its arguments, each with the REST field it fills, and its output schema) and
answered as the other tools are: the arguments become the REST body, REST's wire model binds it and REST's
validation checks it, the same QueryService answers, and the page is cut to fit one MCP message, handing out
the cursor of the last record kept (observer/mcp/fit.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from access.model import Subject
from domain.audit import CATEGORIES, MAX_AUDIT_LIMIT, RESULTS, SURFACES
from domain.patterns import MAX_PATTERNS
from observer.mcp import schemas
from observer.mcp.arguments import bind
from observer.mcp.fit import CLIENT_EVENT_LIMIT, records_that_fit
from observer.mcp.schemas import Argument, Schema, string
from observer.service import QueryService
from observer.validate_audit import validate_audit_logs
from observer.validate_patterns import validate_patterns
from observer.validate_platform import validate_platform_logs
from observer.wire_audit import AUDIT_LOGS_RESPONSE, AuditLogsQueryRequest, audit_page_body
from observer.wire_patterns import PATTERNS_RESPONSE, PatternsQueryRequest, patterns_body
from observer.wire_platform import MAX_LABELS, PLATFORM_LOGS_RESPONSE, PlatformLogsQueryRequest, platform_log_entry

Body = dict[str, Any]


def strings(description: str, enum: tuple[str, ...] = ()) -> Schema:
    items: Schema = {"type": "string", "enum": list(enum)} if enum else {"type": "string"}
    return {"type": "array", "description": description, "items": items}


def _with_note(output: Schema) -> Schema:
    return {**output, "properties": {**output["properties"], "note": schemas.NOTE}}


# ----------------------------------------------------------------------------------------------- declarations

PLATFORM_LOGS_DESCRIPTION = (
    "Query platform logs: the output of any pod the observability plane collects (OpenChoreo's own control-plane,"
    " data-plane and observability-plane services, system and third-party workloads such as cert-manager or an"
    " ingress controller), found by Kubernetes coordinates: cluster instance, Kubernetes namespace, pod, container"
    " and pod labels, plus time range, log levels and a search phrase. Use query_component_logs for the logs of an"
    " OpenChoreo component. Requires the cluster-scoped 'platformlogs:view' permission. Returns {logs, total,"
    " tookMs, nextCursor?}."
)
PLATFORM_LOGS_ARGUMENTS: dict[str, Argument] = {
    **schemas.window(),
    "cluster_instance": Argument(strings("Cluster instances to keep (any of them)"), "clusterInstance"),
    "namespace": Argument(
        strings("Kubernetes namespaces to keep (any of them), e.g. ['openchoreo-control-plane']"), "namespace"
    ),
    "pod_name": Argument(strings("Pod names to keep (any of them)"), "podName"),
    "container_name": Argument(strings("Container names to keep (any of them)"), "containerName"),
    "labels": Argument(
        {
            "type": "object",
            "description": f"Pod labels every kept line's pod must carry, as key: value (at most {MAX_LABELS}), e.g."
            " {'app.kubernetes.io/name': 'openbao'}",
            "additionalProperties": {"type": "string"},
        },
        "labels",
    ),
    "search_phrase": Argument(schemas.SEARCH_PHRASE, "searchPhrase"),
    "log_levels": Argument(schemas.LOG_LEVELS, "logLevels"),
    **schemas.ordering(schemas.plain_limit("log entries")),
    **schemas.paging(),
}
PLATFORM_LOGS_OUTPUT = _with_note(PLATFORM_LOGS_RESPONSE)

AUDIT_LOGS_DESCRIPTION = (
    "Query OpenChoreo's audit trail: who did what, to which resource, through which surface (rest or mcp), and"
    " whether it succeeded, failed or was denied. For questions about people and authority (who acknowledged an"
    " incident, what was denied to whom), not about workloads: use query_component_logs or query_platform_logs for"
    " application and platform output. List filters match any of their values; different filters must all match."
    " Requires the cluster-scoped 'auditlogs:view' permission: naming a namespace narrows the results, it does not"
    " grant access. Reading the trail is itself recorded in it. Returns {records, total, tookMs, timeline?,"
    " nextCursor?}."
)
_ACTOR = {
    "actor_id": ("actor.id", "Actor ids (a user's subject, a service account's client id)"),
    "actor_type": ("actor.type", "Actor types: user, service_account or anonymous"),
    "actor_issuer": ("actor.issuer", "Token issuers"),
    "actor_session_id": ("actor.session_id", "Identity-provider session ids (one login's actions)"),
    "actor_entitlements": (
        "actor.entitlements",
        "Entitlement values the actor held (any one of them, in any claim: a user's groups, a service account's sub)",
    ),
}
_RESOURCE = {
    f"resource_{name}": (f"resource.{name}", f"Resource {label}")
    for name, label in (
        ("type", "types (e.g. incident, alertrule, component)"),
        ("namespace", "namespaces"),
        ("environment", "environments, as '{namespace}/{name}'"),
        ("project", "projects"),
        ("component", "components"),
        ("resource", "sub-resources"),
        ("name", "names"),
    )
}
AUDIT_LOGS_ARGUMENTS: dict[str, Argument] = {
    **schemas.window(),
    **{name: Argument(strings(text), rest) for name, (rest, text) in {**_ACTOR, **_RESOURCE}.items()},
    "action": Argument(strings("Actions, e.g. ['incident.update', 'mcp.query_component_logs']"), "action"),
    "category": Argument(strings("Categories", CATEGORIES), "category"),
    "result": Argument(strings("Results", RESULTS), "result"),
    "surface": Argument(strings("Surfaces the call came through", SURFACES), "surface"),
    "producer": Argument(strings("Producers: observer or openchoreo-api"), "producer"),
    "operation_id": Argument(strings("Operation ids (the API operation called)"), "operation_id"),
    "request_id": Argument(strings("Request ids"), "request_id"),
    "event_id": Argument(strings("Event ids (one record each)"), "event_id"),
    "source_ip": Argument(strings("Source addresses"), "source_ip"),
    "user_agent": Argument(strings("User agents"), "user_agent"),
    "search_phrase": Argument(
        string("Text the record must contain (case-sensitive), in its action, actor, resource, path or user agent"),
        "searchPhrase",
    ),
    "limit": Argument(
        schemas.number(
            f"Maximum number of records to return. Default: 100, at most {MAX_AUDIT_LIMIT}",
            minimum=0,
            maximum=MAX_AUDIT_LIMIT,
        ),
        "limit",
    ),
    "sort_order": Argument(schemas.SORT_ORDER, "sortOrder"),
    "include_timeline": Argument(
        schemas.boolean("Add a histogram of the matching records over the range, per result. Default: false"),
        "includeTimeline",
    ),
    "timeline_interval": Argument(
        string(
            "Histogram bucket width as <count><unit>, the unit one of m, h, d, w (e.g. '5m', '1h', '1d'); used with"
            " include_timeline. Default: chosen from the range; a width giving more than 500 buckets is coarsened"
            " (timeline.interval says the width used)"
        ),
        "timelineInterval",
    ),
    **schemas.paging(),
}
AUDIT_LOGS_OUTPUT = _with_note(AUDIT_LOGS_RESPONSE)

PATTERNS_DESCRIPTION = (
    "Get the log patterns of a component scope: the kinds of lines it prints (templates with numbers, ids,"
    " addresses and quoted strings masked), each with its count, a sparkline per step, an example line, the levels"
    " seen, and whether it is new (absent from the window of the same length just before). Answers 'what is this"
    " service printing, and what is new?' without reading every line. 'sampled' says when counts are a sample's."
)
PATTERNS_ARGUMENTS: dict[str, Argument] = {
    "namespace": Argument(schemas.NAMESPACE, "namespaceName"),
    "project": Argument(string("Project name to filter lines"), "projectName"),
    "component": Argument(string("Component name to filter lines (requires project)"), "componentName"),
    "environment": Argument(string("Environment name to filter lines (e.g., 'production')"), "environmentName"),
    **schemas.window(),
    "log_levels": Argument(schemas.LOG_LEVELS, "logLevels"),
    "search_phrase": Argument(schemas.SEARCH_PHRASE, "searchPhrase"),
    "step": Argument(string("Sparkline step as a duration (e.g. '1m', '5m'). Default: the range / 60"), "step"),
    "limit": Argument(
        schemas.number(
            f"Maximum number of patterns, most frequent first. Default: 50, at most {MAX_PATTERNS}",
            minimum=0,
            maximum=MAX_PATTERNS,
        ),
        "limit",
    ),
}
PATTERNS_OUTPUT = _with_note(PATTERNS_RESPONSE)


# ----------------------------------------------------------------------------------------------- answers


def _cut_note(kept: int, offered: int, key: str) -> str:
    return (
        f"only the first {kept} of the {offered} {key} of this page are here: all of them would exceed the"
        f" {CLIENT_EVENT_LIMIT} bytes one MCP message may carry. Pass nextCursor as cursor to read on from there."
    )


async def fitted(key: str, body: Body, refetch: Callable[[int], Awaitable[Body]]) -> Body:
    """A page body that fits one message: when it does not, the same query asked again for as many records as
    fit, whose nextCursor continues exactly after the last one kept."""
    items = body[key]
    kept = max(1, records_that_fit(body, key))
    if kept >= len(items):
        return body
    shorter = await refetch(kept)
    return {**shorter, "tookMs": body["tookMs"], "note": _cut_note(kept, len(items), key)}


async def platform_logs(service: QueryService, caller: Subject | None, body: Body) -> Body:
    query = validate_platform_logs(bind(PlatformLogsQueryRequest, body))

    async def page(limit: int) -> Body:
        answer = await service.platform_logs(caller, replace(query, limit=limit))
        out: Body = {
            "logs": [platform_log_entry(record) for record in answer.items],
            "total": answer.total,
            "tookMs": answer.took_ms,
        }
        if answer.next_cursor:
            out["nextCursor"] = answer.next_cursor
        return out

    return await fitted("logs", await page(query.limit), page)


async def audit_logs(service: QueryService, caller: Subject | None, body: Body) -> Body:
    query = validate_audit_logs(bind(AuditLogsQueryRequest, body))

    async def page(limit: int) -> Body:
        answer = await service.audit_logs(caller, replace(query, limit=limit))
        return audit_page_body(answer, query.timeline_interval_ns)

    return await fitted("records", await page(query.limit), page)


async def log_patterns(service: QueryService, caller: Subject | None, body: Body) -> Body:
    """Patterns are not paged: a list too long for one message is cut by the caller (tools.cut_to_fit)."""
    scope, checked = validate_patterns(bind(PatternsQueryRequest, body))
    return patterns_body(await service.patterns(caller, scope, checked), checked.step)
