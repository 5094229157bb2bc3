"""The MCP server: OpenChoreo's 15 observer tools over streamable HTTP, on top of the same services as REST.

Wire contract (observer-contract-notes §3): server `openchoreo-observer` 1.0.0, tools only, exactly the 15 tool
names with snake_case arguments, and every result the same JSON object the matching REST endpoint answers, as
text content and as structuredContent (which each tool's outputSchema describes).

One validation for both surfaces (observer/mcp/arguments.py, tools.py): a tool's arguments become the REST
request and go through observer/validation.py, so MCP refuses exactly what REST refuses, with REST's message
in the tool's argument names. Every problem with the arguments is a tool error (`isError: true`) the agent can
read and fix, as MCP 2025-11-25 asks of input validation; only an unknown tool is a protocol error (-32602).
An argument the tool does not declare is refused by name. No answer exceeds what one MCP message may carry
(observer/mcp/fit.py).

Who is calling: the authentication middleware puts the Subject in `scope["state"]["subject"]` of every HTTP
request before /mcp is reached. The SDK hands each tool call the Starlette Request of the POST that carried it
(`ServerRequestContext.request`), so the caller is read per call, never remembered from the request that opened
the session: a revoked grant or a different token applies to the very next call.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from mcp import types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.exceptions import MCPError
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from access.model import Subject
from audit.mcp import tool_call_record
from audit.trail import AuditTrail
from observer.errors import ApiError
from observer.mcp.arguments import ToolError, api_error_text, refuse_unknown
from observer.mcp.fit import CLIENT_EVENT_LIMIT, RESULT_BUDGET, result_of, result_size, shorten
from observer.mcp.tools import (
    CONTRACT_TOOLS,
    EXTENDED_TOOLS,
    AlertQueries,
    ObserverTools,
    ToolSpec,
)
from observer.service import QueryService
from observer.validation import MAX_LIMIT, MAX_RANGE_NS

if TYPE_CHECKING:
    from starlette.applications import Starlette

__all__ = ["CONTRACT_TOOLS", "EXTENDED_TOOLS", "McpApp", "build_mcp_app", "mount_mcp", "INSTRUCTIONS"]

log = logging.getLogger(__name__)

SERVER_NAME = "openchoreo-observer"
SERVER_VERSION = "1.0.0"

INSTRUCTIONS = f"""\
Read-only access to the telemetry of applications running on OpenChoreo: runtime logs, Kubernetes events,
CPU/memory and HTTP metrics, distributed traces, alerts and incidents, for components and for CI/CD workflow
runs. Start from what you know: logs or events for "what happened", metrics for "how much", traces for "where
did a request go", alerts and incidents for "what fired".

Scope: every query names a namespace; narrow it with project, environment and component (a component needs
its project). Names are OpenChoreo's names, not Kubernetes ones. Workflow tools take a workflow_run_name instead.
query_platform_logs and query_audit_logs are cluster-wide: they take Kubernetes coordinates or audit filters
instead of a namespace, and need the cluster-scoped platformlogs:view / auditlogs:view permissions.
You may be allowed some scopes and not others: "insufficient permissions to perform this action" means ask
for a narrower scope you are allowed to read, not retry.

