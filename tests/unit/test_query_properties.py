"""Property tests: whatever is stored, a query returns only records of its scope and time range, in order."""

from __future__ import annotations

import asyncio
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.embedded import logs as embedded_logs
from adapters.embedded.backend import EmbeddedBackend
from devservers.sample import BASE_NS, COMPONENTS, ENVIRONMENTS, PROJECT_UID, identity
from domain.model import ComponentScope, EventRecord, EventsQuery, LogRecord, LogsQuery, TimeRange

components = st.sampled_from(sorted(COMPONENTS))
environments = st.sampled_from(sorted(ENVIRONMENTS))
offsets = st.integers(min_value=0, max_value=10**12)  # within ~17 minutes, nanosecond resolution
levels = st.sampled_from(["DEBUG", "INFO", "WARN", "ERROR", "FATAL"])
bodies = st.text(alphabet=st.sampled_from("ab \"*%_'NEAR OR\\x"), min_size=0, max_size=12)

records = st.lists(
    st.tuples(components, environments, offsets, levels, bodies, st.sampled_from(["acme", "other"])),
    max_size=40,
)
scopes = st.tuples(
    st.sampled_from(["acme", "other"]),
    st.booleans(),
    st.one_of(st.none(), components),
    st.one_of(st.none(), environments),
)


def _scope(namespace: str, with_project: bool, component: str | None, environment: str | None) -> ComponentScope:
    return ComponentScope(
        namespace=namespace,
        project_uid=PROJECT_UID if with_project or component else "",
        component_uid=COMPONENTS[component] if component else "",
        environment_uid=ENVIRONMENTS[environment] if environment else "",
    )


def _in_scope(record_identity, scope: ComponentScope) -> bool:
    return (
        record_identity.namespace == scope.namespace
        and (not scope.project_uid or record_identity.project_uid == scope.project_uid)
        and (not scope.component_uid or record_identity.component_uid == scope.component_uid)
        and (not scope.environment_uid or record_identity.environment_uid == scope.environment_uid)
    )


def _run(stored, query_of, indexed_part: int = 0):
    """Stores the records (the first `indexed_part` of them also phrase-indexed, the rest left in the
    unindexed tail, as right after ingest) and runs the query."""

    async def go():
        with tempfile.TemporaryDirectory() as directory:
            backend = EmbeddedBackend(directory)
            try:
                for number, part in enumerate((stored[:indexed_part], stored[indexed_part:])):
                    await backend.write(
                        batch_id=f"b{number}",
                        logs=[
                            LogRecord(
                                ts_ns=BASE_NS + off, body=text, level=level, identity=identity(c, e, namespace=ns)
                            )
                            for c, e, off, level, text, ns in part
                        ],
                        events=[
                            EventRecord(ts_ns=BASE_NS + off, message=text, identity=identity(c, e, namespace=ns))
                            for c, e, off, level, text, ns in part
                        ],
                    )
                    if number == 0:
                        await backend.index_logs()
                return await query_of(backend)
            finally:
                backend.close()

    return asyncio.run(go())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    stored=records,
    scope=scopes,
    window=st.tuples(offsets, offsets),
    order=st.sampled_from(["asc", "desc"]),
    phrase=st.one_of(st.just(""), bodies),
    wanted=st.lists(st.sampled_from(["DEBUG", "INFO", "WARN", "ERROR"]), unique=True, max_size=2),
    indexed_part=st.integers(min_value=0, max_value=40),
    through_index=st.booleans(),
)
def test_logs_stay_in_scope_range_and_order(stored, scope, window, order, phrase, wanted, indexed_part, through_index):
    """Both phrase plans (through the trigram index, or walking the scope) give the same, correct answer."""
    query_scope = _scope(*scope)
    start, end = sorted(window)
    time_range = TimeRange(BASE_NS + start, BASE_NS + end)
    query = LogsQuery(scope=query_scope, range=time_range, limit=1000, sort=order, levels=tuple(wanted), phrase=phrase)
    threshold = embedded_logs._RARE_PHRASE_MATCHES
    embedded_logs._RARE_PHRASE_MATCHES = threshold if through_index else -1
    try:
        page = _run(stored, lambda backend: backend.query_logs(query), indexed_part)
    finally:
        embedded_logs._RARE_PHRASE_MATCHES = threshold

    allowed = {"DEBUG": {"DEBUG"}, "INFO": {"INFO"}, "WARN": {"WARN"}, "ERROR": {"ERROR", "FATAL"}}
    expected = [
        (off, text)
        for c, e, off, level, text, ns in stored
        if _in_scope(identity(c, e, namespace=ns), query_scope)
        and start <= off <= end
        and phrase in text
        and (not wanted or any(level in allowed[w] for w in wanted))
    ]
    assert page.total == len(expected)
    assert sorted((r.ts_ns - BASE_NS, r.body) for r in page.items) == sorted(expected)
    for record in page.items:
        assert _in_scope(record.identity, query_scope)
        assert time_range.start_ns <= record.ts_ns <= time_range.end_ns
    stamps = [r.ts_ns for r in page.items]
    assert stamps == sorted(stamps, reverse=(order == "desc"))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    stored=records,
    scope=scopes,
    window=st.tuples(offsets, offsets),
    order=st.sampled_from(["asc", "desc"]),
    limit=st.integers(min_value=1, max_value=7),
)
def test_event_pages_cover_everything_exactly_once(stored, scope, window, order, limit):
    """Following nextCursor from the first page to the last yields every match once, in order."""
    query_scope = _scope(*scope)
    start, end = sorted(window)
    query = EventsQuery(scope=query_scope, range=TimeRange(BASE_NS + start, BASE_NS + end), limit=limit, sort=order)

    async def all_pages(backend):
        seen, cursor = [], ""
        while True:
            from dataclasses import replace

            page = await backend.query_events(replace(query, cursor=cursor))
            seen.extend(page.items)
            if not page.next_cursor:
                return seen
            cursor = page.next_cursor

    seen = _run(stored, all_pages)
    expected = sorted(
        off
        for c, e, off, _, _, ns in stored
        if _in_scope(identity(c, e, namespace=ns), query_scope) and start <= off <= end
    )
    assert sorted(r.ts_ns - BASE_NS for r in seen) == expected
    stamps = [r.ts_ns for r in seen]
    assert stamps == sorted(stamps, reverse=(order == "desc"))
