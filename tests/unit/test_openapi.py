"""Our /openapi.json has every path, method and request field of the upstream spec's query endpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

UPSTREAM = Path(__file__).resolve().parents[2].parent / "shared/reference/openchoreo/observer-api.yaml"
QUERY_ENDPOINTS = [
    ("/health", "get"),
    ("/api/v1/logs/query", "post"),
    ("/api/v1/events/query", "post"),
    ("/api/v1/metrics/query", "post"),
    ("/api/v1alpha1/metrics/runtime-topology", "post"),
    ("/api/v1alpha1/traces/query", "post"),
    ("/api/v1alpha1/traces/{traceId}/spans/query", "post"),
    ("/api/v1alpha1/traces/{traceId}/spans/{spanId}", "get"),
]


def _resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = spec
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def _fields(spec: dict[str, Any], schema: dict[str, Any], prefix: str = "") -> set[str]:
    """Dotted names of every property, through $ref, allOf, oneOf and anyOf."""
    schema = _resolve(spec, schema)
    names: set[str] = set()
    for key in ("allOf", "oneOf", "anyOf"):
        for member in schema.get(key, []):
            names |= _fields(spec, member, prefix)
    for name, child in (schema.get("properties") or {}).items():
        names.add(prefix + name)
        names |= _fields(spec, child, f"{prefix}{name}.")
    return names


def _request_fields(spec: dict[str, Any], path: str, method: str) -> set[str]:
    body = spec["paths"][path][method].get("requestBody")
    if not body:
        return set()
    return _fields(spec, _resolve(spec, body)["content"]["application/json"]["schema"])


@pytest.fixture(scope="module")
def upstream() -> dict[str, Any]:
    return yaml.safe_load(UPSTREAM.read_text())


async def test_openapi_is_served(client):
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert response.json()["info"]["title"] == "OpenChoreo Observer API"


@pytest.mark.parametrize("path,method", QUERY_ENDPOINTS)
async def test_every_upstream_path_and_request_field_exists(client, upstream, path, method):
    ours = (await client.get("/openapi.json")).json()
    assert method in ours["paths"][path], f"{method.upper()} {path} missing"
    wanted = _request_fields(upstream, path, method)
    assert bool(wanted) == (method == "post")  # the comparison below is not vacuous
    missing = wanted - _request_fields(ours, path, method)
    assert not missing, f"{path}: request fields missing from our spec: {sorted(missing)}"
    upstream_params = {p["name"] for p in upstream["paths"][path][method].get("parameters", [])} | {
        p["name"] for p in upstream["paths"][path].get("parameters", [])
    }
    our_params = {p["name"] for p in ours["paths"][path][method].get("parameters", [])}
    assert upstream_params <= our_params
