"""The recorder: a sink write per record (its event id the batch id), retried within bounds when the sink asks,
given up and counted (never raised) when it keeps refusing; one JSON line per record on a stream, the record's
one document; AUDIT_LOG chooses the writers."""

from __future__ import annotations

import io
from collections.abc import Sequence

import orjson
import pytest

from adapters.protocols import WriteResult
from audit.settings import AuditSettings
from audit.trail import AuditTrail, NotStored, SinkWriter, StreamWriter, new_event_id
from domain.audit import Actor, AuditRecord, AuditResource, audit_from_document


def record(**overrides: object) -> AuditRecord:
    fields: dict[str, object] = {
        "event_id": new_event_id(),
        "time_ns": 1_767_225_600_000_000_000,
        "actor": Actor("user", "alice", "https://idp.example", entitlements=(("groups", ("devs",)),)),
        "action": "incident.update",
        "category": "management",
        "result": "success",
        "surface": "rest",
        "resource": AuditResource(type="incident", name="inc-1"),
    }
    fields.update(overrides)
    return AuditRecord(**fields)  # type: ignore[arg-type]


class Sink:
    """A TelemetrySink that answers from a script (then delivers), keeping what it stored by batch id."""

    def __init__(self, *answers: WriteResult | Exception) -> None:
        self.answers = list(answers)
        self.calls: list[str] = []
        self.stored: dict[str, list[AuditRecord]] = {}

    async def write(self, *, batch_id: str, audit: Sequence[AuditRecord] = (), **_: object) -> WriteResult:
        self.calls.append(batch_id)
        if self.answers:
            answer = self.answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            if answer.outcome != "delivered":
                return answer
        self.stored[batch_id] = list(audit)
        return WriteResult.delivered()


class Sleeps:
    def __init__(self) -> None:
        self.slept: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)


async def test_a_record_is_one_batch_whose_id_is_the_event_id():
    sink = Sink()
    one = record()
    await SinkWriter(sink).write(one)
    assert sink.stored == {one.event_id: [one]}


async def test_a_retry_is_tried_again_with_growing_bounded_backoff_and_what_the_sink_asked():
    sleeps = Sleeps()
    sink = Sink(WriteResult.retry(reason="busy"), ConnectionError("down"), WriteResult.retry(after=0.5))
    writer = SinkWriter(sink, attempts=4, first_backoff_s=0.1, max_backoff_s=0.4, sleep=sleeps)
    one = record()
    await writer.write(one)
    assert sink.calls == [one.event_id] * 4  # the same batch id each time: a late success is stored once
    assert sleeps.slept == [0.1, 0.2, 0.4]  # exponential, and the sink's 0.5 s is capped at the maximum


async def test_a_sink_that_keeps_asking_to_retry_is_given_up_after_the_attempts():
    sleeps = Sleeps()
    sink = Sink(*[WriteResult.retry(reason="busy")] * 10)
    with pytest.raises(NotStored, match="busy"):
        await SinkWriter(sink, attempts=3, sleep=sleeps).write(record())
    assert len(sink.calls) == 3 and len(sleeps.slept) == 2


async def test_a_dropped_record_is_not_retried():
    sink = Sink(WriteResult.dropped("mapping conflict", 1))
    with pytest.raises(NotStored, match="mapping conflict"):
        await SinkWriter(sink, sleep=Sleeps()).write(record())
    assert len(sink.calls) == 1


async def test_the_trail_never_raises_counts_what_it_lost_and_logs_no_secret(caplog):
    sink = Sink(WriteResult.dropped("refused", 1))
    trail = AuditTrail("observer", [SinkWriter(sink, sleep=Sleeps())])
    secret = record(actor=Actor("user", "alice", entitlements=(("groups", ("s3cr3t-group",)),)))
    await trail.record(secret)
    assert (trail.stored, trail.failed) == (0, 1)
    assert secret.event_id in caplog.text and "s3cr3t" not in caplog.text


