"""The audit trail on OpenSearch, without a server: its layout and template, the search body (terms per filter,
the escaped phrase, the order, `search_after`, the exact total, the timeline from the window's start), the stored
document (upstream's record plus our flattened entitlements), and its answers read back."""

from __future__ import annotations

import pytest

from adapters.opensearch import audit, documents, fields, layout
from adapters.protocols import NotSupportedByBackend
from domain.audit import (
    AUDIT_FILTERS,
    EXACT_ONLY_FILTERS,
    Actor,
    AuditQuery,
    AuditRecord,
    audit_document,
    audit_from_document,
)
from domain.model import TOTAL_CAP, TimeRange
from domain.platform import FilterValuesQuery

SECOND = 10**9
WINDOW = TimeRange(1_790_000_000 * SECOND, 1_790_000_060 * SECOND)
RECORD = AuditRecord("evt-1", WINDOW.start_ns + 5, Actor("user", "alice"), "incident.update", "management", "success")


def test_audit_has_its_own_prefix_template_and_retention() -> None:
    indices = layout.IndexLayout()
    assert indices.audit == "openchoreo-audit-logs-"
    assert indices.audit in indices.prefixes
    mapping = layout.templates(indices)[indices.audit]["template"]["mappings"]
    assert mapping["dynamic"] == "false"
    properties = mapping["properties"]
    assert properties["event_time"] == {"type": "date_nanos"}
    # the claim -> values object: any claim a keyword array, as it arrives
    assert properties["actor"]["properties"]["entitlements"] == {"properties": {}, "dynamic": "true"}
    assert {"path_match": "actor.entitlements.*", "mapping": {"type": "keyword"}} in [
        next(iter(each.values())) for each in mapping["dynamic_templates"]
    ]
    for name in [*AUDIT_FILTERS, *EXACT_ONLY_FILTERS]:  # every filter has a keyword to filter on
        node = properties
        *parents, leaf = audit.filter_path(name).split(".")
        for part in parents:
            node = node[part]["properties"]
        assert node[leaf] == {"type": "keyword"}, name


def test_the_id_is_the_event_id_unless_too_long() -> None:
    assert documents.audit_id(RECORD) == "evt-1"
    long = AuditRecord("e" * 600, 0, Actor("user", "a"), "a", "access", "success")
    assert len(documents.audit_id(long)) == 32
    assert documents.audit_id(long) == documents.audit_id(long)


def test_the_stored_document_is_the_record_plus_its_entitlement_values() -> None:
    actor = Actor("user", "alice", entitlements=(("groups", ("sre", "admins")), ("roles", ("sre", "viewer"))))
    record = AuditRecord("evt-3", WINDOW.start_ns, actor, "incident.update", "management", "success")
    stored = documents.audit_source(record)
    assert stored["actor"]["entitlements"] == {"groups": ["sre", "admins"], "roles": ["sre", "viewer"]}
    assert stored["entitlementValues"] == ["sre", "admins", "viewer"]
    assert audit_from_document(stored) == record  # our field is dropped on read
    assert "entitlementValues" not in documents.audit_source(RECORD)
    assert documents.audit_source(RECORD) == audit_document(RECORD)


def test_filters_are_terms_on_the_documents_paths() -> None:
    query = AuditQuery(
        WINDOW,
        filters=(("actor.entitlements", ("sre", "admins")), ("actor.session_id", ("s1",)), ("event_id", ("e",))),
    )
    filters = audit.audit_filters(query)
    assert {"terms": {"entitlementValues": ["sre", "admins"]}} in filters
    assert {"terms": {"actor.session_id": ["s1"]}} in filters
    assert {"terms": {"event_id": ["e"]}} in filters
    with pytest.raises(ValueError):
        audit.audit_filters(AuditQuery(WINDOW, filters=(("metadata.state", ("x",)),)))


