"""The live tail's matching and fan-out without a server: which tails a record reaches, in what order, the rate
bound, the slow-consumer cut, the cap, and the sink seam (only delivered batches, each once)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from adapters.protocols import WriteResult
from devservers.sample import COMPONENTS, ENVIRONMENTS, PROJECT_UID, identity
from domain.model import ComponentScope, LogRecord, WorkflowScope
from observer.tail import TailHub, TailingSink, TailSettings, TooManyTails
from observer.tail.hub import SHUTDOWN, SLOW_CONSUMER
from observer.tail.match import Filter

CART, FRONTEND = identity("cart"), identity("frontend")
CART_DEV = identity("cart", "dev")
RUN = replace(
    identity("cart"),
    project="",
    project_uid="",
    component="",
    component_uid="",
    environment="",
    environment_uid="",
    workflow_run="build-7",
    task="compile-step",
    container="main",
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def lines(who, *texts: str, level: str = "INFO") -> list[LogRecord]:
    return [LogRecord(i, text, who, level=level) for i, text in enumerate(texts)]


def component(uid: str = "", env: str = "", project: str = "") -> ComponentScope:
    return ComponentScope("acme", project, uid, env)


@pytest.mark.parametrize(
    ("scope", "covered"),
    [
        (component(COMPONENTS["cart"]), {"cart", "cart-dev"}),
        (component(COMPONENTS["cart"], ENVIRONMENTS["prod"]), {"cart"}),
        (component(env=ENVIRONMENTS["dev"]), {"cart-dev"}),
        (component(project=PROJECT_UID), {"cart", "frontend", "cart-dev"}),
        (component(), {"cart", "frontend", "cart-dev"}),  # the namespace, workflow runs left out
        (ComponentScope("globex"), set()),
        (WorkflowScope("acme"), {"run"}),
        (WorkflowScope("acme", "build-7", "compile"), {"run"}),
        (WorkflowScope("acme", "build-8"), set()),
        (WorkflowScope("acme", "", "test"), set()),
    ],
)
def test_a_tail_covers_what_the_same_logs_query_would(scope, covered):
    who = {"cart": CART, "frontend": FRONTEND, "cart-dev": CART_DEV, "run": RUN}
    hub = TailHub()
    tail = hub.subscribe(Filter.of(scope, (), ""), rate=1000)
    for name, each in who.items():
        hub.publish(lines(each, name))
    assert {record.body for record in tail.buffer} == covered


def test_argo_sidecars_are_not_a_workflow_tails_lines():
    hub = TailHub()
    tail = hub.subscribe(Filter.of(WorkflowScope("acme"), (), ""), rate=1000)
    hub.publish(lines(replace(RUN, container="wait"), "sidecar"))
    assert not tail.buffer


def test_levels_and_phrase_filter_like_the_logs_query():
    hub = TailHub()
    tail = hub.subscribe(Filter.of(component(COMPONENTS["cart"]), ("ERROR",), "pay"), rate=1000)
    hub.publish(
        [
            *lines(CART, "pay ok"),
            *lines(CART, "pay failed", "boom", level="ERROR"),
            *lines(CART, "pay crashed", level="FATAL"),
            *lines(CART, "Pay upper", level="ERROR"),  # case-sensitive, as the query
        ]
    )
    assert [record.body for record in tail.buffer] == ["pay failed", "pay crashed"]


def test_lines_keep_their_order_across_batches_and_streams():
    hub = TailHub()
    tail = hub.subscribe(Filter.of(component(COMPONENTS["cart"]), (), ""), rate=10_000)
    other_pod = replace(CART, pod="cart-prod-1")
    hub.publish([*lines(CART, "a1", "a2"), *lines(FRONTEND, "x"), *lines(other_pod, "b1")])
    hub.publish(lines(CART, "a3"))
    assert [record.body for record in tail.buffer] == ["a1", "a2", "b1", "a3"]


def test_lines_over_the_rate_are_dropped_and_counted_then_the_bucket_refills():
    clock = Clock()
    hub = TailHub(clock=clock)
    tail = hub.subscribe(Filter.of(component(), (), ""), rate=10)
    hub.publish(lines(CART, *(f"l{i}" for i in range(15))))
    assert (len(tail.buffer), tail.dropped, tail.dropped_total) == (10, 5, 5)
    clock.now += 0.5  # half a second: five lines' worth
    hub.publish(lines(CART, *(f"m{i}" for i in range(8))))
    assert (len(tail.buffer), tail.dropped_total) == (15, 8)


def test_a_full_buffer_cuts_that_tail_off_and_only_that_one():
    hub = TailHub(TailSettings(queue_lines=5))
    slow = hub.subscribe(Filter.of(component(COMPONENTS["cart"]), (), ""), rate=1000)
    steady = hub.subscribe(Filter.of(component(COMPONENTS["cart"]), (), ""), rate=1000)
    hub.publish(lines(CART, "1", "2", "3"))
    steady.take(100)  # the steady one reads, the slow one does not
    hub.publish(lines(CART, "4", "5", "6"))
    assert slow.ended == SLOW_CONSUMER and slow.done.is_set()
    assert (slow.discarded, len(slow.buffer)) == (3, 0)
    assert [record.body for record in steady.take(100)] == ["4", "5", "6"] and not steady.ended
    assert len(hub) == 1
    hub.publish(lines(CART, "7"))
    assert not slow.buffer


def test_the_cap_refuses_one_more_and_an_unsubscribe_frees_a_slot():
    hub = TailHub(TailSettings(max_tails=2))
    first = hub.subscribe(Filter.of(component(), (), ""), rate=1)
    hub.subscribe(Filter.of(component(COMPONENTS["cart"]), (), ""), rate=1)
    with pytest.raises(TooManyTails):
        hub.subscribe(Filter.of(component(), (), ""), rate=1)
    hub.unsubscribe(first)
    hub.unsubscribe(first)  # twice is harmless
    hub.subscribe(Filter.of(component(), (), ""), rate=1)
    assert len(hub) == 2


def test_close_ends_every_tail_and_refuses_new_ones():
    hub = TailHub()
    tails = [hub.subscribe(Filter.of(component(), (), ""), rate=1) for _ in range(3)]
    hub.close()
    assert [tail.ended for tail in tails] == [SHUTDOWN] * 3
    assert len(hub) == 0
    with pytest.raises(TooManyTails):
        hub.subscribe(Filter.of(component(), (), ""), rate=1)


class Store:
    """A sink that answers what it is told to, recording the batches it was given."""

    def __init__(self) -> None:
        self.result = WriteResult.delivered()
        self.batches: list[str] = []

    async def write(self, *, batch_id, logs=(), events=(), spans=(), metrics=()) -> WriteResult:
        self.batches.append(batch_id)
        return self.result


def test_the_sink_shows_delivered_batches_once_and_passes_every_result_on():
    hub, store = TailHub(), Store()
    sink = TailingSink(store, hub)
    tail = hub.subscribe(Filter.of(component(), (), ""), rate=1000)

    async def scenario() -> list[str]:
        store.result = WriteResult.retry(1.0, "busy")
        outcomes = [(await sink.write(batch_id="b1", logs=lines(CART, "one"))).outcome]
        store.result = WriteResult.delivered()
        outcomes.append((await sink.write(batch_id="b1", logs=lines(CART, "one"))).outcome)
        outcomes.append((await sink.write(batch_id="b1", logs=lines(CART, "one"))).outcome)  # redelivered
        store.result = WriteResult.dropped("bad", 1)
        outcomes.append((await sink.write(batch_id="b2", logs=lines(CART, "two"))).outcome)
        return outcomes

    assert asyncio.run(scenario()) == ["retry", "delivered", "delivered", "dropped"]
    assert store.batches == ["b1", "b1", "b1", "b2"]
    assert [record.body for record in tail.buffer] == ["one"]
