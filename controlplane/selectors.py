"""Kubernetes label selectors (`env=prod,tier!=cache,app in (a,b),!legacy`): parse once, match many objects.

The syntax is that of k8s.io/apimachinery/pkg/labels: `=`, `==`, `!=`, `in (a,b)`, `notin (a,b)`, `key` (exists),
`!key` (does not exist); requirements are separated by commas and all must hold. `!=` and `notin` also match an
object without the key, as in Kubernetes. A selector that does not parse is Invalid naming `labelSelector`, so a
typo is a 400 rather than a filter that silently matches everything.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from controlplane.errors import Invalid

MAX_SELECTOR_CHARS = 4096

_KEY = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,251}[A-Za-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?")
_SET = re.compile(r"^\s*([^\s=!,()]+)\s+(in|notin)\s*\(([^()]*)\)\s*")
_EQUALITY = re.compile(r"^\s*([^\s=!,()]+)\s*(==|=|!=)\s*([^\s,()]*)\s*")
_EXISTS = re.compile(r"^\s*(!?)\s*([^\s=!,()]+)\s*")


@dataclass(frozen=True)
class Requirement:
    """One requirement: `op` is one of `in`, `notin`, `exists`, `!exists`; `=`/`==` are `in`, `!=` is `notin`."""

    key: str
    op: str
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether `labels` satisfy this requirement."""
        if self.op == "exists":
            return self.key in labels
        if self.op == "!exists":
            return self.key not in labels
        if self.op == "in":
            return self.key in labels and labels[self.key] in self.values
        return self.key not in labels or labels[self.key] not in self.values


@dataclass(frozen=True)
class Selector:
    """A parsed selector; the empty selector matches everything."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        """Whether every requirement holds for `labels`."""
        present = labels or {}
        return all(requirement.matches(present) for requirement in self.requirements)


def _bad(text: str, why: str) -> Invalid:
    return Invalid([("labelSelector", f"Invalid value: {text!r}: {why}")])


def _check_key(text: str, key: str) -> str:
    if not _KEY.fullmatch(key):
        raise _bad(text, f"{key!r} is not a valid label key")
    return key


def _check_value(text: str, value: str) -> str:
    if not _VALUE.fullmatch(value):
        raise _bad(text, f"{value!r} is not a valid label value")
    return value


def parse(text: str) -> Selector:
    """Parse a selector; Invalid naming `labelSelector` (with the reason) when it does not parse."""
    if len(text) > MAX_SELECTOR_CHARS:
        raise _bad(text[:64] + "...", f"longer than {MAX_SELECTOR_CHARS} characters")
    rest = text.strip()
    requirements: list[Requirement] = []
    while rest:
        if match := _SET.match(rest):
            key, op, inner = match.group(1), match.group(2), match.group(3)
            values = [part.strip() for part in inner.split(",")]
            if any(value == "" for value in values):
                raise _bad(text, f"an empty value in the set of {key!r}")
            requirement = Requirement(
                _check_key(text, key), op, frozenset(_check_value(text, value) for value in values)
            )
        elif match := _EQUALITY.match(rest):
            key, op, value = match.group(1), match.group(2), match.group(3)
            requirement = Requirement(
                _check_key(text, key), "notin" if op == "!=" else "in", frozenset([_check_value(text, value)])
            )
        elif match := _EXISTS.match(rest):
            negated, key = match.group(1), match.group(2)
            requirement = Requirement(_check_key(text, key), "!exists" if negated else "exists")
        else:
            raise _bad(text, f"cannot parse {rest!r}")
        requirements.append(requirement)
        rest = rest[match.end() :]
        if rest.startswith(","):
            rest = rest[1:].lstrip()
            if not rest:
                raise _bad(text, "a trailing comma")
        elif rest:
            raise _bad(text, f"expected ',' before {rest!r}")
    return Selector(tuple(requirements))
