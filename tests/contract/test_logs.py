"""Logs: the same query gives the same answer on every backend."""

from __future__ import annotations

import base64
import dataclasses
import json

import pytest

from adapters.protocols import InvalidCursor
from devservers.sample import BASE_NS, COMPONENTS, ENVIRONMENTS, PROJECT_UID
from domain.model import TOTAL_CAP, ComponentScope, LogRecord, LogsQuery, TimeRange
from tests.contract.data import MS, SECOND, WINDOW, cart_scope, log, workflow_identity, workflow_scope


def bodies(page) -> list[str]:
    return [record.body for record in page.items]


async def test_scope_selects_component_environment_project_and_namespace(subject):
    ns = subject.namespace
    await subject.load(
        logs=[
            log(ns, 1 * SECOND, "cart prod"),
            log(ns, 2 * SECOND, "cart dev", environment="dev"),
            log(ns, 3 * SECOND, "frontend prod", component="frontend"),
            log("elsewhere-" + ns, 4 * SECOND, "other namespace"),
            LogRecord(BASE_NS + 5 * SECOND, "workflow step", workflow_identity(ns, "build-1", "compile")),
        ]
    )
    q = lambda scope: LogsQuery(scope=scope, range=WINDOW, sort="asc")  # noqa: E731
    assert bodies(await subject.backend.query_logs(q(cart_scope(ns)))) == ["cart prod"]
    assert bodies(await subject.backend.query_logs(q(cart_scope(ns, "dev")))) == ["cart dev"]
    project = ComponentScope(ns, PROJECT_UID, "", ENVIRONMENTS["prod"])
    assert bodies(await subject.backend.query_logs(q(project))) == ["cart prod", "frontend prod"]
    # A namespace scope covers the namespace's components, never another namespace's or a workflow's.
    everything = await subject.backend.query_logs(q(ComponentScope(ns)))
    assert bodies(everything) == ["cart prod", "cart dev", "frontend prod"]
    assert everything.total == 3


async def test_records_carry_their_identity_back(subject):
    ns = subject.namespace
    record = log(ns, 1 * SECOND + 123_456_789, "hello", "WARN")
    record.trace_id, record.span_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    await subject.load(logs=[record])
    (got,) = (await subject.backend.query_logs(LogsQuery(scope=cart_scope(ns), range=WINDOW))).items
    assert got.ts_ns == record.ts_ns  # nanoseconds survive
    assert (got.body, got.level, got.trace_id, got.span_id) == ("hello", "WARN", record.trace_id, record.span_id)
    assert got.identity == record.identity


async def test_time_range_is_inclusive_to_the_nanosecond(subject):
    ns = subject.namespace
    start, end = BASE_NS + 10 * SECOND + 1, BASE_NS + 20 * SECOND + 999
    await subject.load(
        logs=[
            log(ns, start - BASE_NS - 1, "one before"),
            log(ns, start - BASE_NS, "at start"),
            log(ns, end - BASE_NS, "at end"),
            log(ns, end - BASE_NS + 1, "one after"),
        ]
    )
    page = await subject.backend.query_logs(LogsQuery(scope=cart_scope(ns), range=TimeRange(start, end), sort="asc"))
    if subject.kind in TIME_PRECISION_DIFFERS:
        # Each record shares its millisecond with the one next to it: the widened window keeps all four.
        assert bodies(page) == ["one before", "at start", "at end", "one after"]
    else:
        assert bodies(page) == ["at start", "at end"]


#: Backends whose documented semantics differ from the contract here, and what they do instead (asserted).
TIME_PRECISION_DIFFERS = {
    "datadog": "times are searched in whole milliseconds (Logs Search `from`/`to` are epoch ms): the window is "
    "widened to the milliseconds it touches, so records within the same millisecond as either bound match",
}
PHRASE_DIFFERS = {
    "datadog": "full-text search is case-insensitive (Log Search Syntax: free text), so a phrase also matches "
    "its other-case spellings, and it matches words, so a phrase inside a longer word is not a documented match",
}


PHRASES = [
    'say "hi"',
    "x*y",
    "what?",
    "C:\\temp\\new",
    "key: value",
    "a OR b",
    "NOT found",
    "(paren",
    "50%",
    "*",
    "?",
    "\\",
    "path\\",
    "a.*b",
    "<tag>~#@&",
    "ünïcödé ✓",
]


