"""The embedded decision point: who may do what where, deny over allow, live reloads from a file and from SQLite,
bad edits that change nothing, and the indexed path held to a plain Casbin Enforcer's answers."""

from __future__ import annotations

import logging
import os
import random
import sqlite3
import textwrap
from pathlib import Path

import pytest

from access import model as authz
from access.casbin_pdp import CasbinAuthorizer, PolicySnapshot, entitlements_of, plain_enforcer
from access.model import NotAuthenticated, PermissionDenied, Resource, Subject
from access.policy_sources import (
    FilePolicySource,
    PolicyError,
    SQLitePolicySource,
    StaticPolicySource,
    compile_yaml,
    parse_csv,
)
from access.resources import incident_update_resource, resource_for, resource_path
from domain.model import WorkflowScope
from observer.auth.authorizers import AuthzConfigError, authorizer_from_env
from observer.auth.remote_pdp import RemoteAuthorizer
from observer.validation import NamedScope

DOCS = Path(__file__).resolve().parents[2] / "docs"

POLICY = """
roles:
  admin: ["*"]
  viewer: [logs:view, events:view, metrics:view, traces:view, alerts:view, incidents:view]
  developer: ["logs:*", "events:*", "metrics:*", "traces:*"]
bindings:
  - name: admins
    role: admin
    groups: [platform-admins]
  - name: acme-viewers
    role: viewer
    groups: [acme-viewers]
    namespace: acme
  - name: shop-developers
    role: developer
    groups: [shop-devs]
    namespace: acme
    project: shop
  - name: cart-developers
    role: developer
    groups: [cart-devs]
    namespace: acme
    project: shop
    component: cart
  - name: dev-only
    role: viewer
    groups: [contractors]
    namespace: acme
    environments: [dev]
  - name: ci-robot
    role: viewer
    serviceAccounts: [ci-robot]
    namespace: acme
    project: shop
  - name: payments-closed
    role: admin
    groups: [acme-viewers]
    namespace: acme
    project: payments
    effect: deny
  - name: interns-see-acme
    role: viewer
    groups: [interns]
    namespace: acme
  - name: interns-not-prod
    role: viewer
    groups: [interns]
    namespace: acme
    environments: [prod]
    effect: deny
"""

VIEW = {
    authz.LOGS_VIEW,
    authz.EVENTS_VIEW,
    authz.METRICS_VIEW,
    authz.TRACES_VIEW,
    authz.ALERTS_VIEW,
    authz.INCIDENTS_VIEW,
}
DEVELOP = {authz.LOGS_VIEW, authz.EVENTS_VIEW, authz.METRICS_VIEW, authz.TRACES_VIEW}
EVERYTHING = set(authz.ACTIONS)


def named(namespace: str, project: str = "", component: str = "", environment: str = "") -> Resource:
    return resource_for(NamedScope(namespace, project, component, environment))


SCOPES = {
    "acme": named("acme"),
    "acme@dev": named("acme", environment="dev"),
    "acme@prod": named("acme", environment="prod"),
    "shop": named("acme", "shop"),
    "shop@prod": named("acme", "shop", environment="prod"),
    "cart": named("acme", "shop", "cart"),
    "cart@dev": named("acme", "shop", "cart", "dev"),
    "cart@prod": named("acme", "shop", "cart", "prod"),
    "checkout": named("acme", "shop", "checkout"),
    "payments": named("acme", "payments"),
    "billing@dev": named("acme", "payments", "billing", "dev"),
    "globex": named("globex"),
    "globex-cart": named("globex", "shop", "cart"),
    "run": resource_for(WorkflowScope("acme", "build-1")),
    "globex-run": resource_for(WorkflowScope("globex", "build-1")),
    "incident-update": incident_update_resource(),
}
ACME = {name for name in SCOPES if not name.startswith("globex") and name != "incident-update"}
PAYMENTS = {"payments", "billing@dev"}
SHOP = {"shop", "shop@prod", "cart", "cart@dev", "cart@prod", "checkout"}


def user(*groups: str) -> Subject:
    return Subject("user", "groups", groups, token="t0ken")


