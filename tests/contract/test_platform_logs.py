"""Platform logs and their filter values: the same question gives the same answer on every backend.

Every line is found by where it ran (cluster, Kubernetes namespace, pod, container, pod labels), component lines
included. Each test reads its own time slot and names its own clusters (tests/contract/data.py), so a query with
no coordinate filter still sees only this test's lines on a backend shared by the session.
"""

from __future__ import annotations

import base64
import dataclasses
import json

import pytest

from adapters.protocols import InvalidCursor
from domain.model import TOTAL_CAP, Identity, LogRecord, TimeRange
from domain.platform import (
    PLATFORM_FILTERS,
    FilterValue,
    FilterValuesQuery,
    PlatformLogsQuery,
    without_own_selection,
)
from tests.contract.data import MS, SECOND, placed, platform_log, slot_start, slot_window, who


def bodies(page) -> list[str]:
    return [record.body for record in page.items]


def query(ns: str, **fields) -> PlatformLogsQuery:
    """A query over this test's slot, oldest first unless told."""
    return PlatformLogsQuery(**{"range": slot_window(ns), "sort": "asc", **fields})


async def platform(subject, q: PlatformLogsQuery):
    return await subject.platform_logs.query_platform_logs(q)


async def values(subject, q: PlatformLogsQuery, name: str, search: str = "", most: int = 100):
    """Filter values as the service asks: the filter's own selection cleared first."""
    return await subject.platform_logs.platform_filter_values(
        FilterValuesQuery(without_own_selection(q, name), name, search, most)
    )


def listed(answer) -> list[tuple[str, int]]:
    return [(each.value, each.count) for each in answer.values]


async def load_fleet(subject) -> None:
    """Six lines over two clusters, three namespaces, four pods and two containers (one line each second)."""
    ns = subject.namespace
    a = placed(ns, "east", "kube-system", "coredns-0", "coredns", {"app": "dns", "tier": "infra"})
    b = placed(ns, "east", "kube-system", "proxy-0", "proxy", {"app": "proxy", "tier": "infra"})
    c = placed(ns, "west", "kube-system", "coredns-1", "coredns", {"app": "dns", "tier": "edge"})
    d = placed(ns, "west", "ingress", "nginx-0", "controller", {"app": "nginx"})
    e = placed(ns, "east", "cert-manager", "cm-0", "controller", {"app": "cert", "tier": "infra"})
    await subject.load(
        logs=[
            platform_log(ns, 1 * SECOND, "dns east", a),
            platform_log(ns, 2 * SECOND, "proxy east", b, "WARN"),
            platform_log(ns, 3 * SECOND, "dns west", c, "ERROR"),
            platform_log(ns, 4 * SECOND, "nginx west", d),
            platform_log(ns, 5 * SECOND, "cert east", e, "DEBUG"),
            platform_log(ns, 6 * SECOND, "dns east again", a, "ERROR"),
        ]
    )


# ------------------------------------------------------------------------------------------------- the query


async def test_each_coordinate_filter_selects_its_lines(subject):
    await load_fleet(subject)
    ns = subject.namespace
    assert bodies(await platform(subject, query(ns, clusters=(f"west-{ns}",)))) == ["dns west", "nginx west"]
    assert bodies(await platform(subject, query(ns, namespaces=(f"ingress-{ns}",)))) == ["nginx west"]
    assert bodies(await platform(subject, query(ns, pods=("coredns-0",)))) == ["dns east", "dns east again"]
    assert bodies(await platform(subject, query(ns, containers=("controller",)))) == ["nginx west", "cert east"]


async def test_alternatives_within_a_filter_and_filters_combined(subject):
    await load_fleet(subject)
    ns = subject.namespace
    either = query(ns, namespaces=(f"ingress-{ns}", f"cert-manager-{ns}"))
    assert bodies(await platform(subject, either)) == ["nginx west", "cert east"]
    combined = query(ns, clusters=(f"east-{ns}",), namespaces=(f"kube-system-{ns}",), containers=("coredns",))
    assert bodies(await platform(subject, combined)) == ["dns east", "dns east again"]
    nothing = query(ns, clusters=(f"west-{ns}",), pods=("coredns-0",))
    page = await platform(subject, nothing)
    assert (bodies(page), page.total) == ([], 0)


