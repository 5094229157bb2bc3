"""Datadog (issue 15), against the local Datadog (devservers/datadog) run in its own process:

- intake throughput per core: our DatadogSink writing batches of log records to the logs intake, next to
  posting the same gzip bodies, encoded before the clock starts, straight to the intake with httpx. Both run in
  this process, alternating batch by batch, and each side is charged the process CPU time it used (the fake
  runs in another process, so its parsing is not charged to either): records per CPU second is records/s per
  core of our process, the figure that sizes a collector;
- logs query latency: the Observer (the real `observer up` process over the Datadog backend, HTTP) next to
  the same Logs Search v2 request sent directly to the fake with httpx, alternating call by call in one run, so
  all meet the same fake holding the same records. The backend sends a Logs Aggregate count beside each search
  (for the page's `total`), concurrently; the fake serves requests one at a time, so that count costs a second
  fake search where Datadog would answer both in one round trip. Hence two baselines: the search alone, and
  the search with its count sent concurrently (what the backend sends); the Observer's own overhead is measured
  against the latter.

The fake answers a search by scanning what it holds, so query times grow with BENCH_DD_QUERY_RECORDS; the
overhead does not. Sizes (environment): BENCH_DD_INTAKE_RECORDS (default 50,000), BENCH_DD_QUERY_RECORDS
(default 2,000), BENCH_DD_REPEAT (calls per side, default 300), BENCH_DD_BATCH (records per sink write,
default 1,000). `python -m bench.datadog` runs this one alone.
"""

from __future__ import annotations

import asyncio
import gzip
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import orjson

from adapters.datadog import query as dq
from adapters.datadog import records as dd_records
from adapters.datadog.backend import LOGS_AGGREGATE, LOGS_SEARCH
from adapters.datadog.intake import DatadogSink, IntakeConfig, chunks
from bench import data
from bench.harness import latencies, report
from bench.logs_query import QUERIES, observer_body
from bench.opensearch_query import QUERY_ENDPOINT, registry_file
from devservers.local import free_port, wait_until_answering
from devservers.observer import observer_up
from domain.model import ComponentScope, LogRecord, TimeRange
from domain.timeutil import now_ns

API_KEY = "bench-dd-api-key"  # the fake's keys: made up here, never a real organisation's
APP_KEY = "bench-dd-application-key"
LOGS_INTAKE = "/api/v2/logs"
GZIP_LEVEL = 5  # what the sink uses
WARMUP_CALLS = 20  # per side, before the query clock starts
WARMUP_BATCHES = 3  # per side, before the intake clock starts
INDEXES = ("*",)  # the backend's default DATADOG_LOGS_INDEXES
SPAN_NS = 3600 * 10**9  # records spread over the last hour (Datadog keeps nothing older than 18 h)


@dataclass(frozen=True)
class Sizes:
    intake_records: int
    query_records: int
    repeat: int
    batch: int

    @classmethod
    def from_env(cls) -> Sizes:
        def number(name: str, default: int) -> int:
            return max(1, int(os.environ.get(name, default)))

        return cls(
            number("BENCH_DD_INTAKE_RECORDS", 50_000),
            number("BENCH_DD_QUERY_RECORDS", 2_000),
            number("BENCH_DD_REPEAT", 300),
            number("BENCH_DD_BATCH", 1_000),
        )


# ----------------------------------------------------------------------------------------------- the fake


@dataclass
class FakeProcess:
    """The fake served by a child process, and a client for its `/_fake/*` controls."""

    url: str
    control: httpx.Client

    def reset(self, query_limit: int) -> None:
        """Empties the fake and lifts the logs search rate limit above what the run sends."""
        self.control.post("/_fake/reset").raise_for_status()
        self.control.post("/_fake/limit", json={"name": "logs_query", "limit": query_limit}).raise_for_status()

    def logs_held(self) -> int:
        held: int = self.control.get("/_fake/stats").json()["logs"]
        return held


