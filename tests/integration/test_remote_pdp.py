"""The remote decision point client against a real HTTP server on loopback playing OpenChoreo's authz service:
what it sends (contract §2.1), how each answer maps, and that the caller's token never leaks."""

from __future__ import annotations

import asyncio
import json
import logging
import traceback
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from access import model as authz
from access.model import AuthorizationUnavailable, NotAuthenticated, PermissionDenied, Subject
from access.resources import incident_update_resource, resource_for
from devservers.local import free_port, serving
from devservers.tls_proxy import self_signed_cert, serving_tls
from domain.model import WorkflowScope
from observer.auth.remote_pdp import RemoteAuthorizer
from observer.validation import NamedScope

TOKEN = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0LXBheWxvYWQ.s1gnature-THAT-MUST-NOT-LEAK"
USER = Subject("user", "groups", ("shop-devs", "oncall"), token=TOKEN)
ROBOT = Subject("service_account", "sub", ("svc-7",), token=TOKEN)
CART_PROD = resource_for(NamedScope("acme", "shop", "cart", "prod"))


class FakePdp:
    """Records every request (path, headers, JSON body) and answers what the test scripted: a decision, a status,
    a raw body, or a delay longer than the client's timeout."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str], object]] = []
        self.decision: object = True
        self.status = 200
        self.raw: str | None = None
        self.delay_s = 0.0
        self.app = Starlette(routes=[Route("/{path:path}", self.handle, methods=["POST"])])

    def script(
        self, *, decision: object = True, status: int = 200, raw: str | None = None, delay_s: float = 0.0
    ) -> None:
        self.decision, self.status, self.raw, self.delay_s = decision, status, raw, delay_s

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        self.seen.append((request.url.path, dict(request.headers), json.loads(body)))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.raw is not None:
            return Response(self.raw, status_code=self.status, media_type="application/json")
        if self.status != 200:
            # A careless service echoing the credential back: the client must not pass it on.
            return JSONResponse(
                {"error": "nope", "echo": request.headers.get("authorization", "")}, status_code=self.status
            )
        return JSONResponse([{"decision": self.decision, "context": {"reason": f"scripted for {TOKEN[:8]}"}}])

    @property
    def last(self) -> tuple[str, dict[str, str], object]:
        return self.seen[-1]


@pytest.fixture(scope="module")
def pdp() -> Iterator[FakePdp]:
    fake = FakePdp()
    with serving(fake.app) as url:
        fake.url = url
        yield fake


@pytest.fixture
async def client(pdp: FakePdp):
    pdp.script()
    authorizer = RemoteAuthorizer(pdp.url, timeout_s=5)
    yield authorizer
    await authorizer.aclose()


async def test_request_shape_for_a_component_with_environment(pdp, client):
    await client.authorize(USER, authz.LOGS_VIEW, CART_PROD)
    path, headers, body = pdp.last
    assert path == "/api/v1/authz/evaluates"
    assert headers["authorization"] == f"Bearer {TOKEN}"
    assert headers["content-type"] == "application/json"
    assert body == [
        {
            "subject_context": {
                "type": "user",
                "entitlement_claim": "groups",
                "entitlement_values": ["shop-devs", "oncall"],
            },
            "resource": {
                "type": "component",
                "id": "cart",
                "hierarchy": {"namespace": "acme", "project": "shop", "component": "cart"},
            },
            "action": "logs:view",
            "context": {"resource": {"environment": "acme/prod"}},
        }
    ]


@pytest.mark.parametrize(
    ("subject", "action", "resource", "expected_resource", "expected_context"),
    [
        (
            USER,
            authz.METRICS_VIEW,
            resource_for(NamedScope("acme", "shop")),
            {"type": "project", "id": "shop", "hierarchy": {"namespace": "acme", "project": "shop"}},
            {},
        ),
        (
            USER,
            authz.TRACES_VIEW,
            resource_for(NamedScope("acme", "", "", "dev")),
            {"type": "namespace", "id": "acme", "hierarchy": {"namespace": "acme"}},
            {"resource": {"environment": "acme/dev"}},
        ),
        (
            ROBOT,
            authz.EVENTS_VIEW,
            resource_for(WorkflowScope("acme", "build-9", "compile")),
            {"type": "workflowRun", "id": "build-9", "hierarchy": {"namespace": "acme"}},
            {},
        ),
        (
            ROBOT,
            authz.LOGS_VIEW,
            resource_for(WorkflowScope("acme")),
            {"type": "namespace", "id": "acme", "hierarchy": {"namespace": "acme"}},
            {},
        ),
        (
            USER,
            authz.ALERTS_VIEW,
            CART_PROD,
            {
                "type": "component",
                "id": "cart",
                "hierarchy": {"namespace": "acme", "project": "shop", "component": "cart"},
            },
            {},
        ),
        (
            USER,
            authz.INCIDENTS_VIEW,
            CART_PROD,
            {
                "type": "component",
                "id": "cart",
                "hierarchy": {"namespace": "acme", "project": "shop", "component": "cart"},
            },
            {},
        ),
        (USER, authz.INCIDENTS_UPDATE, incident_update_resource(), {"type": "namespace", "hierarchy": {}}, {}),
    ],
)
async def test_request_shapes(pdp, client, subject, action, resource, expected_resource, expected_context):
    await client.authorize(subject, action, resource)
    (request,) = pdp.last[2]
    assert request["resource"] == expected_resource
    assert request["context"] == expected_context
    assert request["action"] == action
    assert request["subject_context"]["entitlement_claim"] == subject.entitlement_claim
    assert request["subject_context"]["entitlement_values"] == list(subject.entitlement_values)


async def test_a_subject_without_a_token_sends_no_authorization_header(pdp, client):
    await client.authorize(Subject("user", "groups", ("g",)), authz.LOGS_VIEW, CART_PROD)
    assert "authorization" not in pdp.last[1]


async def test_decision_false_is_permission_denied(pdp, client):
    pdp.script(decision=False)
    with pytest.raises(PermissionDenied):
        await client.authorize(USER, authz.LOGS_VIEW, CART_PROD)


async def test_no_subject_is_not_authenticated_and_asks_nobody(pdp, client):
    before = len(pdp.seen)
    with pytest.raises(NotAuthenticated):
        await client.authorize(None, authz.LOGS_VIEW, CART_PROD)
    assert len(pdp.seen) == before


@pytest.mark.parametrize(
    ("script", "error"),
    [
        ({"status": 401}, NotAuthenticated),
        ({"status": 403}, PermissionDenied),
        ({"status": 500}, AuthorizationUnavailable),
        ({"status": 502}, AuthorizationUnavailable),
        ({"status": 404}, AuthorizationUnavailable),
        ({"status": 201, "raw": "[]"}, AuthorizationUnavailable),
        ({"raw": "not json"}, AuthorizationUnavailable),
        ({"raw": "[]"}, AuthorizationUnavailable),
        ({"raw": "{}"}, AuthorizationUnavailable),
        ({"raw": '[{"decision": "true"}]'}, AuthorizationUnavailable),
        ({"raw": '[{"context": {}}]'}, AuthorizationUnavailable),
    ],
)
async def test_answers_map_to_outcomes(pdp, client, script, error):
    pdp.script(**script)
    with pytest.raises(error):
        await client.authorize(USER, authz.LOGS_VIEW, CART_PROD)


async def test_timeout_is_unavailable(pdp):
    pdp.script(delay_s=1.0)
    authorizer = RemoteAuthorizer(pdp.url, timeout_s=0.1)
    try:
        with pytest.raises(AuthorizationUnavailable, match="timed out"):
            await authorizer.authorize(USER, authz.LOGS_VIEW, CART_PROD)
    finally:
        await authorizer.aclose()
        pdp.script()


async def test_connection_refused_is_unavailable():
    authorizer = RemoteAuthorizer(f"http://127.0.0.1:{free_port()}", timeout_s=5)
    try:
        with pytest.raises(AuthorizationUnavailable, match="unreachable"):
            await authorizer.authorize(USER, authz.LOGS_VIEW, CART_PROD)
    finally:
        await authorizer.aclose()


async def test_a_base_url_with_a_path_prefix(pdp):
    pdp.script()
    authorizer = RemoteAuthorizer(f"{pdp.url}/authz-svc/", timeout_s=5)
    try:
        await authorizer.authorize(USER, authz.LOGS_VIEW, CART_PROD)
    finally:
        await authorizer.aclose()
    assert pdp.last[0] == "/authz-svc/api/v1/authz/evaluates"


# ------------------------------------------------------------------------------------------- TLS


async def test_tls_verification_and_insecure_skip_verify(tmp_path):
    fake = FakePdp()
    cert, key = self_signed_cert(tmp_path, "authz")
    with serving_tls(fake.app, cert, key) as url:
        verifying = RemoteAuthorizer(url, timeout_s=5)
        skipping = RemoteAuthorizer(url, timeout_s=5, tls_insecure_skip_verify=True)
        try:
            with pytest.raises(AuthorizationUnavailable):
                await verifying.authorize(USER, authz.LOGS_VIEW, CART_PROD)
            assert fake.seen == [], "nothing, token included, reached an unverified server"
            await skipping.authorize(USER, authz.LOGS_VIEW, CART_PROD)
            assert fake.last[1]["authorization"] == f"Bearer {TOKEN}"
        finally:
            await verifying.aclose()
            await skipping.aclose()


# ------------------------------------------------------------------------------------------- the token


async def test_the_token_never_appears_in_logs_or_errors(pdp, caplog):
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []

    def keep(exc: BaseException) -> None:
        seen.extend([str(exc), repr(exc), "".join(traceback.format_exception(exc))])

    authorizer = RemoteAuthorizer(pdp.url, timeout_s=0.2)
    refused = RemoteAuthorizer(f"http://127.0.0.1:{free_port()}", timeout_s=1)
    try:
        for script in (
            {"decision": True},
            {"decision": False},
            {"status": 401},
            {"status": 403},
            {"status": 500},
            {"raw": f"not json {TOKEN}"},
            {"raw": "[]"},
            {"delay_s": 1.0},
        ):
            pdp.script(**script)
            try:
                await authorizer.authorize(USER, authz.LOGS_VIEW, CART_PROD)
            except Exception as exc:  # noqa: BLE001 - every outcome is inspected
                keep(exc)
        with pytest.raises(AuthorizationUnavailable) as caught:
            await refused.authorize(USER, authz.LOGS_VIEW, CART_PROD)
        keep(caught.value)
        seen.extend([repr(USER), str(USER), repr(authorizer)])
    finally:
        pdp.script()
        await authorizer.aclose()
        await refused.aclose()

    logged = caplog.text
    # Not vacuous: the failures were logged, and the server did see the token.
    assert "answered 500" in logged and "not a decision array" in logged and "did not answer" in logged
    assert "unreachable" in " ".join(seen)
    assert any(headers.get("authorization") == f"Bearer {TOKEN}" for _, headers, _ in pdp.seen)
    for secret in (TOKEN, TOKEN.split(".")[-1], TOKEN.split(".")[1]):
        assert secret not in logged
        assert not [text for text in seen if secret in text]


async def test_a_revoked_grant_applies_to_the_next_request(pdp, client):
    """Decisions are never cached: the service's answer to this request is the one that counts."""
    await client.authorize(USER, authz.LOGS_VIEW, CART_PROD)
    pdp.script(decision=False)
    with pytest.raises(PermissionDenied):
        await client.authorize(USER, authz.LOGS_VIEW, CART_PROD)
    pdp.script(decision=True)
    await client.authorize(USER, authz.LOGS_VIEW, CART_PROD)
