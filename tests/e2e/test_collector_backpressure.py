"""A full buffer, at process level: the real `observer collect` with a small `buffer.max_bytes` in front of an
OpenSearch that refuses every bulk request (a faulty proxy answering 503). The buffer fills; OTLP producers
are answered 503 with Retry-After; the tail stops reading, its checkpoint no further than what the buffer holds.
Then OpenSearch takes writes again and everything accepted (every line written to the tailed file, every
record of an export answered 2xx) arrives, exactly once."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from devservers.collector import Collector, collector
from devservers.faulty_proxy import FaultyProxy
from devservers.local import free_port, serving
from devservers.opensearch_layout import drop_layout_at, unique_layout
from tests.integration.test_otlp_receiver import logs_body

BUFFER_BYTES = 2 * 1024 * 1024  # room for a few tail batches (up to 5,000 lines each): far less than is written
LINES = 20_000  # ~4 MB of lines
PAD = "x" * 150
PROTOBUF = {"Content-Type": "application/x-protobuf"}


@pytest.fixture
def layout(opensearch_url):
    layout = unique_layout("backpressure")
    yield layout
    drop_layout_at(opensearch_url, layout)


def line_body(n: int) -> str:
    return f"tailed {n:06d} level=info {PAD}"


def write_lines(path: Path, count: int) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    with open(path, "ab") as out:
        out.write("".join(f"{stamp}.{n:09d}Z stdout F {line_body(n)}\n" for n in range(count)).encode())


def all_bodies(opensearch: str, layout) -> list[str]:
    """Every stored log line's body (scrolling: there are more than one search returns)."""
    index = layout.pattern(layout.logs)
    httpx.post(f"{opensearch}/{index}/_refresh", timeout=60)
    response = httpx.post(
        f"{opensearch}/{index}/_search",
        params={"scroll": "2m", "ignore_unavailable": "true", "allow_no_indices": "true"},
        json={"size": 5000, "_source": ["log"], "sort": ["_doc"]},
        timeout=60,
    ).json()
    bodies: list[str] = []
    scroll_id = response.get("_scroll_id")
    while hits := response.get("hits", {}).get("hits", []):
        bodies += [hit["_source"]["log"] for hit in hits]
        response = httpx.post(
            f"{opensearch}/_search/scroll", json={"scroll": "2m", "scroll_id": scroll_id}, timeout=60
        ).json()
        scroll_id = response.get("_scroll_id", scroll_id)
    if scroll_id:
        httpx.request("DELETE", f"{opensearch}/_search/scroll", json={"scroll_id": scroll_id}, timeout=30)
    return bodies


def count(opensearch: str, layout) -> int:
    index = layout.pattern(layout.logs)
    httpx.post(f"{opensearch}/{index}/_refresh", timeout=60)
    params = {"ignore_unavailable": "true", "allow_no_indices": "true"}
    return httpx.get(f"{opensearch}/{index}/_count", params=params, timeout=60).json().get("count", 0)


def checkpoint_of(node: Path, log_file: Path) -> int:
    """The tail's committed `delivered` offset of the file (0 before any commit)."""
    try:
        document = json.loads((node / "tail.json").read_text())
    except FileNotFoundError:
        return 0
    inode = log_file.stat().st_ino
    return next((item["delivered"] for item in document["files"] if item["ino"] == inode), 0)


def settled(running: Collector, name: str, labels: dict[str, str], quiet_s: float, timeout_s: float) -> float:
    """The value of a counter once it has not moved for `quiet_s` (the tail has stopped reading)."""
    deadline = time.monotonic() + timeout_s
    last, since = running.value(name, **labels), time.monotonic()
    while time.monotonic() - since < quiet_s:
        assert time.monotonic() < deadline, f"{name} kept moving"
        time.sleep(0.5)
        now = running.value(name, **labels)
        if now != last:
            last, since = now, time.monotonic()
    return last