def robot(sub: str) -> Subject:
    return Subject("service_account", "sub", (sub,), token="t0ken")


# subject, then (actions, scopes) pairs it is allowed: everything else must be denied.
MATRIX = {
    "admin (every namespace)": (user("platform-admins"), [(EVERYTHING, set(SCOPES))]),
    "namespace viewer": (user("acme-viewers"), [(VIEW, ACME - PAYMENTS)]),
    "project developer": (user("shop-devs"), [(DEVELOP, SHOP)]),
    "component developer": (user("cart-devs"), [(DEVELOP, {"cart", "cart@dev", "cart@prod"})]),
    "viewer limited to dev": (user("contractors"), [(VIEW, {"acme@dev", "cart@dev", "billing@dev"})]),
    "service account (sub)": (robot("ci-robot"), [(VIEW, SHOP)]),
    "a group named like the service account": (user("ci-robot"), []),
    "no binding": (user("strangers"), []),
    "no entitlements at all": (user(), []),
    "viewer with a deny on prod": (user("interns"), [(VIEW, {"acme@dev", "cart@dev", "billing@dev"})]),
    "admin also denied payments": (user("platform-admins", "acme-viewers"), [(EVERYTHING, set(SCOPES) - PAYMENTS)]),
    "project and component developer": (user("cart-devs", "shop-devs"), [(DEVELOP, SHOP)]),
}


async def allowed(
    authorizer: CasbinAuthorizer, subject: Subject, resource: Resource, action: str = authz.LOGS_VIEW
) -> bool:
    try:
        await authorizer.authorize(subject, action, resource)
        return True
    except PermissionDenied:
        return False


@pytest.fixture(scope="module")
def authorizer() -> CasbinAuthorizer:
    return CasbinAuthorizer(StaticPolicySource(compile_yaml(POLICY)))


@pytest.mark.parametrize("case", list(MATRIX))
async def test_allowed_exactly_where_granted(authorizer, case):
    subject, grants = MATRIX[case]
    wrong = []
    for action in authz.ACTIONS:
        for scope, resource in SCOPES.items():
            expected = any(action in actions and scope in scopes for actions, scopes in grants)
            answer = await allowed(authorizer, subject, resource, action)
            if answer != expected:
                wrong.append(f"{action} on {scope}: {'allowed' if answer else 'denied'}")
    assert not wrong, wrong


async def test_no_subject_is_not_authenticated(authorizer):
    with pytest.raises(NotAuthenticated):
        await authorizer.authorize(None, authz.LOGS_VIEW, SCOPES["acme"])


async def test_deny_wins_over_any_allow(authorizer):
    for groups in [("acme-viewers",), ("acme-viewers", "platform-admins")]:
        with pytest.raises(PermissionDenied):
            await authorizer.authorize(user(*groups), authz.LOGS_VIEW, SCOPES["payments"])
    await authorizer.authorize(user("platform-admins"), authz.LOGS_VIEW, SCOPES["payments"])


def test_environment_attribute_semantics():
    """The four cases of an environment-limited rule, against unlimited ones."""
    snapshot = PolicySnapshot(
        parse_csv(
            textwrap.dedent("""
        p, groups:a, ns/acme, logs:view, dev|staging, allow
        p, groups:b, ns/acme, logs:view, *, allow
        p, groups:b, ns/acme, logs:view, prod, deny
    """)
        )
    )
    decide = lambda group, env: snapshot.enforce((f"groups:{group}",), "ns/acme", "logs:view", env)  # noqa: E731
    assert [decide("a", env) for env in ("dev", "staging", "prod", "")] == [True, True, False, False]
    assert [decide("b", env) for env in ("dev", "staging", "prod", "")] == [True, True, False, False]


def test_action_wildcards():
    snapshot = PolicySnapshot(parse_csv("p, groups:a, *, logs:*, *, allow\np, groups:b, *, *, *, allow\n"))
    assert snapshot.enforce(("groups:a",), "ns/x", "logs:view", "")
    assert not snapshot.enforce(("groups:a",), "ns/x", "logsx:view", "")
    assert not snapshot.enforce(("groups:a",), "ns/x", "events:view", "")
    assert snapshot.enforce(("groups:b",), "ns/x/project/p", "incidents:update", "prod")
    assert snapshot.enforce(("groups:b",), "*", "incidents:update", "")


