"""Who may tail what, and which scopes each caller is shown: real tokens from a real OIDC issuer, the embedded
Casbin policy, the public app on uvicorn over the embedded backend.

A denied tail is answered 403 (JSON, before any stream) without a single name resolved; the scopes listing shows
a caller bound to one component exactly that component, and each caller what its grant covers. The process's cap
on tails answers 503 and frees a slot when a tail ends. Without a hub or a listing resolver, 501 says why.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from access.casbin_pdp import CasbinAuthorizer
from access.policy_sources import FilePolicySource
from access.settings import AuthSettings
from adapters.embedded.backend import EmbeddedBackend
from devservers.local import serving
from devservers.sample import BASE_NS, identity
from domain.model import LogRecord
from observer.app import create_public_app
from observer.resolver_http import OpenChoreoResolver
from observer.service import QueryService
from observer.tail import TailHub, TailSettings

TAIL = "/api/v1alpha1/logs/tail"
SCOPES = "/api/v1alpha1/scopes"
POLICY = """
roles:
  admin: ["*"]
  viewer: [logs:view]
  developer: ["logs:*"]
  metrics-only: [metrics:view]
bindings:
  - {name: admins, role: admin, groups: [platform-admins]}
  - {name: cart-devs, role: developer, groups: [cart-devs], namespace: acme, project: shop, component: cart}
  - {name: prod-viewers, role: viewer, groups: [prod-viewers], namespace: acme, environments: [prod]}
  - {name: metrics, role: metrics-only, groups: [metrics-people], namespace: acme}
"""
CART = {"namespace": "acme", "project": "shop", "component": "cart", "environment": "prod"}
FRONTEND = {**CART, "component": "frontend"}


class CountedResolver:
    """The real registry, counting how often a name is resolved (a denied tail must resolve none)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.calls = inner, 0

    async def resolve(self, *names: str) -> tuple[str, str, str]:
        self.calls += 1
        return await self.inner.resolve(*names)

    async def entries(self) -> list[dict[str, str]]:
        return await self.inner.entries()


@dataclass
class App:
    url: str
    resolver: CountedResolver


@pytest.fixture(scope="module")
def app(tmp_path_factory, oidc_issuer) -> Iterator[App]:
    root: Path = tmp_path_factory.mktemp("tail-access")
    embedded = EmbeddedBackend(root / "data")
    seed = [
        LogRecord(BASE_NS, f"{component} {env}", identity(component, env, namespace=namespace))
        for namespace in ("acme", "globex")
        for component in ("frontend", "cart", "payments")
        for env in ("dev", "prod")
    ]
    asyncio.run(embedded.write(batch_id="seed", logs=seed))
    policy = root / "policy.yaml"
    policy.write_text(POLICY)
    resolver = CountedResolver(embedded.registry)
    service = QueryService(
        resolver,
        logs=embedded,
        events=embedded,
        traces=embedded,
        metrics=embedded,
        authorizer=CasbinAuthorizer(FilePolicySource(policy)),
    )
    auth = AuthSettings(
        jwks_url=oidc_issuer.jwks_url,
        issuer=oidc_issuer.url,
        audiences=("observer-api",),
        auth_server_base_url=oidc_issuer.url,
    )
    hub = TailHub(TailSettings(max_tails=2, heartbeat_seconds=0.2))
    with serving(create_public_app(service, "", auth, tail_hub=hub)) as url:
        yield App(url, resolver)
    embedded.close()


