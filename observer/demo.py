"""Demo traffic: a sample platform's telemetry, sent with the real OpenTelemetry SDK over OTLP/HTTP.

A fresh all-in-one is empty, and an empty observability plane explains nothing. This module plays a small shop
(namespace `demo`, project `shop`, components `frontend`, `catalog`, `cart`, `payments`, environments
`development` and `production`) the way instrumented applications would: each deployment is its own OTel
Resource carrying the OpenChoreo pod labels, with its own tracer, logger and meter providers and OTLP/HTTP
exporters, so what arrives at the endpoint is byte for byte what a real SDK sends: traces crossing components,
logs correlated with them, Kubernetes events, the HTTP latency histogram and pod resource metrics named as
`domain.semconv` expects.

Nothing here sleeps to make a span last: each request is planned first (durations, statuses, log lines), then
emitted with explicit timestamps, so hundreds of requests a second, or fifteen minutes of backfilled history,
cost only the CPU to encode them. No provider is installed globally, so the demo can run inside another process
(the all-in-one) without taking over that process's own telemetry.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import logging
import math
import random
import socket
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExportResult, MetricsData, PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import SpanKind, Status, StatusCode

from domain import semconv
from domain.identity import derived_uid
from domain.model import (
    LABEL_COMPONENT,
    LABEL_COMPONENT_UID,
    LABEL_ENVIRONMENT,
    LABEL_ENVIRONMENT_UID,
    LABEL_NAMESPACE,
    LABEL_PROJECT,
    LABEL_PROJECT_UID,
)
from observer.demo_history import PodHistory, PodShape, export_data

try:  # older SDKs: Logger.emit wants the SDK's own record, which carries the resource
    from opentelemetry.sdk._logs import LogRecord as _LogRecordType  # type: ignore[attr-defined]
except ImportError:  # newer SDKs (1.45 here) removed it: the API record, to which the logger adds its resource
    from opentelemetry._logs import LogRecord as _LogRecordType

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "http://127.0.0.1:4318"
DEFAULT_RATE = 5.0  # requests per second, across both environments
DEFAULT_EXPORT_INTERVAL_S = 5.0
DEFAULT_ERROR_RATE = 0.05  # share of checkouts whose payment fails upstream (HTTP 502 all the way up)
DEFAULT_BACKFILL_RATE = 1.0  # requests per second of history: enough to draw charts, few enough to send quickly

NAMESPACE = "demo"
PROJECT = "shop"
COMPONENTS = ("frontend", "catalog", "cart", "payments")
ENVIRONMENTS = ("development", "production")
#: Relative share of requests per environment: production carries the real traffic, development a trickle.
ENVIRONMENT_WEIGHTS = {"development": 1, "production": 3}

CONTAINER = "main"
DEMO_CLUSTER = "demo-cluster"  # the cluster every demo record says it ran in (platform logs)
HTTP_PORT = 8080
SCOPE_NAME = "observer.demo"
EVENTS_SCOPE_NAME = "observer.demo.k8s-events"

#: Container resources every demo pod declares (cores and bytes), reported as request/limit gauges.
CPU_REQUEST_CORES, CPU_LIMIT_CORES = 0.1, 0.5
MIB = 1024 * 1024
MEMORY_REQUEST_BYTES, MEMORY_LIMIT_BYTES = 128 * MIB, 512 * MIB
#: Working set each component idles at; usage drifts around it within MEMORY_RANGE.
MEMORY_BASE = {"frontend": 140 * MIB, "catalog": 190 * MIB, "cart": 110 * MIB, "payments": 95 * MIB}
MEMORY_RANGE = (80 * MIB, 300 * MIB)
CPU_RANGE = (0.02, 0.6)

#: Bucket bounds (seconds) of the OTel semantic conventions for `http.server.request.duration`; the SDK's
#: default bounds are meant for milliseconds and would put every request into the first two buckets.
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
#: Each component's pods as the backfilled metric history sees them (the same values the live instruments use).
_POD_SHAPES = {
    component: PodShape(
        cpu_request=CPU_REQUEST_CORES,
        cpu_limit=CPU_LIMIT_CORES,
        memory_request=MEMORY_REQUEST_BYTES,
        memory_limit=MEMORY_LIMIT_BYTES,
        memory_base=MEMORY_BASE[component],
        memory_range=MEMORY_RANGE,
        cpu_range=CPU_RANGE,
        latency_bounds=LATENCY_BUCKETS_S,
    )
    for component in COMPONENTS
}

#: Mean seconds between the occasional Kubernetes warnings (failed probes, restart back-offs).
EVENT_MEAN_INTERVAL_S = 30.0
#: How long the background thread waits for the endpoint to accept connections before sending anyway.
ENDPOINT_WAIT_S = 60.0
#: Backfilled requests between flushes, so the batch processors' queues never overflow and drop data.
BACKFILL_FLUSH_EVERY = 200
#: Seconds between the backfilled metric collections (the history's resolution: a point per series each).
HISTORY_INTERVAL_S = 15

_SEVERITY = {
    "DEBUG": SeverityNumber.DEBUG,
    "INFO": SeverityNumber.INFO,
    "WARN": SeverityNumber.WARN,
    "ERROR": SeverityNumber.ERROR,
}
_POD_HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # the alphabet Kubernetes uses for generated name suffixes
_NODES = ("demo-worker-1", "demo-worker-2", "demo-worker-3")
_IMAGE_VERSION = {"frontend": "2.3.1", "catalog": "1.9.0", "cart": "1.4.2", "payments": "3.0.7"}
_DECLINE_REASONS = ("card expired", "insufficient funds", "suspected fraud", "incorrect CVC")


# ----------------------------------------------------------------------------------------------- the platform


def _platform() -> dict[str, Any]:
    """Names and UIDs of the sample platform. UIDs are derived exactly as the embedded registry derives the UID
    of a declared entry that names none, so a registry file listing the demo without UIDs agrees with it."""
    return {
        "namespace": NAMESPACE,
        "namespace_uid": derived_uid("namespace", "", NAMESPACE),
        "project": PROJECT,
        "project_uid": derived_uid("project", NAMESPACE, PROJECT),
        "components": {name: derived_uid("component", NAMESPACE, name) for name in COMPONENTS},
        "environments": {name: derived_uid("environment", NAMESPACE, name) for name in ENVIRONMENTS},
    }


#: The sample platform as data, for the README, the banner and tests: names and their (stable) UIDs.
DEMO_PLATFORM: dict[str, Any] = _platform()


def data_plane_namespace(environment: str) -> str:
    """The Kubernetes namespace a deployment runs in, shaped like OpenChoreo's generated data-plane namespaces
    (`dp-<namespace>-<project>-<environment>-<hash>`): stable, and deliberately not the OpenChoreo namespace."""
    digest = hashlib.sha256(f"{NAMESPACE}/{PROJECT}/{environment}".encode()).hexdigest()[:8]
    return f"dp-{NAMESPACE}-{PROJECT}-{environment}-{digest}"


@dataclass(frozen=True, slots=True)
class Workload:
    """One component deployed in one environment: a single pod, and one OTel Resource."""

    component: str
    environment: str
    pod: str
    node: str

    @property
    def pod_namespace(self) -> str:
        return data_plane_namespace(self.environment)

    @property
    def image(self) -> str:
        return f"ghcr.io/openchoreo-demo/{PROJECT}-{self.component}:{_IMAGE_VERSION[self.component]}"

    def resource_attributes(self) -> dict[str, str]:
        """The pod labels OpenChoreo sets (as the `k8sattributes` processor would copy them) plus the usual
        service and Kubernetes resource attributes."""
        return {
            LABEL_NAMESPACE: NAMESPACE,
            LABEL_PROJECT: PROJECT,
            LABEL_PROJECT_UID: DEMO_PLATFORM["project_uid"],
            LABEL_COMPONENT: self.component,
            LABEL_COMPONENT_UID: DEMO_PLATFORM["components"][self.component],
            LABEL_ENVIRONMENT: self.environment,
            LABEL_ENVIRONMENT_UID: DEMO_PLATFORM["environments"][self.environment],
            "service.name": self.component,
            "service.namespace": PROJECT,
            "service.version": _IMAGE_VERSION[self.component],
            "deployment.environment.name": self.environment,
            "k8s.namespace.name": self.pod_namespace,
            "k8s.pod.name": self.pod,
            "k8s.container.name": CONTAINER,
            "k8s.deployment.name": self.component,
            "k8s.node.name": self.node,
            # where it ran, as platform logs find it (k8sattributes' names)
            "k8s.cluster.name": DEMO_CLUSTER,
            "k8s.pod.ip": self.pod_ip,
            "container.image.name": self.image.rsplit(":", 1)[0],
            "container.image.tag": _IMAGE_VERSION[self.component],
            "k8s.pod.label.app.kubernetes.io/name": self.component,
            "k8s.pod.label.app.kubernetes.io/part-of": PROJECT,
            f"k8s.pod.label.{LABEL_ENVIRONMENT}": self.environment,
        }

    @property
    def pod_ip(self) -> str:
        """A stable address per pod name, in the demo cluster's pod range."""
        digest = zlib.crc32(self.pod.encode())
        return f"10.244.{digest % 8}.{2 + digest // 8 % 250}"


