"""Datadog end to end, every piece a real process but Datadog itself (the local fake, devservers/datadog):

`observer collect` receives OTLP/HTTP logs stamped with the OpenChoreo identity and exports them to Datadog
(its `exporter.datadog` settings taken from the environment: DATADOG_API_URL and DD_API_KEY, as a deployment
sets them); `observer up`, with the Datadog backend enabled the same way (and DD_APP_KEY, which queries need),
returns them through `POST /api/v1/logs/query` by component, each exactly once, and nothing of another
component's.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from collectors.otlp.encode import encode_batch
from devservers.collector import collector
from devservers.datadog import DatadogFake
from devservers.local import free_port
from devservers.observer import AllInOne, observer_up
from domain.model import Identity, LogRecord
from domain.timeutil import format_rfc3339, now_ns

pytestmark = pytest.mark.e2e

NAMESPACE, PROJECT, ENV = "acme", "shop", "prod"
UIDS = {"project": "9b3c1e6e-0000-4000-8000-000000000001", "prod": "9b3c1e6e-0000-4000-8000-000000000002"}
COMPONENT_UIDS = {"cart": "9b3c1e6e-0000-4000-8000-0000000000c1", "pay": "9b3c1e6e-0000-4000-8000-0000000000c2"}
REGISTRY = f"""
namespaces:
  - name: {NAMESPACE}
    environments: [{{name: {ENV}, uid: {UIDS["prod"]}}}]
    projects:
      - name: {PROJECT}
        uid: {UIDS["project"]}
        components: [{{name: cart, uid: {COMPONENT_UIDS["cart"]}}}, {{name: pay, uid: {COMPONENT_UIDS["pay"]}}}]
"""
#: How long delivery plus Datadog's (the fake's) indexing may take.
ARRIVES_WITHIN_S = 60.0


def identity(component: str) -> Identity:
    return Identity(
        namespace=NAMESPACE,
        project=PROJECT,
        project_uid=UIDS["project"],
        component=component,
        component_uid=COMPONENT_UIDS[component],
        environment=ENV,
        environment_uid=UIDS["prod"],
        pod=f"{component}-0",
        pod_namespace="dp-acme-shop",
        container="main",
    )


def datadog_env(fake: DatadogFake, *, app_key: bool) -> dict[str, str]:
    env = {"DATADOG_API_URL": fake.url, "DD_API_KEY": fake.api_key}
    return {**env, "DD_APP_KEY": fake.app_key} if app_key else env


@pytest.fixture
def observer(tmp_path: Path, datadog_fake: DatadogFake) -> Iterator[AllInOne]:
    """`observer up` whose logs, events, traces and metrics are Datadog's; names resolve from a registry file."""
    (tmp_path / "registry.yaml").write_text(REGISTRY)
    with observer_up(
        tmp_path / "observer-data",
        "--registry",
        str(tmp_path / "registry.yaml"),
        log_file=tmp_path / "observer.log",
        env=datadog_env(datadog_fake, app_key=True),
    ) as running:
        yield running


def send(otlp: str, records: list[LogRecord]) -> None:
    """One OTLP/HTTP protobuf export per request the records make, as an SDK's exporter sends them."""
    for request in encode_batch(logs=records):
        response = httpx.post(
            f"{otlp}/v1/logs",
            content=request.message().SerializeToString(),
            headers={"Content-Type": "application/x-protobuf"},
            timeout=30,
        )
        assert response.status_code == 200, response.text


def logs_of(api: str, component: str, run: str) -> list[str]:
    now = now_ns()
    body: dict[str, Any] = {
        "startTime": format_rfc3339(now - 30 * 60 * 10**9),
        "endTime": format_rfc3339(now + 60 * 10**9),
        "searchScope": {"namespace": NAMESPACE, "project": PROJECT, "component": component, "environment": ENV},
        "limit": 1000,
    }
    response = httpx.post(f"{api}/api/v1/logs/query", json=body, timeout=30)
    assert response.status_code == 200, response.text
    return sorted(entry["log"] for entry in response.json()["logs"] if entry["log"].startswith(run))


def test_logs_shipped_by_the_collector_come_back_through_the_observer_by_component(
    tmp_path: Path, datadog_fake: DatadogFake, observer: AllInOne
) -> None:
    run = uuid.uuid4().hex[:12]
    now = now_ns()
    cart = [LogRecord(now + i, f"{run} cart line {i:03d}", identity("cart"), "INFO") for i in range(120)]
    pay = [LogRecord(now + i, f"{run} pay line {i:03d}", identity("pay"), "ERROR") for i in range(30)]
    document = {
        "receivers": {"otlp": {"port": free_port()}},
        "buffer": {"directory": str(tmp_path / "buffer")},
        "exporter": {"datadog": {}},  # every setting from the environment
    }
    with collector(tmp_path, document, env=datadog_env(datadog_fake, app_key=False)) as running:
        send(running.otlp, cart[:60] + pay)
        send(running.otlp, cart[60:])
        deadline = time.monotonic() + ARRIVES_WITHIN_S
        while len(logs_of(observer.api, "cart", run)) < len(cart) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert running.value("collector_records_in_total", pipeline="otlp") == len(cart) + len(pay)

    assert logs_of(observer.api, "cart", run) == sorted(record.body for record in cart)
    assert logs_of(observer.api, "pay", run) == sorted(record.body for record in pay)
    received = [entry for entry in datadog_fake.received()["logs"] if entry["attributes"]["message"].startswith(run)]
    assert len(received) == len(cart) + len(pay)  # delivered once each
