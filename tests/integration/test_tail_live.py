"""Live tail (`POST /api/v1alpha1/logs/tail`) against the real `observer up`: lines sent over OTLP after a tail
started arrive in order and only for its scope, a client that stops reading is cut off with an `end` event while
another tail keeps receiving everything, the duration bound ends the stream, heartbeats keep an idle one alive,
and what a tail cannot use is refused before any stream starts.

The process runs with small tail bounds (OBSERVER_TAIL_*), so a slow consumer is found after a few megabytes.
"""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from collectors.otlp.encode import encode_batch
from devservers.observer import AllInOne, observer_up
from devservers.sample import NS, identity
from domain.model import LogRecord
from domain.timeutil import now_ns

PATH = "/api/v1alpha1/logs/tail"
CART = {"namespace": NS, "project": "shop", "component": "cart", "environment": "prod"}
QUEUE_LINES = 300
WAIT_S = 20.0  # the most any expected event may take; a failure, never a pace the test relies on


@pytest.fixture(scope="module")
def observer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AllInOne]:
    env = {
        "OBSERVER_TAIL_QUEUE_LINES": str(QUEUE_LINES),
        "OBSERVER_TAIL_HEARTBEAT_SECONDS": "0.3",
        "OBSERVER_TAIL_END_GRACE_SECONDS": "30",
    }
    with observer_up(tmp_path_factory.mktemp("tail") / "data", env=env) as server:
        # The names become known from telemetry: a tail is resolved at start, like a query.
        send(server, [line("cart", "seed"), line("frontend", "seed")])
        yield server


def line(component: str, text: str, level: str = "INFO") -> LogRecord:
    return LogRecord(now_ns(), text, identity(component), level=level)


def send(server: AllInOne, records: list[LogRecord]) -> None:
    for request in encode_batch(logs=records):
        response = httpx.post(
            f"{server.otlp}/v1/logs",
            content=request.message().SerializeToString(),
            headers={"Content-Type": "application/x-protobuf"},
            timeout=30,
        )
        assert response.status_code == 200, response.text


@dataclass
class Tail:
    """A tail read on a thread: every event (name, data) and heartbeat comment lands in `events`."""

    server: AllInOne
    body: dict[str, Any]
    events: queue.Queue[tuple[str, Any]] = field(default_factory=queue.Queue)
    status: int = 0

    def start(self) -> Tail:
        opened = threading.Event()
        threading.Thread(target=self._read, args=(opened,), daemon=True).start()
        assert opened.wait(WAIT_S), "the tail did not answer"
        return self

    def _read(self, opened: threading.Event) -> None:
        with httpx.Client(timeout=WAIT_S) as client, client.stream("POST", self.server.api + PATH, json=self.body) as r:
            self.status = r.status_code
            opened.set()
            name = ""
            for raw in r.iter_lines():
                if raw.startswith(":"):
                    self.events.put(("comment", raw[1:].strip()))
                elif raw.startswith("event: "):
                    name = raw[len("event: ") :]
                elif raw.startswith("data: "):
                    self.events.put((name, json.loads(raw[len("data: ") :])))
        self.events.put(("closed", None))

    def next(self, *names: str) -> tuple[str, Any]:
        """The next event among `names` (others are skipped)."""
        while True:
            name, data = self.events.get(timeout=WAIT_S)
            if name in names or name == "closed":
                return name, data


def tail(server: AllInOne, **body: Any) -> Tail:
    started = Tail(server, {"searchScope": CART, **body}).start()
    assert started.status == 200
    assert started.next("start")[0] == "start"  # from here on, every line ingested is on its way
    return started


def test_a_line_sent_after_the_start_arrives_and_another_scopes_does_not(observer):
    cart = tail(observer)
    send(observer, [line("frontend", "not for this tail")])
    send(observer, [line("cart", "first"), line("cart", "second", level="ERROR")])
    send(observer, [line("cart", "third")])
    got = [cart.next("log")[1] for _ in range(3)]
    assert [entry["log"] for entry in got] == ["first", "second", "third"]
    assert got[1]["level"] == "ERROR"
    assert got[0]["metadata"]["componentName"] == "cart"  # the logs query's entry shape
    assert set(got[0]) >= {"timestamp", "log", "level", "metadata"}


def test_levels_and_phrase_filter_as_in_the_logs_query(observer):
    errors = tail(observer, logLevels=["ERROR"], searchPhrase="pay")
    send(observer, [line("cart", "pay ok"), line("cart", "pay failed", "ERROR"), line("cart", "boom", "ERROR")])
    send(observer, [line("cart", "pay crashed", "FATAL")])
    assert errors.next("log")[1]["log"] == "pay failed"
    assert errors.next("log")[1]["log"] == "pay crashed"  # FATAL counts as ERROR