@pytest.mark.parametrize("phrase", PHRASES)
async def test_phrases_match_literally(subject, phrase):
    ns = subject.namespace
    decoys = ["say hi", "xzy", "what!", "C:/temp/new", "key value", "a or b", "not found", "paren", "50 percent"]
    await subject.load(
        logs=[log(ns, (i + 1) * SECOND, f"decoy {text}") for i, text in enumerate(decoys)]
        + [log(ns, 30 * SECOND, f"needle {phrase} end")]
    )
    page = await subject.backend.query_logs(LogsQuery(scope=cart_scope(ns), range=WINDOW, phrase=phrase))
    if subject.kind in PHRASE_DIFFERS:
        # Case-insensitive: a decoy that is the phrase in another case matches too (newest first).
        same_but_case = [f"decoy {d}" for d in reversed(decoys) if d != phrase and d.casefold() == phrase.casefold()]
        assert bodies(page) == [f"needle {phrase} end", *same_but_case]
        assert page.total == 1 + len(same_but_case)
    else:
        assert bodies(page) == [f"needle {phrase} end"]
        assert page.total == 1


async def test_phrase_is_case_sensitive_and_a_substring(subject):
    ns = subject.namespace
    await subject.load(
        logs=[
            log(ns, SECOND, "Payment declined"),
            log(ns, 2 * SECOND, "payment declined"),
            log(ns, 3 * SECOND, "prepayments"),
        ]
    )
    page = await subject.backend.query_logs(LogsQuery(scope=cart_scope(ns), range=WINDOW, phrase="payment", sort="asc"))
    if subject.kind in PHRASE_DIFFERS:
        # Both spellings of the word match; whether "prepayments" does is Datadog's tokenizer's to say (words,
        # not substrings), which the contract cannot hold it to either way.
        assert bodies(page)[:2] == ["Payment declined", "payment declined"]
    else:
        assert bodies(page) == ["payment declined", "prepayments"]


async def test_levels_filter_and_error_includes_fatal(subject):
    ns = subject.namespace
    await subject.load(
        logs=[
            log(ns, 1 * SECOND, "d", "DEBUG"),
            log(ns, 2 * SECOND, "i", "INFO"),
            log(ns, 3 * SECOND, "w", "WARN"),
            log(ns, 4 * SECOND, "e", "ERROR"),
            log(ns, 5 * SECOND, "f", "FATAL"),
        ]
    )
    query = lambda *levels: LogsQuery(scope=cart_scope(ns), range=WINDOW, sort="asc", levels=levels)  # noqa: E731
    assert bodies(await subject.backend.query_logs(query("ERROR"))) == ["e", "f"]
    assert bodies(await subject.backend.query_logs(query("WARN", "DEBUG"))) == ["d", "w"]
    assert bodies(await subject.backend.query_logs(query("INFO"))) == ["i"]
    both = await subject.backend.query_logs(
        LogsQuery(scope=cart_scope(ns), range=WINDOW, levels=("ERROR",), phrase="f")
    )
    assert bodies(both) == ["f"]


async def test_sort_limit_and_total(subject):
    ns = subject.namespace
    await subject.load(logs=[log(ns, i * MS, f"line {i:03d}") for i in range(120)])
    desc = await subject.backend.query_logs(LogsQuery(scope=cart_scope(ns), range=WINDOW, limit=5))
    assert bodies(desc) == [f"line {i:03d}" for i in (119, 118, 117, 116, 115)]
    assert desc.total == 120
    asc = await subject.backend.query_logs(LogsQuery(scope=cart_scope(ns), range=WINDOW, limit=3, sort="asc"))
    assert bodies(asc) == ["line 000", "line 001", "line 002"]


async def test_total_is_capped(subject):
    ns = subject.namespace
    await subject.load(logs=[log(ns, i * MS, f"line {i}") for i in range(TOTAL_CAP + 50)])
    page = await subject.backend.query_logs(LogsQuery(scope=cart_scope(ns), range=WINDOW, limit=1))
    assert page.total == TOTAL_CAP


