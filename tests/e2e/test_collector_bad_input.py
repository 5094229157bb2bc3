"""Bad input at the collector, end to end through the real `observer collect` process: garbage in a container
log file and malformed OTLP exports are refused and counted on /metrics by reason, never crash the process and
never hold up the good records around them, which all arrive (in the embedded backend the collector exports
to)."""

from __future__ import annotations

import asyncio
import gzip
import random
import time
from pathlib import Path

import httpx
from google.rpc.status_pb2 import Status

from adapters.embedded.backend import EmbeddedBackend
from collectors.tail.formats import TRUNCATION_MARKER
from devservers.collector import Collector, collector
from devservers.local import free_port
from devservers.sample import COMPONENTS, ENVIRONMENTS, NS, PROJECT_UID
from domain.model import ComponentScope, LogsQuery, TimeRange
from tests.integration.test_otlp_receiver import logs_body

CART = ComponentScope(NS, PROJECT_UID, COMPONENTS["cart"], ENVIRONMENTS["prod"])
MIB = 1024 * 1024
PROTOBUF = {"Content-Type": "application/x-protobuf"}
OTLP_LIMIT = MIB  # the receiver's max_body_bytes in this test


def cri(text: str | bytes, stream: str = "stdout", tag: str = "F") -> bytes:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + ".123456789Z"
    content = text.encode() if isinstance(text, str) else text
    return f"{stamp} {stream} {tag} ".encode() + content + b"\n"


