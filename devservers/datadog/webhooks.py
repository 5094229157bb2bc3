"""The Webhooks integration: named webhooks (`/api/v1/integration/webhooks/configuration/webhooks`), and what
Datadog sends to them when a monitor whose message mentions `@webhook-<name>` changes state.

Datadog evaluates monitors on its own schedule; the fake does not, so a test says when a monitor triggers or
recovers (`POST /_fake/trigger`, `DatadogFake.trigger`), and the fake delivers as Datadog does: the webhook's
payload template (Datadog's default template when it has none) with its `$VARIABLES` filled in (each value
JSON-escaped, so a template that quotes a variable stays valid JSON), its custom headers (a JSON object in a
string), POSTed as JSON; a 5xx answer or a failed connection is retried, up to five attempts in all, anything
else is final. The monitor message's `{{value}}` and `{{threshold}}` are rendered into `$EVENT_MSG`.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from devservers.datadog.models import BadRequest

ORG_ID, ORG_NAME = "1", "Fake Org"
ATTEMPTS = 5
DEFAULT_PAYLOAD = json.dumps(
    {
        "body": "$EVENT_MSG",
        "last_updated": "$LAST_UPDATED",
        "event_type": "$EVENT_TYPE",
        "title": "$EVENT_TITLE",
        "date": "$DATE",
        "org": {"id": "$ORG_ID", "name": "$ORG_NAME"},
        "id": "$ID",
    }
)
_VARIABLE = re.compile(r"\$([A-Z_]+)")
_MENTION = re.compile(r"@webhook-([A-Za-z0-9_-]+)")


def check_headers(webhook: dict[str, Any]) -> None:
    """Datadog refuses custom headers that are not a JSON object of strings."""
    raw = webhook.get("custom_headers")
    if raw is None:
        return
    try:
        headers = json.loads(raw)
    except ValueError:
        raise BadRequest("custom_headers must be a JSON object") from None
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise BadRequest("custom_headers must be a JSON object of strings")


@dataclass(frozen=True)
class Transition:
    """What a test asks the fake to report: a monitor's new state and the value that caused it."""

    monitor: dict[str, Any]
    transition: str  # "Triggered", "Recovered", "Warn", "No Data", "Re-Triggered"
    value: float | None
    scope: str  # the triggering group, e.g. "kube_namespace:pay,pod:a" ("" for a simple alert)
    cycle: int  # which alert cycle: a trigger starts one, its recovery shares it


def state_of(transition: str) -> str:
    """The monitor's overall state after a transition."""
    return {"Triggered": "Alert", "Re-Triggered": "Alert", "Recovered": "OK", "Warn": "Warn"}.get(
        transition, transition
    )


def variables(event: Transition) -> dict[str, str]:
    monitor = event.monitor
    now = time.time()
    threshold = ((monitor.get("options") or {}).get("thresholds") or {}).get("critical")
    message = str(monitor.get("message", ""))
    message = message.replace("{{value}}", "" if event.value is None else f"{event.value:g}")
    message = message.replace("{{threshold}}", "" if threshold is None else f"{threshold:g}")
    status = state_of(event.transition)
    title = f"[{event.transition}{' on ' + event.scope if event.scope else ''}] {monitor.get('name', '')}"
    alert_type = {"Alert": "error", "OK": "success", "Warn": "warning"}.get(status, "info")
    monitor_type = str(monitor.get("type", ""))
    return {
        "ID": str(uuid.uuid4().int % 10**19),
        "AGGREG_KEY": f"{monitor['id']:x}",
        "ALERT_CYCLE_KEY": f"{monitor['id']}-{event.cycle}",
        "ALERT_ID": str(monitor["id"]),
        "ALERT_METRIC": _metric_of(monitor),
        "ALERT_PRIORITY": f"P{monitor['priority']}" if monitor.get("priority") else "",
        "ALERT_QUERY": str(monitor.get("query", "")),
        "ALERT_SCOPE": event.scope,
        "ALERT_STATUS": status,
        "ALERT_TITLE": title,
        "ALERT_TRANSITION": event.transition,
        "ALERT_TYPE": alert_type,
        "DATE": str(int(now * 1000)),
        "DATE_POSIX": str(int(now)),
        "EVENT_MSG": message,
        "EVENT_TITLE": title,
        "EVENT_TYPE": monitor_type.replace(" ", "_") + "_monitor",
        "HOSTNAME": "",
        "LAST_UPDATED": str(int(now * 1000)),
        "LINK": f"https://app.datadoghq.com/monitors/{monitor['id']}",
        "ORG_ID": ORG_ID,
        "ORG_NAME": ORG_NAME,
        "PRIORITY": "normal",
        "SNAPSHOT": "",
        "TAGS": ",".join(monitor.get("tags") or []),
        "TEXT_ONLY_MSG": message,
        "USER": "",
        "USERNAME": "",
    }


def _metric_of(monitor: dict[str, Any]) -> str:
    match = re.search(r":(?:avg|sum|min|max):([A-Za-z0-9_.]+)\{", str(monitor.get("query", "")))
    return match.group(1) if match else ""


def render(template: str | None, values: dict[str, str]) -> str:
    """The payload text: each known `$VARIABLE` replaced by its JSON-escaped value, unknown ones kept."""

    def fill(match: re.Match[str]) -> str:
        value = values.get(match.group(1))
        return match.group(0) if value is None else json.dumps(value)[1:-1]

    return _VARIABLE.sub(fill, template or DEFAULT_PAYLOAD)


def targets(monitor: dict[str, Any]) -> list[str]:
    """The webhook names the monitor's message mentions, in order, once each."""
    return list(dict.fromkeys(_MENTION.findall(str(monitor.get("message", "")))))


async def deliver(webhook: dict[str, Any], payload: str) -> list[int | str]:
    """POSTs the payload; the status of each attempt (or the connection error's name)."""
    headers = {"Content-Type": "application/json", **json.loads(webhook.get("custom_headers") or "{}")}
    attempts: list[int | str] = []
    async with httpx.AsyncClient(timeout=15) as http:
        for _ in range(ATTEMPTS):
            try:
                answer = await http.post(webhook["url"], content=payload.encode(), headers=headers)
            except httpx.HTTPError as error:
                attempts.append(type(error).__name__)
                continue
            attempts.append(answer.status_code)
            if answer.status_code < 500:
                break
    return attempts
