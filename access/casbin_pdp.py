"""The embedded decision point: OpenChoreo's authz semantics on pycasbin, fast at 10,000 policies, reloaded live.

The model (MODEL_TEXT) is the semantics. A request is (the subject's entitlements, the resource's scope path, the
action, the environment); a `p` rule grants or denies an action pattern on a scope path, optionally only in some
environments, to a role or an entitlement; `g` rules bind entitlements (IdP groups, service-account subs) to
roles, and roles to roles. Deny wins over allow, and nothing is allowed without an allow:

- scope: a rule on `ns/acme` covers the namespace and everything under it (projects, components, workflow runs);
  one on `ns/acme/project/shop` covers the project and its components; `*` covers every namespace and also the
  empty hierarchy that `incidents:update` is asked on.
- action: `*`, `logs:*` or one action.
- environment: `*` holds for any environment and for a query naming none. An allow limited to environments holds
  only for a query naming one of them: a query without an environment reads every environment, so an
  environment-limited grant must not open it. A deny limited to environments applies to those environments and to
  a query naming none (which would return their data): fail closed either way.

Plain `casbin.Enforcer.enforce` evaluates the matcher on every policy line (hundreds of milliseconds at 10,000
lines, see bench/authz_pdp.py). `PolicySnapshot` keeps Casbin's model, policy, matcher and effector, but only hands the
matcher the few lines that can match: on load it indexes the `p` lines by (scope path, action pattern, subject),
and per request it looks up the request path's ancestors, the action's patterns and the subject's roles (the
transitive closure of its entitlements over the `g` links, to Casbin's default depth of 10). The same matcher and
the same effector then decide over those candidates, so the decision is Casbin's; tests/unit/test_casbin_pdp.py
compares it with a plain Enforcer on random policies.

Reloading: every authorize call asks the source for its stamp (a stat, or `PRAGMA data_version`: microseconds); a
changed stamp rebuilds the snapshot off the event loop before the call is decided, so a revoke is in force on the
very next call. Decisions are never cached; the only cache (roles of an entitlement set) lives in the snapshot and
is dropped with it. A policy that fails to load leaves the last good one in force and is reported (log and
`CasbinAuthorizer.last_error`) until a later edit loads.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any, Protocol

import casbin
from casbin.effect import Effector, effect_to_bool

from access.model import AuthorizationUnavailable, NotAuthenticated, PermissionDenied, Resource, Subject
from access.policy_sources import PolicyError, Rule, add_rules, known_action
from access.resources import resource_path

log = logging.getLogger(__name__)

MODEL_TEXT = """
[request_definition]
r = sub, obj, act, env

[policy_definition]
p = sub, obj, act, env, eft

[role_definition]
g = _, _

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = entitled(r.sub, p.sub) && scopeMatch(r.obj, p.obj) && actionMatch(r.act, p.act) && envMatch(r.env, p.env, p.eft)
"""

#: Casbin's default role manager follows links this many levels deep (the entitlement itself is level 1).
MAX_HIERARCHY_LEVEL = 10
_ROLE_CACHE_SIZE = 4096


# ------------------------------------------------------------------------------------------- matcher functions


def scope_match(request_path: str, policy_path: str) -> bool:
    """A rule's scope covers its own path and every path below it; `*` covers everything, including `*`."""
    return policy_path == "*" or request_path == policy_path or request_path.startswith(policy_path + "/")


def action_match(request_action: str, policy_action: str) -> bool:
    """`*` is every action, `logs:*` every action of kind `logs`, anything else one action."""
    if policy_action == "*" or policy_action == request_action:
        return True
    if policy_action.endswith(":*"):
        prefix = policy_action[:-1]
        return len(request_action) > len(prefix) and request_action.startswith(prefix)
    return False


def env_match(request_env: str, policy_envs: str, effect: str) -> bool:
    """See the module docstring: an environment-limited allow never opens an environment-less query; an
    environment-limited deny always closes one."""
    if policy_envs == "*":
        return True
    if not request_env:
        return effect == "deny"
    return request_env in policy_envs.split("|")


def entitlements_of(subject: Subject) -> tuple[str, ...]:
    """`<claim>:<value>` for each entitlement value: `groups:<group>` for a user, `sub:<sub>` for a service
    account, so a group and a service account of the same name never share grants."""
    return tuple(f"{subject.entitlement_claim}:{value}" for value in subject.entitlement_values)


def new_model() -> Any:
    return casbin.Enforcer.new_model(text=MODEL_TEXT)


def plain_enforcer(source: Any) -> casbin.Enforcer:
    """The unindexed reference: a plain Casbin Enforcer on the same model and source, its `entitled` asking
    Casbin's role manager. Slow at scale (every line, every call); what the indexed path is proven against."""
    enforcer = casbin.Enforcer(new_model(), source)
    role_manager = enforcer.get_role_manager()

    def entitled(entitlements: Sequence[str], role: str) -> bool:
        return any(role_manager.has_link(entitlement, role) for entitlement in entitlements)

    _register(enforcer, entitled)
    return enforcer


