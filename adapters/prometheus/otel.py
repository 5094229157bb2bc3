"""The `otel` scheme: OpenTelemetry metrics in Prometheus, as our collectors (or a stock Collector's
`prometheusremotewrite` exporter with resource attributes promoted) write them. The scope is on every series
as labels (`openchoreo_dev_component_uid`, ...), so no join is needed; names come from `naming`.

Each series is computed the way the embedded backend computes it (adapters/embedded/metrics.py), so the two
agree point for point: gauges are averaged per series within a step and summed over series; counters and
histograms are rates over the step.
"""

from __future__ import annotations

from adapters.prometheus import naming, promql
from adapters.prometheus.schemes import FamilyQueries, HistogramQuantiles, TopologyQueries
from domain import semconv
from domain.model import ComponentScope, MetricFamily, MetricKind, TopologyQuery

_QUANTILES = (("latencyP50", 0.5), ("latencyP90", 0.9), ("latencyP99", 0.99))
_STATUS = naming.label_name(semconv.HTTP_STATUS_ATTRIBUTE)


def _name(metric: str, kind: MetricKind) -> str:
    return naming.metric_name(metric, semconv.UNITS.get(metric, ""), kind)


class OtelScheme:
    name = "otel"

    def family(self, family: MetricFamily, scope: ComponentScope, step_ns: int) -> dict[str, str]:
        return self.family_queries(family, scope, step_ns).expressions()

    def family_queries(self, family: MetricFamily, scope: ComponentScope, step_ns: int) -> FamilyQueries:
        scope_matchers = [
            (naming.NAMESPACE_LABEL, scope.namespace),
            (naming.PROJECT_UID_LABEL, scope.project_uid),
            (naming.COMPONENT_UID_LABEL, scope.component_uid),
            (naming.ENVIRONMENT_UID_LABEL, scope.environment_uid),
        ]
        step = promql.duration(step_ns)
        # (t - step, t]: a gauge sample exactly at t - step belongs to the previous point.
        gauge_window = promql.duration(step_ns - 1_000_000) if step_ns > 1_000_000 else step

        def series(metric: str, suffix: str = "", *extra: str) -> str:
            return promql.selector(metric + suffix, scope_matchers, *extra)

        if family == "resource":
            out = {}
            for spec in semconv.RESOURCE_SERIES:
                extra = (
                    [f'{naming.label_name(spec.attribute)}="{promql.escape(spec.attribute_value)}"']
                    if spec.attribute
                    else []
                )
                if spec.how == "level":
                    parts = [
                        f"avg_over_time({series(_name(m, MetricKind.GAUGE), '', *extra)}[{gauge_window}])"
                        for m in spec.names
                    ]
                else:
                    parts = [f"rate({series(_name(m, MetricKind.SUM), '', *extra)}[{step}])" for m in spec.names]
                out[spec.key] = "sum(" + " or ".join(parts) + ")"
            return FamilyQueries(out)

        base = _name(semconv.HTTP_SERVER_DURATION, MetricKind.HISTOGRAM)

        def rate(suffix: str, *extra: str) -> str:
            return f"sum(rate({series(base, suffix, *extra)}[{step}]))"

        out = {
            "requestCount": rate("_count"),
            "successfulRequestCount": rate("_count", f'{_STATUS}=~"[1-3][0-9][0-9]"'),
            "unsuccessfulRequestCount": rate("_count", f'{_STATUS}=~"[4-9][0-9][0-9]"'),
            "meanLatency": f"{rate('_sum')} / {rate('_count')}",
        }
        buckets = f"sum by (le) (rate({series(base, '_bucket')}[{step}]))"
        return FamilyQueries(out, HistogramQuantiles(buckets, dict(_QUANTILES)))

    def topology(self, query: TopologyQuery) -> TopologyQueries:
        raise NotImplementedError("the otel scheme has no call-graph series; topology comes from spans")