async def test_labels_match_only_when_every_pair_does(subject):
    await load_fleet(subject)
    ns = subject.namespace
    dns = query(ns, labels=(("app", "dns"),))
    assert bodies(await platform(subject, dns)) == ["dns east", "dns west", "dns east again"]
    both = query(ns, labels=(("app", "dns"), ("tier", "infra")))
    assert bodies(await platform(subject, both)) == ["dns east", "dns east again"]
    # A pod without the key never matches a pair naming it.
    assert bodies(await platform(subject, query(ns, labels=(("tier", "edge"),)))) == ["dns west"]
    assert bodies(await platform(subject, query(ns, labels=(("app", "nginx"), ("tier", "infra"))))) == []


async def test_a_line_without_placement_matches_no_coordinate_filter_but_shows_without_any(subject):
    ns = subject.namespace
    bare = LogRecord(slot_start(ns) + 2 * SECOND, f"unplaced {ns}", Identity())
    await subject.load(logs=[platform_log(ns, 1 * SECOND, f"placed {ns}", placed(ns)), bare])
    everything = await platform(subject, query(ns))
    assert bodies(everything) == [f"placed {ns}", f"unplaced {ns}"]
    assert everything.total == 2
    for narrowed in (
        query(ns, clusters=(f"east-{ns}",)),
        query(ns, namespaces=(f"kube-system-{ns}",)),
        query(ns, pods=("coredns-0",)),
        query(ns, containers=("coredns",)),
        query(ns, labels=(("app", "coredns"),)),
    ):
        assert bodies(await platform(subject, narrowed)) == [f"placed {ns}"]


async def test_component_lines_are_platform_lines_too(subject):
    ns = subject.namespace
    component = LogRecord(slot_start(ns) + SECOND, "cart says hi", who(ns))
    await subject.load(logs=[component])
    (got,) = (await platform(subject, query(ns, namespaces=(f"dp-{ns}-prod",)))).items
    assert got.body == "cart says hi"
    assert got.identity == component.identity  # its OpenChoreo scope travels along


async def test_lines_carry_their_placement_back(subject):
    ns = subject.namespace
    where = placed(ns, labels={"app": "dns", "k8s-app": "kube-dns", "pod-template-hash": "5d78c9869d"})
    record = platform_log(ns, SECOND + 123_456_789, "hello", where, "WARN")
    await subject.load(logs=[record])
    (got,) = (await platform(subject, query(ns, clusters=(where.cluster,)))).items
    assert got.ts_ns == record.ts_ns
    assert (got.body, got.level) == ("hello", "WARN")
    assert got.identity == where
    assert (got.identity.node, got.identity.pod_ip, got.identity.image) == (where.node, where.pod_ip, where.image)
    assert got.identity.labels == where.labels  # sorted pairs, as Identity holds them


#: Backends whose documented semantics differ from the contract here, and what they do instead (asserted).
PHRASE_DIFFERS: dict[str, str] = {
    "datadog": "full-text search is case-insensitive (Log Search Syntax: free text), so a phrase also matches "
    "its other-case spellings, and it matches words, so a phrase inside a longer word is not a documented match",
}


async def test_phrase_is_a_case_sensitive_substring(subject):
    ns = subject.namespace
    where = placed(ns)
    await subject.load(
        logs=[
            platform_log(ns, 1 * SECOND, "Payment declined", where),
            platform_log(ns, 2 * SECOND, "payment declined", where),
            platform_log(ns, 3 * SECOND, "prepayments", where),
            platform_log(ns, 4 * SECOND, "nothing here", where),
        ]
    )
    page = await platform(subject, query(ns, phrase="payment"))
    if subject.kind in PHRASE_DIFFERS:
        assert bodies(page)[:2] == ["Payment declined", "payment declined"]
    else:
        assert bodies(page) == ["payment declined", "prepayments"]
        assert page.total == 2


async def test_levels_filter_and_error_includes_fatal(subject):
    ns = subject.namespace
    where = placed(ns)
    await subject.load(
        logs=[
            platform_log(ns, (i + 1) * SECOND, level.lower(), where, level)
            for i, level in enumerate(("DEBUG", "INFO", "WARN", "ERROR", "FATAL"))
        ]
    )
    assert bodies(await platform(subject, query(ns, levels=("ERROR",)))) == ["error", "fatal"]
    assert bodies(await platform(subject, query(ns, levels=("WARN", "DEBUG")))) == ["debug", "warn"]
    both = query(ns, levels=("ERROR",), phrase="fat", clusters=(where.cluster,))
    assert bodies(await platform(subject, both)) == ["fatal"]


async def test_order_limit_and_total(subject):
    ns = subject.namespace
    where = placed(ns)
    await subject.load(logs=[platform_log(ns, i * MS, f"line {i:03d}", where) for i in range(120)])
    desc = await platform(subject, query(ns, limit=5, sort="desc"))
    assert bodies(desc) == [f"line {i:03d}" for i in (119, 118, 117, 116, 115)]
    assert desc.total == 120
    asc = await platform(subject, query(ns, limit=3, clusters=(where.cluster,)))
    assert bodies(asc) == ["line 000", "line 001", "line 002"]
    assert asc.total == 120


