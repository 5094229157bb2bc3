"""Every input to the alerts and incidents endpoints gets a clear answer: unknown fields, `limit: 0`, times
nanoseconds cannot hold, text no store can keep and huge names are 4xx with the contract's body (never a 500, never
a silently widened query), and answers leave empty fields out, as the contract does everywhere else."""

from __future__ import annotations

import pytest

from observer.alerting.service import AlertsQuery
from observer.errors import ApiError
from observer.validation import NamedScope
from tests.integration.test_alert_api import WINDOW, plane  # noqa: F401 (the fixture)

QUERIES = ("/api/v1alpha1/alerts/query", "/api/v1alpha1/incidents/query")
SCOPE = {"namespace": "acme"}


def assert_error(response, status: int, code: str, *fragments: str) -> str:
    body = response.json()
    assert response.status_code == status, body
    assert set(body) == {"title", "errorCode", "message"} and body["errorCode"] == code, body
    for fragment in fragments:
        assert fragment in body["message"], body
    return body["message"]


@pytest.mark.parametrize("path", QUERIES)
async def test_an_unknown_top_level_field_is_named(plane, path):
    _, _, public = plane
    response = await public.post(path, json=WINDOW | {"searchScope": SCOPE, "serchPhrase": "error"})
    assert_error(response, 400, "INVALID_REQUEST_BODY", 'unknown field "serchPhrase"', "startTime")


@pytest.mark.parametrize("path", QUERIES)
async def test_an_unknown_search_scope_field_is_named_instead_of_widening(plane, path):
    _, _, public = plane
    scope = {"namespace": "acme", "project": "shop", "compnent": "cart"}
    response = await public.post(path, json=WINDOW | {"searchScope": scope})
    assert_error(
        response,
        400,
        "INVALID_REQUEST_BODY",
        'unknown field "searchScope.compnent"',
        "namespace, project, component, environment",
    )


@pytest.mark.parametrize("path", QUERIES)
async def test_limit_zero_is_refused(plane, path):
    _, _, public = plane
    response = await public.post(path, json=WINDOW | {"searchScope": SCOPE, "limit": 0})
    assert_error(response, 400, "VALIDATION_ERROR", "limit must be a positive integer greater than zero")


@pytest.mark.parametrize("path", QUERIES)
@pytest.mark.parametrize(
    "start, end",
    [
        ("1035-08-27T10:19:55Z", "1035-08-28T10:19:55Z"),
        ("9999-12-30T00:00:00Z", "9999-12-31T00:00:00Z"),
        ("2262-04-11T00:00:00Z", "2262-04-12T00:00:00Z"),
    ],
)
async def test_times_nanoseconds_cannot_hold_are_a_400(plane, path, start, end):
    _, _, public = plane
    response = await public.post(path, json={"startTime": start, "endTime": end, "searchScope": SCOPE})
    assert_error(response, 400, "VALIDATION_ERROR")


@pytest.mark.parametrize("path", QUERIES)
@pytest.mark.parametrize(
    "raw, where",
    [
        (b'{"searchScope":{"namespace":"a\\u0000b"}}', "searchScope.namespace"),
        (b'{"searchScope":{"namespace":"acme","project":"\\u0000"}}', "searchScope.project"),
        (b'{"searchScope":{"namespace":"\\ud800"}}', ""),
        (b'{"searchScope":{"namespace":"acme","environment":"\\udfff"}}', ""),
    ],
)
async def test_nul_and_lone_surrogates_are_a_400(plane, path, raw, where):
    _, _, public = plane
    response = await public.post(path, content=raw, headers={"content-type": "application/json"})
    assert_error(response, 400, "INVALID_REQUEST_BODY", where)


@pytest.mark.parametrize("path", QUERIES)
async def test_an_unknown_project_is_scope_not_found_for_both(plane, path):
    _, _, public = plane
    response = await public.post(path, json=WINDOW | {"searchScope": {"namespace": "acme", "project": "nope"}})
    assert_error(response, 400, "SCOPE_NOT_FOUND")


HUGE = "x" * 100_000


@pytest.mark.parametrize(
    "body, code",
    [
        (WINDOW | {"searchScope": SCOPE, HUGE: 1}, "INVALID_REQUEST_BODY"),
        (WINDOW | {"searchScope": SCOPE | {HUGE: "a"}}, "INVALID_REQUEST_BODY"),
        ({"startTime": HUGE, "endTime": WINDOW["endTime"], "searchScope": SCOPE}, "VALIDATION_ERROR"),
    ],
    ids=["top-level-name", "scope-name", "time"],
)
async def test_messages_echoing_input_are_cut_short(plane, body, code):
    _, _, public = plane
    assert len(assert_error(await public.post(QUERIES[0], json=body), 400, code)) < 500