Time: start_time and end_time are RFC3339 (e.g. 2025-11-04T08:29:02Z), end not before start, and at most
{MAX_RANGE_NS // (24 * 3600 * 10**9)} days apart. Both bounds are inclusive.

Paging: limit is 1-{MAX_LIMIT} (default 100; on the logs and events tools 0 also means 100). Answers are
newest first unless sort_order is "asc"; total counts every match. When more matches exist, the logs and
events tools answer a nextCursor: pass it back as cursor, with the same other arguments, to read on. An answer
never exceeds what one MCP message may carry ({CLIENT_EVENT_LIMIT} bytes): a page that would is cut short, and
its note says so and how to read the rest.

Errors are tool results whose text says which argument to fix; an argument a tool does not declare is refused
by name, never ignored.
"""


def _failure(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=message)], is_error=True)


def caller_of(ctx: ServerRequestContext[Any, Any]) -> Subject | None:
    """The subject authentication left on the HTTP request that carried THIS message (None when
    authentication is off or the transport is not HTTP)."""
    request = ctx.request
    state = getattr(request, "scope", {}).get("state") if request is not None else None
    subject = state.get("subject") if isinstance(state, dict) else None
    return subject if isinstance(subject, Subject) else None


async def answer(spec: ToolSpec, caller: Subject | None, arguments: Mapping[str, Any]) -> types.CallToolResult:
    """One tools/call of `spec`: a result that fits one message, or a tool error saying what to fix. Nothing
    the caller sends makes it raise; a bug is logged and answered as an internal error without details."""
    return (await answer_with_outcome(spec, caller, arguments))[0]


async def answer_with_outcome(
    spec: ToolSpec, caller: Subject | None, arguments: Mapping[str, Any]
) -> tuple[types.CallToolResult, str]:
    """`answer`, and what became of the call as the audit trail says it: success, failure, or denied (the
    caller was refused: 401 or 403 in REST's terms)."""
    try:
        refuse_unknown(spec.name, spec.arguments, arguments)
        body = await spec.handler(caller, spec.call(arguments))
    except ToolError as error:
        return _failure(error.message), "failure"
    except ApiError as error:
        outcome = "denied" if error.status in (401, 403) else "failure"
        return _failure(api_error_text(error, spec.vocabulary)), outcome
    except Exception:
        log.exception("MCP tool %s failed", spec.name)
        return _failure(f"{spec.name} failed due to an internal error"), "failure"
    result = _fitted(body)
    return result, "failure" if result.is_error else "success"


def _fitted(body: Any) -> types.CallToolResult:
    """The answer to a call that succeeded, shortened to fit one MCP message (or a tool error saying it cannot)."""
    result = result_of(body)
    if result_size(result) <= RESULT_BUDGET:
        return result
    body, cut = shorten(body, RESULT_BUDGET - 1024)
    if cut:
        shortened = (
            f"{cut} long text values were shortened (each ends with how many characters were cut) to fit the"
            f" {CLIENT_EVENT_LIMIT} bytes one MCP message may carry."
        )
        body["note"] = f"{body['note']} {shortened}" if body.get("note") else shortened
    result = result_of(body)
    if result_size(result) > RESULT_BUDGET:
        return _failure(
            f"the answer is larger than the {CLIENT_EVENT_LIMIT} bytes one MCP message may carry; narrow the scope"
            " or the time range"
        )
    return result


class McpApp:
    """The ASGI app for /mcp, and the session manager whose lifetime the host app must span.

    Mount it with `mount_mcp` (so both `/mcp` and `/mcp/` are served, without a redirect) and enter
    `lifespan()` in the host app's lifespan: the streamable HTTP session manager runs its sessions in a task
    group that must exist before the first request and can be started only once per McpApp.
    """

    def __init__(self, server: Server[Any], session_manager: StreamableHTTPSessionManager, tools: ObserverTools):
        self.server = server
        self.session_manager = session_manager
        self.tools = tools

    def lifespan(self) -> AbstractAsyncContextManager[None]:
        return self.session_manager.run()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.session_manager.handle_request(scope, receive, send)


def build_mcp_app(
    query: QueryService,
    alerts: AlertQueries | None = None,
    *,
    extended: bool = False,
    audit: AuditTrail | None = None,
) -> McpApp:
    """The MCP server over `query` (and `alerts`, for query_alerts and query_incidents), serving streamable
    HTTP with stateful sessions (`Mcp-Session-Id`). `extended` adds the tools beyond upstream's 15. With `audit`,
    every tool call is recorded (audit/mcp.py) before its result is sent."""
    tools = ObserverTools(query, alerts, extended=extended)

    async def recorded(
        ctx: ServerRequestContext[Any, Any], tool: str, arguments: Mapping[str, Any], result: str
    ) -> None:
        if audit is not None and audit.enabled:
            scope = getattr(ctx.request, "scope", None) if ctx.request is not None else None
            record = tool_call_record(
                tool, arguments, caller_of(ctx), scope, result, trust_forwarded_for=audit.trust_forwarded_for
            )
            await audit.record(record)

    listing = types.ListToolsResult(tools=[spec.tool() for spec in tools.specs])

    async def list_tools(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        # No per-subject filtering: every caller sees every tool, and authorization is decided per call.
        return listing

    async def call_tool(
        ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        spec = tools.by_name.get(params.name)
        if spec is None:
            await recorded(ctx, params.name, params.arguments or {}, "failure")
            raise MCPError(types.INVALID_PARAMS, f"unknown tool: {params.name[:64]}")
        result, outcome = await answer_with_outcome(spec, caller_of(ctx), params.arguments or {})
        await recorded(ctx, spec.name, params.arguments or {}, outcome)
        return result

    def input_schema(name: str) -> Mapping[str, Any] | None:
        spec = tools.by_name.get(name)
        return spec.input_schema() if spec else None

    server: Server[Any] = Server(
        SERVER_NAME,
        version=SERVER_VERSION,
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        get_tool_input_schema=input_schema,
    )
    # Behind the public port's authentication and CORS, like every other route: the SDK's own DNS-rebinding
    # guard (meant for unauthenticated localhost servers) would only refuse legitimate Host names here.
    session_manager = StreamableHTTPSessionManager(app=server, json_response=False, stateless=False)
    return McpApp(server, session_manager, tools)


def mount_mcp(app: Starlette, mcp: McpApp, path: str = "/mcp") -> None:
    """Serves `mcp` at exactly `path` and at `path/`. A Starlette Mount would answer `/mcp` with a redirect
    to `/mcp/`, which MCP clients configured with `/mcp` (OpenChoreo's e2e, the Go SDK) do not expect."""
    for route_path in (path, path.rstrip("/") + "/"):
        app.router.routes.append(Route(route_path, mcp, include_in_schema=False))
