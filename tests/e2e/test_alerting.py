"""Alerting end to end, as a platform team runs it: `observer up` on real backends, rules and channels declared
with `observer rules apply -f`, telemetry crossing the threshold, and the notification arriving at a real webhook
receiver and a real SMTP server (STARTTLS, AUTH); the alert and its incident then answer through the query API.

- a metric rule, carried into a real Prometheus as a rule group; a real Alertmanager posts the firing back to
  the observer's webhook;
- a log rule on the embedded backend and on OpenSearch, evaluated by the observer itself.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from adapters.prometheus.backend import PrometheusBackend
from adapters.prometheus.client import PrometheusConfig
from adapters.prometheus.otel import OtelScheme
from adapters.prometheus.remote_write import RemoteWriter
from adapters.prometheus.rules import alertmanager_config
from devservers.observer import observer_up
from devservers.opensearch_layout import drop_layout_at, unique_layout
from devservers.receivers import SmtpServer, WebhookReceiver
from devservers.sample import COMPONENTS, ENVIRONMENTS, PROJECT_UID, identity
from domain import semconv
from domain.model import MetricKind, MetricPoint
from domain.timeutil import format_rfc3339

S = 10**9
CART = {"namespace": "acme", "project": "shop", "component": "cart", "environment": "prod"}
NULL_ALERTMANAGER = 'route:\n  receiver: "null"\nreceivers:\n  - name: "null"\n'


def manifest(rule_name: str, source: dict, threshold: float, hook_url: str, smtp: SmtpServer) -> str:
    labels = {
        "openchoreo.dev/namespace": "acme",
        "openchoreo.dev/project": "shop",
        "openchoreo.dev/component": "cart",
        "openchoreo.dev/environment": "prod",
        "openchoreo.dev/project-uid": PROJECT_UID,
        "openchoreo.dev/component-uid": COMPONENTS["cart"],
        "openchoreo.dev/environment-uid": ENVIRONMENTS["prod"],
    }
    docs = [
        {
            "apiVersion": "openchoreo.dev/v1alpha1",
            "kind": "ObservabilityAlertRule",
            "metadata": {"name": rule_name, "namespace": "acme", "labels": labels},
            "spec": {
                "name": rule_name,
                "severity": "critical",
                "description": f"{rule_name} crossed its threshold",
                "source": source,
                "condition": {"window": "1m", "interval": "1m", "operator": "gt", "threshold": threshold},
                "actions": {"notifications": {"channels": ["ops-hook", "ops-mail"]}, "incident": {"enabled": True}},
            },
        },
        {
            "apiVersion": "openchoreo.dev/v1alpha1",
            "kind": "ObservabilityAlertsNotificationChannel",
            "metadata": {"name": "ops-hook", "namespace": "acme"},
            "spec": {
                "environment": "prod",
                "type": "webhook",
                "webhookConfig": {
                    "url": hook_url,
                    "headers": {"X-Team": {"valueFrom": {"secretKeyRef": {"name": "hook", "key": "team"}}}},
                    "payloadTemplate": '{"text": "${alertName} is ${alertSeverity}", "value": "${alertValue}"}',
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "hook", "namespace": "acme"},
            "stringData": {"team": "payments-oncall"},
        },
        {
            "apiVersion": "openchoreo.dev/v1alpha1",
            "kind": "ObservabilityAlertsNotificationChannel",
            "metadata": {"name": "ops-mail", "namespace": "acme"},
            "spec": {
                "environment": "prod",
                "type": "email",
                "emailConfig": {
                    "from": "observer@example.org",
                    "to": ["oncall@example.org"],
                    "smtp": {
                        "host": smtp.host,
                        "port": smtp.port,
                        "tls": {"insecureSkipVerify": True},
                        "auth": {
                            "username": {"secretKeyRef": {"name": "smtp", "key": "user"}},
                            "password": {"secretKeyRef": {"name": "smtp", "key": "password"}},
                        },
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "smtp", "namespace": "acme"},
            "stringData": {"user": "alerts", "password": "s3cret"},
        },
    ]
    return yaml.safe_dump_all(docs)


def rules_apply(data_dir: Path, text: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "observer.cli", "rules", "apply", "-f", "-", "--data-dir", str(data_dir)],
        input=text,
        capture_output=True,
        text=True,
        env={**os.environ},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


async def wait_for(condition, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = await condition()
        if value:
            return value
        await asyncio.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


async def check_alert_flow(api: str, hook: WebhookReceiver, smtp: SmtpServer, rule_name: str, timeout_s: float) -> None:
    """The notification reaches both channels once; the alert and its incident answer through the query API."""
    await wait_for(lambda: _ready(hook, smtp), timeout_s, f"{rule_name}'s notifications")
    [request] = [r for r in hook.requests if rule_name in r.body.decode()]
    assert request.json()["text"] == f"{rule_name} is critical"
    assert request.header("X-Team") == "payments-oncall"
    [mail] = smtp.messages
    assert mail.tls and mail.login == "alerts" and rule_name in mail.message["Subject"]
    window = {
        "startTime": format_rfc3339(time.time_ns() - 3600 * S),
        "endTime": format_rfc3339(time.time_ns() + 60 * S),
    }
    async with httpx.AsyncClient(base_url=api, timeout=30) as http:
        alerts = (await http.post("/api/v1alpha1/alerts/query", json=window | {"searchScope": CART})).json()
        assert "total" in alerts, alerts
        incidents = (await http.post("/api/v1alpha1/incidents/query", json=window | {"searchScope": CART})).json()
    assert alerts["total"] == 1 and alerts["alerts"][0]["metadata"]["alertRule"]["name"] == rule_name
    assert incidents["total"] == 1 and incidents["incidents"][0]["alertId"] == alerts["alerts"][0]["alertId"]
    assert request.json()["value"] == alerts["alerts"][0]["alertValue"]


async def _ready(hook: WebhookReceiver, smtp: SmtpServer) -> bool:
    return bool(hook.requests) and bool(smtp.messages)


def cpu_points(at_ns: int) -> list[MetricPoint]:
    """Two cart pods using 0.3 and 0.6 cores against limits of 0.5 each: 90% of the limits."""
    points = []
    for step in range(5):
        ts = at_ns - 60 * S + step * 15 * S
        for pod, used in (("cart-prod-0", 0.3), ("cart-prod-1", 0.6)):
            who = identity("cart", "prod", pod)
            for name, value in ((semconv.CPU_USAGE[0], used), (semconv.CPU_LIMIT[0], 0.5)):
                points.append(MetricPoint(name, MetricKind.GAUGE, ts, who, value=value, unit=semconv.UNITS[name]))
    return points


async def test_metric_rule_through_prometheus_and_alertmanager(tmp_path, prometheus_server):
    data = tmp_path / "observer"
    rule = f"cart-cpu-{uuid.uuid4().hex[:6]}"
    env = {
        "PROMETHEUS_ADDRESS": prometheus_server.url,
        "OBSERVER_PROMETHEUS_RULES_DIR": str(prometheus_server.rules_dir),
        "OBSERVER_RULE_RECONCILE_INTERVAL_SECONDS": "1",
    }
    sink = PrometheusBackend(PrometheusConfig(prometheus_server.url), OtelScheme(), RemoteWriter(prometheus_server.url))
    with observer_up(data, env=env, log_file=tmp_path / "observer.log") as plane:
        prometheus_server.configure_alertmanager(
            alertmanager_config(f"{plane.internal}/api/v1alpha1/alerts/webhook", group_wait="1s", group_interval="1s")
        )
        async with WebhookReceiver() as hook:
            with SmtpServer(tmp_path) as smtp:
                # the cart also logs through the observer, which is how it learns the names queries use
                await send_otlp_logs(plane.otlp, [{"timeUnixNano": str(time.time_ns()), "body": {"stringValue": "up"}}])
                rules_apply(data, manifest(rule, {"type": "metric", "metric": "cpu_usage"}, 50, hook.url, smtp))

                async def feed() -> None:  # live samples: whenever Prometheus evaluates, the last minute has data
                    while True:
                        await sink.write(batch_id="", metrics=cpu_points(time.time_ns()))
                        await asyncio.sleep(5)

                feeding = asyncio.create_task(feed())
                try:
                    # Prometheus evaluates a 1m group within a minute of loading it; the bound only guards a hang.
                    await check_alert_flow(plane.api, hook, smtp, rule, timeout_s=180)
                finally:
                    feeding.cancel()
                    await asyncio.gather(feeding, return_exceptions=True)
                    await sink.close()
                    prometheus_server.configure_alertmanager(NULL_ALERTMANAGER)
    assert any(rule in path.name for path in prometheus_server.rules_dir.iterdir())


@pytest.mark.parametrize("backend", ["embedded", "opensearch"])
async def test_log_rule_evaluated_by_the_observer(tmp_path, backend, request):
    data = tmp_path / "observer"
    rule = f"cart-errors-{uuid.uuid4().hex[:6]}"
    env = {"OBSERVER_RULE_RECONCILE_INTERVAL_SECONDS": "1"}
    layout = unique_layout("alerting")
    if backend == "opensearch":
        env |= {
            "OPENSEARCH_ADDRESS": request.getfixturevalue("opensearch_url"),
            "OPENSEARCH_INDEX_PREFIX": layout.logs,
            "OPENSEARCH_EVENTS_INDEX_PREFIX": layout.events,
            "OPENSEARCH_TRACES_INDEX_PREFIX": layout.traces,
            "OPENSEARCH_AUDIT_PREFIX": layout.audit,
        }
    try:
        await _log_rule_flow(tmp_path, data, rule, env)
    finally:
        if backend == "opensearch":
            await asyncio.to_thread(drop_layout_at, env["OPENSEARCH_ADDRESS"], layout)


async def _log_rule_flow(tmp_path: Path, data: Path, rule: str, env: dict[str, str]) -> None:
    with observer_up(data, env=env, log_file=tmp_path / "observer.log") as plane:
        async with WebhookReceiver() as hook:
            with SmtpServer(tmp_path) as smtp:
                lines = [
                    {
                        "timeUnixNano": str(time.time_ns() - i * 10**8),
                        "severityText": "ERROR",
                        "body": {"stringValue": f"ERROR payment declined #{i}"},
                    }
                    for i in range(5)
                ]
                await send_otlp_logs(plane.otlp, lines)
                rules_apply(data, manifest(rule, {"type": "log", "query": "payment declined"}, 3, hook.url, smtp))
                # the evaluator runs each rule at its next 1m slot (+5 s), counting the minute before it
                await check_alert_flow(plane.api, hook, smtp, rule, timeout_s=150)


async def send_otlp_logs(otlp: str, records: list[dict]) -> None:
    from devservers.sample import CART_PROD_LABELS

    resource = {
        "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in CART_PROD_LABELS.items()]
        + [
            {"key": "k8s.pod.name", "value": {"stringValue": "cart-prod-0"}},
            {"key": "k8s.container.name", "value": {"stringValue": "main"}},
        ]
    }
    body = {"resourceLogs": [{"resource": resource, "scopeLogs": [{"logRecords": records}]}]}
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(f"{otlp}/v1/logs", json=body)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("killed_at", ["claimed", "sent"])
async def test_a_crash_between_accepting_and_notifying_still_notifies_once(tmp_path, killed_at):
    """The observer dies after accepting an alert: right after claiming its notification (nothing sent yet), or
    right after the receiver got it (before recording that). After a restart, the receiver has processed the
    notification exactly once: never lost, and a resend carries the same idempotency key."""
    data = tmp_path / "observer"
    rule = "cart-errors"
    env = {"OBSERVER_NOTIFICATION_LEASE_SECONDS": "10"}  # long enough for a first send (CEL warms up)
    async with WebhookReceiver() as hook:
        with SmtpServer(tmp_path) as smtp:
            text = manifest(rule, {"type": "log", "query": "declined"}, 3, hook.url, smtp)
            rules_apply(
                data, yaml.safe_dump_all([d for d in yaml.safe_load_all(text) if d["metadata"]["name"] != "ops-mail"])
            )
            with observer_up(
                data, env=env | {"OBSERVER_TEST_OUTBOX_KILL_AT": killed_at}, log_file=tmp_path / "first.log"
            ) as plane:
                async with httpx.AsyncClient(timeout=30) as http:
                    fired = await http.post(
                        f"{plane.internal}/api/v1alpha1/alerts/webhook",
                        json={"ruleName": rule, "ruleNamespace": "acme", "alertValue": 7},
                    )
                assert fired.status_code == 200, fired.text
                assert (
                    await asyncio.to_thread(plane.process.wait, 60) == -9
                )  # the hook's SIGKILL; the receiver keeps serving
            assert len(hook.requests) == (1 if killed_at == "sent" else 0)
            with observer_up(data, env=env):
                await wait_for(lambda: _delivered_again(hook, killed_at), 60, "the notification after the restart")
                await asyncio.sleep(3)  # nothing more follows
            keys = {request.header("X-OpenChoreo-Idempotency-Key") for request in hook.requests}
            assert len(keys) == 1 and len(hook.processed) == 1
            assert len(hook.requests) == (2 if killed_at == "sent" else 1)


async def _delivered_again(hook: WebhookReceiver, killed_at: str) -> bool:
    return len(hook.requests) >= (2 if killed_at == "sent" else 1)
