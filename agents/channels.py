"""A notification channel's ConfigMap + Secret in the observability plane -> the channel's CR document and its
secret values: the inverse of what OpenChoreo's notification-channel controller writes (contract notes §2.5).

Why the inverse: upstream's observer reads those two objects at send time; ours keeps channels in its alert store
as CR documents (observer/alerting/resources.py), so the agent rebuilds the document and hands it over
(observer/alerting/resource_api.py). The document references the Secret named after the channel for every value
that lives there (SMTP credentials, secret webhook headers), and the Secret's values travel beside it; the observer
stores them under that same name, so the references resolve.

ConfigMap keys (always `type`, `isEnvDefault`):
- email: `from`, `to` (Go's `%v` of a slice: `[a@x b@y]`), `smtp.host`, `smtp.port`, `template.subject`,
  `template.body`, `smtp.tls.insecureSkipVerify`;
- webhook: `webhook.url`, `webhook.payloadTemplate`, `webhook.headers` (comma-separated names), and
  `webhook.header.<Name>` for an inline value.
Secret keys: `smtp.auth.username`, `smtp.auth.password`, `webhook.header.<Name>` (a value from a secret reference).
The environment is not among the keys: it is read from the label `openchoreo.dev/environment` (ours; the
writer sets it), else the `environment` key, else "default".
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

CHANNEL_LABEL = "openchoreo.dev/notification-channel-name"
ENVIRONMENT_LABEL = "openchoreo.dev/environment"
API_VERSION = "openchoreo.dev/v1alpha1"
CHANNEL_KIND = "ObservabilityAlertsNotificationChannel"
DEFAULT_ENVIRONMENT = "default"
HEADER_PREFIX = "webhook.header."
SMTP_USERNAME = "smtp.auth.username"
SMTP_PASSWORD = "smtp.auth.password"
#: The largest Secret value passed on (Kubernetes caps a whole Secret at 1 MiB).
MAX_SECRET_VALUE_BYTES = 1024 * 1024


class ChannelDataError(ValueError):
    """A ConfigMap that does not describe a channel (no or an unknown type, a missing required key)."""


@dataclass(frozen=True)
class ChannelDocument:
    """What the observer's channel endpoint takes: the CR document and the values of the channel's Secret."""

    namespace: str
    name: str
    channel: dict[str, Any]
    secrets: dict[str, str] = field(default_factory=dict)


def channel_name(obj: Mapping[str, Any]) -> str:
    """The channel a labelled ConfigMap or Secret belongs to: the object's name (both are named after the
    channel; the label's value is cut to a label's 63 characters), else the label's value."""
    metadata = obj.get("metadata") or {}
    labels = metadata.get("labels") or {}
    return str(metadata.get("name") or labels.get(CHANNEL_LABEL) or "")


def secret_values(secret: Mapping[str, Any] | None) -> dict[str, str]:
    """A v1 Secret's values as text: `data` is base64 (as the API returns it), `stringData` plain (as a manifest
    may carry it, the latter winning); a value that is not UTF-8 or too large is left out."""
    if not secret:
        return {}
    values: dict[str, str] = {}
    for key, encoded in (secret.get("data") or {}).items():
        try:
            raw = base64.b64decode(str(encoded), validate=True)
            if len(raw) <= MAX_SECRET_VALUE_BYTES:
                values[str(key)] = raw.decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            continue
    for key, text in (secret.get("stringData") or {}).items():
        if len(str(text).encode()) <= MAX_SECRET_VALUE_BYTES:
            values[str(key)] = str(text)
    return values


def recipients(value: str) -> list[str]:
    """`to` as written by Go's `%v` (`[a@x b@y]`): brackets stripped, split on whitespace (and commas, which a
    hand-written ConfigMap may use)."""
    return [part for part in value.strip().removeprefix("[").removesuffix("]").replace(",", " ").split() if part]


def _ref(channel: str, key: str) -> dict[str, Any]:
    return {"secretKeyRef": {"name": channel, "key": key}}


