"""Documents written by OpenChoreo's own collectors are queryable, unchanged, through the Observer REST API.

An existing OpenChoreo observability plane already holds `container-logs-*` (Fluent Bit), `k8s-events-*` (the
events collector's OTel OpenSearch exporter, ss4o) and `otel-traces-*` (the OTel Collector's exporter, ss4o).
Pointing this Observer at that cluster must show those records as they are, so here they are indexed byte for
byte in the collectors' shapes (adapters-notes §1.2 "Stored document", §5, §2.2) with a plain opensearch-py
client, after `OpenSearchBackend.install` put the templates, exactly as the collectors would find them. Nothing
of ours touches them on the way in: no `level` field, dedotted pod-label keys in logs, flat dotted keys in
`resource`/`attributes`, millisecond `@timestamp`s and RFC3339Nano span times.

The module seeds one index prefix of its own (read-only tests share it) and deletes it, templates included.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from opensearchpy import AsyncOpenSearch

from adapters.embedded.backend import EmbeddedBackend
from adapters.opensearch.backend import OpenSearchBackend
from adapters.opensearch.client import OpenSearchConfig
from adapters.opensearch.layout import IndexLayout
from devservers.opensearch_layout import drop_layout, unique_layout
from observer.app import create_public_app
from observer.service import QueryService

pytestmark = pytest.mark.integration

# The platform, as OpenChoreo's API would name it; the resolver below knows these names and UIDs.
NS = f"native{uuid.uuid4().hex[:6]}"
PROJECT_UID = str(uuid.uuid4())
CART_UID, FRONTEND_UID = str(uuid.uuid4()), str(uuid.uuid4())
PROD_UID, DEV_UID = str(uuid.uuid4()), str(uuid.uuid4())
UIDS = {"cart": CART_UID, "frontend": FRONTEND_UID, "prod": PROD_UID, "dev": DEV_UID}

DAY = "2026-09-21"
WINDOW = {"startTime": f"{DAY}T09:00:00Z", "endTime": f"{DAY}T11:00:00Z"}
CART = {"namespace": NS, "project": "shop", "component": "cart", "environment": "prod"}
TRACE = "5b8efff798038103d269b633813fc60c"
LONE_TRACE = "0af7651916cd43dd8448eb211c80319c"


# ----------------------------------------------------------------------------------------------- documents


def fluent_bit(
    timestamp: str, line: str, component: str = "cart", environment: str = "prod", stream: str = "stdout"
) -> dict[str, Any]:
    """A container-log record as Fluent Bit's opensearch output stores it (`Logstash_Format On`, `Replace_Dots
    On`, `Merge_Log Off`): CRI fields, the raw line in `log`, and the kubernetes filter's metadata, with every pod
    label's dots replaced by `_` and its `/` kept. `time` is the runtime's own nanosecond stamp; `@timestamp`, the
    one queries use, has milliseconds."""
    pod = f"{component}-{environment}-7d9f8c6b5-x2x7k"
    return {
        "@timestamp": timestamp,
        "time": timestamp.replace("Z", "456789Z"),
        "stream": stream,
        "_p": "F",
        "log": line,
        "kubernetes": {
            "pod_name": pod,
            "namespace_name": f"dp-{NS}-shop-{environment}",
            "pod_id": str(uuid.uuid5(uuid.NAMESPACE_URL, pod)),
            "container_name": "main",
            "host": "worker-1",
            "container_image": f"registry.local/shop/{component}:1.4.2",
            "docker_id": "3f4e0b9c1d2a",
            "container_hash": f"registry.local/shop/{component}@sha256:9c2e",
            "labels": {
                "openchoreo_dev/namespace": NS,
                "openchoreo_dev/project": "shop",
                "openchoreo_dev/project-uid": PROJECT_UID,
                "openchoreo_dev/component": component,
                "openchoreo_dev/component-uid": UIDS[component],
                "openchoreo_dev/environment": environment,
                "openchoreo_dev/environment-uid": UIDS[environment],
                "app_kubernetes_io/name": component,
                "pod-template-hash": "7d9f8c6b5",
            },
            "annotations": {"kubectl_kubernetes_io/restartedAt": "2026-09-20T08:00:00Z"},
        },
    }


#: (record, the level the API must derive from the raw line). Lines from the loggers real workloads use.
CART_LINES = [
    (fluent_bit(f"{DAY}T10:00:01.123Z", '{"level":"info","msg":"listening on :8080"}'), "INFO"),
    (fluent_bit(f"{DAY}T10:00:02.250Z", '{"level":"error","msg":"boom"}', stream="stderr"), "ERROR"),
    (fluent_bit(f"{DAY}T10:00:03.500Z", 'time="2026-09-21T10:00:03Z" level=warning msg="cart 42 is slow"'), "WARN"),
    # klog: ERROR from the header, though the text never says "error".
    (
        fluent_bit(
            f"{DAY}T10:00:04.000Z",
            "E0921 10:00:04.000000       1 checkout.go:88] payment declined: card expired",
            stream="stderr",
        ),
        "ERROR",
    ),
    (fluent_bit(f"{DAY}T10:00:05.001Z", "SEVERE: Servlet.service() threw exception", stream="stderr"), "SEVERE"),
    (fluent_bit(f"{DAY}T10:00:06.000Z", "2026-09-21 10:00:06,000 - cart - DEBUG - cache miss for cart 42"), "DEBUG"),
    # INFO by its declared level, though the raw text holds "error".
    (fluent_bit(f"{DAY}T10:00:07.000Z", '{"level":"info","msg":"no error today"}'), "INFO"),
]
OTHER_LINES = [
    fluent_bit(f"{DAY}T10:00:08.000Z", "frontend error: upstream cart timed out", component="frontend"),
    fluent_bit(f"{DAY}T10:00:09.000Z", 'level=error msg="dev cart crashed"', environment="dev"),
]
#: Just after midnight, so in the next day's index.
NEXT_DAY_LINE = fluent_bit("2026-09-22T00:00:01.000Z", 'level=info msg="nightly cleanup"')


def k8s_event(
    timestamp: str, type_: str, reason: str, message: str, kind: str, name: str, component: str = "cart"
) -> dict[str, Any]:
    """A Kubernetes event as the events collector's OpenSearch exporter writes it (ss4o logs): flat dotted
    keys inside `attributes` and `resource`, the object's pod labels under `k8s.object.label.<key>`."""
    return {
        "@timestamp": timestamp,
        "observedTimestamp": timestamp,
        "body": message,
        "severity": {"text": type_, "number": 13 if type_ == "Warning" else 9},
        "attributes": {
            "k8s.event.reason": reason,
            "k8s.event.action": "",
            "k8s.event.name": f"{name}.17f3a2b4c5d6e7f8",
            "k8s.event.uid": str(uuid.uuid5(uuid.NAMESPACE_URL, message)),
            "k8s.event.count": 3,
            "k8s.namespace.name": f"dp-{NS}-shop-prod",
        },
        "resource": {
            "k8s.object.kind": kind,
            "k8s.object.name": name,
            "k8s.object.uid": str(uuid.uuid5(uuid.NAMESPACE_URL, name)),
            "k8s.object.api_version": "v1" if kind == "Pod" else "apps/v1",
            "k8s.object.resource_version": "48213",
            "k8s.object.label.openchoreo.dev/namespace": NS,
            "k8s.object.label.openchoreo.dev/project": "shop",
            "k8s.object.label.openchoreo.dev/project-uid": PROJECT_UID,
            "k8s.object.label.openchoreo.dev/component": component,
            "k8s.object.label.openchoreo.dev/component-uid": UIDS[component],
            "k8s.object.label.openchoreo.dev/environment": "prod",
            "k8s.object.label.openchoreo.dev/environment-uid": PROD_UID,
            "k8s.object.label.app.kubernetes.io/name": component,
        },
        "instrumentationScope": {"name": "", "version": ""},
        "traceId": "",
        "spanId": "",
    }


EVENTS = [
    k8s_event(
        f"{DAY}T10:00:10.123456789Z",
        "Warning",
        "BackOff",
        "Back-off restarting failed container main",
        "Pod",
        "cart-prod-7d9f8c6b5-x2x7k",
    ),
    k8s_event(
        f"{DAY}T10:00:11Z",
        "Normal",
        "ScalingReplicaSet",
        "Scaled up replica set cart-prod-7d9f8c6b5 to 2",
        "Deployment",
        "cart-prod",
    ),
    k8s_event(f"{DAY}T10:00:12Z", "Normal", "Pulled", "Container image pulled", "Pod", "frontend-prod-0", "frontend"),
]


def ss4o_span(
    trace_id: str,
    span_id: str,
    parent: str,
    name: str,
    kind: str,
    start: str,
    end: str,
    component: str,
    status: tuple[str, str] = ("Unset", ""),
    attributes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A span as the OTel Collector's OpenSearch exporter writes it (ss4o): pdata kind names, RFC3339Nano
    times, status codes `Ok|Error|Unset`, and every pod label copied into `resource` under its exact key by
    k8sattributes."""
    return {
        "traceId": trace_id,
        "spanId": span_id,
        "parentSpanId": parent,
        "name": name,
        "kind": kind,
        "startTime": start,
        "endTime": end,
        "status": {"code": status[0], "message": status[1]},
        "attributes": attributes or {},
        "resource": {
            "service.name": component,
            "telemetry.sdk.language": "go",
            "k8s.namespace.name": f"dp-{NS}-shop-prod",
            "k8s.node.name": "worker-1",
            "k8s.pod.name": f"{component}-prod-7d9f8c6b5-x2x7k",
            "k8s.pod.uid": str(uuid.uuid5(uuid.NAMESPACE_URL, component)),
            "k8s.deployment.name": f"{component}-prod",
            "openchoreo.dev/namespace": NS,
            "openchoreo.dev/project": "shop",
            "openchoreo.dev/project-uid": PROJECT_UID,
            "openchoreo.dev/component": component,
            "openchoreo.dev/component-uid": UIDS[component],
            "openchoreo.dev/environment": "prod",
            "openchoreo.dev/environment-uid": PROD_UID,
        },
        "instrumentationScope": {
            "name": "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp",
            "version": "0.53.0",
            "schemaUrl": "",
            "attributes": {},
            "droppedAttributesCount": 0,
        },
        "events": [],
        "links": [],
        "traceState": "",
        "droppedAttributesCount": 0,
        "droppedEventsCount": 0,
        "droppedLinksCount": 0,
    }


#: Frontend's GET /checkout calls cart, whose handler fails; and a lone cart trace that succeeds.
SPANS = [
    ss4o_span(
        TRACE,
        "a1b2c3d4e5f60001",
        "",
        "GET /checkout",
        "Server",
        f"{DAY}T10:00:20.100000001Z",
        f"{DAY}T10:00:20.190000002Z",
        "frontend",
        attributes={"http.request.method": "GET", "url.path": "/checkout"},
    ),
    ss4o_span(
        TRACE,
        "a1b2c3d4e5f60002",
        "a1b2c3d4e5f60001",
        "POST",
        "Client",
        f"{DAY}T10:00:20.101Z",
        f"{DAY}T10:00:20.180Z",
        "frontend",
        attributes={"http.request.method": "POST", "server.port": 8080},
    ),
    ss4o_span(
        TRACE,
        "a1b2c3d4e5f60003",
        "a1b2c3d4e5f60002",
        "POST /cart/checkout",
        "Server",
        f"{DAY}T10:00:20.102Z",
        f"{DAY}T10:00:20.179Z",
        "cart",
        ("Error", "payment declined"),
        {"http.request.method": "POST", "http.route": "/cart/checkout", "http.response.status_code": 502},
    ),
    ss4o_span(
        LONE_TRACE,
        "b1b2c3d4e5f60001",
        "",
        "GET /cart/{id}",
        "Server",
        f"{DAY}T10:00:30Z",
        f"{DAY}T10:00:30.005Z",
        "cart",
        ("Ok", ""),
        {"http.route": "/cart/{id}"},
    ),
]


# ----------------------------------------------------------------------------------------------- fixtures


async def index_as_collectors_do(client: AsyncOpenSearch, layout: IndexLayout) -> None:
    def day(prefix: str, stamp: str) -> str:
        return prefix + stamp[:10]  # daily, UTC: `Logstash_DateFormat %Y-%m-%d` / `yyyy-MM-dd`

    documents = [(day(layout.logs, doc["@timestamp"]), doc) for doc, _ in CART_LINES]
    documents += [(day(layout.logs, doc["@timestamp"]), doc) for doc in [*OTHER_LINES, NEXT_DAY_LINE]]
    documents += [(day(layout.events, doc["@timestamp"]), doc) for doc in EVENTS]
    documents += [(day(layout.traces, doc["startTime"]), doc) for doc in SPANS]
    for index, document in documents:  # ids generated by OpenSearch, as with Fluent Bit's Generate_ID
        await client.index(index=index, body=document)
    await client.indices.refresh(index=",".join(layout.pattern(p) for p in (layout.logs, layout.events, layout.traces)))


@pytest.fixture(scope="module")
async def api(opensearch_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[httpx.AsyncClient]:
    layout = unique_layout("native")
    backend = OpenSearchBackend(OpenSearchConfig(address=opensearch_url, layout=layout))
    direct = AsyncOpenSearch(hosts=[opensearch_url], max_retries=0, timeout=30)
    embedded = EmbeddedBackend(tmp_path_factory.mktemp("native-registry"))
    try:
        await backend.install(retention_days=30)  # templates first: the README's pitfall otherwise
        await index_as_collectors_do(direct, layout)
        embedded.registry.declare(
            {
                "namespaces": [
                    {
                        "name": NS,
                        "projects": [
                            {
                                "name": "shop",
                                "uid": PROJECT_UID,
                                "components": [
                                    {"name": "cart", "uid": CART_UID},
                                    {"name": "frontend", "uid": FRONTEND_UID},
                                ],
                            }
                        ],
                        "environments": [{"name": "prod", "uid": PROD_UID}, {"name": "dev", "uid": DEV_UID}],
                    }
                ]
            }
        )
        service = QueryService(embedded.registry, logs=backend, events=backend, traces=backend, metrics=embedded)
        transport = httpx.ASGITransport(create_public_app(service))
        async with httpx.AsyncClient(transport=transport, base_url="http://observer") as client:
            yield client
    finally:
        await drop_layout(direct, layout)
        await direct.close()
        await backend.close()
        embedded.close()


async def logs(api: httpx.AsyncClient, **request: Any) -> dict[str, Any]:
    response = await api.post("/api/v1/logs/query", json={**WINDOW, "searchScope": CART, "sortOrder": "asc", **request})
    assert response.status_code == 200, response.text
    return response.json()


def lines(body: dict[str, Any]) -> list[str]:
    return [entry["log"] for entry in body["logs"]]


# ----------------------------------------------------------------------------------------------- logs


async def test_fluent_bit_records_carry_names_uids_pod_and_a_level_derived_from_the_raw_line(api):
    body = await logs(api)
    assert body["total"] == len(CART_LINES)
    assert [(entry["log"], entry["level"]) for entry in body["logs"]] == [
        (doc["log"], level) for doc, level in CART_LINES
    ]
    assert body["logs"][1] == {
        # `@timestamp`, not the runtime's `time`; the same instant re-serialized RFC3339Nano-style (no trailing zeros)
        "timestamp": f"{DAY}T10:00:02.25Z",
        "log": '{"level":"error","msg":"boom"}',
        "level": "ERROR",
        "metadata": {
            "componentName": "cart",
            "projectName": "shop",
            "environmentName": "prod",
            "namespaceName": NS,
            "componentUid": CART_UID,
            "projectUid": PROJECT_UID,
            "environmentUid": PROD_UID,
            "containerName": "main",
            "podName": "cart-prod-7d9f8c6b5-x2x7k",
            "podNamespace": f"dp-{NS}-shop-prod",
        },
    }


async def test_level_filter_matches_level_words_in_the_raw_line_as_openchoreo_does(api):
    """Fluent Bit stores no level, so `logLevels` is a case-insensitive substring match on `log`, an ERROR
    filter also taking FATAL and SEVERE. Two consequences kept for compatibility: a klog `E...` line with no
    error word is not found (its displayed level is still ERROR), and an INFO line that mentions "error" is."""
    errors = await logs(api, logLevels=["ERROR"])
    assert [(entry["log"], entry["level"]) for entry in errors["logs"]] == [
        ('{"level":"error","msg":"boom"}', "ERROR"),
        ("SEVERE: Servlet.service() threw exception", "SEVERE"),
        ('{"level":"info","msg":"no error today"}', "INFO"),
    ]
    assert errors["total"] == 3
    warnings = await logs(api, logLevels=["WARN"])
    assert lines(warnings) == ['time="2026-09-21T10:00:03Z" level=warning msg="cart 42 is slow"']
    debug_or_warn = await logs(api, logLevels=["DEBUG", "WARN"])
    assert [entry["level"] for entry in debug_or_warn["logs"]] == ["WARN", "DEBUG"]


async def test_phrase_search_is_a_literal_case_sensitive_substring_of_the_raw_line(api):
    assert lines(await logs(api, searchPhrase="cart 42")) == [CART_LINES[2][0]["log"], CART_LINES[5][0]["log"]]
    assert lines(await logs(api, searchPhrase="Cart 42")) == []
    assert lines(await logs(api, searchPhrase='"msg":"boom"')) == [
        '{"level":"error","msg":"boom"}'
    ]  # quotes are literal
    assert lines(await logs(api, searchPhrase="Servlet.service()")) == ["SEVERE: Servlet.service() threw exception"]


async def test_millisecond_timestamps_bound_an_inclusive_window_exactly(api):
    exact = {"startTime": f"{DAY}T10:00:01.123Z", "endTime": f"{DAY}T10:00:02.250Z"}
    assert lines(await logs(api, **exact)) == [CART_LINES[0][0]["log"], CART_LINES[1][0]["log"]]
    inner = {"startTime": f"{DAY}T10:00:01.123000001Z", "endTime": f"{DAY}T10:00:02.249999999Z"}
    assert lines(await logs(api, **inner)) == []


async def test_scopes_select_records_by_their_pod_labels(api):
    project = await logs(api, searchScope={"namespace": NS, "project": "shop"})
    assert project["total"] == len(CART_LINES) + len(OTHER_LINES)
    frontend = await logs(api, searchScope={**CART, "component": "frontend"})
    assert [(e["log"], e["metadata"]["componentUid"]) for e in frontend["logs"]] == [
        (OTHER_LINES[0]["log"], FRONTEND_UID)
    ]
    dev = await logs(api, searchScope={**CART, "environment": "dev"})
    assert [(e["log"], e["metadata"]["environmentName"]) for e in dev["logs"]] == [(OTHER_LINES[1]["log"], "dev")]


async def test_a_window_across_midnight_reads_both_daily_indices(api):
    body = await logs(api, startTime=f"{DAY}T10:00:06Z", endTime="2026-09-22T01:00:00Z")
    assert lines(body) == [CART_LINES[5][0]["log"], CART_LINES[6][0]["log"], NEXT_DAY_LINE["log"]]
    assert body["logs"][-1]["timestamp"] == "2026-09-22T00:00:01Z"


# ----------------------------------------------------------------------------------------------- events


async def test_kubernetes_events_map_type_reason_message_and_object(api):
    response = await api.post("/api/v1/events/query", json={**WINDOW, "searchScope": CART})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == 2
    assert body["events"] == [
        {
            "timestamp": f"{DAY}T10:00:11Z",
            "message": "Scaled up replica set cart-prod-7d9f8c6b5 to 2",
            "type": "Normal",
            "reason": "ScalingReplicaSet",
            "metadata": {
                "componentName": "cart",
                "projectName": "shop",
                "environmentName": "prod",
                "namespaceName": NS,
                "componentUid": CART_UID,
                "projectUid": PROJECT_UID,
                "environmentUid": PROD_UID,
                "objectKind": "Deployment",
                "objectName": "cart-prod",
                "objectNamespace": f"dp-{NS}-shop-prod",
            },
        },
        {
            "timestamp": f"{DAY}T10:00:10.123456789Z",
            "message": "Back-off restarting failed container main",
            "type": "Warning",
            "reason": "BackOff",
            "metadata": {
                "componentName": "cart",
                "projectName": "shop",
                "environmentName": "prod",
                "namespaceName": NS,
                "componentUid": CART_UID,
                "projectUid": PROJECT_UID,
                "environmentUid": PROD_UID,
                "objectKind": "Pod",
                "objectName": "cart-prod-7d9f8c6b5-x2x7k",
                "objectNamespace": f"dp-{NS}-shop-prod",
            },
        },
    ]
    project = await api.post(
        "/api/v1/events/query", json={**WINDOW, "searchScope": {"namespace": NS, "project": "shop"}}
    )
    assert [event["reason"] for event in project.json()["events"]] == ["Pulled", "ScalingReplicaSet", "BackOff"]


# ----------------------------------------------------------------------------------------------- traces


async def test_trace_list_summarises_collector_spans(api):
    response = await api.post("/api/v1alpha1/traces/query", json={**WINDOW, "searchScope": CART, "sortOrder": "asc"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == 2
    assert body["traces"] == [
        {
            "traceId": TRACE,
            "traceName": "GET /checkout",  # the root is frontend's, though the scope is cart
            "spanCount": 3,
            "rootSpanId": "a1b2c3d4e5f60001",
            "rootSpanName": "GET /checkout",
            "rootSpanKind": "Server",
            "startTime": f"{DAY}T10:00:20.100000001Z",
            "endTime": f"{DAY}T10:00:20.190000002Z",
            "durationNs": 90_000_001,
            "hasErrors": True,  # status.code "Error", compared case-insensitively
        },
        {
            "traceId": LONE_TRACE,
            "traceName": "GET /cart/{id}",
            "spanCount": 1,
            "rootSpanId": "b1b2c3d4e5f60001",
            "rootSpanName": "GET /cart/{id}",
            "rootSpanKind": "Server",
            "startTime": f"{DAY}T10:00:30Z",
            "endTime": f"{DAY}T10:00:30.005Z",
            "durationNs": 5_000_000,
            "hasErrors": False,
        },
    ]


async def test_span_list_lowercases_status_and_carries_attributes(api):
    request = {
        **WINDOW,
        "searchScope": {"namespace": NS, "project": "shop"},
        "sortOrder": "asc",
        "includeAttributes": True,
    }
    response = await api.post(f"/api/v1alpha1/traces/{TRACE}/spans/query", json=request)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == 3
    spans = body["spans"]
    assert [(s["spanId"], s["spanKind"], s["status"]) for s in spans] == [
        ("a1b2c3d4e5f60001", "Server", {"code": "unset"}),  # an empty message is left out
        ("a1b2c3d4e5f60002", "Client", {"code": "unset"}),
        ("a1b2c3d4e5f60003", "Server", {"code": "error", "message": "payment declined"}),
    ]
    assert "parentSpanId" not in spans[0]  # "" for a root
    assert spans[1]["parentSpanId"] == "a1b2c3d4e5f60001"
    assert spans[1]["attributes"] == {"http.request.method": "POST", "server.port": 8080}  # native types kept
    assert spans[2]["resourceAttributes"]["openchoreo.dev/component-uid"] == CART_UID
    assert spans[2]["resourceAttributes"]["k8s.pod.name"] == "cart-prod-7d9f8c6b5-x2x7k"
    assert spans[0]["durationNs"] == 90_000_001


async def test_span_details_and_a_missing_span(api):
    response = await api.get(f"/api/v1alpha1/traces/{TRACE}/spans/a1b2c3d4e5f60003")
    assert response.status_code == 200, response.text
    span = response.json()
    assert span["spanName"] == "POST /cart/checkout"
    assert span["spanKind"] == "Server"
    assert span["parentSpanId"] == "a1b2c3d4e5f60002"
    assert span["status"] == {"code": "error", "message": "payment declined"}
    assert (span["startTime"], span["endTime"], span["durationNs"]) == (
        f"{DAY}T10:00:20.102Z",
        f"{DAY}T10:00:20.179Z",
        77_000_000,
    )
    assert span["attributes"] == {
        "http.request.method": "POST",
        "http.route": "/cart/checkout",
        "http.response.status_code": 502,
    }
    assert span["resourceAttributes"]["service.name"] == "cart"
    assert span["resourceAttributes"]["openchoreo.dev/namespace"] == NS

    missing = await api.get(f"/api/v1alpha1/traces/{TRACE}/spans/ffffffffffffffff")
    assert missing.status_code == 404
    assert missing.json() == {"title": "notFound", "errorCode": "OBS-V1-T-07", "message": "Span not found"}
