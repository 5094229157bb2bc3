"""OTLP log ingest into the embedded store, end to end through HTTP (the real `observer up` process, protobuf
bodies of 1,000 records from 4 clients), next to the same records written straight into the store in the same
run, the two alternating over a few rounds."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord as OtlpLogRecord
from opentelemetry.proto.logs.v1.logs_pb2 import ResourceLogs, ScopeLogs, SeverityNumber
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from adapters.embedded.backend import EmbeddedBackend
from bench import data
from bench.harness import process_cpu_s, report
from devservers.observer import observer_up
from domain.model import (
    LABEL_COMPONENT,
    LABEL_COMPONENT_UID,
    LABEL_ENVIRONMENT,
    LABEL_ENVIRONMENT_UID,
    LABEL_NAMESPACE,
    LABEL_PROJECT,
    LABEL_PROJECT_UID,
    LogRecord,
)

BATCH = 1_000
REQUESTS = 200
CLIENTS = 4
ROUNDS = 3
SEVERITY = {
    "DEBUG": SeverityNumber.SEVERITY_NUMBER_DEBUG,
    "INFO": SeverityNumber.SEVERITY_NUMBER_INFO,
    "WARN": SeverityNumber.SEVERITY_NUMBER_WARN,
    "ERROR": SeverityNumber.SEVERITY_NUMBER_ERROR,
}


def _resource(record: LogRecord) -> Resource:
    who = record.identity
    attributes = {
        LABEL_NAMESPACE: who.namespace,
        LABEL_PROJECT: who.project,
        LABEL_PROJECT_UID: who.project_uid,
        LABEL_COMPONENT: who.component,
        LABEL_COMPONENT_UID: who.component_uid,
        LABEL_ENVIRONMENT: who.environment,
        LABEL_ENVIRONMENT_UID: who.environment_uid,
        "k8s.pod.name": who.pod,
        "k8s.namespace.name": who.pod_namespace,
        "k8s.container.name": who.container,
    }
    return Resource(attributes=[KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in attributes.items()])


def request_body(records: list[LogRecord]) -> bytes:
    by_stream: dict[object, list[LogRecord]] = {}
    for record in records:
        by_stream.setdefault(record.identity, []).append(record)
    request = ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=_resource(group[0]),
                scope_logs=[
                    ScopeLogs(
                        log_records=[
                            OtlpLogRecord(
                                time_unix_nano=r.ts_ns,
                                severity_text=r.level,
                                severity_number=SEVERITY[r.level],
                                body=AnyValue(string_value=r.body),
                            )
                            for r in group
                        ]
                    )
                ],
            )
            for group in by_stream.values()
        ]
    )
    return request.SerializeToString()


def _indexed_upto(db: Path) -> tuple[int, int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT (SELECT indexed_upto FROM fts_state), (SELECT max(id) FROM logs)").fetchone()
    finally:
        conn.close()


@dataclass(frozen=True)
class Round:
    """One measurement of each path: records/s and CPU microseconds per record (the writer's process)."""

    direct_rate: float
    direct_cpu_us: float
    http_rate: float
    http_cpu_us: float
    searchable_rate: float


def _direct(scratch: Path, batches: list[list[LogRecord]]) -> tuple[float, float]:
    """The records written straight into a fresh store, one batch after another."""
    direct = EmbeddedBackend(scratch)

    async def write_all() -> None:
        for number, batch in enumerate(batches):
            await direct.write(batch_id=f"b{number}", logs=batch)

    started, cpu_started = time.perf_counter(), time.process_time()
    asyncio.run(write_all())
    rate = sum(map(len, batches)) / (time.perf_counter() - started)
    cpu_us = (time.process_time() - cpu_started) / sum(map(len, batches)) * 1e6
    direct.close()
    return rate, cpu_us


def _over_http(scratch: Path, bodies: list[bytes], records: int) -> tuple[float, float, float]:
    """The same records as OTLP exports from CLIENTS clients to a fresh `observer up`; also the rate until the
    last of them is phrase-indexed (the pipeline's sustained rate: indexing and templates follow ingest)."""
    with observer_up(scratch) as server:
        headers = {"Content-Type": "application/x-protobuf"}
        clients = [httpx.Client(base_url=server.otlp, timeout=60) for _ in range(CLIENTS)]

        def send(item: tuple[int, bytes]) -> int:
            number, body = item
            return clients[number % CLIENTS].post("/v1/logs", content=body, headers=headers).status_code

        started, cpu_started = time.perf_counter(), process_cpu_s(server.process.pid)
        with ThreadPoolExecutor(CLIENTS) as pool:
            statuses = list(pool.map(send, enumerate(bodies)))
        elapsed = time.perf_counter() - started
        cpu_us = (process_cpu_s(server.process.pid) - cpu_started) / records * 1e6
        assert statuses.count(200) == len(bodies), {s: statuses.count(s) for s in set(statuses)}
        while True:
            upto, last = _indexed_upto(scratch / "telemetry.db")
            if upto >= last:
                break
            time.sleep(0.2)
        searchable_rate = records / (time.perf_counter() - started)
        for client in clients:
            client.close()
    return records / elapsed, cpu_us, searchable_rate


def run() -> None:
    records = list(data.log_records(BATCH * REQUESTS, 1_790_000_000 * 10**9))
    batches = [records[i : i + BATCH] for i in range(0, len(records), BATCH)]
    bodies = [request_body(batch) for batch in batches]
    body_bytes = sum(map(len, bodies)) / len(records)

    # The two paths alternate, ROUNDS times, and the medians are reported: one round is at the mercy of
    # whatever else the machine does at that moment, and both paths share the moments.
    rounds = []
    for number in range(ROUNDS):
        with tempfile.TemporaryDirectory() as scratch:
            direct_rate, direct_cpu_us = _direct(Path(scratch) / f"direct-{number}", batches)
            http_rate, http_cpu_us, searchable_rate = _over_http(Path(scratch) / f"http-{number}", bodies, len(records))
        rounds.append(Round(direct_rate, direct_cpu_us, http_rate, http_cpu_us, searchable_rate))

    direct_rate = statistics.median([r.direct_rate for r in rounds])
    http_rate = statistics.median([r.http_rate for r in rounds])
    ratio = statistics.median([r.http_rate / r.direct_rate for r in rounds])
    direct_cpu_us = statistics.median([r.direct_cpu_us for r in rounds])
    http_cpu_us = statistics.median([r.http_cpu_us for r in rounds])
    searchable_rate = statistics.median([r.searchable_rate for r in rounds])
    report(
        "ingest",
        [
            (f"records (~{body_bytes:.0f} B protobuf each), median of {ROUNDS} rounds", f"{len(records):,}", ""),
            ("direct store write (records/s)", f"{direct_rate:,.0f}", "baseline"),
            (
                "OTLP/HTTP end to end (records/s)",
                f"{http_rate:,.0f}",
                f"{ratio:.0%} of direct (median of the rounds' ratios), target >= 80%",
            ),
            ("... until phrase-indexed (records/s)", f"{searchable_rate:,.0f}", "sustained rate"),
            # CPU per record does not depend on what else the machine runs, as the rates above do.
            (
                "CPU per record, direct / Observer (us)",
                f"{direct_cpu_us:.1f} / {http_cpu_us:.1f}",
                f"{direct_cpu_us / http_cpu_us:.0%}",
            ),
            (
                "rounds' ratios",
                " ".join(f"{r.http_rate / r.direct_rate:.0%}" for r in rounds),
                "",
            ),
        ],
        {
            "records": len(records),
            "direct_rate": direct_rate,
            "http_rate": http_rate,
            "ratio": ratio,
            "searchable_rate": searchable_rate,
            "direct_cpu_us_per_record": direct_cpu_us,
            "http_cpu_us_per_record": http_cpu_us,
            "rounds": [dataclasses.asdict(r) for r in rounds],
            "clients": CLIENTS,
            "batch": BATCH,
        },
    )


if __name__ == "__main__":
    run()