def _register(enforcer: casbin.Enforcer, entitled: Any) -> None:
    enforcer.add_function("entitled", entitled)
    enforcer.add_function("scopeMatch", scope_match)
    enforcer.add_function("actionMatch", action_match)
    enforcer.add_function("envMatch", env_match)


# ------------------------------------------------------------------------------------------- the indexed snapshot


class PolicySnapshot:
    """One loaded policy: a Casbin enforcer holding it, and the indexes that pick its candidate lines.
    Immutable once built (its role cache aside), so a reload builds a new one and swaps it in."""

    def __init__(self, rules: Iterable[Rule], stamp: Hashable = None):
        self.stamp = stamp
        self.enforcer = casbin.Enforcer(new_model())
        _register(self.enforcer, self._entitled)
        model = self.enforcer.get_model()
        add_rules(model, rules)
        self.enforcer.build_role_links()
        self.policy: list[list[str]] = model["p"]["p"].policy
        self.size = len(self.policy) + len(model["g"]["g"].policy)

        # member -> its direct roles (what Casbin's role manager links), for the subject's role closure.
        self._roles: dict[str, tuple[str, ...]] = {}
        for member, role in model["g"]["g"].policy:
            self._roles[member] = (*self._roles.get(member, ()), role)
        # (scope path, action pattern) -> subject -> indices of p lines, in policy order.
        self._index: dict[tuple[str, str], dict[str, list[int]]] = {}
        for number, (sub, obj, act, _env, _eft) in enumerate(self.policy):
            self._index.setdefault((obj, act), {}).setdefault(sub, []).append(number)

        self._r_tokens = model["r"]["r"].tokens
        self._p_tokens = model["p"]["p"].tokens
        functions = self.enforcer.fm.get_functions()
        self._matcher = self.enforcer._get_expression(model["m"]["m"].value, functions)
        self._effector = self.enforcer.eft
        self._matcher_lock = threading.Lock()  # SimpleEval keeps the names of the evaluation in progress
        self._role_cache: dict[tuple[str, ...], frozenset[str]] = {}

    # -- the subject's roles

    def roles(self, entitlements: tuple[str, ...]) -> frozenset[str]:
        """Every node `has_link(entitlement, node)` holds for, for some entitlement: the entitlements themselves
        and the roles reachable from them within MAX_HIERARCHY_LEVEL levels (Casbin's default role manager)."""
        cached = self._role_cache.get(entitlements)
        if cached is not None:
            return cached
        seen = set(entitlements)
        frontier = list(seen)
        for _ in range(MAX_HIERARCHY_LEVEL - 1):
            following = []
            for node in frontier:
                for role in self._roles.get(node, ()):
                    if role not in seen:
                        seen.add(role)
                        following.append(role)
            if not following:
                break
            frontier = following
        closure = frozenset(seen)
        if len(self._role_cache) >= _ROLE_CACHE_SIZE:
            self._role_cache.clear()
        self._role_cache[entitlements] = closure
        return closure

    def _entitled(self, entitlements: Sequence[str], role: str) -> bool:
        return role in self.roles(tuple(entitlements))

    # -- candidates

    @staticmethod
    def ancestors(path: str) -> list[str]:
        """The paths a rule may sit on to cover `path`: `*` and each whole-level prefix (`ns/a`,
        `ns/a/project/p`, ...), `path` included. Levels are name pairs, so the cuts fall at every second `/`."""
        if path == "*":
            return ["*"]
        parts = path.split("/")
        return ["*", *("/".join(parts[:end]) for end in range(2, len(parts) + 1, 2))]

    @staticmethod
    def action_patterns(action: str) -> list[str]:
        """Every pattern `action_match(action, pattern)` holds for: the action, `*`, and `<prefix>:*` for each
        `:` with something after it."""
        patterns = [action, "*"]
        patterns.extend(action[: i + 1] + "*" for i, c in enumerate(action) if c == ":" and i + 1 < len(action))
        return patterns

    def candidates(self, entitlements: tuple[str, ...], path: str, action: str) -> list[int]:
        """Indices of the p lines whose subject, scope and action can match; a superset of the matching lines
        (the environment is left to the matcher), in policy order."""
        roles = self.roles(entitlements)
        found: list[int] = []
        index = self._index
        for obj in self.ancestors(path):
            for act in self.action_patterns(action):
                by_subject = index.get((obj, act))
                if not by_subject:
                    continue
                if len(by_subject) <= len(roles):
                    for sub, lines in by_subject.items():
                        if sub in roles:
                            found.extend(lines)
                else:
                    for role in roles:
                        role_lines = by_subject.get(role)
                        if role_lines:
                            found.extend(role_lines)
        found.sort()
        return found

    # -- the decision

    def enforce(self, entitlements: tuple[str, ...], path: str, action: str, environment: str) -> bool:
        """Casbin's enforce (matcher on each line, effector over the effects) over the candidate lines only."""
        rvals = (entitlements, path, action, environment)
        r_parameters = dict(zip(self._r_tokens, rvals))
        effects: set[Any] = set()
        with self._matcher_lock:
            for number in self.candidates(entitlements, path, action):
                parameters = dict(r_parameters, **dict(zip(self._p_tokens, self.policy[number])))
                result = self._matcher.eval(parameters)
                if isinstance(result, bool):
                    if not result:
                        effects.add(Effector.INDETERMINATE)
                        continue
                elif isinstance(result, float):
                    if result == 0:
                        effects.add(Effector.INDETERMINATE)
                        continue
                else:
                    raise RuntimeError("matcher result should be bool, int or float")
                eft = parameters.get("p_eft")
                effects.add(
                    Effector.ALLOW if eft == "allow" else Effector.DENY if eft == "deny" else Effector.INDETERMINATE
                )
                if self._effector.intermediate_effect(effects) != Effector.INDETERMINATE:
                    break
        return bool(effect_to_bool(self._effector.final_effect(effects)))

    def allows(self, subject: Subject, action: str, resource: Resource) -> bool:
        return self.enforce(entitlements_of(subject), resource_path(resource), action, resource.environment)