@pytest.fixture(scope="module")
def tokens(oidc_issuer) -> dict[str, str]:
    oidc_issuer.reset()
    key = oidc_issuer.new_key("ES256")
    oidc_issuer.publish(key)
    groups = ("platform-admins", "cart-devs", "prod-viewers", "metrics-people", "strangers")
    return {group: oidc_issuer.mint(key, groups=[group], sub=group) for group in groups}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def scopes_of(app: App, token: str) -> dict[str, Any]:
    response = httpx.get(app.url + SCOPES, headers=bearer(token), timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def names(namespace: dict[str, Any]) -> tuple[dict[str, list[str]], list[str]]:
    projects = {p["name"]: [c["name"] for c in p["components"]] for p in namespace["projects"]}
    return projects, [e["name"] for e in namespace["environments"]]


# ----------------------------------------------------------------------------------------------- scopes


def test_a_caller_bound_to_one_component_is_shown_that_component_only(app, tokens):
    (acme,) = scopes_of(app, tokens["cart-devs"])["namespaces"]
    assert acme["name"] == "acme"
    assert names(acme) == ({"shop": ["cart"]}, ["dev", "prod"])


def test_an_admin_sees_everything_the_registry_knows(app, tokens):
    body = scopes_of(app, tokens["platform-admins"])
    assert [ns["name"] for ns in body["namespaces"]] == ["acme", "globex"]
    for namespace in body["namespaces"]:
        assert names(namespace) == ({"shop": ["cart", "frontend", "payments"]}, ["dev", "prod"])
    assert "truncated" not in body


def test_a_grant_limited_to_an_environment_shows_that_environment_only(app, tokens):
    (acme,) = scopes_of(app, tokens["prod-viewers"])["namespaces"]
    assert names(acme) == ({"shop": ["cart", "frontend", "payments"]}, ["prod"])


@pytest.mark.parametrize("group", ["strangers", "metrics-people"])
def test_callers_who_may_not_view_logs_are_shown_nothing(app, tokens, group):
    assert scopes_of(app, tokens[group]) == {"namespaces": []}


def test_scopes_need_a_token(app):
    assert httpx.get(app.url + SCOPES, timeout=10).status_code == 401


def test_a_resolver_that_cannot_list_says_so():
    resolver = OpenChoreoResolver("http://127.0.0.1:9")  # never asked: listing is refused before any call
    service = QueryService(resolver, logs=None, events=None, traces=None, metrics=None)  # type: ignore[arg-type]
    with serving(create_public_app(service)) as url:
        response = httpx.get(url + SCOPES, timeout=10)
        tail = httpx.post(url + TAIL, json={"searchScope": CART}, timeout=10)
    assert response.status_code == 501
    assert response.json()["errorCode"] == "SCOPES_NOT_LISTABLE"
    assert "cannot list" in response.json()["message"]
    assert tail.status_code == 501  # and an app with no tail hub has no tail
    assert tail.json()["errorCode"] == "TAIL_NOT_AVAILABLE"


# ----------------------------------------------------------------------------------------------- tail


@pytest.mark.parametrize(("group", "scope"), [("cart-devs", FRONTEND), ("strangers", CART), ("metrics-people", CART)])
def test_a_denied_tail_is_refused_before_any_stream_and_resolves_nothing(app, tokens, group, scope):
    before = app.resolver.calls
    response = httpx.post(app.url + TAIL, json={"searchScope": scope}, headers=bearer(tokens[group]), timeout=10)
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["message"] == "Access denied"
    assert app.resolver.calls == before


def test_a_tail_needs_a_token(app):
    assert httpx.post(app.url + TAIL, json={"searchScope": CART}, timeout=10).status_code == 401


def test_an_allowed_tail_streams_and_the_cap_refuses_one_more_until_one_ends(app, tokens):
    headers = bearer(tokens["cart-devs"])
    with httpx.Client(base_url=app.url, headers=headers, timeout=10) as client:
        with client.stream("POST", TAIL, json={"searchScope": CART}) as first:
            assert first.status_code == 200
            assert first.headers["content-type"].startswith("text/event-stream")
            with client.stream("POST", TAIL, json={"searchScope": CART, "maxSeconds": 1}) as second:
                assert second.status_code == 200
                busy = client.post(TAIL, json={"searchScope": CART})
                assert busy.status_code == 503
                assert busy.json()["errorCode"] == "TOO_MANY_TAILS"
                assert busy.headers["Retry-After"] == "5"
                assert 'event: end\ndata: {"reason":"max duration"' in second.read().decode()
            # the tail that ended left its slot: a new one is admitted while the first still runs
            with client.stream("POST", TAIL, json={"searchScope": CART, "maxSeconds": 1}) as third:
                assert third.status_code == 200
                assert b"event: start" in next(third.iter_bytes())
