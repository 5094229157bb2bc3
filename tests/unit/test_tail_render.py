"""A tail's `log` events carry exactly the logs query's entries: the fast renderer against wire.py's, byte for byte."""

from __future__ import annotations

import random
from dataclasses import replace

import orjson

from devservers.sample import BASE_NS, identity
from domain.model import LogRecord
from observer.tail.render import LOG_EVENT, ComponentEntries, entry_json, workflow_entries
from observer.wire import component_log_entries, workflow_log_entry


def records() -> list[LogRecord]:
    chance = random.Random(18)
    who = [
        identity("cart"),
        identity("frontend", "dev"),
        replace(identity("cart"), component_uid="not-a-uuid", project=""),  # UIDs shown only when real UUIDs
        replace(identity("payments"), pod="", container=""),
    ]
    bodies = ["plain", 'quotes " and \\ backslash', "ünïcödé ✓", "tab\there\nnewline", "", "x" * 300]
    out = []
    for n in range(400):
        ts = BASE_NS + chance.choice([0, 1, 10, 999_999_999, 1_000_000_000, 86_400 * 10**9 - 1]) + n * 7_777_777
        out.append(
            LogRecord(
                ts,
                chance.choice(bodies),
                chance.choice(who),
                level=chance.choice(["", "INFO", "ERROR", "FATAL"]),
                trace_id=chance.choice(["", f"{n + 1:032x}"]),
                span_id=chance.choice(["", f"{n + 1:016x}"]),
            )
        )
    return out


def test_component_events_are_the_logs_query_entries_byte_for_byte():
    lines = records()
    events = ComponentEntries(remembered=2)(lines)  # a tiny cache: forgetting must not change a byte
    assert [event[len(LOG_EVENT) : -2] for event in events] == [
        orjson.dumps(entry) for entry in component_log_entries(lines)
    ]
    assert all(event.startswith(LOG_EVENT) and event.endswith(b"}\n\n") and event.count(b"\n") == 3 for event in events)
    assert entry_json(events[0]) == component_log_entries(lines[:1])[0]


def test_workflow_events_are_the_logs_query_workflow_entries():
    lines = records()[:20]
    assert [entry_json(event) for event in workflow_entries(lines)] == [workflow_log_entry(each) for each in lines]
