"""domain/drain.py: masking, and Drain clustering measured against a stream of known templates."""

from __future__ import annotations

from collections import defaultdict

import pytest

from domain.drain import MAX_LINE_CHARS, MAX_TOKENS, WILDCARD, Cluster, Drain, DrainSettings, mask, tokens
from tests.unit.drain_stream import TEMPLATES, stream


@pytest.mark.parametrize(
    ("line", "masked"),
    [
        ("took 12 tries", "took <NUM> tries"),
        ("total 129.90 EUR, 1,024 rows", "total <NUM> EUR, <NUM> rows"),
        ("GET /api/items/42 200", "GET /api/items/<NUM> <NUM>"),
        ("request_id=00a1b2c3d4e5f607 trace 0x1F", "request_id=<HEX> trace <HEX>"),
        ("id deadbeef12 and word deadbeef", "id <HEX> and word deadbeef"),
        ("job 123e4567-e89b-12d3-a456-426614174000 done", "job <UUID> done"),
        ("from 10.0.0.12:8080 and 192.168.1.1", "from <IP> and <IP>"),
        ("from fe80::1 or 2001:db8::8a2e:370:7334", "from <IP> or <IP>"),
        ("dial db-3.internal:5432 and api.example.com", "dial <HOST> and <HOST>"),
        ("fetch https://api.example.com/v1/x?y=1 now", "fetch <URL> now"),
        ("mail bob42@example.com sent", "mail <EMAIL> sent"),
        ("took 13ms, then 1.5s, then 2h", "took <DURATION>, then <DURATION>, then <DURATION>"),
        ("wrote 12KB of 3GiB", "wrote <SIZE> of <SIZE>"),
        ("at 2024-05-01T12:00:01.123Z and 12:30:45", "at <TS> and <TS>"),
        ("bad value \"a b c\" and 'x y'", "bad value <STR> and <STR>"),
        ("can't open 'file' won't retry", "can't open <STR> won't retry"),
        ('{"msg":"pool stats 3","id":"abc","n":4}', '{"msg":"pool stats <NUM>","id":<STR>,"n":<NUM>}'),
        ("eu-west-1 user42 v1.2.3 orders.table", "eu-west-<NUM> user42 v1.2.3 orders.table"),
        ("nothing to mask here", "nothing to mask here"),
    ],
)
def test_masking(line: str, masked: str) -> None:
    assert mask(line) == masked


def test_a_line_s_cost_is_bounded() -> None:
    long_line = "word " * (MAX_LINE_CHARS // 2)
    assert len(mask(long_line)) <= MAX_LINE_CHARS
    parts = tokens(mask(long_line))
    assert len(parts) == MAX_TOKENS and parts[-1] == WILDCARD


def _grouping_accuracy(truth: list[int], clusters: list[int]) -> tuple[float, int]:
    """Loghub's grouping accuracy: a line is right when its cluster holds exactly the lines of its true
    template (so a split template counts against it as much as a merged one); and how many clusters hold
    lines of more than one true template."""
    by_cluster: dict[int, set[int]] = defaultdict(set)
    by_truth: dict[int, set[int]] = defaultdict(set)
    for line, (true, cluster) in enumerate(zip(truth, clusters)):
        by_cluster[cluster].add(line)
        by_truth[true].add(line)
    right = sum(1 for true, cluster in zip(truth, clusters) if by_cluster[cluster] == by_truth[true])
    impure = sum(1 for members in by_cluster.values() if len({truth[line] for line in members}) > 1)
    return right / len(truth), impure


def test_lines_land_in_their_true_template() -> None:
    lines = stream(6000)
    assert len({line for _, _, line in lines}) > 5000  # several thousand distinct lines
    drain = Drain()

    assigned = [drain.add(line).id for _, _, line in lines]

    accuracy, impure = _grouping_accuracy([true for true, _, _ in lines], assigned)
    assert accuracy >= 0.95
    assert impure == 0
    assert len(drain.clusters) == len(TEMPLATES) and drain.overflow == 0


def test_templates_wildcard_what_masking_cannot_know() -> None:
    drain = Drain()
    for name in ("alice", "bob", "carol"):
        cluster = drain.add(f"user session started for {name} from 10.1.2.3")
    assert cluster.template == "user session started for <*> from <IP>"
    assert cluster.example == "user session started for alice from 10.1.2.3"


def test_match_finds_without_changing() -> None:
    drain = Drain()
    first = drain.add("worker 3 finished job in 12ms with status ok")
    drain.add("worker 4 finished job in 30ms with status failed")
    drain.take_dirty()

    assert drain.match("worker 9 finished job in 1s with status cancelled") is first
    assert drain.match("something else entirely") is None
    assert drain.take_dirty() == [] and len(drain.clusters) == 1


def test_restore_rebuilds_the_tree() -> None:
    drain = Drain()
    for _, _, line in stream(500):
        drain.add(line)
    stored = [Cluster(c.id, list(c.tokens), c.path, c.example, c.catch_all) for c in drain.take_dirty()]

    again = Drain()
    again.restore(stored)

    for _, _, line in stream(300, seed=21):
        found = again.match(line)
        assert found is not None and found.template == drain.add(line).template
    assert again.add("a brand new kind of line").id == max(c.id for c in stored) + 1


def test_beyond_max_clusters_lines_go_to_a_catch_all_per_length_counted() -> None:
    drain = Drain(DrainSettings(max_clusters=3))
    kinds = [f"alpha{index} beta{index} gamma{index}" for index in range(6)]
    assigned = [drain.add(line) for line in kinds + ["one two", "three four"]]

    assert len({cluster.id for cluster in assigned[:3]}) == 3
    catch_all = assigned[3]
    assert catch_all.catch_all and assigned[4] is catch_all and assigned[5] is catch_all
    assert catch_all.template == f"{WILDCARD} {WILDCARD} {WILDCARD}"
    assert assigned[6].catch_all and assigned[6] is assigned[7] and assigned[6] is not catch_all
    assert drain.overflow == 5  # every line past the bound counted, none dropped
    assert catch_all.size == 3


def test_beyond_max_children_lines_follow_the_wildcard_child() -> None:
    drain = Drain(DrainSettings(max_children=4))
    for word in ("apple", "banana", "cherry", "damson", "elder", "fig"):
        drain.add(f"{word} was eaten by the cat")
    # Three distinct first tokens have children of their own; the rest share the `<*>` child, where they
    # merge into one template instead of growing the tree.
    templates = sorted(cluster.template for cluster in drain.clusters.values())
    assert templates == [
        "<*> was eaten by the cat",
        "apple was eaten by the cat",
        "banana was eaten by the cat",
        "cherry was eaten by the cat",
    ]


def test_the_cache_of_masked_lines_is_bounded() -> None:
    drain = Drain(DrainSettings(cache_size=10))
    for index in range(100):
        drain.add(f"line with word{index} inside")
    assert len(drain._cache) <= 10
