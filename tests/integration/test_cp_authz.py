"""The control plane's authz API on a real server (controlplane/authz.py behind access/middleware.py, served by
uvicorn), asked with real OIDC tokens (devservers/oidc.py) by the observer's unchanged RemoteAuthorizer: allow and
deny as the Authz* documents say, a revoke in force on the very next call, 401 without a valid token, 400 naming
the field of a bad body, and the profile and actions documents of openchoreo-api.yaml."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from access.authn import Authenticator
from access.casbin_pdp import CasbinAuthorizer
from access.middleware import AuthMiddleware
from access.model import NotAuthenticated, PermissionDenied, Resource, Subject
from access.settings import AuthSettings
from controlplane.authz import authz_router, store_authorizer
from controlplane.store import Store
from devservers.local import serving
from devservers.oidc import OidcIssuer, SigningKey
from observer.auth.remote_pdp import RemoteAuthorizer
from tests.unit.test_cp_authz_compile import MemoryStore, binding, mapping, role

CART_DEV = Resource("component", "cart", "acme", "shop", "cart", "dev")
CART_PROD = Resource("component", "cart", "acme", "shop", "cart", "prod")
OTHER_NS = Resource("component", "cart", "beta", "shop", "cart", "dev")


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return OidcIssuer.new_key("RS256", kid="cp-authz-1")


@pytest.fixture
def issuer(oidc_issuer: OidcIssuer, key: SigningKey) -> OidcIssuer:
    oidc_issuer.reset()
    oidc_issuer.publish(key)
    return oidc_issuer


class Holder:
    """The authorizer the running server asks, swapped by each test (one server per module)."""

    authorizer: CasbinAuthorizer | None = None

    def __call__(self) -> CasbinAuthorizer:
        assert self.authorizer is not None
        return self.authorizer


@pytest.fixture(scope="module")
def control_plane(oidc_issuer: OidcIssuer) -> Iterator[tuple[str, Holder]]:
    settings = AuthSettings(jwks_url=oidc_issuer.jwks_url, issuer=oidc_issuer.url, audiences=("observer-api",))
    holder = Holder()
    app = FastAPI()
    app.include_router(authz_router(holder))
    app.add_middleware(AuthMiddleware, authenticator=Authenticator(settings), settings=settings)
    with serving(app) as url:
        yield url, holder


class Documents:
    """The same writes on either store: the in-memory one of the unit tests or the real SQLite Store."""

    def __init__(self, backend: str, tmp_path: Path) -> None:
        self.memory = MemoryStore() if backend == "memory" else None
        self.sqlite = Store(f"sqlite:///{tmp_path / 'cp.db'}") if backend == "sqlite" else None
        if self.sqlite is not None:
            self.sqlite.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "acme"}})

    @property
    def store(self) -> Any:
        return self.memory if self.memory is not None else self.sqlite

    def put(self, document: dict[str, Any]) -> None:
        if self.memory is not None:
            self.memory.put(document)
        else:
            assert self.sqlite is not None
            self.sqlite.create(document)

    def remove(self, kind: str, namespace: str, name: str) -> None:
        if self.memory is not None:
            self.memory.remove(kind, namespace, name)
        else:
            assert self.sqlite is not None
            self.sqlite.delete(kind, namespace or None, name)


@pytest.fixture(params=["memory", "sqlite"])
def documents(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Documents]:
    docs = Documents(request.param, tmp_path)
    yield docs
    if docs.sqlite is not None:
        docs.sqlite.close()


@pytest.fixture
def served(control_plane: tuple[str, Holder], documents: Documents, issuer: OidcIssuer) -> str:
    """The server, asking a fresh authorizer over this test's documents: a viewer role for `devs` in acme,
    logs only in dev."""
    url, holder = control_plane
    documents.put(role("viewer", "logs:view", "metrics:view"))
    documents.put(
        binding(
            "devs",
            mapping("viewer", "ClusterAuthzRole", logs__view='resource.environment in ["acme/dev"]'),
            namespace="acme",
        )
    )
    holder.authorizer = store_authorizer(documents.store)
    return url


@pytest.fixture
async def remote(served: str) -> Any:
    authorizer = RemoteAuthorizer(served, timeout_s=10)
    yield authorizer
    await authorizer.aclose()


def alice(issuer: OidcIssuer, key: SigningKey, groups: list[str] | None = None) -> Subject:
    token = issuer.mint(key, groups=groups if groups is not None else ["devs"])
    return Subject("user", "groups", tuple(groups if groups is not None else ["devs"]), token=token)


async def test_the_observers_remote_authorizer_gets_allow_and_deny(remote, issuer, key):
    subject = alice(issuer, key)
    await remote.authorize(subject, "logs:view", CART_DEV)
    await remote.authorize(subject, "metrics:view", CART_PROD)  # not under the condition
    for action, resource in (("logs:view", CART_PROD), ("logs:view", OTHER_NS), ("traces:view", CART_DEV)):
        with pytest.raises(PermissionDenied):
            await remote.authorize(subject, action, resource)
    with pytest.raises(PermissionDenied):
        await remote.authorize(alice(issuer, key, ["strangers"]), "logs:view", CART_DEV)


async def test_a_revoke_and_a_grant_apply_to_the_next_call(remote, documents, issuer, key):
    subject = alice(issuer, key)
    await remote.authorize(subject, "logs:view", CART_DEV)
    documents.remove("AuthzRoleBinding", "acme", "devs")
    with pytest.raises(PermissionDenied):
        await remote.authorize(subject, "logs:view", CART_DEV)
    documents.put(binding("devs-again", mapping("viewer"), namespace="acme"))
    await remote.authorize(subject, "logs:view", CART_PROD)


async def test_a_caller_without_a_valid_token_is_not_authenticated(remote, issuer, key):
    with pytest.raises(NotAuthenticated):
        await remote.authorize(Subject("user", "groups", ("devs",)), "logs:view", CART_DEV)
    stranger = OidcIssuer.new_key("RS256", kid="cp-authz-unknown")
    forged = Subject("user", "groups", ("devs",), token=issuer.mint(stranger))
    with pytest.raises(NotAuthenticated):
        await remote.authorize(forged, "logs:view", CART_DEV)


def _post(url: str, token: str, body: bytes) -> httpx.Response:
    return httpx.post(
        f"{url}/api/v1/authz/evaluates",
        content=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=10,
    )


def test_evaluates_answers_in_order_for_the_named_subject(served, issuer, key):
    token = issuer.mint(key, groups=["strangers"])
    devs = {"type": "user", "entitlement_claim": "groups", "entitlement_values": ["devs"]}
    hierarchy = {"namespace": "acme", "project": "shop", "component": "cart"}
    body = [
        {"subject_context": devs, "resource": {"type": "component", "id": "cart", "hierarchy": hierarchy},
         "action": "logs:view", "context": {"resource": {"environment": "acme/dev"}}},
        {"resource": {"type": "component", "id": "cart", "hierarchy": hierarchy}, "action": "logs:view",
         "context": {"resource": {"environment": "acme/dev"}}},
        {"subject_context": devs, "resource": {"type": "component", "hierarchy": hierarchy}, "action": "logs:view",
         "context": {"resource": {"environment": "acme/prod"}}},
    ]  # fmt: skip
    response = _post(served, token, json.dumps(body).encode())
    assert response.status_code == 200
    assert response.json() == [
        {"decision": True, "context": {"reason": "allowed by binding:acme/devs#0"}},
        {"decision": False, "context": {"reason": "no matching allow"}},  # the caller itself: a stranger
        {"decision": False, "context": {"reason": "no matching allow"}},
    ]


@pytest.mark.parametrize(
    ("body", "details"),
    [
        (b"{not json", [{"field": "body", "message": "is not JSON"}]),
        (b'{"action": "logs:view"}', [{"field": "body", "message": "must be an array of EvaluateRequest"}]),
        (
            b'[{"action": "logs:view", "resource": {"type": "component", "hierarchy": {"namespace": 1}}}]',
            [{"field": "[0].resource.hierarchy.namespace", "message": "must be a string"}],
        ),
    ],
)
def test_a_bad_body_is_a_400_error_response(served, issuer, key, body, details):
    response = _post(served, issuer.mint(key, groups=["devs"]), body)
    assert response.status_code == 400
    answer = response.json()
    assert answer["code"] == "BAD_REQUEST" and answer["error"] and answer["details"] == details


def test_an_oversized_body_is_refused(served, issuer, key):
    response = _post(served, issuer.mint(key, groups=["devs"]), b"[" + b" " * (1 << 20) + b"]")
    assert response.status_code == 413 and response.json()["code"] == "BAD_REQUEST"


def test_profile_and_actions(served, issuer, key):
    headers = {"Authorization": f"Bearer {issuer.mint(key, groups=['devs'])}"}
    response = httpx.get(f"{served}/api/v1/authz/profile", params={"namespace": "acme"}, headers=headers, timeout=10)
    assert response.status_code == 200
    profile = response.json()
    assert profile["user"] == {"type": "user", "entitlement_claim": "groups", "entitlement_values": ["devs"]}
    assert profile["capabilities"]["logs:view"] == {
        "allowed": [{"path": "namespace/acme", "constraints": {"expressions": ['resource.environment in ["dev"]']}}],
        "denied": [],
    }
    assert profile["capabilities"]["metrics:view"] == {"allowed": [{"path": "namespace/acme"}], "denied": []}
    assert profile["evaluatedAt"].endswith("Z")
    bad = httpx.get(f"{served}/api/v1/authz/profile", params={"component": "c"}, headers=headers, timeout=10)
    assert bad.status_code == 400 and bad.json()["details"][0] == {
        "field": "project",
        "message": "is required when component is set",
    }
    actions = httpx.get(f"{served}/api/v1/authz/actions", headers=headers, timeout=10)
    assert actions.status_code == 200
    by_name = {action["name"]: action for action in actions.json()}
    assert by_name["logs:view"]["lowestScope"] == "component" and "conditions" in by_name["logs:view"]
    assert by_name["component:create"] == {"name": "component:create", "lowestScope": "component"}
    assert httpx.get(f"{served}/api/v1/authz/actions", timeout=10).status_code == 401
