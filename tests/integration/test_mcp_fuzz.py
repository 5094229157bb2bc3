"""Every MCP tool, fuzzed over its input schema through the official client over real HTTP.

Arguments are drawn per property from a mix of values that mean something on the seeded plane (so the
generator reaches the backends, not only the first check) and anything the schema's type allows: odd strings
(empty, blanks, NUL, non-ASCII, huge), any number, lists of anything, and now and then a value of the wrong
type or an argument the tool does not declare. Whatever comes in, the call must end as either
- a tool error whose text says something (never "failed due to an internal error", never a protocol error),
- or a result whose structuredContent validates against the tool's output schema and equals its text.
The budget is bounded (MAX_EXAMPLES calls, well under a minute); the number of calls made is printed.
"""

from __future__ import annotations

import asyncio
import json
import string
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from anyio.from_thread import start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from adapters.embedded.backend import EmbeddedBackend
from devservers.local import serving
from devservers.sample import BASE_NS, NS
from domain.timeutil import format_rfc3339
from observer.alerting.db import open_engine
from observer.alerting.entries import EntryStore
from observer.alerting.service import AlertService
from observer.app import create_public_app
from observer.mcp import build_mcp_app
from observer.service import QueryService
from tests.integration.test_mcp import END, RUN, START, TRACE, mcp_client, seed_alerts, seed_records

MAX_EXAMPLES = 500
MINUTE = 60 * 10**9

Call = Callable[[str, dict[str, Any]], Any]


@pytest.fixture(scope="module")
def call_tool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Call, dict[str, Any]]]:
    """A synchronous `call_tool(name, arguments)` on one session of the official client (hypothesis drives
    plain functions; the client lives on its own event loop in a portal thread), and the tools as listed."""
    data = tmp_path_factory.mktemp("mcp-fuzz")
    backend = EmbeddedBackend(data / "data")
    asyncio.run(backend.write(batch_id="seed", **seed_records()))
    entries = EntryStore(open_engine(str(data / "alerts.db")))
    seed_alerts(entries)
    service = QueryService(
        backend.registry,
        logs=backend,
        events=backend,
        traces=backend,
        metrics=backend,
        platform_logs=backend,
        audit=backend,
    )
    alerts = AlertService(entries, backend.registry, service.authorizer)
    app = create_public_app(service, mcp=build_mcp_app(service, alerts, extended=True))
    with serving(app, lifespan="on") as url, start_blocking_portal() as portal:
        with portal.wrap_async_context_manager(mcp_client(url)) as (client, _):
            tools = {tool.name: tool for tool in portal.call(client.list_tools).tools}
            yield (lambda name, arguments: portal.call(client.call_tool, name, arguments)), tools
    backend.close()
    entries.engine.dispose()


# ----------------------------------------------------------------------------------------------- arguments

_TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=40)
_ODD_TEXT = st.sampled_from(["", " ", "\x00", "a\x00b", "é", "🙂", "x" * 5000, "'; DROP TABLE logs; --", "%", "_"])
_TIMES = st.sampled_from(
    [
        START,
        END,
        format_rfc3339(BASE_NS),
        format_rfc3339(BASE_NS - 31 * 24 * 60 * MINUTE),
        "2026-09-21T13:53:20.5+02:00",
        "1035-08-27T10:19:55Z",
        "9999-12-31T00:00:00Z",
        "2026-13-01T00:00:00Z",
        "yesterday",
        "",
    ]
)
#: Values that mean something on the seeded plane, per argument name.
_MEANINGFUL: dict[str, st.SearchStrategy[Any]] = {
    "namespace": st.sampled_from([NS, NS, "other", ""]),
    "project": st.sampled_from(["shop", "shop", "nope"]),
    "component": st.sampled_from(["cart", "frontend", "payments", "nope"]),
    "environment": st.sampled_from(["prod", "dev", "nope"]),
    "start_time": _TIMES,
    "end_time": _TIMES,
    "timestamp": st.sampled_from([format_rfc3339(BASE_NS + 10 * 10**9), START, "noon"]),
    "sort_order": st.sampled_from(["asc", "desc", "", "ASC"]),
    "log_levels": st.lists(st.sampled_from(["ERROR", "INFO", "WARN", "DEBUG", "error", "TRACE"]), max_size=3),
    "limit": st.sampled_from([0, 1, 5, 100, 1000, 1001, -5, 2.5, 10**30]),
    "before": st.sampled_from([0, 3, 200, 201, -1, 1.5]),
    "after": st.sampled_from([0, 3, 200, 201, -1, 1.5]),
    "step": st.sampled_from(["1m", "5m", "1h", "0s", "-1m", "1d", "99999999999999999999h", "1ns"]),
    "trace_id": st.sampled_from([TRACE, TRACE.upper(), "0" * 32, "xyz", ""]),
    "span_id": st.sampled_from([f"{2:016x}", "ffffffffffffffff", "0" * 16, "nothex"]),
    "workflow_run_name": st.sampled_from([RUN, "nope", ""]),
    "task_name": st.sampled_from(["compile", "nope"]),
    "search_phrase": st.sampled_from(["line 04", "ERROR", "", "\x00", "x" * 2000]),
    "granularity": st.sampled_from(["1h", "1d", "0d", "1y"]),
    "cursor": st.sampled_from(["", "not-a-cursor", "eyJxIjoiMCIsInAiOlsxXX0"]),
}
_ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=5,
)


