"""controlplane/auth.py without a server: the scope each kind's CRUD call is asked on, the list scope, the
settings (JWT_DISABLED, CONTROLPLANE_ADMIN_GROUPS), the bootstrap admin grant in the compiled policy, and the
guard's 401/403/admin answers over the real authorizer (an in-memory store of Authz* documents)."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.requests import Request

from access.model import Resource, Subject
from access.resources import resource_path
from access.settings import AuthConfigError
from controlplane import kinds
from controlplane.auth import (
    ADMIN_GROUPS_VARIABLE,
    AccessSettings,
    ApiAccess,
    Forbidden,
    Guard,
    action,
    admin_groups_from,
    list_resource,
    resource_for,
)
from controlplane.authz import ADMIN_ROLE, admin_rules, store_authorizer
from controlplane.errors import ApiError
from tests.unit.test_cp_authz_compile import MemoryStore, binding, mapping, role

OWNED = {"spec": {"owner": {"projectName": "shop", "componentName": "cart"}, "environment": "dev"}}


def path(kind: str, namespace: str | None, name: str = "", document: dict[str, Any] | None = None) -> str:
    return resource_path(resource_for(kinds.get(kind), namespace, name, document))


@pytest.mark.parametrize(
    ("kind", "namespace", "name", "document", "expected"),
    [
        ("Namespace", None, "acme", None, "ns/acme"),
        ("ClusterDataPlane", None, "default", None, "*"),
        ("ClusterAuthzRoleBinding", None, "b", None, "*"),
        ("Project", "acme", "shop", None, "ns/acme/project/shop"),
        (
            "Component",
            "acme",
            "cart",
            {"spec": {"owner": {"projectName": "shop"}}},
            "ns/acme/project/shop/component/cart",
        ),
        ("Component", "acme", "cart", None, "ns/acme"),  # not stored: the URL says no project
        ("Workload", "acme", "cart-w", OWNED, "ns/acme/project/shop/component/cart"),
        ("ReleaseBinding", "acme", "cart-dev", OWNED, "ns/acme/project/shop/component/cart"),
        ("Environment", "acme", "dev", {"spec": {}}, "ns/acme"),
        ("AuthzRoleBinding", "acme", "b", None, "ns/acme"),
        ("Component", "acme", "x", {"spec": {"owner": {"projectName": 7}}}, "ns/acme"),  # junk owner: namespace
        ("Project", "a/project/b", "p", None, "ns/a%2Fproject%2Fb/project/p"),  # a crafted name stays one level
    ],
)
def test_each_kind_is_asked_on_its_scope(kind, namespace, name, document, expected):
    assert path(kind, namespace, name, document) == expected


def test_a_release_binding_carries_its_environment_and_other_kinds_none():
    assert resource_for(kinds.get("ReleaseBinding"), "acme", "b", OWNED).environment == "dev"
    assert resource_for(kinds.get("Workload"), "acme", "w", OWNED).environment == ""


def test_lists_are_asked_on_the_namespace_or_the_filtered_project():
    assert resource_path(list_resource(kinds.get("Project"), "acme")) == "ns/acme"
    assert resource_path(list_resource(kinds.get("Component"), "acme", "shop")) == "ns/acme/project/shop"
    assert resource_path(list_resource(kinds.get("Namespace"), None)) == "*"
    assert resource_path(list_resource(kinds.get("ClusterAuthzRole"), None)) == "*"


def test_action_names_are_the_catalogues():
    assert action("ClusterAuthzRoleBinding", "delete") == "clusterauthzrolebinding:delete"
    assert action("Project", "create") == "project:create"


def test_forbidden_names_the_action_and_the_scope():
    error = Forbidden("component:create", Resource("component", "c", "acme", "shop", "c"))
    assert error.status == 403 and error.body() == {
        "error": "forbidden: component:create on namespace/acme/project/shop/component/c",
        "code": "FORBIDDEN",
    }
    assert (
        Forbidden("namespace:view", Resource("namespace", "", "")).message == "forbidden: namespace:view on the cluster"
    )


def test_settings_from_the_environment():
    off = AccessSettings.from_env({"JWT_DISABLED": "true", ADMIN_GROUPS_VARIABLE: " ops, ,platform,ops "})
    assert not off.enabled and off.admin_groups == ("ops", "platform")
    on = AccessSettings.from_env({"JWKS_URL": "https://idp.example/jwks"})
    assert on.enabled and on.admin_groups == ()
    with pytest.raises(AuthConfigError, match="JWKS_URL"):
        AccessSettings.from_env({})  # authentication on by default, and it needs an issuer: fail closed
    with pytest.raises(ValueError, match=ADMIN_GROUPS_VARIABLE):
        admin_groups_from(",".join(f"g{i}" for i in range(101)))


def test_the_admin_groups_are_granted_everything_in_the_policy():
    assert admin_rules([]) == []
    assert admin_rules(["ops"]) == [("p", ADMIN_ROLE, "*", "*", "*", "allow"), ("g", "groups:ops", ADMIN_ROLE)]


def _request(subject: Subject | None) -> Request:
    return Request({"type": "http", "method": "GET", "path": "/", "headers": [], "state": {"subject": subject}})


def user(*groups: str) -> Subject:
    return Subject("user", "groups", groups)


async def test_the_guard_asks_the_store_policy_and_lets_admins_through():
    store = MemoryStore()
    store.put(role("project-admin", "project:*"))
    guard = Guard(store_authorizer(store, ("ops",)), ("ops",))
    shop = Resource("project", "shop", "acme", "shop")
    with pytest.raises(Forbidden, match="project:create"):
        await guard.require(_request(user("devs")), "project:create", shop)
    store.put(binding("devs", mapping("project-admin"), value="devs"))
    await guard.require(_request(user("devs")), "project:create", shop)  # granted on the very next call
    with pytest.raises(Forbidden):
        await guard.require(_request(user("devs")), "component:create", shop)
    store.remove("ClusterAuthzRoleBinding", "", "devs")
    with pytest.raises(Forbidden):
        await guard.require(_request(user("devs")), "project:create", shop)
    with pytest.raises(ApiError) as missing:
        await guard.require(_request(None), "project:view", shop)
    assert missing.value.status == 401
    # admins pass, even past a deny; a service account whose sub equals the group's name is no admin
    store.put(role("everything", "*"))
    store.put(binding("deny-ops", mapping("everything"), value="ops", effect="deny"))
    await guard.require(_request(user("ops")), "namespace:delete", Resource("namespace", "acme", "acme"))
    with pytest.raises(Forbidden):
        await guard.require(_request(Subject("service_account", "sub", ("ops",))), "project:view", shop)


def test_with_authentication_off_there_is_no_middleware_and_no_guard():
    access = ApiAccess.open(AccessSettings.from_env({"JWT_DISABLED": "true"}), MemoryStore())
    assert access.middleware() == [] and access.guard is None
    assert "OFF (JWT_DISABLED=true)" in access.describe()
