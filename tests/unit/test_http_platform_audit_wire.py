"""The logs-adapter contract's newer operations as JSON (adapters/http_contract/platform_wire.py, audit_wire.py):
what the client sends is what the server reads back, records and answers survive the trip whole, the field
names are OpenChoreo's (its generated adapter code), and the timeline's widths follow the contract."""

from __future__ import annotations

import pytest

from adapters.http_contract import audit_wire, platform_wire
from adapters.http_contract.strict import RequestInvalid, valid_label_key
from domain.audit import (
    MAX_TIMELINE_BUCKETS,
    Actor,
    AuditPage,
    AuditQuery,
    AuditRecord,
    AuditResource,
    Collected,
    TimelineBucket,
)
from domain.model import Identity, LogRecord, Page, TimeRange
from domain.platform import FilterValue, FilterValues, FilterValuesQuery, PlatformLogsQuery
from domain.timeutil import format_rfc3339, parse_rfc3339

S = 10**9
T0 = parse_rfc3339("2026-03-01T10:00:00Z")
WINDOW = TimeRange(T0, T0 + 3600 * S)


def test_a_platform_query_round_trips_with_the_contracts_names() -> None:
    query = PlatformLogsQuery(
        range=WINDOW,
        clusters=("east",),
        namespaces=("kube-system", "ingress"),
        pods=("coredns-0",),
        containers=("coredns",),
        labels=(("app.kubernetes.io/name", "dns"), ("tier", "infra")),
        phrase='say "hi"',
        levels=("ERROR", "WARN"),
        limit=50,
        sort="asc",
        cursor="abc",
    )
    body = platform_wire.platform_request(query)
    assert body["clusterInstance"] == ["east"]
    assert body["podName"] == ["coredns-0"] and body["containerName"] == ["coredns"]
    assert body["labels"] == {"app.kubernetes.io/name": "dns", "tier": "infra"}
    assert (body["searchPhrase"], body["logLevels"], body["sortOrder"]) == ('say "hi"', ["ERROR", "WARN"], "asc")
    assert platform_wire.parse_platform_request(body) == query


def test_a_platform_line_keeps_its_placement_and_scope() -> None:
    identity = Identity(
        namespace="shop",
        component="cart",
        component_uid="c-1",
        cluster="east",
        node="node-1",
        pod_ip="10.0.0.9",
        image="registry/cart:1.0",
        pod_namespace="dp-shop",
        pod="cart-0",
        container="main",
        labels=(("app", "cart"),),
    )
    record = LogRecord(T0 + 123, "hello", identity, "WARN", trace_id="a" * 32, span_id="b" * 16)
    entry = platform_wire.platform_log(record)
    assert entry["namespaceName"] == "dp-shop"  # the contract's: the Kubernetes namespace
    assert entry["metadata"]["namespaceName"] == "shop"  # the scope's, as on a component line
    assert (entry["clusterInstance"], entry["nodeName"], entry["podIp"]) == ("east", "node-1", "10.0.0.9")
    assert entry["containerImage"] == "registry/cart:1.0" and entry["labels"] == {"app": "cart"}
    page = Page([record], 1, 3, "next")
    assert platform_wire.parse_platform_response(platform_wire.platform_response(page)) == page


def test_filter_values_round_trip() -> None:
    query = FilterValuesQuery(PlatformLogsQuery(range=WINDOW, clusters=("east",)), "labels.app", "DN", 7)
    body = platform_wire.platform_values_request(query)
    assert (body["filter"], body["valueSearch"], body["maxValues"]) == ("labels.app", "DN", 7)
    assert platform_wire.parse_platform_values_request(body) == query
    answer = FilterValues("podName", [FilterValue("a", 3), FilterValue("b", 1)], 9, 4)
    json = platform_wire.filter_values_response(answer)
    assert json == {"filter": "podName", "values": [{"value": "a", "count": 3}, {"value": "b", "count": 1}],
                    "totalValues": 9, "tookMs": 4}  # fmt: skip
    assert platform_wire.parse_filter_values_response(json) == answer


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"startTime": "2026-03-01T10:00:00Z", "endTime": "2026-03-01T09:00:00Z"}, "endTime must be after"),
        ({"startTime": "2026-03-01T10:00:00Z"}, "endTime is required"),
        ({"startTime": "yesterday", "endTime": "2026-03-01T09:00:00Z"}, "startTime"),
        ({"limit": 0}, "limit must be an integer from 1 to 1000"),
        ({"limit": 1001}, "limit must be an integer from 1 to 1000"),
        ({"limit": "5"}, "limit must be an integer"),
        ({"sortOrder": "up"}, "sortOrder: unknown value"),
        ({"logLevels": ["LOUD"]}, "logLevels: unknown value"),
        ({"labels": {"-bad": "x"}}, "not a valid Kubernetes label key"),
        ({"labels": {"a/b/c": "x"}}, "not a valid Kubernetes label key"),
        ({"podName": "one"}, "podName must be a list"),
        ({"podName": [""]}, "non-empty strings"),
        ({"pods": ["one"]}, "unknown field pods"),
    ],
)
def test_a_platform_request_the_contract_does_not_allow_is_refused(body: dict, says: str) -> None:
    full = {"startTime": "2026-03-01T09:00:00Z", "endTime": "2026-03-01T10:00:00Z", **body}
    if "endTime" not in body and says.startswith("endTime is"):
        full.pop("endTime")
    with pytest.raises(RequestInvalid, match=says):
        platform_wire.parse_platform_request(full)


