"""The metric families as Datadog v2 timeseries requests (one per family, the scope as tags, rollups per step,
refusing what a metric query cannot quote) and Datadog's columnar answers shaped into our series (bucket starts
moved to the end of their step, rates per second, the status split, sum / count, quantiles from buckets)."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.datadog.metrics import plan, shape
from domain import semconv
from domain.model import ComponentScope, MetricsQuery, TimeRange

S = 1_000_000_000
START = 1_767_225_600 * S  # a whole minute
SCOPE = ComponentScope("acme", "p-1", "c-1", "e-1")
FILTER = (
    "{openchoreo.namespace:acme,openchoreo.project_uid:p-1,openchoreo.component_uid:c-1,openchoreo.environment_uid:e-1}"
)


def query(family: str = "resource", scope: ComponentScope = SCOPE) -> MetricsQuery:
    return MetricsQuery(family, scope, TimeRange(START, START + 180 * S), 60 * S)  # type: ignore[arg-type]


def test_the_resource_family_is_one_request_with_a_query_per_series() -> None:
    built = plan(query())
    attributes = built.body["data"]["attributes"]
    assert built.body["data"]["type"] == "timeseries_request"
    assert attributes["from"] == (START // 1_000_000) - 60_000 and attributes["to"] == (START + 180 * S) // 1_000_000
    assert attributes["interval"] == 60_000
    queries = {q["name"]: q["query"] for q in attributes["queries"]}
    assert len(queries) == len(semconv.RESOURCE_SERIES) == len(attributes["formulas"])
    assert queries["q0"] == f"sum:k8s.pod.cpu.usage{FILTER}.rollup(avg, 60)"
    receive = [q for q in queries.values() if "network.io.direction:receive" in q]
    assert receive == [f"sum:k8s.pod.network.io{FILTER[:-1]},network.io.direction:receive}}.rollup(sum, 60)"]
    assert all(f["formula"] in queries for f in attributes["formulas"])


def test_the_http_family_asks_for_count_sum_status_groups_and_buckets() -> None:
    queries = [q["query"] for q in plan(query("http")).body["data"]["attributes"]["queries"]]
    base = "http.server.request.duration"
    assert queries == [
        f"sum:{base}.count{FILTER}.rollup(sum, 60)",
        f"sum:{base}.sum{FILTER}.rollup(sum, 60)",
        f"sum:{base}.count{FILTER} by {{http.response.status_code}}.rollup(sum, 60)",
        f"sum:{base}.bucket{FILTER} by {{upper_bound}}.rollup(sum, 60)",
    ]


@pytest.mark.parametrize("hostile", ["x} by {host", "a,b", "sp ace", "x{y", ""])
def test_a_scope_value_a_metric_query_cannot_hold_is_refused(hostile: str) -> None:
    scope = ComponentScope("acme", "p-1", hostile, "e-1")
    if not hostile:
        assert "openchoreo.component_uid" not in str(plan(query(scope=scope)).body)
        return
    with pytest.raises(ValueError, match="tag value"):
        plan(query(scope=scope))


def answer(times: list[int], series: list[tuple[int, list[str], list[Any]]]) -> dict[str, Any]:
    return {
        "data": {
            "type": "timeseries_response",
            "attributes": {
                "times": times,
                "series": [{"query_index": i, "group_tags": tags, "unit": None} for i, tags, _ in series],
                "values": [values for _, _, values in series],
            },
        }
    }


def test_resource_answers_are_shaped_at_step_ends_and_rates_per_second() -> None:
    q = query()
    built = plan(q)
    ms = START // 1_000_000
    times = [ms - 60_000, ms, ms + 60_000, ms + 120_000, ms + 180_000]  # the last bucket ends after the range
    index = {f.key: i for i, f in enumerate(built.formulas)}
    response = answer(
        times,
        [
            (index["cpuUsage"], [], [0.5, 0.75, None, 1.0, 2.0]),
            (index["networkReceiveBytes"], [], [600.0, 1200.0, 0.0, None, None]),
        ],
    )
    out = shape(q, built, response)
    assert [key for key, points in out.items() if points] == ["cpuUsage", "networkReceiveBytes"]
    assert list(out) == [spec.key for spec in semconv.RESOURCE_SERIES]  # every key, empty where no data
    assert out["cpuUsage"] == [(START, 0.5), (START + 60 * S, 0.75), (START + 180 * S, 1.0)]
    assert out["networkReceiveBytes"] == [(START, 10.0), (START + 60 * S, 20.0), (START + 120 * S, 0.0)]


def test_http_answers_give_rates_status_split_mean_and_quantiles() -> None:
    q = query("http")
    built = plan(q)
    ms = START // 1_000_000
    times = [ms - 60_000, ms]
    response = answer(
        times,
        [
            (0, [], [120.0, None]),  # count
            (1, [], [30.0, None]),  # sum of durations (s)
            (2, ["http.response.status_code:200"], [90.0, None]),
            (2, ["http.response.status_code:503"], [24.0, None]),
            (2, ["http.response.status_code:404"], [6.0, None]),
            (3, ["upper_bound:0.1"], [60.0, None]),
            (3, ["upper_bound:0.5"], [54.0, None]),
            (3, ["upper_bound:inf"], [6.0, None]),
        ],
    )
    out = shape(q, built, response)
    assert list(out) == list(semconv.HTTP_SERIES)
    assert out["requestCount"] == [(START, 2.0)]
    assert out["successfulRequestCount"] == [(START, 1.5)]
    assert out["unsuccessfulRequestCount"] == [(START, 0.5)]
    assert out["meanLatency"] == [(START, 0.25)]
    assert out["latencyP50"] == [(START, 0.1)]  # rank 60 is the top of the first bucket
    [(at, p90)] = out["latencyP90"]
    assert at == START and p90 == pytest.approx(0.1 + 0.4 * 48 / 54)
    assert out["latencyP99"] == [(START, 0.5)]  # in the +Inf bucket: its lower bound


def test_an_answer_without_data_has_every_key_empty() -> None:
    assert shape(query("http"), plan(query("http")), {"data": {"attributes": {}}}) == dict.fromkeys(
        semconv.HTTP_SERIES, []
    )
