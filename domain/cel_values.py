"""CEL values as the Go engine upstream would show them: the one conversion behind the observer's notification
templates (observer/alerting/templates.py) and the control plane's trait templates (controlplane/render/), so a
value renders the same way in both.

`native` turns a CEL result into plain Python (what a YAML or JSON value becomes); `as_text` is how an
interpolated `${...}` reads inside a string (Go's `%g` for floats, JSON for lists and maps).
"""

from __future__ import annotations

import base64
import datetime
import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from celpy import celtypes


def native(value: Any) -> Any:
    """CEL values as plain Python (bool before int: CEL's BoolType is an int)."""
    if value is None or isinstance(value, bool | celtypes.BoolType):
        return None if value is None else bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()  # Go's json.Marshal of []byte
    if isinstance(value, datetime.datetime):
        return value.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, datetime.timedelta):
        return f"{value.total_seconds():g}s"
    if isinstance(value, Mapping):
        return {str(native(k)): native(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [native(item) for item in value]
    return str(value)


def as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_g(value)
    if value is None:
        return "null"
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def go_g(value: float) -> str:
    """Go's `%g` for a float64 (what upstream's engine interpolates): the shortest digits that read back, in
    exponent form when the decimal exponent is < -4 or >= 6 (so 123456 but 1.234567e+06, 1e-05)."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if str(value).startswith("-") else "0"
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    text = "".join(map(str, digits))
    decimal_exponent = len(text) + int(exponent) - 1
    prefix = "-" if sign else ""
    if decimal_exponent < -4 or decimal_exponent >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if decimal_exponent < 0 else '+'}{abs(decimal_exponent):02d}"
    return prefix + format(Decimal(repr(abs(value))).normalize(), "f")