class Producer:
    """An OTLP exporter as SDKs behave: each export is retried after the Retry-After of a 503/429 until it is
    accepted. Records what was accepted and what it was told."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.accepted: list[str] = []
        self.refusals: list[tuple[int, str | None]] = []
        self.pending: list[str] = []  # exports refused so far, to send again

    def export(self, tag: str) -> bool:
        bodies = [f"otlp {tag} {i:02d}" for i in range(20)]
        response = httpx.post(f"{self.url}/v1/logs", content=logs_body(*bodies), headers=PROTOBUF, timeout=30)
        if response.status_code == 200:
            self.accepted += bodies
            return True
        self.refusals.append((response.status_code, response.headers.get("retry-after")))
        self.pending.append(tag)
        return False

    def retry_pending(self, deadline: float) -> None:
        while self.pending:
            if not self.export(self.pending.pop(0)):  # refused again: back in `pending`, wait as told
                assert time.monotonic() < deadline, "refused exports were never accepted"
                time.sleep(float(self.refusals[-1][1] or 1))


def test_a_full_buffer_pauses_the_producers_and_then_everything_arrives_once(node: Path, opensearch_url: str, layout):
    proxy = FaultyProxy(opensearch_url)
    with serving(proxy.app, free_port()) as proxy_url:
        document = {
            "receivers": {
                "tail": {
                    "paths": [str(node / "pods/*/*/*.log")],
                    "checkpoint": str(node / "tail.json"),
                    "refresh_s": 0.5,
                },
                "otlp": {"port": free_port()},
            },
            "metadata": {"file": str(node / "pods.yaml")},
            "buffer": {"directory": str(node / "buffer"), "max_bytes": BUFFER_BYTES},
            "exporter": {
                "opensearch": proxy_url,
                "data_dir": str(node / "data"),  # metrics (none here) need a home too
                "logs_index_prefix": layout.logs,
                "events_index_prefix": layout.events,
                "traces_index_prefix": layout.traces,
            },
        }
        with collector(node, document) as running:  # OpenSearch answers at start: templates are installed
            proxy.always_status = 503  # from now on every bulk request is refused
            producer = Producer(running.otlp)
            for n in range(5):  # room in the buffer still: accepted
                assert producer.export(f"early-{n}")
            log_file = next((node / "pods").glob("*/*")) / "0.log"
            write_lines(log_file, LINES)

            # The tail fills the buffer and stops; its checkpoint holds still, short of the end of the file.
            tailed = settled(running, "collector_records_in_total", {"pipeline": "tail"}, quiet_s=4, timeout_s=120)
            offset = checkpoint_of(node, log_file)
            size = log_file.stat().st_size
            assert 0 < tailed < LINES
            assert offset < size
            assert log_file.read_bytes()[:offset].count(b"\n") <= tailed  # committed only what the buffer holds
            assert running.value("collector_buffer_bytes") > BUFFER_BYTES / 2

            # OTLP producers are told to come back later, with Retry-After (small exports may still fill what
            # room the tail's last, larger batch could not use).
            for n in range(2000):
                if not producer.export(f"full-{n}") and len(producer.refusals) >= 5:
                    break
            assert len(producer.refusals) >= 5 and all(status == 503 for status, _ in producer.refusals)
            assert all(after is not None and int(after) >= 1 for _, after in producer.refusals)
            labels = {"signal": "logs", "status": "503", "reason": "buffer_full"}
            assert running.value("collector_otlp_requests_refused_total", **labels) == len(producer.refusals)

            time.sleep(2)
            assert checkpoint_of(node, log_file) == offset  # still nothing read past the buffer
            assert count(opensearch_url, layout) == 0

            proxy.always_status = None  # OpenSearch takes writes again
            producer.retry_pending(time.monotonic() + 240)
            expected = {line_body(n) for n in range(LINES)} | set(producer.accepted)
            deadline = time.monotonic() + 300
            while count(opensearch_url, layout) < len(expected):
                assert time.monotonic() < deadline, f"{count(opensearch_url, layout)} of {len(expected)} arrived"
                time.sleep(2)
            assert running.process.poll() is None
    bodies = all_bodies(opensearch_url, layout)
    assert len(bodies) == len(set(bodies)), "a record was stored twice"
    assert set(bodies) == expected
    assert checkpoint_of(node, log_file) == size
