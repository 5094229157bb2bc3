"""What a tail wants: a resolved scope, levels and a phrase, matched against records as they are ingested.

The same rules as the stored queries (adapters/embedded/scope.py and logs.py), applied in memory: a component
scope matches the UIDs it was resolved to (never names, so a re-created component's successor is not mixed in)
and leaves workflow runs out; a workflow scope matches the run by name and the task as a substring, without
Argo's own sidecars; levels match what `domain.loglevel.FILTER_MATCHES` says (FATAL counts as ERROR); the
phrase is a literal, case-sensitive substring of the line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from domain.loglevel import stored_levels
from domain.model import ComponentScope, Identity, LogRecord, WorkflowScope

#: Argo's own containers in a workflow pod, which workflow log queries leave out.
_WORKFLOW_SIDECARS = frozenset({"init", "wait"})

#: An index key: the narrowest level a tail's scope names, so ingest looks at only the tails that may match.
Key = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Filter:
    """A tail's question: scope (resolved), the stored levels it takes (empty: all) and a phrase ("" : any)."""

    scope: ComponentScope | WorkflowScope
    levels: frozenset[str] = frozenset()
    phrase: str = ""

    @classmethod
    def of(cls, scope: ComponentScope | WorkflowScope, levels: Sequence[str], phrase: str) -> Filter:
        """`levels` as the API names them (DEBUG, INFO, WARN, ERROR)."""
        return cls(scope, frozenset(stored_levels(tuple(levels))), phrase)

    @property
    def key(self) -> Key:
        scope = self.scope
        if isinstance(scope, WorkflowScope):
            return ("w", scope.namespace)
        if scope.component_uid:
            return ("c", scope.namespace, scope.component_uid)
        if scope.project_uid:
            return ("p", scope.namespace, scope.project_uid)
        if scope.environment_uid:
            return ("e", scope.namespace, scope.environment_uid)
        return ("n", scope.namespace)

    def covers(self, who: Identity) -> bool:
        """Whether a record of `who` is in the scope (levels and phrase aside)."""
        scope = self.scope
        if who.namespace != scope.namespace:
            return False
        if isinstance(scope, WorkflowScope):
            return (
                bool(who.workflow_run)
                and who.container not in _WORKFLOW_SIDECARS
                and (not scope.workflow_run or who.workflow_run == scope.workflow_run)
                and (not scope.task or scope.task in who.task)
            )
        return (
            not who.workflow_run
            and (not scope.project_uid or who.project_uid == scope.project_uid)
            and (not scope.component_uid or who.component_uid == scope.component_uid)
            and (not scope.environment_uid or who.environment_uid == scope.environment_uid)
        )

    def lines(self, records: Sequence[LogRecord]) -> list[LogRecord]:
        """The records (all of one identity the scope covers) whose level and text match."""
        levels, phrase = self.levels, self.phrase
        if not levels and not phrase:
            return list(records)
        return [
            record
            for record in records
            if (not levels or record.level in levels) and (not phrase or phrase in record.body)
        ]


def keys_of(who: Identity) -> tuple[Key, ...]:
    """Every index key a tail covering a record of `who` may be filed under."""
    ns = who.namespace
    if who.workflow_run:
        return (("w", ns),)
    keys: list[Key] = [("n", ns)]
    if who.component_uid:
        keys.append(("c", ns, who.component_uid))
    if who.project_uid:
        keys.append(("p", ns, who.project_uid))
    if who.environment_uid:
        keys.append(("e", ns, who.environment_uid))
    return tuple(keys)
