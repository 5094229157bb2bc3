"""The form of a nested request body, checked before its rules: only known fields at every level, only text.

observer/request_form.py does this for the component queries, whose only nested object is `searchScope`. The
platform-logs, audit and patterns requests nest deeper (`query.labels`, `query.actor.id`), so this walks every
nested model, names an unknown key by its full dotted path (with the closest known name when it is a typo),
and checks every string, list item and map key and value for lone surrogates. The words and the code are
request_form's, so a client sees one "Invalid request format" whichever family it called.
"""

from __future__ import annotations

import difflib

from pydantic import BaseModel

from domain.echo import shown
from observer.errors import INVALID_REQUEST, ApiError, bad_request
from observer.request_form import BIND_PREFIX, check_text


def check_form(body: BaseModel, endpoint: str, prefix: str = "") -> None:
    """Unknown fields anywhere in `body` are a 400 naming them; so is a string that is not text. `endpoint`
    names the queries in messages ("platform logs")."""
    for key in body.model_extra or {}:
        raise _unknown(prefix + key, _did_you_mean(key, tuple(type(body).model_fields)), endpoint)
    for name in type(body).model_fields:
        value = getattr(body, name)
        where = prefix + name
        if isinstance(value, str):
            check_text(where, value)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, str):
                    check_text(f"{where}[{index}]", item)
        elif isinstance(value, dict):
            for key, item in value.items():
                check_text(f"{where} key", str(key))
                if isinstance(item, str):
                    check_text(f"{where}.{shown(key)}", item)
        elif isinstance(value, BaseModel):
            check_form(value, endpoint, f"{where}.")


def _did_you_mean(key: str, names: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key[:64], list(names), n=1)
    return f"did you mean {close[0]}?" if close else ""


def _unknown(field: str, hint: str, endpoint: str) -> ApiError:
    detail = hint or f"{endpoint} queries do not take it"
    return bad_request(f"{BIND_PREFIX}: unknown field {shown(field)} ({detail})", INVALID_REQUEST)