def _generated_suffix(rng: random.Random, length: int) -> str:
    return "".join(rng.choice(_POD_HASH_ALPHABET) for _ in range(length))


def build_workloads(rng: random.Random) -> dict[tuple[str, str], Workload]:
    """Every (component, environment) with a pod name like `cart-7d9f8c6b5d-x2k4q`, new for each run as a
    fresh rollout's would be."""
    return {
        (component, environment): Workload(
            component=component,
            environment=environment,
            pod=f"{component}-{_generated_suffix(rng, 10)}-{_generated_suffix(rng, 5)}",
            node=rng.choice(_NODES),
        )
        for environment in ENVIRONMENTS
        for component in COMPONENTS
    }


# ----------------------------------------------------------------------------------------------- planning


@dataclass(slots=True)
class Call:
    """One server-side handling of an HTTP request, planned before it is emitted so its duration is known.

    The server works `work_before_ns`, calls `downstream` (if any) over a link of `network_ns` each way, then
    works `work_after_ns`. `logs` are written during the first stretch, `after_logs` once the downstream call
    has returned; the access log line is added when the call is emitted.
    """

    component: str
    method: str
    route: str
    target: str
    status: int
    work_before_ns: int
    work_after_ns: int
    logs: list[tuple[str, str]] = field(default_factory=list)
    after_logs: list[tuple[str, str]] = field(default_factory=list)
    failure: str = ""
    downstream: Call | None = None
    network_ns: int = 0
    request_bytes: int = 0
    response_bytes: int = 0
    disk_read_bytes: int = 0

    @property
    def duration_ns(self) -> int:
        downstream = self.downstream.duration_ns + 2 * self.network_ns if self.downstream else 0
        return self.work_before_ns + downstream + self.work_after_ns


def _ms(rng: random.Random, median_ms: float, spread: float = 0.5) -> int:
    """A latency in ns, log-normally distributed around `median_ms`: mostly close, with a long tail."""
    return int(rng.lognormvariate(math.log(median_ms), spread) * 1_000_000)


