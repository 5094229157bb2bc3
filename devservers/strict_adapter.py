"""A strict OpenChoreo adapter of the tests' own: the contract as the community adapters implement it, with each
of their deviations from the spec (http-adapters-notes §4), so our client meets every one over real HTTP.

- Health (§4.1): the logs adapter answers only `/health`; tracing and metrics only `/healthz` (and `/livez`, as
  the AWS adapters do). Every other path is a 404.
- Error bodies (§4.3): logs `{title, errorCode, message}`, tracing and metrics `{title, errorCode, detail}`;
  `dynatrace_errors` gives `{title, message}` only. `fail_next` makes the next query fail with a given status.
- 501 (§4.4): events answer 501 `OBS-V1-L-GCP-501` (the GCP logs adapter); runtime topology 501
  `OBS-V1-M-AZURE-MON-501` (Azure Monitor).
- Soft "not implemented" (§4.5): a `metric: http` query answers 200 with empty series and the header
  `X-OpenChoreo-Adapter-Notice: http-metrics-not-implemented` (the Azure and GCP metrics adapters).
- No extensions: no cursor (a `cursor` field is ignored, no `nextCursor` is sent), no trace ids on log lines;
  pages are the first `limit` records by time (ties in the order they were loaded), `total` capped at 1000.
- Alert rules (both adapters): create 201 or 409, get/update/delete 404 when missing, held with durations in the
  backend's own form; a `budget` metric rule is 501 `OBS-V1-M-GCP-501`. Its webhook takes the backend's own alert
  and forwards `{ruleName, ruleNamespace, alertValue, alertTimestamp}` to `observer_url`, as the adapters do.
- `answer_next` answers one query with a given body (an adapter that breaks the contract).
- Strict requests: every body is checked against the spec (a 400 `badRequest` otherwise) and recorded in
  `requests`, so a test can assert what was sent.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.http_contract import specs
from domain.timeutil import format_rfc3339, parse_go_duration, parse_rfc3339

NOTICE = "http-metrics-not-implemented"
EVENTS_501 = "OBS-V1-L-GCP-501"
TOPOLOGY_501 = "OBS-V1-M-AZURE-MON-501"
BUDGET_501 = "OBS-V1-M-GCP-501"
TOTAL_CAP = 1000


@dataclass
class StrictState:
    """What the adapter holds and what it was asked. `logs`: (ts_ns, body, component_uid) in load order."""

    logs: list[tuple[int, str, str]] = field(default_factory=list)
    requests: list[tuple[str, Any]] = field(default_factory=list)  # (path, body)
    fail_next: tuple[int, str, str] | None = None  # (status, errorCode, text)
    answer_next: Any = None  # a body answered (200) to the next query instead of the real one
    dynatrace_errors: bool = False
    delay_s: float = 0.0
    rules: dict[str, dict[str, Any]] = field(default_factory=dict)  # alert rules by name, as the backend holds them
    observer_url: str = ""  # where firings go (the adapter's OBSERVER_URL)
    forwarded: list[dict[str, Any]] = field(default_factory=list)  # the firings posted to the observer


def _error(signal: specs.Signal, state: StrictState, status: int, code: str, text: str) -> JSONResponse:
    title = {400: "badRequest", 404: "notFound", 501: "notImplemented"}.get(status, "internalServerError")
    if state.dynatrace_errors:
        return JSONResponse({"title": title, "message": text}, status)
    return JSONResponse(
        {"title": title, "errorCode": code, ("message" if signal == "logs" else "detail"): text}, status
    )


def _as_held(body: Any) -> dict[str, Any]:
    """A rule as a backend keeps it: durations written back in its own form (seconds, `300s`, where we send
    `5m0s`), so a client must compare meaning, not text."""
    held = json.loads(json.dumps(body))
    for key in ("window", "interval"):
        held["condition"][key] = f"{parse_go_duration(held['condition'][key]) // 10**9}s"
    return dict(held)


def _synced(action: str, name: str) -> dict[str, Any]:
    return {
        "action": action,
        "status": "synced",
        "ruleLogicalId": name,
        "ruleBackendId": f"backend-{name}",
        "lastSyncedAt": "2026-01-01T00:00:00Z",
    }


def strict_adapter_app(signal: specs.Signal, state: StrictState) -> Starlette:
    """One signal's strict adapter over `state`."""

    async def body_of(request: Request, schema: str) -> Any:
        body = json.loads(await request.body())
        state.requests.append((request.url.path, body))
        return body, specs.problems(signal, schema, body)

    def guarded(schema: str, answer: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            if state.delay_s:
                await asyncio.sleep(state.delay_s)
            body, problems = await body_of(request, schema) if schema else (None, [])
            if problems:
                return _error(signal, state, 400, "", "; ".join(problems))
            if state.fail_next is not None:
                status, code, text = state.fail_next
                state.fail_next = None
                return _error(signal, state, status, code, text)
            if state.answer_next is not None:
                forced, state.answer_next = state.answer_next, None
                return JSONResponse(forced)
            result: Response = await answer(request, body)
            return result

        return endpoint

    async def logs(_: Request, body: Any) -> Response:
        scope, start, end = body["searchScope"], parse_rfc3339(body["startTime"]), parse_rfc3339(body["endTime"])
        matching = [
            record
            for record in state.logs
            if start <= record[0] <= end and scope.get("componentUid", record[2]) == record[2]
        ]
        matching.sort(key=lambda record: record[0], reverse=body.get("sortOrder", "desc") == "desc")
        page = matching[: body.get("limit", 100)]
        entries = [
            {"timestamp": format_rfc3339(ts), "log": text, "level": "INFO", "metadata": {"componentUid": uid}}
            for ts, text, uid in page
        ]
        return JSONResponse({"logs": entries, "total": min(len(matching), TOTAL_CAP), "tookMs": 1})

    async def events(_: Request, __: Any) -> Response:
        return _error(signal, state, 501, EVENTS_501, "Events query is not implemented by this adapter")

    async def metrics(_: Request, body: Any) -> Response:
        if body["metric"] == "http":
            return JSONResponse({}, headers={"X-OpenChoreo-Adapter-Notice": NOTICE})
        start = parse_rfc3339(body["startTime"])
        return JSONResponse({"cpuUsage": [{"timestamp": format_rfc3339(start), "value": 0.25}]})

    async def topology(_: Request, __: Any) -> Response:
        return _error(signal, state, 501, TOPOLOGY_501, "runtime topology is not implemented by this adapter")

    async def traces(_: Request, __: Any) -> Response:
        return JSONResponse({"traces": [], "total": 0, "tookMs": 1})

    async def span(request: Request, _: Any) -> Response:
        return _error(signal, state, 404, "OBS-T-404", f"span {request.path_params['spanId']} not found")

    async def create_rule(_: Request, body: Any) -> Response:
        name = body["metadata"]["name"]
        if body["source"].get("metric") == "budget":
            return _error(signal, state, 501, BUDGET_501, "budget alerts are not implemented by this adapter")
        if name in state.rules:
            return _error(signal, state, 409, "", f"alert rule {name} already exists")
        state.rules[name] = _as_held(body)
        return JSONResponse(_synced("created", name), 201)

    async def get_rule(request: Request, _: Any) -> Response:
        name = request.path_params["ruleName"]
        if name not in state.rules:
            return _error(signal, state, 404, "", f"alert rule {name} not found")
        return JSONResponse(state.rules[name])

    async def update_rule(request: Request, body: Any) -> Response:
        name = request.path_params["ruleName"]
        if name not in state.rules:
            return _error(signal, state, 404, "", f"alert rule {name} not found")
        state.rules[name] = _as_held(body)
        return JSONResponse(_synced("updated", name))

    async def delete_rule(request: Request, _: Any) -> Response:
        name = request.path_params["ruleName"]
        if state.rules.pop(name, None) is None:
            return _error(signal, state, 404, "", f"alert rule {name} not found")
        return JSONResponse(_synced("deleted", name))

    async def webhook(request: Request) -> Response:
        """The backend's own alert (any JSON: here `{rule, value}`) forwarded to the observer as the adapters do:
        `{ruleName, ruleNamespace, alertValue, alertTimestamp}`, synchronously (a failure is a 500, so the backend
        redelivers, as the GCP adapter does)."""
        native = json.loads(await request.body())
        held = state.rules.get(str(native.get("rule")))
        if held is None:
            return _error(signal, state, 400, "", "unknown rule")
        firing = {
            "ruleName": held["metadata"]["name"],
            "ruleNamespace": held["metadata"]["namespace"],
            "alertValue": native.get("value", 0),
            "alertTimestamp": format_rfc3339(native.get("at_ns", 0)) if native.get("at_ns") else None,
        }
        firing = {key: value for key, value in firing.items() if value is not None}
        async with httpx.AsyncClient(timeout=10) as client:
            answer = await client.post(state.observer_url + "/api/v1alpha1/alerts/webhook", json=firing)
        if answer.status_code != 200:
            return _error(signal, state, 500, "", f"observer answered {answer.status_code}")
        state.forwarded.append(firing)
        return JSONResponse({"status": "success", "message": "forwarded"})

    rule_routes = [
        Route("/api/v1alpha1/alerts/rules", guarded("AlertRuleRequest", create_rule), methods=["POST"]),
        Route("/api/v1alpha1/alerts/rules/{ruleName}", guarded("", get_rule), methods=["GET"]),
        Route("/api/v1alpha1/alerts/rules/{ruleName}", guarded("AlertRuleRequest", update_rule), methods=["PUT"]),
        Route("/api/v1alpha1/alerts/rules/{ruleName}", guarded("", delete_rule), methods=["DELETE"]),
        Route("/api/v1alpha1/alerts/webhook", webhook, methods=["POST"]),
    ]

    async def healthy(_: Request) -> Response:
        return JSONResponse({"status": "healthy"})

    if signal == "logs":
        routes = [
            Route("/health", healthy),
            Route("/api/v1/logs/query", guarded("LogsQueryRequest", logs), methods=["POST"]),
            Route("/api/v1/events/query", guarded("EventsQueryRequest", events), methods=["POST"]),
            *rule_routes,
        ]
    elif signal == "metrics":
        routes = [
            Route("/healthz", healthy),
            Route("/livez", healthy),
            Route("/api/v1/metrics/query", guarded("MetricsQueryRequest", metrics), methods=["POST"]),
            Route(
                "/api/v1alpha1/metrics/runtime-topology", guarded("RuntimeTopologyRequest", topology), methods=["POST"]
            ),
            *rule_routes,
        ]
    else:
        routes = [
            Route("/healthz", healthy),
            Route("/api/v1alpha1/traces/query", guarded("TracesQueryRequest", traces), methods=["POST"]),
            Route("/api/v1alpha1/traces/{traceId}/spans/{spanId}", guarded("", span)),
        ]
    return Starlette(routes=routes)
