"""Request bodies checked with the official `datadog-api-client` models, so the fake refuses what Datadog refuses.

The client's own deserializer (`ApiClient.deserialize`) checks types, enums and bounds (a page limit over 1,000,
a string where an int belongs), but it is lenient by design: an unknown key becomes an "additional property" and
an unknown enum value an "unparsed" object, because a client must survive a newer server. A server must not, so
`parse` adds the two checks the client leaves out: an unknown key is refused unless the spec itself declares the
model open (the generated class then overrides `additional_properties_type`, as `HTTPLogItem` does for log
attributes), and an unparsed value anywhere is refused. Either way the caller answers 400 `{"errors": [...]}`.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from datadog_api_client import ApiClient, Configuration
from datadog_api_client.exceptions import OpenApiException
from datadog_api_client.model_utils import (
    ModelComposed,
    ModelNormal,
    ModelSimple,
    OpenApiModel,
    UnparsedObject,
    model_to_dict,
)

M = TypeVar("M", bound=OpenApiModel)

_CLIENT = ApiClient(Configuration())


class BadRequest(Exception):
    """A body Datadog would refuse with 400; `errors` is the list its error body carries."""

    def __init__(self, *errors: str) -> None:
        super().__init__("; ".join(errors))
        self.errors = list(errors)


def parse(raw: bytes | str, model: type[M]) -> M:
    """`raw` (JSON text) as an instance of `model`, or BadRequest with Datadog-like messages."""
    try:
        data = json.loads(raw)
    except ValueError as error:
        raise BadRequest(f"Malformed JSON: {error}") from None
    return parse_value(data, model)


def parse_value(data: Any, model: type[M]) -> M:
    """An already decoded JSON value as `model`, checked as strictly as `parse` checks text."""
    try:
        value = _CLIENT.deserialize(json.dumps(data), (model,), True)
    except (OpenApiException, ValueError, TypeError) as error:
        raise BadRequest(f"Invalid body: {error}") from None
    _strict(value, "body")
    return value  # type: ignore[no-any-return]


def _strict(value: Any, where: str) -> None:
    """Refuses what the lenient client let through: unparsed values, unknown keys on closed models."""
    if isinstance(value, UnparsedObject):
        raise BadRequest(f"Invalid value at {where}")
    if isinstance(value, list):
        for index, item in enumerate(value):
            _strict(item, f"{where}[{index}]")
        return
    if isinstance(value, ModelComposed):
        if value._unparsed or not value._composed_instances:
            raise BadRequest(f"Invalid value at {where}: matches none of its schemas")
        known = set()
        for instance in value._composed_instances:
            known.update(type(instance).attribute_map.values())
            _strict(instance, where)
        unknown = set(value._data_store) - known - set(type(value).attribute_map)
        if unknown and "additional_properties_type" not in type(value).__dict__:
            raise BadRequest(f"Unknown field {sorted(unknown)[0]!r} at {where}")
        return
    if isinstance(value, ModelNormal):
        open_model = "additional_properties_type" in type(value).__dict__
        for name, item in value._data_store.items():
            if name not in type(value).openapi_types and not open_model:
                raise BadRequest(f"Unknown field {type(value).attribute_map.get(name, name)!r} at {where}")
            _strict(item, f"{where}.{type(value).attribute_map.get(name, name)}")
        if value._unparsed:
            raise BadRequest(f"Invalid value at {where}")
    elif isinstance(value, ModelSimple):  # an enum, or a list model such as HTTPLog
        if value._unparsed:
            raise BadRequest(f"Invalid value at {where}")
        _strict(value.value, where)


def to_json(model: OpenApiModel) -> Any:
    """The model as JSON-ready data under the wire names (what `ApiClient` would send)."""
    return model_to_dict(model, serialize=True)
