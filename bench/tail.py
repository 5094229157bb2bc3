"""Live tail under load: 50 tails on one `observer up` while OTLP log ingest runs at a target of 20,000 records/s,
next to the same ingest with no tail in the same run (before and after, averaged, so drift on a shared machine
does not favour either side).

Each of 50 components has one tail; senders own disjoint components and send each component's lines in
sequence, so "in order" is checkable: every tail must get every line of its component, numbered 0, 1, 2, ...
with no gap and no repeat. The tails are read in a child process of their own (aiohttp), so reading them takes
no time from the senders; the observer's CPU per record is measured from /proc, which the machine's other load
does not change as it changes rates.

Figures: achieved ingest rate (records/s) and OTLP request latency with and without tails, the observer's CPU per
record both ways, and how many tails got everything in order. `python -m bench.tail` runs this one alone;
BENCH_TAIL_RECORDS (per phase) and BENCH_TAIL_RATE override the defaults.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.harness import latencies, process_cpu_s, report
from bench.ingest import request_body
from devservers.observer import AllInOne, observer_up
from domain.model import Identity, LogRecord
from domain.timeutil import now_ns

TAILS = 50
SENDERS = 4
BATCH = 1_000
RECORDS = int(os.environ.get("BENCH_TAIL_RECORDS", "200000"))  # per phase
RATE = float(os.environ.get("BENCH_TAIL_RATE", "20000"))  # records/s, all senders together
PATH = "/api/v1alpha1/logs/tail"
NAMESPACE, PROJECT, ENVIRONMENT = "tailbench", "shop", "prod"


def _uid(kind: str, name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{kind}.{name}.tailbench"))


def component_name(index: int) -> str:
    return f"svc-{index:02d}"


def identities() -> list[Identity]:
    return [
        Identity(
            namespace=NAMESPACE,
            project=PROJECT,
            project_uid=_uid("project", PROJECT),
            component=component_name(i),
            component_uid=_uid("component", component_name(i)),
            environment=ENVIRONMENT,
            environment_uid=_uid("environment", ENVIRONMENT),
            pod=f"{component_name(i)}-0",
            pod_namespace=f"dp-{NAMESPACE}",
            container="main",
        )
        for i in range(TAILS)
    ]


def phase_bodies(start_ns: int) -> list[list[bytes]]:
    """Each sender's request bodies: its components' lines, round robin, each component numbered from 0."""
    who = identities()
    per_sender: list[list[bytes]] = []
    for sender in range(SENDERS):
        owned = [i for i in range(TAILS) if i % SENDERS == sender]
        count = RECORDS // SENDERS
        records = [
            LogRecord(
                start_ns + n,
                f"{who[owned[n % len(owned)]].component} {n // len(owned):07d} GET /api/items status=200 took=12ms",
                who[owned[n % len(owned)]],
                level="INFO",
            )
            for n in range(count)
        ]
        per_sender.append([request_body(records[i : i + BATCH]) for i in range(0, len(records), BATCH)])
    return per_sender


def expected_per_component() -> dict[str, int]:
    counts = dict.fromkeys((component_name(i) for i in range(TAILS)), 0)
    for sender in range(SENDERS):
        owned = [i for i in range(TAILS) if i % SENDERS == sender]
        for n in range(RECORDS // SENDERS):
            counts[component_name(owned[n % len(owned)])] += 1
    return counts


@dataclass
class Ingest:
    rate: float
    cpu_us: float
    request_ms: dict[str, float]


def ingest(server: AllInOne, bodies: list[list[bytes]]) -> Ingest:
    """Every sender paced to its share of RATE (never faster; slower when the observer cannot keep up)."""
    request_s: list[float] = []
    lock = threading.Lock()
    total = sum(len(each) for each in bodies) * BATCH
    per_sender_rate = RATE / SENDERS

    def run(mine: list[bytes]) -> None:
        with httpx.Client(base_url=server.otlp, timeout=60) as client:
            began = time.perf_counter()
            for number, body in enumerate(mine):
                due = began + number * BATCH / per_sender_rate
                pause = due - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                started = time.perf_counter()
                response = client.post("/v1/logs", content=body, headers={"Content-Type": "application/x-protobuf"})
                took = time.perf_counter() - started
                assert response.status_code == 200, response.text
                with lock:
                    request_s.append(took * 1000)

    cpu = process_cpu_s(server.process.pid)
    started = time.perf_counter()
    threads = [threading.Thread(target=run, args=(mine,)) for mine in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    cpu_us = (process_cpu_s(server.process.pid) - cpu) / total * 1e6
    return Ingest(total / elapsed, cpu_us, latencies(request_s))


# ----------------------------------------------------------------------------------------------- the tails


def read_tails(api: str, expected: dict[str, int], ready: Any, results: Any) -> None:
    """Child process: one tail per component; says `ready` once every tail has started, then reads until each
    has its expected count (or a minute without progress), and puts what each got into `results`."""
    results.put(asyncio.run(_read_tails(api, expected, ready)))


async def _read_tails(api: str, expected: dict[str, int], ready: Any) -> dict[str, dict[str, Any]]:
    import aiohttp

    started = 0
    all_started = asyncio.Event()
    report_: dict[str, dict[str, Any]] = {}

    async def one(session: aiohttp.ClientSession, component: str) -> None:
        nonlocal started
        got: dict[str, Any] = {"lines": 0, "in_order": True, "dropped": 0, "end": "", "last_progress": time.monotonic()}
        report_[component] = got
        scope = {"namespace": NAMESPACE, "project": PROJECT, "component": component, "environment": ENVIRONMENT}
        async with session.post(api + PATH, json={"searchScope": scope, "maxSeconds": 900}) as response:
            assert response.status == 200, await response.text()
            name = ""
            async for raw in response.content:
                line = raw.rstrip(b"\n")
                if line.startswith(b"event: "):
                    name = line[7:].decode()
                elif line.startswith(b"data: "):
                    data = orjson.loads(line[6:])
                    if name == "start":
                        started += 1
                        if started == TAILS:
                            all_started.set()
                    elif name == "log":
                        if int(data["log"].split(" ", 2)[1]) != got["lines"]:
                            got["in_order"] = False
                        got["lines"] += 1
                        got["last_progress"] = time.monotonic()
                        if got["lines"] >= expected[component]:
                            return
                    elif name == "dropped":
                        got["dropped"] = data["total"]
                    elif name == "end":
                        got["end"] = data["reason"]
                        return

    async def watchdog(tasks: list[asyncio.Task[None]]) -> None:
        await all_started.wait()
        ready.set()
        while not all(task.done() for task in tasks):
            await asyncio.sleep(1)
            stalled = [c for c, got in report_.items() if time.monotonic() - got["last_progress"] > 60]
            if stalled and any(not task.done() for task in tasks):
                for task in tasks:
                    task.cancel()

    connector = aiohttp.TCPConnector(limit=TAILS + 5)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None)) as session:
        tasks = [asyncio.create_task(one(session, component)) for component in expected]
        await asyncio.gather(watchdog(tasks), *tasks, return_exceptions=True)
    for got in report_.values():
        got.pop("last_progress")
    return report_


def run() -> None:
    expected = expected_per_component()
    base = now_ns()
    phases = {name: phase_bodies(base + offset * 10**12) for offset, name in enumerate(("before", "tails", "after"))}
    with tempfile.TemporaryDirectory() as scratch, observer_up(Path(scratch) / "data") as server:
        seed = [
            LogRecord(base - 1, "seed", who, level="INFO") for who in identities()
        ]  # the names, learned from telemetry
        assert httpx.post(
            f"{server.otlp}/v1/logs", content=request_body(seed), headers={"Content-Type": "application/x-protobuf"}
        ).is_success
        before = ingest(server, phases["before"])

        context = multiprocessing.get_context("spawn")
        ready, results = context.Event(), context.Queue()
        reader = context.Process(target=read_tails, args=(server.api, expected, ready, results))
        reader.start()
        if not ready.wait(120):
            reader.terminate()
            raise RuntimeError("the tails did not start")
        with_tails = ingest(server, phases["tails"])
        got: dict[str, dict[str, Any]] = results.get(timeout=300)
        reader.join(timeout=30)

        after = ingest(server, phases["after"])

    baseline_rate = (before.rate + after.rate) / 2
    baseline_cpu = (before.cpu_us + after.cpu_us) / 2
    complete = sum(1 for component, each in got.items() if each["lines"] == expected[component] and each["in_order"])
    received = sum(each["lines"] for each in got.values())
    report(
        "tail",
        [
            (f"records per phase ({SENDERS} senders, {BATCH}/request)", f"{RECORDS:,}", f"paced at {RATE:,.0f}/s"),
            ("ingest, no tail (records/s)", f"{baseline_rate:,.0f}", "baseline (before and after, averaged)"),
            (
                f"ingest, {TAILS} tails (records/s)",
                f"{with_tails.rate:,.0f}",
                f"{with_tails.rate / baseline_rate:.0%} of baseline, target >= 80%",
            ),
            (
                "OTLP request p50 / p99, no tail (ms)",
                f"{before.request_ms['p50_ms']:.1f} / {before.request_ms['p99_ms']:.1f}",
                "",
            ),
            (
                f"OTLP request p50 / p99, {TAILS} tails (ms)",
                f"{with_tails.request_ms['p50_ms']:.1f} / {with_tails.request_ms['p99_ms']:.1f}",
                "",
            ),
            (
                "observer CPU per record, no tail / tails (us)",
                f"{baseline_cpu:.1f} / {with_tails.cpu_us:.1f}",
                "tails' cost: writing every line out as an event",
            ),
            (
                "tails with every line, in order",
                f"{complete} / {TAILS}",
                f"{received:,} of {sum(expected.values()):,} lines; target all",
            ),
        ],
        {
            "records_per_phase": RECORDS,
            "target_rate": RATE,
            "tails": TAILS,
            "rate_before": before.rate,
            "rate_after": after.rate,
            "rate_with_tails": with_tails.rate,
            "cpu_us_before": before.cpu_us,
            "cpu_us_after": after.cpu_us,
            "cpu_us_with_tails": with_tails.cpu_us,
            "request_ms_before": before.request_ms,
            "request_ms_with_tails": with_tails.request_ms,
            "request_ms_after": after.request_ms,
            "tails_complete_in_order": complete,
            "lines_received": received,
            "lines_expected": sum(expected.values()),
            "per_tail": got,
        },
    )


if __name__ == "__main__":
    run()