def _slow_query(rng: random.Random, table: str) -> tuple[int, str]:
    """A slow database query: how long it took (ns) and the JSON line the service logs about it."""
    took_ms = rng.randint(450, 1400)
    line = f'{{"level":"warn","msg":"slow query","ms":{took_ms},"table":"{table}"}}'
    return took_ms * 1_000_000, line


def _with_downstream(rng: random.Random, call: Call, downstream: Call) -> None:
    """Makes `call` call `downstream` and answer with its status, as these services pass on what their backend
    answered: a payments 502 reaches the user as a 502."""
    call.downstream = downstream
    call.network_ns = _ms(rng, 0.6, 0.3)
    call.status = downstream.status
    if downstream.status >= 500:
        call.failure = f"{downstream.component} returned {downstream.status}"


def _payments(rng: random.Random, error_rate: float) -> Call:
    """Charging a card: usually fast, sometimes declined (402), and sometimes the card processor times out and
    the failure travels up as 502."""
    amount = rng.randint(500, 25_000) / 100
    call = Call("payments", "POST", "/payments/charge", "/payments/charge", 200, _ms(rng, 45), _ms(rng, 1.2))
    call.logs.append(("DEBUG", f"charging card ending {rng.randint(1000, 9999)} amount {amount:.2f} EUR"))
    call.request_bytes, call.response_bytes = rng.randint(300, 600), rng.randint(200, 400)
    roll = rng.random()
    if roll < error_rate:
        call.status, call.work_before_ns = 502, _ms(rng, 2000, 0.02)
        call.failure = "card processor timeout"
        call.logs.append(("ERROR", "card processor timeout after 2000ms: POST https://api.cards.example/v1/charges"))
    elif roll < error_rate + 0.03:
        call.status = 402
        call.logs.append(("WARN", f"payment declined: {rng.choice(_DECLINE_REASONS)}"))
    else:
        call.logs.append(("INFO", f"payment captured: {amount:.2f} EUR"))
    return call


def _cart_checkout(rng: random.Random, error_rate: float) -> Call:
    cart_id = rng.randint(1, 999)
    target = f"/cart/{cart_id}/checkout"
    call = Call("cart", "POST", "/cart/{cartId}/checkout", target, 200, _ms(rng, 4), _ms(rng, 2))
    call.request_bytes, call.response_bytes = rng.randint(200, 500), rng.randint(500, 2000)
    if rng.random() < 0.3:
        call.logs.append(("DEBUG", f"cache miss for cart {cart_id}"))
        call.work_before_ns += _ms(rng, 6)
        call.disk_read_bytes = rng.randint(4096, 16384)
    else:
        call.logs.append(("DEBUG", f"cache hit for cart {cart_id}"))
    if rng.random() < 0.05:
        took, line = _slow_query(rng, "cart_items")
        call.work_before_ns += took
        call.logs.append(("WARN", line))
    payments = _payments(rng, error_rate)
    _with_downstream(rng, call, payments)
    if payments.status >= 500:
        call.after_logs.append(("ERROR", f"checkout of cart {cart_id} failed: payments returned {payments.status}"))
    return call


def _catalog(rng: random.Random, detail: bool) -> Call:
    """Listing products, or one product (which may not exist: 404)."""
    if detail:
        product = rng.randint(1000, 9999)
        call = Call("catalog", "GET", "/products/{productId}", f"/products/{product}", 200, _ms(rng, 3), _ms(rng, 1))
        if rng.random() < 0.05:
            call.status = 404
            call.logs.append(("INFO", f"product {product} not found"))
    else:
        page = rng.randint(1, 12)
        call = Call("catalog", "GET", "/products", f"/products?page={page}", 200, _ms(rng, 8), _ms(rng, 2))
        call.logs.append(("DEBUG", f"listing products page={page} size=24"))
    call.request_bytes, call.response_bytes = rng.randint(150, 300), rng.randint(2000, 30_000)
    if rng.random() < 0.2:
        call.disk_read_bytes = rng.randint(16_384, 65_536)
    if rng.random() < 0.04:
        took, line = _slow_query(rng, "products")
        call.work_before_ns += took
        call.logs.append(("WARN", line))
    return call


def _frontend(rng: random.Random, route: str, target: str, downstream: Call) -> Call:
    """The public entry point, rendering what its downstream call returned."""
    call = Call("frontend", "GET", route, target, 200, _ms(rng, 1.5), _ms(rng, 3))
    call.logs.append(("DEBUG", f"session {rng.getrandbits(48):012x} resolved for {route}"))
    call.request_bytes, call.response_bytes = rng.randint(600, 1400), rng.randint(8000, 60_000)
    _with_downstream(rng, call, downstream)
    return call


def plan_request(rng: random.Random, error_rate: float = DEFAULT_ERROR_RATE) -> Call:
    """One user request as a tree of calls: a checkout (frontend -> cart -> payments) or a product page or list
    (frontend -> catalog)."""
    roll = rng.random()
    if roll < 0.3:
        return _frontend(rng, "/checkout", "/checkout", _cart_checkout(rng, error_rate))
    if roll < 0.65:
        return _frontend(rng, "/products", "/products", _catalog(rng, detail=False))
    product = _catalog(rng, detail=True)
    return _frontend(rng, "/products/{productId}", product.target, product)


# ----------------------------------------------------------------------------------------------- pods


