"""Which OpenTelemetry metrics make up each series of the `resource` and `http` families.

One table, read by the embedded backend (and by anything else that stores OTel-named metrics), so the demo,
the collectors and the queries agree on names. Names follow the OpenTelemetry semantic conventions for
Kubernetes, containers and HTTP; a series may be fed by any of its aliases.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

HTTP_SERVER_DURATION = "http.server.request.duration"  # histogram, seconds
HTTP_STATUS_ATTRIBUTE = "http.response.status_code"
HTTP_CLIENT_DURATION = "http.client.request.duration"

CPU_USAGE = ("k8s.pod.cpu.usage",)  # gauge, cores (pod level only: a container-level twin would double-count)
MEMORY_USAGE = ("k8s.pod.memory.working_set",)  # gauge, bytes
CPU_REQUEST = ("k8s.container.cpu.request",)  # gauge, cores
CPU_LIMIT = ("k8s.container.cpu.limit",)
MEMORY_REQUEST = ("k8s.container.memory.request",)  # gauge, bytes
MEMORY_LIMIT = ("k8s.container.memory.limit",)
NETWORK_IO = ("k8s.pod.network.io",)  # counter, bytes; attribute network.io.direction
NETWORK_DIRECTION_ATTRIBUTE = "network.io.direction"  # receive | transmit
DISK_IO = ("k8s.pod.disk.io",)  # counter, bytes; attribute disk.io.direction
DISK_DIRECTION_ATTRIBUTE = "disk.io.direction"  # read | write


#: The unit each metric is produced with (the demo and OTel instrumentation agree), which Prometheus-style
#: names carry as a suffix: `http.server.request.duration` in `s` is `http_server_request_duration_seconds`.
UNITS = {
    HTTP_SERVER_DURATION: "s",
    HTTP_CLIENT_DURATION: "s",
    **dict.fromkeys(CPU_USAGE + CPU_REQUEST + CPU_LIMIT, "{cpu}"),
    **dict.fromkeys(MEMORY_USAGE + MEMORY_REQUEST + MEMORY_LIMIT + NETWORK_IO + DISK_IO, "By"),
}


@dataclass(frozen=True, slots=True)
class ResourceSeries:
    """A series of the `resource` family: which metrics feed it and how samples combine.

    `level`: a gauge, averaged per series within a step and summed over series (pods).
    `rate`: a counter, its increase within a step divided by the step (per second), summed over series.
    """

    key: str
    names: tuple[str, ...]
    how: Literal["level", "rate"]
    attribute: str = ""
    attribute_value: str = ""


RESOURCE_SERIES = (
    ResourceSeries("cpuUsage", CPU_USAGE, "level"),
    ResourceSeries("cpuRequests", CPU_REQUEST, "level"),
    ResourceSeries("cpuLimits", CPU_LIMIT, "level"),
    ResourceSeries("memoryUsage", MEMORY_USAGE, "level"),
    ResourceSeries("memoryRequests", MEMORY_REQUEST, "level"),
    ResourceSeries("memoryLimits", MEMORY_LIMIT, "level"),
    ResourceSeries("networkReceiveBytes", NETWORK_IO, "rate", NETWORK_DIRECTION_ATTRIBUTE, "receive"),
    ResourceSeries("networkTransmitBytes", NETWORK_IO, "rate", NETWORK_DIRECTION_ATTRIBUTE, "transmit"),
    ResourceSeries("diskReadBytes", DISK_IO, "rate", DISK_DIRECTION_ATTRIBUTE, "read"),
    ResourceSeries("diskWriteBytes", DISK_IO, "rate", DISK_DIRECTION_ATTRIBUTE, "write"),
)

#: The `http` family, all derived from the server duration histogram: request rates (per second) in total,
#: for status < 400 and for status >= 400, the mean latency, and p50/p90/p99 from the buckets (seconds).
HTTP_SERIES = (
    "requestCount",
    "successfulRequestCount",
    "unsuccessfulRequestCount",
    "meanLatency",
    "latencyP50",
    "latencyP90",
    "latencyP99",
)


def is_unsuccessful(status_code: int) -> bool:
    """4xx and 5xx count as unsuccessful, as OpenChoreo's Prometheus adapter counts them."""
    return status_code >= 400


def family_keys(family: str) -> tuple[str, ...]:
    """Every series key of a metric family, in the contract's order; () for a family that is not ours."""
    if family == "http":
        return HTTP_SERIES
    if family == "resource":
        return tuple(spec.key for spec in RESOURCE_SERIES)
    return ()


def with_every_key(family: str, series: dict[str, list[tuple[int, float]]]) -> dict[str, list[tuple[int, float]]]:
    """The family's answer with every key present, an empty list where nothing was measured, so an empty answer
    has the shape of a full one (a client reads `cpuUsage` without checking whether it is there). Keys of the
    family come first, in order; any other key a backend answered is kept after them."""
    keys = family_keys(family)
    complete = {key: series.get(key, []) for key in keys}
    complete.update((key, points) for key, points in series.items() if key not in complete)
    return complete
