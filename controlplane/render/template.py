"""OpenChoreo's `${...}` template language over a YAML tree, evaluated with cel-python.

Upstream renders ComponentType and Trait templates with cel-go. The rules kept here:
- a string that is exactly one `${expr}` (surrounding whitespace allowed, so YAML block scalars work) becomes the
  expression's own value: `enabled: ${environmentConfigs.enabled}` renders a boolean, `channels: ${[...]}` a list;
- elsewhere each `${expr}` is replaced by its value as text (strings as they are, booleans `true`/`false`,
  numbers in decimal, lists and maps as compact JSON);
- map keys are rendered too; everything that is not a string is kept as written.
Any parse or evaluation failure raises `ExpressionError` with the dotted path of the field, so the caller can
name the trait and field. CEL has no loops or I/O: evaluating an operator-written template is safe.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import celpy

from domain.cel_values import as_text, native
from domain.template_spans import NestedExpression, expression_spans

MAX_TEMPLATE_NODES = 10_000  # a bound on the tree walk: a trait template is a handful of fields


class ExpressionError(ValueError):
    """`field` is the dotted path of the failing template field; `expression` the text inside `${...}`."""

    def __init__(self, field: str, expression: str, reason: str) -> None:
        super().__init__(f"{field}: expression {_clip(expression)!r}: {reason}")
        self.field = field
        self.expression = expression
        self.reason = reason


def activation(context: Mapping[str, Any]) -> dict[str, Any]:
    """Plain JSON-like values -> CEL values, once per render."""
    return {name: celpy.json_to_cel(_jsonable(value)) for name, value in context.items()}


def render_tree(node: Any, variables: Mapping[str, Any], path: str = "") -> Any:
    """`node` with every string (values and keys) rendered; `variables` from `activation`."""
    budget = [MAX_TEMPLATE_NODES]
    return _tree(node, variables, path, budget)


def _tree(node: Any, variables: Mapping[str, Any], path: str, budget: list[int]) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        raise ExpressionError(path, "", f"template larger than {MAX_TEMPLATE_NODES} nodes")
    if isinstance(node, str):
        return render_string(node, variables, path)
    if isinstance(node, list):
        return [_tree(item, variables, f"{path}[{index}]", budget) for index, item in enumerate(node)]
    if isinstance(node, Mapping):
        out: dict[str, Any] = {}
        for key, value in node.items():
            child = f"{path}.{key}" if path else str(key)
            rendered_key = render_string(str(key), variables, child)
            if not isinstance(rendered_key, str):
                raise ExpressionError(child, str(key), "a map key must render to a string")
            out[rendered_key] = _tree(value, variables, child, budget)
        return out
    return node


def render_string(text: str, variables: Mapping[str, Any], path: str) -> Any:
    """One string: its own value when it is a single expression, else text with each expression interpolated."""
    spans = find_expressions(text, path)
    if not spans:
        return text
    if len(spans) == 1 and text[spans[0][0] : spans[0][1]] == text.strip():
        return evaluate(spans[0][2], variables, path)
    parts: list[str] = []
    cursor = 0
    for start, end, expression in spans:
        parts.append(text[cursor:start])
        parts.append(as_text(evaluate(expression, variables, path)))
        cursor = end
    parts.append(text[cursor:])
    return "".join(parts)


def find_expressions(text: str, path: str = "") -> list[tuple[int, int, str]]:
    """(start, end, inner) of every `${...}` (domain/template_spans.py). An unclosed or nested `${` is an error
    (a template typo, not literal text)."""
    try:
        spans = expression_spans(text)
    except NestedExpression as exc:
        raise ExpressionError(path, exc.snippet, "a ${ inside an expression") from None
    if spans.unclosed_at >= 0:
        raise ExpressionError(path, text[spans.unclosed_at :], "unclosed ${")
    return spans.found


def evaluate(expression: str, variables: Mapping[str, Any], path: str) -> Any:
    """One CEL expression -> a plain Python value; any failure -> ExpressionError naming `path`."""
    source = expression.strip()
    if not source:
        raise ExpressionError(path, expression, "empty expression")
    try:
        result = _program(source).evaluate(dict(variables))
    except celpy.CELParseError as exc:
        raise ExpressionError(path, expression, "does not parse: " + " ".join(str(exc.args[0]).split())) from None
    except celpy.CELEvalError as exc:
        raise ExpressionError(path, expression, _reason(exc)) from None
    except Exception as exc:  # noqa: BLE001  (a fault inside the CEL library is a template error, not a crash)
        raise ExpressionError(path, expression, f"evaluation failed: {type(exc).__name__}") from None
    if isinstance(result, celpy.CELEvalError):
        raise ExpressionError(path, expression, _reason(result))
    return native(result)


def _reason(exc: celpy.CELEvalError) -> str:
    """cel-python's message for a missing name embeds the whole activation: keep only the reason."""
    message = str(exc.args[0]) if exc.args else "evaluation error"
    return message.split(" (in activation", 1)[0]


_COMPILE_LOCK = threading.Lock()  # the lark parser behind Environment.compile keeps state between calls


@lru_cache(maxsize=1)
def _environment() -> celpy.Environment:
    return celpy.Environment()


@lru_cache(maxsize=512)
def _program(expression: str) -> celpy.Runner:
    with _COMPILE_LOCK:
        environment = _environment()
        ast = environment.compile(expression)
        return environment.program(ast)


def _jsonable(value: Any) -> Any:
    """Mappings and sequences as dicts and lists (json_to_cel wants exactly those)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _clip(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
