"""Notification templates: `${...}` CEL expressions in webhook payloads and e-mail subjects and bodies (§2.5).

Upstream renders them with OpenChoreo's CEL template engine (cel-go). We use `cel-python`, a pure-Python CEL
interpreter, so any template written for upstream (field access, `+`, `?:`, `==`, `in`, `size()`, `has()`,
macros like `.map()`) means the same here; a hand-written evaluator would accept a smaller language and silently
differ on the rest. cel-go's string extension functions that notification templates plausibly use
(`upperAscii`, `lowerAscii`, `trim`, `replace`, `split`, `join`, `substring`, `indexOf`) are added, since
cel-python lacks them. OpenChoreo's own `oc_*` helpers are for component templates and are not offered.

Semantics kept from upstream's engine:
- a string that is exactly one `${expr}` (surrounding spaces allowed) takes the expression's own type, so
  `"fired": "${incidentEnabled}"` renders a JSON boolean and `"${notificationChannels}"` a JSON array;
- anywhere else, each `${expr}` is replaced by its value as text: strings as they are, integers in decimal, doubles
  like Go's `%g`, booleans `true`/`false`, lists and maps as compact JSON;
- in a JSON payload template, string values AND map keys are rendered; the template is parsed as JSON first and
  re-serialised after rendering, so a value holding quotes, backslashes or newlines is escaped correctly and can
  never break the document (upstream gets this right for the same reason); a template that is not valid JSON
  cannot be sent (`TemplateError`).

Variables: upstream's flat AlertDetails keys (`alertName`, `alertSeverity`, ...; `notificationChannels` is always
defined, empty when there are none) plus our `alertId` and `idempotencyKey`; and an `alert` object. Upstream's own
samples write `${alert.severity}`, `${alert.name}`, `${alert.startsAt}`, `${alert.description}`, which its
engine cannot resolve (an upstream defect): `alert` makes those samples work, with `name`, `severity`,
`description`, `startsAt`/`timestamp`, `value`, `threshold`, `type`, `id`, the scope names and ids, `channels`,
`incidentEnabled`, `triggerAiRca`, `triggerAiCostAnalysis` and `idempotencyKey`.

A render failure differs from upstream ON PURPOSE. Upstream sends the whole template unrendered when any
expression fails, so one typo costs the receiver every fact about the alert. Here each failing `${...}` is left
exactly as written (so the receiver and the operator see which one broke) while every other expression is still
rendered; the failures come back in `Rendered.problems` for the attempt record and the log. Rendering never
evaluates Python: CEL has no loops or I/O, and the expressions come from the channel resource (operator-written).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import celpy
from celpy import celtypes

from domain.cel_values import as_text, native
from domain.template_spans import NestedExpression, expression_spans
from observer.alerting.details import AlertDetails


class TemplateError(ValueError):
    """The template cannot be used at all (a payload template that is not JSON); the send is an error."""


@dataclass(frozen=True, slots=True)
class Rendered:
    text: str
    problems: tuple[str, ...] = ()  # one line per expression left unrendered; no secrets (templates hold none)


# ----------------------------------------------------------------------------------------------- variables


def variables(details: AlertDetails) -> dict[str, Any]:
    """What a template can name: the flat contract keys, our two additions, and the `alert` object."""
    flat = details.to_dict()
    flat.setdefault("notificationChannels", [])
    flat["alert"] = {
        "id": details.alert_id,
        "name": details.alert_name,
        "severity": details.alert_severity,
        "description": details.alert_description,
        "startsAt": details.alert_timestamp,
        "timestamp": details.alert_timestamp,
        "value": details.alert_value,
        "threshold": details.alert_threshold,
        "type": details.alert_type,
        "namespace": details.namespace,
        "component": details.component,
        "project": details.project,
        "environment": details.environment,
        "componentId": details.component_id,
        "projectId": details.project_id,
        "environmentId": details.environment_id,
        "channels": list(details.notification_channels),
        "incidentEnabled": details.incident_enabled,
        "triggerAiRca": details.trigger_ai_rca,
        "triggerAiCostAnalysis": details.trigger_ai_cost_analysis,
        "idempotencyKey": details.idempotency_key,
    }
    return flat


# ----------------------------------------------------------------------------------------------- rendering


def render_text(template: str, details: AlertDetails) -> Rendered:
    """A subject or body: every `${...}` replaced by its value as text."""
    problems: list[str] = []
    value = _render_string(template, _activation(details), problems)
    return Rendered(value if isinstance(value, str) else as_text(value), tuple(problems))


def render_json(template: str, details: AlertDetails) -> Rendered:
    """A webhook payload template: parsed as JSON, rendered value by value (keys too), serialised again."""
    try:
        document = json.loads(template)
    except ValueError as exc:
        raise TemplateError(f"payload template is not valid JSON: {exc}") from None
    problems: list[str] = []
    rendered = _render_tree(document, _activation(details), problems)
    return Rendered(json.dumps(rendered, ensure_ascii=False, separators=(",", ":")), tuple(problems))


def _activation(details: AlertDetails) -> dict[str, Any]:
    return {name: celpy.json_to_cel(value) for name, value in variables(details).items()}


def _render_tree(node: Any, activation: dict[str, Any], problems: list[str]) -> Any:
    if isinstance(node, str):
        return _render_string(node, activation, problems)
    if isinstance(node, list):
        return [_render_tree(item, activation, problems) for item in node]
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            rendered_key = _render_string(key, activation, problems)
            if not isinstance(rendered_key, str):
                problems.append(f"map key {_clip(key)!r} must render to a string, not {type(rendered_key).__name__}")
                rendered_key = key
            out[rendered_key] = _render_tree(value, activation, problems)
        return out
    return node


def _render_string(text: str, activation: dict[str, Any], problems: list[str]) -> Any:
    try:
        spans = find_expressions(text)
    except TemplateError as exc:
        problems.append(str(exc))
        return text
    if not spans:
        return text
    if len(spans) == 1 and text[spans[0][0] : spans[0][1]] == text.strip():
        ok, value = _evaluate(spans[0][2], activation, problems)
        return value if ok else text
    parts: list[str] = []
    cursor = 0
    for start, end, expression in spans:
        parts.append(text[cursor:start])
        ok, value = _evaluate(expression, activation, problems)
        parts.append(as_text(value) if ok else text[start:end])
        cursor = end
    parts.append(text[cursor:])
    return "".join(parts)


def find_expressions(text: str) -> list[tuple[int, int, str]]:
    """(start, end, inner) of every `${...}` (domain/template_spans.py). An unclosed `${` ends the scan (the rest
    is literal text); a `${` inside an expression is an error, as upstream."""
    try:
        return expression_spans(text).found
    except NestedExpression as exc:
        raise TemplateError(f"nested expression in {_clip(exc.snippet)!r}: quote the inner ${{") from None


def _evaluate(expression: str, activation: dict[str, Any], problems: list[str]) -> tuple[bool, Any]:
    try:
        return True, native(_program(expression.strip()).evaluate(activation))
    except celpy.CELParseError as exc:
        problems.append(f"expression {_clip(expression)!r} does not parse: {' '.join(str(exc.args[0]).split())}")
    except celpy.CELEvalError as exc:
        problems.append(f"expression {_clip(expression)!r} failed: {_eval_reason(exc)}")
    except Exception as exc:  # noqa: BLE001  (a fault inside the CEL library must not lose the notification)
        problems.append(f"expression {_clip(expression)!r} failed: {type(exc).__name__}")
    return False, None


def _eval_reason(exc: celpy.CELEvalError) -> str:
    """cel-python's message for an undeclared name embeds the whole activation (every variable's value): keep
    only the reason."""
    message = str(exc.args[0]) if exc.args else "evaluation error"
    return message.split(" (in activation", 1)[0]


# ----------------------------------------------------------------------------------------------- CEL


_COMPILE_LOCK = threading.Lock()  # the lark parser behind Environment.compile keeps state between calls


@lru_cache(maxsize=1)
def _environment() -> celpy.Environment:
    """Built on first use: making the CEL parser takes about a second, which no process that never renders a
    template (or a CLI command) should pay at import."""
    return celpy.Environment()


@lru_cache(maxsize=512)
def _program(expression: str) -> celpy.Runner:
    """Compiled once per distinct expression: parsing is the expensive part (milliseconds), evaluation is cheap."""
    with _COMPILE_LOCK:
        environment = _environment()
        ast = environment.compile(expression)
    return environment.program(ast, functions=_FUNCTIONS)


def _ascii_case(upper: bool) -> Callable[[Any], celtypes.StringType]:
    table = str.maketrans(*(("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")[:: 1 if upper else -1]))
    return lambda s: celtypes.StringType(str(s).translate(table))


def _replace(s: Any, old: Any, new: Any, count: Any = -1) -> celtypes.StringType:
    return celtypes.StringType(str(s).replace(str(old), str(new), int(count)))


def _split(s: Any, separator: Any, limit: Any = -1) -> celtypes.ListType:
    limit = int(limit)
    if limit == 0:
        return celtypes.ListType([])
    parts = str(s).split(str(separator), limit - 1 if limit > 0 else -1) if str(separator) else list(str(s))
    return celtypes.ListType([celtypes.StringType(p) for p in parts])


def _join(items: Any, separator: Any = "") -> celtypes.StringType:
    return celtypes.StringType(str(separator).join(str(item) for item in items))


def _substring(s: Any, start: Any, end: Any = None) -> celtypes.StringType:
    text = str(s)
    begin, stop = int(start), len(text) if end is None else int(end)
    if not 0 <= begin <= stop <= len(text):
        raise ValueError(f"substring({begin}, {stop}) out of range for a string of length {len(text)}")
    return celtypes.StringType(text[begin:stop])


def _index_of(s: Any, needle: Any, offset: Any = 0) -> celtypes.IntType:
    return celtypes.IntType(str(s).find(str(needle), int(offset)))


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "upperAscii": _ascii_case(True),
    "lowerAscii": _ascii_case(False),
    "trim": lambda s: celtypes.StringType(str(s).strip()),
    "replace": _replace,
    "split": _split,
    "join": _join,
    "substring": _substring,
    "indexOf": _index_of,
}


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