@pytest.mark.parametrize("sort", ["asc", "desc"])
async def test_cursor_walks_every_record_once(subject, sort):
    ns = subject.namespace
    # Pairs share a timestamp, so the tiebreaker is exercised at page edges.
    await subject.load(logs=[log(ns, (i // 2) * MS, f"line {i:03d}") for i in range(95)])
    seen, cursor, pages = [], "", 0
    while True:
        page = await subject.backend.query_logs(
            LogsQuery(scope=cart_scope(ns), range=WINDOW, limit=10, sort=sort, cursor=cursor)
        )
        seen += [(record.ts_ns, record.body) for record in page.items]
        pages += 1
        assert page.total == 95
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    assert pages == 10
    assert sorted(body for _, body in seen) == [f"line {i:03d}" for i in range(95)]
    times = [ts for ts, _ in seen]
    assert times == sorted(times, reverse=sort == "desc")


async def test_a_cursor_belongs_to_its_query(subject):
    ns = subject.namespace
    await subject.load(logs=[log(ns, i * MS, f"line {i}") for i in range(5)])
    page = await subject.backend.query_logs(LogsQuery(scope=cart_scope(ns), range=WINDOW, limit=2))
    with pytest.raises(InvalidCursor):
        await subject.backend.query_logs(
            LogsQuery(scope=cart_scope(ns), range=WINDOW, limit=2, phrase="x", cursor=page.next_cursor)
        )
    with pytest.raises(InvalidCursor):
        await subject.backend.query_logs(LogsQuery(scope=cart_scope(ns), range=WINDOW, cursor="not-a-cursor"))


@pytest.mark.parametrize("position", [[2**70, "zz"], [1.5, 2], ["a", "b"], [True, False], [1, 2, 3], []])
async def test_a_cursor_with_a_position_we_never_issued_is_refused(subject, position):
    """The query's own fingerprint with a forged position: refused, never sent on to the backend as a 500."""
    ns = subject.namespace
    await subject.load(logs=[log(ns, i * MS, f"line {i}") for i in range(5)])
    query = LogsQuery(scope=cart_scope(ns), range=WINDOW, limit=2)
    issued = json.loads(base64.urlsafe_b64decode((await subject.backend.query_logs(query)).next_cursor + "=="))
    forged = base64.urlsafe_b64encode(json.dumps({"q": issued["q"], "p": position}).encode()).decode().rstrip("=")
    with pytest.raises(InvalidCursor):
        await subject.backend.query_logs(dataclasses.replace(query, cursor=forged))


async def test_workflow_scope_matches_run_exactly_task_as_substring_and_skips_argo_sidecars(subject):
    ns = subject.namespace
    await subject.load(
        logs=[
            LogRecord(BASE_NS + 1 * SECOND, "compile 7", workflow_identity(ns, "build-7", "compile-step")),
            LogRecord(BASE_NS + 2 * SECOND, "test 7", workflow_identity(ns, "build-7", "unit-test")),
            LogRecord(BASE_NS + 3 * SECOND, "compile 77", workflow_identity(ns, "build-77", "compile-step")),
            LogRecord(BASE_NS + 4 * SECOND, "argo init", workflow_identity(ns, "build-7", "compile-step", "init")),
            LogRecord(BASE_NS + 5 * SECOND, "argo wait", workflow_identity(ns, "build-7", "compile-step", "wait")),
            log(ns, 6 * SECOND, "component line"),
        ]
    )
    query = lambda scope: LogsQuery(scope=scope, range=WINDOW, sort="asc")  # noqa: E731
    assert bodies(await subject.backend.query_logs(query(workflow_scope(ns, "build-7")))) == ["compile 7", "test 7"]
    assert bodies(await subject.backend.query_logs(query(workflow_scope(ns, "build-7", "compile")))) == ["compile 7"]
    assert bodies(await subject.backend.query_logs(query(workflow_scope(ns)))) == ["compile 7", "test 7", "compile 77"]


async def test_a_range_across_midnight_reads_both_days(subject):
    ns = subject.namespace
    midnight = (BASE_NS // (86_400 * SECOND) + 1) * 86_400 * SECOND
    await subject.load(
        logs=[
            log(ns, midnight - SECOND - BASE_NS, "before midnight"),
            log(ns, midnight + SECOND - BASE_NS, "after midnight"),
        ]
    )
    window = TimeRange(midnight - 60 * SECOND, midnight + 60 * SECOND)
    page = await subject.backend.query_logs(LogsQuery(scope=cart_scope(ns), range=window, sort="asc"))
    assert bodies(page) == ["before midnight", "after midnight"]
    assert COMPONENTS  # the sample platform is in use
