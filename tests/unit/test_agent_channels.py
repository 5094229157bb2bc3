"""The agent's inverse of the channel controller's ConfigMap + Secret (contract notes §2.5): what it rebuilds must
be a channel the observer accepts, with every secret value referenced from the Secret named after the channel."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml

from agents.channels import (
    CHANNEL_LABEL,
    ChannelDataError,
    channel_from_objects,
    recipients,
    secret_values,
)
from agents.rules import rule_payload, rule_status
from domain.alerting import channel_from_resource


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def config_map(name: str, data: dict[str, str], labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "acme", "labels": {CHANNEL_LABEL: name, **(labels or {})}},
        "data": data,
    }


def secret(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": "acme", "labels": {CHANNEL_LABEL: name}},
        "data": {key: _b64(value) for key, value in data.items()},
    }


EMAIL = {
    "type": "email",
    "isEnvDefault": "true",
    "from": "alerts@acme.test",
    "to": "[ops@acme.test dev@acme.test]",
    "smtp.host": "smtp.acme.test",
    "smtp.port": "2525",
    "template.subject": "[${alertSeverity}] ${alertName}",
    "template.body": "Value ${alertValue}",
    "smtp.tls.insecureSkipVerify": "true",
}


def test_an_email_channel_comes_back_with_its_smtp_credentials_from_its_secret() -> None:
    doc = channel_from_objects(
        config_map("mail", EMAIL, {"openchoreo.dev/environment": "production"}),
        secret("mail", {"smtp.auth.username": "robot", "smtp.auth.password": "s3cret"}),
    )
    assert (doc.namespace, doc.name) == ("acme", "mail")
    assert doc.secrets == {"smtp.auth.username": "robot", "smtp.auth.password": "s3cret"}
    assert doc.channel == {
        "apiVersion": "openchoreo.dev/v1alpha1",
        "kind": "ObservabilityAlertsNotificationChannel",
        "metadata": {"name": "mail", "namespace": "acme"},
        "spec": {
            "environment": "production",
            "isEnvDefault": True,
            "type": "email",
            "emailConfig": {
                "from": "alerts@acme.test",
                "to": ["ops@acme.test", "dev@acme.test"],
                "smtp": {
                    "host": "smtp.acme.test",
                    "port": 2525,
                    "auth": {
                        "username": {"secretKeyRef": {"name": "mail", "key": "smtp.auth.username"}},
                        "password": {"secretKeyRef": {"name": "mail", "key": "smtp.auth.password"}},
                    },
                    "tls": {"insecureSkipVerify": True},
                },
                "template": {"subject": "[${alertSeverity}] ${alertName}", "body": "Value ${alertValue}"},
            },
        },
    }
    channel = channel_from_resource(doc.channel)  # the observer's own reading of it
    assert channel.email is not None and channel.email.to == ("ops@acme.test", "dev@acme.test")
    assert channel.email.username is not None and channel.email.username.name == "mail"
    assert channel.environment == "production" and channel.is_env_default


def test_an_email_channel_without_credentials_or_port_defaults_as_upstream() -> None:
    data = {k: v for k, v in EMAIL.items() if k not in ("smtp.port", "template.subject", "template.body")}
    doc = channel_from_objects(config_map("mail", data | {"isEnvDefault": "false"}), None)
    smtp = doc.channel["spec"]["emailConfig"]["smtp"]
    assert smtp["port"] == 587 and "auth" not in smtp
    assert "template" not in doc.channel["spec"]["emailConfig"]
    assert doc.channel["spec"]["environment"] == "default" and doc.channel["spec"]["isEnvDefault"] is False
    assert doc.secrets == {}


def test_a_webhook_channel_keeps_inline_headers_and_references_secret_ones() -> None:
    data = {
        "type": "webhook",
        "isEnvDefault": "false",
        "webhook.url": "https://hooks.acme.test/alerts",
        "webhook.payloadTemplate": '{"text": "${alertName}"}',
        "webhook.headers": "Authorization,X-Api-Key",
        "webhook.header.Authorization": "Bearer inline",
    }
    doc = channel_from_objects(
        config_map("hook", data), secret("hook", {"webhook.header.X-Api-Key": "k3y", "webhook.header.X-Extra": "x"})
    )
    assert doc.channel["spec"]["webhookConfig"] == {
        "url": "https://hooks.acme.test/alerts",
        "payloadTemplate": '{"text": "${alertName}"}',
        "headers": {
            "Authorization": {"value": "Bearer inline"},
            "X-Api-Key": {"valueFrom": {"secretKeyRef": {"name": "hook", "key": "webhook.header.X-Api-Key"}}},
            "X-Extra": {"valueFrom": {"secretKeyRef": {"name": "hook", "key": "webhook.header.X-Extra"}}},
        },
    }
    assert doc.secrets == {"webhook.header.X-Api-Key": "k3y", "webhook.header.X-Extra": "x"}
    channel = channel_from_resource(doc.channel)
    assert channel.webhook is not None and channel.webhook.headers["Authorization"].value == "Bearer inline"


def test_a_listed_secret_header_is_referenced_before_its_secret_arrives() -> None:
    data = {"type": "webhook", "webhook.url": "https://h.test/", "webhook.headers": "X-Api-Key"}
    doc = channel_from_objects(config_map("hook", data), None)
    assert doc.channel["spec"]["webhookConfig"]["headers"] == {
        "X-Api-Key": {"valueFrom": {"secretKeyRef": {"name": "hook", "key": "webhook.header.X-Api-Key"}}}
    }
    channel_from_resource(doc.channel)


@pytest.mark.parametrize(
    "data, problem",
    [
        ({"type": "sms"}, "type"),
        ({}, "type"),
        ({"type": "webhook"}, "webhook.url"),
        ({**EMAIL, "to": "[]"}, "to"),
        ({**EMAIL, "smtp.port": "five"}, "smtp.port"),
        ({k: v for k, v in EMAIL.items() if k != "from"}, "from"),
    ],
)
def test_a_configmap_that_is_no_channel_is_refused(data: dict[str, str], problem: str) -> None:
    with pytest.raises(ChannelDataError, match=problem):
        channel_from_objects(config_map("c", data), None)


def test_go_slices_and_secret_encodings() -> None:
    assert recipients("[a@x b@y]") == ["a@x", "b@y"]
    assert recipients("a@x, b@y") == ["a@x", "b@y"]
    assert recipients("[]") == []
    mixed = {"data": {"ok": _b64("v"), "binary": base64.b64encode(b"\xff").decode(), "bad": "***"}}
    assert secret_values(mixed | {"stringData": {"plain": "p"}}) == {"ok": "v", "plain": "p"}
    assert secret_values(None) == {}


RULE: dict[str, Any] = {
    "apiVersion": "openchoreo.dev/v1alpha1",
    "kind": "ObservabilityAlertRule",
    "metadata": {
        "name": "cart-dev-errors",
        "namespace": "acme",
        "generation": 3,
        "labels": {
            "openchoreo.dev/component-uid": "11111111-1111-1111-1111-111111111111",
            "openchoreo.dev/project-uid": "22222222-2222-2222-2222-222222222222",
            "openchoreo.dev/environment-uid": "33333333-3333-3333-3333-333333333333",
        },
    },
    "spec": {
        "name": "errors",
        "source": {"type": "log", "query": "error"},
        "condition": {"window": "1h0m0s", "interval": "90s", "operator": "gt", "threshold": 10},
        "actions": {"notifications": {"channels": ["mail"]}},
    },
}


def test_a_rule_cr_becomes_the_controllers_payload() -> None:
    source_type, name, payload = rule_payload(RULE)
    assert (source_type, name) == ("log", "cart-dev-errors")
    assert payload == {
        "metadata": {
            "name": "cart-dev-errors",
            "namespace": "acme",
            "componentUid": "11111111-1111-1111-1111-111111111111",
            "projectUid": "22222222-2222-2222-2222-222222222222",
            "environmentUid": "33333333-3333-3333-3333-333333333333",
        },
        "source": {"type": "log", "query": "error"},
        "condition": {"enabled": True, "window": "1h", "interval": "1m", "operator": "gt", "threshold": 10.0},
    }


def test_a_rule_without_its_uid_labels_is_refused() -> None:
    from agents.rules import RuleSpecError

    broken = {**RULE, "metadata": {**RULE["metadata"], "labels": {}}}
    with pytest.raises(RuleSpecError, match="component-uid"):
        rule_payload(broken)


def test_the_synced_condition_keeps_its_transition_time_while_its_status_holds() -> None:
    from datetime import UTC, datetime

    first = rule_status(
        RULE, ok=True, reason="SyncSucceeded", message="m", sync=None, now=datetime(2026, 1, 1, tzinfo=UTC)
    )
    assert first["phase"] == "Ready" and first["observedGeneration"] == 3
    later = datetime(2026, 1, 2, tzinfo=UTC)
    again = rule_status({**RULE, "status": first}, ok=True, reason="SyncSucceeded", message="m", sync=None, now=later)
    assert again["conditions"][0]["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert again["lastReconcileTime"] == "2026-01-02T00:00:00Z"
    failed = rule_status({**RULE, "status": again}, ok=False, reason="SyncFailed", message="x", sync=None, now=later)
    assert failed["phase"] == "Error" and failed["conditions"][0]["lastTransitionTime"] == "2026-01-02T00:00:00Z"


DATA = Path(__file__).parent.parent / "data" / "controlplane"


def _resolve(node: Any, secrets: dict[str, dict[str, str]]) -> Any:
    """`node` with every secretKeyRef replaced by the value it names: what a channel means once sent."""
    if isinstance(node, dict):
        if set(node) == {"secretKeyRef"}:
            ref = node["secretKeyRef"]
            return ("secret", secrets[ref["name"]][ref["key"]])
        return {key: _resolve(value, secrets) for key, value in node.items()}
    if isinstance(node, list):
        return [_resolve(value, secrets) for value in node]
    return node


def test_the_rendered_sample_channels_come_back_as_the_sample_channels() -> None:
    """Round trip with the control plane's half: its golden ConfigMap + Secret of each sample channel
    (tests/data/controlplane/render/channels-samples.yaml) rebuild the sample, secret values included."""
    samples = [
        doc for doc in yaml.safe_load_all((DATA / "samples" / "alert-notification-channels.yaml").read_text()) if doc
    ]
    sample_secrets = {doc["metadata"]["name"]: secret_values(doc) for doc in samples if doc["kind"] == "Secret"}
    rendered = [doc for doc in yaml.safe_load_all((DATA / "render" / "channels-samples.yaml").read_text()) if doc]
    pairs = list(zip(rendered[::2], rendered[1::2], strict=True))
    originals = [doc for doc in samples if doc["kind"] == "ObservabilityAlertsNotificationChannel"]
    assert len(pairs) == len(originals) == 2
    for (config_map, secret), original in zip(pairs, originals, strict=True):
        rebuilt = channel_from_objects(config_map, secret)
        assert rebuilt.channel["metadata"] == original["metadata"]
        expected = {"isEnvDefault": False, **original["spec"]}
        assert _resolve(rebuilt.channel["spec"], {rebuilt.name: rebuilt.secrets}) == _resolve(expected, sample_secrets)
