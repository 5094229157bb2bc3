"""The audit trail: the same question gives the same answer on every backend.

Each test reads its own time slot and names its own actors and event ids (tests/contract/data.py), so a query
without an actor filter still sees only this test's records on a backend shared by the session.
"""

from __future__ import annotations

import dataclasses

import pytest

from adapters.protocols import InvalidCursor
from domain.audit import (
    AUDIT_FILTERS,
    EXACT_ONLY_FILTERS,
    AuditQuery,
    AuditRecord,
    AuditResource,
    audit_document,
    record_value,
)
from domain.model import TOTAL_CAP, TimeRange
from domain.platform import FilterValuesQuery
from tests.contract.data import MS, SECOND, audit, slot_start, slot_window


def ids(page) -> list[str]:
    return [record.event_id for record in page.records]


def query(ns: str, filters: dict[str, tuple[str, ...]] | None = None, **fields) -> AuditQuery:
    """A query over this test's slot, oldest first unless told; `filters` sorted by name as AuditQuery wants."""
    fields = {"range": slot_window(ns), "sort": "asc", **fields}
    return AuditQuery(filters=tuple(sorted((filters or {}).items())), **fields)


async def trail(subject, q: AuditQuery):
    return await subject.audit_log.query_audit(q)


def cleared(q: AuditQuery, name: str) -> AuditQuery:
    """The query with `name`'s own selection cleared and no cursor: what the service hands a backend."""
    return dataclasses.replace(q, filters=tuple(pair for pair in q.filters if pair[0] != name), cursor="")


async def values(subject, q: AuditQuery, name: str, search: str = "", most: int = 100):
    return await subject.audit_log.audit_filter_values(FilterValuesQuery(cleared(q, name), name, search, most))


def listed(answer) -> list[tuple[str, int]]:
    return [(each.value, each.count) for each in answer.values]


def pair(ns: str) -> tuple[AuditRecord, AuditRecord]:
    """Two records differing in every filterable field."""
    one = audit(
        ns,
        1,
        1 * SECOND,
        action="incident.update",
        result="success",
        category="management",
        actor="alice",
        actor_type="user",
        entitlements=("admins", "sre"),
        surface="rest",
        resource=AuditResource(
            type="incident",
            namespace=f"t1-{ns}",
            environment="prod",
            project="shop",
            component="cart",
            resource="incidents",
            uid="u-1",
            name="inc-1",
        ),
        producer="observer",
        operation_id="updateIncident",
        source_ip="10.0.0.1",
        user_agent="curl/8.5",
        http_method="PUT",
        http_path="/api/v1alpha1/incidents/inc-1",
        metadata={"state": "acknowledged"},
    )
    two = audit(
        ns,
        2,
        2 * SECOND,
        action="mcp.query_component_logs",
        result="denied",
        category="authorization",
        actor="bot",
        actor_type="service_account",
        entitlements=("viewers",),
        surface="mcp",
        issuer="https://other.example",
        resource=AuditResource(
            type="component",
            namespace=f"t2-{ns}",
            environment="dev",
            project="web",
            component="front",
            resource="logs",
            uid="u-2",
            name="front",
        ),
        producer="openchoreo-api",
        operation_id="queryComponentLogs",
        source_ip="10.0.0.2",
        user_agent="claude-code",
    )
    return one, two


# ------------------------------------------------------------------------------------------------- the query


async def test_each_filter_selects_its_records(subject):
    """Every filter, on one pair of records (loaded once: the suite runs on four backends)."""
    ns = subject.namespace
    one, two = pair(ns)
    await subject.load(audit=[one, two])
    for name in [*AUDIT_FILTERS, *EXACT_ONLY_FILTERS]:
        for record in (one, two):
            value = record_value(record, name)[0] if name in AUDIT_FILTERS else getattr(record, name)
            assert ids(await trail(subject, query(ns, {name: (value,)}))) == [record.event_id], (name, value)
        assert ids(await trail(subject, query(ns, {name: ("no-such-value",)}))) == [], name


async def test_alternatives_within_a_filter_and_filters_combined(subject):
    ns = subject.namespace
    one, two = pair(ns)
    three = audit(ns, 3, 3 * SECOND, result="failure", actor="alice")
    await subject.load(audit=[one, two, three])
    either = query(ns, {"result": ("success", "denied")})
    assert ids(await trail(subject, either)) == [one.event_id, two.event_id]
    both = query(ns, {"result": ("success", "failure"), "actor.id": (f"alice-{ns}",), "surface": ("rest",)})
    assert ids(await trail(subject, both)) == [one.event_id, three.event_id]
    none = query(ns, {"result": ("denied",), "actor.id": (f"alice-{ns}",)})
    page = await trail(subject, none)
    assert (ids(page), page.total) == ([], 0)