class Usage:
    """What a pod is doing, fed by the traffic it serves and read by the resource metric callbacks.

    The callbacks run on the metric reader's thread while traffic is emitted on another, hence the lock; they
    draw from their own random generator so the traffic stays reproducible under a seed.
    """

    def __init__(self, component: str, seed: int) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._base_memory = float(MEMORY_BASE[component])
        self._memory = self._base_memory
        self._requests = 0
        self._last_read = (time.monotonic(), 0)
        self.received = self.transmitted = self.disk_read = self.disk_written = 0

    def served(self, received: int, transmitted: int, disk_read: int, disk_written: int) -> None:
        with self._lock:
            self._requests += 1
            self.received += received
            self.transmitted += transmitted
            self.disk_read += disk_read
            self.disk_written += disk_written

    def _request_rate(self) -> float:
        """Requests per second since the previous call."""
        now = time.monotonic()
        then, count = self._last_read
        self._last_read = (now, self._requests)
        return (self._requests - count) / max(now - then, 0.001)

    def cpu_cores(self) -> float:
        """An idle baseline plus a share per request per second, with some jitter."""
        with self._lock:
            cores = 0.05 + 0.05 * self._request_rate() + self._rng.gauss(0, 0.01)
        return min(max(cores, CPU_RANGE[0]), CPU_RANGE[1])

    def memory_bytes(self) -> float:
        """A random walk pulled back towards the component's base, so it drifts without running away."""
        with self._lock:
            self._memory += self._rng.gauss(0, 2 * MIB) + 0.1 * (self._base_memory - self._memory)
            self._memory = min(max(self._memory, MEMORY_RANGE[0]), MEMORY_RANGE[1])
            return self._memory


def _constant(value: float) -> Callable[[], float]:
    """A reader of one fixed value (a function per value, so no loop variable is captured late)."""
    return lambda: value


def _observe(read: Callable[[], float], **attributes: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
    """An observable instrument callback reporting one value read when the reader collects."""
    return lambda _options: [Observation(read(), attributes)]


def _observe_directions(
    usage: Usage, attribute: str, fields: dict[str, str]
) -> Callable[[CallbackOptions], Iterable[Observation]]:
    """A callback for a counter split by direction: `fields` maps each direction to a Usage attribute."""
    return lambda _options: [
        Observation(getattr(usage, name), {attribute: direction}) for direction, name in fields.items()
    ]


def register_resource_instruments(meter: Meter, usage: Usage) -> None:
    """Pod CPU and memory gauges, the container's requests and limits, and network and disk byte counters."""
    constant = {
        semconv.CPU_REQUEST[0]: ("{cpu}", CPU_REQUEST_CORES),
        semconv.CPU_LIMIT[0]: ("{cpu}", CPU_LIMIT_CORES),
        semconv.MEMORY_REQUEST[0]: ("By", MEMORY_REQUEST_BYTES),
        semconv.MEMORY_LIMIT[0]: ("By", MEMORY_LIMIT_BYTES),
    }
    meter.create_observable_gauge(semconv.CPU_USAGE[0], [_observe(usage.cpu_cores)], unit="{cpu}")
    meter.create_observable_gauge(semconv.MEMORY_USAGE[0], [_observe(usage.memory_bytes)], unit="By")
    for name, (unit, value) in constant.items():
        meter.create_observable_gauge(name, [_observe(_constant(value))], unit=unit)
    network = _observe_directions(
        usage, semconv.NETWORK_DIRECTION_ATTRIBUTE, {"receive": "received", "transmit": "transmitted"}
    )
    disk = _observe_directions(usage, semconv.DISK_DIRECTION_ATTRIBUTE, {"read": "disk_read", "write": "disk_written"})
    meter.create_observable_counter(semconv.NETWORK_IO[0], [network], unit="By")
    meter.create_observable_counter(semconv.DISK_IO[0], [disk], unit="By")


# ----------------------------------------------------------------------------------------------- SDK pipelines

_LOG_RECORD_FIELDS = frozenset(inspect.signature(_LogRecordType.__init__).parameters) - {"self"}


def _log_record(**fields: Any) -> Any:
    """A log record for `Logger.emit`, given only the fields this SDK's record type accepts: `context` is new
    (and is what 1.45 reads trace ids from), `resource` is old (the SDK record carried it), and the explicit
    trace ids work everywhere."""
    return _LogRecordType(**{key: value for key, value in fields.items() if key in _LOG_RECORD_FIELDS})


class Pipeline:
    """One workload's OpenTelemetry SDK: tracer, logger and meter providers over the workload's Resource, each
    exporting over OTLP/HTTP. Never installed globally."""

    def __init__(self, workload: Workload, endpoint: str, export_interval_s: float, timeout_s: float, seed: int):
        self.workload = workload
        self.usage = Usage(workload.component, seed)
        self.resource = Resource(workload.resource_attributes())
        base = endpoint.rstrip("/")
        self.tracer_provider = TracerProvider(sampler=ALWAYS_ON, resource=self.resource, shutdown_on_exit=False)
        self.tracer_provider.add_span_processor(
            BatchSpanProcessor(
                OTLPSpanExporter(endpoint=f"{base}/v1/traces", timeout=timeout_s),
                max_queue_size=8192,
                schedule_delay_millis=1000,
            )
        )
        self.logger_provider = LoggerProvider(resource=self.resource, shutdown_on_exit=False)
        self.logger_provider.add_log_record_processor(
            BatchLogRecordProcessor(
                OTLPLogExporter(endpoint=f"{base}/v1/logs", timeout=timeout_s),
                max_queue_size=8192,
                schedule_delay_millis=1000,
            )
        )
        self.metrics_endpoint = f"{base}/v1/metrics"
        self.timeout_s = timeout_s
        self.export_interval_s = export_interval_s
        self.tracer = self.tracer_provider.get_tracer(SCOPE_NAME)
        self.logger = self.logger_provider.get_logger(SCOPE_NAME)
        self.event_logger = self.logger_provider.get_logger(EVENTS_SCOPE_NAME)
        # The live instruments start with the live traffic (`start_metrics`): a reader collecting during the
        # backfill would send "now" points ahead of the history, whose running totals would then arrive late.
        self.meter_provider: MeterProvider | None = None
        self.latency: Any = None

    def start_metrics(self) -> None:
        """The meter provider and its instruments, collected every export interval from now on. Idempotent."""
        if self.meter_provider is not None:
            return
        reader = PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=self.metrics_endpoint, timeout=self.timeout_s),
            export_interval_millis=self.export_interval_s * 1000,
        )
        latency_view = View(
            instrument_name=semconv.HTTP_SERVER_DURATION,
            aggregation=ExplicitBucketHistogramAggregation(LATENCY_BUCKETS_S),
        )
        self.meter_provider = MeterProvider(
            metric_readers=[reader], resource=self.resource, shutdown_on_exit=False, views=[latency_view]
        )
        meter = self.meter_provider.get_meter(SCOPE_NAME)
        self.latency = meter.create_histogram(semconv.HTTP_SERVER_DURATION, unit="s", description="HTTP server latency")
        register_resource_instruments(meter, self.usage)

    def export_history(self, data: MetricsData) -> None:
        """Backfilled metric points (observer/demo_history.py), through the SDK's own OTLP/HTTP exporter."""
        exporter = OTLPMetricExporter(endpoint=self.metrics_endpoint, timeout=self.timeout_s)
        try:
            if exporter.export(data) is not MetricExportResult.SUCCESS:
                log.warning("demo: %s refused backfilled metrics of %s", self.metrics_endpoint, self.workload.pod)
        finally:
            exporter.shutdown()

    def log(self, level: str, body: str, ts_ns: int, context: Context | None = None) -> int:
        """Emits one log record, correlated with the span current in `context`; returns its size in bytes (what
        the container runtime would write to disk)."""
        self._emit(self.logger, level, body, ts_ns, context, {})
        return len(body) + 1

    def event(self, reason: str, message: str, ts_ns: int, warning: bool = False) -> None:
        """A Kubernetes event about this workload's pod, shaped as the `k8sobjects` receiver ships them."""
        attributes = {
            "k8s.event.reason": reason,
            "k8s.event.type": "Warning" if warning else "Normal",
            "k8s.object.kind": "Pod",
            "k8s.object.name": self.workload.pod,
            "k8s.namespace.name": self.workload.pod_namespace,
        }
        self._emit(self.event_logger, "WARN" if warning else "INFO", message, ts_ns, None, attributes)

    def _emit(
        self, logger: Any, level: str, body: str, ts_ns: int, context: Context | None, attributes: dict[str, str]
    ) -> None:
        span_context = trace.get_current_span(context).get_span_context()
        logger.emit(
            _log_record(
                timestamp=ts_ns,
                observed_timestamp=ts_ns,
                context=context,
                trace_id=span_context.trace_id,
                span_id=span_context.span_id,
                trace_flags=span_context.trace_flags,
                severity_text=level,
                severity_number=_SEVERITY[level],
                body=body,
                attributes=attributes or None,
                resource=self.resource,
            )
        )

    def flush(self) -> None:
        self.tracer_provider.force_flush()
        self.logger_provider.force_flush()

    @property
    def providers(self) -> tuple[TracerProvider | LoggerProvider | MeterProvider, ...]:
        if self.meter_provider is None:
            return self.tracer_provider, self.logger_provider
        return self.tracer_provider, self.logger_provider, self.meter_provider


