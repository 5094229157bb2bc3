"""Evaluate a CRD's CEL rules (`x-kubernetes-validations`) the way the Kubernetes API server does, with celpy.

Each rule sits on a schema node and sees that node's value as `self`; it runs once per value the document holds
there (every item of a list, every value of a map) and only where a value is present. A rule that mentions
`oldSelf` is a transition rule: it runs only on replace and only where the previous object had a value at the
same place (list items are not correlated: only object properties and map keys are, as for an atomic list in
Kubernetes), so immutability rules such as `self == oldSelf` never block a create.

A failed rule is reported as `(concrete field path, rule message)`, e.g. `("spec.owner", "spec.owner is
immutable")`. celpy has no cost budget, so a rule that cannot be evaluated (a missing field it dereferences, a
division by zero, a data shape it chokes on, recursion too deep) is a failed rule naming the field, never a crash.
What bounds the work instead: the rules are ours (the CRD files in crds/, never user input, each compiled once per
rule text) and the document is at most the API's 1 MiB body, so an evaluation is linear in the data it walks.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import celpy

FieldError = tuple[str, str]

_OLD_SELF = re.compile(r"\boldSelf\b")
# celpy documents neither its lark parser nor its interpreter (which walks the shared parse tree) as thread-safe,
# and the store validates in the API's worker threads: compile and evaluate one rule at a time. It costs nothing
# the GIL did not already take, since evaluation is pure Python.
_LOCK = threading.Lock()
_ABSENT = object()


@dataclass(frozen=True)
class Rule:
    """One `x-kubernetes-validations` entry: the expression, its message, and whether it needs the old value."""

    rule: str
    message: str

    @property
    def transition(self) -> bool:
        """A rule that reads `oldSelf` (Kubernetes' transition rules)."""
        return bool(_OLD_SELF.search(self.rule))

    @property
    def failure(self) -> str:
        """The text reported when the rule does not hold."""
        return self.message or f"failed rule: {self.rule}"


@cache
def _program(rule: str) -> celpy.Runner:
    """The compiled program of one rule text (cached: every CRD rule is compiled once per process)."""
    with _LOCK:
        env = celpy.Environment()
        return env.program(env.compile(rule))


def _rules(node: Mapping[str, Any]) -> list[Rule]:
    out = []
    for entry in node.get("x-kubernetes-validations") or []:
        if isinstance(entry, Mapping) and entry.get("rule"):
            out.append(Rule(str(entry["rule"]), str(entry.get("message") or "")))
    return out


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _walk(node: Mapping[str, Any], value: Any, old: Any, path: str) -> Iterator[tuple[str, Rule, Any, Any]]:
    """(path, rule, self, oldSelf or _ABSENT) for every rule that applies to a value present in the document."""
    for rule in _rules(node):
        yield path, rule, value, old
    if isinstance(value, dict):
        properties = node.get("properties") or {}
        old_map = old if isinstance(old, dict) else {}
        for name, sub in properties.items():
            if name in value and value[name] is not None:
                yield from _walk(sub, value[name], old_map.get(name, _ABSENT), _join(path, name))
        extra = node.get("additionalProperties")
        if isinstance(extra, Mapping):
            for key, item in value.items():
                if key not in properties and item is not None:
                    yield from _walk(extra, item, old_map.get(key, _ABSENT), _join(path, str(key)))
    elif isinstance(value, list):
        items = node.get("items")
        if isinstance(items, Mapping):
            for index, item in enumerate(value):
                if item is not None:
                    yield from _walk(items, item, _ABSENT, f"{path}[{index}]")


def _holds(rule: Rule, value: Any, old: Any) -> str | None:
    """None when the rule holds, else why not (its message, or the evaluation error)."""
    activation = {"self": value} if old is _ABSENT else {"self": value, "oldSelf": old}
    try:
        program = _program(rule.rule)
        with _LOCK:
            result = program.evaluate({key: celpy.json_to_cel(item) for key, item in activation.items()})
    except Exception as exc:  # noqa: BLE001 - celpy raises CELEvalError, but also TypeError/RecursionError on odd data
        return f"{rule.failure} (the rule could not be evaluated: {_short(exc)})"
    if isinstance(result, celpy.CELEvalError):
        return f"{rule.failure} (the rule could not be evaluated: {_short(result)})"
    if not isinstance(result, celpy.celtypes.BoolType):
        return f"{rule.failure} (the rule gave {type(result).__name__}, not a boolean)"
    return None if bool(result) else rule.failure


def _short(exc: BaseException) -> str:
    text = str(exc.args[0]) if exc.args else type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def check(
    schema: Mapping[str, Any], document: Any, old: Any = None, *, transitions_only: bool = False
) -> list[FieldError]:
    """Every CEL rule of `schema` that fails for `document` (`old` is the stored object on replace, else None).
    `transitions_only` runs just the rules that read `oldSelf`, for a caller that checked the rest already."""
    problems: list[FieldError] = []
    for path, rule, value, previous in _walk(schema, document, _ABSENT if old is None else old, ""):
        if (rule.transition and previous is _ABSENT) or (transitions_only and not rule.transition):
            continue
        why = _holds(rule, value, previous)
        if why is not None:
            problems.append((path, why))
    return problems