def test_lines_over_the_rate_are_dropped_and_counted(observer):
    capped = tail(observer, maxLinesPerSecond=5)
    send(observer, [line("cart", f"burst {i:02d}") for i in range(50)])
    got = [capped.next("log", "dropped") for _ in range(6)]
    assert [name for name, _ in got] == ["log"] * 5 + ["dropped"]
    assert [data["log"] for _, data in got[:5]] == [f"burst {i:02d}" for i in range(5)]
    assert got[5][1] == {"count": 45, "total": 45}


def test_the_duration_bound_ends_the_stream(observer):
    short = tail(observer, maxSeconds=1)
    name, data = short.next("end")
    assert (name, data["reason"]) == ("end", "max duration")
    assert short.next("closed")[0] == "closed"


def test_an_idle_tail_gets_heartbeats(observer):
    idle = tail(observer, maxSeconds=5)
    assert idle.next("comment") == ("comment", "heartbeat")


def test_a_client_that_stops_reading_is_cut_off_while_another_keeps_receiving(observer):
    slow = _silent_tail(observer)
    steady = tail(observer, maxLinesPerSecond=10_000)
    batches, per_batch, text = 40, 100, "x" * 4000  # 16 MB: more than the sockets and the slow tail's queue hold
    for batch in range(batches):
        send(observer, [line("cart", f"{batch:03d}-{i:03d} {text}") for i in range(per_batch)])
    received = [steady.next("log")[1]["log"][:7] for _ in range(batches * per_batch)]
    assert received == [f"{b:03d}-{i:03d}" for b in range(batches) for i in range(per_batch)]
    events = _read_all(slow)  # the slow client reads again: what was sent, then the end
    end = json.loads(events[-1].split(b"data: ", 1)[1])
    assert end["reason"] == "slow consumer"
    assert end["discarded"] > 0 and end["lines"] < batches * per_batch


def _silent_tail(server: AllInOne) -> socket.socket:
    """A tail over a socket with a small receive buffer that, once the stream has started, reads nothing."""
    host, port = server.api.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    body = json.dumps({"searchScope": CART, "maxLinesPerSecond": 10_000}).encode()
    sock.sendall(
        f"POST {PATH} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    seen = b""
    while b"event: start" not in seen:
        seen += sock.recv(4096)
    return sock


def _read_all(sock: socket.socket) -> list[bytes]:
    """Everything the server sends until it closes, as events (chunk framing left in; events are split on it)."""
    sock.settimeout(WAIT_S)
    data = bytearray()
    deadline = time.monotonic() + 4 * WAIT_S
    while time.monotonic() < deadline:
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        data += chunk
    sock.close()
    return [each for each in bytes(data).split(b"\n\n") if b"event: " in each]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"searchScope": CART, "startTime": "2026-01-01T00:00:00Z"}, "unknown field startTime"),
        ({"searchScope": CART, "maxSeconds": 100_000}, "maxSeconds cannot exceed 3600"),
        ({"searchScope": CART, "maxLinesPerSecond": 0}, "maxLinesPerSecond must be a positive integer"),
        ({"searchScope": CART, "logLevels": ["LOUD"]}, "invalid log level 'LOUD'"),
        ({"searchScope": {"project": "shop"}}, "searchScope.namespace is required"),
        ({}, "searchScope is required"),
        ({"searchScope": {**CART, "component": "nope"}}, "component 'nope' not found"),
    ],
)
def test_what_a_tail_cannot_use_is_refused_before_any_stream(observer, body, message):
    response = httpx.post(observer.api + PATH, json=body, timeout=WAIT_S)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/json")
    assert message in response.json()["message"]


def test_the_route_is_documented_as_an_extension(observer):
    document = httpx.get(observer.api + "/openapi.json", timeout=WAIT_S).json()
    operation = document["paths"][PATH]["post"]
    assert operation["x-observer-extension"] is True
    assert "text/event-stream" in operation["responses"]["200"]["content"]


def test_scopes_list_what_the_registry_learned(observer):
    body = httpx.get(observer.api + "/api/v1alpha1/scopes", timeout=WAIT_S).json()
    (acme,) = [each for each in body["namespaces"] if each["name"] == NS]
    (shop,) = acme["projects"]
    assert {c["name"] for c in shop["components"]} >= {"cart", "frontend"}
    assert {"name": "prod"} in acme["environments"]


def test_an_open_tail_ends_with_shutdown_when_the_observer_stops(tmp_path):
    with observer_up(tmp_path / "data") as server:
        send(server, [line("cart", "seed")])
        open_tail = tail(server, maxSeconds=3600)
        server.process.terminate()  # SIGTERM: a graceful stop, which an open tail must not hold up
        name, data = open_tail.next("end")
        assert (name, data["reason"]) == ("end", "shutdown")
        assert server.process.wait(timeout=WAIT_S) == 0