def _export_history(pipeline: Pipeline, collections: list[list[Any]]) -> None:
    """A pod's backfilled collections, oldest first, as one export of one resource entry per collection."""
    pipeline.export_history(export_data(pipeline.resource, SCOPE_NAME, collections))


def _shut_down(provider: TracerProvider | LoggerProvider | MeterProvider) -> None:
    """Flushes what the provider has queued and stops its exporter (a meter provider sends a last collection)."""
    try:
        provider.shutdown()
    except Exception:  # one failing provider must not keep the others from flushing
        log.exception("demo: shutting down a %s failed", type(provider).__name__)


# ----------------------------------------------------------------------------------------------- emitting


def _access_level(status: int) -> str:
    return "ERROR" if status >= 500 else "WARN" if status >= 400 else "INFO"


def _server_attributes(call: Call) -> dict[str, Any]:
    return {
        "http.request.method": call.method,
        "http.route": call.route,
        "url.path": call.target.split("?", 1)[0],
        "url.scheme": "http",
        "server.address": call.component,
        "server.port": HTTP_PORT,
        "network.protocol.version": "1.1",
        semconv.HTTP_STATUS_ATTRIBUTE: call.status,
    }


def _client_attributes(downstream: Call) -> dict[str, Any]:
    return {
        "http.request.method": downstream.method,
        "server.address": downstream.component,
        "server.port": HTTP_PORT,
        "url.full": f"http://{downstream.component}:{HTTP_PORT}{downstream.target}",
        semconv.HTTP_STATUS_ATTRIBUTE: downstream.status,
    }


def _access_line(call: Call) -> str:
    return f"{call.method} {call.target} {call.status} {call.duration_ns / 1e6:.0f}ms"


def _fail(span: trace.Span, status: int, message: str) -> None:
    span.set_attribute("error.type", str(status))
    span.set_status(Status(StatusCode.ERROR, message or f"HTTP {status}"))


def _log_lines(
    pipeline: Pipeline, lines: list[tuple[str, str]], start_ns: int, stretch_ns: int, context: Context
) -> int:
    """Emits `lines` evenly spread over a stretch of a call, so they keep their order; returns the bytes written."""
    step = stretch_ns // (len(lines) + 1)
    return sum(
        pipeline.log(level, body, start_ns + step * (index + 1), context) for index, (level, body) in enumerate(lines)
    )


