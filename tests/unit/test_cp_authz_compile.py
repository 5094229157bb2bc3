"""The control plane's Authz* documents compiled to the embedded Casbin policy (controlplane/authz.py): each shape
gives the rules the module docstring promises, the indexed decision point and a plain Casbin Enforcer agree on
every question over them, what cannot compile is refused naming its field, and a store-backed authorizer applies a
grant or revoke on the very next call."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import pytest

from access.casbin_pdp import PolicySnapshot, plain_enforcer
from access.model import PermissionDenied, Resource, Subject
from access.policy_sources import PolicyError, StaticPolicySource
from controlplane import authz
from controlplane.authz import (
    ACTION_NAMES,
    StorePolicySource,
    check,
    compile_documents,
    known_action,
    store_authorizer,
)

API = "openchoreo.dev/v1alpha1"


def role(name: str, *actions: str, namespace: str = "") -> dict[str, Any]:
    kind = "AuthzRole" if namespace else "ClusterAuthzRole"
    metadata = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": API, "kind": kind, "metadata": metadata, "spec": {"actions": list(actions)}}


def binding(
    name: str,
    *mappings: dict[str, Any],
    namespace: str = "",
    claim: str = "groups",
    value: str = "devs",
    effect: str = "allow",
) -> dict[str, Any]:
    kind = "AuthzRoleBinding" if namespace else "ClusterAuthzRoleBinding"
    metadata = {"name": name, **({"namespace": namespace} if namespace else {})}
    spec = {"entitlement": {"claim": claim, "value": value}, "roleMappings": list(mappings), "effect": effect}
    return {"apiVersion": API, "kind": kind, "metadata": metadata, "spec": spec}


def mapping(
    role_name: str, kind: str = "ClusterAuthzRole", scope: dict[str, str] | None = None, **conditions: str
) -> dict[str, Any]:
    """A roleMapping; each keyword is `action_pattern=expression` with `__` for `:` (logs__view)."""
    out: dict[str, Any] = {"roleRef": {"kind": kind, "name": role_name}}
    if scope:
        out["scope"] = scope
    if conditions:
        out["conditions"] = [
            {"actions": [action.replace("__", ":")], "expression": expression}
            for action, expression in conditions.items()
        ]
    return out


# ------------------------------------------------------------------------------------------- shapes


def test_namespaced_binding_of_a_namespaced_role_on_a_project():
    rules = compile_documents(
        [
            role("reader", "logs:view", "metrics:view", namespace="acme"),
            binding("devs", mapping("reader", "AuthzRole", {"project": "shop"}), namespace="acme"),
        ]
    )
    assert rules == [
        ("p", "binding:acme/devs#0", "ns/acme/project/shop", "logs:view", "*", "allow"),
        ("p", "binding:acme/devs#0", "ns/acme/project/shop", "metrics:view", "*", "allow"),
        ("g", "groups:devs", "binding:acme/devs#0"),
    ]


def test_cluster_binding_without_scope_spans_every_namespace():
    rules = compile_documents([role("admin", "*"), binding("admins", mapping("admin"), value="ops")])
    assert rules == [
        ("p", "clusterbinding:admins#0", "*", "*", "*", "allow"),
        ("g", "groups:ops", "clusterbinding:admins#0"),
    ]


def test_cluster_binding_scopes_and_one_role_per_mapping():
    rules = compile_documents(
        [
            role("viewer", "logs:view"),
            binding(
                "multi",
                mapping("viewer", scope={"namespace": "acme"}),
                mapping("viewer", scope={"namespace": "beta", "project": "p", "component": "c"}),
                claim="sub",
                value="robot",
                effect="deny",
            ),
        ]
    )
    assert rules == [
        ("p", "clusterbinding:multi#0", "ns/acme", "logs:view", "*", "deny"),
        ("g", "sub:robot", "clusterbinding:multi#0"),
        ("p", "clusterbinding:multi#1", "ns/beta/project/p/component/c", "logs:view", "*", "deny"),
        ("g", "sub:robot", "clusterbinding:multi#1"),
    ]


def test_role_references_resolve_by_kind_and_namespace():
    """An AuthzRole comes from the binding's own namespace; a missing role grants nothing (yet); a mapping on a
    `resource` compiles to nothing."""
    documents = [
        role("reader", "logs:view", namespace="other"),
        role("reader", "traces:view"),  # the ClusterAuthzRole of the same name
        binding(
            "devs",
            mapping("reader", "AuthzRole"),  # not in acme: nothing
            mapping("reader", "ClusterAuthzRole"),
            mapping("missing"),
            mapping("reader", scope={"project": "shop", "resource": "db"}),
            namespace="acme",
        ),
    ]
    assert compile_documents(documents) == [
        ("p", "binding:acme/devs#1", "ns/acme", "traces:view", "*", "allow"),
        ("g", "groups:devs", "binding:acme/devs#1"),
    ]


def test_conditions_limit_their_actions_to_environments():
    documents = [
        role("dev", "logs:view", "metrics:view", namespace="acme"),
        binding(
            "devs",
            mapping("dev", "AuthzRole", logs__view='resource.environment in ["dev", "acme/staging", "beta/prod"]'),
            namespace="acme",
        ),
    ]
    assert compile_documents(documents) == [
        ("p", "binding:acme/devs#0", "ns/acme", "logs:view", "dev|staging", "allow"),  # beta/prod: never in acme
        ("p", "binding:acme/devs#0", "ns/acme", "metrics:view", "*", "allow"),
        ("g", "groups:devs", "binding:acme/devs#0"),
    ]


def test_a_wildcard_role_action_is_expanded_around_a_condition():
    documents = [
        role("all", "*"),
        binding("x", mapping("all", logs__view='resource.environment == "acme/dev"'), value="x"),
    ]
    rules = compile_documents(documents)
    logs = [rule for rule in rules if rule[0] == "p" and rule[3] == "logs:view"]
    # A cluster-wide binding places a namespace-prefixed environment on that namespace.
    assert logs == [("p", "clusterbinding:x#0", "ns/acme", "logs:view", "dev", "allow")]
    others = {rule[3] for rule in rules if rule[0] == "p" and rule[3] != "logs:view"}
    assert others == set(ACTION_NAMES) - {"logs:view"}
    assert all(rule[2:5] == ("*", rule[3], "*") for rule in rules if rule[0] == "p" and rule[3] != "logs:view")


def test_several_conditions_on_one_action_are_ored():
    documents = [
        role("r", "logs:*"),
        binding(
            "b",
            {
                "roleRef": {"kind": "ClusterAuthzRole", "name": "r"},
                "scope": {"namespace": "acme"},
                "conditions": [
                    {"actions": ["logs:view"], "expression": 'resource.environment == "dev"'},
                    {"actions": ["logs:*"], "expression": 'resource.environment == "qa"'},
                ],
            },
        ),
    ]
    assert compile_documents(documents) == [
        ("p", "clusterbinding:b#0", "ns/acme", "logs:view", "dev|qa", "allow"),
        ("g", "groups:devs", "clusterbinding:b#0"),
    ]


def test_other_kinds_are_ignored():
    assert compile_documents([{"kind": "Project", "metadata": {"name": "p", "namespace": "acme"}, "spec": {}}]) == []


# ------------------------------------------------------------------------------------------- decisions


POLICY = [
    role("reader", "logs:view", "metrics:view", namespace="acme"),
    role("viewer", "logs:*", "traces:view"),
    role("root", "*"),
    binding("devs", mapping("reader", "AuthzRole", {"project": "shop"}), namespace="acme"),
    binding(
        "envs",
        mapping("viewer", scope={"namespace": "acme"}, logs__view='resource.environment in ["dev", "qa"]'),
        value="testers",
    ),
    binding("no-prod", mapping("viewer", logs__view='resource.environment == "prod"'), value="devs", effect="deny"),
    binding("ops", mapping("root", scope={"namespace": "beta", "project": "core", "component": "api"}), value="ops"),
    binding("svc", mapping("reader", "AuthzRole", {"project": "shop", "component": "cart"}), namespace="acme",
            claim="sub", value="robot"),
]  # fmt: skip

SUBJECTS = {
    "devs": Subject("user", "groups", ("devs",)),
    "testers": Subject("user", "groups", ("testers",)),
    "ops": Subject("user", "groups", ("ops",)),
    "both": Subject("user", "groups", ("devs", "testers")),
    "robot": Subject("service_account", "sub", ("robot",)),
    "robot-as-group": Subject("user", "groups", ("robot",)),
    "nobody": Subject("user", "groups", ()),
}
RESOURCES = {
    "acme": Resource("namespace", "acme", "acme"),
    "shop": Resource("project", "shop", "acme", "shop"),
    "cart": Resource("component", "cart", "acme", "shop", "cart"),
    "cart-dev": Resource("component", "cart", "acme", "shop", "cart", "dev"),
    "cart-prod": Resource("component", "cart", "acme", "shop", "cart", "prod"),
    "other": Resource("project", "other", "acme", "other", "", "qa"),
    "api": Resource("component", "api", "beta", "core", "api"),
    "core": Resource("project", "core", "beta", "core"),
}
EXPECTED = {
    ("devs", "logs:view", "shop"): False,  # the prod deny also closes a query naming no environment
    ("devs", "logs:view", "cart-dev"): True,
    ("devs", "logs:view", "cart-prod"): False,  # the cluster-wide deny in prod
    ("devs", "logs:view", "cart"): False,  # ... and in a query naming no environment (fail closed)
    ("devs", "metrics:view", "cart"): True,
    ("devs", "logs:view", "acme"): False,  # above the project
    ("devs", "traces:view", "shop"): False,
    ("testers", "logs:view", "cart-dev"): True,
    ("testers", "logs:view", "cart"): False,  # an environment-limited allow never opens an environment-less query
    ("testers", "logs:view", "cart-prod"): False,
    ("testers", "traces:view", "cart"): True,  # not under the condition
    ("testers", "logs:view", "other"): True,
    ("both", "logs:view", "cart-prod"): False,
    ("ops", "component:delete", "api"): True,
    ("ops", "component:delete", "core"): False,
    ("robot", "logs:view", "cart"): True,
    ("robot", "logs:view", "shop"): False,
    ("robot-as-group", "logs:view", "cart"): False,  # a group never borrows a service account's grant
    ("nobody", "logs:view", "cart-dev"): False,
}


def _request(subject: Subject, action: str, resource: Resource) -> tuple[tuple[str, ...], str, str, str]:
    from access.casbin_pdp import entitlements_of
    from access.resources import resource_path

    return entitlements_of(subject), resource_path(resource), action, resource.environment


@pytest.mark.parametrize(("who", "action", "where"), sorted(EXPECTED))
def test_compiled_policy_decides_as_expected(who, action, where):
    snapshot = PolicySnapshot(compile_documents(POLICY))
    assert snapshot.allows(SUBJECTS[who], action, RESOURCES[where]) is EXPECTED[(who, action, where)]


def test_indexed_decisions_equal_plain_casbin_over_the_compiled_rules():
    rules = compile_documents(POLICY)
    snapshot = PolicySnapshot(rules)
    plain = plain_enforcer(StaticPolicySource(rules))
    actions = ("logs:view", "metrics:view", "traces:view", "component:delete", "project:view")
    allowed = 0
    for subject, action, resource in itertools.product(SUBJECTS.values(), actions, RESOURCES.values()):
        request = _request(subject, action, resource)
        decision = snapshot.enforce(*request)
        assert decision == plain.enforce(*request), request
        allowed += decision
    assert 0 < allowed < len(SUBJECTS) * len(actions) * len(RESOURCES)  # the grid says both yes and no


# ------------------------------------------------------------------------------------------- refusals


def test_valid_documents_pass_the_check():
    for document in POLICY:
        assert check(document) == [], document["metadata"]["name"]


def test_unknown_actions_are_named():
    assert check(role("r", "logs:view", "log:view", "nosuch:*")) == [
        ("spec.actions[1]", "unknown action 'log:view'"),
        ("spec.actions[2]", "unknown action 'nosuch:*'"),
    ]
    document = binding("b", mapping("r"), mapping("r", logs__viw='resource.environment == "dev"'))
    assert check(document) == [("spec.roleMappings[1].conditions[0].actions[0]", "unknown action 'logs:viw'")]


@pytest.mark.parametrize(
    "expression",
    [
        'resource.environment != "prod"',
        'resource.environment == "a" && resource.environment == "b"',
        'resource.component == "cart"',
        "resource.environment ==",
        "true",
    ],
)
def test_a_condition_that_cannot_compile_names_its_expression(expression):
    document = binding("b", mapping("r"), mapping("r", logs__view=expression), namespace="acme")
    problems = check(document)
    assert [field for field, _ in problems] == ["spec.roleMappings[1].conditions[0].expression"]
    with pytest.raises(PolicyError, match=r"AuthzRoleBinding acme/b: spec\.roleMappings\[1\]\.conditions\[0\]"):
        compile_documents([role("r", "logs:view"), document])


def test_crd_rules_on_scopes_and_role_kinds():
    document = binding(
        "b",
        mapping("r", "AuthzRole"),
        mapping("r", scope={"project": "p"}),
        mapping("r", scope={"namespace": "n", "component": "c"}),
        mapping("r", scope={"namespace": "n", "project": "p", "component": "c", "resource": "x"}),
    )
    assert check(document) == [
        ("spec.roleMappings[0].roleRef.kind", "a ClusterAuthzRoleBinding can only reference a ClusterAuthzRole"),
        ("spec.roleMappings[1].scope.project", "scope.project requires scope.namespace"),
        ("spec.roleMappings[2].scope.component", "scope.component requires scope.project"),
        ("spec.roleMappings[3].scope", "scope.component and scope.resource are mutually exclusive"),
    ]
    empty = binding("e", namespace="acme", effect="maybe")
    assert check(empty) == [("spec.effect", "must be allow or deny"), ("spec.roleMappings", "must be a non-empty list")]


def test_catalogue_knows_observer_and_crud_actions():
    assert known_action("logs:view") and known_action("component:create") and known_action("authzrole:*")
    assert known_action("*") and not known_action("logs:edit") and not known_action("")
    wire = {action.name: action.wire() for action in authz.CATALOGUE}
    assert wire["logs:view"] == {
        "name": "logs:view",
        "lowestScope": "component",
        "conditions": [{"key": "resource.environment", "description": "Environment associated with the resource"}],
    }
    assert wire["namespace:create"] == {"name": "namespace:create", "lowestScope": "namespace"}
    assert wire["clusterauthzrole:view"]["lowestScope"] == "cluster"
    assert wire["project:view"]["lowestScope"] == "project"


# ------------------------------------------------------------------------------------------- the store as a source


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str
    remaining: int = 0


class MemoryStore:
    """The two methods StorePolicySource uses, with the store's paging (limit, opaque cursor) and an authz
    revision bumped on every write of an Authz* kind."""

    def __init__(self) -> None:
        self.documents: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.revision = 0
        self.list_calls = 0

    def put(self, document: dict[str, Any]) -> None:
        metadata = document["metadata"]
        self.documents[(document["kind"], metadata.get("namespace", ""), metadata["name"])] = document
        self.revision += 1

    def remove(self, kind: str, namespace: str, name: str) -> None:
        del self.documents[(kind, namespace, name)]
        self.revision += 1

    def authz_revision(self) -> int:
        return self.revision

    def list(self, kind: str, namespace: str | None = None, *, limit: int = 100, cursor: str = "") -> Page:
        self.list_calls += 1
        keys = sorted(key for key in self.documents if key[0] == kind)
        start = int(cursor or 0)
        chunk = keys[start : start + limit]
        following = start + limit if start + limit < len(keys) else 0
        return Page([self.documents[key] for key in chunk], str(following) if following else "")


def test_store_source_pages_through_every_authz_kind(monkeypatch):
    monkeypatch.setattr(authz, "LIST_PAGE", 2)
    store = MemoryStore()
    for document in POLICY:
        store.put(document)
    source = StorePolicySource(store)
    assert source.stamp() == len(POLICY)
    assert sorted(source.rules()) == sorted(compile_documents(POLICY))  # order is the store's, not the list's
    assert store.list_calls > len(authz.AUTHZ_KINDS)  # several pages of some kind were read


def test_store_source_refuses_a_policy_over_the_bound(monkeypatch):
    monkeypatch.setattr(authz, "MAX_AUTHZ_DOCUMENTS", 3)
    store = MemoryStore()
    for document in POLICY:
        store.put(document)
    with pytest.raises(PolicyError, match="more than 3"):
        StorePolicySource(store).rules()


async def test_a_grant_and_a_revoke_apply_to_the_next_call():
    store = MemoryStore()
    store.put(role("viewer", "logs:view"))
    authorizer = store_authorizer(store)
    alice = Subject("user", "groups", ("devs",))
    cart = RESOURCES["cart"]
    with pytest.raises(PermissionDenied):
        await authorizer.authorize(alice, "logs:view", cart)
    store.put(binding("devs", mapping("viewer", scope={"namespace": "acme"})))
    await authorizer.authorize(alice, "logs:view", cart)
    store.remove("ClusterAuthzRoleBinding", "", "devs")
    with pytest.raises(PermissionDenied):
        await authorizer.authorize(alice, "logs:view", cart)


async def test_a_bad_document_in_the_store_keeps_the_last_good_policy():
    store = MemoryStore()
    store.put(role("viewer", "logs:view"))
    store.put(binding("devs", mapping("viewer")))
    authorizer = store_authorizer(store)
    alice = Subject("user", "groups", ("devs",))
    await authorizer.authorize(alice, "logs:view", RESOURCES["cart"])
    store.put(binding("broken", mapping("viewer", logs__view="resource.environment != 'x'"), value="x"))
    await authorizer.authorize(alice, "logs:view", RESOURCES["cart"])
    assert authorizer.last_error is not None and "ClusterAuthzRoleBinding broken" in authorizer.last_error
