"""The control plane's API behind authentication and its own authorization (controlplane/auth.py), served by uvicorn
over a real SQLite store and asked with tokens of a real OIDC issuer (devservers/oidc.py): 401 without a valid
token, 403 naming the action for a caller no binding allows, a ClusterAuthzRoleBinding that grants and, deleted,
denies the very next call, project-scoped grants, the bootstrap admin group, and the authz API mounted beside."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from access.settings import AuthSettings
from controlplane.api import create_app
from controlplane.auth import AccessSettings, ApiAccess
from controlplane.store import Store
from devservers.controlplane import controlplane_process
from devservers.local import serving
from devservers.oidc import OidcIssuer, SigningKey
from tests.unit.test_cp_authz_compile import binding, mapping, role

NS = "/api/v1/namespaces/acme"
ADMINS = "cp-admins"


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return OidcIssuer.new_key("RS256", kid="cp-auth-1")


@pytest.fixture
def issuer(oidc_issuer: OidcIssuer, key: SigningKey) -> OidcIssuer:
    oidc_issuer.reset()
    oidc_issuer.publish(key)
    return oidc_issuer


@pytest.fixture
def api(issuer: OidcIssuer, tmp_path: Path) -> Iterator[str]:
    """The API with authentication on, admin group `cp-admins`, the namespace `acme` in place."""
    store = Store(f"sqlite:///{tmp_path / 'cp.db'}")
    store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "acme"}})
    settings = AccessSettings(
        AuthSettings(jwks_url=issuer.jwks_url, issuer=issuer.url, audiences=("observer-api",)), (ADMINS,)
    )
    access = ApiAccess.open(settings, store)
    try:
        with serving(create_app(store, middleware=access.middleware(), guard=access.guard)) as url:
            yield url
    finally:
        store.close()


class Caller:
    """An httpx client carrying a token for `groups` (None: no Authorization header at all)."""

    def __init__(self, url: str, token: str | None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        self.http = httpx.Client(base_url=url, headers=headers, timeout=10)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.http, name)


@pytest.fixture
def as_user(api: str, issuer: OidcIssuer, key: SigningKey) -> Iterator[Any]:
    clients: list[Caller] = []

    def make(*groups: str, sub: str = "alice") -> Caller:
        caller = Caller(api, issuer.mint(key, groups=list(groups), sub=sub))
        clients.append(caller)
        return caller

    yield make
    for caller in clients:
        caller.http.close()


def project(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"deploymentPipelineRef": {"name": "default"}, "type": {"name": "default"}},
    }


def component(name: str, project_name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"owner": {"projectName": project_name}, "componentType": {"name": "deployment/service"}},
    }


def forbidden(response: httpx.Response, action: str) -> bool:
    body = response.json()
    return response.status_code == 403 and body["code"] == "FORBIDDEN" and action in body["error"]


def test_public_paths_answer_without_a_token(api):
    for path in ("/health", "/ready", "/version"):
        assert httpx.get(f"{api}{path}", timeout=10).status_code == 200, path


def test_no_token_and_a_bad_token_are_401_error_responses(api, issuer, key):
    for token in (None, "not-a-jwt", issuer.mint(OidcIssuer.new_key("RS256", kid="unpublished"), groups=[ADMINS])):
        with Caller(api, token).http as client:
            for response in (client.get(f"{NS}/projects"), client.post(f"{NS}/projects", json=project("p"))):
                assert response.status_code == 401, (token, response.text)
                assert response.json()["code"] == "UNAUTHORIZED" and response.json()["error"]
    # a token for another audience is refused too
    with Caller(api, issuer.mint(key, groups=[ADMINS], aud="someone-else")).http as client:
        assert client.get(f"{NS}/projects").status_code == 401


def test_a_user_without_a_binding_is_403_naming_the_action(as_user):
    admin, stranger = as_user(ADMINS), as_user("strangers")
    assert admin.post(f"{NS}/projects", json=project("shop")).status_code == 201
    assert forbidden(stranger.post(f"{NS}/projects", json=project("mine")), "project:create")
    assert forbidden(stranger.get(f"{NS}/projects/shop"), "project:view")
    assert forbidden(stranger.get(f"{NS}/projects"), "project:view")
    assert forbidden(stranger.put(f"{NS}/projects/shop", json=project("shop")), "project:update")
    assert forbidden(stranger.delete(f"{NS}/projects/shop"), "project:delete")
    assert forbidden(stranger.get("/api/v1/clusterauthzrolebindings"), "clusterauthzrolebinding:view")
    assert forbidden(stranger.post("/api/v1/namespaces", json={"metadata": {"name": "x"}}), "namespace:create")
    assert admin.get(f"{NS}/projects/shop").status_code == 200


def test_a_cluster_binding_grants_and_its_deletion_denies_the_very_next_call(as_user):
    admin, dev = as_user(ADMINS), as_user("devs")
    assert admin.post("/api/v1/clusterauthzroles", json=role("project-admin", "project:*")).status_code == 201
    grant = binding("devs-projects", mapping("project-admin"), value="devs")
    assert admin.post("/api/v1/clusterauthzrolebindings", json=grant).status_code == 201

    assert dev.post(f"{NS}/projects", json=project("shop")).status_code == 201
    assert dev.get(f"{NS}/projects/shop").status_code == 200
    assert [item["metadata"]["name"] for item in dev.get(f"{NS}/projects").json()["items"]] == ["shop"]
    assert forbidden(dev.post(f"{NS}/components", json=component("cart", "shop")), "component:create")

    assert admin.delete("/api/v1/clusterauthzrolebindings/devs-projects").status_code == 204
    assert forbidden(dev.get(f"{NS}/projects/shop"), "project:view")
    assert forbidden(dev.post(f"{NS}/projects", json=project("other")), "project:create")


def test_a_project_scoped_binding_covers_that_project_only(as_user):
    admin, dev = as_user(ADMINS), as_user("devs")
    for name in ("shop", "bank"):
        assert admin.post(f"{NS}/projects", json=project(name)).status_code == 201
    assert admin.post(f"{NS}/authzroles", json=role("builder", "component:*", namespace="acme")).status_code == 201
    scoped = binding("devs-shop", mapping("builder", "AuthzRole", {"project": "shop"}), namespace="acme")
    assert admin.post(f"{NS}/authzrolebindings", json=scoped).status_code == 201

    assert dev.post(f"{NS}/components", json=component("cart", "shop")).status_code == 201
    refused = dev.post(f"{NS}/components", json=component("vault", "bank"))
    assert forbidden(refused, "component:create") and "project/bank" in refused.json()["error"]
    assert dev.get(f"{NS}/components", params={"project": "shop"}).status_code == 200
    assert forbidden(dev.get(f"{NS}/components"), "component:view")  # the whole namespace: not granted
    assert dev.delete(f"{NS}/components/cart").status_code == 204


def test_authz_writes_are_checked_and_the_authz_api_is_mounted(as_user, api):
    admin, dev = as_user(ADMINS), as_user("devs")
    bad = admin.post("/api/v1/clusterauthzroles", json=role("typo", "projects:create"))
    assert bad.status_code == 400
    assert bad.json()["details"][0] == {"field": "spec.actions[0]", "message": "unknown action 'projects:create'"}
    assert httpx.get(f"{api}/api/v1/authz/actions", timeout=10).status_code == 401
    assert dev.get("/api/v1/authz/actions").status_code == 200
    # the admin group's grant is in the policy, so the authz API (and a remote observer) says so too
    profile = admin.get("/api/v1/authz/profile", params={"namespace": "acme"}).json()
    assert profile["capabilities"]["project:delete"]["allowed"] == [{"path": "*"}]
    question = {
        "resource": {"type": "namespace", "id": "acme", "hierarchy": {"namespace": "acme"}},
        "action": "project:view",
    }
    assert admin.post("/api/v1/authz/evaluates", json=[question]).json()[0]["decision"] is True
    assert dev.post("/api/v1/authz/evaluates", json=[question]).json()[0]["decision"] is False


def test_the_admin_group_can_do_everything(as_user):
    admin = as_user("someone", ADMINS)
    assert admin.post("/api/v1/namespaces", json={"metadata": {"name": "beta"}}).status_code == 201
    assert admin.post("/api/v1/namespaces/beta/projects", json=project("p")).status_code == 201
    assert admin.post("/api/v1/namespaces/beta/components", json=component("c", "p")).status_code == 201
    assert admin.get("/api/v1/namespaces/beta/components").json()["items"][0]["metadata"]["name"] == "c"
    # a deny binding cannot lock the admins out of the API (break glass)
    assert admin.post("/api/v1/clusterauthzroles", json=role("all", "*")).status_code == 201
    deny = binding("deny-admins", mapping("all"), value=ADMINS, effect="deny")
    assert admin.post("/api/v1/clusterauthzrolebindings", json=deny).status_code == 201
    assert admin.delete("/api/v1/clusterauthzrolebindings/deny-admins").status_code == 204


def test_with_authentication_off_the_api_is_open(tmp_path: Path):
    store = Store(f"sqlite:///{tmp_path / 'open.db'}")
    access = ApiAccess.open(AccessSettings(AuthSettings.disabled()), store)
    assert access.guard is None and access.middleware() == [] and "OFF" in access.describe()
    try:
        with serving(create_app(store, middleware=access.middleware(), guard=access.guard)) as url:
            assert (
                httpx.post(f"{url}/api/v1/namespaces", json={"metadata": {"name": "a"}}, timeout=10).status_code == 201
            )
            assert httpx.get(f"{url}/api/v1/namespaces", timeout=10).status_code == 200
    finally:
        store.close()


def test_the_process_says_how_it_checks_callers(tmp_path: Path, issuer: OidcIssuer):
    with controlplane_process(tmp_path / "open") as running:  # devservers' default: JWT_DISABLED=true
        assert "AUTHENTICATION AND AUTHORIZATION OFF (JWT_DISABLED=true)" in running.output()
        assert httpx.get(f"{running.url}/api/v1/namespaces", timeout=10).status_code == 200
    env = {"JWT_DISABLED": "false", "JWKS_URL": issuer.jwks_url, "CONTROLPLANE_ADMIN_GROUPS": "ops, platform"}
    with controlplane_process(tmp_path / "closed", env=env) as running:
        assert "Authz* policy enforced, admin groups: ops, platform" in running.output()
        assert httpx.get(f"{running.url}/api/v1/namespaces", timeout=10).status_code == 401
        assert httpx.get(f"{running.url}/version", timeout=10).status_code == 200