def test_roles_inherit_roles():
    snapshot = PolicySnapshot(
        parse_csv(
            textwrap.dedent("""
        p, role:viewer, ns/acme, logs:view, *, allow
        g, role:lead, role:viewer
        g, groups:leads, role:lead
    """)
        )
    )
    assert snapshot.enforce(("groups:leads",), "ns/acme/project/p", "logs:view", "")
    assert not snapshot.enforce(("groups:others",), "ns/acme", "logs:view", "")


def test_example_policy_in_docs_loads_and_reads_as_documented():
    snapshot = PolicySnapshot(FilePolicySource(DOCS / "authz-policy.example.yaml").rules())
    readers = ("groups:acme-readers",)
    assert snapshot.enforce(readers, "ns/acme/project/shop", "logs:view", "prod")
    assert not snapshot.enforce(readers, "ns/acme/project/payments", "logs:view", "prod")
    assert not snapshot.enforce(("groups:contractors",), "ns/acme", "logs:view", "")
    assert snapshot.enforce(("groups:contractors",), "ns/acme", "logs:view", "staging")
    assert snapshot.enforce(("sub:7c1f5a2e-release-bot",), "ns/acme/project/shop/component/cart", "traces:view", "")
    assert snapshot.enforce(("groups:platform-admins",), "*", "incidents:update", "")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("roles: {v: [logs:view]}\nbindings: [{role: nope, groups: [g]}]", "not defined"),
        ("roles: {v: [logs:view]}\nbindings: [{role: v}]", "names no groups"),
        ("roles: {v: [logs:view]}\nbindings: [{role: v, groups: [g], project: p}]", "need a namespace"),
        ("roles: {v: [logs:view]}\nbindings: [{role: v, groups: [g], namespace: n, component: c}]", "needs a project"),
        ("roles: {v: [logs:view]}\nbindings: [{role: v, groups: [g], effect: maybe}]", "not allow or deny"),
        ("roles: {v: [logs view]}\nbindings: [{role: v, groups: [g]}]", "action"),
        ("roles: {v: [logs:view]}\nbindings: [{role: v, groups: [g], environment: [dev]}]", "unknown keys"),
        (
            "roles: {v: [logs:view]}\nbindings: [{name: x, role: v, groups: [g]}, {name: x, role: v, groups: [h]}]",
            "used twice",
        ),
        ("roles: [", "not YAML"),
    ],
)
def test_malformed_yaml_is_refused_with_a_reason(text, fragment):
    with pytest.raises(PolicyError, match=fragment):
        compile_yaml(text)


@pytest.mark.parametrize(
    "line",
    [
        "p, a, ns/acme/project, logs:view, *, allow",
        "p, a, acme, logs:view, *, allow",
        "p, a, ns/acme, logs:view, *",
        "p, a, ns/acme, logs:view, *, permit",
        "p, a, ns/acme, logs:*:x, *, allow",
        "p, a, ns/acme, logs:view, dev|*, allow",
        "g, a",
        "x, a, b",
    ],
)
def test_malformed_csv_is_refused(line):
    with pytest.raises(PolicyError):
        parse_csv(line)


# ------------------------------------------------------------------------------------------- reloading


GRANT = """
roles: {viewer: [logs:view]}
bindings:
  - {name: base, role: viewer, groups: [base], namespace: acme}
  - {name: newbies, role: viewer, groups: [newbies], namespace: acme, environments: [dev]}
"""
REVOKED = """
roles: {viewer: [logs:view]}
bindings:
  - {name: base, role: viewer, groups: [base], namespace: acme}
  - {name: newbies, role: viewer, groups: [newbies], namespace: acme, environments: [prd]}
"""  # the same size as GRANT, written within the same timestamp tick: only the content tells them apart
NONE = """
roles: {viewer: [logs:view]}
bindings:
  - {name: base, role: viewer, groups: [base], namespace: acme}
"""