def test_filter_values_requests_name_a_known_filter_and_bounds() -> None:
    inner = {"startTime": "2026-03-01T09:00:00Z", "endTime": "2026-03-01T10:00:00Z", "limit": 5, "sortOrder": "asc"}
    for name in ("clusterInstance", "level", "labels.app.kubernetes.io/name"):
        assert platform_wire.parse_platform_values_request({"query": inner, "filter": name}).filter == name
    for name in ("pod", "labels.", "labels.-x"):
        with pytest.raises(RequestInvalid, match="filter must be one of"):
            platform_wire.parse_platform_values_request({"query": inner, "filter": name})
    with pytest.raises(RequestInvalid, match="maxValues"):
        platform_wire.parse_platform_values_request({"query": inner, "filter": "podName", "maxValues": 1001})
    with pytest.raises(RequestInvalid, match="query is required"):
        platform_wire.parse_platform_values_request({"filter": "podName"})


def test_label_keys() -> None:
    assert all(valid_label_key(key) for key in ("app", "app.kubernetes.io/name", "openchoreo.dev/component-uid"))
    assert not any(valid_label_key(key) for key in ("", "-a", "a-", "A/b", "/a", "a/", "x" * 64, "a b"))


# ----------------------------------------------------------------------------------------------- audit


def record() -> AuditRecord:
    return AuditRecord(
        event_id="evt-1",
        time_ns=T0 + 5,
        actor=Actor("user", "alice", "https://idp", "sess-1", (("groups", ("admins", "sre")),)),
        action="incident.update",
        category="management",
        result="success",
        surface="rest",
        producer="observer",
        operation_id="updateIncident",
        request_id="req-1",
        source_ip="10.0.0.1",
        user_agent="curl/8",
        http_method="PUT",
        http_path="/api/v1alpha1/incidents/inc-1",
        resource=AuditResource(type="incident", namespace="shop", name="inc-1", uid="u-1"),
        metadata={"state": "acknowledged"},
        collector=Collected("openchoreo", "observer-0", "observer"),
    )


def test_an_audit_record_in_the_contracts_snake_case_round_trips() -> None:
    json = audit_wire.audit_response(AuditPage([record()], 1, 0), AuditQuery(range=WINDOW))["records"][0]
    assert (json["event_id"], json["schema_version"], json["operation_id"], json["source_ip"]) == (
        "evt-1",
        "1.0",
        "updateIncident",
        "10.0.0.1",
    )
    assert json["actor"] == {
        "type": "user",
        "id": "alice",
        "issuer": "https://idp",
        "session_id": "sess-1",
        "entitlements": {"groups": ["admins", "sre"]},
    }
    assert json["collector"] == {"namespaceName": "openchoreo", "podName": "observer-0", "containerName": "observer"}
    assert audit_wire.parse_record(json) == record()
    # a newer schema's values are kept, not refused (a record's vocabulary grows); unknown keys are ignored
    newer = {**json, "category": "export", "result": "partial", "extra": {"x": 1}}
    assert (audit_wire.parse_record(newer).category, audit_wire.parse_record(newer).result) == ("export", "partial")
    claims = {**json, "actor": {**json["actor"], "entitlements": {"sub": ["bot"], "groups": ["ci"]}}}
    assert audit_wire.parse_record(claims).actor.entitlements == (("groups", ("ci",)), ("sub", ("bot",)))


