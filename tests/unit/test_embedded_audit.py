"""The embedded backend's audit trail: stored with its batch, a phrase found in values only, any event id paged,
timeline buckets from the window's start, an exact total, and kept as long as logs are."""

from __future__ import annotations

import dataclasses

import pytest

from adapters.embedded.backend import EmbeddedBackend
from domain.audit import Actor, AuditQuery, AuditRecord, AuditResource, timeline_start
from domain.model import TOTAL_CAP, LogRecord, TimeRange
from domain.platform import FilterValuesQuery

S = 10**9
T0 = 1_700_000_000 * S
RANGE = TimeRange(T0, T0 + 3600 * S)


def record(number: int, offset_s: float = 0, **fields: object) -> AuditRecord:
    base = AuditRecord(
        event_id=f"e{number:04d}",
        time_ns=T0 + int(offset_s * S) + number,
        actor=Actor(type="user", id="alice", entitlements=(("groups", ("sre",)),)),
        action="incident.update",
        category="management",
        result="success",
        surface="rest",
        resource=AuditResource(type="incident", name=f"inc-{number}"),
    )
    return dataclasses.replace(base, **fields)  # type: ignore[arg-type]


def event_ids(page) -> list[str]:
    return [each.event_id for each in page.records]


async def test_a_phrase_is_found_in_values_never_in_keys_nor_in_json_escaping(backend: EmbeddedBackend) -> None:
    quoted = record(1, action='say "hi"', metadata={"path": "C:\\temp\\new", "note": "ünïcödé ✓"})
    plain = record(2)
    await backend.write(batch_id="b", audit=[quoted, plain])
    for phrase in ('say "hi"', "C:\\temp", "ünïcödé ✓"):
        page = await backend.query_audit(AuditQuery(range=RANGE, phrase=phrase))
        assert event_ids(page) == ["e0001"], phrase
    for key in ("event_time", "actor", "schema_version", "groups", '"action"'):
        assert event_ids(await backend.query_audit(AuditQuery(range=RANGE, phrase=key))) == [], key


async def test_any_event_id_pages(backend: EmbeddedBackend) -> None:
    """A cursor holds the row, not the event id, so ids of any length or character still page."""
    odd = ["x" * 3000, "tab\there", "\x01ctl", "ünï"]
    await backend.write(batch_id="b", audit=[record(0, event_id=event_id) for event_id in odd])
    seen, cursor = [], ""
    while True:
        page = await backend.query_audit(AuditQuery(range=RANGE, limit=1, sort="asc", cursor=cursor))
        seen += event_ids(page)
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    assert seen == sorted(odd)


async def test_audit_records_are_written_in_the_batchs_transaction(backend: EmbeddedBackend) -> None:
    broken = LogRecord(T0, "no identity", None)  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        await backend.write(batch_id="b1", logs=[broken], audit=[record(1)])
    assert (await backend.query_audit(AuditQuery(range=RANGE))).total == 0
    await backend.write(batch_id="b2", audit=[record(1), record(1)])
    await backend.write(batch_id="b2", audit=[record(2)])  # a batch seen before: a no-op
    assert event_ids(await backend.query_audit(AuditQuery(range=RANGE))) == ["e0001"]


async def test_retention_removes_old_audit_records(backend: EmbeddedBackend) -> None:
    await backend.write(batch_id="b", audit=[record(1), record(2, offset_s=100)])
    assert await backend.prune(T0 + 50 * S) >= 1
    assert event_ids(await backend.query_audit(AuditQuery(range=RANGE))) == ["e0002"]


async def test_timeline_buckets_start_at_the_windows_start(backend: EmbeddedBackend) -> None:
    interval = 7 * S  # T0 is no multiple of it: buckets start at the range's start, not at the epoch's multiples
    records = [record(n, offset_s=n * 3, result="denied" if n % 3 == 0 else "success") for n in range(1, 10)]
    await backend.write(batch_id="b", audit=records)
    page = await backend.query_audit(AuditQuery(range=RANGE, timeline_interval_ns=interval))
    expected: dict[int, dict[str, int]] = {}
    for each in records:
        counts = expected.setdefault(timeline_start(each.time_ns, interval, RANGE.start_ns), {})
        counts[each.result] = counts.get(each.result, 0) + 1
    assert page.timeline is not None and page.timeline[0].start_ns == RANGE.start_ns
    assert [(b.start_ns, b.total, b.counts) for b in page.timeline] == [
        (start, sum(counts.values()), counts) for start, counts in sorted(expected.items())
    ]


async def test_entitlement_filter_values_count_each_entitlement(backend: EmbeddedBackend) -> None:
    await backend.write(
        batch_id="b",
        audit=[
            record(1, actor=Actor(type="user", id="a", entitlements=(("groups", ("sre", "admins")),))),
            record(2, actor=Actor(type="service_account", id="b", entitlements=(("sub", ("sre",)),))),
            record(3, actor=Actor(type="user", id="c")),
        ],
    )
    found = await backend.audit_filter_values(FilterValuesQuery(AuditQuery(range=RANGE), "actor.entitlements"))
    assert [(v.value, v.count) for v in found.values] == [("sre", 2), ("admins", 1)]
    assert found.total_values == 2
    narrowed = AuditQuery(range=RANGE, filters=(("actor.entitlements", ("admins",)),))
    assert (await backend.query_audit(narrowed)).total == 1


async def test_the_total_is_exact_past_the_logs_cap(backend: EmbeddedBackend) -> None:
    many = [record(n, offset_s=n % 3000) for n in range(TOTAL_CAP + 5)]
    await backend.write(batch_id="b", audit=many)
    page = await backend.query_audit(AuditQuery(range=RANGE, limit=1))
    assert page.total == TOTAL_CAP + 5 and len(page.records) == 1


async def test_unknown_filters_are_refused(backend: EmbeddedBackend) -> None:
    with pytest.raises(ValueError, match="unknown audit filter"):
        await backend.query_audit(AuditQuery(range=RANGE, filters=(("actor.name", ("x",)),)))
    with pytest.raises(ValueError, match="unknown audit filter"):
        await backend.audit_filter_values(FilterValuesQuery(AuditQuery(range=RANGE), "event_id"))
