"""Datadog's search syntax (logs and spans), the subset the Observer's Datadog adapter sends.

https://docs.datadoghq.com/logs/explorer/search_syntax/ — what is implemented here:

- `key:value` on a tag or reserved attribute (`service`, `host`, `status`, `source`, and for spans
  `resource_name`, `trace_id`, ...): the caller's `Searchable.field` answers what a key holds;
- `@path.to.attr:value` on the (nested) attributes;
- values: bare words, `"quoted values"`, `*` wildcards in bare values, a backslash escaping any one character
  (Datadog's special characters `+ - = && || > < ! ( ) { } [ ] ^ " ~ * ? : \\ /` and the space);
- numeric comparisons `@http.status_code:>=500` and ranges `[500 TO 599]` (inclusive), `{a TO b}` (exclusive);
- `key:(a OR b)` value groups; free text: a bare word or a `"quoted phrase"`, each a case-insensitive substring
  of the message (Datadog's full-text search is case-insensitive);
- `AND` (also implied by a space), `OR`, `NOT` and a leading `-`, parentheses; NOT binds tighter than AND, AND
  tighter than OR, as Datadog documents.

A term the fake does not understand is a `QueryError` (Datadog answers 400 to a query it cannot parse), never a
silent match-everything.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol


class QueryError(ValueError):
    """The query cannot be parsed."""


class Searchable(Protocol):
    """What a record offers the evaluator."""

    def field(self, key: str) -> Iterable[str]:
        """Every value `key:` compares with: a reserved field, and the values of tags named `key`."""
        ...

    def attribute(self, path: str) -> Iterable[str]:
        """The value(s) at dotted `path` in the attributes, as strings."""
        ...

    def text(self) -> str:
        """What free text searches: the message."""
        ...


Matcher = Callable[[Searchable], bool]


@dataclass(frozen=True)
class _Token:
    kind: str  # "(", ")", "word", "phrase", "-"
    text: str  # unescaped text
    raw: str = ""  # as written (wildcards are meaningful only when not escaped)


def _tokens(query: str) -> list[_Token]:
    """Splits on unescaped spaces and parentheses; keeps quoted strings whole; unescapes backslashes."""
    tokens: list[_Token] = []
    i, n = 0, len(query)
    while i < n:
        ch = query[i]
        if ch.isspace():
            i += 1
        elif ch in "()":
            tokens.append(_Token(ch, ch))
            i += 1
        elif ch == "-" and (i + 1 < n and not query[i + 1].isspace()) and (not tokens or _boundary(query, i)):
            tokens.append(_Token("-", "-"))
            i += 1
        elif ch == '"':
            phrase, i = _quoted(query, i)
            tokens.append(_Token("phrase", phrase))
        else:
            text: list[str] = []
            raw: list[str] = []
            while i < n and not query[i].isspace() and query[i] not in "()":
                if query[i] == "\\":
                    if i + 1 >= n:
                        raise QueryError("dangling escape at end of query")
                    text.append(query[i + 1])
                    raw.append(query[i : i + 2])
                    i += 2
                elif query[i] == '"':  # key:"quoted value"
                    quoted, i = _quoted(query, i)
                    text.append(quoted)
                    raw.append(re.sub(r"([*?\\])", r"\\\1", quoted))
                else:
                    text.append(query[i])
                    raw.append(query[i])
                    i += 1
            tokens.append(_Token("word", "".join(text), "".join(raw)))
    return tokens


def _boundary(query: str, i: int) -> bool:
    return i == 0 or query[i - 1].isspace() or query[i - 1] == "("


def _quoted(query: str, start: int) -> tuple[str, int]:
    out: list[str] = []
    i = start + 1
    while i < len(query):
        if query[i] == "\\" and i + 1 < len(query):
            out.append(query[i + 1])
            i += 2
        elif query[i] == '"':
            return "".join(out), i + 1
        else:
            out.append(query[i])
            i += 1
    raise QueryError("unterminated quoted string")


def _split_key(raw: str) -> tuple[str, str] | None:
    """`key:value` split at the first unescaped colon, both halves still raw (escapes kept)."""
    i = 0
    while i < len(raw):
        if raw[i] == "\\":
            i += 2
            continue
        if raw[i] == ":":
            return raw[:i], raw[i + 1 :]
        i += 1
    return None


def _unescape(raw: str) -> str:
    return re.sub(r"\\(.)", r"\1", raw)


_RANGE = re.compile(r"([\[{])\s*(\S+)\s+TO\s+(\S+)\s*([\]}])")
_COMPARISON = re.compile(r"(>=|<=|>|<)(-?\d+(?:\.\d+)?)")


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _numeric_matcher(raw_value: str) -> Callable[[str], bool] | None:
    """`>=500`, `<1.5`, `[500 TO 599]` (inclusive) or `{a TO b}` (exclusive), `*` an open end; None otherwise."""
    if raw_value[:1] in "[{":
        match = _RANGE.fullmatch(raw_value)
        if match is None:
            raise QueryError(f"invalid range {raw_value!r}")
        opening, low_text, high_text, closing = match.groups()
        low = None if low_text == "*" else _number(low_text)
        high = None if high_text == "*" else _number(high_text)
        if (low is None and low_text != "*") or (high is None and high_text != "*"):
            raise QueryError(f"invalid range {raw_value!r}")

        def in_range(candidate: str) -> bool:
            value = _number(candidate)
            if value is None:
                return False
            above = low is None or (value >= low if opening == "[" else value > low)
            below = high is None or (value <= high if closing == "]" else value < high)
            return above and below

        return in_range
    match = _COMPARISON.fullmatch(raw_value)
    if match is None:
        return None
    operator, bound = match.group(1), float(match.group(2))
    compare = {">": float.__gt__, ">=": float.__ge__, "<": float.__lt__, "<=": float.__le__}[operator]

    def compared(candidate: str) -> bool:
        value = _number(candidate)
        return value is not None and compare(value, bound)

    return compared


def _value_matcher(raw_value: str) -> Callable[[str], bool]:
    """Numeric comparison or range, exact (case-sensitive) comparison, or a glob where the value holds
    unescaped `*` or `?`."""
    numeric = _numeric_matcher(raw_value)
    if numeric is not None:
        return numeric
    parts = re.split(r"(\\.|\*|\?)", raw_value)
    if not any(p in ("*", "?") for p in parts):
        wanted = _unescape(raw_value)
        return lambda candidate: candidate == wanted
    pattern = "".join(
        ".*" if p == "*" else "." if p == "?" else re.escape(p[1] if p.startswith("\\") else p) for p in parts if p
    )
    compiled = re.compile(pattern, re.DOTALL)
    return lambda candidate: compiled.fullmatch(candidate) is not None


class _Parser:
    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def parse_or(self) -> Matcher:
        terms = [self.parse_and()]
        while (t := self.peek()) is not None and t.kind == "word" and t.raw == "OR":
            self.take()
            terms.append(self.parse_and())
        return terms[0] if len(terms) == 1 else (lambda r: any(m(r) for m in terms))

    def parse_and(self) -> Matcher:
        terms = [self.parse_not()]
        while (t := self.peek()) is not None and not (t.kind == ")" or (t.kind == "word" and t.raw == "OR")):
            if t.kind == "word" and t.raw == "AND":
                self.take()
            terms.append(self.parse_not())
        return terms[0] if len(terms) == 1 else (lambda r: all(m(r) for m in terms))

    def parse_not(self) -> Matcher:
        t = self.peek()
        if t is not None and (t.kind == "-" or (t.kind == "word" and t.raw == "NOT")):
            self.take()
            inner = self.parse_not()
            return lambda r: not inner(r)
        return self.parse_atom()

    def parse_atom(self) -> Matcher:
        if self.peek() is None:
            raise QueryError("query ends where a term was expected")
        t = self.take()
        if t.kind == "(":
            inner = self.parse_or()
            self._close()
            return inner
        if t.kind == "phrase":
            return _free_text(t.text)
        if t.kind == "word" and t.raw in ("AND", "OR"):
            raise QueryError(f"{t.raw} where a term was expected")
        if t.kind != "word":
            raise QueryError(f"unexpected {t.text!r}")
        split = _split_key(t.raw)
        if split is None:
            if t.raw == "*":
                return lambda r: True
            return _free_text(t.text)
        raw_key, raw_value = split
        key = _unescape(raw_key)
        if not key:
            raise QueryError("empty key before ':'")
        if raw_value == "":
            nxt = self.peek()
            if nxt is not None and nxt.kind == "(":
                self.take()
                values = self._value_group()
                return _compare(key, values)
            raise QueryError(f"no value after {key}:")
        if raw_value[0] in "[{" and raw_value[-1] not in "]}":  # a range: `[low TO high]`, split by the spaces
            parts = [raw_value]
            while (nxt := self.peek()) is not None and nxt.kind == "word" and len(parts) < 3:
                parts.append(self.take().raw)
            raw_value = " ".join(parts)
        return _compare(key, [_value_matcher(raw_value)])

    def _value_group(self) -> list[Callable[[str], bool]]:
        """`(a OR b OR "c d")`: the only form of group a value takes here."""
        values: list[Callable[[str], bool]] = []
        while True:
            if self.peek() is None:
                raise QueryError("unclosed value group")
            t = self.take()
            if t.kind == "word" and t.raw != "OR":
                values.append(_value_matcher(t.raw))
            elif t.kind == "phrase":
                values.append(_value_matcher(re.sub(r"([*?\\])", r"\\\1", t.text)))
            else:
                raise QueryError(f"unexpected {t.text!r} in a value group")
            nxt = self.peek()
            if nxt is not None and nxt.kind == ")":
                self.take()
                return values
            if nxt is None or not (nxt.kind == "word" and nxt.raw == "OR"):
                raise QueryError("a value group holds values joined by OR")
            self.take()

    def _close(self) -> None:
        if self.peek() is None or self.take().kind != ")":
            raise QueryError("missing ')'")


def _free_text(phrase: str) -> Matcher:
    wanted = phrase.lower()
    return lambda r: wanted in r.text().lower()


def _compare(key: str, values: list[Callable[[str], bool]]) -> Matcher:
    if key.startswith("@"):
        path = key[1:]
        return lambda r: any(v(c) for c in r.attribute(path) for v in values)
    return lambda r: any(v(c) for c in r.field(key) for v in values)


def compile_query(query: str | None) -> Matcher:
    """A predicate for `query`; empty or `*` matches everything."""
    if query is None or not query.strip():
        return lambda r: True
    parser = _Parser(_tokens(query))
    matcher = parser.parse_or()
    if parser.peek() is not None:
        raise QueryError(f"unexpected {parser.peek().text!r}")  # type: ignore[union-attr]
    return matcher