class Emitter:
    """Turns planned calls into spans, logs and metrics of the environment's pipelines."""

    def __init__(self, pipelines: dict[tuple[str, str], Pipeline]):
        self.pipelines = pipelines
        #: While a backfill runs, each pod's metric history, which its requests feed instead of the instruments.
        self.history: dict[tuple[str, str], PodHistory] | None = None

    def request(self, root: Call, environment: str, end_ns: int, live: bool) -> None:
        """Emits a whole request ending at `end_ns`. `live` requests feed the SDK's metric instruments; the SDK
        stamps points at collection time, so backfilled ones feed the pods' `history` instead."""
        self._serve(root, environment, end_ns - root.duration_ns, None, live)

    def _serve(self, call: Call, environment: str, start_ns: int, parent: Context | None, live: bool) -> None:
        """The SERVER span of a call, its log lines, and (through `_call`) everything it calls downstream."""
        pipeline = self.pipelines[(call.component, environment)]
        span = pipeline.tracer.start_span(
            f"{call.method} {call.route}", parent, SpanKind.SERVER, _server_attributes(call), start_time=start_ns
        )
        context = trace.set_span_in_context(span)
        end_ns = start_ns + call.duration_ns
        written = _log_lines(pipeline, call.logs, start_ns, call.work_before_ns, context)
        if call.downstream:
            self._call(pipeline, call, environment, start_ns + call.work_before_ns, context, live)
        written += _log_lines(pipeline, call.after_logs, end_ns - call.work_after_ns, call.work_after_ns, context)
        written += pipeline.log(_access_level(call.status), _access_line(call), end_ns, context)
        if call.status >= 500:  # a 4xx is the client's fault: the server span stays unset, per the HTTP conventions
            _fail(span, call.status, call.failure)
        span.end(end_time=end_ns)
        if live:
            self._account(pipeline, call, written)
        elif self.history is not None:
            self._remember(self.history[(call.component, environment)], call, written)

    def _call(
        self, pipeline: Pipeline, caller: Call, environment: str, start_ns: int, parent: Context, live: bool
    ) -> None:
        """The caller's CLIENT span around the downstream server's handling, one network hop on each side."""
        downstream = caller.downstream
        assert downstream is not None
        attributes = _client_attributes(downstream)
        name = f"{downstream.method} {downstream.route}"
        span = pipeline.tracer.start_span(name, parent, SpanKind.CLIENT, attributes, start_time=start_ns)
        self._serve(downstream, environment, start_ns + caller.network_ns, trace.set_span_in_context(span), live)
        if downstream.status >= 400:  # for a client, any 4xx or 5xx answer is a failed call
            _fail(span, downstream.status, "")
        span.end(end_time=start_ns + downstream.duration_ns + 2 * caller.network_ns)

    @staticmethod
    def _account(pipeline: Pipeline, call: Call, log_bytes: int) -> None:
        """The latency histogram point and the pod's traffic, as the server and as the client of its downstream."""
        pipeline.latency.record(
            call.duration_ns / 1e9,
            {semconv.HTTP_STATUS_ATTRIBUTE: call.status, "http.route": call.route, "http.request.method": call.method},
        )
        received, transmitted = call.request_bytes, call.response_bytes
        if call.downstream:
            received += call.downstream.response_bytes
            transmitted += call.downstream.request_bytes
        pipeline.usage.served(received, transmitted, call.disk_read_bytes, log_bytes)

    @staticmethod
    def _remember(history: PodHistory, call: Call, log_bytes: int) -> None:
        """What `_account` records, into a backfilled pod's history."""
        received, transmitted = call.request_bytes, call.response_bytes
        if call.downstream:
            received += call.downstream.response_bytes
            transmitted += call.downstream.request_bytes
        history.served(
            call.status,
            call.route,
            call.method,
            call.duration_ns / 1e9,
            received,
            transmitted,
            call.disk_read_bytes,
            log_bytes,
        )

    # ------------------------------------------------------------------------------------ pod lifecycle

    def startup(self, pipeline: Pipeline, at_ns: int) -> None:
        """A pod coming up: scheduling and container events, then the service's start-up log lines."""
        workload = pipeline.workload
        version = _IMAGE_VERSION[workload.component]
        events = [
            ("Scheduled", f"Successfully assigned {workload.pod_namespace}/{workload.pod} to {workload.node}"),
            ("Pulling", f'Pulling image "{workload.image}"'),
            ("Pulled", f'Successfully pulled image "{workload.image}" in 1.84s (1.84s including waiting)'),
            ("Created", f"Created container: {CONTAINER}"),
            ("Started", f"Started container {CONTAINER}"),
        ]
        for index, (reason, message) in enumerate(events):
            pipeline.event(reason, message, at_ns + index * 400_000_000)
        lines = [
            ("INFO", f"{workload.component} {version} starting (environment={workload.environment})"),
            ("DEBUG", f"loaded configuration from /etc/{workload.component}/config.yaml"),
            ("INFO", f"Starting HTTP server on :{HTTP_PORT}"),
            ("INFO", "ready to serve requests"),
        ]
        if workload.environment == "development":
            lines.insert(2, ("WARN", "TLS verification of upstream calls disabled (development mode)"))
        for index, (level, body) in enumerate(lines):
            pipeline.log(level, body, at_ns + 2_500_000_000 + index * 30_000_000)

    @staticmethod
    def incident(pipeline: Pipeline, rng: random.Random, at_ns: int) -> None:
        """An occasional warning about a pod: a failed readiness probe, now and then a restart back-off."""
        workload = pipeline.workload
        if rng.random() < 0.75:
            probe = f"http://10.0.{rng.randint(0, 9)}.{rng.randint(2, 250)}:{HTTP_PORT}/healthz"
            message = (
                f'Readiness probe failed: Get "{probe}": context deadline exceeded'
                " (Client.Timeout exceeded while awaiting headers)"
            )
            pipeline.event("Unhealthy", message, at_ns, warning=True)
        else:
            message = f"Back-off restarting failed container {CONTAINER} in pod {workload.pod}_{workload.pod_namespace}"
            pipeline.event("BackOff", message, at_ns, warning=True)


