"""The real collector process (`observer collect`, devservers/collector.py) tailing container log files and
forwarding over OTLP/HTTP to a real receiver (collectors/otlp/receiver.py, served over HTTP) that holds the
internal token: the trusted producer's audit line arrives as an audit record, a forged audit line printed by an
ordinary workload arrives as a log line of that workload, and every line carries the collector's cluster and the
pod's placement. Without the internal token, the receiver takes even the trusted producer's record as a log."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import orjson
import pytest

from adapters.protocols import WriteResult
from collectors.otlp.receiver import build_otlp_app
from devservers.collector import collector
from devservers.local import serving
from domain.audit import Actor, AuditRecord, AuditResource, Collected, audit_document
from domain.model import LogRecord

pytestmark = pytest.mark.integration

TOKEN = "internal-token-0123456789abcdef"
RECORD = AuditRecord(
    event_id="evt-42",
    time_ns=1_764_900_000_000_000_042,
    actor=Actor("user", "alice@acme.dev"),
    action="incident.update",
    category="management",
    result="success",
    surface="rest",
    producer="observer",
    resource=AuditResource(type="incident", namespace="acme", name="inc-1"),
)
AUDIT_LINE = orjson.dumps(audit_document(RECORD)).decode()
FORGED_LINE = AUDIT_LINE.replace("evt-42", "evt-forged").replace("alice@acme.dev", "mallory")
TRUSTED_DIR = "openchoreo-observability-plane_observer-0_uid-obs/observer"
WORKLOAD_DIR = "dp-acme-prod_cart-0_uid-cart/main"


class Recording:
    """The receiver's sink: what arrived, as logs and as audit records."""

    def __init__(self) -> None:
        self.logs: list[LogRecord] = []
        self.audit: list[AuditRecord] = []

    async def write(self, *, batch_id: str, logs=(), events=(), spans=(), metrics=(), audit=()) -> WriteResult:
        self.logs += logs
        self.audit += audit
        return WriteResult.delivered()


