"""The live tail's request: the logs query's scope and filters, and the tail's own bounds.

The body binds like a logs query's (the same scope shapes, the same form checks: observer/request_form.py) and
its shared fields are checked by the same functions (observer/validation.py), so a tail and a query refuse the
same scope or level with the same words. What a tail has no use for (a time range, a limit, an order, a cursor)
is refused by name rather than ignored: a tail always starts now and runs forward.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field, StrictInt, StrictStr

from domain.loglevel import API_LEVELS
from domain.model import WorkflowScope
from observer.errors import bad_request
from observer.request_form import check_body
from observer.tail.settings import TailSettings
from observer.validation import NamedScope, component_scope, log_levels, search_phrase, workflow_scope
from observer.wire import MAX_PHRASE_CHARS, WorkflowSearchScope
from observer.wire import _ScopedQuery as ScopedQuery  # the logs query's own scope binding, shared on purpose


class TailRequest(ScopedQuery):
    """A live tail of a component or workflow scope: every matching line ingested from now on (extension)."""

    schema_required = ("searchScope",)
    logLevels: list[StrictStr] | None = Field(
        None,
        description="Only lines of these levels (each at most once); FATAL lines count as ERROR.",
        json_schema_extra={"uniqueItems": True, "items": {"type": "string", "enum": list(API_LEVELS)}},
    )
    searchPhrase: StrictStr | None = Field(
        None,
        description=f"Only lines containing this text, matched literally and case-sensitively; at most"
        f" {MAX_PHRASE_CHARS} characters.",
        json_schema_extra={"maxLength": MAX_PHRASE_CHARS},
    )
    maxSeconds: StrictInt | None = Field(
        None,
        description="How long the tail runs before it ends with `event: end` (default 300, at most the server's"
        " limit, 3600 unless configured).",
        json_schema_extra={"minimum": 1},
    )
    maxLinesPerSecond: StrictInt | None = Field(
        None,
        description="The most lines sent per second (default 1000, at most the server's limit, 10000 unless"
        " configured); lines over it are dropped and counted in `event: dropped`.",
        json_schema_extra={"minimum": 1},
    )


@dataclass(frozen=True, slots=True)
class TailQuery:
    """A checked tail request: the scope as named (authorized and resolved by the route) and the filters."""

    scope: NamedScope | WorkflowScope
    levels: tuple[str, ...]
    phrase: str
    seconds: int
    lines_per_second: int


def validate_tail(body: TailRequest, limits: TailSettings) -> TailQuery:
    """The request's form, then the scope, levels and phrase as a logs query checks them, then the bounds."""
    check_body(body, "live tail", workflow_scopes=True)
    if body.searchScope is None:
        raise bad_request("searchScope is required")
    scope = (
        workflow_scope(body.searchScope)
        if isinstance(body.searchScope, WorkflowSearchScope)
        else component_scope(body.searchScope)
    )
    return TailQuery(
        scope=scope,
        levels=log_levels(body.logLevels),
        phrase=search_phrase(body.searchPhrase),
        seconds=_bounded("maxSeconds", body.maxSeconds, limits.default_seconds, limits.max_seconds),
        lines_per_second=_bounded(
            "maxLinesPerSecond", body.maxLinesPerSecond, limits.default_lines_per_second, limits.max_lines_per_second
        ),
    )


def _bounded(field: str, value: int | None, default: int, most: int) -> int:
    if value is None:
        return min(default, most)
    if value < 1:
        raise bad_request(f"{field} must be a positive integer")
    if value > most:
        raise bad_request(f"{field} cannot exceed {most}")
    return value
