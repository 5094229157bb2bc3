"""A rule's scope as UIDs: rules may name their project, component and environment (`openchoreo.dev/component:
cart`), but every backend filters records by UID, and alerts are found by UID.

Why resolve at all: a rule scoped only by names used to be evaluated namespace-wide (the backends saw no UID),
its alerts carried `componentId: ""` (so a component-scoped alerts query never found them) and its repeats were
never suppressed (suppression is per component UID). Resolving the names, with the same resolver the query API
uses, fixes all three at once.

Why resolve on every reconcile pass and every firing instead of once at apply time: a rule may be applied
before its component first sends telemetry (the embedded registry learns names from it), and a re-created
component gets a new UID; the rule follows the name, as a query does ("names resolve to UIDs before any backend
is asked"). A UID label given explicitly always wins over its name label.
"""

from __future__ import annotations

from dataclasses import replace

from adapters.protocols import ScopeResolver
from domain.alerting import AlertRule
from domain.model import (
    LABEL_COMPONENT,
    LABEL_COMPONENT_UID,
    LABEL_ENVIRONMENT,
    LABEL_ENVIRONMENT_UID,
    LABEL_PROJECT,
    LABEL_PROJECT_UID,
)

#: (name label, UID label), narrowest last.
_LEVELS = (
    (LABEL_PROJECT, LABEL_PROJECT_UID),
    (LABEL_COMPONENT, LABEL_COMPONENT_UID),
    (LABEL_ENVIRONMENT, LABEL_ENVIRONMENT_UID),
)


def needs_resolving(rule: AlertRule) -> bool:
    """Whether some level is named without its UID."""
    return any(rule.labels.get(name) and not rule.labels.get(uid) for name, uid in _LEVELS)


async def resolve_rule_scope(rule: AlertRule, resolver: ScopeResolver | None) -> AlertRule:
    """`rule` with a UID label for every level it names (the given UIDs kept). Raises the resolver's
    ScopeNotFound (a name that does not exist), ResolverUnavailable or ResolverAuthFailed; without a resolver,
    or with nothing to resolve, the rule comes back as it is."""
    if resolver is None or not needs_resolving(rule):
        return rule
    project = rule.labels.get(LABEL_PROJECT, "")
    wanted = {name: rule.labels.get(name, "") if not rule.labels.get(uid) else "" for name, uid in _LEVELS}
    # The project's name goes with a component's, as in a query's searchScope (the rule's labels require it).
    uids = await resolver.resolve(
        rule.scope_namespace,
        project if wanted[LABEL_PROJECT] or wanted[LABEL_COMPONENT] else "",
        wanted[LABEL_COMPONENT],
        wanted[LABEL_ENVIRONMENT],
    )
    labels = dict(rule.labels)
    for (name, uid), resolved in zip(_LEVELS, uids):
        if wanted[name] and resolved:
            labels[uid] = resolved
    return replace(rule, labels=labels)
