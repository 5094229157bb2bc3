"""`observer collect` end to end: a separate process writes CRI container logs (partial lines, a kubelet-style
rotation mid-stream), the real collector process tails, enriches, buffers and exports them to a real
OpenSearch, and every line arrives enriched exactly once: also when the collector is SIGKILLed mid-stream and
restarted, and when OpenSearch is unreachable for 30 s while lines keep coming."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import yaml

from devservers.faulty_proxy import FaultyProxy
from devservers.local import free_port, serving
from devservers.opensearch_layout import drop_layout_at, unique_layout
from devservers.sample import COMPONENTS

WRITER = textwrap.dedent("""
    import os, sys, time
    directory, count, rotate_at, pace = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    path = os.path.join(directory, "0.log")
    out = open(path, "a", buffering=1)
    for n in range(count):
        if n == rotate_at:  # the kubelet: rename the live file, start a new one
            out.close()
            os.rename(path, path + ".20261124-000000")
            out = open(path, "a", buffering=1)
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + ".%09dZ" % (n * 1000 % 10**9)
        if n % 50 == 7:  # a long line the runtime split in two
            out.write(f"{ts} stdout P line {n:06d} first half \\n")
            out.write(f"{ts} stdout F second half\\n")
        else:
            out.write(f"{ts} stdout F line {n:06d} level=info\\n")
        if pace and n % 100 == 0:
            time.sleep(pace)
""")


def expected_bodies(count: int) -> set[str]:
    return {f"line {n:06d} first half second half" if n % 50 == 7 else f"line {n:06d} level=info" for n in range(count)}


config_ports: dict[Path, int] = {}


def config(node: Path, opensearch: str, layout) -> Path:
    path = node / "collector.yaml"
    document = {
        "receivers": {
            "tail": {"paths": [str(node / "pods/*/*/*.log")], "checkpoint": str(node / "tail.json"), "refresh_s": 0.5}
        },
        "metadata": {"file": str(node / "pods.yaml")},
        "buffer": {"directory": str(node / "buffer")},
        "exporter": {
            "opensearch": opensearch,
            "data_dir": str(node / "data"),
            "logs_index_prefix": layout.logs,
            "events_index_prefix": layout.events,
            "traces_index_prefix": layout.traces,
        },
        "telemetry": {"port": free_port()},
    }
    config_ports[path] = document["telemetry"]["port"]
    path.write_text(yaml.safe_dump(document))
    return path


@contextmanager
def collector(config_path: Path, log: Path) -> Iterator[subprocess.Popen]:
    with open(log, "ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "observer.cli", "collect", "--config", str(config_path)],
            stdout=output,
            stderr=output,
            env={**os.environ, "LOG_LEVEL": "warning"},
        )
        try:
            # Ready once its /health answers and the tail has made its first scan (refresh_s 0.5): a file
            # rotated away before the tail ever saw it would be missed, as by any tail (the kubelet rotates at
            # 10 MiB, far slower than this).
            health = f"http://127.0.0.1:{config_ports[config_path]}/health"
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(health, timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert process.poll() is None and time.monotonic() < deadline, "observer collect did not start"
                time.sleep(0.1)
            time.sleep(1)
            yield process
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()


def writer(node: Path, count: int, rotate_at: int, pace: float = 0.0) -> subprocess.Popen:
    directory = next((node / "pods").glob("*/*"))
    return subprocess.Popen([sys.executable, "-c", WRITER, str(directory), str(count), str(rotate_at), str(pace)])


def stored(opensearch: str, layout) -> list[dict]:
    index = layout.pattern(layout.logs)
    httpx.post(f"{opensearch}/{index}/_refresh", timeout=30)
    response = httpx.post(
        f"{opensearch}/{index}/_search",
        params={"ignore_unavailable": "true", "allow_no_indices": "true"},
        json={"size": 10_000, "_source": ["log", "kubernetes.labels", "level"]},
        timeout=30,
    )
    return [hit["_source"] for hit in response.json().get("hits", {}).get("hits", [])]


def wait_for(opensearch: str, layout, count: int, timeout_s: float = 120) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while True:
        documents = stored(opensearch, layout)
        if len(documents) >= count or time.monotonic() > deadline:
            return documents
        time.sleep(1)


def assert_exactly_once_and_enriched(documents: list[dict], count: int) -> None:
    bodies = [document["log"] for document in documents]
    assert len(bodies) == len(set(bodies)), "a line was stored twice"
    assert set(bodies) == expected_bodies(count)
    labels = documents[0]["kubernetes"]["labels"]
    assert labels["openchoreo_dev/component-uid"] == COMPONENTS["cart"]
    assert all(document["level"] == "INFO" for document in documents)


@pytest.fixture
def layout(opensearch_url):
    layout = unique_layout("collect")
    yield layout
    drop_layout_at(opensearch_url, layout)


def test_lines_arrive_enriched_exactly_once_across_rotation(node, opensearch_url, layout):
    with collector(config(node, opensearch_url, layout), node / "collector.log"):
        assert writer(node, 3000, rotate_at=1700, pace=0.05).wait(timeout=60) == 0
        documents = wait_for(opensearch_url, layout, 3000)
    assert_exactly_once_and_enriched(documents, 3000)


def test_a_sigkilled_collector_resumes_without_loss_or_duplicates(node, opensearch_url, layout):
    path = config(node, opensearch_url, layout)
    with collector(path, node / "collector.log") as first:
        lines = writer(node, 5000, rotate_at=2500, pace=0.05)
        wait_for(opensearch_url, layout, 500)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    assert lines.wait(timeout=120) == 0
    with collector(path, node / "collector.log"):
        documents = wait_for(opensearch_url, layout, 5000)
    assert_exactly_once_and_enriched(documents, 5000)


def count(opensearch: str, layout) -> int:
    index = layout.pattern(layout.logs)
    httpx.post(f"{opensearch}/{index}/_refresh", timeout=30)
    response = httpx.get(
        f"{opensearch}/{index}/_count", params={"ignore_unavailable": "true", "allow_no_indices": "true"}, timeout=30
    )
    return response.json().get("count", 0)


def wait_for_count(opensearch: str, layout, wanted: int, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    while (found := count(opensearch, layout)) < wanted and time.monotonic() < deadline:
        time.sleep(1)
    return found


def test_opensearch_unreachable_for_30s_loses_nothing(node, opensearch_url, layout):
    """The collector reaches OpenSearch through a proxy that stops for 30 s while 100,000 lines are written:
    connections are refused, the exporter retries the same batch, the buffer holds the rest, the tail keeps
    reading. Then the proxy is back on the same address and every line arrives, once."""
    total = 100_000
    port = free_port()
    proxy = FaultyProxy(opensearch_url)
    up = serving(proxy.app, port)
    proxy_url = up.__enter__()
    with collector(config(node, proxy_url, layout), node / "collector.log"):
        lines = writer(node, total, rotate_at=60_000, pace=0.005)
        assert wait_for_count(opensearch_url, layout, 1000, timeout_s=120) >= 1000
        up.__exit__(None, None, None)  # OpenSearch unreachable from here on
        time.sleep(30)
        with serving(proxy.app, port):
            assert lines.wait(timeout=300) == 0
            found = wait_for_count(opensearch_url, layout, total, timeout_s=300)
    assert found == total
    documents = stored(opensearch_url, layout)  # a sample of up to 10,000
    assert len({d["log"] for d in documents}) == len(documents)
    assert {d["log"] for d in documents} <= expected_bodies(total)
    assert all(d["kubernetes"]["labels"]["openchoreo_dev/component-uid"] == COMPONENTS["cart"] for d in documents)