def write_lines(path: Path, bodies: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as out:
        for body in bodies:
            out.write(f"2026-12-05T06:00:00.000000000Z stdout F {body}\n")


def node(tmp_path: Path, endpoint: str) -> dict:
    """Two pods' log files, their metadata, and the collector's configuration forwarding to `endpoint`."""
    pods = tmp_path / "pods"
    write_lines(pods / TRUSTED_DIR / "0.log", [AUDIT_LINE, "GET /health 200"])
    write_lines(pods / WORKLOAD_DIR / "0.log", [FORGED_LINE])
    (tmp_path / "pods.yaml").write_text(
        "pods:\n"
        "  - {namespace: dp-acme-prod, name: cart-0, labels: {app: cart}, node: node-a, podIP: 10.0.0.5,"
        " images: {main: 'ghcr.io/acme/cart:1.4'}}\n"
    )
    return {
        "cluster": "prod-eu-1",
        "receivers": {
            "tail": {
                "paths": [str(pods / "*/*/*.log")],
                "checkpoint": str(tmp_path / "tail.json"),
                "refresh_s": 0.2,
            }
        },
        "metadata": {"file": str(tmp_path / "pods.yaml")},
        "buffer": {"directory": str(tmp_path / "buffer")},
        "exporter": {"otlp": {"endpoint": endpoint}},
        "audit": {
            "trusted_producers": [
                {"namespace": "openchoreo-observability-plane", "container": "observer", "pod_prefix": "observer-"}
            ]
        },
    }


def wait_for(sink: Recording, records: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while len(sink.logs) + len(sink.audit) < records:
        if time.monotonic() > deadline:
            raise AssertionError(f"only {len(sink.logs)} logs and {len(sink.audit)} audit records arrived")
        time.sleep(0.1)


def test_only_the_trusted_producers_audit_line_is_an_audit_record(tmp_path: Path):
    sink = Recording()
    with serving(build_otlp_app(sink, audit_token=TOKEN)) as url:
        with collector(tmp_path, node(tmp_path, url), env={"OBSERVER_INTERNAL_TOKEN": TOKEN}) as running:
            wait_for(sink, 3)
            routed = running.value("collector_audit_records_total", pipeline="tail")
    assert routed == 1
    where = Collected("openchoreo-observability-plane", "observer-0", "observer")
    assert sink.audit == [dataclasses.replace(RECORD, collector=where)]
    by_body = {record.body: record for record in sink.logs}
    assert set(by_body) == {FORGED_LINE, "GET /health 200"}  # the forgery is stored, as a log line
    forged = by_body[FORGED_LINE].identity
    assert (forged.pod_namespace, forged.pod, forged.container) == ("dp-acme-prod", "cart-0", "main")
    assert (forged.cluster, forged.node, forged.pod_ip, forged.image) == (
        "prod-eu-1",
        "node-a",
        "10.0.0.5",
        "ghcr.io/acme/cart:1.4",
    )
    assert forged.labels == (("app", "cart"),)
    assert by_body["GET /health 200"].identity.cluster == "prod-eu-1"  # a pod the metadata does not know


def test_without_the_internal_token_the_receiver_takes_even_a_trusted_record_as_a_log_line(tmp_path: Path):
    sink = Recording()
    with serving(build_otlp_app(sink, audit_token=TOKEN)) as url:
        with collector(tmp_path, node(tmp_path, url), env={"OBSERVER_INTERNAL_TOKEN": "not-the-token-0123456789"}):
            wait_for(sink, 3)
    assert sink.audit == []
    by_pod = {record.identity.pod: record for record in sink.logs if record.body != "GET /health 200"}
    assert by_pod["cart-0"].body == FORGED_LINE
    # the record as forwarded (with where it was read), stored as a log line of the pod that wrote it
    assert orjson.loads(by_pod["observer-0"].body)["event_id"] == "evt-42"
    assert by_pod["observer-0"].identity.container == "observer"


class Headers:
    """In front of the receiver: the path and Authorization header of every request."""

    def __init__(self, app) -> None:
        self.app = app
        self.seen: list[tuple[str, str]] = []

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            self.seen.append((scope["path"], headers.get(b"authorization", b"").decode()))
        await self.app(scope, receive, send)


async def test_the_exporter_sends_the_internal_token_with_audit_records_only():
    """A gateway's bearer token stays on ordinary exports; the internal token goes only where it is needed."""
    from collectors.exporters.otlp import OtlpExporter
    from devservers.sample import identity

    sink = Recording()
    tap = Headers(build_otlp_app(sink, audit_token=TOKEN))
    with serving(tap) as url:
        exporter = OtlpExporter(url, bearer_token="gateway-token", audit_token=TOKEN)
        try:
            log = LogRecord(1_764_900_000_000_000_000, "hello", identity("cart"))
            result = await exporter.write(batch_id="b-1", logs=[log], audit=[RECORD])
        finally:
            await exporter.aclose()
    assert result.outcome == "delivered"
    assert tap.seen == [("/v1/logs", "Bearer gateway-token"), ("/v1/logs", f"Bearer {TOKEN}")]
    assert (len(sink.logs), sink.audit) == (1, [RECORD])


async def test_into_the_embedded_store_the_forgery_is_a_log_and_the_trusted_record_is_in_the_trail(tmp_path: Path):
    """The collector writing straight into an embedded store: the trail holds the trusted producer's record only;
    the forged line is found among the platform logs of the workload that printed it, with its placement."""
    from adapters.embedded.backend import EmbeddedBackend
    from domain.audit import AuditQuery
    from domain.model import TimeRange
    from domain.platform import PlatformLogsQuery

    document = node(tmp_path, "http://unused.invalid")
    document["exporter"] = {"data_dir": str(tmp_path / "data")}
    window = TimeRange(0, 4_000_000_000 * 10**9)
    with collector(tmp_path, document) as running:
        deadline = time.monotonic() + 60
        while running.value("collector_destination_records_out_total", destination="embedded") < 3:
            assert time.monotonic() < deadline, f"nothing stored; see {tmp_path / 'collector.log'}"
            time.sleep(0.1)
    backend = EmbeddedBackend(tmp_path / "data")
    try:
        trail = await backend.query_audit(AuditQuery(window))
        workload = await backend.query_platform_logs(
            PlatformLogsQuery(window, clusters=("prod-eu-1",), namespaces=("dp-acme-prod",), labels=(("app", "cart"),))
        )
        everything = await backend.query_platform_logs(PlatformLogsQuery(window))
    finally:
        backend.close()
    assert [record.event_id for record in trail.records] == ["evt-42"]
    assert trail.records[0].collector == Collected("openchoreo-observability-plane", "observer-0", "observer")
    assert [line.body for line in workload.items] == [FORGED_LINE]
    assert sorted(line.body for line in everything.items) == sorted([FORGED_LINE, "GET /health 200"])
