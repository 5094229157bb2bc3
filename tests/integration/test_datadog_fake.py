"""The local Datadog speaks Datadog: the official `datadog-api-client` (generated from Datadog's OpenAPI spec)
drives every endpoint of the fake over HTTP, and what it sends is what the fake checks and answers.

What is proven here: intake then search finds the logs, with the query syntax the adapter uses; cursor paging
walks everything exactly once; metrics come back aggregated per interval and group; OTLP spans come back from
the spans search; monitors round-trip through create, read, list by tag, update, validate and delete; bodies the
client's models refuse are 400s; keys are checked; rate-limit headers, injected 429s and outages behave; a
monitor's state change reaches the webhook its message names, with the configured template filled in.
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from datadog_api_client import ApiClient, Configuration
from datadog_api_client.exceptions import ApiException, ForbiddenException
from datadog_api_client.v1.api.monitors_api import MonitorsApi
from datadog_api_client.v1.api.webhooks_integration_api import WebhooksIntegrationApi
from datadog_api_client.v1.model.monitor import Monitor
from datadog_api_client.v1.model.monitor_options import MonitorOptions
from datadog_api_client.v1.model.monitor_thresholds import MonitorThresholds
from datadog_api_client.v1.model.monitor_type import MonitorType
from datadog_api_client.v1.model.monitor_update_request import MonitorUpdateRequest
from datadog_api_client.v1.model.webhooks_integration import WebhooksIntegration
from datadog_api_client.v1.model.webhooks_integration_encoding import WebhooksIntegrationEncoding
from datadog_api_client.v2.api.logs_api import LogsApi
from datadog_api_client.v2.api.metrics_api import MetricsApi
from datadog_api_client.v2.api.spans_api import SpansApi
from datadog_api_client.v2.model.content_encoding import ContentEncoding
from datadog_api_client.v2.model.http_log import HTTPLog
from datadog_api_client.v2.model.http_log_item import HTTPLogItem
from datadog_api_client.v2.model.logs_list_request import LogsListRequest
from datadog_api_client.v2.model.logs_list_request_page import LogsListRequestPage
from datadog_api_client.v2.model.logs_query_filter import LogsQueryFilter
from datadog_api_client.v2.model.logs_sort import LogsSort
from datadog_api_client.v2.model.metric_intake_type import MetricIntakeType
from datadog_api_client.v2.model.metric_payload import MetricPayload
from datadog_api_client.v2.model.metric_point import MetricPoint
from datadog_api_client.v2.model.metric_series import MetricSeries
from datadog_api_client.v2.model.metrics_data_source import MetricsDataSource
from datadog_api_client.v2.model.metrics_timeseries_query import MetricsTimeseriesQuery
from datadog_api_client.v2.model.query_formula import QueryFormula
from datadog_api_client.v2.model.spans_list_request import SpansListRequest
from datadog_api_client.v2.model.spans_list_request_attributes import SpansListRequestAttributes
from datadog_api_client.v2.model.spans_list_request_data import SpansListRequestData
from datadog_api_client.v2.model.spans_list_request_page import SpansListRequestPage
from datadog_api_client.v2.model.spans_list_request_type import SpansListRequestType
from datadog_api_client.v2.model.spans_query_filter import SpansQueryFilter
from datadog_api_client.v2.model.spans_sort import SpansSort
from datadog_api_client.v2.model.timeseries_formula_query_request import TimeseriesFormulaQueryRequest
from datadog_api_client.v2.model.timeseries_formula_request import TimeseriesFormulaRequest
from datadog_api_client.v2.model.timeseries_formula_request_attributes import TimeseriesFormulaRequestAttributes
from datadog_api_client.v2.model.timeseries_formula_request_queries import TimeseriesFormulaRequestQueries
from datadog_api_client.v2.model.timeseries_formula_request_type import TimeseriesFormulaRequestType
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from devservers.datadog import DatadogFake
from devservers.local import serving

SEARCH = "/api/v2/logs/events/search"


@pytest.fixture
def api(datadog_fake: DatadogFake) -> Iterator[ApiClient]:  # noqa: F811
    configuration = Configuration(
        host=datadog_fake.url,
        api_key={"apiKeyAuth": datadog_fake.api_key, "appKeyAuth": datadog_fake.app_key},
    )
    with ApiClient(configuration) as client:
        yield client


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _submit(api: ApiClient, *entries: dict[str, Any], encoding: ContentEncoding | None = None) -> None:
    items = HTTPLog([HTTPLogItem(**entry) for entry in entries])
    if encoding is None:
        LogsApi(api).submit_log(items)
    else:
        LogsApi(api).submit_log(items, content_encoding=encoding)


def _search(api: ApiClient, query: str, **page: Any) -> list[str]:
    """Messages of every log matching `query` in the last hour, oldest first."""
    request = LogsListRequest(
        filter=LogsQueryFilter(query=query, _from="now-1h", to="now+1m"),
        sort=LogsSort.TIMESTAMP_ASCENDING,
        page=LogsListRequestPage(limit=page.get("limit", 1000)),
    )
    return [log.attributes.message for log in LogsApi(api).list_logs_with_pagination(body=request)]


# ------------------------------------------------------------------------------------------------ logs


def test_intake_then_search_with_datadog_query_syntax(api: ApiClient, datadog_fake: DatadogFake) -> None:  # noqa: F811
    base = _now_ms() - 10_000
    _submit(
        api,
        {
            "message": "payment failed: card declined",
            "service": "checkout",
            "ddsource": "python",
            "ddtags": "env:prod,kube_namespace:pay",
            "hostname": "node-1",
            "status": "error",
            "timestamp": base,
            "http": {"status_code": 500, "route": "/pay"},
        },
        {
            "message": "slow request (2s)",
            "service": "checkout",
            "ddtags": "env:prod,kube_namespace:pay",
            "level": "WARNING",
            "timestamp": base + 1,
            "http": {"status_code": 200, "route": "/pay"},
        },
        {
            "message": "all good",
            "service": "cart",
            "ddtags": "env:staging,kube_namespace:shop,Team:Web Shop",
            "timestamp": base + 2,
            "component": "a b:c",
        },
        {
            "message": 'Weird chars: key=value (x) "quoted"',
            "service": "cart",
            "ddtags": "env:prod",
            "timestamp": base + 3,
        },
        encoding=ContentEncoding.GZIP,
    )
    cases = {
        "service:checkout": ["payment failed: card declined", "slow request (2s)"],
        "service:checkout status:error": ["payment failed: card declined"],
        "status:(error OR warn)": ["payment failed: card declined", "slow request (2s)"],
        "env:prod AND -service:checkout": ['Weird chars: key=value (x) "quoted"'],
        "env:prod NOT service:checkout": ['Weird chars: key=value (x) "quoted"'],
        "@http.status_code:500": ["payment failed: card declined"],
        "@http.status_code:>=500": ["payment failed: card declined"],
        "@http.status_code:<500": ["slow request (2s)"],
        "@http.status_code:[200 TO 499]": ["slow request (2s)"],
        "@http.status_code:{200 TO 500]": ["payment failed: card declined"],
        "@http.route:\\/pay @http.status_code:200": ["slow request (2s)"],
        'kube_namespace:pay "card declined"': ["payment failed: card declined"],
        '"CARD DECLINED"': ["payment failed: card declined"],
        '"\\"quoted\\""': ['Weird chars: key=value (x) "quoted"'],
        '"(x)"': ['Weird chars: key=value (x) "quoted"'],
        "@component:a\\ b\\:c": ["all good"],
        '@component:"a b:c"': ["all good"],
        "service:ch*": ["payment failed: card declined", "slow request (2s)"],
        "source:python host:node-1": ["payment failed: card declined"],
        "service:cart OR status:error": [
            "payment failed: card declined",
            "all good",
            'Weird chars: key=value (x) "quoted"',
        ],
        "(service:cart OR status:error) env:prod": [
            "payment failed: card declined",
            'Weird chars: key=value (x) "quoted"',
        ],
        "*": ["payment failed: card declined", "slow request (2s)", "all good", 'Weird chars: key=value (x) "quoted"'],
        "service:nothing": [],
        "team:web_shop": ["all good"],  # tags are stored lowercased, other characters as "_", as Datadog does
    }
    for query, expected in cases.items():
        assert _search(api, query) == expected, query

    first = LogsApi(api).list_logs(body=LogsListRequest(filter=LogsQueryFilter(query="service:checkout status:error")))
    log = first.data[0]
    assert log.type.value == "log"
    assert log.attributes.status == "error" and log.attributes.service == "checkout" and log.attributes.host == "node-1"
    assert set(log.attributes.tags) >= {"env:prod", "kube_namespace:pay", "source:python"}
    assert log.attributes.attributes["http"] == {"status_code": 500, "route": "/pay"}
    assert int(log.attributes.timestamp.timestamp() * 1000) == base
    assert first.meta.status.value == "done"


def test_a_query_datadog_cannot_parse_is_400(api: ApiClient) -> None:
    for query in ["service:(a OR", '"unterminated', "status:", "a AND", "@x:[1 TO", "@x:[a TO b]"]:
        with pytest.raises(ApiException) as raised:
            LogsApi(api).list_logs(body=LogsListRequest(filter=LogsQueryFilter(query=query)))
        assert raised.value.status == 400, query


def test_cursor_paging_walks_everything_once(api: ApiClient, datadog_fake: DatadogFake) -> None:  # noqa: F811
    base = _now_ms() - 60_000
    # 25 logs, several sharing a millisecond, so order must be by timestamp then arrival
    _submit(api, *[{"message": f"m{i:02d}", "service": "pager", "timestamp": base + i // 3} for i in range(25)])
    expected = [f"m{i:02d}" for i in range(25)]
    assert _search(api, "service:pager", limit=7) == expected

    seen, cursor, pages = [], None, 0
    while True:
        page = LogsListRequestPage(limit=4, cursor=cursor) if cursor else LogsListRequestPage(limit=4)
        answer = LogsApi(api).list_logs(
            body=LogsListRequest(
                filter=LogsQueryFilter(query="service:pager"), sort=LogsSort.TIMESTAMP_DESCENDING, page=page
            )
        )
        seen += [log.attributes.message for log in answer.data]
        pages += 1
        if pages == 2:  # a log arriving mid-walk, newer than the page already read, never shifts the pages
            _submit(api, {"message": "late", "service": "pager", "timestamp": base - 5})
        after = answer.meta.page.get("after") if "page" in answer.meta else None
        if not after:
            assert "links" not in answer
            break
        assert answer.links.next.startswith(datadog_fake.url)
        cursor = after
    assert seen == list(reversed(expected)) + ["late"]
    assert pages == 7

    # links.next is the GET twin of the next page: the same records as the POST with the cursor
    first = LogsApi(api).list_logs(
        body=LogsListRequest(
            filter=LogsQueryFilter(query="service:pager", _from="now-1h"), page=LogsListRequestPage(limit=5)
        )
    )
    keys = {"DD-API-KEY": datadog_fake.api_key, "DD-APPLICATION-KEY": datadog_fake.app_key}
    twin = httpx.get(first.links.next, headers=keys).json()
    second = LogsApi(api).list_logs(
        body=LogsListRequest(
            filter=LogsQueryFilter(query="service:pager", _from="now-1h"),
            page=LogsListRequestPage(limit=5, cursor=first.meta.page.after),
        )
    )
    assert [log["id"] for log in twin["data"]] == [log.id for log in second.data] and len(second.data) == 5

    with pytest.raises(ApiException) as raised:  # a cursor replayed with another query
        LogsApi(api).list_logs(
            body=LogsListRequest(
                filter=LogsQueryFilter(query="service:other"), page=LogsListRequestPage(cursor=cursor or "x")
            )
        )
    assert raised.value.status == 400


def test_partial_results_are_reported(api: ApiClient, datadog_fake: DatadogFake) -> None:  # noqa: F811
    _submit(api, *[{"message": f"p{i}", "service": "slow"} for i in range(6)])
    datadog_fake.partial(1)
    answer = LogsApi(api).list_logs(
        body=LogsListRequest(filter=LogsQueryFilter(query="service:slow"), page=LogsListRequestPage(limit=6))
    )
    assert answer.meta.status.value == "timeout" and answer.meta.warnings[0].title == "Partial results"
    assert len(answer.data) == 3 and answer.meta.page.after


def test_intake_limits(api: ApiClient, datadog_fake: DatadogFake) -> None:  # noqa: F811
    with pytest.raises(ApiException) as raised:
        _submit(api, *[{"message": "x"} for _ in range(1001)])
    assert raised.value.status == 413
    with pytest.raises(ApiException) as raised:
        _submit(api, *[{"message": "y" * 900_000} for _ in range(6)], encoding=ContentEncoding.GZIP)
    assert raised.value.status == 413
    _submit(api, {"message": "z" * (1024 * 1024 + 10), "service": "big"})
    assert datadog_fake.stats()["logs"] == 1
    assert len(datadog_fake.received()["logs"][0]["attributes"]["message"]) == 1024 * 1024


def test_bodies_the_official_models_refuse_are_400(datadog_fake: DatadogFake) -> None:  # noqa: F811
    keys = {"DD-API-KEY": datadog_fake.api_key, "DD-APPLICATION-KEY": datadog_fake.app_key}
    bad = {
        SEARCH: [
            {"filter": {"query": "x", "bogus": 1}},
            {"sort": "newest"},
            {"page": {"limit": 1001}},
            {"page": {"limit": "ten"}},
            {"filtr": {}},
        ],
        "/api/v2/series": [
            {"series": [{"metric": "m", "points": [{"timestamp": 1, "value": "high"}]}]},
            {"series": [{"metric": "m"}]},
        ],
        "/api/v1/monitor": [
            {"type": "log alert", "query": 'logs("a").index("*").rollup("count").last("5m") > 1', "bogus": True},
            {"type": "not a type", "query": "x"},
        ],
        "/api/v2/query/timeseries": [{"data": {"type": "timeseries_request", "attributes": {"from": 1, "to": 2}}}],
        "/api/v2/logs": [[{"service": "no message"}], [{"message": 5}]],
    }
    with httpx.Client(base_url=datadog_fake.url, headers=keys) as http:
        for path, bodies in bad.items():
            for body in bodies:
                answer = http.post(path, json=body)
                assert answer.status_code == 400, (path, body, answer.text)
                assert answer.json()["errors"], (path, body)
        assert http.post(SEARCH, content=b"{not json").status_code == 400
        assert (
            http.post(
                "/api/v2/logs", content=gzip.compress(b"[]")[:5], headers={"Content-Encoding": "gzip"}
            ).status_code
            == 400
        )


def test_keys_are_checked(datadog_fake: DatadogFake) -> None:  # noqa: F811
    api_only = {"DD-API-KEY": datadog_fake.api_key}
    with httpx.Client(base_url=datadog_fake.url) as http:
        for headers in ({}, api_only, {**api_only, "DD-APPLICATION-KEY": "wrong"}):
            answer = http.post(SEARCH, json={}, headers=headers)
            assert (answer.status_code, answer.json()) == (403, {"errors": ["Forbidden"]})
        assert http.post("/api/v2/logs", json=[{"message": "m"}]).status_code == 403
        assert http.post("/api/v2/logs", json=[{"message": "m"}], headers={"DD-API-KEY": "nope"}).status_code == 403
        assert http.post("/api/v2/logs", json=[{"message": "m"}], headers=api_only).status_code == 202
        assert http.post("/v1/traces", content=b"", headers={"dd-api-key": "nope"}).status_code == 403
        unknown = http.get("/api/v9/nothing")
        assert (unknown.status_code, unknown.json()) == (404, {"errors": ["Not found"]})
    configuration = Configuration(host=datadog_fake.url, api_key={"apiKeyAuth": datadog_fake.api_key})
    with ApiClient(configuration) as client, pytest.raises(ForbiddenException):
        LogsApi(client).list_logs(body=LogsListRequest())


# ----------------------------------------------------------------------------------- rate limits, faults


def _headers(error: ApiException) -> dict[str, str]:
    return {name.lower(): value for name, value in (error.headers or {}).items()}


def test_rate_limit_headers_and_429(api: ApiClient, datadog_fake: DatadogFake) -> None:  # noqa: F811
    datadog_fake.limit("logs_query", 2, period=3600)
    configuration = Configuration(
        host=datadog_fake.url,
        api_key={"apiKeyAuth": datadog_fake.api_key, "appKeyAuth": datadog_fake.app_key},
        return_http_data_only=False,
    )
    with ApiClient(configuration) as with_headers:
        _, status, raw_headers = LogsApi(with_headers).list_logs(body=LogsListRequest())
    headers = {name.lower(): value for name, value in raw_headers.items()}
    assert status == 200
    assert headers["x-ratelimit-limit"] == "2" and headers["x-ratelimit-period"] == "3600"
    assert headers["x-ratelimit-remaining"] == "1" and 0 < int(headers["x-ratelimit-reset"]) <= 3600
    assert headers["x-ratelimit-name"] == "logs_query"
    LogsApi(api).list_logs(body=LogsListRequest())
    with pytest.raises(ApiException) as raised:
        LogsApi(api).list_logs(body=LogsListRequest())
    assert raised.value.status == 429 and _headers(raised.value)["x-ratelimit-remaining"] == "0"

    datadog_fake.reset()
    datadog_fake.fail(SEARCH, 429, count=2, retry_after=3)
    for _ in range(2):
        with pytest.raises(ApiException) as raised:
            LogsApi(api).list_logs(body=LogsListRequest())
        assert raised.value.status == 429
        assert _headers(raised.value)["x-ratelimit-reset"] == "3" and _headers(raised.value)["retry-after"] == "3"
    assert LogsApi(api).list_logs(body=LogsListRequest()).meta.status.value == "done"
    assert datadog_fake.stats()["requests"][SEARCH] == 3


def test_outage_then_recovery(api: ApiClient, datadog_fake: DatadogFake) -> None:  # noqa: F811
    datadog_fake.fail("*", 503, seconds=0.5)
    for call in (lambda: _submit(api, {"message": "during"}), lambda: LogsApi(api).list_logs(body=LogsListRequest())):
        with pytest.raises(ApiException) as raised:
            call()
        assert raised.value.status == 503
    time.sleep(0.6)
    _submit(api, {"message": "after"})
    assert _search(api, "*") == ["after"]


# --------------------------------------------------------------------------------------------- metrics


def test_metrics_intake_then_timeseries_query(api: ApiClient) -> None:
    now_s = int(time.time()) // 60 * 60 - 600
    series = [
        MetricSeries(
            metric="container.cpu.usage",
            type=MetricIntakeType.GAUGE,
            tags=["pod:a", "ns:pay"],
            points=[
                MetricPoint(timestamp=now_s + 10, value=1.0),
                MetricPoint(timestamp=now_s + 20, value=3.0),
                MetricPoint(timestamp=now_s + 70, value=5.0),
            ],
        ),
        MetricSeries(
            metric="container.cpu.usage",
            type=MetricIntakeType.GAUGE,
            tags=["pod:b", "ns:pay"],
            points=[MetricPoint(timestamp=now_s + 15, value=10.0)],
        ),
        MetricSeries(
            metric="container.cpu.usage",
            type=MetricIntakeType.GAUGE,
            tags=["pod:c", "ns:shop"],
            points=[MetricPoint(timestamp=now_s + 15, value=100.0)],
        ),
        MetricSeries(
            metric="container.cpu.limit",
            type=MetricIntakeType.GAUGE,
            tags=["pod:a", "Team:Pay Core"],
            points=[MetricPoint(timestamp=now_s + 10, value=4.0), MetricPoint(timestamp=now_s + 70, value=4.0)],
        ),
        MetricSeries(
            metric="container.cpu.limit",
            type=MetricIntakeType.GAUGE,
            tags=["pod:b", "team:pay_core"],
            points=[MetricPoint(timestamp=now_s + 10, value=20.0)],
        ),
        MetricSeries(
            metric="http.requests",
            type=MetricIntakeType.COUNT,
            tags=["ns:pay"],
            interval=10,
            points=[MetricPoint(timestamp=now_s + 5, value=2.0), MetricPoint(timestamp=now_s + 25, value=4.0)],
        ),
    ]
    accepted = MetricsApi(api).submit_metrics(body=MetricPayload(series=series))
    assert accepted.errors == []

    def query(text: str, formula: str | None = None, second: str | None = None) -> Any:
        queries = [MetricsTimeseriesQuery(data_source=MetricsDataSource.METRICS, name="a", query=text)]
        if second:
            queries.append(MetricsTimeseriesQuery(data_source=MetricsDataSource.METRICS, name="b", query=second))
        attributes = TimeseriesFormulaRequestAttributes(
            _from=now_s * 1000,
            to=(now_s + 120) * 1000,
            interval=60_000,
            queries=TimeseriesFormulaRequestQueries(queries),
            **({"formulas": [QueryFormula(formula=formula)]} if formula else {}),
        )
        request = TimeseriesFormulaQueryRequest(
            data=TimeseriesFormulaRequest(type=TimeseriesFormulaRequestType.TIMESERIES_REQUEST, attributes=attributes)
        )
        return MetricsApi(api).query_timeseries_data(body=request).data.attributes

    by_pod = query("avg:container.cpu.usage{ns:pay} by {pod}", formula="a")
    assert by_pod.times.value == [now_s * 1000, (now_s + 60) * 1000]
    assert [list(s.group_tags.value) for s in by_pod.series.value] == [["pod:a"], ["pod:b"]]
    assert _values(by_pod) == [[2.0, 5.0], [10.0, None]]

    total = query("sum:container.cpu.usage{*}")
    assert _values(total) == [[112.0, 5.0]] and list(total.series.value[0].group_tags.value) == []
    excluded = query("max:container.cpu.usage{!ns:shop}.rollup(max, 60)")
    assert _values(excluded) == [[10.0, 5.0]]
    counts = query("sum:http.requests{ns:pay}.as_count()")
    assert _values(counts) == [[6.0, None]]
    percent = query(
        "avg:container.cpu.usage{ns:pay} by {pod}", formula="a / b * 100", second="sum:container.cpu.limit{*} by {pod}"
    )
    assert [list(s.group_tags.value) for s in percent.series.value] == [["pod:a"], ["pod:b"]]
    assert _values(percent) == [[50.0, 125.0], [50.0, None]]
    assert _values(query("sum:container.cpu.usage{ns:pay}", formula="(a + 4) / 2")) == [[8.0, 4.5]]
    normalized = query("sum:container.cpu.limit{team:pay_core}")  # tags are stored as Datadog normalizes them
    assert _values(normalized) == [[24.0, 4.0]]
    for bad_query, bad_formula in [("this is not a metric query", None), ("sum:x{*}", "top(a, 5)"), ("sum:x{*}", "c")]:
        with pytest.raises(ApiException) as raised:
            query(bad_query, formula=bad_formula)
        assert raised.value.status == 400


# ---------------------------------------------------------------------------------------------- traces


def _values(attributes: Any) -> list[list[float | None]]:
    """The columnar values as plain lists (the client wraps them in list models)."""
    return [list(getattr(column, "value", column)) for column in attributes.values.value]


def _otlp_request(trace_id: bytes, count: int, base_ns: int) -> ExportTraceServiceRequest:
    def kv(key: str, value: str) -> KeyValue:
        return KeyValue(key=key, value=AnyValue(string_value=value))

    spans = [
        Span(
            trace_id=trace_id,
            span_id=(i + 1).to_bytes(8, "big"),
            parent_span_id=b"" if i == 0 else (1).to_bytes(8, "big"),
            name="GET /pay" if i == 0 else f"db {i}",
            kind=Span.SPAN_KIND_SERVER if i == 0 else Span.SPAN_KIND_CLIENT,
            start_time_unix_nano=base_ns + i * 1_000_000,
            end_time_unix_nano=base_ns + i * 1_000_000 + 500_000,
            attributes=[kv("http.route", "/pay")] if i == 0 else [],
        )
        for i in range(count)
    ]
    resource = ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])
    resource.resource.attributes.extend([kv("service.name", "checkout"), kv("deployment.environment.name", "prod")])
    return ExportTraceServiceRequest(resource_spans=[resource])


def test_otlp_traces_then_spans_search(api: ApiClient, datadog_fake: DatadogFake) -> None:  # noqa: F811
    base_ns = (time.time_ns() // 1_000_000 - 30_000) * 1_000_000
    trace_a, trace_b = (
        bytes.fromhex("0af7651916cd43dd8448eb211c80319c"),
        bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736"),
    )
    with httpx.Client(base_url=datadog_fake.url, headers={"dd-api-key": datadog_fake.api_key}) as http:
        answer = http.post(
            "/v1/traces",
            content=_otlp_request(trace_a, 5, base_ns).SerializeToString(),
            headers={"Content-Type": "application/x-protobuf"},
        )
        assert answer.status_code == 200
        from google.protobuf.json_format import MessageToDict

        as_json = MessageToDict(_otlp_request(trace_b, 2, base_ns + 10_000_000))
        for resource in as_json["resourceSpans"]:  # OTLP/JSON carries ids as hex
            for span in resource["scopeSpans"][0]["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        import base64

                        span[key] = base64.b64decode(span[key]).hex()
        answer = http.post("/v1/traces", content=json.dumps(as_json), headers={"Content-Type": "application/json"})
        assert answer.status_code == 200
        assert (
            http.post("/v1/traces", content=b"\xff\xff", headers={"Content-Type": "application/x-protobuf"}).status_code
            == 400
        )

    def spans(query: str, limit: int = 1000) -> list[Any]:
        request = SpansListRequest(
            data=SpansListRequestData(
                type=SpansListRequestType.SEARCH_REQUEST,
                attributes=SpansListRequestAttributes(
                    filter=SpansQueryFilter(query=query, _from="now-5m", to="now"),
                    sort=SpansSort.TIMESTAMP_ASCENDING,
                    page=SpansListRequestPage(limit=limit),
                ),
            )
        )
        return list(SpansApi(api).list_spans_with_pagination(body=request))

    everything = spans("service:checkout", limit=2)
    assert len(everything) == 7 and len({s.id for s in everything}) == 7
    roots = spans(f"trace_id:{trace_a.hex()} parent_id:0")
    assert [s.attributes.resource_name for s in roots] == ["GET /pay"]
    root = roots[0].attributes
    assert root.span_id == "1" and root.env == "prod" and root.type == "web"
    assert root.attributes["http.route"] == "/pay" and root.attributes["span.kind"] == "server"
    assert [s.attributes.trace_id for s in spans('@http.route:"/pay"')] == [trace_a.hex(), trace_b.hex()]
    assert len(spans(f"trace_id:{trace_b.hex()} -parent_id:0")) == 1


# -------------------------------------------------------------------------------------------- monitors


def _log_monitor(threshold: float = 5, name: str = "errors in pay") -> Monitor:
    return Monitor(
        name=name,
        type=MonitorType.LOG_ALERT,
        query=f'logs("kube_namespace:pay status:error").index("*").rollup("count").last("5m") > {threshold:g}',
        message="errors @webhook-observer",
        tags=["openchoreo-rule-name:errors", "openchoreo-rule-namespace:pay", "managed-by:openchoreo-observer"],
        priority=2,
        options=MonitorOptions(thresholds=MonitorThresholds(critical=threshold)),
    )


def test_monitors_round_trip(api: ApiClient) -> None:
    monitors = MonitorsApi(api)
    created = monitors.create_monitor(body=_log_monitor())
    assert created.id and created.overall_state.value == "No Data" and created.creator.email
    assert created.query.endswith("> 5") and created.options.thresholds.critical == 5

    metric = Monitor(
        name="cpu",
        type=MonitorType.QUERY_ALERT,
        query="avg(last_5m):sum:container.cpu.usage{ns:pay} by {pod} / sum:container.cpu.limit{ns:pay} by {pod} * 100 > 80",
        tags=["managed-by:openchoreo-observer", "openchoreo-rule-name:cpu"],
        options=MonitorOptions(thresholds=MonitorThresholds(critical=80)),
    )
    other = monitors.create_monitor(body=metric)
    unmanaged = monitors.create_monitor(
        body=_log_monitor(name="someone else's").__class__(
            name="unmanaged",
            type=MonitorType.LOG_ALERT,
            tags=["team:x"],
            query='logs("*").index("*").rollup("count").last("1h") > 1',
        )
    )
    assert monitors.get_monitor(created.id).name == "errors in pay"

    managed = monitors.list_monitors(monitor_tags="managed-by:openchoreo-observer")
    assert [m.id for m in managed] == [created.id, other.id]
    assert [
        m.id for m in monitors.list_monitors(monitor_tags="managed-by:openchoreo-observer,openchoreo-rule-name:cpu")
    ] == [other.id]
    assert [m.id for m in monitors.list_monitors(id_offset=other.id)] == [unmanaged.id]
    assert [m.id for m in monitors.list_monitors(page=1, page_size=2)] == [unmanaged.id]

    updated = monitors.update_monitor(
        created.id,
        body=MonitorUpdateRequest(
            query='logs("kube_namespace:pay status:error").index("*").rollup("count").last("10m") > 7',
            options=MonitorOptions(thresholds=MonitorThresholds(critical=7)),
        ),
    )
    assert updated.query.endswith('last("10m") > 7') and updated.name == "errors in pay"
    assert monitors.get_monitor(created.id).options.thresholds.critical == 7

    monitors.validate_monitor(body=_log_monitor())
    for broken in (
        Monitor(
            type=MonitorType.LOG_ALERT,
            query='logs("a").index("*").rollup("count").last("5m") > 3',
            options=MonitorOptions(thresholds=MonitorThresholds(critical=4)),
        ),
        Monitor(type=MonitorType.LOG_ALERT, query='logs("a").index("*").rollup("count").last("3000h") > 3'),
        Monitor(type=MonitorType.LOG_ALERT, query='logs("status:(a OR").index("*").rollup("count").last("5m") > 3'),
        Monitor(type=MonitorType.QUERY_ALERT, query="avg(last_5m):nonsense > 3"),
    ):
        with pytest.raises(ApiException) as raised:
            monitors.validate_monitor(body=broken)
        assert raised.value.status == 400, broken.query
        with pytest.raises(ApiException):
            monitors.create_monitor(body=broken)

    assert monitors.delete_monitor(created.id).deleted_monitor_id == created.id
    for call in (lambda: monitors.get_monitor(created.id), lambda: monitors.delete_monitor(created.id)):
        with pytest.raises(ApiException) as raised:
            call()
        assert raised.value.status == 404
    assert [m.id for m in monitors.list_monitors()] == [other.id, unmanaged.id]


# -------------------------------------------------------------------------------------------- webhooks


def test_monitor_webhook_delivery(api: ApiClient, datadog_fake: DatadogFake) -> None:  # noqa: F811
    received: list[tuple[dict[str, str], Any]] = []
    answers = [503, 200, 200]  # the first delivery fails once: Datadog retries a 5xx

    async def hook(request: Request) -> Response:
        received.append((dict(request.headers), json.loads(await request.body())))
        return Response(status_code=answers[len(received) - 1] if len(received) <= len(answers) else 200)

    template = json.dumps(
        {
            "monitorId": "$ALERT_ID",
            "title": "$ALERT_TITLE",
            "transition": "$ALERT_TRANSITION",
            "cycle": "$ALERT_CYCLE_KEY",
            "tags": "$TAGS",
            "scope": "$ALERT_SCOPE",
            "message": "$EVENT_MSG",
            "at": "$DATE_POSIX",
        }
    )
    with serving(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as receiver:
        integrations = WebhooksIntegrationApi(api)
        created = integrations.create_webhooks_integration(
            body=WebhooksIntegration(
                name="observer",
                url=f"{receiver}/hook",
                payload=template,
                custom_headers=json.dumps({"Authorization": "Bearer s3cret"}),
                encode_as=WebhooksIntegrationEncoding.JSON,
            )
        )
        assert created.name == "observer" and integrations.get_webhooks_integration("observer").url.endswith("/hook")
        with pytest.raises(ApiException) as raised:
            integrations.create_webhooks_integration(
                body=WebhooksIntegration(name="bad", url="http://x", custom_headers="[1]")
            )
        assert raised.value.status == 400

        monitor = MonitorsApi(api).create_monitor(body=_log_monitor())  # its message holds "@webhook-observer"
        monitor = MonitorsApi(api).update_monitor(
            monitor.id,
            body=MonitorUpdateRequest(message='value {{value}} over {{threshold}} "quoted" @webhook-observer'),
        )
        first = datadog_fake.trigger(monitor.id, value=12, scope="kube_namespace:pay")
        assert first[0]["attempts"] == [503, 200]
        again = datadog_fake.trigger(monitor.id, "Recovered", value=0)
        assert again[0]["attempts"] == [200]
        assert MonitorsApi(api).get_monitor(monitor.id).overall_state.value == "OK"

    assert len(received) == 3 and received[0][1] == received[1][1]
    headers, trigger = received[1]
    assert headers["authorization"] == "Bearer s3cret" and headers["content-type"] == "application/json"
    assert trigger["monitorId"] == str(monitor.id) and trigger["transition"] == "Triggered"
    assert trigger["title"] == "[Triggered on kube_namespace:pay] errors in pay"
    assert trigger["message"] == 'value 12 over 5 "quoted" @webhook-observer'
    assert "openchoreo-rule-name:errors" in trigger["tags"].split(",")
    assert abs(int(trigger["at"]) - time.time()) < 60
    recovery = received[2][1]
    assert recovery["transition"] == "Recovered" and recovery["cycle"] == trigger["cycle"]

    integrations = WebhooksIntegrationApi(api)
    integrations.delete_webhooks_integration("observer")
    with pytest.raises(ApiException) as raised:
        integrations.get_webhooks_integration("observer")
    assert raised.value.status == 404
