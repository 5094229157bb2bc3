"""Logs: the intake's entries as records (Datadog's reserved-attribute remapping), and search answers.

Intake follows Datadog's documented defaults: `message` is the body; the status comes from the first of
`status`, `severity`, `level`, `syslog.severity` (names and syslog numbers mapped as the status remapper does,
`info` when absent); the date from the first of `timestamp`, `date`, `@timestamp`, `_timestamp`, `Timestamp`,
`eventTime`, `published` (epoch ms or ISO-8601; the time of arrival when absent); `ddtags` (and the `ddtags`
query parameter) become tags, `ddsource` the tag `source:<ddsource>`, `hostname` the host; tags are normalized
as Datadog normalizes them (lowercase, other characters to `_`: `store.normalize_tag`). Datadog drops logs
older than 18 hours; the fake keeps them, so tests may use fixed times. Everything else
stays in the log's attributes, as sent. A message over 1 MB is truncated, as Datadog truncates it.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from devservers.datadog.models import BadRequest
from devservers.datadog.paging import now_ms
from devservers.datadog.store import LogRecord, Store, normalize_tag

MAX_PAYLOAD = 5 * 1024 * 1024
MAX_ENTRIES = 1000
MAX_ENTRY = 1024 * 1024

STATUS_ATTRIBUTES = ("status", "severity", "level", "syslog.severity")
DATE_ATTRIBUTES = ("timestamp", "date", "@timestamp", "_timestamp", "Timestamp", "eventTime", "published")
# Datadog's status remapper: a string is mapped by how it begins (case-insensitive), in this order.
_STATUS_PREFIXES = (
    (("emerg", "f"), "emergency"),
    (("a",), "alert"),
    (("c",), "critical"),
    (("err",), "error"),
    (("w",), "warn"),
    (("n",), "notice"),
    (("i",), "info"),
    (("d", "trace", "verbose"), "debug"),
    (("o", "s"), "ok"),
)
_SYSLOG = ("emergency", "alert", "critical", "error", "warn", "notice", "info", "debug")


class TooLarge(Exception):
    """413: the payload breaks a documented limit and must be split, not retried as it is."""


def status_of(value: Any) -> str:
    if isinstance(value, int) and 0 <= value <= 7:
        return _SYSLOG[value]
    text = str(value).strip().lower()
    if text.isdigit() and int(text) <= 7:
        return _SYSLOG[int(text)]
    for prefixes, status in _STATUS_PREFIXES:
        if text.startswith(prefixes):
            return status
    return "info"


def _timestamp_ms(value: Any, default: int) -> int:
    if isinstance(value, bool):
        return default
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str):
        if value.isdigit():
            return int(value)
        try:
            return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
        except ValueError:
            return default
    return default


def ingest(store: Store, entries: list[dict[str, Any]], query_tags: str | None) -> int:
    """Stores checked intake entries (already validated as HTTPLog); the number stored."""
    if len(entries) > MAX_ENTRIES:
        raise TooLarge(f"Too many entries: {len(entries)} > {MAX_ENTRIES}")
    received = now_ms()
    extra_tags = [t for t in (query_tags or "").split(",") if t]
    records = []
    with store.lock:
        for entry in entries:
            attributes = dict(entry)
            message = str(attributes.pop("message", ""))
            if len(message.encode()) > MAX_ENTRY:
                message = message.encode()[:MAX_ENTRY].decode(errors="ignore")
            tags = [t for t in str(attributes.pop("ddtags", "")).split(",") if t.strip()] + extra_tags
            source = attributes.pop("ddsource", None)
            if source:
                tags.append(f"source:{source}")
            tags = [normalize_tag(t) for t in tags]
            status_key = next((k for k in STATUS_ATTRIBUTES if k in attributes), None)
            status = "info"
            if status_key is not None:
                status = status_of(attributes.pop(status_key) if status_key == "status" else attributes[status_key])
            date_key = next((k for k in DATE_ATTRIBUTES if k in attributes), None)
            timestamp = _timestamp_ms(attributes.get(date_key), received) if date_key else received
            host = attributes.pop("hostname", None) or attributes.get("host")
            service = attributes.pop("service", None)
            seq = store.next_seq()
            log_id = base64.urlsafe_b64encode(f"AQAAA{timestamp:016x}{seq:012x}".encode()).decode().rstrip("=")
            records.append(
                LogRecord(seq, log_id, timestamp, message, status, service, host and str(host), tags, attributes)
            )
        store.logs.extend(records)
    return len(records)


def check_size(raw: bytes) -> None:
    if len(raw) > MAX_PAYLOAD:
        raise TooLarge(f"Payload too large: {len(raw)} bytes uncompressed > {MAX_PAYLOAD}")


def as_json(record: LogRecord) -> dict[str, Any]:
    """One `Log` of a search answer (client model `Log` / `LogAttributes`)."""
    attributes: dict[str, Any] = {
        "timestamp": datetime.fromtimestamp(record.timestamp_ms / 1000, UTC).isoformat(timespec="milliseconds"),
        "message": record.message,
        "status": record.status,
        "tags": list(record.tags),
        "attributes": record.attributes,
    }
    if record.service:
        attributes["service"] = record.service
    if record.host:
        attributes["host"] = record.host
    return {"id": record.id, "type": "log", "attributes": attributes}


def validate_entries(value: Any) -> list[dict[str, Any]]:
    """The intake body as a list of entries; a single object is one entry, as Datadog accepts."""
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list) and all(isinstance(item, dict) for item in value):
        return value
    raise BadRequest("Invalid body: expected a log object or an array of them")