async def test_file_grant_then_revoke_apply_on_the_next_call(tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(NONE)
    authorizer = CasbinAuthorizer(FilePolicySource(policy))
    newbie, scope = user("newbies"), named("acme", environment="dev")
    assert not await allowed(authorizer, newbie, scope)
    policy.write_text(GRANT)
    assert await allowed(authorizer, newbie, scope)
    assert len(GRANT) == len(REVOKED)
    policy.write_text(REVOKED)
    assert not await allowed(authorizer, newbie, scope)
    policy.write_text(GRANT)
    assert await allowed(authorizer, newbie, scope)
    # An atomic replace (a ConfigMap's symlink swap, an editor's rename) is seen too.
    replacement = tmp_path / "policy.yaml.new"
    replacement.write_text(NONE)
    os.replace(replacement, policy)
    assert not await allowed(authorizer, newbie, scope)
    assert authorizer.reloads == 4


class CoarseTimestampsFile(FilePolicySource):
    """The same file seen through a filesystem that keeps whole seconds (FAT, some NFS and FUSE mounts): the
    kernel here has nanosecond timestamps, which would hide the case the content hash is for."""

    def _stat(self) -> os.stat_result:
        st = os.stat(self.path)
        fields = list(st)
        coarse = {"st_mtime_ns": st.st_mtime_ns // 10**9 * 10**9, "st_ctime_ns": st.st_ctime_ns // 10**9 * 10**9}
        return os.stat_result(
            fields[:10],
            {
                **{k: getattr(st, k) for k in ("st_atime", "st_mtime", "st_ctime")},
                "st_atime_ns": st.st_atime_ns,
                **coarse,
            },
        )


async def test_same_size_rewrite_within_one_timestamp_tick_is_seen(tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(GRANT)
    source = CoarseTimestampsFile(policy)
    authorizer = CasbinAuthorizer(source)
    newbie, scope = user("newbies"), named("acme", environment="dev")
    assert await allowed(authorizer, newbie, scope)
    before = source._stat()
    policy.write_text(REVOKED)
    after = source._stat()
    assert (before.st_size, before.st_ino) == (after.st_size, after.st_ino)
    assert not await allowed(authorizer, newbie, scope)
    policy.write_text(GRANT)
    assert await allowed(authorizer, newbie, scope)


async def test_unchanged_file_is_not_reloaded(tmp_path):
    policy = tmp_path / "policy.csv"
    policy.write_text("p, groups:base, ns/acme, logs:view, *, allow\n")
    authorizer = CasbinAuthorizer(FilePolicySource(policy))
    for _ in range(20):
        assert await allowed(authorizer, user("base"), named("acme"))
    assert authorizer.reloads == 0


async def test_a_file_older_than_the_racy_window_is_compared_by_metadata(tmp_path, monkeypatch):
    """Past the racy window the stamp stops hashing content and still equals the loaded one (no reload); a later
    write changes ctime and is seen."""
    from access import policy_sources

    policy = tmp_path / "policy.csv"
    policy.write_text("p, groups:base, ns/acme, logs:view, *, allow\n")
    authorizer = CasbinAuthorizer(FilePolicySource(policy))
    monkeypatch.setattr(policy_sources, "RACY_NS", 0)
    monkeypatch.setattr(policy_sources, "RACY_FINE_NS", 0)
    assert await allowed(authorizer, user("base"), named("acme"))
    assert authorizer.reloads == 0
    policy.write_text("p, groups:base, ns/other, logs:view, *, allow\n")
    assert not await allowed(authorizer, user("base"), named("acme"))
    assert authorizer.reloads == 1


async def test_malformed_file_keeps_the_last_good_policy_and_reports(tmp_path, caplog):
    policy = tmp_path / "policy.yaml"
    policy.write_text(GRANT)
    authorizer = CasbinAuthorizer(FilePolicySource(policy))
    newbie, scope = user("newbies"), named("acme", environment="dev")
    assert await allowed(authorizer, newbie, scope)

    policy.write_text(GRANT.replace("role: viewer, groups: [newbies]", "role: viewr, groups: [newbies]"))
    with caplog.at_level(logging.ERROR, logger="access.casbin_pdp"):
        for _ in range(3):
            assert await allowed(authorizer, newbie, scope)
    assert authorizer.last_error and "viewr" in authorizer.last_error
    errors = [r for r in caplog.records if "did not load" in r.getMessage()]
    assert len(errors) == 1, "reported once, not retried on every call"
    assert authorizer.reloads == 0

    policy.write_text(NONE)
    assert not await allowed(authorizer, newbie, scope)
    assert authorizer.last_error is None


async def test_unreadable_file_keeps_the_last_good_policy(tmp_path):
    policy = tmp_path / "policy.csv"
    policy.write_text("p, groups:base, ns/acme, logs:view, *, allow\n")
    authorizer = CasbinAuthorizer(FilePolicySource(policy))
    policy.unlink()
    assert await allowed(authorizer, user("base"), named("acme"))
    assert authorizer.last_error and "cannot read" in authorizer.last_error
    policy.write_text("p, groups:base, ns/other, logs:view, *, allow\n")
    assert not await allowed(authorizer, user("base"), named("acme"))


def test_a_policy_that_does_not_load_stops_startup(tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text("roles: {v: [logs:view]}\nbindings: [{role: w, groups: [g]}]\n")
    with pytest.raises(PolicyError):
        CasbinAuthorizer(FilePolicySource(policy))
    with pytest.raises(AuthzConfigError, match="does not load"):
        authorizer_from_env({"OBSERVER_AUTHZ_POLICY_FILE": str(policy)})


def _insert(database: Path, *rules: tuple[str, ...]) -> None:
    conn = sqlite3.connect(database)
    with conn:
        conn.executemany(
            "INSERT INTO casbin_rule (ptype, v0, v1, v2, v3, v4) VALUES (?, ?, ?, ?, ?, ?)",
            [rule + (None,) * (6 - len(rule)) for rule in rules],
        )
    conn.close()


def _execute(database: Path, sql: str, *args: object) -> None:
    conn = sqlite3.connect(database)
    with conn:
        conn.execute(sql, args)
    conn.close()


async def test_database_grant_then_revoke_apply_on_the_next_call(tmp_path):
    database = tmp_path / "policy.db"
    source = SQLitePolicySource(database)
    _insert(database, ("p", "role:viewer", "ns/acme", "logs:view", "*", "allow"))
    authorizer = CasbinAuthorizer(source)
    newbie, scope = user("newbies"), named("acme", "shop")
    assert not await allowed(authorizer, newbie, scope)

    _insert(database, ("g", "groups:newbies", "role:viewer"))
    assert await allowed(authorizer, newbie, scope)
    _execute(database, "DELETE FROM casbin_rule WHERE ptype = 'g' AND v0 = ?", "groups:newbies")
    assert not await allowed(authorizer, newbie, scope)
    _insert(database, ("g", "groups:newbies", "role:viewer"))
    assert await allowed(authorizer, newbie, scope)
    _insert(database, ("p", "groups:newbies", "ns/acme/project/shop", "*", "*", "deny"))
    assert not await allowed(authorizer, newbie, scope)
    assert authorizer.reloads == 4
    for _ in range(5):
        assert not await allowed(authorizer, newbie, scope)
    assert authorizer.reloads == 4, "an unchanged table is not reloaded"
    source.close()


async def test_database_malformed_row_keeps_the_last_good_policy(tmp_path):
    database = tmp_path / "policy.db"
    source = SQLitePolicySource(database)
    _insert(database, ("p", "groups:base", "ns/acme", "logs:view", "*", "allow"))
    authorizer = CasbinAuthorizer(source)
    _insert(database, ("p", "groups:base", "ns/acme", "logs:view", "*", "perhaps"))
    assert await allowed(authorizer, user("base"), named("acme"))
    assert "casbin_rule id 2" in authorizer.last_error
    _execute(database, "UPDATE casbin_rule SET v4 = 'deny' WHERE id = 2")
    assert not await allowed(authorizer, user("base"), named("acme"))
    assert authorizer.last_error is None
    source.close()


async def test_database_replaced_file_is_reopened(tmp_path):
    database = tmp_path / "policy.db"
    source = SQLitePolicySource(database)
    _insert(database, ("p", "groups:base", "ns/acme", "logs:view", "*", "allow"))
    authorizer = CasbinAuthorizer(source)
    assert await allowed(authorizer, user("base"), named("acme"))
    fresh = tmp_path / "fresh.db"
    SQLitePolicySource(fresh).close()
    _insert(fresh, ("p", "groups:base", "ns/other", "logs:view", "*", "allow"))
    os.replace(fresh, database)
    assert not await allowed(authorizer, user("base"), named("acme"))
    source.close()


def test_plain_casbin_reads_the_same_sources(tmp_path):
    """The sources are Casbin adapters: a stock Enforcer loads them and agrees."""
    database = tmp_path / "policy.db"
    SQLitePolicySource(database).close()
    rules = compile_yaml(POLICY)
    _insert(database, *rules)
    by_db = plain_enforcer(SQLitePolicySource(database))
    by_yaml = PolicySnapshot(rules)
    for scope, resource in SCOPES.items():
        for subject, _ in MATRIX.values():
            request = (entitlements_of(subject), *_path_act_env(resource, authz.LOGS_VIEW))
            assert by_db.enforce(*request) == by_yaml.enforce(*request), (scope, subject)


def _path_act_env(resource: Resource, action: str) -> tuple[str, str, str]:
    return resource_path(resource), action, resource.environment


# ------------------------------------------------------------------------------------------- factory


def test_factory_modes(tmp_path):
    policy = tmp_path / "p.csv"
    policy.write_text("p, groups:a, *, *, *, allow\n")
    assert isinstance(authorizer_from_env({"OBSERVER_AUTHZ_POLICY_FILE": str(policy)}), CasbinAuthorizer)
    database = tmp_path / "p.db"
    by_db = authorizer_from_env({"AUTHZ_MODE": "casbin", "OBSERVER_AUTHZ_POLICY_DB": str(database)})
    assert isinstance(by_db, CasbinAuthorizer) and database.exists()
    remote = authorizer_from_env(
        {
            "AUTHZ_MODE": "remote",
            "AUTHZ_SERVICE_URL": "http://pdp:8080/",
            "AUTHZ_TIMEOUT": "1500ms",
            "AUTHZ_TLS_INSECURE_SKIP_VERIFY": "true",
        }
    )
    assert isinstance(remote, RemoteAuthorizer)
    assert remote.url == "http://pdp:8080/api/v1/authz/evaluates" and remote.timeout_s == 1.5
    assert authorizer_from_env({"AUTHZ_MODE": "remote", "AUTHZ_TIMEOUT": "7"}).timeout_s == 7


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({}, "needs a policy"),
        ({"OBSERVER_AUTHZ_POLICY_FILE": "a", "OBSERVER_AUTHZ_POLICY_DB": "b"}, "not both"),
        ({"AUTHZ_MODE": "opa"}, "AUTHZ_MODE"),
        ({"AUTHZ_MODE": "remote", "AUTHZ_TIMEOUT": "soon"}, "AUTHZ_TIMEOUT"),
        ({"AUTHZ_MODE": "remote", "AUTHZ_TIMEOUT": "0s"}, "positive"),
        ({"AUTHZ_MODE": "remote", "AUTHZ_TLS_INSECURE_SKIP_VERIFY": "maybe"}, "boolean"),
        ({"AUTHZ_MODE": "remote", "AUTHZ_SERVICE_URL": "pdp:8080"}, "http"),
        ({"OBSERVER_AUTHZ_POLICY_FILE": "/nonexistent/policy.yaml"}, "does not load"),
    ],
)
def test_factory_refuses_settings_that_cannot_work(env, fragment):
    with pytest.raises(AuthzConfigError, match=fragment):
        authorizer_from_env(env)


async def test_factory_authorizers_refuse_a_missing_subject(tmp_path):
    policy = tmp_path / "p.csv"
    policy.write_text("p, groups:a, *, *, *, allow\n")
    for authorizer in (
        authorizer_from_env({"OBSERVER_AUTHZ_POLICY_FILE": str(policy)}),
        authorizer_from_env({"AUTHZ_MODE": "remote", "AUTHZ_SERVICE_URL": "http://127.0.0.1:9"}),
    ):
        with pytest.raises(NotAuthenticated):
            await authorizer.authorize(None, authz.LOGS_VIEW, named("acme"))


# ------------------------------------------------------------------------------------------- equivalence

ENTITLEMENTS = ["groups:a", "groups:b", "groups:c", "sub:a", "sub:svc"]
ROLES = [f"role:r{n}" for n in range(5)]
CHAIN = [f"role:chain{n}" for n in range(13)]  # deeper than Casbin's 10 levels
PATHS = [
    "*",
    "ns/x",
    "ns/y",
    "ns/x/project/p",
    "ns/x/project/q",
    "ns/x/project/p/component/c",
    "ns/x/project/p/component/d",
    "ns/y/project/p",
    "ns/x/workflowrun/r",
    "ns/y/workflowrun/r",
]
# "platformlogs:*" keeps the share of allowed requests up now the catalogue has the cluster-scoped actions.
ACTIONS = ["*", "logs:*", "logs:view", "events:view", "incidents:*", "incidents:update", "a:b:*", "platformlogs:*"]
REQUEST_ACTIONS = [*authz.ACTIONS, "a:b:c", "a:b", "logs", "logs:", "logsx:view"]
ENVS = ["*", "*", "dev", "prod", "dev|prod", "staging|prod"]


def random_policy(rng: random.Random) -> list[tuple[str, ...]]:
    rules: list[tuple[str, ...]] = []
    subjects = ENTITLEMENTS + ROLES + CHAIN
    for _ in range(rng.randint(5, 60)):
        rules.append(
            (
                "p",
                rng.choice(subjects),
                rng.choice(PATHS),
                rng.choice(ACTIONS),
                rng.choice(ENVS),
                "deny" if rng.random() < 0.25 else "allow",
            )
        )
    for _ in range(rng.randint(0, 25)):
        rules.append(("g", rng.choice(ENTITLEMENTS + ROLES), rng.choice(ROLES + CHAIN[:1])))
    if rng.random() < 0.5:  # a long chain, maybe with a cycle
        rules.extend(("g", CHAIN[n], CHAIN[n + 1]) for n in range(len(CHAIN) - 1))
        if rng.random() < 0.5:
            rules.append(("g", CHAIN[-1], CHAIN[3]))
        rules.append(("g", rng.choice(ENTITLEMENTS), CHAIN[0]))
    return rules


def random_requests(rng: random.Random, count: int = 120) -> list[tuple[tuple[str, ...], str, str, str]]:
    return [
        (
            tuple(rng.sample(ENTITLEMENTS, rng.randint(0, 3))),
            rng.choice(PATHS),
            rng.choice(REQUEST_ACTIONS),
            rng.choice(["", "dev", "prod", "qa"]),
        )
        for _ in range(count)
    ]


@pytest.mark.parametrize("seed", range(25))
def test_indexed_path_decides_exactly_as_plain_casbin(seed):
    rng = random.Random(seed)
    source = StaticPolicySource(random_policy(rng))
    plain = plain_enforcer(source)
    snapshot = PolicySnapshot(source.rules())
    for request in random_requests(rng):
        assert snapshot.enforce(*request) == plain.enforce(*request), (request, source.rules())


def test_equivalence_covers_both_outcomes():
    """The random policies above are not trivially all-deny: across the seeds, plenty of requests are allowed
    and plenty denied (otherwise the equivalence would prove little)."""
    outcomes = []
    for seed in range(25):
        rng = random.Random(seed)
        snapshot = PolicySnapshot(StaticPolicySource(random_policy(rng)).rules())
        outcomes += [snapshot.enforce(*request) for request in random_requests(rng)]
    assert 0.1 < sum(outcomes) / len(outcomes) < 0.9
