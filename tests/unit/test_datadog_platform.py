"""The Datadog backend's platform-logs and audit parts that need no Datadog: where a line ran as Datadog's
Kubernetes tags and our attributes (and back), user values escaped into the search syntax, audit records as log
entries (and back), and the aggregate answers read into filter values and timeline buckets."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from adapters.datadog import fields, records, trail
from adapters.datadog import query as dq
from adapters.datadog.platform import ranked
from domain.audit import Actor, AuditQuery, AuditRecord, AuditResource
from domain.model import Identity, LogRecord, TimeRange
from domain.platform import PlatformLogsQuery
from tests.unit.test_datadog_query import search_result, unquote

S = 10**9
WINDOW = TimeRange(1_700_000_000 * S, 1_700_000_060 * S)
PLACED = Identity(
    namespace="shop",
    component="api",
    cluster="east",
    node="node-7",
    pod_ip="10.1.2.3",
    image="registry.example:5000/team/api:1.2",
    pod="api-0",
    pod_namespace="dp-shop",
    container="main",
    labels=(("app.kubernetes.io/name", "Api"), ("tier", "a=b")),
)


def test_a_line_carries_datadogs_kubernetes_tags_and_reads_its_placement_back() -> None:
    record = LogRecord(1_700_000_000_123_456_789, "hello", PLACED, "INFO")
    entry = records.log_entry(record)
    tags = str(entry[fields.TAGS]).split(",")
    for tag in ("kube_cluster_name:east", "kube_node:node-7", "kube_namespace:dp-shop", "pod_name:api-0"):
        assert tag in tags
    assert "image_name:registry.example:5000/team/api" in tags and "image_tag:1.2" in tags
    assert entry[fields.HOSTNAME] == "node-7"  # Datadog's host of a pod's line is its node
    assert entry[fields.POD_LABELS] == ["app.kubernetes.io/name=Api", "tier=a=b"]  # case and `=` kept
    assert records.log_from_event(search_result(entry)) == record


def test_image_parts() -> None:
    assert records.image_parts("nginx") == ("nginx", "")
    assert records.image_parts("registry:5000/nginx") == ("registry:5000/nginx", "")
    assert records.image_parts("nginx@sha256:abc") == ("nginx@sha256:abc", "")


@given(st.text(min_size=1), st.text())
def test_label_pairs_stay_inside_their_quotes(key: str, value: str) -> None:
    query = dq.platform_query(PlatformLogsQuery(range=WINDOW, labels=((key, value),)))
    clause = query.split(f"@{fields.POD_LABELS}:", 1)[1]
    assert unquote(clause) == f"{key}={value}"


@given(st.text(min_size=1))
def test_a_label_key_is_escaped_before_its_wildcard(key: str) -> None:
    clause = dq.label_key_clause(key)
    assert clause == f"@{fields.POD_LABELS}:{dq.wildcard_literal(key + '=')}*"


def test_the_platform_query() -> None:
    query = PlatformLogsQuery(
        range=WINDOW, clusters=("East", "west"), pods=("a-0",), levels=("ERROR",), phrase='say "x"'
    )
    assert dq.platform_query(query) == (
        '-source:"kubernetes" -source:"openchoreo-audit-logs" kube_cluster_name:("east" OR "west") '
        'pod_name:("a-0") status:("alert" OR "critical" OR "emerg" OR "emergency" OR "error") "say \\"x\\""'
    )


def test_filter_values_are_ranked_searched_and_cut() -> None:
    counted = Counter({"b": 2, "a": 2, "Core-1": 5, "core-2": 1})
    answer = ranked("podName", counted, "CORE", 1, 0.0)
    assert [(v.value, v.count) for v in answer.values] == [("Core-1", 5)]
    assert answer.total_values == 2


def audit_record() -> AuditRecord:
    return AuditRecord(
        event_id="evt-1",
        time_ns=1_700_000_000_123_456_789,
        actor=Actor("user", "alice", "https://idp", "s-1", (("groups", ("admins", "sre")), ("roles", ("sre",)))),
        action="incident.update",
        category="management",
        result="success",
        surface="rest",
        producer="observer",
        http_method="PUT",
        http_path="/api/v1alpha1/incidents/i-1",
        resource=AuditResource(type="incident", name="i-1"),
        metadata={"state": "acknowledged"},
    )


def test_an_audit_record_is_a_log_of_its_own_source_and_reads_back_whole() -> None:
    entry = records.audit_entry(audit_record())
    assert entry[fields.SOURCE] == "openchoreo-audit-logs"
    assert entry["actor"]["id"] == "alice" and entry["event_id"] == "evt-1"
    assert entry["actor"]["entitlements"] == {"groups": ["admins", "sre"], "roles": ["sre"]}
    assert entry["entitlementValues"] == ["admins", "sre"]  # what the entitlements filter matches
    assert entry[fields.TIMESTAMP] == 1_700_000_000_123
    search = {"attributes": {"message": entry[fields.MESSAGE], "attributes": entry}}
    assert records.audit_from_event(search) == audit_record()


def test_the_audit_query_quotes_every_value() -> None:
    query = AuditQuery(range=WINDOW, filters=(("actor.id", ('a"b',)), ("operation_id", ("x", "y"))), phrase="p")
    assert dq.audit_query(query) == (
        'source:"openchoreo-audit-logs" @actor.id:("a\\"b") @operation_id:("x" OR "y") "p"'
    )
    entitled = AuditQuery(range=WINDOW, filters=(("actor.entitlements", ("sre",)),))
    assert dq.audit_query(entitled) == 'source:"openchoreo-audit-logs" @entitlementValues:("sre")'


def test_timeline_points_become_sparse_buckets_from_the_windows_start() -> None:
    buckets = [
        {"by": {"@result": "success"}, "computes": {"c0": [
            {"time": "2023-11-14T22:13:00.000+00:00", "value": 2},
            {"time": "2023-11-14T22:14:00.000+00:00", "value": 0},
        ]}},
        {"by": {"@result": "denied"}, "computes": {"c0": [{"time": "2023-11-14T22:13:00.000Z", "value": 1}]}},
    ]  # fmt: skip
    start = 1_700_000_000 * S  # 22:13:20: points at whole minutes fall in buckets from 22:12:20 and 22:13:20
    window = TimeRange(start - 60 * S, start + 600 * S)
    (only,) = trail._timeline(buckets, AuditQuery(range=window, timeline_interval_ns=60 * S))
    assert (only.total, only.counts, only.start_ns) == (3, {"success": 2, "denied": 1}, start - 60 * S)
    assert dq.datadog_interval(3600 * S) == "1h" and dq.datadog_interval(90 * S) == "90s"


def test_timeline_points_are_asked_at_a_width_that_never_straddles_a_bucket() -> None:
    minute = 60 * S
    assert trail.grid_ms(1_700_000_040 * S, minute) == 60_000  # 22:14:00: on a multiple of the interval
    assert trail.grid_ms(1_700_000_000 * S, minute) == 20_000  # 22:13:20: 20 s past one
    assert trail.grid_ms(1_700_000_000 * S + 11 * 10**6, minute) == 1  # 20.011 s past one
