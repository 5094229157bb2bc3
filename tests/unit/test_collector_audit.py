"""Audit records from tailed lines (collectors/audit.py): only a configured trusted producer's well-formed audit
line becomes an audit record; every other line, a perfect forgery from any other container included, stays a
log line. Also the configuration that names the producers, and the tail pipeline's routing and counting."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import orjson
import pytest
from pydantic import ValidationError

from collectors.audit import AuditRouter, TrustedProducer, audit_record
from collectors.buffer import DiskBuffer
from collectors.codec import Batch
from collectors.config import load
from collectors.enrich import Enricher
from collectors.pipeline import tail_pipeline
from collectors.tail.model import TailedLine
from collectors.tail.paths import PodContainer
from collectors.tail.tailer import TailConfig, Tailer
from collectors.telemetry import CollectorTelemetry
from domain.audit import Actor, AuditRecord, AuditResource, Collected, audit_document

CONTROL_PLANE = PodContainer("openchoreo-control-plane", "controlplane-5d9f-abcde", "uid-1", "controlplane")
OBSERVER = PodContainer("openchoreo-observability-plane", "observer-0", "uid-2", "observer")
WORKLOAD = PodContainer("dp-acme-prod", "cart-7d9f-xyz", "uid-3", "main")
PRODUCERS = (
    TrustedProducer("openchoreo-control-plane", "controlplane"),
    TrustedProducer("openchoreo-observability-plane", "observer", pod_prefix="observer-"),
)
RECORD = AuditRecord(
    event_id="evt-1",
    time_ns=1_764_900_000_123_456_789,
    actor=Actor("user", "alice@acme.dev", entitlements=(("groups", ("platform-admin",)),)),
    action="alertrule.apply",
    category="management",
    result="success",
    surface="rest",
    producer="openchoreo-api",
    http_method="PUT",
    http_path="/api/v1/namespaces/acme/alertrules/cpu",
    resource=AuditResource(type="alertrule", namespace="acme", name="cpu"),
)
AUDIT_LINE = orjson.dumps(audit_document(RECORD)).decode()


def line(source: PodContainer, body: str, offset: int = 0) -> TailedLine:
    return TailedLine(1_764_900_000_000_000_000 + offset, "stdout", body, source, offset)


def split(lines: list[TailedLine], producers=PRODUCERS):
    enricher = Enricher()
    return AuditRouter(producers).split(lines, enricher.records(lines))


def test_a_trusted_producers_audit_line_becomes_an_audit_record_with_where_it_was_read():
    logs, audit = split([line(CONTROL_PLANE, AUDIT_LINE)])
    assert logs == []
    where = Collected("openchoreo-control-plane", "controlplane-5d9f-abcde", "controlplane")
    assert audit == [dataclasses.replace(RECORD, collector=where)]


def test_a_forged_audit_line_from_an_ordinary_workload_stays_a_log_line():
    logs, audit = split([line(WORKLOAD, AUDIT_LINE)])
    assert audit == []
    assert [record.body for record in logs] == [AUDIT_LINE]
    assert logs[0].identity.pod == WORKLOAD.pod


@pytest.mark.parametrize(
    "source",
    [
        PodContainer("openchoreo-control-plane", "controlplane-0", "u", "sidecar"),  # right namespace, wrong container
        PodContainer("default", "controlplane-0", "u", "controlplane"),  # right container, wrong namespace
        PodContainer("openchoreo-control-plane-x", "controlplane-0", "u", "controlplane"),  # no prefix match
        PodContainer("openchoreo-observability-plane", "impostor-0", "u", "observer"),  # pod prefix required
    ],
)
def test_namespace_container_and_pod_prefix_must_all_match(source: PodContainer):
    logs, audit = split([line(source, AUDIT_LINE)])
    assert (len(logs), audit) == (1, [])


def test_the_pod_prefix_admits_its_pods():
    _, audit = split([line(OBSERVER, AUDIT_LINE)])
    assert [record.collector for record in audit] == [Collected(OBSERVER.namespace, "observer-0", "observer")]


@pytest.mark.parametrize(
    "body",
    [
        "GET /healthz 200",  # a trusted producer's ordinary lines stay logs
        '{"level":"info","msg":"reconciled"}',  # JSON, but not an audit record
        AUDIT_LINE[:-5],  # truncated JSON
        AUDIT_LINE.replace('"management"', '"made-up"'),  # an unknown category
        AUDIT_LINE.replace('"event_id":"evt-1",', ""),  # no event id
        "[" * 5000 + "]" * 5000,  # deeply nested
        '{"schema_version":"1.0","event_id":"x"' + " " * 70_000 + "}",  # larger than any audit record
    ],
)
def test_a_trusted_producers_line_that_is_not_an_audit_record_stays_a_log_line(body: str):
    logs, audit = split([line(CONTROL_PLANE, body)])
    assert audit == []
    assert [record.body for record in logs] == [body]


def test_a_mixed_batch_keeps_its_logs_in_order():
    lines = [
        line(WORKLOAD, "one", 1),
        line(CONTROL_PLANE, AUDIT_LINE, 2),
        line(CONTROL_PLANE, "two", 3),
        line(WORKLOAD, AUDIT_LINE, 4),
        line(CONTROL_PLANE, AUDIT_LINE.replace("evt-1", "evt-2"), 5),
    ]
    logs, audit = split(lines)
    assert [record.body for record in logs] == ["one", "two", AUDIT_LINE]
    assert [record.event_id for record in audit] == ["evt-1", "evt-2"]


def test_without_trusted_producers_nothing_is_an_audit_record():
    logs, audit = split([line(CONTROL_PLANE, AUDIT_LINE)], producers=())
    assert (len(logs), audit) == (1, [])


def test_audit_record_reads_only_objects():
    assert audit_record(AUDIT_LINE, CONTROL_PLANE) is not None
    assert audit_record(" " + AUDIT_LINE, CONTROL_PLANE) is None


# ----------------------------------------------------------------------------------------------- configuration


def test_trusted_producers_and_the_cluster_come_from_the_configuration(tmp_path: Path):
    path = tmp_path / "collector.yaml"
    path.write_text(
        "cluster: prod-eu-1\n"
        "audit:\n"
        "  trusted_producers:\n"
        "    - {namespace: openchoreo-control-plane, container: controlplane}\n"
        "    - {namespace: obs, container: observer, pod_prefix: observer-}\n"
    )
    config = load(path, {})
    assert config.cluster == "prod-eu-1"
    assert [(p.namespace, p.container, p.pod_prefix) for p in config.audit.trusted_producers] == [
        ("openchoreo-control-plane", "controlplane", ""),
        ("obs", "observer", "observer-"),
    ]
    assert load(path, {"CLUSTER_NAME": "from-env"}).cluster == "from-env"
    assert load(None, {"CLUSTER_NAME": "only-env"}).cluster == "only-env"


@pytest.mark.parametrize(
    "producer",
    ["{namespace: '', container: c}", "{namespace: n}", "{namespace: n, container: c, pod: x}"],
)
def test_a_trusted_producer_needs_a_namespace_and_a_container_and_nothing_else(tmp_path: Path, producer: str):
    path = tmp_path / "collector.yaml"
    path.write_text(f"audit: {{trusted_producers: [{producer}]}}\n")
    with pytest.raises(ValidationError):
        load(path, {})


def test_the_audit_token_settings_are_read_and_never_shown(tmp_path: Path):
    path = tmp_path / "collector.yaml"
    path.write_text("receivers: {otlp: {}}\nexporter: {otlp: {endpoint: 'http://observer:4318'}}\n")
    config = load(path, {"OBSERVER_INTERNAL_TOKEN": "internal-secret-0123", "COLLECTOR_OTLP_AUDIT_TOKEN": "rx-0123"})
    assert config.exporter.otlp is not None and config.exporter.otlp.audit_token == "internal-secret-0123"
    assert config.receivers.otlp is not None and config.receivers.otlp.audit_token == "rx-0123"
    assert "internal-secret" not in repr(config) and "rx-0123" not in repr(config)
    # the token alone turns neither forwarding nor the receiver on
    assert load(None, {"OBSERVER_INTERNAL_TOKEN": "x" * 20}).exporter.otlp is None


# ----------------------------------------------------------------------------------------------- the pipeline


def write_cri(path: Path, bodies: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as out:
        for body in bodies:
            out.write(f"2026-12-05T06:00:00.000000000Z stdout F {body}\n")


def test_the_tail_pipeline_routes_trusted_audit_lines_into_the_batch_and_counts_them(tmp_path: Path):
    pods = tmp_path / "pods"
    write_cri(pods / "openchoreo-control-plane_controlplane-0_uid-1/controlplane/0.log", [AUDIT_LINE, "plain"])
    write_cri(pods / "dp-acme-prod_cart-0_uid-3/main/0.log", [AUDIT_LINE])
    telemetry = CollectorTelemetry()

    async def run() -> list:
        buffer = DiskBuffer(tmp_path / "buffer", max_bytes=1 << 24)
        tailer = Tailer(TailConfig(checkpoint_path=tmp_path / "tail.json", globs=(str(pods / "*/*/*.log"),)))
        task = asyncio.create_task(
            tail_pipeline(tailer, Enricher(cluster="prod-eu-1"), buffer, telemetry, audit=AuditRouter(PRODUCERS))
        )
        batches: list[Batch] = []
        try:
            while sum(len(batch) for batch in batches) < 3:  # two logs and the audit record
                seq, batch = await asyncio.wait_for(buffer.next(), 30)
                buffer.ack(seq)
                batches.append(batch)
            counted = telemetry.audit_records.labels("tail")

            async def until_counted() -> None:  # counted right after the append the buffer handed over
                while counted._value.get() < 1:
                    await asyncio.sleep(0.01)

            await asyncio.wait_for(until_counted(), 30)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            buffer.close()
        return batches

    batches = asyncio.run(run())
    logs = [record for batch in batches for record in batch.logs]
    audit = [record for batch in batches for record in batch.audit]
    assert sorted((record.identity.pod, record.body) for record in logs) == [
        ("cart-0", AUDIT_LINE),
        ("controlplane-0", "plain"),
    ]
    assert {record.identity.cluster for record in logs} == {"prod-eu-1"}
    assert [(record.event_id, record.collector) for record in audit] == [
        ("evt-1", Collected("openchoreo-control-plane", "controlplane-0", "controlplane"))
    ]
    assert telemetry.audit_records.labels("tail")._value.get() == 1
