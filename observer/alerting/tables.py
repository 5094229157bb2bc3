"""Every table of the alert store, in one place (contract notes §2.6 for the two entry tables).

- `alert_rules`, `notification_channels`, `secrets`: the resources the observer owns, stored whole as JSON
  documents (what `observer rules apply -f` took), plus the columns lookups need.
- `alert_entries`, `incident_entries`: OpenChoreo's columns, so a query reads the same either way.
- `notifications`: the outbox. One row per (alert, channel), written in the alert's own transaction; the
  `idempotency_key` travels in the payload and headers, so a receiver can drop a redelivery after a crash.
- `notification_attempts`: every try of every notification, with its outcome.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()


def _scope_columns() -> list[Column]:
    """Names and UIDs of the scope an alert or incident belongs to (a Column belongs to one table: fresh each)."""
    return [
        Column(name, Text, nullable=False, default="")
        for name in (
            "namespace_name",
            "component_name",
            "environment_name",
            "project_name",
            "component_id",
            "environment_id",
            "project_id",
        )
    ]


alert_rules = Table(
    "alert_rules",
    metadata,
    Column("namespace", String(253), primary_key=True),
    Column("name", String(253), primary_key=True),
    Column("generation", Integer, nullable=False),
    Column("document", Text, nullable=False),  # the resource as JSON, status included
    Column("deleted", Boolean, nullable=False, default=False),  # kept until the backends let go of it
    Column("updated_ns", BigInteger, nullable=False),
)

notification_channels = Table(
    "notification_channels",
    metadata,
    Column("namespace", String(253), primary_key=True),
    Column("name", String(253), primary_key=True),
    Column("environment", String(253), nullable=False),
    Column("document", Text, nullable=False),
    Column("updated_ns", BigInteger, nullable=False),
)

secrets = Table(
    "secrets",
    metadata,
    Column("namespace", String(253), primary_key=True),
    Column("name", String(253), primary_key=True),
    Column("data", Text, nullable=False),  # JSON of key -> decoded value; never logged
    Column("updated_ns", BigInteger, nullable=False),
)

alert_entries = Table(
    "alert_entries",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("timestamp_ns", BigInteger, nullable=False),
    Column("alert_rule_name", Text, nullable=False),
    Column("alert_rule_cr_name", Text, nullable=False, default=""),
    Column("alert_rule_cr_namespace", Text, nullable=False, default=""),
    Column("alert_value", Text, nullable=False, default=""),
    *_scope_columns(),
    Column("incident_enabled", Boolean, nullable=False),
    Column("severity", Text, nullable=False, default=""),
    Column("description", Text, nullable=False, default=""),
    Column("notification_channels", Text, nullable=False, default="[]"),
    Column("source_type", Text, nullable=False, default=""),
    Column("source_query", Text, nullable=False, default=""),
    Column("source_metric", Text, nullable=False, default=""),
    Column("condition_operator", Text, nullable=False, default=""),
    Column("condition_threshold", Float, nullable=False, default=0.0),
    Column("condition_window", Text, nullable=False, default=""),
    Column("condition_interval", Text, nullable=False, default=""),
    Column("delivery_key", Text, nullable=True),  # our addition: a source's own id of this firing, for dedup
    Index("alert_entries_by_scope", "project_id", "environment_id", "timestamp_ns"),
    Index("alert_entries_by_namespace", "namespace_name", "timestamp_ns"),
    Index("alert_entries_by_rule", "alert_rule_cr_name", "alert_rule_cr_namespace", "component_id", "timestamp_ns"),
    UniqueConstraint("delivery_key", name="alert_entries_delivery_key"),
)

incident_entries = Table(
    "incident_entries",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("alert_id", String(36), nullable=False),
    Column("timestamp_ns", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("trigger_ai_rca", Boolean, nullable=False, default=False),
    Column("trigger_ai_cost_analysis", Boolean, nullable=False, default=False),
    Column("triggered_at_ns", BigInteger, nullable=False),
    Column("acknowledged_at_ns", BigInteger, nullable=True),
    Column("resolved_at_ns", BigInteger, nullable=True),
    Column("notes", Text, nullable=True),
    Column("description", Text, nullable=True),
    *_scope_columns(),
    Index("incident_entries_by_scope", "project_id", "environment_id", "timestamp_ns"),
    Index("incident_entries_by_namespace", "namespace_name", "timestamp_ns"),
)

notifications = Table(
    "notifications",
    metadata,
    Column("id", String(36), primary_key=True),  # also the idempotency key sent to the receiver
    Column("alert_id", String(36), nullable=False),
    Column("channel_namespace", String(253), nullable=False),
    Column("channel_name", String(253), nullable=False),
    Column("payload", Text, nullable=False),  # the AlertDetails JSON, fixed when the alert was accepted
    Column("state", String(16), nullable=False),  # pending | delivered | failed (gave up)
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_ns", BigInteger, nullable=False),
    Column("created_ns", BigInteger, nullable=False),
    Column("delivered_ns", BigInteger, nullable=True),
    Column("last_error", Text, nullable=True),
    Index("notifications_due", "state", "next_attempt_ns"),
    UniqueConstraint("alert_id", "channel_namespace", "channel_name", name="notifications_once_per_channel"),
)

notification_attempts = Table(
    "notification_attempts",
    metadata,
    Column("notification_id", String(36), primary_key=True),
    Column("attempt", Integer, primary_key=True),
    Column("started_ns", BigInteger, nullable=False),
    Column("finished_ns", BigInteger, nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("detail", Text, nullable=False, default=""),  # status code or error text, secrets never included
)
