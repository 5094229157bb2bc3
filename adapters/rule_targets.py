"""Where alert rules run: the `RuleTarget` protocol every evaluating backend implements for the reconciler.

A target is one backend that evaluates rules (Prometheus rule files, OpenSearch Alerting monitors, our own
evaluator). The reconciler never needs to know which: it asks each target what it currently holds
(`list_managed`), compares that with the desired rules through a content hash the target computes over what it
would write (`content_hash`), and creates, rewrites or deletes the difference. So:

- a rule is identified everywhere by its logical id `"<namespace>/<name>"` (the resource's own namespace and
  name, which are also what a firing alert names);
- what a target reports must be what is *really* there, not what it last wrote: a rule edited or removed behind
  our back shows up as a different hash, as missing, or as `drifted`, and the next pass restores it;
- `upsert` and `delete` are idempotent, so a pass interrupted half-way is simply repeated.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from domain.alerting import AlertRule


def logical_id(namespace: str, name: str) -> str:
    """The id a rule has in every backend: `<namespace>/<name>` (a Kubernetes name never contains `/`)."""
    return f"{namespace}/{name}"


def split_logical_id(rule_id: str) -> tuple[str, str]:
    namespace, _, name = rule_id.partition("/")
    return namespace, name


def rule_logical_id(rule: AlertRule) -> str:
    return logical_id(rule.namespace, rule.name)


def content_hash(artifact: Any) -> str:
    """A stable hash of what a target writes for a rule (JSON-able), so an unchanged rule is never rewritten and
    any edit of the written artifact, by us or by someone else, changes it."""
    canonical = json.dumps(artifact, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class BackendRule:
    """One rule as a target holds it.

    `content_hash` is computed from what is actually stored (not remembered from the last write), so an edit
    behind our back differs from the desired hash. `drifted` says the stored artifact is fine but the backend
    does not run it as stored (Prometheus has not loaded the file, or still runs a deleted one): rewriting it
    (or deleting it, when unwanted) repairs that.
    """

    logical_id: str
    backend_id: str
    content_hash: str
    drifted: bool = False
    detail: str = ""  # why it drifted, for logs and status messages


class UnsupportedRule(Exception):
    """The target accepts this kind of rule but cannot evaluate it here (a budget rule without a cost backend).
    Retrying does not help; the message says what is missing."""


@runtime_checkable
class RuleTarget(Protocol):
    """One backend that evaluates alert rules."""

    name: str  # for logs and status messages: "prometheus", "evaluator", "opensearch-alerting"

    def accepts(self, rule: AlertRule) -> bool:
        """Whether rules of this kind belong here (log rules to the logs backend, metric and budget rules to
        the metrics backend). The reconciler gives each rule to the first target that accepts it."""
        ...

    def content_hash(self, rule: AlertRule) -> str:
        """The hash `list_managed` would report once `upsert(rule)` has written it."""
        ...

    async def list_managed(self) -> dict[str, BackendRule]:
        """Every rule this target holds that we own, keyed by logical id; raises when it cannot tell (the
        reconciler then leaves this target alone for the pass instead of deleting what it cannot see)."""
        ...

    async def upsert(self, rule: AlertRule) -> str:
        """Creates or replaces the rule; returns the backend's id for it (the status' backendMonitorId).
        Raises UnsupportedRule or any failure; nothing half-written stays active."""
        ...

    async def delete(self, rule_id: str) -> None:
        """Removes the rule with this logical id (as `list_managed` reported it); missing is not an error."""
        ...