# ------------------------------------------------------------------------------------------- the authorizer


class PolicySource(Protocol):
    def describe(self) -> str: ...

    def stamp(self) -> Hashable: ...

    def rules(self) -> list[Rule]: ...


class CasbinAuthorizer:
    """The `Authorizer` of the embedded PDP. Construct with a source; the first load happens here, so a policy
    that cannot load stops startup instead of denying every request later.

    `known` tells which action patterns exist, for the warning about typos (the control plane adds its own
    actions). `stamp_in_thread` asks the source for its stamp off the event loop: for a source whose stamp is a
    database query (the control plane's store) rather than a stat."""

    def __init__(
        self,
        source: PolicySource,
        *,
        known: Callable[[str], bool] = known_action,
        stamp_in_thread: bool = False,
    ):
        self.source = source
        self._known = known
        self._stamp_in_thread = stamp_in_thread
        self.last_error: str | None = None
        self.reloads = 0
        self._failed_stamp: Hashable = None
        self._lock = asyncio.Lock()
        stamp = source.stamp()
        self._snapshot = self._build(stamp)

    @property
    def snapshot(self) -> PolicySnapshot:
        return self._snapshot

    def _build(self, stamp: Hashable) -> PolicySnapshot:
        rules = self.source.rules()
        for rule in rules:
            if rule[0] == "p" and not self._known(rule[3]):
                log.warning(
                    "authz policy %s: action %r matches none of OpenChoreo's actions", self.source.describe(), rule[3]
                )
        snapshot = PolicySnapshot(rules, stamp)
        log.info("authz policy %s: %d rules loaded", self.source.describe(), snapshot.size)
        if not snapshot.policy:
            log.warning("authz policy %s grants nothing: every request will be denied", self.source.describe())
        return snapshot

    async def _stamp(self) -> Hashable:
        if self._stamp_in_thread:
            return await asyncio.to_thread(self.source.stamp)
        return self.source.stamp()

    async def current(self) -> PolicySnapshot:
        """The snapshot for the policy as it is now: reloaded first when the source's stamp moved (and the new
        state has not already failed to load)."""
        stamp = await self._stamp()
        snapshot = self._snapshot
        if stamp == snapshot.stamp or stamp == self._failed_stamp:
            return snapshot
        async with self._lock:
            stamp = await self._stamp()
            if stamp == self._snapshot.stamp or stamp == self._failed_stamp:
                return self._snapshot
            try:
                self._snapshot = await asyncio.to_thread(self._build, stamp)
            except PolicyError as exc:
                self._failed_stamp = stamp
                self.last_error = str(exc)
                log.error(
                    "authz policy %s did not load, the previous policy stays in force: %s", self.source.describe(), exc
                )
                return self._snapshot
            except Exception as exc:  # an unexpected failure must not leave a half-known policy in force
                log.exception("authz policy %s: reload failed", self.source.describe())
                raise AuthorizationUnavailable("the authorization policy could not be reloaded") from exc
            self.reloads += 1
            self.last_error = None
            self._failed_stamp = None
            return self._snapshot

    async def authorize(self, subject: Subject | None, action: str, resource: Resource) -> None:
        """NotAuthenticated without a subject (contract §2.1), PermissionDenied unless the current policy allows."""
        if subject is None:
            raise NotAuthenticated()
        snapshot = await self.current()
        if not snapshot.allows(subject, action, resource):
            raise PermissionDenied()
