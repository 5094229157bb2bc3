"""The fake's HTTP surface: Datadog's routes over the store, and `/_fake/*` controls for tests.

Every request first meets any failure a test injected for its path, then authentication (403
`{"errors": ["Forbidden"]}` as Datadog answers: intake needs only the API key, everything else both keys), then,
on query endpoints, the rate limit whose `X-RateLimit-*` headers every answer carries. Bodies are checked with
the official client's models (`models.parse`), so a body Datadog would refuse is a 400 here too.
"""

from __future__ import annotations

import gzip
import json
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from datadog_api_client.v1.model.monitor import Monitor
from datadog_api_client.v1.model.monitor_update_request import MonitorUpdateRequest
from datadog_api_client.v1.model.webhooks_integration import WebhooksIntegration
from datadog_api_client.v1.model.webhooks_integration_update_request import WebhooksIntegrationUpdateRequest
from datadog_api_client.v2.model.http_log import HTTPLog
from datadog_api_client.v2.model.logs_aggregate_request import LogsAggregateRequest
from datadog_api_client.v2.model.logs_list_request import LogsListRequest
from datadog_api_client.v2.model.metric_payload import MetricPayload
from datadog_api_client.v2.model.spans_aggregate_request import SpansAggregateRequest
from datadog_api_client.v2.model.spans_list_request import SpansListRequest
from datadog_api_client.v2.model.timeseries_formula_query_request import TimeseriesFormulaQueryRequest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from devservers.datadog import aggregate, logs, metrics, monitors, traces, webhooks
from devservers.datadog.faults import Faults
from devservers.datadog.models import BadRequest, parse, parse_value
from devservers.datadog.paging import decode_cursor, digest, now_ms, page, parse_time
from devservers.datadog.query import QueryError, compile_query
from devservers.datadog.store import Store

Handler = Callable[[Request], Awaitable[Response]]
MAX_SERIES_COMPRESSED = 512_000
MAX_SERIES_UNCOMPRESSED = 5 * 1024 * 1024


class Fake:
    """The state one fake serves: keys, store, faults, request counts and pending partial answers."""

    def __init__(self, api_key: str, app_key: str) -> None:
        self.api_key = api_key
        self.app_key = app_key
        self.store = Store()
        self.faults = Faults()
        self.requests: Counter[str] = Counter()
        self.partial = 0

    def reset(self) -> None:
        self.store.reset()
        self.faults.reset()
        self.requests.clear()
        self.partial = 0


def _errors(status: int, *errors: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"errors": list(errors)}, status_code=status, headers=headers)


def _body(request_body: bytes, encoding: str | None) -> bytes:
    """The body after `Content-Encoding` (gzip, deflate or identity)."""
    encoding = (encoding or "identity").strip().lower()
    try:
        if encoding == "gzip":
            return gzip.decompress(request_body)
        if encoding == "deflate":
            return zlib.decompress(request_body)
    except (OSError, zlib.error, EOFError):
        raise BadRequest("Invalid compressed body") from None
    if encoding != "identity":
        raise BadRequest(f"Unsupported Content-Encoding {encoding!r}")
    return request_body


def _body_from_params(request: Request) -> dict[str, Any]:
    """The GET twin's `filter[query]`, `filter[from]`, `filter[to]`, `sort`, `page[cursor]`, `page[limit]` as
    the POST body they stand for, so both forms are checked and answered alike."""
    params = request.query_params
    body: dict[str, Any] = {}
    spec = {k: params[f"filter[{k}]"] for k in ("query", "from", "to") if f"filter[{k}]" in params}
    if spec:
        body["filter"] = spec
    if "sort" in params:
        body["sort"] = params["sort"]
    page_spec: dict[str, Any] = {}
    if "page[cursor]" in params:
        page_spec["cursor"] = params["page[cursor]"]
    if "page[limit]" in params:
        try:
            page_spec["limit"] = int(params["page[limit]"])
        except ValueError:
            raise BadRequest("page[limit] must be an integer") from None
    if page_spec:
        body["page"] = page_spec
    return body


def endpoint(fake: Fake, *, app_key: bool, limit: str | None = None) -> Callable[[Handler], Handler]:
    """Wraps a route with injected failures, Datadog's key checks, a rate limit and 400s for bad bodies."""

    def wrap(handler: Handler) -> Handler:
        async def run(request: Request) -> Response:
            path = request.url.path
            fake.requests[path] += 1
            failure = fake.faults.injected(path)
            if failure is not None:
                return _errors(failure.status, "Injected failure", headers=failure.headers)
            headers = {k.lower(): v for k, v in request.headers.items()}
            if headers.get("dd-api-key") != fake.api_key or (
                app_key and headers.get("dd-application-key") != fake.app_key
            ):
                return _errors(403, "Forbidden")
            rate_headers: dict[str, str] = {}
            if limit is not None:
                allowed, rate_headers = fake.faults.take(limit)
                if not allowed:
                    return _errors(429, "Too many requests", headers=rate_headers)
            try:
                response = await handler(request)
            except BadRequest as error:
                response = _errors(400, *error.errors)
            except logs.TooLarge as error:
                response = _errors(413, str(error))
            response.headers.update(rate_headers)
            return response

        return run

    return wrap


