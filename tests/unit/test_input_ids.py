"""Trace and span ids must have OpenTelemetry's form (32 and 16 hex digits, not all zero): anything else is a 400
naming the form, not a 404 or an empty 200 (issue 12)."""

from __future__ import annotations

import pytest

from tests.unit.test_query_api import TRACE, seeded, window  # noqa: F401  (seeded is a fixture)

SPAN = "a000000000000003"
BAD_TRACE_IDS = [
    "abc",
    "4bf92f3577b34da6a3ce929d0e0e473",
    "4bf92f3577b34da6a3ce929d0e0e47366",
    "g" * 32,
    "0" * 32,
    "4bf92f35-77b3-4da6-a3ce-929d0e0e4736",
    "%20" + TRACE[3:],
]
BAD_SPAN_IDS = ["abc", "a00000000000000", "a0000000000000033", "z" * 16, "0" * 16]


def _message(response, code: str = "OBS-V1-T-06") -> str:
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["title"] == "badRequest" and error["errorCode"] == code
    return error["message"]


@pytest.mark.parametrize("trace_id", BAD_TRACE_IDS)
async def test_bad_trace_ids_on_the_spans_query(client, seeded, trace_id):
    message = _message(await client.post(f"/api/v1alpha1/traces/{trace_id}/spans/query", json=window()))
    assert message.startswith("traceId must be 32 hexadecimal digits"), message


@pytest.mark.parametrize("trace_id", BAD_TRACE_IDS)
async def test_bad_trace_ids_on_span_details(client, seeded, trace_id):
    message = _message(await client.get(f"/api/v1alpha1/traces/{trace_id}/spans/{SPAN}"))
    assert message.startswith("traceId must be 32 hexadecimal digits"), message


@pytest.mark.parametrize("span_id", BAD_SPAN_IDS)
async def test_bad_span_ids_on_span_details(client, seeded, span_id):
    message = _message(await client.get(f"/api/v1alpha1/traces/{TRACE}/spans/{span_id}"))
    assert message.startswith("spanId must be 16 hexadecimal digits"), message


async def test_upper_case_ids_are_the_same_ids(client, seeded):
    body = (
        await client.post(
            f"/api/v1alpha1/traces/{TRACE.upper()}/spans/query",
            json=window(searchScope={"namespace": "acme", "project": "shop"}),
        )
    ).json()
    assert body["total"] == 3
    span = await client.get(f"/api/v1alpha1/traces/{TRACE.upper()}/spans/{SPAN.upper()}")
    assert span.status_code == 200 and span.json()["spanId"] == SPAN


async def test_well_formed_unknown_span_is_still_404(client, seeded):
    response = await client.get(f"/api/v1alpha1/traces/{TRACE}/spans/b7ad6b7169203331")
    assert response.status_code == 404
    assert response.json()["errorCode"] == "OBS-V1-T-07"


async def test_the_trace_id_is_checked_before_the_body(client, seeded):
    message = _message(await client.post("/api/v1alpha1/traces/xyz/spans/query", json={}))
    assert message.startswith("traceId must be 32 hexadecimal digits")


async def test_a_long_bad_id_is_echoed_short(client, seeded):
    response = await client.get(f"/api/v1alpha1/traces/{'x' * 5000}/spans/{SPAN}")
    assert len(_message(response)) < 200
