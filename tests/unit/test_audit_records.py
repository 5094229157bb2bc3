"""What a record says, piece by piece: the actor from a verified Subject (its token's sub, iss and sid, never
the token), the request's facts (bounded, printable, X-Forwarded-For only when trusted), the action names the
describers give each plane's routes, and an MCP tool call's record."""

from __future__ import annotations

import base64

import orjson

from access.model import Subject
from audit.actions import path_action
from audit.actors import ANONYMOUS, actor_of
from audit.context import request_facts
from audit.created import BodyPeek
from audit.mcp import tool_call_record, tool_resource
from domain.audit import AuditResource, audit_document


def token(**claims: object) -> str:
    def part(value: object) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(value)).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2lnbmF0dXJl"


def test_a_user_is_its_sub_and_issuer_entitled_by_its_groups():
    subject = Subject("user", "groups", ("devs", "ops"), token=token(sub="alice", iss="https://idp", sid="s-1"))
    actor = actor_of(subject)
    assert (actor.type, actor.id, actor.issuer, actor.session_id) == ("user", "alice", "https://idp", "s-1")
    assert actor.entitlements == (("groups", ("devs", "ops")),)
    assert "c2lnbmF0dXJl" not in repr(actor)  # the token goes nowhere


def test_a_service_account_without_a_readable_token_is_its_sub_entitlement():
    actor = actor_of(Subject("service_account", "sub", ("ci-bot",), token="not-a-jwt"))
    assert (actor.type, actor.id, actor.issuer) == ("service_account", "ci-bot", "")
    assert actor.entitlements == (("sub", ("ci-bot",)),)  # under the claim the subject type names


def test_entitlements_sit_under_whatever_claim_the_subject_type_configures():
    actor = actor_of(Subject("user", "realm_access.roles", ("admin",), token=token(sub="bob")))
    assert actor.entitlements == (("realm_access.roles", ("admin",)),)
    assert actor.entitlement_values == ("admin",)


def test_no_subject_is_anonymous_and_claims_are_bounded():
    assert actor_of(None) == ANONYMOUS
    groups = tuple(f"{index:03d}" + "g" * 1000 for index in range(100))
    long = actor_of(Subject("user", "groups", groups, token=token(sub="x" * 1000)))
    (claim, values), *_ = long.entitlements
    assert len(long.id) == 256 and claim == "groups" and len(values) == 64 and len(values[0]) == 256


def scope(headers: list[tuple[bytes, bytes]], client: tuple[str, int] | None = ("10.0.0.9", 5000)) -> dict:
    return {
        "type": "http",
        "method": "PUT",
        "path": "/api/v1alpha1/incidents/i-1",
        "headers": headers,
        "client": client,
    }


def test_request_facts_take_the_callers_headers_bounded_and_printable():
    facts = request_facts(
        scope([(b"x-request-id", b"req-1\x00\x1b[31m"), (b"user-agent", b"curl/8 " + b"a" * 1000)]),
    )
    assert facts.request_id == "req-1[31m"
    assert facts.user_agent.startswith("curl/8 ") and len(facts.user_agent) == 256
    assert (facts.method, facts.path, facts.source_ip) == ("PUT", "/api/v1alpha1/incidents/i-1", "10.0.0.9")
    assert len(request_facts(scope([])).request_id) == 32  # none given: one is made


def test_x_forwarded_for_counts_only_when_trusted_and_then_only_its_last_entry():
    headers = [(b"x-forwarded-for", b"6.6.6.6, 192.0.2.7")]
    assert request_facts(scope(headers)).source_ip == "10.0.0.9"
    assert request_facts(scope(headers), trust_forwarded_for=True).source_ip == "192.0.2.7"
    assert request_facts(scope([]), trust_forwarded_for=True).source_ip == "10.0.0.9"


def test_routes_no_table_names_are_named_by_their_path():
    assert path_action("POST", "/api/v1/logs/query") == "logs.query"
    assert path_action("POST", "/api/v1alpha1/platform-logs/filter-values") == "platformlogs.filtervalues"
    assert path_action("PUT", "/api/v1alpha1/incidents/{incidentId}") == "incidents.update"
    assert path_action("GET", "/api/v1alpha1/traces/{traceId}/spans/{spanId}") == "traces.spans.get"
    assert path_action("DELETE", "/mcp") == "mcp.delete"


def test_a_tool_call_names_the_scope_its_arguments_ask_about():
    arguments = {"namespace": "acme", "project": "shop", "component": "cart", "environment": "prod", "limit": 5}
    assert tool_resource("query_component_logs", arguments) == AuditResource(
        type="component", namespace="acme", project="shop", component="cart", environment="acme/prod", name="cart"
    )
    assert tool_resource("query_workflow_logs", {"namespace": "acme", "workflow_run_name": "b-1"}) == AuditResource(
        type="workflowrun", namespace="acme", name="b-1"
    )
    assert tool_resource("query_audit_logs", {}) == AuditResource(type="auditlogs")
    assert tool_resource("query_traces", {"namespace": 7}) is None  # not a string: not a scope


def test_a_tool_call_record():
    subject = Subject("user", "groups", ("devs",), token=token(sub="alice", iss="https://idp"))
    http = scope([(b"user-agent", b"agent/1"), (b"x-request-id", b"r-9")])
    record = tool_call_record(
        "query_component_logs", {"namespace": "acme"}, subject, http, "denied", producer="observer"
    )
    document = audit_document(record)
    assert document["action"] == "mcp.query_component_logs" and document["operation_id"] == "query_component_logs"
    assert (document["surface"], document["result"], document["category"]) == ("mcp", "denied", "authorization")
    assert document["actor"] == {
        "type": "user",
        "id": "alice",
        "issuer": "https://idp",
        "entitlements": {"groups": ["devs"]},
    }
    assert (document["request_id"], document["user_agent"], document["source_ip"]) == ("r-9", "agent/1", "10.0.0.9")
    assert document["resource"] == {"type": "namespace", "namespace": "acme", "name": "acme"}
    allowed = tool_call_record("query_traces", {}, None, None, "success")
    assert (allowed.category, allowed.actor, allowed.resource) == ("access", ANONYMOUS, None)


async def test_a_create_names_its_object_from_the_body_and_nothing_else_of_it():
    async def feed(*chunks: bytes):
        messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]

        async def receive() -> dict:
            return messages.pop(0)

        return receive

    peek = BodyPeek(await feed(b'{"metadata": {"na', b'me": "cart\\u0007", "labels": {"secret": "x"}}}'))
    while (await peek.receive()).get("more_body"):
        pass
    assert peek.metadata_name() == "cart"
    big = BodyPeek(await feed(b'{"metadata": {"name": "a"}, "pad": "' + b"x" * 64 + b'"}'), limit=32)
    await big.receive()
    assert big.metadata_name() == ""  # too large to keep: no name rather than unbounded memory
    for body in (b"not json", b"[1]", b'{"metadata": {"name": 7}}'):
        other = BodyPeek(await feed(body))
        await other.receive()
        assert other.metadata_name() == ""
