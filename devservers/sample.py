"""A small sample platform and records for tests: names, stable UIDs, and record builders."""

from __future__ import annotations

import functools
import uuid
from typing import Any

from domain import semconv
from domain.model import Identity, MetricKind, MetricPoint

NS = "acme"
PROJECT = "shop"
PROJECT_UID = str(uuid.uuid5(uuid.NAMESPACE_URL, "project/shop"))
ENVIRONMENTS = {
    "dev": str(uuid.uuid5(uuid.NAMESPACE_URL, "env/dev")),
    "prod": str(uuid.uuid5(uuid.NAMESPACE_URL, "env/prod")),
}
COMPONENTS = {
    name: str(uuid.uuid5(uuid.NAMESPACE_URL, f"component/{name}")) for name in ("frontend", "cart", "payments")
}

BASE_NS = 1_790_000_000 * 10**9  # 2026-09-21T...Z, a fixed instant so tests never depend on the clock


def identity(component: str, environment: str = "prod", pod: str = "", namespace: str = NS) -> Identity:
    return Identity(
        namespace=namespace,
        project=PROJECT,
        project_uid=PROJECT_UID,
        component=component,
        component_uid=COMPONENTS[component],
        environment=environment,
        environment_uid=ENVIRONMENTS[environment],
        pod=pod or f"{component}-{environment}-0",
        pod_namespace=f"dp-{namespace}-{environment}",
        container="main",
    )


#: The resource attributes (pod labels) OpenChoreo gives the prod `cart` workload.
CART_PROD_LABELS = {
    "openchoreo.dev/namespace": NS,
    "openchoreo.dev/project": PROJECT,
    "openchoreo.dev/project-uid": PROJECT_UID,
    "openchoreo.dev/component": "cart",
    "openchoreo.dev/component-uid": COMPONENTS["cart"],
    "openchoreo.dev/environment": "prod",
    "openchoreo.dev/environment-uid": ENVIRONMENTS["prod"],
}


_SECOND = 10**9
_MINUTE = 60 * _SECOND
METRICS_INTERVAL = 15 * _SECOND  # how often the sample producer exports
HTTP_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


def _point(name: str, kind: MetricKind, **fields: Any) -> MetricPoint:
    return MetricPoint(name=name, kind=kind, unit=semconv.UNITS.get(name, ""), **fields)


def platform_points(namespace: str, start: int, minutes: int = 40) -> list[MetricPoint]:
    """OpenTelemetry metrics of a small platform: two cart pods and a frontend pod in prod, a cart pod in dev,
    every series exported every 15 s from `start`, cumulative (as SDKs export by default), with values that
    change over time and counters that never decrease."""
    pods = [
        (identity("cart", "prod", "cart-prod-0", namespace), 1.0),
        (identity("cart", "prod", "cart-prod-1", namespace), 2.0),
        (identity("frontend", "prod", "frontend-prod-0", namespace), 3.0),
        (identity("cart", "dev", "cart-dev-0", namespace), 5.0),
    ]
    points: list[MetricPoint] = []
    for n in range(minutes * 60 * _SECOND // METRICS_INTERVAL + 1):
        ts = start + n * METRICS_INTERVAL
        for who, weight in pods:
            point = functools.partial(_point, ts_ns=ts, identity=who, start_ns=start - _MINUTE)

            wave = (n % 7) / 7
            points += [
                point(semconv.CPU_USAGE[0], MetricKind.GAUGE, value=0.1 * weight + wave / 10),
                point(semconv.MEMORY_USAGE[0], MetricKind.GAUGE, value=1e8 * weight + n * 1e5),
                point(semconv.CPU_REQUEST[0], MetricKind.GAUGE, value=0.25 * weight),
                point(semconv.CPU_LIMIT[0], MetricKind.GAUGE, value=0.5 * weight),
                point(semconv.MEMORY_REQUEST[0], MetricKind.GAUGE, value=2e8 * weight),
                point(semconv.MEMORY_LIMIT[0], MetricKind.GAUGE, value=4e8 * weight),
            ]
            for attribute, direction, speed in (
                (semconv.NETWORK_DIRECTION_ATTRIBUTE, "receive", 1000.0),
                (semconv.NETWORK_DIRECTION_ATTRIBUTE, "transmit", 300.0),
            ):
                points.append(
                    point(
                        semconv.NETWORK_IO[0],
                        MetricKind.SUM,
                        attributes={attribute: direction},
                        value=speed * weight * (n + wave),
                    )
                )  # n + wave never decreases
            for attribute, direction, speed in (
                (semconv.DISK_DIRECTION_ATTRIBUTE, "read", 50.0),
                (semconv.DISK_DIRECTION_ATTRIBUTE, "write", 70.0),
            ):
                points.append(
                    point(
                        semconv.DISK_IO[0], MetricKind.SUM, attributes={attribute: direction}, value=speed * weight * n
                    )
                )
            for status, share in (("200", 9), ("503", 1)):
                # Cumulative buckets grow by a fixed shape per export, scaled by pod and status.
                per_export = [share * weight * c for c in (1, 2, 4, 8, 6, 3, 1, 1, 0)]
                counts = tuple(float(c * n) for c in per_export)
                total = sum(counts)
                points.append(
                    point(
                        semconv.HTTP_SERVER_DURATION,
                        MetricKind.HISTOGRAM,
                        attributes={semconv.HTTP_STATUS_ATTRIBUTE: status},
                        count=total,
                        sum=total * 0.07 + (n + wave) / 1000,
                        bounds=HTTP_BOUNDS,
                        bucket_counts=counts,
                    )
                )
    return points
