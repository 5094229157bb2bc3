"""The form of a query request, checked before the contract's rules: only known fields, and only text.

These stand where the contract's "Invalid request format" stands (a body that does not bind), so their
messages carry that prefix and the code of the other binding errors. A misspelt `compnent` or a `workflowRunName`
sent to traces used to be dropped, silently widening the search; a lone surrogate used to reach SQLite or an
HTTP client and fail there as a 500. REST routes and MCP tools bind the same wire models and call these checks
through the same `validate_*` functions, so both refuse the same requests with the same words.
"""

from __future__ import annotations

import difflib
import re

from pydantic import BaseModel

from domain.echo import shown
from observer.errors import INVALID_REQUEST, ApiError, bad_request
from observer.wire import (
    ComponentSearchScope,
    EventsQueryRequest,
    LogContextRequest,
    LogsQueryRequest,
    MetricsQueryRequest,
    RuntimeTopologyRequest,
    TracesQueryRequest,
    WorkflowSearchScope,
)

BIND_PREFIX = "Invalid request format"

_SURROGATE = re.compile(r"[\ud800-\udfff]")


def check_text(field: str, value: str) -> None:
    """A string must be text: JSON lets `"\\ud800"` through, but no encoder (SQLite, HTTP, OpenSearch) can send
    a lone surrogate on, so it is refused here, naming the field, before any backend sees it."""
    found = _SURROGATE.search(value)
    if found:
        raise bad_request(
            f"{BIND_PREFIX}: {field} contains a lone surrogate ({shown(found.group())}); send valid UTF-8 text",
            INVALID_REQUEST,
        )


#: Every field some query endpoint takes: one of these sent to another endpoint is "not supported" there,
#: anything else is unknown (and likely misspelt).
_ALL_FIELDS = frozenset().union(
    *(
        model.model_fields
        for model in (
            LogsQueryRequest,
            EventsQueryRequest,
            MetricsQueryRequest,
            RuntimeTopologyRequest,
            TracesQueryRequest,
            LogContextRequest,
        )
    )
)
_COMPONENT_FIELDS = tuple(ComponentSearchScope.model_fields)
_WORKFLOW_FIELDS = tuple(WorkflowSearchScope.model_fields)


def check_body(body: BaseModel, endpoint: str, workflow_scopes: bool = False) -> None:
    """What every query checks before the contract's rules, because it is about the request's form: no field
    the endpoint does not know (a misspelt `compnent` must not widen the search to every component), and
    text in every string. `endpoint` names the queries in messages; `workflow_scopes` says whether the endpoint
    also takes a workflow scope (logs and events). MCP tools build the same models and call the same checks."""
    _known_fields(body, endpoint, workflow_scopes)
    _text_everywhere(body, "")


def _known_fields(body: BaseModel, endpoint: str, workflow_scopes: bool) -> None:
    for key in body.model_extra or {}:
        if key in _ALL_FIELDS:
            raise _unknown(key, f"not supported by {endpoint} queries")
        raise _unknown(key, _did_you_mean(key, tuple(type(body).model_fields)))
    scope = getattr(body, "searchScope", None)
    if not isinstance(scope, BaseModel):
        return
    for key in scope.model_extra or {}:
        if not workflow_scopes and key in _WORKFLOW_FIELDS:
            hint = f"{endpoint} queries take a component scope: {', '.join(_COMPONENT_FIELDS)}"
        elif workflow_scopes and key == "taskName":
            raise bad_request(f"{BIND_PREFIX}: searchScope.taskName needs searchScope.workflowRunName", INVALID_REQUEST)
        else:
            names = (*_COMPONENT_FIELDS, *_WORKFLOW_FIELDS) if workflow_scopes else _COMPONENT_FIELDS
            hint = _did_you_mean(key, names)
        raise _unknown(f"searchScope.{key}", hint)


def _did_you_mean(key: str, names: tuple[str, ...]) -> str:
    """The closest valid name, when one is close (a typo); the key is cut first, as it may be of any length."""
    close = difflib.get_close_matches(key[:64], list(dict.fromkeys(names)), n=1)
    return f"did you mean {close[0]}?" if close else ""


def _unknown(field: str, hint: str) -> ApiError:
    message = f"{BIND_PREFIX}: unknown field {shown(field)}" + (f" ({hint})" if hint else "")
    return bad_request(message, INVALID_REQUEST)


def _text_everywhere(model: BaseModel, prefix: str) -> None:
    """Every string the model holds, nested scopes and list items included, named as the user wrote it."""
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, str):
            check_text(prefix + name, value)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, str):
                    check_text(f"{prefix}{name}[{index}]", item)
        elif isinstance(value, BaseModel):
            _text_everywhere(value, f"{prefix}{name}.")