# ----------------------------------------------------------------------------------------------- the driver


def _reachable(endpoint: str, timeout_s: float = 0.5) -> bool:
    """Whether something accepts TCP connections where the endpoint points."""
    url = urlsplit(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "127.0.0.1", port), timeout=timeout_s):
            return True
    except OSError:
        return False


class DemoTraffic:
    """Sends the sample platform's telemetry to an OTLP/HTTP endpoint.

    `start()` runs the traffic on a daemon thread until `stop()`, which also flushes and shuts down every
    provider; an instance is used once. `backfill()` adds history before the live traffic.
    `error_rate` is the share of checkouts whose payment fails with a 502; `seed` makes the traffic (though not
    its timing) reproducible.
    """

    def __init__(
        self,
        endpoint: str = DEFAULT_ENDPOINT,
        rate: float = DEFAULT_RATE,
        *,
        export_interval_s: float = DEFAULT_EXPORT_INTERVAL_S,
        error_rate: float = DEFAULT_ERROR_RATE,
        timeout_s: float = 5.0,
        seed: int | None = None,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, not {rate}")
        self.endpoint = endpoint.rstrip("/")
        self.rate = rate
        self.error_rate = error_rate
        self.requests_sent = 0
        self._rng = random.Random(seed)
        self.workloads = build_workloads(self._rng)
        self.pipelines = {
            key: Pipeline(workload, self.endpoint, export_interval_s, timeout_s, self._rng.getrandbits(32))
            for key, workload in self.workloads.items()
        }
        self._emitter = Emitter(self.pipelines)
        self._environments = list(ENVIRONMENT_WEIGHTS)
        self._weights = list(ENVIRONMENT_WEIGHTS.values())
        self._started_up = False
        self._pending_backfill: tuple[int, float] | None = None  # (minutes, rate) left to the background thread
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopped = False

    # ------------------------------------------------------------------------------------ public API

    def start(self) -> None:
        """Runs the traffic on a daemon thread. The thread first waits (bounded) for the endpoint to accept
        connections, since the all-in-one starts the demo before its OTLP receiver listens."""
        if self._thread is not None:
            raise RuntimeError("the demo traffic was already started")
        self._thread = threading.Thread(target=self._run, name="observer-demo", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stops the traffic and flushes and shuts down every provider (in parallel, so a dead endpoint costs one
        export timeout, not one per provider). Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        providers = [provider for pipeline in self.pipelines.values() for provider in pipeline.providers]
        with ThreadPoolExecutor(max_workers=len(providers), thread_name_prefix="observer-demo-stop") as pool:
            list(pool.map(_shut_down, providers))

    def run_for(self, seconds: float) -> int:
        """Runs the live traffic for `seconds`, then stops (flushing everything); returns the requests sent in
        all (backfilled ones included)."""
        self.start()
        self._stop.wait(seconds)
        self.stop()
        return self.requests_sent

    def backfill(self, minutes: int, rate: float | None = None) -> int:
        """Spans, logs and events spread over the past `minutes` (metrics cannot be backdated through the SDK),
        at `rate` requests per second (default: the live rate, at most one a second). Returns the requests sent.
        Call it before `start()`: both draw from one random generator, which makes a seeded run reproducible.

        If the endpoint does not accept connections yet, the backfill is left to the background thread, which
        runs it as soon as the endpoint answers (and returns 0 here): the all-in-one asks for history before
        its OTLP receiver listens, and data sent now would be lost."""
        if minutes <= 0:
            return 0
        rate = rate or min(self.rate, DEFAULT_BACKFILL_RATE)
        if not _reachable(self.endpoint):
            self._pending_backfill = (minutes, rate)
            return 0
        return self._backfill(minutes, rate)

    # ------------------------------------------------------------------------------------ internals

    def _backfill(self, minutes: int, rate: float) -> int:
        """Spans, logs, events and metrics over the past `minutes`. The metrics are collected from each pod's
        history every HISTORY_INTERVAL_S of the past and exported with the rest at each flush, oldest first,
        before the live instruments exist (`start_metrics`), so every running total arrives in time order."""
        end_ns = time.time_ns()
        at_ns = end_ns - minutes * 60 * 1_000_000_000
        self._start_up(at_ns)
        histories = {key: PodHistory(_POD_SHAPES[key[0]], at_ns, self._rng.getrandbits(32)) for key in self.pipelines}
        collected: dict[tuple[str, str], list[Any]] = {key: [] for key in self.pipelines}
        self._emitter.history = histories
        tick_ns = HISTORY_INTERVAL_S * 1_000_000_000
        next_tick = at_ns + tick_ns
        sent = 0
        next_incident = at_ns + self._interval_ns(1 / EVENT_MEAN_INTERVAL_S)
        at_ns += 10_000_000_000  # the pods answer once all have started
        try:
            while at_ns < end_ns and not self._stop.is_set():
                while next_tick <= at_ns:
                    self._collect(histories, collected, next_tick)
                    next_tick += tick_ns
                if at_ns >= next_incident:
                    self._incident(next_incident)
                    next_incident += self._interval_ns(1 / EVENT_MEAN_INTERVAL_S)
                self._request(at_ns, live=False)
                sent += 1
                if sent % BACKFILL_FLUSH_EVERY == 0:
                    self._flush(collected)
                at_ns += self._interval_ns(rate)
            if not self._stop.is_set():
                self._collect(histories, collected, end_ns)
            self._flush(collected)
        finally:
            self._emitter.history = None
        log.info("demo: backfilled %d requests over the past %d min", sent, minutes)
        return sent

    def _collect(
        self, histories: dict[tuple[str, str], PodHistory], collected: dict[tuple[str, str], list[Any]], at_ns: int
    ) -> None:
        """One collection of every pod's history at `at_ns`, kept for the next flush."""
        for key, history in histories.items():
            collected[key].append(history.metrics(at_ns))

    def _interval_ns(self, rate: float) -> int:
        """Time to the next arrival of a Poisson process with `rate` arrivals per second."""
        return int(self._rng.expovariate(rate) * 1e9)

    def _flush(self, collected: dict[tuple[str, str], list[Any]] | None = None) -> None:
        """Spans and logs queued so far, then the metric collections `collected` holds (emptied), one export
        per pod holding each collection in time order."""
        with ThreadPoolExecutor(max_workers=len(self.pipelines), thread_name_prefix="observer-demo-flush") as pool:
            list(pool.map(Pipeline.flush, self.pipelines.values()))
            if collected:
                exports = [(self.pipelines[key], collections) for key, collections in collected.items() if collections]
                list(pool.map(lambda item: _export_history(*item), exports))
                for collections in collected.values():
                    collections.clear()

    def _start_up(self, at_ns: int) -> None:
        """The start-up events and logs of every pod, once per run, staggered as a rollout would be."""
        if self._started_up:
            return
        self._started_up = True
        for index, pipeline in enumerate(self.pipelines.values()):
            self._emitter.startup(pipeline, at_ns + index * 700_000_000)

    def _environment(self) -> str:
        return self._rng.choices(self._environments, self._weights)[0]

    def _request(self, end_ns: int, live: bool) -> None:
        self._emitter.request(plan_request(self._rng, self.error_rate), self._environment(), end_ns, live)
        self.requests_sent += 1

    def _incident(self, at_ns: int) -> None:
        pipeline = self.pipelines[(self._rng.choice(COMPONENTS), self._environment())]
        self._emitter.incident(pipeline, self._rng, at_ns)

    def _await_endpoint(self) -> None:
        deadline = time.monotonic() + ENDPOINT_WAIT_S
        while not _reachable(self.endpoint) and time.monotonic() < deadline:
            if self._stop.wait(0.2):
                return
        if not _reachable(self.endpoint):
            log.warning("demo: %s does not accept connections; sending anyway", self.endpoint)

    def _run(self) -> None:
        try:
            self._await_endpoint()
            if self._stop.is_set():
                return
            if self._pending_backfill:
                self._backfill(*self._pending_backfill)
            for pipeline in self.pipelines.values():
                pipeline.start_metrics()
            self._start_up(time.time_ns())
            self._live()
        except Exception:  # a daemon thread dies silently otherwise
            log.exception("demo traffic stopped")

    def _live(self) -> None:
        """Requests as a Poisson process at `rate`, and now and then a warning event, until stopped."""
        next_request = time.monotonic()
        next_incident = next_request + self._rng.expovariate(1 / EVENT_MEAN_INTERVAL_S)
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_incident:
                self._incident(time.time_ns())
                next_incident = now + self._rng.expovariate(1 / EVENT_MEAN_INTERVAL_S)
            if now >= next_request:
                self._request(time.time_ns(), live=True)
                next_request = max(next_request + self._rng.expovariate(self.rate), now - 1.0)  # no endless catch-up
            self._stop.wait(max(0.0, min(next_request, next_incident) - time.monotonic()))


# ----------------------------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `observer demo`."""
    parser.add_argument("--endpoint", default=DEFAULT_ENDPOINT, help=f"OTLP/HTTP base URL (default {DEFAULT_ENDPOINT})")
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE, help="requests per second (default %(default)s)")
    parser.add_argument("--duration", type=float, default=0, help="seconds to run; 0 runs until interrupted")
    parser.add_argument("--backfill", type=int, default=0, metavar="MINUTES", help="first send this much history")
    parser.add_argument(
        "--interval", type=float, default=DEFAULT_EXPORT_INTERVAL_S, help="metric export interval in seconds"
    )
    parser.add_argument("--error-rate", type=float, default=DEFAULT_ERROR_RATE, help="share of failing checkouts")
    parser.add_argument("--seed", type=int, default=None, help="make the generated traffic reproducible")


def run(args: argparse.Namespace) -> int:
    """Runs the demo as `add_arguments` configured it, until the duration passes or Ctrl-C."""
    demo = DemoTraffic(
        args.endpoint, args.rate, export_interval_s=args.interval, error_rate=args.error_rate, seed=args.seed
    )
    platform = DEMO_PLATFORM
    log.info(
        "demo: sending to %s: namespace %s, project %s, components %s, environments %s, %.1f requests/s",
        demo.endpoint,
        platform["namespace"],
        platform["project"],
        ", ".join(platform["components"]),
        ", ".join(platform["environments"]),
        args.rate,
    )
    try:
        demo.backfill(args.backfill)
        demo.start()
        if args.duration > 0:
            time.sleep(args.duration)
        else:
            threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        demo.stop()
    log.info("demo: sent %d requests", demo.requests_sent)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m observer.demo`: the same as `observer demo`."""
    parser = argparse.ArgumentParser(prog="observer demo", description="Send demo telemetry to an OTLP/HTTP endpoint.")
    add_arguments(parser)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
