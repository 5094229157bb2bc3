"""The Kubernetes side of the collector without a server: how an Event object becomes an `EventRecord`, the
checkpoint file, and the configuration (the real API server is in tests/integration/test_kubernetes_collector.py)."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import pytest
import yaml

from collectors.config import load
from collectors.kubernetes.events import Checkpoint, event_record, event_time_ns
from collectors.run import ConfigError, kubernetes_sources
from domain.model import Identity
from domain.timeutil import parse_rfc3339


def test_an_occurrence_is_timed_by_the_newest_time_the_event_carries():
    base = {"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"}}
    assert event_time_ns(base) == parse_rfc3339("2026-01-01T00:00:00Z")
    first = {**base, "firstTimestamp": "2026-01-01T00:00:01Z"}
    assert event_time_ns(first) == parse_rfc3339("2026-01-01T00:00:01Z")
    micro = {**first, "eventTime": "2026-01-01T00:00:02.123456Z"}
    assert event_time_ns(micro) == parse_rfc3339("2026-01-01T00:00:02.123456Z")
    repeated = {**micro, "lastTimestamp": "2026-01-01T00:05:00Z"}
    assert event_time_ns(repeated) == parse_rfc3339("2026-01-01T00:05:00Z")
    series = {**repeated, "series": {"count": 7, "lastObservedTime": "2026-01-01T00:09:00.5Z"}}
    assert event_time_ns(series) == parse_rfc3339("2026-01-01T00:09:00.5Z")
    garbled = {**base, "lastTimestamp": "yesterday"}
    assert event_time_ns(garbled) == parse_rfc3339("2026-01-01T00:00:00Z"), "an unparsable time is skipped"


def test_a_workflow_pods_event_gets_its_run_and_task_and_the_namespace_from_workflows_ns():
    event = {
        "metadata": {"namespace": "workflows-acme", "uid": "u", "resourceVersion": "7"},
        "involvedObject": {"kind": "Pod", "name": "build-42-compile-1", "namespace": "workflows-acme"},
        "reason": "Failed", "message": "exit code 1", "type": "Warning", "lastTimestamp": "2026-01-01T00:00:00Z",
    }  # fmt: skip
    labels = {"workflows.argoproj.io/workflow": "build-42", "workflows.argoproj.io/node-name": "build-42.compile"}
    record = event_record(event, labels)
    assert record.identity == Identity(
        namespace="acme", pod="build-42-compile-1", pod_namespace="workflows-acme",
        workflow_run="build-42", task="build-42.compile",
    )  # fmt: skip
    assert (record.type, record.reason, record.message) == ("Warning", "Failed", "exit code 1")
    assert record.object_kind == "Pod"


def test_an_event_about_a_cluster_scoped_object_has_no_scope():
    event = {"metadata": {"namespace": "default"}, "involvedObject": {"kind": "Node", "name": "node-1"}}
    record = event_record(event, {})
    assert record.identity == Identity(pod_namespace="default")
    assert (record.object_kind, record.object_name) == ("Node", "node-1")


def test_the_checkpoint_round_trips_and_a_damaged_one_means_starting_over(tmp_path: Path):
    checkpoint = Checkpoint(tmp_path / "state" / "events.json")
    assert checkpoint.load() == {}
    checkpoint.save({"": "120", "team-a": "99"})
    assert checkpoint.load() == {"": "120", "team-a": "99"}
    checkpoint.path.write_text("{not json")
    assert checkpoint.load() == {}
    checkpoint.path.write_text('["a list"]')
    assert checkpoint.load() == {}


def test_node_name_or_kubeconfig_from_the_environment_turns_the_kubernetes_metadata_on(tmp_path: Path):
    assert load(None, {}).metadata.kubernetes is None
    config = load(None, {"NODE_NAME": "node-1"})
    assert config.metadata.kubernetes is not None and config.metadata.kubernetes.node_name == "node-1"
    assert config.metadata.kubernetes.kubeconfig is None, "no kubeconfig: in-cluster"
    config = load(None, {"KUBECONFIG": str(tmp_path / "kubeconfig")})
    assert config.metadata.kubernetes is not None and config.metadata.kubernetes.node_name == ""
    assert load(None, {"KUBECONFIG": ""}).metadata.kubernetes.kubeconfig is None  # type: ignore[union-attr]

    path = tmp_path / "collector.yaml"
    path.write_text(yaml.safe_dump({"receivers": {"kubernetes_events": {"namespaces": ["a", "b"]}}}))
    events = load(path, {}).receivers.kubernetes_events
    assert events is not None and events.namespaces == ["a", "b"]
    assert events.checkpoint == Path("/var/lib/observer/k8s-events.json")


async def test_pod_metadata_from_both_the_api_and_a_file_is_refused(tmp_path: Path):
    config = load(None, {"NODE_NAME": "node-1", "COLLECTOR_METADATA_FILE": str(tmp_path / "pods.yaml")})
    async with AsyncExitStack() as stack:
        with pytest.raises(ConfigError, match="remove one"):
            await kubernetes_sources(config, stack)


async def test_nothing_kubernetes_is_started_unless_asked_for():
    async with AsyncExitStack() as stack:
        assert await kubernetes_sources(load(None, {"KUBECONFIG": "/nonexistent"}), stack) == (None, None)
