"""Reading the JSON bodies of the alert endpoints (alerts and incidents queries, the incident update, the internal
rule API): decode, refuse text no store can hold, and describe a binding failure in the user's terms.

Why here and not in each handler: every one of these failures is the caller's, so each must be a 400 that says
what to fix, never a 500 from deep in a store. NUL cannot be stored in PostgreSQL text and lone surrogates
cannot be encoded at all, so both are refused at the door, with the path of the field that holds them. Anything
that echoes user input goes through `domain.echo.shown`, so a 100 KB field name never comes back as a 100 KB
message.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, ValidationError

from domain.echo import shown


class BodyError(ValueError):
    """A body that cannot be bound; the message says what to fix (the handler picks the error code)."""


def decode(raw: bytes) -> Any:
    """The JSON document in `raw`; BodyError when it is not JSON or holds text no store can keep."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BodyError("EOF" if not raw.strip() else str(exc)) from None
    where = unstorable_text(data)
    if where is not None:
        raise BodyError(f"{where} contains a NUL character or an unpaired surrogate, which cannot be stored")
    return data


def unstorable_text(data: Any, path: str = "") -> str | None:
    """The path of the first string (key or value) holding NUL or a lone surrogate, else None."""
    if isinstance(data, str):
        return (path or "the body") if _unstorable(data) else None
    if isinstance(data, dict):
        for key, value in data.items():
            inner = f"{path}.{shown(key)}" if path else shown(key)
            if _unstorable(key):
                return f"a field name in {path or 'the body'}"
            found = unstorable_text(value, inner)
            if found is not None:
                return found
    if isinstance(data, list):
        for index, value in enumerate(data):
            found = unstorable_text(value, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def _unstorable(text: str) -> bool:
    if "\x00" in text:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def bind(data: Any, model: type[BaseModel]) -> Any:
    """`data` as `model`; BodyError naming the field (an unknown one with the fields that are allowed)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise BodyError(describe(exc, model)) from None


def describe(exc: ValidationError, model: type[BaseModel]) -> str:
    problem = exc.errors()[0]
    location = tuple(problem.get("loc", ()))
    where = ".".join(shown(str(part)) for part in location)
    if problem.get("type") == "extra_forbidden":
        allowed = ", ".join(_fields_at(model, location[:-1]))
        return f'unknown field "{where}"' + (f"; allowed fields here: {allowed}" if allowed else "")
    return f"{where + ': ' if where else ''}{problem.get('msg')}"


def _fields_at(model: type[BaseModel], path: tuple[Any, ...]) -> list[str]:
    """The field names of the (nested) model at `path`, for the unknown-field message."""
    current: Any = model
    for part in path:
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return []
        current = _model_of(field.annotation)
        if current is None:
            return []
    return list(getattr(current, "model_fields", {}))


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The BaseModel inside `X | None` (or `X` itself)."""
    candidates = getattr(annotation, "__args__", (annotation,))
    return next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
