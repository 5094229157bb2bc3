"""Checking a log-patterns request: the form, the scope exactly as component logs name it (namespace required,
component needs project, names bounded), the range, levels, phrase, the sparkline step (a Go duration; default
the range / 60; at most domain.patterns.MAX_PATTERN_STEPS steps) and the limit. The scope is returned as named:
the service authorizes it (`logs:view`) and resolves it to UIDs as it does for a logs query."""

from __future__ import annotations

from dataclasses import dataclass

from domain.echo import shown
from domain.model import Scope, TimeRange
from domain.patterns import DEFAULT_PATTERNS, MAX_PATTERN_STEPS, MAX_PATTERNS, PatternsQuery
from domain.timeutil import parse_go_duration
from observer.durations import go_duration
from observer.errors import bad_request
from observer.strict_form import check_form
from observer.validation import MAX_NAME_CHARS, NamedScope, log_levels, search_phrase, time_range
from observer.wire_patterns import PatternsQueryRequest

ENDPOINT = "log patterns"
#: The default sparkline has this many steps.
DEFAULT_STEPS = 60


@dataclass(frozen=True, slots=True)
class PatternsRequest:
    """A checked patterns request without its scope (the service completes it once the scope is resolved)."""

    range: TimeRange
    step_ns: int
    step: str  # as the answer writes it
    levels: tuple[str, ...] = ()
    phrase: str = ""
    limit: int = DEFAULT_PATTERNS

    def scoped(self, scope: Scope) -> PatternsQuery:
        return PatternsQuery(scope, self.range, self.step_ns, self.levels, self.phrase, self.limit)


def _scope(body: PatternsQueryRequest) -> NamedScope:
    names = {
        field: (getattr(body, field) or "").strip()
        for field in ("namespaceName", "projectName", "componentName", "environmentName")
    }
    if not names["namespaceName"]:
        raise bad_request("namespaceName is required")
    if names["componentName"] and not names["projectName"]:
        raise bad_request("projectName is required when componentName is provided")
    for field, value in names.items():
        if len(value) > MAX_NAME_CHARS:
            raise bad_request(f"{field} is {len(value)} characters long; names are at most {MAX_NAME_CHARS}")
    return NamedScope(names["namespaceName"], names["projectName"], names["componentName"], names["environmentName"])


def _step(text: str | None, window: TimeRange) -> tuple[int, str]:
    span = window.end_ns - window.start_ns
    if not text:
        chosen = max(1, -(-span // DEFAULT_STEPS))
        return chosen, go_duration(chosen)
    try:
        chosen = parse_go_duration(text)
    except ValueError as exc:
        raise bad_request(f"step must be a Go duration (e.g. 1m, 5m, 1h): {exc}") from None
    if chosen <= 0:
        raise bad_request("step must be greater than 0")
    steps = -(-span // chosen)
    if steps > MAX_PATTERN_STEPS:
        smallest = max(1, -(-span // MAX_PATTERN_STEPS // 10**9))
        raise bad_request(
            f"step {shown(text)} gives {steps} steps over this range; at most {MAX_PATTERN_STEPS} are allowed, so use"
            f" a step of at least {smallest}s"
        )
    return chosen, text


def _limit(value: int | None) -> int:
    if not value:
        return DEFAULT_PATTERNS
    if not 1 <= value <= MAX_PATTERNS:
        raise bad_request(f"limit must be a whole number from 1 to {MAX_PATTERNS}")
    return value


def validate_patterns(body: PatternsQueryRequest) -> tuple[NamedScope, PatternsRequest]:
    check_form(body, ENDPOINT)
    scope = _scope(body)
    window = time_range(body.startTime, body.endTime)
    if window.end_ns == window.start_ns:
        raise bad_request("endTime must be after startTime: patterns need a range to count over")
    step_ns, step = _step(body.step, window)
    return scope, PatternsRequest(
        range=window,
        step_ns=step_ns,
        step=step,
        levels=log_levels(body.logLevels),
        phrase=search_phrase(body.searchPhrase),
        limit=_limit(body.limit),
    )