def test_an_audit_query_names_each_filter_as_the_record_nests_it() -> None:
    query = AuditQuery(
        range=WINDOW,
        filters=(
            ("action", ("incident.update",)),
            ("actor.entitlements", ("sre",)),
            ("actor.session_id", ("s",)),
            ("event_id", ("evt-1",)),
            ("operation_id", ("updateIncident",)),
            ("resource.name", ("inc-1",)),
            ("result", ("success", "denied")),
        ),
        phrase="inc",
        limit=10,
        sort="asc",
        timeline_interval_ns=300 * S,
    )
    body = audit_wire.audit_request(query)
    assert body["actor"] == {"entitlements": ["sre"], "session_id": ["s"]}
    assert body["resource"] == {"name": ["inc-1"]}
    assert (body["event_id"], body["operation_id"]) == (["evt-1"], ["updateIncident"])
    assert (body["includeTimeline"], body["timelineInterval"]) == (True, "5m")
    assert audit_wire.parse_audit_request(body) == query


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ({"category": ["secret"]}, "category: unknown value"),
        ({"result": ["maybe"]}, "result: unknown value"),
        ({"surface": ["grpc"]}, "surface: unknown value"),
        ({"actor": {"name": ["x"]}}, "unknown field actor.name"),
        ({"operationId": ["x"]}, "unknown field operationId"),
        ({"limit": 1001}, "limit must be an integer from 1 to 1000"),
        ({"includeTimeline": True, "timelineInterval": "5x"}, "timelineInterval"),
        ({"includeTimeline": "yes"}, "includeTimeline must be true or false"),
    ],
)
def test_an_audit_request_the_contract_does_not_allow_is_refused(extra: dict, says: str) -> None:
    body = {"startTime": "2026-03-01T09:00:00Z", "endTime": "2026-03-01T10:00:00Z", **extra}
    with pytest.raises(RequestInvalid, match=says):
        audit_wire.parse_audit_request(body)


def _interval_of(window: TimeRange, requested: str = "") -> str:
    body = {"startTime": format_rfc3339(window.start_ns), "endTime": format_rfc3339(window.end_ns)}
    body |= {"includeTimeline": True} | ({"timelineInterval": requested} if requested else {})
    query = audit_wire.parse_audit_request(body)
    return audit_wire.audit_response(AuditPage([], 0, 0, "", []), query)["timeline"]["interval"]


def test_timeline_widths_are_chosen_and_coarsened_as_the_contract_says() -> None:
    assert audit_wire.format_interval(3600 * S) == "1h" and audit_wire.format_interval(90 * S) == "90s"
    assert audit_wire.format_interval(90 * 60 * S) == "90m"
    assert audit_wire.parse_interval("15m") == 900 * S and audit_wire.parse_interval("30s") == 30 * S
    assert _interval_of(WINDOW) == "1m"  # none asked: a readable chart of the window
    assert _interval_of(WINDOW, "10m") == "10m"
    day = TimeRange(T0, T0 + 86_400 * S)
    assert _interval_of(day) == "15m"
    assert _interval_of(day, "1m") == "5m"  # 1,440 buckets of a minute: coarsened, not refused
    month = TimeRange(T0, T0 + 30 * 86_400 * S)
    width = audit_wire.parse_interval(_interval_of(month, "1m"))
    assert -(-(month.end_ns - month.start_ns) // width) <= MAX_TIMELINE_BUCKETS


def test_the_timeline_is_contiguous_from_the_windows_start_on_the_wire_and_sparse_again_when_read() -> None:
    query = AuditQuery(range=TimeRange(T0 + 30 * S, T0 + 200 * S), timeline_interval_ns=60 * S)
    buckets = [TimelineBucket(T0 + 90 * S, 3, {"success": 2, "denied": 1})]
    page = AuditPage([record()], 1, 2, "", buckets)
    json = audit_wire.audit_response(page, query)
    assert json["timeline"]["interval"] == "1m"
    assert [(b["startTime"], b["total"]) for b in json["timeline"]["buckets"]] == [
        ("2026-03-01T10:00:30Z", 0),
        ("2026-03-01T10:01:30Z", 3),
        ("2026-03-01T10:02:30Z", 0),
    ]
    assert "counts" not in json["timeline"]["buckets"][0]  # an absent key means zero
    read, interval = audit_wire.parse_audit_response(json)
    assert (read.timeline, interval, read.records, read.total) == (buckets, "1m", [record()], 1)
    assert "timeline" not in audit_wire.audit_response(AuditPage([], 0, 0), query)