async def test_incident_update_refuses_unknown_fields_and_unstorable_text(plane):
    _, _, public = plane
    path = "/api/v1alpha1/incidents/00000000-0000-4000-8000-000000000000"
    assert_error(
        await public.put(path, json={"status": "acknowledged", "note": "typo"}),
        400,
        "INVALID_REQUEST_BODY",
        'unknown field "note"',
        "status, notes, description",
    )
    assert_error(
        await public.put(path, json={"status": "acknowledged", "notes": "a\u0000b"}),
        400,
        "INVALID_REQUEST_BODY",
        "notes",
    )
    assert_error(
        await public.put(
            path,
            content=b'{"status":"acknowledged","description":"\\ud800"}',
            headers={"content-type": "application/json"},
        ),
        400,
        "INVALID_REQUEST_BODY",
    )
    assert_error(
        await public.put("/api/v1alpha1/incidents/a%00b", json={"status": "resolved"}), 400, "INVALID_INCIDENT_ID"
    )


async def test_webhook_refuses_unstorable_text(plane):
    _, internal, _ = plane
    response = await internal.post(
        "/api/v1alpha1/alerts/webhook", json={"ruleName": "a\u0000b", "ruleNamespace": "acme"}
    )
    assert_error(response, 400, "INVALID_REQUEST_BODY", "ruleName")


async def test_alerts_leave_empty_rule_fields_out(plane):
    alerting, internal, public = plane
    labels = {"openchoreo.dev/namespace": "acme", "openchoreo.dev/project": "shop"}
    await alerting.resources.apply(
        [
            {
                "kind": "ObservabilityAlertRule",
                "metadata": {"name": "plain", "namespace": "acme", "labels": labels},
                "spec": {
                    "name": "plain",
                    "source": {"type": "log", "query": "ERROR"},
                    "condition": {"window": "5m", "interval": "1m", "operator": "gt", "threshold": 10},
                    "actions": {"notifications": {"channels": ["ops"]}, "incident": {"enabled": True}},
                },
            }
        ]
    )
    fired = await internal.post(
        "/api/v1alpha1/alerts/webhook",
        json={"ruleName": "plain", "ruleNamespace": "acme", "alertValue": 11, "alertTimestamp": "2026-01-10T10:00:00Z"},
    )
    assert fired.status_code == 200, fired.text
    [alert] = (await public.post(QUERIES[0], json=WINDOW | {"searchScope": SCOPE})).json()["alerts"]
    rule = alert["metadata"]["alertRule"]
    assert rule == {
        "name": "plain",
        "source": {"type": "log", "query": "ERROR"},
        "condition": {"operator": "gt", "threshold": 10.0, "window": "5m0s", "interval": "1m0s"},
    }
    [incident] = (await public.post(QUERIES[1], json=WINDOW | {"searchScope": SCOPE})).json()["incidents"]
    assert "" not in incident.values() and "description" not in incident and "notes" not in incident


async def test_internal_rule_api_and_webhook_messages_are_cut_short(plane):
    _, internal, _ = plane
    long = "r" * 20_000
    answers = [
        (await internal.get(f"/api/v1alpha1/alerts/sources/log/rules/{long}"), 404),
        (await internal.get(f"/api/v1alpha1/alerts/sources/{long}/rules/x"), 400),
        (
            await internal.post(
                "/api/v1alpha1/alerts/webhook", json={"ruleName": long, "ruleNamespace": "acme", "alertValue": 1}
            ),
            404,
        ),
    ]
    for response, status in answers:
        assert response.status_code == status and len(response.json()["message"]) < 300, response.json()["message"][:80]


@pytest.mark.parametrize("start_ns, end_ns", [(-(2**70), 0), (0, 2**64)])
async def test_the_service_refuses_times_the_store_cannot_compare_for_every_surface(plane, start_ns, end_ns):
    """MCP calls the service with its own parsing: the range is checked there too, not left to fail in SQL."""
    alerting, _, _ = plane
    for query in (alerting.service.query_alerts, alerting.service.query_incidents):
        with pytest.raises(ApiError) as refused:
            await query(None, NamedScope("acme"), AlertsQuery(start_ns, end_ns))
        assert (refused.value.status, refused.value.error_code) == (400, "VALIDATION_ERROR")