def build_app(fake: Fake) -> Starlette:
    store = fake.store

    @endpoint(fake, app_key=False)
    async def logs_intake(request: Request) -> Response:
        raw = _body(await request.body(), request.headers.get("content-encoding"))
        logs.check_size(raw)
        try:
            decoded = json.loads(raw)
        except ValueError:
            raise BadRequest("Malformed JSON") from None
        entries = logs.validate_entries(decoded)
        if len(entries) > logs.MAX_ENTRIES:
            raise logs.TooLarge(f"Too many entries: {len(entries)} > {logs.MAX_ENTRIES}")
        parse_value(entries, HTTPLog)
        logs.ingest(store, entries, request.query_params.get("ddtags"))
        return JSONResponse({}, status_code=202)

    @endpoint(fake, app_key=True, limit="logs_query")
    async def logs_search(request: Request) -> Response:
        if request.method == "GET":
            body = _body_from_params(request)
            parse_value(body, LogsListRequest)
        else:
            raw = await request.body()
            parse(raw or b"{}", LogsListRequest)
            body = json.loads(raw or b"{}")
        return _search(request, store.logs, body, logs.as_json, "logs")

    @endpoint(fake, app_key=True, limit="spans_query")
    async def spans_search(request: Request) -> Response:
        if request.method == "GET":
            body = _body_from_params(request)
            parse_value({"data": {"type": "search_request", "attributes": body}}, SpansListRequest)
        else:
            raw = await request.body()
            parse(raw or b"{}", SpansListRequest)
            body = (json.loads(raw or b"{}").get("data") or {}).get("attributes") or {}
        return _search(request, store.spans, body, traces.as_json, "spans")

    @endpoint(fake, app_key=True, limit="logs_query")
    async def logs_aggregate(request: Request) -> Response:
        began = time.monotonic()
        raw = await request.body()
        parse(raw or b"{}", LogsAggregateRequest)
        return JSONResponse(aggregate.logs_aggregate(store.logs, json.loads(raw or b"{}"), store.lock, began))

    @endpoint(fake, app_key=True, limit="spans_query")
    async def spans_aggregate(request: Request) -> Response:
        began = time.monotonic()
        raw = await request.body()
        parse(raw or b"{}", SpansAggregateRequest)
        body = (json.loads(raw or b"{}").get("data") or {}).get("attributes") or {}
        total = aggregate.count(store.spans, body, store.lock)
        return JSONResponse(aggregate.spans_answer(total, began))

    def _search(
        request: Request, source: list[Any], body: dict[str, Any], render: Callable[[Any], dict[str, Any]], kind: str
    ) -> Response:
        """One page of a logs or spans search: the checked body's filter, sort and page, over `source`."""
        began = time.monotonic()
        spec = body.get("filter") or {}
        query = spec.get("query") or "*"
        raw_bounds = (spec.get("from"), spec.get("to"))
        descending = body.get("sort", "timestamp") == "-timestamp"
        limit = int((body.get("page") or {}).get("limit") or 10)
        cursor = (body.get("page") or {}).get("cursor")
        page_limit = limit
        try:
            matches = compile_query(query)
        except QueryError as error:
            raise BadRequest(f"Invalid query: {error}") from None
        query_digest = digest(query, raw_bounds, descending)
        after = decode_cursor(cursor, query_digest) if cursor else None
        start, end = (
            (after.start_ms, after.end_ms)
            if after
            else (parse_time(raw_bounds[0], "now-15m"), parse_time(raw_bounds[1], "now"))
        )
        with store.lock:
            found = [r for r in source if start <= r.timestamp_ms < end and matches(r)]
        timed_out = fake.partial > 0
        if timed_out:
            fake.partial -= 1
            limit = max(1, limit // 2)
        chosen, next_cursor = page(
            found, descending=descending, limit=limit, after=after, query_digest=query_digest, bounds=(start, end)
        )
        meta: dict[str, Any] = {
            "elapsed": int((time.monotonic() - began) * 1000),
            "request_id": uuid.uuid4().hex,
            "status": "timeout" if timed_out else "done",
            "page": {"after": next_cursor} if next_cursor else {},
        }
        if timed_out:
            meta["warnings"] = [
                {"code": "unknown", "title": "Partial results", "detail": "The query timed out; results are partial"}
            ]
        answer: dict[str, Any] = {"data": [render(r) for r in chosen], "meta": meta}
        if next_cursor:
            base = str(request.base_url).rstrip("/")
            params = {"filter[query]": query, "filter[from]": raw_bounds[0], "filter[to]": raw_bounds[1]}
            params.update({"sort": body.get("sort"), "page[limit]": page_limit, "page[cursor]": next_cursor})
            link = urlencode({name: value for name, value in params.items() if value is not None})
            answer["links"] = {"next": f"{base}/api/v2/{kind}/events?{link}"}
        return JSONResponse(answer)

    @endpoint(fake, app_key=False)
    async def series_intake(request: Request) -> Response:
        compressed = await request.body()
        if len(compressed) > MAX_SERIES_COMPRESSED:
            return _errors(413, "Payload too large")
        raw = _body(compressed, request.headers.get("content-encoding"))
        if len(raw) > MAX_SERIES_UNCOMPRESSED:
            return _errors(413, "Payload too large")
        parse(raw, MetricPayload)
        metrics.ingest(store, json.loads(raw)["series"])
        return JSONResponse({"errors": []}, status_code=202)

    @endpoint(fake, app_key=True, limit="timeseries_query")
    async def timeseries(request: Request) -> Response:
        raw = await request.body()
        parse(raw, TimeseriesFormulaQueryRequest)
        return JSONResponse(metrics.timeseries(store, json.loads(raw)["data"]["attributes"]))

    @endpoint(fake, app_key=False)
    async def otlp_traces(request: Request) -> Response:
        raw = _body(await request.body(), request.headers.get("content-encoding"))
        content_type = request.headers.get("content-type", "application/x-protobuf")
        traces.ingest(store, traces.decode(raw, content_type))
        if content_type.startswith("application/json"):
            return JSONResponse({})
        return Response(b"", media_type="application/x-protobuf")

    @endpoint(fake, app_key=True, limit="monitors")
    async def monitor_collection(request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse(monitors.listing(store, dict(request.query_params)))
        raw = await request.body()
        parse(raw, Monitor)
        return JSONResponse(monitors.create(store, json.loads(raw)))

    @endpoint(fake, app_key=True, limit="monitors")
    async def monitor_validate(request: Request) -> Response:
        raw = await request.body()
        parse(raw, Monitor)
        monitors.check(json.loads(raw))
        return JSONResponse({})

    @endpoint(fake, app_key=True, limit="monitors")
    async def monitor_item(request: Request) -> Response:
        try:
            monitor_id = int(request.path_params["monitor_id"])
        except ValueError:
            return _errors(404, "Monitor not found")
        if request.method == "GET":
            found = monitors.get(store, monitor_id)
        elif request.method == "PUT":
            raw = await request.body()
            parse(raw, MonitorUpdateRequest)
            found = monitors.update(store, monitor_id, json.loads(raw))
        else:
            if monitors.delete(store, monitor_id):
                return JSONResponse({"deleted_monitor_id": monitor_id})
            found = None
        return JSONResponse(found) if found is not None else _errors(404, "Monitor not found")

    @endpoint(fake, app_key=True, limit="webhooks")
    async def webhook_collection(request: Request) -> Response:
        raw = await request.body()
        parse(raw, WebhooksIntegration)
        body = json.loads(raw)
        webhooks.check_headers(body)
        hook = {"encode_as": "json", "payload": None, "custom_headers": None, **body}
        with store.lock:
            if hook["name"] in store.webhooks:
                return _errors(409, f"Webhook {hook['name']} already exists")
            store.webhooks[hook["name"]] = hook
        return JSONResponse(hook)

    @endpoint(fake, app_key=True, limit="webhooks")
    async def webhook_item(request: Request) -> Response:
        name = request.path_params["webhook_name"]
        with store.lock:
            hook = store.webhooks.get(name)
        if hook is None:
            return _errors(404, "Webhook not found")
        if request.method == "GET":
            return JSONResponse(hook)
        if request.method == "DELETE":
            with store.lock:
                store.webhooks.pop(name, None)
            return Response(status_code=200)
        raw = await request.body()
        parse(raw, WebhooksIntegrationUpdateRequest)
        updated = {**hook, **json.loads(raw)}
        webhooks.check_headers(updated)
        with store.lock:
            store.webhooks.pop(name, None)
            store.webhooks[updated["name"]] = updated
        return JSONResponse(updated)

    async def trigger(body: dict[str, Any]) -> Response:
        """A monitor changes state: every webhook its message mentions gets Datadog's payload."""
        monitor_id = int(body["monitor_id"])
        transition = str(body.get("transition", "Triggered"))
        with store.lock:
            monitor = store.monitors.get(monitor_id)
            if monitor is None:
                return _errors(404, "Monitor not found")
            if transition in ("Triggered", "Re-Triggered") and monitor.get("overall_state") != "Alert":
                store.cycles[monitor_id] = store.cycles.get(monitor_id, 0) + 1
            monitor["overall_state"] = webhooks.state_of(transition)
            cycle = store.cycles.get(monitor_id, 0)
            hooks = [(name, store.webhooks.get(name)) for name in webhooks.targets(monitor)]
        event = webhooks.Transition(dict(monitor), transition, body.get("value"), str(body.get("scope", "")), cycle)
        values = webhooks.variables(event)
        deliveries: list[dict[str, Any]] = []
        for name, hook in hooks:
            if hook is None:
                deliveries.append({"webhook": name, "attempts": [], "error": "no such webhook"})
                continue
            payload = webhooks.render(hook.get("payload"), values)
            deliveries.append({"webhook": name, "payload": payload, "attempts": await webhooks.deliver(hook, payload)})
        return JSONResponse({"deliveries": deliveries})

    async def control(request: Request) -> Response:
        """`/_fake/<action>`: reset, fail, limit, partial, trigger (POST); received, stats (GET)."""
        action = request.path_params["action"]
        body = (await request.json()) if request.method == "POST" and await request.body() else {}
        if action == "reset":
            fake.reset()
        elif action == "fail":
            fake.faults.inject(
                body.get("path", "*"),
                int(body.get("status", 503)),
                body.get("count"),
                body.get("seconds"),
                body.get("retry_after"),
            )
        elif action == "limit":
            fake.faults.set_limit(body["name"], int(body["limit"]), int(body.get("period", 3600)))
        elif action == "trigger":
            return await trigger(body)
        elif action == "partial":
            fake.partial = int(body.get("count", 1))
        elif action == "received":
            with store.lock:
                return JSONResponse(
                    {
                        "logs": [logs.as_json(r) for r in store.logs],
                        "spans": [traces.as_json(s) for s in store.spans],
                        "points": [
                            {
                                "metric": p.metric,
                                "type": p.type,
                                "tags": list(p.tags),
                                "timestamp": p.timestamp_s,
                                "value": p.value,
                            }
                            for p in store.points
                        ],
                    }
                )
        elif action == "stats":
            with store.lock:
                counts = {
                    "logs": len(store.logs),
                    "spans": len(store.spans),
                    "points": len(store.points),
                    "monitors": len(store.monitors),
                }
            return JSONResponse({**counts, "requests": dict(fake.requests), "now_ms": now_ms()})
        else:
            return _errors(404, "Unknown control")
        return JSONResponse({"ok": True})

    async def not_found(request: Request, error: Exception) -> Response:
        status = getattr(error, "status_code", 404)
        return _errors(status, "Not found" if status == 404 else "Method not allowed")

    return Starlette(
        exception_handlers={404: not_found, 405: not_found},
        routes=[
            Route("/api/v2/logs", logs_intake, methods=["POST"]),
            Route("/api/v2/logs/events/search", logs_search, methods=["POST"]),
            Route("/api/v2/logs/events", logs_search, methods=["GET"]),
            Route("/api/v2/logs/analytics/aggregate", logs_aggregate, methods=["POST"]),
            Route("/api/v2/series", series_intake, methods=["POST"]),
            Route("/api/v2/query/timeseries", timeseries, methods=["POST"]),
            Route("/api/v2/spans/events/search", spans_search, methods=["POST"]),
            Route("/api/v2/spans/events", spans_search, methods=["GET"]),
            Route("/api/v2/spans/analytics/aggregate", spans_aggregate, methods=["POST"]),
            Route("/v1/traces", otlp_traces, methods=["POST"]),
            Route("/api/v1/monitor", monitor_collection, methods=["GET", "POST"]),
            Route("/api/v1/monitor/validate", monitor_validate, methods=["POST"]),
            Route("/api/v1/monitor/{monitor_id}", monitor_item, methods=["GET", "PUT", "DELETE"]),
            Route("/api/v1/integration/webhooks/configuration/webhooks", webhook_collection, methods=["POST"]),
            Route(
                "/api/v1/integration/webhooks/configuration/webhooks/{webhook_name}",
                webhook_item,
                methods=["GET", "PUT", "DELETE"],
            ),
            Route("/_fake/{action}", control, methods=["GET", "POST"]),
        ],
    )