def _required(data: Mapping[str, str], key: str) -> str:
    value = str(data.get(key) or "").strip()
    if not value:
        raise ChannelDataError(f"the ConfigMap has no {key!r}")
    return value


def _flag(value: Any) -> bool:
    return str(value or "").strip().lower() == "true"


def channel_from_objects(config_map: Mapping[str, Any], secret: Mapping[str, Any] | None) -> ChannelDocument:
    """The channel described by `config_map` (and the values of `secret`, the Secret of the same channel, if it
    has been seen); ChannelDataError when the ConfigMap does not describe one."""
    metadata = config_map.get("metadata") or {}
    namespace = str(metadata.get("namespace") or "default")
    name = channel_name(config_map)
    if not name:
        raise ChannelDataError("the ConfigMap names no channel")
    data = {str(k): str(v) for k, v in (config_map.get("data") or {}).items()}
    values = secret_values(secret)
    kind = data.get("type", "").strip()
    labels = metadata.get("labels") or {}
    environment = str(labels.get(ENVIRONMENT_LABEL) or data.get("environment") or DEFAULT_ENVIRONMENT).strip()
    spec: dict[str, Any] = {"environment": environment, "isEnvDefault": _flag(data.get("isEnvDefault")), "type": kind}
    if kind == "email":
        spec["emailConfig"] = _email(name, data, values)
    elif kind == "webhook":
        spec["webhookConfig"] = _webhook(name, data, values)
    else:
        raise ChannelDataError(f"the ConfigMap's type must be email or webhook, not {kind!r}")
    document = {
        "apiVersion": API_VERSION,
        "kind": CHANNEL_KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
    return ChannelDocument(namespace, name, document, values)


def _email(name: str, data: Mapping[str, str], values: Mapping[str, str]) -> dict[str, Any]:
    to = recipients(_required(data, "to"))
    if not to:
        raise ChannelDataError("the ConfigMap's 'to' lists no address")
    port_text = data.get("smtp.port", "").strip() or "587"
    try:
        port = int(port_text)
    except ValueError:
        raise ChannelDataError(f"the ConfigMap's 'smtp.port' is not a number: {port_text!r}") from None
    smtp: dict[str, Any] = {"host": _required(data, "smtp.host"), "port": port}
    auth = {
        field: _ref(name, key)
        for field, key in (("username", SMTP_USERNAME), ("password", SMTP_PASSWORD))
        if key in values
    }
    if auth:
        smtp["auth"] = auth
    if "smtp.tls.insecureSkipVerify" in data:
        smtp["tls"] = {"insecureSkipVerify": _flag(data["smtp.tls.insecureSkipVerify"])}
    config: dict[str, Any] = {"from": _required(data, "from"), "to": to, "smtp": smtp}
    template = {
        field: data[key] for field, key in (("subject", "template.subject"), ("body", "template.body")) if data.get(key)
    }
    if template:
        config["template"] = template
    return config


def _webhook(name: str, data: Mapping[str, str], values: Mapping[str, str]) -> dict[str, Any]:
    """Every header listed in `webhook.headers`: inline when the ConfigMap holds its value, else a reference to
    the channel's Secret (which may arrive later; the observer says so on a send until it does); a header only
    the Secret names is referenced too."""
    config: dict[str, Any] = {"url": _required(data, "webhook.url")}
    headers: dict[str, Any] = {}
    for header in (part.strip() for part in data.get("webhook.headers", "").split(",")):
        if not header:
            continue
        key = HEADER_PREFIX + header
        headers[header] = {"value": data[key]} if key in data else {"valueFrom": _ref(name, key)}
    for key in sorted(values):
        if key.startswith(HEADER_PREFIX) and key[len(HEADER_PREFIX) :] and key[len(HEADER_PREFIX) :] not in headers:
            headers[key[len(HEADER_PREFIX) :]] = {"valueFrom": _ref(name, key)}
    if headers:
        config["headers"] = headers
    if data.get("webhook.payloadTemplate"):
        config["payloadTemplate"] = data["webhook.payloadTemplate"]
    return config
