"""Strict reading of a contract request body: every key known, every value of its type and within its bounds,
or a `RequestInvalid` naming the field and what to send instead (the adapter server's 400).

The four newer logs-adapter operations (platform logs, audit logs, each with filter values) have no schema in
our copy of the spec (http-adapters-notes §3: read from OpenChoreo's generated adapter code), so they are read
here, by hand, rather than by specs.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from domain.echo import shown
from domain.timeutil import parse_rfc3339

#: The most values one list filter takes, and the longest string a filter value may be.
MAX_LIST = 100
MAX_TEXT = 1024
_LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


class RequestInvalid(ValueError):
    """A request the contract does not allow; the message says which field and why."""


def valid_label_key(key: str) -> bool:
    """A Kubernetes label key: an optional DNS-subdomain prefix and `/`, then a name of at most 63 characters,
    alphanumeric at both ends with `-`, `_`, `.` between."""
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not all(_DNS_LABEL.fullmatch(p) for p in prefix.split("."))):
        return False
    return bool(_LABEL_NAME.fullmatch(name))


class Reader:
    """One JSON object of a request, read field by field; `done()` refuses the keys nobody read."""

    def __init__(self, body: Any, where: str = "") -> None:
        if not isinstance(body, Mapping):
            raise RequestInvalid(f"{where or 'the body'} must be a JSON object")
        self.body, self.where, self.read = body, where, set[str]()

    def name(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def _get(self, key: str) -> Any:
        self.read.add(key)
        return self.body.get(key)

    def done(self) -> None:
        unknown = sorted(set(self.body) - self.read)
        if unknown:
            raise RequestInvalid(f"unknown field {shown(self.name(str(unknown[0])))}: remove it")

    def object(self, key: str) -> Reader | None:
        value = self._get(key)
        return None if value is None else Reader(value, self.name(key))

    def text(self, key: str, default: str = "") -> str:
        value = self._get(key)
        if value is None:
            return default
        if not isinstance(value, str) or len(value) > MAX_TEXT:
            raise RequestInvalid(f"{self.name(key)} must be a string of at most {MAX_TEXT} characters")
        return value

    def flag(self, key: str) -> bool:
        value = self._get(key)
        if value is not None and not isinstance(value, bool):
            raise RequestInvalid(f"{self.name(key)} must be true or false")
        return bool(value)

    def texts(self, key: str, allowed: Iterable[str] = ()) -> tuple[str, ...]:
        """A list of strings (absent and empty alike: no filter), each one of `allowed` when given."""
        value = self._get(key)
        if value is None:
            return ()
        if not isinstance(value, list) or len(value) > MAX_LIST:
            raise RequestInvalid(f"{self.name(key)} must be a list of at most {MAX_LIST} strings")
        choices = tuple(allowed)
        for item in value:
            if not isinstance(item, str) or not item or len(item) > MAX_TEXT:
                raise RequestInvalid(f"{self.name(key)} must hold non-empty strings of at most {MAX_TEXT} characters")
            if choices and item not in choices:
                raise RequestInvalid(f"{self.name(key)}: unknown value {shown(item)}; use one of {', '.join(choices)}")
        return tuple(dict.fromkeys(value))

    def choice(self, key: str, allowed: Iterable[str], default: str) -> str:
        value = self._get(key)
        if value is None:
            return default
        choices = tuple(allowed)
        if value not in choices:
            raise RequestInvalid(
                f"{self.name(key)}: unknown value {shown(str(value))}; use one of {', '.join(choices)}"
            )
        return str(value)

    def integer(self, key: str, low: int, high: int, default: int) -> int:
        value = self._get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise RequestInvalid(f"{self.name(key)} must be an integer from {low} to {high}")
        return value

    def time(self, key: str) -> int:
        value = self._get(key)
        if not isinstance(value, str):
            raise RequestInvalid(f"{self.name(key)} is required: an RFC3339 time such as 2026-01-01T00:00:00Z")
        try:
            return parse_rfc3339(value)
        except ValueError as error:
            raise RequestInvalid(f"{self.name(key)}: {error}") from None

    def window(self) -> tuple[int, int]:
        """startTime and endTime, the end after the start."""
        start, end = self.time("startTime"), self.time("endTime")
        if end <= start:
            raise RequestInvalid(f"{self.name('endTime')} must be after {self.name('startTime')}")
        return start, end

    def labels(self, key: str) -> tuple[tuple[str, str], ...]:
        """`{key: value}` pod labels, each key a valid Kubernetes label key, sorted by key."""
        value = self._get(key)
        if value is None:
            return ()
        if not isinstance(value, Mapping) or len(value) > MAX_LIST:
            raise RequestInvalid(f"{self.name(key)} must be an object of at most {MAX_LIST} label pairs")
        for label, text in sorted(value.items()):
            if not valid_label_key(str(label)):
                raise RequestInvalid(
                    f"{self.name(key)}: {shown(str(label))} is not a valid Kubernetes label key"
                    " (an optional DNS prefix and '/', then at most 63 of [A-Za-z0-9-_.], alphanumeric at both ends)"
                )
            if not isinstance(text, str) or len(text) > MAX_TEXT:
                raise RequestInvalid(f"{self.name(key)}.{shown(str(label))} must be a string")
        return tuple(sorted((str(label), str(text)) for label, text in value.items()))