@contextmanager
def fake_process() -> Iterator[FakeProcess]:
    """Starts `python -m bench.datadog --serve-fake PORT` and waits until it answers; stops it on exit."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "bench.datadog", "--serve-fake", str(port)])
    url = f"http://127.0.0.1:{port}"
    control = httpx.Client(base_url=url, timeout=60, headers={"DD-API-KEY": API_KEY})
    try:
        wait_until_answering(process, lambda: control.get("/_fake/stats").status_code == 200, "the Datadog fake", 60)
        yield FakeProcess(url, control)
    finally:
        control.close()
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def serve_fake(port: int) -> None:
    """The child process: the fake on `port` until SIGTERM."""
    from devservers.datadog import start_datadog

    fake = start_datadog(API_KEY, APP_KEY, port=port)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    stopping.wait()
    fake.stop()


# ----------------------------------------------------------------------------------------------- intake


def batches_of(count: int, size: int, end_ns: int) -> list[list[LogRecord]]:
    records = list(data.log_records(count, end_ns, SPAN_NS))
    return [records[start : start + size] for start in range(0, len(records), size)]


def encoded_bodies(batch: list[LogRecord]) -> list[bytes]:
    """The gzip bodies the sink would send for `batch` (its entries, cut at the intake's limits)."""
    entries = [orjson.dumps(dd_records.log_entry(record)) for record in batch]
    return [gzip.compress(b"[" + b",".join(chunk) + b"]", GZIP_LEVEL) for chunk in chunks(entries)]


@dataclass
class Meter:
    """Process CPU time and wall time charged to one side, batch by batch."""

    records: int = 0
    cpu_s: float = 0.0
    wall_s: float = 0.0
    body_bytes: list[int] = field(default_factory=list)

    async def charge(self, records: int, work: Callable[[], Awaitable[object]]) -> None:
        cpu, wall = time.process_time(), time.perf_counter()
        await work()
        self.cpu_s += time.process_time() - cpu
        self.wall_s += time.perf_counter() - wall
        self.records += records

    def figures(self) -> dict[str, float]:
        return {
            "records": self.records,
            "cpu_s": round(self.cpu_s, 3),
            "wall_s": round(self.wall_s, 3),
            "records_per_cpu_s": round(self.records / self.cpu_s) if self.cpu_s else 0,
            "records_per_s": round(self.records / self.wall_s) if self.wall_s else 0,
        }


async def measure_intake(url: str, batches: list[list[LogRecord]]) -> dict[str, dict[str, float]]:
    """Alternates one sink write and one direct post of the same batch; each side charged its own time."""
    encoding = time.process_time()
    bodies = [encoded_bodies(batch) for batch in batches]  # before either side's clock starts
    encoding = time.process_time() - encoding
    sink = DatadogSink(IntakeConfig(logs_url=url, api_url=url, otlp_url=url, api_key=API_KEY))
    direct = httpx.AsyncClient(
        base_url=url,
        timeout=60,
        headers={"DD-API-KEY": API_KEY, "Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    ours, baseline = Meter(), Meter()

    async def through_sink(number: int) -> None:
        result = await sink.write(batch_id=f"bench-{number}", logs=batches[number])
        assert result.outcome == "delivered" and not result.count, result

    async def posted(number: int) -> None:
        for body in bodies[number]:
            response = await direct.post(LOGS_INTAKE, content=body)
            assert response.status_code == 202, response.text[:300]

    try:
        for number in range(len(batches)):
            size = len(batches[number])
            await ours.charge(size, partial(through_sink, number))
            await baseline.charge(size, partial(posted, number))
    finally:
        await sink.close()
        await direct.aclose()
    records = sum(map(len, batches))
    encode = {"records": records, "cpu_s": round(encoding, 3), "records_per_cpu_s": round(records / encoding)}
    return {"sink": ours.figures(), "direct": baseline.figures(), "encode_only": encode}


async def load(url: str, batches: list[list[LogRecord]]) -> None:
    """Ships records through the sink, untimed (the query dataset)."""
    sink = DatadogSink(IntakeConfig(logs_url=url, api_url=url, otlp_url=url, api_key=API_KEY))
    try:
        for number, batch in enumerate(batches):
            result = await sink.write(batch_id=f"load-{number}", logs=batch)
            assert result.outcome == "delivered" and not result.count, result
    finally:
        await sink.close()


# ----------------------------------------------------------------------------------------------- query


def search_bodies(window: TimeRange, phrase: str, levels: tuple[str, ...]) -> tuple[bytes, bytes]:
    """The Logs Search v2 and Logs Aggregate bodies the Datadog backend builds for `observer_body` (the same
    scope, bounds and page), encoded."""
    scope = ComponentScope(
        data.NAMESPACE,
        data.uid("project", data.PROJECT),
        data.uid("component", "cart"),
        data.uid("environment", "production"),
    )
    search = dq.logs_query(scope, levels, phrase)
    return (
        orjson.dumps(dq.logs_search_body(search, window, "desc", 100, INDEXES)),
        orjson.dumps(dq.logs_count_body(search, window, INDEXES)),
    )


@dataclass
class Case:
    observer: dict[str, Any]
    search: bytes
    count: bytes


def measure_query(fake_url: str, window: TimeRange, repeat: int, workdir: Path) -> dict[str, Any]:
    """Alternates, call by call, three ways of asking the same question (WARMUP_CALLS rounds untimed):
    the Logs Search request alone; that request together with the Logs Aggregate count the backend sends
    beside it for the page's `total` (concurrently, as the backend does); and the Observer."""
    cases = [Case(observer_body(window, p, lv), *search_bodies(window, p, lv)) for p, lv in QUERIES]
    env = {"DATADOG_API_URL": fake_url, "DD_API_KEY": API_KEY, "DD_APP_KEY": APP_KEY}
    headers = {"DD-API-KEY": API_KEY, "DD-APPLICATION-KEY": APP_KEY, "Content-Type": "application/json"}
    samples: dict[str, list[float]] = {"direct": [], "direct_with_count": [], "api": []}
    loop = asyncio.new_event_loop()
    paired = httpx.AsyncClient(base_url=fake_url, timeout=30, headers=headers)
    with (
        observer_up(workdir / "observer", "--registry", str(registry_file(workdir)), env=env) as server,
        httpx.Client(base_url=server.api, timeout=30) as observer,
        httpx.Client(base_url=fake_url, timeout=30, headers=headers) as datadog,
    ):

        def direct(case: Case) -> int:
            response = datadog.post(LOGS_SEARCH, content=case.search)
            assert response.status_code == 200, response.text[:300]
            return len(response.json()["data"])

        async def both(case: Case) -> None:
            found, counted = await asyncio.gather(
                paired.post(LOGS_SEARCH, content=case.search), paired.post(LOGS_AGGREGATE, content=case.count)
            )
            assert found.status_code == counted.status_code == 200, (found.text[:300], counted.text[:300])
            found.json(), counted.json()

        def api(case: Case) -> int:
            response = observer.post(QUERY_ENDPOINT, json=case.observer)
            assert response.status_code == 200, response.text[:300]
            return len(response.json()["logs"])

        try:
            for number in range(WARMUP_CALLS + repeat):
                case = cases[number % len(cases)]
                marks = [time.perf_counter()]
                found = direct(case)
                marks.append(time.perf_counter())
                loop.run_until_complete(both(case))
                marks.append(time.perf_counter())
                answered = api(case)
                marks.append(time.perf_counter())
                assert found and answered == found, f"direct {found} logs, Observer {answered}"
                if number >= WARMUP_CALLS:
                    for index, name in enumerate(samples):
                        samples[name].append((marks[index + 1] - marks[index]) * 1000)
        finally:
            loop.run_until_complete(paired.aclose())
            loop.close()
    return {name: latencies(values) for name, values in samples.items()}


# ----------------------------------------------------------------------------------------------- run


def run(sizes: Sizes | None = None) -> dict[str, Any]:
    sizes = sizes or Sizes.from_env()
    end_ns = now_ns()
    window = TimeRange(end_ns - SPAN_NS, end_ns)
    intake_batches = batches_of(sizes.intake_records, sizes.batch, end_ns)
    body_bytes = sum(len(b) for batch in intake_batches[:5] for b in encoded_bodies(batch))
    body_records = sum(len(batch) for batch in intake_batches[:5])
    query_limit = 10 * (WARMUP_CALLS + sizes.repeat) + 1000

    with fake_process() as fake, tempfile.TemporaryDirectory() as scratch:
        fake.reset(query_limit)
        warmup = intake_batches[:WARMUP_BATCHES]
        asyncio.run(measure_intake(fake.url, warmup))  # imports, connections, first-call costs: untimed
        intake = asyncio.run(measure_intake(fake.url, intake_batches))
        expected = 2 * (sum(map(len, warmup)) + sizes.intake_records)  # both sides, warm-up included
        assert fake.logs_held() == expected, f"the fake holds {fake.logs_held()} logs of {expected}"
        del intake_batches

        fake.reset(query_limit)
        asyncio.run(load(fake.url, batches_of(sizes.query_records, sizes.batch, end_ns)))
        assert fake.logs_held() == sizes.query_records
        query = measure_query(fake.url, window, sizes.repeat, Path(scratch))

    return summarize(sizes, intake, query, (body_bytes, body_records))


def summarize(
    sizes: Sizes, intake: dict[str, dict[str, float]], query: dict[str, Any], sample: tuple[int, int]
) -> dict[str, Any]:
    """Prints the table and writes bench/results/datadog.json."""
    sink, direct, encode = intake["sink"], intake["direct"], intake["encode_only"]
    per_core = sink["records_per_cpu_s"] / direct["records_per_cpu_s"] if direct["records_per_cpu_s"] else 0.0
    alone, paired, api = query["direct"], query["direct_with_count"], query["api"]

    def overhead(baseline: dict[str, float]) -> tuple[float, float]:
        return round(api["p50_ms"] - baseline["p50_ms"], 3), round(api["p99_ms"] - baseline["p99_ms"], 3)

    over_paired, over_alone = overhead(paired), overhead(alone)
    raw = {
        "sizes": sizes.__dict__,
        "intake": intake,
        "sink_per_core_ratio": round(per_core, 3),
        "query": query,
        "overhead_p50_ms": over_paired[0],
        "overhead_p99_ms": over_paired[1],
        "overhead_vs_search_alone_p50_ms": over_alone[0],
        "overhead_vs_search_alone_p99_ms": over_alone[1],
    }
    body_bytes, body_records = sample
    report(
        "datadog",
        [
            (
                f"log records through the intake (~{body_bytes // body_records} B gzip each)",
                f"{sizes.intake_records:,}",
                f"batches of {sizes.batch:,}",
            ),
            (
                "direct httpx, pre-encoded gzip (records/s per core)",
                f"{direct['records_per_cpu_s']:,}",
                f"baseline; {direct['records_per_s']:,} records/s wall",
            ),
            (
                "DatadogSink.write (records/s per core)",
                f"{sink['records_per_cpu_s']:,}",
                f"{sink['records_per_s']:,} records/s wall",
            ),
            ("ratio sink / direct, per core", f"{per_core:.2f}x", "the difference is encoding"),
            ("encoding alone: entries + gzip (records/s per core)", f"{encode['records_per_cpu_s']:,}", ""),
            ("records held by the fake for queries", f"{sizes.query_records:,}", ""),
            ("Logs Search alone, direct p50 / p99 (ms)", f"{alone['p50_ms']} / {alone['p99_ms']}", "baseline"),
            (
                "Search + Aggregate count, direct p50 / p99 (ms)",
                f"{paired['p50_ms']} / {paired['p99_ms']}",
                "baseline: what the backend sends",
            ),
            ("Observer HTTP p50 / p99 (ms)", f"{api['p50_ms']} / {api['p99_ms']}", ""),
            ("overhead vs search + count p50 / p99 (ms)", f"{over_paired[0]} / {over_paired[1]}", "target p50 <= 5"),
            ("overhead vs search alone p50 / p99 (ms)", f"{over_alone[0]} / {over_alone[1]}", "incl. the count"),
        ],
        raw,
    )
    return raw


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve-fake"]:
        serve_fake(int(sys.argv[2]))
    else:
        run()
