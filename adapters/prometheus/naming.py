"""OpenTelemetry names to Prometheus names, the way Prometheus's own OTLP translation and the Collector's
`prometheusremotewrite` exporter make them, so series written by us and by a stock Collector look the same:

- metric: invalid characters become `_`, the unit becomes a suffix (`s` -> `_seconds`, `By` -> `_bytes`;
  annotations in braces such as `{cpu}` add nothing), a monotonic sum ends in `_total`, and a histogram is
  the `_bucket`, `_sum` and `_count` series of its base name;
- label: invalid characters become `_` (`openchoreo.dev/component-uid` -> `openchoreo_dev_component_uid`),
  and a leading digit gets a `key_` prefix.
"""

from __future__ import annotations

import re
from functools import lru_cache

from domain.model import (
    LABEL_COMPONENT,
    LABEL_COMPONENT_UID,
    LABEL_ENVIRONMENT,
    LABEL_ENVIRONMENT_UID,
    LABEL_NAMESPACE,
    LABEL_PROJECT,
    LABEL_PROJECT_UID,
    Identity,
    MetricKind,
)

_INVALID = re.compile(r"[^a-zA-Z0-9_]")
_UNIT_SUFFIXES = {
    "s": "seconds",
    "ms": "milliseconds",
    "us": "microseconds",
    "ns": "nanoseconds",
    "By": "bytes",
    "KiBy": "kibibytes",
    "MiBy": "mebibytes",
    "min": "minutes",
    "h": "hours",
    "d": "days",
    "%": "percent",
}


@lru_cache(maxsize=1024)
def label_name(key: str) -> str:
    name = _INVALID.sub("_", key)
    return f"key_{name}" if name[:1].isdigit() else name


@lru_cache(maxsize=1024)
def metric_name(name: str, unit: str, kind: MetricKind) -> str:
    """The Prometheus name of a metric; for histograms the base name (add `_bucket`, `_sum`, `_count`)."""
    base = _INVALID.sub("_", name)
    suffix = _UNIT_SUFFIXES.get(unit, "") if not unit.startswith("{") else ""
    if suffix and not base.endswith(f"_{suffix}"):
        base = f"{base}_{suffix}"
    if kind is MetricKind.SUM and not base.endswith("_total"):
        base += "_total"
    return base


#: The identity fields every series carries, as (label, Identity attribute).
IDENTITY_LABELS = (
    (label_name(LABEL_NAMESPACE), "namespace"),
    (label_name(LABEL_PROJECT), "project"),
    (label_name(LABEL_PROJECT_UID), "project_uid"),
    (label_name(LABEL_COMPONENT), "component"),
    (label_name(LABEL_COMPONENT_UID), "component_uid"),
    (label_name(LABEL_ENVIRONMENT), "environment"),
    (label_name(LABEL_ENVIRONMENT_UID), "environment_uid"),
    ("k8s_namespace_name", "pod_namespace"),
    ("k8s_pod_name", "pod"),
    ("k8s_container_name", "container"),
)

NAMESPACE_LABEL = label_name(LABEL_NAMESPACE)
PROJECT_UID_LABEL = label_name(LABEL_PROJECT_UID)
COMPONENT_UID_LABEL = label_name(LABEL_COMPONENT_UID)
ENVIRONMENT_UID_LABEL = label_name(LABEL_ENVIRONMENT_UID)


def identity_labels(identity: Identity) -> list[tuple[str, str]]:
    """The labels that put a series in its platform scope; empty values are left out."""
    return [(label, value) for label, attribute in IDENTITY_LABELS if (value := getattr(identity, attribute))]
