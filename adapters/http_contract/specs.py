"""OpenChoreo's three adapter specs (copied verbatim into specs/), compiled once into jsonschema validators.

Both halves use them: the client checks every request before it leaves and every answer before it is believed;
`observer adapter serve` checks every request it is sent. Two readings of the OpenAPI text are needed to make
its schemas usable as JSON Schema:

- `oneOf` is read as `anyOf`. The specs' alternatives are not disjoint (a component scope and a workflow scope
  both require only `namespace`; an array of component log entries is also an array of workflow log entries),
  so under `oneOf` every valid message would fail. oapi-codegen, which OpenChoreo generates from these files,
  does not enforce `oneOf` exclusivity either.
- `format` is not asserted (RFC3339 times are parsed by the codec, which is stricter than `date-time`; the UIDs'
  `format: uuid` is a promise the adapters themselves do not keep for every record).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from jsonschema import Draft7Validator

Signal = Literal["logs", "tracing", "metrics"]
SPEC_FILES: dict[str, str] = {
    "logs": "observability-logs-adapter-api.yaml",
    "tracing": "observability-tracing-adapter-api.yaml",
    "metrics": "observability-metrics-adapter.yaml",
}
_DIR = Path(__file__).with_name("specs")
#: How many schema violations a message quotes (the first few are what a reader acts on).
MAX_PROBLEMS = 3


class ContractViolation(ValueError):
    """A message does not match its schema in the adapter spec; the text names where and why."""


@functools.cache
def spec(signal: Signal) -> dict[str, Any]:
    """The parsed spec of one signal's adapter, `oneOf` rewritten to `anyOf` (see the module docstring)."""
    with (_DIR / SPEC_FILES[signal]).open(encoding="utf-8") as handle:
        document = yaml.safe_load(handle)
    return _any_of(document)  # type: ignore[no-any-return]


def _any_of(node: Any) -> Any:
    if isinstance(node, dict):
        return {("anyOf" if key == "oneOf" else key): _any_of(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_any_of(each) for each in node]
    return node


@functools.cache
def validator(signal: Signal, schema: str) -> Draft7Validator:
    """The compiled validator of `#/components/schemas/{schema}` in that signal's spec (cached: compiled once)."""
    components = spec(signal)["components"]
    if schema not in components["schemas"]:
        raise KeyError(f"{SPEC_FILES[signal]} has no schema {schema!r}")
    root = {"$ref": f"#/components/schemas/{schema}", "components": components}
    Draft7Validator.check_schema(root)
    return Draft7Validator(root)


@functools.cache
def _fast(signal: Signal, schema: str) -> Any:
    """The same schema compiled by jsonschema_rs where it is installed (a page of 1,000 log lines takes it well
    under a millisecond, the pure-Python validator tens of milliseconds), else None. Only the verdict is taken
    from it; the messages of an invalid message come from `validator`, on that rare path."""
    try:
        import jsonschema_rs
    except ImportError:
        return None
    root = {"$ref": f"#/components/schemas/{schema}", "components": spec(signal)["components"]}
    return jsonschema_rs.Draft7Validator(root, validate_formats=False)


def problems(signal: Signal, schema: str, message: Any) -> list[str]:
    """What is wrong with `message` as a `schema`, at most MAX_PROBLEMS, each `path: reason`; [] when valid."""
    checked = validator(signal, schema)  # refuses an unknown schema name, whichever validator decides
    fast = _fast(signal, schema)
    if fast is not None and fast.is_valid(message):
        return []
    found = []
    for error in checked.iter_errors(message):
        where = "/".join(str(part) for part in error.absolute_path) or "(body)"
        found.append(f"{where}: {error.message[:200]}")
        if len(found) >= MAX_PROBLEMS:
            break
    return found


def check(signal: Signal, schema: str, message: Any, what: str) -> None:
    """Raises ContractViolation naming `what` (e.g. "logs adapter answer") when `message` is not a `schema`."""
    found = problems(signal, schema, message)
    if found:
        raise ContractViolation(f"{what} does not match {schema}: " + "; ".join(found))


def operations(signal: Signal) -> Mapping[str, Any]:
    """The spec's paths (for tests that check the server serves every operation)."""
    return spec(signal)["paths"]  # type: ignore[no-any-return]
