"""The request side of /openapi.json says what the server enforces (issue 12): descriptions, bounds, enums, the
upstream spec's `required` lists, no nulls, no unknown properties, and the id forms of the span routes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

UPSTREAM = Path(__file__).resolve().parents[2].parent / "shared/reference/openchoreo/observer-api.yaml"
REQUESTS = [
    "LogsQueryRequest",
    "EventsQueryRequest",
    "MetricsQueryRequest",
    "RuntimeTopologyRequest",
    "TracesQueryRequest",
    "ComponentSearchScope",
    "WorkflowSearchScope",
    "RuntimeTopologySearchScope",
]


@pytest.fixture(scope="module")
def upstream() -> dict[str, Any]:
    return yaml.safe_load(UPSTREAM.read_text())


@pytest.fixture
async def ours(client) -> dict[str, Any]:
    return (await client.get("/openapi.json")).json()


def _required(spec: dict[str, Any], name: str) -> set[str]:
    schema = spec["components"]["schemas"][name]
    required = set(schema.get("required", []))
    for member in schema.get("allOf", []):
        if "$ref" in member:
            required |= _required(spec, member["$ref"].rsplit("/", 1)[1])
    return required


@pytest.mark.parametrize("name", REQUESTS)
async def test_required_lists_match_upstream(ours, upstream, name):
    assert set(ours["components"]["schemas"][name]["required"]) == _required(upstream, name)


@pytest.mark.parametrize("name", REQUESTS)
async def test_every_request_field_is_described_typed_and_not_null(ours, name):
    schema = ours["components"]["schemas"][name]
    assert schema["additionalProperties"] is False
    for field, prop in schema["properties"].items():
        assert prop.get("description"), f"{name}.{field} has no description"
        assert "null" not in repr(prop), f"{name}.{field} is nullable: {prop}"
        assert "type" in prop or "$ref" in prop or "anyOf" in prop, f"{name}.{field} has no type"
        assert prop.get("default", ...) is not None


async def test_bounds_and_enums(ours):
    schemas = ours["components"]["schemas"]
    for name in ("LogsQueryRequest", "EventsQueryRequest", "TracesQueryRequest"):
        limit = schemas[name]["properties"]["limit"]
        assert (limit["minimum"], limit["maximum"], limit["default"]) == (1, 1000, 100)
        assert schemas[name]["properties"]["sortOrder"]["enum"] == ["asc", "desc"]
    assert "0 means the default" in schemas["LogsQueryRequest"]["properties"]["limit"]["description"]
    assert "0 is refused" in schemas["TracesQueryRequest"]["properties"]["limit"]["description"]
    levels = schemas["LogsQueryRequest"]["properties"]["logLevels"]
    assert levels["items"]["enum"] == ["DEBUG", "INFO", "WARN", "ERROR"] and levels["uniqueItems"] is True
    assert schemas["LogsQueryRequest"]["properties"]["searchPhrase"]["maxLength"] == 1024
    assert schemas["MetricsQueryRequest"]["properties"]["metric"]["enum"] == ["resource", "http"]
    assert schemas["ComponentSearchScope"]["properties"]["component"]["maxLength"] == 253
    topology = schemas["RuntimeTopologyRequest"]["properties"]
    assert topology["includeGateways"]["default"] is True and topology["includeExternal"]["default"] is True
    assert topology["searchScope"]["$ref"].endswith("/RuntimeTopologySearchScope")


async def test_span_route_ids_document_their_form(ours):
    parameters = ours["paths"]["/api/v1alpha1/traces/{traceId}/spans/{spanId}"]["get"]["parameters"]
    forms = {parameter["name"]: parameter["schema"]["pattern"] for parameter in parameters}
    assert re.fullmatch(forms["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736")
    assert not re.fullmatch(forms["traceId"], "0" * 32)
    assert re.fullmatch(forms["spanId"], "00F067AA0BA902B7")
    assert not re.fullmatch(forms["spanId"], "abc")
    spans = ours["paths"]["/api/v1alpha1/traces/{traceId}/spans/query"]["post"]["parameters"]
    assert spans[0]["schema"]["pattern"] == forms["traceId"]


async def test_the_schema_keeps_the_contract_ordered_messages(client):
    # The schema says startTime is required, yet binding still lets validation name it in the contract's words.
    response = await client.post("/api/v1/logs/query", json={"searchScope": {"namespace": "acme"}})
    assert response.status_code == 400
    assert response.json()["message"] == "startTime is required"
