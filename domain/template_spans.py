"""Where the `${...}` CEL expressions of a template string are: the one scanner behind the observer's notification
templates (observer/alerting/templates.py) and the control plane's trait templates (controlplane/render/).

Braces are balanced outside CEL string literals, so `${ {"a": 1}.a }` is one expression. What a caller does with
an unclosed `${` differs (a notification keeps it as literal text, as upstream does; a trait template is a typo),
so the scan reports where one starts instead of deciding; a `${` inside an expression is always an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class NestedExpression(ValueError):
    """A `${` inside an expression: `snippet` is the text from the outer `${` to the inner one."""

    def __init__(self, snippet: str) -> None:
        super().__init__(snippet)
        self.snippet = snippet


@dataclass(frozen=True)
class Spans:
    """Every complete expression as (start, end, inner text), and the index of a trailing unclosed `${` (-1: none)."""

    found: list[tuple[int, int, str]] = field(default_factory=list)
    unclosed_at: int = -1


def expression_spans(text: str) -> Spans:
    """The expressions of `text` in order; NestedExpression when one holds another `${`."""
    found: list[tuple[int, int, str]] = []
    position = 0
    while (start := text.find("${", position)) != -1:
        depth, i, quote, escaped = 1, start + 2, "", False
        while i < len(text) and depth:
            char = text[i]
            if quote:
                if escaped:
                    escaped = False
                elif char == "\\":
                    escaped = True
                elif char == quote:
                    quote = ""
            elif char in "\"'":
                quote = char
            elif char == "{":
                depth += 1
            elif char == "}":
                depth -= 1
            elif char == "$" and text.startswith("${", i):
                raise NestedExpression(text[start : i + 2])
            i += 1
        if depth:
            return Spans(found, start)
        found.append((start, i, text[start + 2 : i - 1]))
        position = i
    return Spans(found)