def test_the_phrase_is_an_escaped_substring_of_each_searched_field() -> None:
    (_, phrase) = audit.audit_filters(AuditQuery(WINDOW, phrase="inc*?"))
    alternatives = phrase["bool"]["should"]
    assert {"wildcard": {"action": {"value": "*inc\\*\\?*"}}} in alternatives
    searched = {next(iter(clause["wildcard"])) for clause in alternatives}
    assert {"action", "actor.id", "resource.name", "resource.component", "http.path", "user_agent"} <= searched


def test_the_search_sorts_by_time_then_event_id_and_pages_after_both() -> None:
    body = audit.search_body(AuditQuery(WINDOW, limit=10, sort="asc"), (WINDOW.start_ns, "evt-9"))
    assert body["sort"] == [
        {"event_time": {"order": "asc", "numeric_type": "date_nanos"}},
        {"event_id": {"order": "asc"}},
    ]
    assert body["search_after"] == [WINDOW.start_ns, "evt-9"]
    assert body["size"] == 11
    assert body["track_total_hits"] is True  # exact, never capped
    assert "aggs" not in body


def test_the_timeline_is_a_date_histogram_in_milliseconds_from_the_windows_start() -> None:
    window = TimeRange(WINDOW.start_ns + 3 * SECOND, WINDOW.end_ns)  # 3 s past a multiple of 5 s
    body = audit.search_body(AuditQuery(window, timeline_interval_ns=5 * SECOND), None)
    histogram = body["aggs"]["timeline"]
    assert histogram["date_histogram"] == {
        "field": "event_time",
        "fixed_interval": "5000ms",
        "offset": "+3000ms",
        "min_doc_count": 1,
    }
    assert histogram["aggs"]["results"]["terms"]["field"] == "result"
    with pytest.raises(NotSupportedByBackend):
        audit.timeline_agg(1_500, 0)


def test_answers_read_back() -> None:
    def hit(record: AuditRecord) -> dict:
        return {"_source": audit_document(record), "sort": [record.time_ns, record.event_id]}

    later = AuditRecord("evt-2", RECORD.time_ns + 1, RECORD.actor, "rule.apply", "management", "denied")
    response = {
        "hits": {"total": {"value": 5000}, "hits": [hit(RECORD), hit(later)]},
        "aggregations": {
            "timeline": {
                "buckets": [
                    {
                        "key": 1_790_000_000_000,
                        "doc_count": 2,
                        "results": {"buckets": [{"key": "success", "doc_count": 2}]},
                    }
                ]
            }
        },
    }
    records, total, last = audit.read_records(response, 1)
    assert (records, total, last) == ([RECORD], 5000, (RECORD.time_ns, "evt-1"))  # the total past TOTAL_CAP
    assert total > TOTAL_CAP
    assert audit.read_records(response, 2)[2] is None  # no record beyond the page: no cursor
    (bucket,) = audit.read_timeline(response, AuditQuery(WINDOW, timeline_interval_ns=5 * SECOND))
    assert (bucket.start_ns, bucket.total, bucket.counts) == (1_790_000_000 * SECOND, 2, {"success": 2})
    # a window starting inside a millisecond: its buckets are named by the window's own start
    inside = TimeRange(WINDOW.start_ns + 250_000, WINDOW.end_ns)  # the histogram's first key: its millisecond
    (bucket,) = audit.read_timeline(response, AuditQuery(inside, timeline_interval_ns=5 * SECOND))
    assert bucket.start_ns == inside.start_ns


def test_filter_values_count_the_filters_keyword() -> None:
    body = audit.filter_values_body(FilterValuesQuery(AuditQuery(WINDOW), "user_agent", "curl", 5))
    terms = body["aggs"]["values"]["terms"]
    assert (terms["field"], terms["size"], terms["include"]) == ("user_agent", 5, ".*[cC][uU][rR][lL].*")
    assert fields.AUDIT_FILTER_PATHS["user_agent"] == "user_agent"
    entitlements = audit.filter_values_body(FilterValuesQuery(AuditQuery(WINDOW), "actor.entitlements"))
    assert entitlements["aggs"]["values"]["terms"]["field"] == "entitlementValues"