async def test_entitlements_match_any_of_the_records_entitlements(subject):
    ns = subject.namespace
    one, two = pair(ns)
    await subject.load(audit=[one, two])
    assert ids(await trail(subject, query(ns, {"actor.entitlements": ("sre",)}))) == [one.event_id]
    assert ids(await trail(subject, query(ns, {"actor.entitlements": ("admins",)}))) == [one.event_id]
    either = query(ns, {"actor.entitlements": ("viewers", "sre")})
    assert ids(await trail(subject, either)) == [one.event_id, two.event_id]
    assert ids(await trail(subject, query(ns, {"actor.entitlements": ("admin",)}))) == []  # whole values only


async def test_records_come_back_whole(subject):
    ns = subject.namespace
    one, two = pair(ns)
    await subject.load(audit=[one, two])
    page = await trail(subject, query(ns))
    assert [audit_document(record) for record in page.records] == [audit_document(one), audit_document(two)]
    assert page.records[0].time_ns == one.time_ns


#: Backends whose documented semantics differ from the contract here, and what they do instead (asserted).
PHRASE_DIFFERS: dict[str, str] = {
    "datadog": "full-text search is case-insensitive (Log Search Syntax: free text), so a phrase also matches "
    "its other-case spellings",
}
ORDER_DIFFERS = {
    "datadog": "Logs Search sorts by the millisecond timestamp alone (`sort` is `timestamp` or `-timestamp`): "
    "records are put in (time, event id) order within a page, but a page that ends inside one millisecond takes "
    "that millisecond's records in Datadog's order",
}


@pytest.mark.parametrize(
    "phrase",
    ["incident.upd", "alice-", "inc-1", "cart", "/api/v1alpha1/incidents", "curl/8"],
    ids=["action", "actor.id", "resource.name", "resource.component", "http.path", "user_agent"],
)
async def test_phrase_finds_a_substring_of_the_searched_fields(subject, phrase):
    ns = subject.namespace
    one, two = pair(ns)
    await subject.load(audit=[one, two])
    page = await trail(subject, query(ns, phrase=phrase))
    assert ids(page) == [one.event_id]
    assert page.total == 1


async def test_phrase_is_case_sensitive(subject):
    ns = subject.namespace
    one, two = pair(ns)
    await subject.load(audit=[one, two])
    page = await trail(subject, query(ns, phrase="INCIDENT.UPDATE"))
    if subject.kind in PHRASE_DIFFERS:
        assert ids(page) == [one.event_id]
    else:
        assert ids(page) == []


async def test_order_by_time_then_event_id_and_limit(subject):
    ns = subject.namespace
    # Records 1 and 2 share their time; they are ordered by event id.
    records = [
        audit(ns, 2, 1 * SECOND),
        audit(ns, 1, 1 * SECOND),
        audit(ns, 3, 2 * SECOND),
        audit(ns, 4, 3 * SECOND),
    ]
    await subject.load(audit=records)
    asc = await trail(subject, query(ns))
    assert ids(asc) == [f"evt-{ns}-0000{n}" for n in (1, 2, 3, 4)]
    desc = await trail(subject, query(ns, sort="desc", limit=3))
    if subject.kind in ORDER_DIFFERS:
        assert ids(desc)[:2] == [f"evt-{ns}-0000{n}" for n in (4, 3)]
        assert ids(desc)[2] in (f"evt-{ns}-00001", f"evt-{ns}-00002")
    else:
        assert ids(desc) == [f"evt-{ns}-0000{n}" for n in (4, 3, 2)]
    assert desc.total == 4


async def test_the_time_range_is_inclusive(subject):
    ns = subject.namespace
    await subject.load(audit=[audit(ns, n, n * SECOND) for n in range(1, 6)])
    start = slot_start(ns)
    page = await trail(subject, query(ns, range=TimeRange(start + 2 * SECOND, start + 4 * SECOND)))
    assert ids(page) == [f"evt-{ns}-0000{n}" for n in (2, 3, 4)]


