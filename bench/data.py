"""Deterministic synthetic telemetry for benchmarks: a platform's worth of log lines of about 200 bytes."""

from __future__ import annotations

import random
from collections.abc import Iterator

from domain.model import Identity, LogRecord

NAMESPACE, PROJECT = "bench", "shop"
COMPONENTS = ("frontend", "cart", "payments", "catalog", "search")
ENVIRONMENTS = ("development", "production")
PODS_PER_COMPONENT = 2
HOUR_NS = 3600 * 10**9


def uid(kind: str, name: str) -> str:
    import uuid

    return str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{kind}.{name}.bench"))


def identities() -> list[Identity]:
    return [
        Identity(
            namespace=NAMESPACE,
            project=PROJECT,
            project_uid=uid("project", PROJECT),
            component=component,
            component_uid=uid("component", component),
            environment=environment,
            environment_uid=uid("environment", environment),
            pod=f"{component}-{environment[:4]}-{pod}",
            pod_namespace=f"dp-{NAMESPACE}-{environment}",
            container="main",
        )
        for component in COMPONENTS
        for environment in ENVIRONMENTS
        for pod in range(PODS_PER_COMPONENT)
    ]


_TEMPLATES = (
    ("INFO", "GET /api/items/{n} 200 {ms}ms user={user} request_id={rid} region=eu-west-1 cache=hit upstream=catalog"),
    ("INFO", "order {n} placed for customer {user}: 3 items, total 129.90 EUR, shipping standard, request_id={rid}"),
    ("DEBUG", "cache miss for key user:{user}:cart, loading from database shard {k} (request_id={rid}, attempt 1)"),
    ("DEBUG", '{{"level":"debug","msg":"pool stats","active":{k},"idle":{ms},"waiting":0,"request_id":"{rid}"}}'),
    (
        "WARN",
        "slow query on orders table took {ms}ms (threshold 500ms) request_id={rid} statement=SELECT ... FOR UPDATE",
    ),
    ("ERROR", "connection timeout after {ms}ms to db-{k}.internal:5432 while processing request_id={rid}; retrying"),
    ("ERROR", "payment declined: card expired for order {n} customer {user} (gateway code 54, request_id={rid})"),
    (
        "WARN",
        "upstream timeout calling inventory service after {ms}ms, serving stale data for item {n} request_id={rid}",
    ),
)
_WEIGHTS = (40, 15, 15, 10, 8, 4, 3, 5)


def log_records(count: int, end_ns: int, span_ns: int = 24 * HOUR_NS, seed: int = 7) -> Iterator[LogRecord]:
    """`count` records spread evenly over the `span_ns` before `end_ns`, round-robin over the identities."""
    rng = random.Random(seed)
    streams = identities()
    start_ns = end_ns - span_ns
    step = span_ns // count
    for index in range(count):
        level, template = rng.choices(_TEMPLATES, _WEIGHTS)[0]
        body = template.format(
            n=rng.randrange(10**6),
            ms=rng.randrange(5, 3000),
            user=rng.randrange(10**5),
            rid=f"{rng.getrandbits(64):016x}",
            k=rng.randrange(8),
        )
        yield LogRecord(
            ts_ns=start_ns + index * step + rng.randrange(step),
            body=body,
            level=level,
            identity=streams[index % len(streams)],
            stream="stdout",
        )