def _of_type(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    kind = schema.get("type")
    if kind == "string":
        return st.sampled_from(schema["enum"]) if "enum" in schema else (_TEXT | _ODD_TEXT)
    if kind == "number":
        return st.integers(-(2**63), 2**63) | st.floats(allow_nan=False, allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "array":
        return st.lists(_TEXT | _ODD_TEXT, max_size=4)
    return _ANY_JSON


def _value(name: str, schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    typed = _of_type(schema)
    meaningful = _MEANINGFUL.get(name)
    choices = [meaningful, meaningful, typed] if meaningful is not None else [typed]
    return st.one_of(*choices)


#: Values a call can succeed with, per argument name: most calls are built from these, with a few
#: arguments then replaced by anything, so the generator reaches the backends and the cut pages as well as
#: every check on the way.
_VALID: dict[str, st.SearchStrategy[Any]] = {
    "namespace": st.just(NS),
    "project": st.just("shop"),
    "component": st.sampled_from(["cart", "frontend", "payments"]),
    "environment": st.just("prod"),
    "start_time": st.sampled_from([START, format_rfc3339(BASE_NS + 25 * MINUTE)]),
    "end_time": st.sampled_from([END, format_rfc3339(BASE_NS + 40 * MINUTE)]),
    "timestamp": st.just(format_rfc3339(BASE_NS + 10 * 10**9)),
    "sort_order": st.sampled_from(["asc", "desc"]),
    "log_levels": st.lists(st.sampled_from(["ERROR", "INFO", "WARN", "DEBUG"]), max_size=4, unique=True),
    "limit": st.integers(1, 1000),
    "before": st.integers(0, 200),
    "after": st.integers(0, 200),
    "step": st.sampled_from(["1m", "5m", "10m"]),
    "trace_id": st.just(TRACE),
    "span_id": st.just(f"{2:016x}"),
    "workflow_run_name": st.just(RUN),
    "task_name": st.just("compile"),
    "search_phrase": st.sampled_from(["line", "quoted", "é"]),
    "include_gateways": st.booleans(),
    "include_external": st.booleans(),
}


@st.composite
def tool_calls(draw: st.DrawFn, tools: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    name = draw(st.sampled_from(sorted(tools)))
    schema = tools[name].input_schema
    arguments: dict[str, Any] = {}
    for prop, prop_schema in schema["properties"].items():
        required = prop in schema.get("required", [])
        if required or draw(st.booleans()):
            valid = _VALID.get(prop)
            arguments[prop] = draw(valid if valid is not None else _value(prop, prop_schema))
    for _ in range(draw(st.integers(0, 3))):  # then a few arguments replaced by anything their name suggests
        prop = draw(st.sampled_from(sorted(schema["properties"])))
        if draw(st.integers(0, 4)) == 0:
            arguments.pop(prop, None)
        else:
            arguments[prop] = draw(_value(prop, schema["properties"][prop]))
    if draw(st.integers(0, 9)) == 0 and arguments:  # a value of the wrong type
        arguments[draw(st.sampled_from(sorted(arguments)))] = draw(_ANY_JSON)
    if draw(st.integers(0, 14)) == 0:  # an argument the tool does not declare
        arguments[draw(st.text(string.ascii_letters + "_", min_size=1, max_size=20))] = draw(_ANY_JSON)
    return name, arguments


# ----------------------------------------------------------------------------------------------- the test


def test_every_tool_answers_every_input_with_a_result_or_a_tool_error(call_tool: tuple[Call, dict[str, Any]]) -> None:
    call, tools = call_tool
    validators = {name: Draft202012Validator(tool.output_schema) for name, tool in tools.items()}
    outcomes = {"ok": 0, "tool error": 0}

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(tool_calls(tools))
    def one_call(drawn: tuple[str, dict[str, Any]]) -> None:
        name, arguments = drawn
        # The official client raises on a protocol error and on structuredContent its output schema refuses.
        result = call(name, arguments)
        text = result.content[0].text if result.content and result.content[0].type == "text" else ""
        if result.is_error:
            outcomes["tool error"] += 1
            assert text.strip(), (name, arguments)
            assert "internal error" not in text, (name, arguments, text)
            assert len(text) < 2000, (name, arguments, text[:300])
            return
        outcomes["ok"] += 1
        errors = list(validators[name].iter_errors(result.structured_content))
        assert not errors, (name, arguments, errors[0].message)
        assert json.loads(text) == result.structured_content

    one_call()
    print(f"\nMCP fuzz: {sum(outcomes.values())} tool calls over {len(tools)} tools: {outcomes}")
    assert outcomes["ok"] > 10 and outcomes["tool error"] > 10  # both paths were really exercised
