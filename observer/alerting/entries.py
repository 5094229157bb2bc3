"""Alert and incident entries: written by the intake, read by the query API, updated by incident PUTs.

Query semantics follow OpenChoreo's stores (contract notes §2.6): both time bounds inclusive, the namespace matched
by name and the narrower levels by UID, `total` an uncapped COUNT(*), rows capped at 10,000 per page.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, select, update

from domain.model import ComponentScope, SortOrder
from domain.timeutil import format_rfc3339, now_ns
from observer.alerting.tables import alert_entries, incident_entries

ROW_CAP = 10_000
STATUSES = ("active", "acknowledged", "resolved")
_FORWARD = {
    "active": {"active", "acknowledged", "resolved"},
    "acknowledged": {"acknowledged", "resolved"},
    "resolved": {"resolved"},
}


class IncidentNotFound(LookupError):
    pass


class InvalidTransition(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class EntriesQuery:
    scope: ComponentScope
    start_ns: int
    end_ns: int
    limit: int
    sort: SortOrder = "desc"


def _scope_filter(table: Any, query: EntriesQuery) -> Any:
    clauses = [
        table.c.timestamp_ns >= query.start_ns,
        table.c.timestamp_ns <= query.end_ns,
        table.c.namespace_name == query.scope.namespace,
    ]
    for column, value in (
        ("project_id", query.scope.project_uid),
        ("component_id", query.scope.component_uid),
        ("environment_id", query.scope.environment_uid),
    ):
        if value:
            clauses.append(table.c[column] == value)
    return and_(*clauses)


class EntryStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    async def query_alerts(self, query: EntriesQuery) -> tuple[list[dict[str, Any]], int]:
        return await asyncio.to_thread(self._query, alert_entries, query, alert_item)

    async def query_incidents(self, query: EntriesQuery) -> tuple[list[dict[str, Any]], int]:
        return await asyncio.to_thread(self._query, incident_entries, query, incident_item)

    def _query(self, table: Any, query: EntriesQuery, shape: Any) -> tuple[list[dict[str, Any]], int]:
        where = _scope_filter(table, query)
        order = table.c.timestamp_ns.asc() if query.sort == "asc" else table.c.timestamp_ns.desc()
        with self.engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(table).where(where)).scalar_one()
            rows = (
                conn.execute(select(table).where(where).order_by(order, table.c.id).limit(min(query.limit, ROW_CAP)))
                .mappings()
                .all()
            )
        return [shape(row) for row in rows], total

    async def get_incident(self, incident_id: str) -> Mapping[str, Any] | None:
        def read() -> Mapping[str, Any] | None:
            with self.engine.connect() as conn:
                row = (
                    conn.execute(select(incident_entries).where(incident_entries.c.id == incident_id))
                    .mappings()
                    .first()
                )
                return None if row is None else dict(row)

        return await asyncio.to_thread(read)

    async def update_incident(
        self, incident_id: str, status: str, notes: str | None, description: str | None
    ) -> dict[str, Any]:
        """Moves an incident forward (active -> acknowledged -> resolved; the same status again is allowed, to edit
        notes). `None` keeps notes/description; an empty string clears them."""
        return await asyncio.to_thread(self._update_incident, incident_id, status, notes, description)

    def _update_incident(
        self, incident_id: str, status: str, notes: str | None, description: str | None
    ) -> dict[str, Any]:
        with self.engine.begin() as conn:
            query = select(incident_entries).where(incident_entries.c.id == incident_id)
            if conn.dialect.name == "postgresql":
                query = query.with_for_update()
            row = conn.execute(query).mappings().first()
            if row is None:
                raise IncidentNotFound(incident_id)
            if status not in _FORWARD[row["status"]]:
                raise InvalidTransition(
                    f'update incident entry: invalid incident status transition: "{row["status"]}" → "{status}"'
                )
            now = now_ns()
            values: dict[str, Any] = {"status": status}
            if status == "acknowledged" and row["acknowledged_at_ns"] is None:
                values["acknowledged_at_ns"] = now
            if status == "resolved" and row["resolved_at_ns"] is None:
                values["resolved_at_ns"] = now
            if notes is not None:
                values["notes"] = notes.strip() or None
            if description is not None:
                values["description"] = description.strip() or None
            conn.execute(update(incident_entries).where(incident_entries.c.id == incident_id).values(**values))
            updated = (
                conn.execute(select(incident_entries).where(incident_entries.c.id == incident_id)).mappings().one()
            )
        item = incident_item(updated)
        item.pop("timestamp", None)
        return item


def find_recent_alert(conn: Connection, cr_name: str, cr_namespace: str, component_uid: str, since_ns: int) -> bool:
    """Whether the rule already fired for this component within the suppression window."""
    return (
        conn.execute(
            select(alert_entries.c.id)
            .where(
                alert_entries.c.alert_rule_cr_name == cr_name,
                alert_entries.c.alert_rule_cr_namespace == cr_namespace,
                alert_entries.c.component_id == component_uid,
                alert_entries.c.timestamp_ns >= since_ns,
            )
            .limit(1)
        ).first()
        is not None
    )


def alert_by_delivery_key(conn: Connection, key: str) -> str | None:
    row = conn.execute(select(alert_entries.c.id).where(alert_entries.c.delivery_key == key)).first()
    return row.id if row else None


# ----------------------------------------------------------------------------------------------- shapes


def labels_of(row: Mapping[str, Any]) -> dict[str, str]:
    """`metadata.labels` / `labels`: names, plus UIDs only when they look like UIDs; empty ones omitted."""
    labels = {
        "componentName": row["component_name"],
        "environmentName": row["environment_name"],
        "projectName": row["project_name"],
        "namespaceName": row["namespace_name"],
        "componentUid": _uuid_or_empty(row["component_id"]),
        "environmentUid": _uuid_or_empty(row["environment_id"]),
        "projectUid": _uuid_or_empty(row["project_id"]),
    }
    return {key: value for key, value in labels.items() if value}


def _uuid_or_empty(value: str) -> str:
    try:
        uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return ""
    return value


def alert_item(row: Mapping[str, Any]) -> dict[str, Any]:
    """One alert as the contract shows it. Empty snapshot fields are left out, as everywhere else in the
    contract: `severity` is an enum, so `""` would not even be a valid value."""
    rule: dict[str, Any] = {"name": row["alert_rule_name"]}
    if any(
        row[c]
        for c in (
            "severity",
            "description",
            "source_type",
            "source_query",
            "source_metric",
            "condition_operator",
            "condition_window",
            "condition_interval",
        )
    ):
        rule |= _present({"description": row["description"], "severity": row["severity"]})
        source = _present({"type": row["source_type"], "query": row["source_query"], "metric": row["source_metric"]})
        if source:
            rule["source"] = source
        rule["condition"] = _present(
            {
                "operator": row["condition_operator"],
                "window": row["condition_window"],
                "interval": row["condition_interval"],
            }
        ) | {"threshold": row["condition_threshold"]}
    item: dict[str, Any] = {
        "timestamp": format_rfc3339(row["timestamp_ns"]),
        "alertId": row["id"],
        "alertValue": row["alert_value"],
        "incidentEnabled": bool(row["incident_enabled"]),
        "metadata": {"alertRule": rule, "labels": labels_of(row)},
    }
    channels = json.loads(row["notification_channels"] or "[]")
    if channels:
        item["notificationChannels"] = channels
    return item


def _present(fields: Mapping[str, Any]) -> dict[str, Any]:
    """`fields` without the empty ones (None or "")."""
    return {key: value for key, value in fields.items() if value not in (None, "")}


def incident_item(row: Mapping[Any, Any]) -> dict[str, Any]:  # a RowMapping, keyed by column names
    item: dict[str, Any] = {
        "timestamp": format_rfc3339(row["timestamp_ns"]),
        "alertId": row["alert_id"],
        "incidentId": row["id"],
        "incidentTriggerAiRca": bool(row["trigger_ai_rca"]),
        "incidentTriggerAiCostAnalysis": bool(row["trigger_ai_cost_analysis"]),
        "status": row["status"],
        "triggeredAt": format_rfc3339(row["triggered_at_ns"]),
        "labels": labels_of(row),
    }
    if row["acknowledged_at_ns"] is not None:
        item["acknowledgedAt"] = format_rfc3339(row["acknowledged_at_ns"])
    if row["resolved_at_ns"] is not None:
        item["resolvedAt"] = format_rfc3339(row["resolved_at_ns"])
    if row["notes"]:
        item["notes"] = row["notes"]
    if row["description"]:
        item["description"] = row["description"]
    return item
