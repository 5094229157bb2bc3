"""One tail's event stream, driven as an ASGI response without a server: the order of events, the duration bound
on a tail that is never idle, the cut of a client that stops reading, and a client that goes away."""

from __future__ import annotations

import asyncio
from typing import Any

from devservers.sample import identity
from domain.model import ComponentScope, LogRecord
from observer.tail import TailHub, TailSettings
from observer.tail.hub import SLOW_CONSUMER
from observer.tail.match import Filter
from observer.tail.render import ComponentEntries
from observer.tail.stream import TailStream

CART = identity("cart")
FAST = TailSettings(heartbeat_seconds=60, end_grace_seconds=0.05, queue_lines=10)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Client:
    """The ASGI side of one response: what was sent, a switch to stop taking it, and a way to hang up."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.reading = asyncio.Event()
        self.reading.set()
        self.gone = asyncio.Event()

    async def send(self, message: dict[str, Any]) -> None:
        await self.reading.wait()
        self.sent.append(message)

    async def receive(self) -> dict[str, Any]:
        await self.gone.wait()
        return {"type": "http.disconnect"}

    def events(self) -> list[tuple[str, str]]:
        body = b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body").decode()
        out = []
        for block in body.split("\n\n"):
            if block.startswith("event: "):
                name, data = block.split("\n", 1)
                out.append((name[len("event: ") :], data[len("data: ") :]))
        return out

    @property
    def finished(self) -> bool:
        return bool(self.sent) and self.sent[-1].get("more_body") is False


def lines(*texts: str) -> list[LogRecord]:
    return [LogRecord(n, text, CART, level="INFO") for n, text in enumerate(texts)]


def start(hub: TailHub, clock: Clock, seconds: int = 10) -> tuple[TailStream, Client, asyncio.Task[None]]:
    tail = hub.subscribe(Filter.of(ComponentScope("acme"), (), ""), rate=1000)
    stream = TailStream(hub, tail, seconds=seconds, render=ComponentEntries(), settings=hub.settings, clock=clock)
    client = Client()
    return stream, client, asyncio.ensure_future(stream({}, client.receive, client.send))


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def test_a_tail_that_is_never_idle_still_ends_at_its_duration():
    async def scenario() -> list[tuple[str, str]]:
        clock, hub = Clock(), TailHub(FAST)
        _, client, task = start(hub, clock, seconds=10)
        for second in range(12):
            clock.now = float(second)
            hub.publish(lines(f"line {second}"))
            await settle()
        await asyncio.wait_for(task, 5)
        assert client.finished and len(hub) == 0
        return client.events()

    events = asyncio.run(scenario())
    assert events[0][0] == "start"
    logs = [data for name, data in events if name == "log"]
    # the line of second 10 was taken when the time ran out, before the writer woke to see it: it goes out
    # before the end; the line of second 11 came after the tail had left the hub
    assert [f'"log":"line {n}"' in data for n, data in enumerate(logs)] == [True] * 11
    assert events[-1][0] == "end" and '"reason":"max duration"' in events[-1][1]


def test_a_client_that_stops_reading_is_cut_off_and_its_slot_freed():
    async def scenario() -> tuple[TailStream, Client, TailHub]:
        clock, hub = Clock(), TailHub(FAST)
        stream, client, task = start(hub, clock)
        await settle()
        client.reading.clear()  # from here on the client takes nothing
        for batch in range(5):
            hub.publish(lines(*(f"{batch}-{i}" for i in range(4))))
            await settle()
        await asyncio.wait_for(task, 5)  # the end is offered for end_grace_seconds, then given up
        return stream, client, hub

    stream, client, hub = asyncio.run(scenario())
    assert stream.tail.ended == SLOW_CONSUMER
    assert len(hub) == 0 and not client.finished
    assert stream.tail.discarded > 0


def test_a_client_that_goes_away_ends_the_tail_without_an_end_event():
    async def scenario() -> tuple[Client, TailHub]:
        clock, hub = Clock(), TailHub(FAST)
        _, client, task = start(hub, clock)
        hub.publish(lines("one"))
        await settle()
        client.gone.set()
        await asyncio.wait_for(task, 5)
        return client, hub

    client, hub = asyncio.run(scenario())
    assert [name for name, _ in client.events()] == ["start", "log"]
    assert len(hub) == 0 and not client.finished
