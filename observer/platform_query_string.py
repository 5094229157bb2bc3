"""`GET /api/v1alpha1/platform-logs[/filter-values]`: the query string as the POST body it stands for.

The Backstage portal reads platform logs with a GET on the observer (OpenChoreo's backstage-plugins #784): list
filters as repeated parameters or comma-separated (`podName=a,b`; Kubernetes names and levels hold no comma),
labels as a selector (`labels=k=v,k2=v2`) or repeated `label=k=v`. The body built here is bound by the POST
route's model and checked by its validation, so both ways in refuse the same requests with the same words. A
parameter no route takes is refused by name (a misspelt filter would otherwise widen the search), and so is a
single-valued one sent twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from domain.echo import shown
from observer.errors import INVALID_REQUEST, bad_request, describe_validation_error
from observer.request_form import BIND_PREFIX

_LISTS = {"clusterInstance", "namespace", "podName", "containerName", "logLevels"}
_TEXTS = {"startTime", "endTime", "sortOrder", "searchPhrase", "cursor"}
_INTEGERS = {"limit"}
#: The filter-values route's own parameters (the rest of its query string is the query).
_VALUES_TEXTS = {"filter", "valueSearch"}
_VALUES_INTEGERS = {"maxValues"}
#: OpenChoreo's observer resolves a plane to its cluster; here a plane is named by its `clusterInstance`.
_PLANE = {"planeKind", "planeName", "planeNamespace"}
Model = TypeVar("Model", bound=BaseModel)

#: Bounds on the query string itself, before anything is parsed from it.
MAX_PARAMETERS = 512


def _integer(name: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise bad_request(f"{name} must be an integer, not '{shown(text)}'") from None


def _label_pairs(name: str, text: str) -> list[tuple[str, str]]:
    pairs = []
    for item in text.split(","):
        if not item.strip():
            continue
        key, equals, value = item.partition("=")
        if not equals:
            raise bad_request(f"{name}: '{shown(item)}' is not key=value (e.g. {name}=app.kubernetes.io/name=openbao)")
        pairs.append((key.strip(), value.strip()))
    return pairs


def query_body(items: Iterable[tuple[str, str]], *, filter_values: bool = False) -> dict[str, Any]:
    """The POST body (of the query route, or with `filter_values` of the filter-values route) that the query
    string's (name, value) pairs stand for."""
    items = list(items)
    if len(items) > MAX_PARAMETERS:
        raise bad_request(f"the query string has {len(items)} parameters; at most {MAX_PARAMETERS} are allowed")
    query: dict[str, Any] = {}
    outer: dict[str, Any] = {}
    labels: dict[str, str] = {}
    for name, value in items:
        if name in _LISTS:
            query.setdefault(name, []).extend(part.strip() for part in value.split(",") if part.strip())
        elif name in ("labels", "label"):
            for key, label_value in _label_pairs(name, value):
                if labels.get(key, label_value) != label_value:
                    raise bad_request(f"{name}: label '{shown(key)}' is given two different values")
                labels[key] = label_value
        elif name in _TEXTS or name in _INTEGERS or (filter_values and name in _VALUES_TEXTS | _VALUES_INTEGERS):
            target = outer if name in _VALUES_TEXTS | _VALUES_INTEGERS else query
            if name in target:
                raise bad_request(f"{name} is given more than once; it takes one value")
            target[name] = _integer(name, value) if name in _INTEGERS | _VALUES_INTEGERS else value
        elif name in _PLANE:
            raise bad_request(
                f"{name} is not supported here: name the plane's cluster with clusterInstance instead",
                INVALID_REQUEST,
            )
        else:
            raise bad_request(f"{BIND_PREFIX}: unknown query parameter {shown(name)}", INVALID_REQUEST)
    if labels:
        query["labels"] = labels
    if filter_values:
        return {**outer, "query": query}
    return query


def bind(model: type[Model], body: Mapping[str, Any]) -> Model:
    """The body as the POST route's model, or the 400 the POST route answers for it (located under `query`, the
    query string, instead of `body`)."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        errors = [{**error, "loc": ("query", *error.get("loc", ()))} for error in exc.errors()]
        raise bad_request(describe_validation_error(RequestValidationError(errors)), INVALID_REQUEST) from None
