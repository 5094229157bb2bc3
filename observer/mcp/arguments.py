"""Tool arguments -> the REST request, so one validation (observer/validation.py) serves both surfaces.

A tool call is turned into the very body REST would receive (`namespace` -> `searchScope.namespace`,
`start_time` -> `startTime`), bound by the same wire model and checked by the same `validate_*` function, so
the same bad input gets the same message. Only two things are MCP's own: an argument the tool does not have
is refused here, naming it (REST does the same for unknown fields), and the messages speak the tool's argument
names ("start_time is required", not "startTime is required"), because those are the names an agent can fix.
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Mapping
from typing import Any, TypeVar

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from domain.echo import shown
from observer.errors import ApiError, bad_request, describe_validation_error
from observer.mcp.schemas import Argument

Model = TypeVar("Model", bound=BaseModel)

#: The texts upstream's MCP handlers return for the authorizer's refusals (contract notes §2.1): agents and
#: OpenChoreo's e2e match on them.
FORBIDDEN_TEXT = "insufficient permissions to perform this action"
UNAUTHORIZED_TEXT = "unauthorized request"


class ToolError(Exception):
    """A failure the agent should see as the tool's answer (`isError: true`), with a message saying what to fix."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def refuse_unknown(tool: str, declared: Mapping[str, Argument], arguments: Mapping[str, Any]) -> None:
    """An argument the tool does not declare is an error naming it (and the closest declared name), never
    ignored: a misspelt filter would otherwise widen the answer silently."""
    unknown = [name for name in arguments if name not in declared]
    if not unknown:
        return
    name = unknown[0]
    close = difflib.get_close_matches(_snake(name), list(declared), n=1, cutoff=0.6)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise ToolError(f"unknown argument '{shown(name)}' for {tool}{hint}; it takes: {', '.join(declared)}")


def _snake(name: str) -> str:
    """`searchPhrase` -> `search_phrase`, so a camelCase guess finds the argument it meant."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def rest_body(
    declared: Mapping[str, Argument], arguments: Mapping[str, Any], fixed: Mapping[str, Any]
) -> dict[str, Any]:
    """The REST request body these arguments stand for: each body argument at its dotted REST name, null
    taken as absent (as REST takes it), plus `fixed` fields the tool itself implies (`metric`, an empty
    `searchScope.workflowRunName` that selects the workflow scope)."""
    body: dict[str, Any] = {}
    for dotted, value in fixed.items():
        _place(body, dotted, copy.deepcopy(value))  # never the spec's own object: the call fills it in
    for name, value in arguments.items():
        argument = declared[name]
        if value is not None and argument.in_body:
            _place(body, argument.rest, value)
    return body


def _place(body: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for parent in parents:
        body = body.setdefault(parent, {})
    body[leaf] = value


def bind(model: type[Model], body: Mapping[str, Any]) -> Model:
    """The body as REST's wire model, or the 400 REST answers for it: the same message, because it is
    produced by the same function from the same errors (located under `body`, as FastAPI locates them)."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        errors = [{**error, "loc": ("body", *error.get("loc", ()))} for error in exc.errors()]
        raise bad_request(describe_validation_error(RequestValidationError(errors))) from None


def path_text(arguments: Mapping[str, Any], name: str) -> str:
    """An argument REST takes in the URL (`trace_id`, `span_id`, the cost routes' parameters), where it can
    only be text: a string, or the message a wrong type gets in a body."""
    value = arguments.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ToolError(f"Invalid request format: {name}: Input should be a valid string")
    return value


class Vocabulary:
    """REST's field names -> a tool's argument names, for the messages of one tool.

    Built from the tool's own argument table, longest REST name first, so `searchScope.namespace` becomes
    `namespace` before a bare `searchScope` is considered; names are replaced only as whole words.
    """

    def __init__(self, declared: Mapping[str, Argument]) -> None:
        pairs = sorted(((argument.rest, name) for name, argument in declared.items()), key=lambda p: -len(p[0]))
        self._names = dict(pairs)
        self._pattern = (
            re.compile(r"(?<![\w.])(" + "|".join(re.escape(rest) for rest, _ in pairs) + r")(?![\w])")
            if pairs
            else None
        )

    def speak(self, message: str) -> str:
        if self._pattern is None:
            return message
        return self._pattern.sub(lambda match: self._names[match.group(1)], message)


def api_error_text(error: ApiError, vocabulary: Vocabulary) -> str:
    """What a tool answers for an ApiError: upstream's texts for 401 and 403, otherwise REST's message in the
    tool's argument names."""
    if error.status == 403:
        return FORBIDDEN_TEXT
    if error.status == 401:
        return UNAUTHORIZED_TEXT
    return vocabulary.speak(error.message)