async def test_total_is_capped(subject):
    ns = subject.namespace
    where = placed(ns)
    await subject.load(logs=[platform_log(ns, i * MS, f"line {i}", where) for i in range(TOTAL_CAP + 50)])
    page = await platform(subject, query(ns, limit=1, clusters=(where.cluster,)))
    assert page.total == TOTAL_CAP


@pytest.mark.parametrize("sort", ["asc", "desc"])
async def test_cursor_walks_every_line_once_in_order(subject, sort):
    ns = subject.namespace
    one, other = placed(ns, pod="a-0"), placed(ns, pod="b-0")
    # Pairs share a timestamp (from two pods), so the tiebreak is exercised at page edges.
    await subject.load(
        logs=[platform_log(ns, (i // 2) * MS, f"line {i:03d}", one if i % 2 else other) for i in range(95)]
    )
    seen, cursor, pages = [], "", 0
    while True:
        page = await platform(subject, query(ns, limit=10, sort=sort, cursor=cursor, namespaces=(one.pod_namespace,)))
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
    where = placed(ns)
    await subject.load(logs=[platform_log(ns, i * MS, f"line {i}", where) for i in range(5)])
    first = query(ns, limit=2, clusters=(where.cluster,))
    page = await platform(subject, first)
    assert page.next_cursor
    for other in (
        dataclasses.replace(first, phrase="line"),
        dataclasses.replace(first, clusters=(where.cluster, "another")),
        dataclasses.replace(first, labels=(("app", "coredns"),)),
        dataclasses.replace(first, sort="desc"),
    ):
        with pytest.raises(InvalidCursor):
            await platform(subject, dataclasses.replace(other, cursor=page.next_cursor))
    with pytest.raises(InvalidCursor):
        await platform(subject, dataclasses.replace(first, cursor="not-a-cursor"))
    # The same query with its cursor goes on where the page ended.
    rest = await platform(subject, dataclasses.replace(first, cursor=page.next_cursor))
    assert bodies(page) + bodies(rest)[:1] == ["line 0", "line 1", "line 2"]


async def test_a_cursor_with_a_forged_position_is_refused(subject):
    ns = subject.namespace
    where = placed(ns)
    await subject.load(logs=[platform_log(ns, i * MS, f"line {i}", where) for i in range(5)])
    first = query(ns, limit=2, clusters=(where.cluster,))
    issued = json.loads(base64.urlsafe_b64decode((await platform(subject, first)).next_cursor + "=="))
    forged = base64.urlsafe_b64encode(json.dumps({"q": issued["q"], "p": [1.5, "x"]}).encode()).decode().rstrip("=")
    with pytest.raises(InvalidCursor):
        await platform(subject, dataclasses.replace(first, cursor=forged))


async def test_the_time_range_is_inclusive(subject):
    ns = subject.namespace
    where = placed(ns)
    start = slot_start(ns) + 5 * SECOND
    await subject.load(
        logs=[
            platform_log(ns, 4 * SECOND, "before", where),
            platform_log(ns, 5 * SECOND, "at start", where),
            platform_log(ns, 7 * SECOND, "at end", where),
            platform_log(ns, 8 * SECOND, "after", where),
        ]
    )
    page = await platform(subject, query(ns, clusters=(where.cluster,), range=TimeRange(start, start + 2 * SECOND)))
    assert bodies(page) == ["at start", "at end"]


# ------------------------------------------------------------------------------------------------ filter values


EXPECTED_VALUES = {
    # value -> count among the six lines of load_fleet, most frequent first then value ascending
    "clusterInstance": [("east-{ns}", 4), ("west-{ns}", 2)],
    "namespace": [("kube-system-{ns}", 4), ("cert-manager-{ns}", 1), ("ingress-{ns}", 1)],
    "podName": [("coredns-0", 2), ("cm-0", 1), ("coredns-1", 1), ("nginx-0", 1), ("proxy-0", 1)],
    "containerName": [("coredns", 3), ("controller", 2), ("proxy", 1)],
    "level": [("ERROR", 2), ("INFO", 2), ("DEBUG", 1), ("WARN", 1)],
    "labels.app": [("dns", 3), ("cert", 1), ("nginx", 1), ("proxy", 1)],
    "labels.tier": [("infra", 4), ("edge", 1)],  # the nginx pod has no tier: not counted
}


async def test_filter_values_count_lines_per_value(subject):
    """Every filter over one fleet (loaded once: the suite runs on four backends)."""
    await load_fleet(subject)
    ns = subject.namespace
    for name in [*PLATFORM_FILTERS, "labels.app", "labels.tier"]:
        expected = [(value.format(ns=ns), count) for value, count in EXPECTED_VALUES[name]]
        answer = await values(subject, query(ns), name)
        assert answer.filter == name
        assert listed(answer) == expected, name
        assert answer.total_values == len(expected), name
        assert all(isinstance(each, FilterValue) for each in answer.values)


async def test_filter_values_skip_lines_without_a_value(subject):
    ns = subject.namespace
    await subject.load(
        logs=[
            platform_log(ns, 1 * SECOND, "placed", placed(ns)),
            LogRecord(slot_start(ns) + 2 * SECOND, "unplaced", Identity()),
        ]
    )
    for name in ("clusterInstance", "namespace", "podName", "containerName", "labels.app"):
        answer = await values(subject, query(ns), name)
        assert [each.count for each in answer.values] == [1], name
    if subject.kind in LEVEL_DIFFERS:
        assert listed(await values(subject, query(ns), "level")) == [("INFO", 2)]
    else:
        assert listed(await values(subject, query(ns), "level")) == [("INFO", 1)]  # the bare line has no level


#: Backends whose documented semantics differ from the contract here, and what they do instead (asserted).
LEVEL_DIFFERS = {
    "datadog": "every Datadog log has a status, `info` when none was sent (Log status remapper), so a line "
    "without a level is counted (and filtered, and read back) as INFO",
}


async def test_filter_values_honour_the_rest_of_the_query(subject):
    await load_fleet(subject)
    ns = subject.namespace
    east = query(ns, clusters=(f"east-{ns}",))
    assert listed(await values(subject, east, "containerName")) == [("coredns", 2), ("controller", 1), ("proxy", 1)]
    errors = query(ns, levels=("ERROR",))
    assert listed(await values(subject, errors, "podName")) == [("coredns-0", 1), ("coredns-1", 1)]
    phrase = query(ns, phrase="dns")
    assert listed(await values(subject, phrase, "clusterInstance")) == [(f"east-{ns}", 2), (f"west-{ns}", 1)]
    infra = query(ns, labels=(("tier", "infra"),))
    assert listed(await values(subject, infra, "labels.app")) == [("dns", 2), ("cert", 1), ("proxy", 1)]
    narrow = dataclasses.replace(slot_window(ns), end_ns=slot_start(ns) + 3 * SECOND)
    assert listed(await values(subject, query(ns, range=narrow), "level")) == [
        ("ERROR", 1),
        ("INFO", 1),
        ("WARN", 1),
    ]


async def test_filter_values_clear_their_own_selection(subject):
    """The picker lists the alternatives to what is chosen: the filter's own choice is cleared, the others
    still narrow (through without_own_selection, as the service calls it)."""
    await load_fleet(subject)
    ns = subject.namespace
    chosen = query(ns, clusters=(f"west-{ns}",), containers=("coredns",), labels=(("app", "dns"),), levels=("ERROR",))
    assert listed(await values(subject, chosen, "clusterInstance")) == [(f"east-{ns}", 1), (f"west-{ns}", 1)]
    assert listed(await values(subject, chosen, "containerName")) == [("coredns", 1)]
    assert listed(await values(subject, chosen, "labels.app")) == [("dns", 1)]
    assert listed(await values(subject, chosen, "level")) == [("ERROR", 1)]
    other_label = dataclasses.replace(chosen, labels=(("app", "dns"), ("tier", "edge")), levels=())
    # labels.tier clears only the tier pair: app=dns still narrows.
    assert listed(await values(subject, other_label, "labels.tier")) == [("edge", 1)]
    wide = dataclasses.replace(chosen, clusters=(), levels=())
    assert listed(await values(subject, wide, "labels.tier")) == [("infra", 2), ("edge", 1)]


async def test_value_search_max_values_and_total_values(subject):
    await load_fleet(subject)
    ns = subject.namespace
    found = await values(subject, query(ns), "podName", search="CORE")
    assert listed(found) == [("coredns-0", 2), ("coredns-1", 1)]
    assert found.total_values == 2
    capped = await values(subject, query(ns), "podName", most=2)
    assert listed(capped) == [("coredns-0", 2), ("cm-0", 1)]
    assert capped.total_values == 5
    none = await values(subject, query(ns), "podName", search="zzz")
    assert (listed(none), none.total_values) == ([], 0)
