"""`POST /api/v1alpha1/logs/tail`: a live tail of a scope's logs as server-sent events (extension).

The request is checked like a logs query (observer/tail/request.py), then authorized and resolved by the same
guard with the same failure table (a denied caller gets its 403 before any stream starts, and costs no resolver
call); only then is the tail admitted (503 with Retry-After at the process's cap) and the stream begins
(observer/tail/stream.py says what it carries).

A tail sees what THIS process ingests (its OTLP receiver, through observer/tail/sink.py), whatever backend stores
it: it works on every backend, and behind several replicas it sees the lines sent to the replica it reached.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from access import model as authz
from domain.model import WorkflowScope
from observer.errors import ApiError
from observer.guard import failures, query_endpoint
from observer.routers.queries import _ERRORS, caller, query_service, require_json
from observer.service import QueryService
from observer.tail.hub import TailHub, TooManyTails
from observer.tail.match import Filter
from observer.tail.render import ComponentEntries, workflow_entries
from observer.tail.request import TailRequest, validate_tail
from observer.tail.stream import TailStream

TAIL = query_endpoint("L", "Failed to start the live tail")
#: Seconds a client refused at the cap is asked to wait.
BUSY_RETRY_AFTER_S = 5

router = APIRouter(dependencies=[Depends(require_json)], responses=_ERRORS)

_STREAM_DOC = (
    "Server-sent events: `start` (`{startTime, maxSeconds, maxLinesPerSecond}`), then `log` (`data` = one entry"
    " as in the logs query's `logs`) and `dropped` (`{count, total}`, lines over the rate), a `: heartbeat` comment"
    " after 15 s of silence, and last `end` (`{reason, lines, dropped, discarded}`; reason `max duration`,"
    " `slow consumer` or `shutdown`)."
)


def tail_hub(request: Request) -> TailHub:
    hub = getattr(request.app.state, "tail_hub", None)
    if hub is None:
        raise ApiError(
            501,
            "live tail is not available here: this process receives no telemetry (run `observer up`, whose OTLP"
            " receiver feeds the tails)",
            "TAIL_NOT_AVAILABLE",
        )
    return hub


@router.post(
    "/api/v1alpha1/logs/tail",
    tags=["Logs"],
    operation_id="tailLogs",
    summary="Live tail of a scope's logs (extension)",
    description="Every line of the scope (with the logs query's levels and phrase filters) ingested by this"
    " process from now on, pushed as server-sent events, in the order ingested, for up to `maxSeconds`. Authorized"
    " as a logs query (`logs:view`) when it starts. A client that does not read fast enough is cut off with a"
    " final `end` event whose reason is `slow consumer`; lines over `maxLinesPerSecond` are counted in `dropped`"
    " events. At most a configured number of tails run at once per process (503 beyond).",
    responses={200: {"description": _STREAM_DOC, "content": {"text/event-stream": {"schema": {"type": "string"}}}}},
    response_class=Response,
    openapi_extra={"x-observer-extension": True},
)
async def tail_logs(request: Request, body: TailRequest, service: QueryService = Depends(query_service)) -> Response:
    hub = tail_hub(request)
    query = validate_tail(body, hub.settings)
    with failures(TAIL):
        scope = await service.guard.admit_any(caller(request), authz.LOGS_VIEW, query.scope)
    try:
        tail = hub.subscribe(Filter.of(scope, query.levels, query.phrase), query.lines_per_second)
    except TooManyTails:
        raise ApiError(
            503,
            f"too many live tails on this observer (at most {hub.settings.max_tails}); close one or retry shortly",
            "TOO_MANY_TAILS",
            headers={"Retry-After": str(BUSY_RETRY_AFTER_S)},
        ) from None
    render = workflow_entries if isinstance(scope, WorkflowScope) else ComponentEntries()
    return TailStream(hub, tail, seconds=query.seconds, render=render, settings=hub.settings)
