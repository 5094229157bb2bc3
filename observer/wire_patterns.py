"""Wire shapes of log patterns (`POST /api/v1alpha1/logs/patterns`, an extension): the request names its scope as
the component logs' does, flattened as OpenChoreo's newer requests are (`namespaceName`, `projectName`, ...), and
the answer lists templates with counts, sparklines and whether each is new, honest about sampling."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, StrictInt, StrictStr

from domain.loglevel import API_LEVELS
from domain.patterns import DEFAULT_PATTERNS, MAX_PATTERN_STEPS, MAX_PATTERNS, PatternsResult
from observer.wire import _NAME, MAX_PHRASE_CHARS, _Bind, _end, _start


class PatternsQueryRequest(_Bind):
    """The templates of a component scope's log lines in a time range."""

    schema_required: ClassVar[tuple[str, ...]] = ("startTime", "endTime", "namespaceName")
    startTime: StrictStr | None = _start()
    endTime: StrictStr | None = _end()
    namespaceName: StrictStr | None = Field(None, description="Namespace name.", json_schema_extra=_NAME)
    projectName: StrictStr | None = Field(None, description="Project name.", json_schema_extra=_NAME)
    componentName: StrictStr | None = Field(
        None, description="Component name; needs projectName.", json_schema_extra=_NAME
    )
    environmentName: StrictStr | None = Field(None, description="Environment name.", json_schema_extra=_NAME)
    logLevels: list[StrictStr] | None = Field(
        None,
        description="Only lines of these levels (each at most once); FATAL lines count as ERROR.",
        json_schema_extra={"uniqueItems": True, "items": {"type": "string", "enum": list(API_LEVELS)}},
    )
    searchPhrase: StrictStr | None = Field(
        None,
        description="Only lines containing this text, matched literally and case-sensitively.",
        json_schema_extra={"maxLength": MAX_PHRASE_CHARS},
    )
    step: StrictStr | None = Field(
        None,
        description=f"The sparklines' step, a Go duration (default: the range / 60); at most {MAX_PATTERN_STEPS}"
        " steps over the range.",
    )
    limit: StrictInt | None = Field(
        None,
        description=f"The most patterns to list, most frequent first, 1 to {MAX_PATTERNS} (default"
        f" {DEFAULT_PATTERNS}); 0 means the default.",
        json_schema_extra={"minimum": 1, "maximum": MAX_PATTERNS, "default": DEFAULT_PATTERNS},
    )


def patterns_body(result: PatternsResult, step: str) -> dict[str, Any]:
    return {
        "patterns": [
            {
                "template": pattern.template,
                "count": pattern.count,
                "sparkline": list(pattern.sparkline),
                "example": pattern.example,
                "levels": list(pattern.levels),
                "new": pattern.new,
            }
            for pattern in result.patterns
        ],
        "totalLines": result.total_lines,
        "sampledLines": result.sampled_lines,
        "sampled": result.sampled,
        "step": step,
        "tookMs": result.took_ms,
    }


_COUNT: dict[str, Any] = {"type": "integer", "minimum": 0}
PATTERNS_RESPONSE: dict[str, Any] = {
    "type": "object",
    "required": ["patterns", "totalLines", "sampledLines", "sampled", "step", "tookMs"],
    "properties": {
        "patterns": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["template", "count", "sparkline", "example", "levels", "new"],
                "properties": {
                    "template": {
                        "type": "string",
                        "description": "The line with its variable parts masked (<NUM>, <IP>, <*>...).",
                    },
                    "count": _COUNT,
                    "sparkline": {"type": "array", "items": _COUNT, "description": "Lines per step from startTime."},
                    "example": {"type": "string"},
                    "levels": {"type": "array", "items": {"type": "string"}},
                    "new": {"type": "boolean", "description": "Absent from the window of the same length just before."},
                },
            },
        },
        "totalLines": {**_COUNT, "description": "Lines that matched."},
        "sampledLines": {**_COUNT, "description": "Lines the patterns were computed from."},
        "sampled": {
            "type": "boolean",
            "description": "True when counts are those of a sample (sampledLines < totalLines).",
        },
        "step": {"type": "string"},
        "tookMs": _COUNT,
    },
}