async def test_total_is_exact_never_capped(subject):
    ns = subject.namespace
    await subject.load(audit=[audit(ns, n, n * MS) for n in range(TOTAL_CAP + 50)])
    page = await trail(subject, query(ns, limit=1))
    assert page.total == TOTAL_CAP + 50  # an audit reader told an understated total misjudges what happened


@pytest.mark.parametrize("sort", ["asc", "desc"])
async def test_cursor_walks_every_record_once_in_order(subject, sort):
    ns = subject.namespace
    await subject.load(audit=[audit(ns, n, (n // 2) * MS) for n in range(45)])
    seen, cursor, pages = [], "", 0
    while True:
        page = await trail(subject, query(ns, limit=10, sort=sort, cursor=cursor))
        seen += [(record.time_ns, record.event_id) for record in page.records]
        pages += 1
        assert page.total == 45
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    assert pages == 5
    assert seen == sorted(seen, reverse=sort == "desc")
    assert sorted(event for _, event in seen) == [f"evt-{ns}-{n:05d}" for n in range(45)]


async def test_a_cursor_belongs_to_its_query(subject):
    ns = subject.namespace
    await subject.load(audit=[audit(ns, n, n * MS) for n in range(5)])
    first = query(ns, limit=2)
    page = await trail(subject, first)
    assert page.next_cursor
    for other in (
        dataclasses.replace(first, phrase="incident"),
        dataclasses.replace(first, filters=(("result", ("success",)),)),
        dataclasses.replace(first, sort="desc"),
    ):
        with pytest.raises(InvalidCursor):
            await trail(subject, dataclasses.replace(other, cursor=page.next_cursor))
    with pytest.raises(InvalidCursor):
        await trail(subject, dataclasses.replace(first, cursor="not-a-cursor"))
    rest = await trail(subject, dataclasses.replace(first, cursor=page.next_cursor))
    assert ids(page) + ids(rest) == [f"evt-{ns}-{n:05d}" for n in range(4)]


async def test_a_record_written_twice_is_stored_once(subject):
    ns = subject.namespace
    one, two = pair(ns)
    await subject.load(audit=[one])
    await subject.load(audit=[one, two])
    page = await trail(subject, query(ns))
    assert ids(page) == [one.event_id, two.event_id]
    assert page.total == 2


# ------------------------------------------------------------------------------------------------- the timeline


async def test_timeline_buckets_count_per_result(subject):
    ns = subject.namespace
    await subject.load(
        audit=[
            audit(ns, 1, 1 * SECOND, result="success"),
            audit(ns, 2, 2 * SECOND, result="denied"),
            audit(ns, 3, 4 * SECOND, result="success"),
            audit(ns, 4, 12 * SECOND, result="failure"),
            audit(ns, 5, 13 * SECOND, actor="mallory", result="denied"),
        ]
    )
    start = slot_start(ns)
    page = await trail(subject, query(ns, limit=1, timeline_interval_ns=5 * SECOND))
    assert ids(page) == [f"evt-{ns}-00001"]  # the timeline covers every match, not only the page
    assert [(b.start_ns - start, b.total, b.counts) for b in page.timeline] == [
        (0, 3, {"success": 2, "denied": 1}),
        (10 * SECOND, 2, {"failure": 1, "denied": 1}),  # empty buckets are left out
    ]
    alice = await trail(subject, query(ns, {"actor.id": (f"alice-{ns}",)}, timeline_interval_ns=10 * SECOND))
    assert [(b.start_ns - start, b.total, b.counts) for b in alice.timeline] == [
        (0, 3, {"success": 2, "denied": 1}),
        (10 * SECOND, 1, {"failure": 1}),
    ]
    assert (await trail(subject, query(ns))).timeline is None  # not asked for


async def test_timeline_buckets_start_at_the_windows_start(subject):
    ns = subject.namespace
    await subject.load(
        audit=[
            audit(ns, 1, 2 * SECOND, result="success"),  # before the window
            audit(ns, 2, 3 * SECOND, result="success"),  # its first nanosecond
            audit(ns, 3, 7 * SECOND, result="denied"),
            audit(ns, 4, 8 * SECOND, result="failure"),  # the second bucket's first nanosecond
            audit(ns, 5, 19 * SECOND, result="success"),
        ]
    )
    start = slot_start(ns) + 3 * SECOND  # no multiple of the interval from the epoch
    window = TimeRange(start, slot_start(ns) + 19 * SECOND)
    page = await trail(subject, query(ns, range=window, timeline_interval_ns=5 * SECOND))
    assert page.total == 4
    assert [(b.start_ns - start, b.total, b.counts) for b in page.timeline] == [
        (0, 2, {"success": 1, "denied": 1}),
        (5 * SECOND, 1, {"failure": 1}),
        (15 * SECOND, 1, {"success": 1}),  # an empty bucket left out (the service fills it)
    ]


async def test_entitlements_of_every_claim_are_matched_and_counted(subject):
    ns = subject.namespace
    user = audit(ns, 1, 1 * SECOND, entitlements=("sre",))
    robot = audit(ns, 2, 2 * SECOND, actor="ci", actor_type="service_account", entitlements=("sre", "ci-bot"))
    await subject.load(audit=[user, robot])
    assert user.actor.entitlements == (("groups", ("sre",)),) and robot.actor.entitlements[0][0] == "sub"
    assert ids(await trail(subject, query(ns, {"actor.entitlements": ("sre",)}))) == [user.event_id, robot.event_id]
    assert ids(await trail(subject, query(ns, {"actor.entitlements": ("ci-bot",)}))) == [robot.event_id]
    assert ids(await trail(subject, query(ns, {"actor.entitlements": ("groups",)}))) == []  # a claim is no value
    assert listed(await values(subject, query(ns), "actor.entitlements")) == [("sre", 2), ("ci-bot", 1)]
    (read,) = (await trail(subject, query(ns, {"event_id": (robot.event_id,)}))).records
    assert audit_document(read) == audit_document(robot)  # the claim map comes back whole


# ------------------------------------------------------------------------------------------------ filter values


async def test_filter_values_count_records_per_value(subject):
    ns = subject.namespace
    one, two = pair(ns)
    three = dataclasses.replace(audit(ns, 3, 3 * SECOND, actor="alice", entitlements=("sre",)), resource=None)
    await subject.load(audit=[one, two, three])
    q = query(ns)
    assert listed(await values(subject, q, "actor.id")) == [(f"alice-{ns}", 2), (f"bot-{ns}", 1)]
    assert listed(await values(subject, q, "actor.entitlements")) == [("sre", 2), ("admins", 1), ("viewers", 1)]
    assert listed(await values(subject, q, "result")) == [("success", 2), ("denied", 1)]
    # The record without a resource adds nothing to a resource filter.
    assert listed(await values(subject, q, "resource.type")) == [("component", 1), ("incident", 1)]
    assert listed(await values(subject, q, "user_agent")) == [("claude-code", 1), ("curl/8.5", 1)]
    answer = await values(subject, q, "category")
    assert (answer.filter, answer.total_values) == ("category", 2)


async def test_every_filter_has_values(subject):
    ns = subject.namespace
    one, two = pair(ns)
    await subject.load(audit=[one, two])
    for name in AUDIT_FILTERS:
        expected = sorted((value, 1) for record in (one, two) for value in record_value(record, name))
        assert sorted(listed(await values(subject, query(ns), name))) == expected, name


async def test_filter_values_clear_their_own_selection_only(subject):
    ns = subject.namespace
    one, two = pair(ns)
    three = audit(ns, 3, 3 * SECOND, actor="carol", result="failure", surface="mcp")
    await subject.load(audit=[one, two, three])
    chosen = query(ns, {"result": ("denied",), "surface": ("mcp",)}, phrase="")
    assert listed(await values(subject, chosen, "result")) == [("denied", 1), ("failure", 1)]
    assert listed(await values(subject, chosen, "surface")) == [("mcp", 1)]
    assert listed(await values(subject, chosen, "actor.id")) == [(f"bot-{ns}", 1)]
    phrase = query(ns, phrase="incident")
    assert listed(await values(subject, phrase, "actor.id")) == [(f"alice-{ns}", 1), (f"carol-{ns}", 1)]


async def test_value_search_max_values_and_total_values(subject):
    ns = subject.namespace
    actions = ["rule.apply"] * 3 + ["rule.delete"] * 2 + ["incident.update"]
    await subject.load(audit=[audit(ns, n, n * SECOND, action=action) for n, action in enumerate(actions, 1)])
    found = await values(subject, query(ns), "action", search="RULE")
    assert listed(found) == [("rule.apply", 3), ("rule.delete", 2)]
    assert found.total_values == 2
    capped = await values(subject, query(ns), "action", most=1)
    assert listed(capped) == [("rule.apply", 3)]
    assert capped.total_values == 3
