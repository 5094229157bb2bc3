"""Plain OpenTelemetry applications get a whole scope from the semantic conventions (domain/identity.py), the
same in the OTLP receiver of `observer up` and of the collector (both map through collectors/otlp/mapping.py)."""

from __future__ import annotations

from pathlib import Path

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from collectors.config import load
from collectors.otlp.encode import encode_batch
from collectors.otlp.mapping import map_logs, map_traces
from domain.identity import (
    DEFAULT_ENVIRONMENT,
    DEFAULT_PROJECT,
    derived_uid,
    identity_attributes,
    identity_from_attributes,
    plain_otel_identity,
)
from observer.config import Settings

PLAIN = {"service.name": "checkout", "service.namespace": "shop", "deployment.environment.name": "staging"}


def _resource(attrs: dict[str, str]) -> Resource:
    return Resource(attributes=[KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in attrs.items()])


def test_a_plain_otel_resource_is_a_whole_scope_with_uids_derived_from_the_names():
    identity = identity_from_attributes(PLAIN)
    assert (identity.namespace, identity.project, identity.component, identity.environment) == (
        "shop",
        "shop",
        "checkout",
        "staging",
    )
    assert identity.project_uid == derived_uid("project", "shop", "shop")
    assert identity.component_uid == derived_uid("component", "shop", "checkout")
    assert identity.environment_uid == derived_uid("environment", "shop", "staging")


def test_the_same_names_give_the_same_uids_every_time():
    """A restarted application (a new process, a new `service.instance.id`) is the same component."""
    first = identity_from_attributes({**PLAIN, "service.instance.id": "a"})
    second = identity_from_attributes({**PLAIN, "service.instance.id": "b"})
    assert first == second


def test_missing_namespace_and_environment_take_the_defaults():
    identity = identity_from_attributes({"service.name": "checkout"})
    assert (identity.namespace, identity.project, identity.environment) == (
        "default",
        DEFAULT_PROJECT,
        DEFAULT_ENVIRONMENT,
    )
    configured = identity_from_attributes({"service.name": "checkout"}, default_namespace="apps")
    assert (configured.namespace, configured.project) == ("apps", DEFAULT_PROJECT)
    assert configured.component_uid == derived_uid("component", "apps", "checkout")


def test_the_older_deployment_environment_attribute_counts():
    identity = identity_from_attributes({"service.name": "checkout", "deployment.environment": "prod"})
    assert identity.environment == "prod"
    both = {"service.name": "c", "deployment.environment.name": "new", "deployment.environment": "old"}
    assert identity_from_attributes(both).environment == "new"


def test_any_openchoreo_label_turns_the_plain_mapping_off():
    assert plain_otel_identity({**PLAIN, "openchoreo.dev/namespace": "acme"}) is None
    labelled = identity_from_attributes({**PLAIN, "openchoreo.dev/component-uid": "u"})
    assert labelled.namespace == ""
    assert labelled.component_uid == "u"


def test_no_service_name_or_the_sdk_placeholder_is_no_plain_application():
    assert plain_otel_identity({"service.namespace": "shop"}) is None
    assert plain_otel_identity({"service.name": "unknown_service:python"}) is None
    assert identity_from_attributes({"service.name": "unknown_service"}).namespace == ""


def test_argo_workflow_pods_keep_their_workflow_identity():
    attrs = {"service.name": "step", "k8s.namespace.name": "workflows-acme", "workflows.argoproj.io/workflow": "r"}
    identity = identity_from_attributes(attrs)
    assert (identity.namespace, identity.workflow_run, identity.component_uid) == ("acme", "r", "")


def test_where_it_ran_is_kept():
    identity = identity_from_attributes(
        {**PLAIN, "k8s.pod.name": "p-1", "k8s.namespace.name": "n", "k8s.container.name": "c"}
    )
    assert (identity.pod, identity.pod_namespace, identity.container) == ("p-1", "n", "c")


def test_the_plain_identity_survives_forwarding_as_labels():
    """A collector forwards records over OTLP with the identity as OpenChoreo labels (encode.py): read back by the
    next receiver they are the same identity, whatever that receiver's default namespace."""
    identity = identity_from_attributes({"service.name": "checkout"}, default_namespace="apps")
    assert identity_from_attributes(identity_attributes(identity), default_namespace="other") == identity


def test_the_receiver_mapping_uses_the_default_namespace_for_every_signal():
    logs = ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=_resource({"service.name": "checkout"}),
                scope_logs=[ScopeLogs(log_records=[LogRecord(time_unix_nano=1, body=AnyValue(string_value="hi"))])],
            )
        ]
    )
    (record,) = map_logs(logs, "apps").logs
    assert (record.identity.namespace, record.identity.component) == ("apps", "checkout")
    span = Span(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="GET /", start_time_unix_nano=1, end_time_unix_nano=2)
    traces = ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(resource=_resource(PLAIN), scope_spans=[ScopeSpans(spans=[span])])]
    )
    (mapped,) = map_traces(traces, "apps").spans
    assert mapped.identity == identity_from_attributes(PLAIN)


def test_a_forwarded_plain_span_maps_back_to_its_identity():
    traces = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=_resource({"service.name": "checkout"}),
                scope_spans=[
                    ScopeSpans(
                        spans=[
                            Span(
                                trace_id=b"\x01" * 16,
                                span_id=b"\x02" * 8,
                                name="GET /",
                                start_time_unix_nano=1,
                                end_time_unix_nano=2,
                            )
                        ]
                    )
                ],
            )
        ]
    )
    (span,) = map_traces(traces, "apps").spans
    (request,) = encode_batch(spans=[span])
    (again,) = map_traces(request.message(), "elsewhere").spans
    assert again.identity == span.identity


def test_both_processes_read_the_same_variable(tmp_path: Path):
    assert Settings(OBSERVER_DEFAULT_NAMESPACE="apps").default_namespace == "apps"
    assert Settings().default_namespace == "default"
    file = tmp_path / "collector.yaml"
    file.write_text("receivers: {otlp: {port: 4318}}\nexporter: {data_dir: " + str(tmp_path) + "}\n")
    assert load(file, {}).receivers.otlp.default_namespace == "default"  # type: ignore[union-attr]
    configured = load(file, {"OBSERVER_DEFAULT_NAMESPACE": "apps"})
    assert configured.receivers.otlp.default_namespace == "apps"  # type: ignore[union-attr]


def test_a_kubernetes_event_is_not_scoped_by_its_emitters_service_name():
    """An event is about its object: the collector that shipped it (its `service.name`) is not its scope."""
    record = LogRecord(
        time_unix_nano=1,
        body=AnyValue(string_value="Back-off restarting"),
        attributes=[KeyValue(key="k8s.event.reason", value=AnyValue(string_value="BackOff"))],
    )
    logs = ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(resource=_resource({"service.name": "otelcol"}), scope_logs=[ScopeLogs(log_records=[record])])
        ]
    )
    (event,) = map_logs(logs, "apps").events
    assert (event.identity.namespace, event.identity.component_uid) == ("", "")
