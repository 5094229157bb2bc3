"""A notification channel becomes one ConfigMap and one Secret with exactly the keys the observer reads (OCN §2.5):
the samples render to the golden objects, every key is pinned, secret values come only from the referenced
Secrets, and a missing reference is a RenderError that does not echo any value."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import yaml

from controlplane.render.errors import RenderError
from controlplane.render.observability import render_channel, secret_values
from tests.unit.test_cp_render_inputs import SAMPLES, golden

LABELS = {
    "openchoreo.dev/notification-channel-name",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/name",
}


def _sample_documents() -> list[dict[str, Any]]:
    text = (SAMPLES / "alert-notification-channels.yaml").read_text(encoding="utf-8")
    return [doc for doc in yaml.safe_load_all(text) if doc]


def _secrets() -> dict[str, dict[str, str]]:
    return {doc["metadata"]["name"]: secret_values(doc) for doc in _sample_documents() if doc["kind"] == "Secret"}


def _channel(kind: str) -> dict[str, Any]:
    for doc in _sample_documents():
        if doc["kind"] == "ObservabilityAlertsNotificationChannel" and doc["spec"]["type"] == kind:
            return doc
    raise LookupError(kind)


def _decoded(secret: dict[str, Any]) -> dict[str, str]:
    return {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}


def test_the_sample_channels_render_the_golden_objects() -> None:
    rendered = render_channel(_channel("email"), _secrets()) + render_channel(_channel("webhook"), _secrets())
    assert rendered == golden("channels-samples")


def test_email_keys_are_pinned() -> None:
    configmap, secret = render_channel(_channel("email"), _secrets())
    assert (configmap["kind"], secret["kind"], secret["type"]) == ("ConfigMap", "Secret", "Opaque")
    assert configmap["metadata"]["name"] == secret["metadata"]["name"] == "email-notification-channel-development"
    assert configmap["metadata"]["namespace"] == secret["metadata"]["namespace"] == "default"
    assert set(configmap["data"]) == {
        "type",
        "isEnvDefault",
        "from",
        "to",
        "smtp.host",
        "smtp.port",
        "smtp.tls.insecureSkipVerify",
        "template.subject",
        "template.body",
    }
    assert configmap["data"]["type"] == "email"
    assert configmap["data"]["smtp.port"] == "587"
    assert configmap["data"]["smtp.tls.insecureSkipVerify"] == "true"
    assert configmap["data"]["isEnvDefault"] == "false"
    assert _decoded(secret) == {"smtp.auth.username": "smtp-username", "smtp.auth.password": "smtp-password"}


def test_to_is_gos_slice_format() -> None:
    channel = _channel("email")
    channel["spec"]["emailConfig"]["to"] = ["a@x.io", "b@y.io"]
    configmap, _ = render_channel(channel, _secrets())
    assert configmap["data"]["to"] == "[a@x.io b@y.io]"


def test_webhook_keys_are_pinned() -> None:
    configmap, secret = render_channel(_channel("webhook"), _secrets())
    assert set(configmap["data"]) == {
        "type",
        "isEnvDefault",
        "webhook.url",
        "webhook.payloadTemplate",
        "webhook.headers",
        "webhook.header.Content-Type",
    }
    assert configmap["data"]["webhook.headers"] == "Content-Type,X-API-Key"
    assert configmap["data"]["webhook.header.Content-Type"] == "application/json"
    assert _decoded(secret) == {"webhook.header.X-API-Key": "webhook-api-key"}


def test_a_webhook_without_template_or_headers_has_only_the_url() -> None:
    channel = _channel("webhook")
    channel["spec"]["isEnvDefault"] = True
    channel["spec"]["webhookConfig"] = {"url": "https://hooks.example/x"}
    configmap, secret = render_channel(channel, {})
    assert configmap["data"] == {"type": "webhook", "isEnvDefault": "true", "webhook.url": "https://hooks.example/x"}
    assert secret["data"] == {}


def test_labels_are_pinned() -> None:
    for obj in render_channel(_channel("webhook"), _secrets()):
        assert obj["metadata"]["labels"] == {
            "openchoreo.dev/notification-channel-name": "webhook-notification-channel-development",
            "app.kubernetes.io/managed-by": "observabilityalertsnotificationchannel-controller",
            "app.kubernetes.io/name": "webhook-notification-channel-development",
            "openchoreo.dev/environment": "development",
        }


@pytest.mark.parametrize(
    ("secrets", "message"),
    [
        ({}, "not found"),
        ({"email-notification-channel-development-smtp-auth": {"username": "s3cr3t-user"}}, "has no key 'password'"),
    ],
)
def test_a_missing_secret_is_a_render_error_without_values(secrets: dict[str, dict[str, str]], message: str) -> None:
    with pytest.raises(RenderError, match=message) as caught:
        render_channel(_channel("email"), secrets)
    assert caught.value.field.startswith("spec.emailConfig.smtp.auth.")
    assert "s3cr3t" not in str(caught.value)


def test_an_unknown_type_is_a_render_error() -> None:
    channel = _channel("email")
    channel["spec"]["type"] = "sms"
    with pytest.raises(RenderError) as caught:
        render_channel(channel, _secrets())
    assert caught.value.field == "spec.type"


def test_secret_values_decodes_data_and_prefers_string_data() -> None:
    secret = {
        "data": {"a": base64.b64encode(b"one").decode(), "b": base64.b64encode(b"old").decode()},
        "stringData": {"b": "new"},
    }
    assert secret_values(secret) == {"a": "one", "b": "new"}


@pytest.mark.parametrize("kind", ["email", "webhook"])
def test_the_agent_reads_back_what_we_render(kind: str) -> None:
    """The seam between the planes: the observability-plane agent (agents/channels.py) rebuilds the channel from
    our ConfigMap and Secret; every field and secret value survives the trip."""
    from agents.channels import channel_from_objects

    channel = _channel(kind)
    configmap, secret = render_channel(channel, _secrets())
    back = channel_from_objects(configmap, secret)
    spec = back.channel["spec"]
    assert (back.namespace, back.name) == ("default", channel["metadata"]["name"])
    assert (spec["environment"], spec["type"], spec["isEnvDefault"]) == ("development", kind, False)
    if kind == "email":
        original, rebuilt = channel["spec"]["emailConfig"], spec["emailConfig"]
        assert (rebuilt["from"], rebuilt["to"], rebuilt["template"]) == (
            original["from"],
            original["to"],
            original["template"],
        )
        assert (rebuilt["smtp"]["host"], rebuilt["smtp"]["port"]) == ("mail.acme.com", 587)
        assert back.secrets == {"smtp.auth.username": "smtp-username", "smtp.auth.password": "smtp-password"}
    else:
        original, rebuilt = channel["spec"]["webhookConfig"], spec["webhookConfig"]
        assert (rebuilt["url"], rebuilt["payloadTemplate"]) == (original["url"], original["payloadTemplate"])
        assert set(rebuilt["headers"]) == {"Content-Type", "X-API-Key"}
        assert back.secrets == {"webhook.header.X-API-Key": "webhook-api-key"}
