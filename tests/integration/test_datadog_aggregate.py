"""The local Datadog's Logs Aggregate and Spans Aggregate, driven by the official `datadog-api-client`: the
count of a filter is the number of records the search with the same filter finds, in the answer shapes the
client's models decode; groups by a tag, a reserved attribute or an array attribute, distinct counts and
timeseries as Datadog documents them; what the fake does not compute (histograms) is a 400, never a wrong
number."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from datadog_api_client import ApiClient, Configuration
from datadog_api_client.exceptions import ApiException
from datadog_api_client.v2.api.logs_api import LogsApi
from datadog_api_client.v2.api.spans_api import SpansApi
from datadog_api_client.v2.model.http_log import HTTPLog
from datadog_api_client.v2.model.http_log_item import HTTPLogItem
from datadog_api_client.v2.model.logs_aggregate_request import LogsAggregateRequest
from datadog_api_client.v2.model.logs_aggregation_function import LogsAggregationFunction
from datadog_api_client.v2.model.logs_compute import LogsCompute
from datadog_api_client.v2.model.logs_compute_type import LogsComputeType
from datadog_api_client.v2.model.logs_group_by import LogsGroupBy
from datadog_api_client.v2.model.logs_group_by_histogram import LogsGroupByHistogram
from datadog_api_client.v2.model.logs_query_filter import LogsQueryFilter
from datadog_api_client.v2.model.spans_aggregate_data import SpansAggregateData
from datadog_api_client.v2.model.spans_aggregate_request import SpansAggregateRequest
from datadog_api_client.v2.model.spans_aggregate_request_attributes import SpansAggregateRequestAttributes
from datadog_api_client.v2.model.spans_aggregate_request_type import SpansAggregateRequestType
from datadog_api_client.v2.model.spans_aggregation_function import SpansAggregationFunction
from datadog_api_client.v2.model.spans_compute import SpansCompute
from datadog_api_client.v2.model.spans_compute_type import SpansComputeType
from datadog_api_client.v2.model.spans_query_filter import SpansQueryFilter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from devservers.datadog import DatadogFake


@pytest.fixture
def api(datadog_fake: DatadogFake) -> Iterator[ApiClient]:
    configuration = Configuration(
        host=datadog_fake.url,
        api_key={"apiKeyAuth": datadog_fake.api_key, "appKeyAuth": datadog_fake.app_key},
    )
    with ApiClient(configuration) as client:
        yield client


def _log_count(api: ApiClient, query: str, **extra: object) -> int:
    request = LogsAggregateRequest(
        compute=[LogsCompute(aggregation=LogsAggregationFunction.COUNT, type=LogsComputeType.TOTAL)],
        filter=LogsQueryFilter(query=query, _from="now-1h", to="now+1m"),
        **extra,
    )
    buckets = LogsApi(api).aggregate_logs(body=request).data.buckets
    return int(buckets[0].computes["c0"])


def test_logs_aggregate_counts_what_search_finds(api: ApiClient) -> None:
    now_ms = time.time_ns() // 1_000_000
    entries = [
        HTTPLogItem(message=f"payment {i}", ddtags="env:prod", service="pay", status=status, timestamp=now_ms - i)
        for i, status in enumerate(["error", "error", "info", "warn", "error"])
    ]
    LogsApi(api).submit_log(HTTPLog(entries))
    assert _log_count(api, "service:pay") == 5
    assert _log_count(api, "service:pay status:error") == 3
    assert _log_count(api, 'service:pay "payment 3"') == 1
    assert _log_count(api, "service:nobody") == 0
    with pytest.raises(ApiException) as refused:
        _log_count(api, "service:pay", group_by=[LogsGroupBy(facet="@n", histogram=LogsGroupByHistogram(1, 10, 0))])
    assert refused.value.status == 400


def _aggregate(api: ApiClient, query: str, **extra: object) -> list[object]:
    request = LogsAggregateRequest(filter=LogsQueryFilter(query=query, _from="now-1h", to="now+1m"), **extra)
    return list(LogsApi(api).aggregate_logs(body=request).data.buckets)


def test_logs_aggregate_groups_distinct_counts_and_timeseries(api: ApiClient) -> None:
    now_ms = time.time_ns() // 1_000_000
    rows = [("error", ["a=1", "b=2"], "e1"), ("error", ["a=1"], "e1"), ("info", ["a=2"], "e2"), ("warn", [], "e3")]
    entries = [
        HTTPLogItem(message="m", service="grp", status=status, labels=labels, event=event, timestamp=now_ms - i)
        for i, (status, labels, event) in enumerate(rows)
    ]
    LogsApi(api).submit_log(HTTPLog(entries))
    count = LogsCompute(aggregation=LogsAggregationFunction.COUNT, type=LogsComputeType.TOTAL)
    by_status = _aggregate(api, "service:grp", compute=[count], group_by=[LogsGroupBy(facet="status", limit=10)])
    assert [(b.by["status"], b.computes["c0"]) for b in by_status] == [("error", 2), ("info", 1), ("warn", 1)]
    by_label = _aggregate(api, "service:grp", compute=[count], group_by=[LogsGroupBy(facet="@labels")])
    assert [(b.by["@labels"], b.computes["c0"]) for b in by_label] == [("a=1", 2), ("a=2", 1), ("b=2", 1)]
    distinct = LogsCompute(aggregation=LogsAggregationFunction.CARDINALITY, metric="@event", type=LogsComputeType.TOTAL)
    (total,) = _aggregate(api, "service:grp", compute=[distinct])
    assert total.computes["c0"] == 3
    series = LogsCompute(aggregation=LogsAggregationFunction.COUNT, type=LogsComputeType.TIMESERIES, interval="1h")
    (bucket,) = _aggregate(api, "service:grp status:error", compute=[series])
    assert sum(point.value for point in bucket.computes["c0"].value) == 2


def _otlp(count: int, base_ns: int) -> bytes:
    def kv(key: str, value: str) -> KeyValue:
        return KeyValue(key=key, value=AnyValue(string_value=value))

    spans = [
        Span(
            trace_id=bytes.fromhex("0af7651916cd43dd8448eb211c80319c"),
            span_id=(i + 1).to_bytes(8, "big"),
            name=f"op {i}",
            kind=Span.SPAN_KIND_SERVER,
            start_time_unix_nano=base_ns + i * 1_000_000,
            end_time_unix_nano=base_ns + i * 1_000_000 + 500_000,
        )
        for i in range(count)
    ]
    resource = ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])
    resource.resource.attributes.extend([kv("service.name", "checkout")])
    return ExportTraceServiceRequest(resource_spans=[resource]).SerializeToString()


def test_spans_aggregate_counts_what_search_finds(api: ApiClient, datadog_fake: DatadogFake) -> None:
    base_ns = (time.time_ns() // 1_000_000 - 30_000) * 1_000_000
    with httpx.Client(base_url=datadog_fake.url, headers={"dd-api-key": datadog_fake.api_key}) as http:
        sent = http.post("/v1/traces", content=_otlp(4, base_ns), headers={"Content-Type": "application/x-protobuf"})
        assert sent.status_code == 200

    def count(query: str) -> int:
        request = SpansAggregateRequest(
            data=SpansAggregateData(
                type=SpansAggregateRequestType.AGGREGATE_REQUEST,
                attributes=SpansAggregateRequestAttributes(
                    compute=[SpansCompute(aggregation=SpansAggregationFunction.COUNT, type=SpansComputeType.TOTAL)],
                    filter=SpansQueryFilter(query=query, _from="now-5m", to="now"),
                ),
            )
        )
        (bucket,) = SpansApi(api).aggregate_spans(body=request).data
        return int(bucket.attributes.compute["c0"])

    assert count("service:checkout") == 4
    assert count("service:checkout resource_name:op*") == 4
    assert count("service:elsewhere") == 0
