"""Property-based fuzzing of every operation of both ports, driven by OpenChoreo's own observer-api.yaml.

Schemathesis generates requests from the upstream document, valid ones and invalid ones, and each is sent to
the real apps in process (ASGI) over a real embedded backend and alert store, with authentication off. Every
answer must hold to the contract:

- no 5xx, except a deliberate 503 (a dependency is down) and the documented 501s (FinOps not configured,
  events not implemented);
- every error body is exactly `{title, errorCode, message}`, with a title from the contract's enum;
- every 2xx body is valid against the upstream response schema of that operation and status.

Requests whose search scope names nothing known would only ever reach "not found", so each one that carries a
`searchScope` is sent a second time with the scope rewritten to the seeded names: the rest of it (times,
limits, phrases, unknown keys) stays as generated, and the success paths get fuzzed too.

The upstream `oneOf`s (the two search-scope shapes, the two metrics answers) have alternatives whose fields are
all optional, so one value can match several; they are read as `anyOf` here, as a JSON Schema validator would
otherwise refuse valid requests and answers. OBSERVER_FUZZ_EXAMPLES sets the examples per operation and mode.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from access.model import AllowAll
from adapters.embedded.backend import EmbeddedBackend
from domain.model import EventRecord, Identity, LogRecord, SpanRecord
from domain.timeutil import parse_rfc3339
from observer.alerting.plane import build_alerting
from observer.app import create_internal_app, create_public_app
from observer.finops import FINOPS_NOT_CONFIGURED
from tests.conftest import service_over

UPSTREAM = Path(__file__).resolve().parents[2].parent / "shared/reference/openchoreo/observer-api.yaml"
EXAMPLES = int(os.environ.get("OBSERVER_FUZZ_EXAMPLES", "30"))
INTERNAL_PREFIXES = ("/api/v1alpha1/alerts/sources/", "/api/v1alpha1/alerts/webhook")
TITLES = {"badRequest", "unauthorized", "forbidden", "notFound", "conflict", "internalServerError", "notImplemented"}
#: 501s the contract itself defines.
DELIBERATE_501 = {FINOPS_NOT_CONFIGURED, "OBS-V1-E-06"}
SEEDED_SCOPE = {"namespace": "acme", "project": "shop", "component": "cart", "environment": "prod"}
SEEDED_AT = "2026-01-01T00:30:00Z"
SEEDED_WINDOW = ("2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z")
SEEDED_TRACE, SEEDED_SPAN = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
SEEDED_PATH = {
    "traceId": SEEDED_TRACE,
    "spanId": SEEDED_SPAN,
    "sourceType": "log",
    "namespace": "acme",
    "environment": "prod",
}
IDENTITY = Identity(
    namespace="acme",
    project="shop",
    project_uid="11111111-1111-4111-8111-111111111111",
    component="cart",
    component_uid="22222222-2222-4222-8222-222222222222",
    environment="prod",
    environment_uid="33333333-3333-4333-8333-333333333333",
    pod="cart-1",
    container="app",
)


def upstream_spec() -> dict[str, Any]:
    spec = yaml.safe_load(UPSTREAM.read_text())
    _one_of_as_any_of(spec)
    return spec


def _one_of_as_any_of(node: Any) -> None:
    if isinstance(node, dict):
        if "oneOf" in node and "discriminator" not in node:
            node["anyOf"] = node.pop("oneOf")
        for child in node.values():
            _one_of_as_any_of(child)
    elif isinstance(node, list):
        for child in node:
            _one_of_as_any_of(child)


@dataclass
class Findings:
    """What broke the contract, one example per (operation, kind of failure), with how often it happened."""

    requests: int = 0
    statuses: dict[str, dict[int, int]] = field(default_factory=dict)  # operation -> status -> count
    seen: dict[tuple[str, str], list[Any]] = field(default_factory=dict)

    def add(self, label: str, kind: str, request: str, response: str) -> None:
        entry = self.seen.setdefault((label, kind), [0, request, response])
        entry[0] += 1

    def report(self) -> str:
        lines = []
        for (label, kind), (count, request, response) in sorted(self.seen.items()):
            lines.append(f"- {label}: {kind} (x{count})\n    request:  {request}\n    response: {response}")
        return "\n".join(lines)


def describe(case: Any) -> str:
    body = repr(case.body)
    body = body if len(body) <= 300 else body[:300] + "..."
    query = f"?{case.query}" if case.query else ""
    return f"{case.method} {case.formatted_path}{query} body={body}"


def check(operation: Any, case: Any, response: Any, findings: Findings) -> None:
    label, status = operation.label, response.status_code
    tally = findings.statuses.setdefault(label, {})
    tally[status] = tally.get(status, 0) + 1
    request, text = describe(case), f"{status} {response.text[:300]}"
    if 200 <= status < 300:
        try:
            operation.validate_response(response, case=case)
        except Exception as exc:  # schemathesis raises a group of failures with the schema's complaint
            findings.add(label, f"2xx body not valid against the upstream schema: {str(exc)[:300]}", request, text)
        return
    try:
        body = response.json()
    except ValueError:
        findings.add(label, f"{status} without a JSON body", request, text)
        return
    if not isinstance(body, dict) or set(body) != {"title", "errorCode", "message"}:
        findings.add(label, f"{status} body not in the contract's error shape", request, text)
    elif body["title"] not in TITLES or not all(isinstance(body[key], str) for key in body):
        findings.add(label, f"{status} error body with a bad title or non-string values", request, text)
    elif status >= 500 and status != 503 and not (status == 501 and body["errorCode"] in DELIBERATE_501):
        findings.add(label, f"{status} {body['errorCode']}", request, text)


def variants(case: Any) -> Iterator[Any]:
    """The case as generated; then with the names and ids it carries (search scope, path parameters) pointed at
    the seeded ones; then also over the hour around the seeded data. Whatever else it carries stays as
    generated, so the success paths see fuzzed limits, phrases, orders, levels and unknown keys."""
    yield case
    body, path = case.body, case.path_parameters or {}
    has_scope = isinstance(body, dict) and isinstance(body.get("searchScope"), dict)
    known_path = {name: SEEDED_PATH[name] for name in path if name in SEEDED_PATH}
    if not has_scope and not known_path:
        return
    case.path_parameters = {**path, **known_path}
    if has_scope:
        scope = dict(body["searchScope"])
        for key, value in SEEDED_SCOPE.items():
            if key in scope or key == "namespace":
                scope[key] = value
        case.body = {**body, "searchScope": scope}
    yield case
    if has_scope:
        case.body = {**case.body, "startTime": SEEDED_WINDOW[0], "endTime": SEEDED_WINDOW[1]}
    elif isinstance(case.query, dict) and "startTime" in case.query:
        case.query = {**case.query, "startTime": SEEDED_WINDOW[0], "endTime": SEEDED_WINDOW[1]}
    else:
        return
    yield case


def fuzz(operation: Any, app: Any, findings: Findings) -> None:
    strategy = st.one_of(operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE))

    @settings(
        max_examples=EXAMPLES * 2,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        phases=[hypothesis.Phase.generate],
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        for variant in variants(case):
            findings.requests += 1
            try:
                response = variant.call(app=app)
            except Exception as exc:  # the app raised through the transport: a 500 the client never got
                findings.add(operation.label, f"exception {type(exc).__name__}", describe(variant), str(exc)[:300])
            else:
                check(operation, variant, response, findings)

    run()


@pytest.fixture
def apps(tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    """The public and the internal app over one embedded backend (a few logs, an event and a span of the seeded
    scope) and one alert store. Sync, because schemathesis drives ASGI apps from its own event loop."""
    backend = EmbeddedBackend(tmp_path / "data")
    at = parse_rfc3339(SEEDED_AT)
    trace, span = SEEDED_TRACE, SEEDED_SPAN
    asyncio.run(
        backend.write(
            batch_id="seed",
            logs=[LogRecord(at + i, f"line {i} ERROR something", IDENTITY, level="ERROR") for i in range(5)],
            events=[
                EventRecord(
                    at,
                    "Pulled image",
                    IDENTITY,
                    type="Normal",
                    reason="Pulled",
                    object_kind="Pod",
                    object_name="cart-1",
                    object_namespace="acme",
                )
            ],
            spans=[SpanRecord(trace, span, "", "GET /cart", "Server", at, at + 10**6, IDENTITY, attributes={"k": "v"})],
        )
    )
    alerting = build_alerting(
        dsn=str(tmp_path / "alerts.db"),
        suppression_window="1h",
        resolver=backend.registry,
        authorizer=AllowAll(),
        logs=backend,
        metrics=backend,
    )
    public = create_public_app(service_over(backend), alert_service=alerting.service)
    internal = create_internal_app(alerting)
    yield public, internal
    asyncio.run(alerting.close())
    backend.close()


def test_every_operation_of_both_ports_keeps_the_contract(apps, capsys):
    public, internal = apps
    schema = schemathesis.openapi.from_dict(upstream_spec())
    operations = [result.ok() for result in schema.get_all_operations()]
    findings = Findings()
    started = time.monotonic()
    for operation in operations:
        app = internal if operation.path.startswith(INTERNAL_PREFIXES) else public
        fuzz(operation, app, findings)
    elapsed = time.monotonic() - started
    with capsys.disabled():
        print(
            f"\nfuzz: {findings.requests} generated requests over {len(operations)} operations in {elapsed:.1f}s,"
            f" {len(findings.seen)} distinct findings"
        )
        for label, tally in findings.statuses.items():
            print(f"  {label}: {dict(sorted(tally.items()))}")
        if findings.seen:
            print(findings.report())
    assert len(operations) == 18
    assert not findings.seen, "requests that broke the contract:\n" + findings.report()


def test_the_oracle_flags_what_the_old_front_door_answered():
    """The checks above are not vacuous: FastAPI's own bodies, a stray 500 and a malformed page all count."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    broken = FastAPI()
    answers = {
        "detail": (404, {"detail": "Not Found"}),
        "crash": (500, {"title": "internalServerError", "errorCode": "", "message": "internal server error"}),
        "page": (200, {"logs": "not a list", "total": 0, "tookMs": 0}),
        "title": (400, {"title": "payloadTooLarge", "errorCode": "X", "message": "m"}),
    }

    @broken.post("/api/v1/logs/query")
    async def logs(body: dict[str, Any]) -> JSONResponse:
        status, content = answers[body["searchPhrase"]]
        return JSONResponse(content, status_code=status)

    schema = schemathesis.openapi.from_dict(upstream_spec())
    [operation] = [
        result.ok() for result in schema.get_all_operations() if result.ok().label == "POST /api/v1/logs/query"
    ]
    findings = Findings()
    for phrase in answers:
        case = operation.Case(
            body={
                "startTime": "2026-01-01T00:00:00Z",
                "endTime": "2026-01-01T01:00:00Z",
                "searchScope": {"namespace": "acme"},
                "searchPhrase": phrase,
            },
            media_type="application/json",
        )
        check(operation, case, case.call(app=broken), findings)
    kinds = sorted(kind for _, kind in findings.seen)
    assert len(kinds) == 4, kinds
    assert any(kind.startswith("2xx body not valid") for kind in kinds)
    assert "404 body not in the contract's error shape" in kinds
    assert "500 " in kinds
    assert "400 error body with a bad title or non-string values" in kinds