async def test_the_trail_names_its_producer_on_records_that_name_none():
    sink = Sink()
    trail = AuditTrail("openchoreo-api", [SinkWriter(sink)])
    await trail.record(record())
    await trail.record(record(producer="observer"))
    assert sorted(records[0].producer for records in sink.stored.values()) == ["observer", "openchoreo-api"]
    assert trail.stored == 2


async def test_a_trail_without_writers_is_off_and_redirect_turns_it_on():
    trail = AuditTrail("openchoreo-api")
    assert not trail.enabled
    await trail.record(record())  # nothing to do, nothing raised
    sink = Sink()
    trail.redirect([SinkWriter(sink)])
    assert trail.enabled
    await trail.record(record())
    assert len(sink.stored) == 1


async def test_a_stream_gets_one_line_per_record_each_the_records_document():
    stream = io.StringIO()
    writer = StreamWriter(stream)
    first, second = record(), record(action="alertrule.apply", result="denied", category="authorization")
    await writer.write(first)
    await writer.write(second)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert audit_from_document(orjson.loads(lines[0])) == first
    assert audit_from_document(orjson.loads(lines[1])) == second


async def test_a_closed_stream_is_not_stored_not_a_crash():
    stream = io.StringIO()
    stream.close()
    trail = AuditTrail("observer", [StreamWriter(stream)])
    await trail.record(record())
    assert trail.failed == 1


@pytest.mark.parametrize(
    ("value", "destinations"),
    [("sink", ("sink",)), ("stdout", ("stdout",)), ("sink,stdout", ("sink", "stdout")), ("off", ()), ("", ("sink",))],
)
def test_audit_log_chooses_the_writers(value, destinations):
    assert AuditSettings.from_env({"AUDIT_LOG": value}).destinations == destinations


def test_the_default_differs_per_process_and_bad_values_say_what_is_accepted():
    assert AuditSettings.from_env({}, default="stdout").destinations == ("stdout",)
    with pytest.raises(ValueError, match="AUDIT_LOG='syslog': expected sink, stdout"):
        AuditSettings.from_env({"AUDIT_LOG": "syslog"})
    with pytest.raises(ValueError, match="AUDIT_TRUST_FORWARDED_FOR"):
        AuditSettings.from_env({"AUDIT_TRUST_FORWARDED_FOR": "maybe"})
    assert AuditSettings.from_env({"AUDIT_TRUST_FORWARDED_FOR": "true"}).trust_forwarded_for


def test_sink_without_a_plane_leaves_the_sink_out():
    settings = AuditSettings.from_env({"AUDIT_LOG": "sink,stdout"})
    writers = settings.writers(None, io.StringIO())
    assert [type(writer) for writer in writers] == [StreamWriter]
    assert [type(writer) for writer in settings.writers(Sink(), io.StringIO())] == [SinkWriter, StreamWriter]
    assert not settings.trail("observer", None, io.StringIO()).trust_forwarded_for


async def test_observer_up_records_into_the_planes_audit_backend_and_so_does_a_control_plane_beside_it(tmp_path):
    """runtime.audit_trail_for: `sink` is the plane's own sink (the embedded backend here), and the trail of a
    control plane served in the same process is redirected there, each record under its producer."""
    from domain.audit import AuditQuery
    from domain.model import TimeRange
    from observer.config import Settings
    from observer.runtime import audit_trail_for, build_plane

    plane = await build_plane(Settings(data_dir=tmp_path / "data"))  # type: ignore[call-arg]
    try:
        companion = AuditTrail("openchoreo-api", [StreamWriter(io.StringIO())])
        trail = audit_trail_for(plane, AuditSettings(("sink",)), [companion])
        await trail.record(record(action="incident.update"))
        await companion.record(record(action="component.create"))
        assert (trail.stored, companion.stored) == (1, 1)
        audit = plane.backends.served("audit")
        page = await audit.query_audit(AuditQuery(TimeRange(0, 2**62), sort="asc"))
        assert sorted((r.producer, r.action) for r in page.records) == [
            ("observer", "incident.update"),
            ("openchoreo-api", "component.create"),
        ]
    finally:
        await plane.backends.close()