def binary_garbage(size: int, seed: int) -> bytes:
    """Bytes as from a core dump written to stdout by mistake, without newlines or spaces (so one physical
    line that no field split can make sense of), not starting with `{`."""
    rng = random.Random(seed)
    noise = bytes(b for b in rng.randbytes(size + size // 50) if b not in (0x0A, 0x20))[: size - 1]
    return b"\x01" + noise


#: What the tail must count for the file below, by `reason` label of collector_records_dropped_total (and of
#: collector_records_repaired_total for the lines kept but changed, `repaired:` here).
EXPECTED_TAIL_COUNTS = {
    "malformed": 4,  # two garbage lines, a 3 MiB garbage line (cut at the physical limit), one bare word
    "bad_stream": 1,
    "bad_timestamp": 1,
    "bad_tag": 1,
    "empty": 1,
    "bad_json": 1,
    "repaired:truncated": 2,  # a 1.5 MB line, and a P/P/F sequence of 1.8 MB
    "repaired:invalid_utf8": 1,
}


def write_pod_log(path: Path, good_from: int, good_to: int, *, bad: bool) -> set[str]:
    """Appends good lines `good_from`..`good_to - 1`, with every kind of bad input between them when `bad`;
    returns the bodies that must arrive (each unique: the rounds tell theirs apart by `good_from`)."""
    expected = set()
    mark = f"{good_from:03d} "
    lines: list[bytes] = []
    for n in range(good_from, good_to):
        lines.append(cri(f"good line {n:03d} level=info"))
        expected.add(f"good line {n:03d} level=info")
        if not bad:
            continue
        if n == good_from + 1:
            lines.append(binary_garbage(300, seed=1) + b"\n")
            lines.append(b"\0" * 5000 + b"\n")
            lines.append(binary_garbage(3 * MIB, seed=2) + b"\n")  # past the 1 MiB (+ envelope) physical limit
        elif n == good_from + 2:
            lines.append(cri(mark + "a" * 1_000_000))  # long, but within the 1 MiB limit: kept whole
            expected.add(mark + "a" * 1_000_000)
            lines.append(cri(mark + "b" * 1_500_000))  # cut at 1 MiB, marked
            expected.add((mark + "b" * MIB)[:MIB] + TRUNCATION_MARKER)
            lines += [cri(mark + "c" * 600_000, tag="P"), cri("c" * 600_000, tag="P"), cri("c" * 600_000)]
            expected.add((mark + "c" * MIB)[:MIB] + TRUNCATION_MARKER)
        elif n == good_from + 3:
            lines.append(cri(mark.encode() + b"caf\xc3\x28 \xff\xfe invalid utf-8"))
            expected.add(mark + "caf\ufffd( \ufffd\ufffd invalid utf-8")
        elif n == good_from + 4:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            lines += [
                f"{stamp} stdlog F wrong stream\n".encode(),
                b"yesterday stdout F no timestamp\n",
                f"{stamp} stdout X unknown tag\n".encode(),
                b"justoneword\n",
                b"\n",
                b'{"log": "unterminated docker json\n',
                f'{{"log":"{mark}docker line\\n","stream":"stderr","time":"{stamp}"}}\n'.encode(),
            ]
            expected.add(mark + "docker line")
    with open(path, "ab") as out:
        out.write(b"".join(lines))
    return expected


def config(node: Path) -> dict:
    return {
        "receivers": {
            "tail": {"paths": [str(node / "pods/*/*/*.log")], "checkpoint": str(node / "tail.json"), "refresh_s": 0.5},
            "otlp": {"port": free_port(), "max_body_bytes": OTLP_LIMIT},
        },
        "metadata": {"file": str(node / "pods.yaml")},
        "buffer": {"directory": str(node / "buffer")},
        "exporter": {"data_dir": str(node / "data")},
        "telemetry": {"port": free_port()},
    }


def wait_delivered(collector: Collector, records: int, timeout_s: float = 120) -> None:
    """Until the exporter has delivered `records` records and the buffer is empty."""
    deadline = time.monotonic() + timeout_s
    while True:
        out = collector.value("collector_records_out_total", pipeline="export")
        if out >= records and collector.value("collector_buffer_bytes") == 0:
            return
        assert time.monotonic() < deadline, f"{out} of {records} records delivered"
        time.sleep(0.5)


def stored_bodies(data_dir: Path) -> list[str]:
    backend = EmbeddedBackend(data_dir)
    try:
        page = asyncio.run(
            backend.query_logs(LogsQuery(scope=CART, range=TimeRange(0, 2**62), limit=10_000, sort="asc"))
        )
    finally:
        backend.close()
    return [log.body for log in page.items]


def refused(collector: Collector, status: int, reason: str, signal: str = "logs") -> float:
    return collector.value("collector_otlp_requests_refused_total", signal=signal, status=str(status), reason=reason)


def test_bad_tail_input_is_counted_by_reason_and_every_good_line_arrives(node: Path):
    log_file = next((node / "pods").glob("*/*")) / "0.log"
    expected = write_pod_log(log_file, 0, 10, bad=True)  # read from the head at start
    with collector(node, config(node)) as running:
        expected |= write_pod_log(log_file, 10, 20, bad=True)  # and while following the file
        expected |= write_pod_log(log_file, 20, 30, bad=False)
        wait_delivered(running, len(expected))
        counts = {
            reason: running.value("collector_records_repaired_total", pipeline="tail", reason=reason.split(":")[1])
            if reason.startswith("repaired:")
            else running.value("collector_records_dropped_total", pipeline="tail", reason=reason)
            for reason in EXPECTED_TAIL_COUNTS
        }
        assert running.process.poll() is None
    assert counts == {reason: 2 * count for reason, count in EXPECTED_TAIL_COUNTS.items()}  # two bad rounds
    bodies = stored_bodies(node / "data")
    assert len(bodies) == len(set(bodies)) == len(expected)
    assert set(bodies) == expected


def test_bad_otlp_exports_are_refused_with_a_reason_and_counted_and_good_ones_still_arrive(node: Path):
    document = config(node)
    del document["receivers"]["tail"]
    good_sent: list[str] = []
    with collector(node, document) as running:
        url = f"{running.otlp}/v1/logs"

        def good(tag: str) -> None:  # right after each bad export, a good one is accepted
            response = httpx.post(url, content=logs_body(f"good after {tag}"), headers=PROTOBUF, timeout=30)
            assert response.status_code == 200, response.text
            good_sent.append(f"good after {tag}")

        def post(tag: str, body: bytes, headers: dict[str, str], status: int, says: str) -> None:
            response = httpx.post(url, content=body, headers=headers, timeout=30)
            assert response.status_code == status, (tag, response.status_code)
            if response.headers["content-type"] == "application/x-protobuf":
                message = Status.FromString(response.content).message
            else:
                message = response.json()["message"]
            assert says in message, (tag, message)
            good(tag)

        valid = logs_body("never stored: the body is cut short")
        gzipped = {**PROTOBUF, "Content-Encoding": "gzip"}
        post("text", b"this is not protobuf at all", PROTOBUF, 400, "not a valid protobuf")
        post("truncated", valid[: len(valid) // 2], PROTOBUF, 400, "not a valid protobuf")
        post("json", b"{not json", {"Content-Type": "application/json"}, 400, "not valid JSON")
        post("content-type", valid, {"Content-Type": "text/plain"}, 415, "is not supported")
        post("encoding", valid, {**PROTOBUF, "Content-Encoding": "br"}, 415, "is not supported")
        post("gzip", b"\x1f\x8bnot gzip at all", gzipped, 400, "not valid gzip")
        post("gzip-cut", gzip.compress(valid)[:-12], gzipped, 400, "truncated")
        bomb = gzip.compress(bytes(64 * MIB))  # 64 KiB on the wire
        post("bomb", bomb, gzipped, 413, f"inflates to more than {OTLP_LIMIT} bytes")
        post("oversize", bytes(2 * MIB), PROTOBUF, 413, f"the limit is {OTLP_LIMIT}")
        post("batch-id", logs_body("bad id"), {**PROTOBUF, "X-Batch-Id": "spaces are not allowed"}, 400, "X-Batch-Id")

        wait_delivered(running, len(good_sent))
        assert refused(running, 400, "invalid_protobuf") == 2
        assert refused(running, 400, "invalid_json") == 1
        assert refused(running, 415, "unsupported_content_type") == 1
        assert refused(running, 415, "unsupported_content_encoding") == 1
        assert refused(running, 400, "invalid_gzip") == 2
        assert refused(running, 413, "inflated_too_large") == 1
        assert refused(running, 413, "too_large") == 1
        assert refused(running, 400, "invalid_batch_id") == 1
        assert running.value("collector_records_in_total", pipeline="otlp") == len(good_sent)
        assert running.process.poll() is None
    assert sorted(stored_bodies(node / "data")) == sorted(good_sent)
