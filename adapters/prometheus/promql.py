"""PromQL text from parts, with user input only ever inside an escaped label value.

A scope value is a label matcher's string literal and nothing else: `escape` makes `"`, `\\` and line breaks
inert, so `cart"} or vector(1) #` stays a (non-matching) component name instead of becoming query syntax.
"""

from __future__ import annotations

from collections.abc import Iterable


def escape(value: str) -> str:
    """A PromQL double-quoted string body for `value`."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")


def matchers(pairs: Iterable[tuple[str, str]], *extra: str) -> str:
    """`a="x",b="y",<extra...>` for the pairs with a value; label names are ours, values are escaped."""
    parts = [f'{name}="{escape(value)}"' for name, value in pairs if value]
    return ",".join([*parts, *extra])


def selector(metric: str, pairs: Iterable[tuple[str, str]] = (), *extra: str) -> str:
    return f"{metric}{{{matchers(pairs, *extra)}}}"


def duration(ns: int) -> str:
    """A PromQL duration for a whole number of milliseconds: `90s`, `1m30s` style is not needed, `90000ms` is
    exact and valid in every Prometheus version."""
    ms = ns // 1_000_000
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"
