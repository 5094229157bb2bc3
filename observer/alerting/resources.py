"""The alerting resources the observer owns: ObservabilityAlertRule, ObservabilityAlertsNotificationChannel and the
Secrets channels refer to, kept whole as JSON documents in the alert store.

Upstream reads rules and channels from Kubernetes at webhook time; here the store is the source of truth, fed by
`observer rules apply -f FILE`, by the internal rule API (what OpenChoreo's controller calls) and later by the agent,
so the webhook and the reconciler never need a cluster. A deleted rule is kept as a tombstone until the reconciler
has removed it from every backend.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

import yaml
from sqlalchemy import Engine, Table, case, delete, insert, select, update

from domain.alerting import (
    CHANNEL_KIND,
    RULE_KIND,
    AlertRule,
    Condition,
    InvalidResource,
    NotificationChannel,
    RuleStatus,
    channel_from_resource,
    rule_from_resource,
    rule_to_resource,
)
from domain.timeutil import now_ns
from observer.alerting.tables import alert_rules, notification_channels, secrets

#: How often a status write re-reads a rule that changed under it before giving up (the next pass retries).
_STATUS_WRITE_TRIES = 5


class ResourceStore:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.changed = asyncio.Event()  # set on every put or delete; the reconciler clears it when it wakes

    def _changed(self) -> None:
        self.changed.set()

    # ------------------------------------------------------------------------------------------- rules

    async def put_rule(self, rule: AlertRule) -> AlertRule:
        """Stores `rule`, keeping its status; the generation moves only when the spec or labels changed."""
        stored = await asyncio.to_thread(self._put_rule, rule)
        self._changed()
        return stored

    def _put_rule(self, rule: AlertRule) -> AlertRule:
        with self.engine.begin() as conn:
            key = _named(alert_rules, rule.namespace, rule.name)
            row = conn.execute(
                select(alert_rules.c.document, alert_rules.c.generation, alert_rules.c.deleted).where(*key)
            ).first()
            if row is None:
                stored = replace(rule, generation=1, status=RuleStatus())
                conn.execute(
                    insert(alert_rules).values(
                        namespace=rule.namespace,
                        name=rule.name,
                        generation=1,
                        deleted=False,
                        document=_dump_rule(stored),
                        updated_ns=now_ns(),
                    )
                )
                return stored
            previous = _load_rule(row.document)
            same = previous.same_spec(rule) and not row.deleted
            stored = replace(rule, generation=row.generation if same else row.generation + 1, status=previous.status)
            conn.execute(
                update(alert_rules)
                .where(*key)
                .values(generation=stored.generation, deleted=False, document=_dump_rule(stored), updated_ns=now_ns())
            )
            return stored

    async def get_rule(self, namespace: str, name: str) -> AlertRule | None:
        return await asyncio.to_thread(self._live_rule, *_named(alert_rules, namespace, name))

    async def find_rule(self, name: str) -> AlertRule | None:
        """A live rule by its resource name in any namespace (the internal rule API names rules without one)."""
        return await asyncio.to_thread(self._live_rule, alert_rules.c.name == name)

    def _live_rule(self, *where: Any) -> AlertRule | None:
        """The first live (not tombstoned) rule matching `where`, by namespace."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(alert_rules.c.document)
                .where(*where, alert_rules.c.deleted.is_(False))
                .order_by(alert_rules.c.namespace)
                .limit(1)
            ).first()
        return _load_rule(row.document) if row else None

    async def list_rules(self) -> list[AlertRule]:
        return await asyncio.to_thread(self._rules, False)

    async def deleted_rules(self) -> list[AlertRule]:
        return await asyncio.to_thread(self._rules, True)

    def _rules(self, deleted: bool) -> list[AlertRule]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(alert_rules.c.document)
                .where(alert_rules.c.deleted.is_(deleted))
                .order_by(alert_rules.c.namespace, alert_rules.c.name)
            ).all()
        return [_load_rule(row.document) for row in rows]

    async def delete_rule(self, namespace: str, name: str) -> bool:
        def tombstone() -> bool:
            with self.engine.begin() as conn:
                result = conn.execute(
                    update(alert_rules)
                    .where(*_named(alert_rules, namespace, name), alert_rules.c.deleted.is_(False))
                    .values(deleted=True, updated_ns=now_ns())
                )
            return result.rowcount > 0

        deleted = await asyncio.to_thread(tombstone)
        if deleted:
            self._changed()
        return deleted

    async def purge_rule(self, namespace: str, name: str) -> None:
        def purge() -> None:
            with self.engine.begin() as conn:
                conn.execute(
                    delete(alert_rules).where(*_named(alert_rules, namespace, name), alert_rules.c.deleted.is_(True))
                )

        await asyncio.to_thread(purge)

    async def set_rule_status(self, namespace: str, name: str, status: RuleStatus) -> None:
        """Writes status without touching the spec or the generation (a status subresource).

        The status lives inside the stored document, so this is a read-modify-write; it only lands on the very
        document it read (compare-and-swap), else it reads again. Without that, a reconcile pass finishing just
        after a rule was re-applied wrote the old labels and spec back over the new ones (SQLite's driver does
        not begin the transaction before the SELECT, so the transaction alone does not prevent it)."""

        def write() -> None:
            key = _named(alert_rules, namespace, name)
            for _ in range(_STATUS_WRITE_TRIES):
                with self.engine.begin() as conn:
                    row = conn.execute(select(alert_rules.c.document).where(*key)).first()
                    if row is None:
                        return
                    rule = replace(_load_rule(row.document), status=status)
                    swapped = conn.execute(
                        update(alert_rules)
                        .where(*key, alert_rules.c.document == row.document)
                        .values(document=_dump_rule(rule))
                    ).rowcount
                if swapped:
                    return
            raise RuntimeError(f"alert rule {namespace}/{name} kept changing while its status was written")

        await asyncio.to_thread(write)

    # ------------------------------------------------------------------------------------------- channels

    async def put_channel(
        self, channel_doc: Mapping[str, Any], default_namespace: str = "default"
    ) -> NotificationChannel:
        channel = channel_from_resource(channel_doc, default_namespace)
        document = json.dumps(
            dict(channel_doc) | {"metadata": dict(channel_doc["metadata"]) | {"namespace": channel.namespace}}
        )

        def write() -> None:
            with self.engine.begin() as conn:
                conn.execute(
                    delete(notification_channels).where(*_named(notification_channels, channel.namespace, channel.name))
                )
                conn.execute(
                    insert(notification_channels).values(
                        namespace=channel.namespace,
                        name=channel.name,
                        environment=channel.environment,
                        document=document,
                        updated_ns=now_ns(),
                    )
                )

        await asyncio.to_thread(write)
        self._changed()
        return channel

    async def channel(self, namespace: str, name: str) -> NotificationChannel | None:
        """The channel `name` in `namespace`, else in any namespace, the first by namespace winning (as upstream's
        cluster-wide list); one query."""
        c = notification_channels.c

        def read() -> NotificationChannel | None:
            with self.engine.connect() as conn:
                row = conn.execute(
                    select(c.document, c.namespace)
                    .where(c.name == name)
                    .order_by(case((c.namespace == namespace, 0), else_=1), c.namespace)
                    .limit(1)
                ).first()
            return channel_from_resource(json.loads(row.document), row.namespace) if row else None

        return await asyncio.to_thread(read)

    async def delete_channel(self, namespace: str, name: str) -> bool:
        def remove() -> bool:
            with self.engine.begin() as conn:
                return (
                    conn.execute(
                        delete(notification_channels).where(*_named(notification_channels, namespace, name))
                    ).rowcount
                    > 0
                )

        removed = await asyncio.to_thread(remove)
        self._changed()
        return removed

    # ------------------------------------------------------------------------------------------- secrets

    async def put_secret(self, namespace: str, name: str, data: Mapping[str, str]) -> None:
        def write() -> None:
            with self.engine.begin() as conn:
                conn.execute(delete(secrets).where(*_named(secrets, namespace, name)))
                conn.execute(
                    insert(secrets).values(
                        namespace=namespace, name=name, data=json.dumps(dict(data)), updated_ns=now_ns()
                    )
                )

        await asyncio.to_thread(write)
        self._changed()

    async def secret_value(self, namespace: str, name: str, key: str) -> str | None:
        def read() -> str | None:
            with self.engine.connect() as conn:
                row = conn.execute(select(secrets.c.data).where(*_named(secrets, namespace, name))).first()
            return json.loads(row.data).get(key) if row else None

        return await asyncio.to_thread(read)

    # ------------------------------------------------------------------------------------------- apply

    async def apply(self, documents: Iterable[Mapping[str, Any]], default_namespace: str = "default") -> list[str]:
        """Stores every resource of a manifest (rules, channels, v1 Secrets), all checked before any is stored;
        returns one line per resource in kubectl's words."""
        parsed: list[tuple[str, Any]] = []
        for index, doc in enumerate(documents):
            if not doc:
                continue
            kind = doc.get("kind") if isinstance(doc, Mapping) else None
            try:
                if kind == RULE_KIND:
                    parsed.append((kind, rule_from_resource(doc, default_namespace)))
                elif kind == CHANNEL_KIND:
                    channel_from_resource(doc, default_namespace)
                    parsed.append((kind, doc))
                elif kind == "Secret":
                    parsed.append((kind, _secret_from_resource(doc, default_namespace)))
                else:
                    raise InvalidResource(f"kind must be {RULE_KIND}, {CHANNEL_KIND} or Secret, not {kind!r}")
            except InvalidResource as exc:
                raise InvalidResource(f"document {index + 1}: {exc}") from None
        lines: list[str | AlertRule] = []
        for kind, item in parsed:
            if kind == RULE_KIND:
                before = await self.get_rule(item.namespace, item.name)
                stored = await self.put_rule(item)
                verb = (
                    "created"
                    if before is None
                    else ("unchanged" if before.generation == stored.generation else "configured")
                )
                lines.append(f"observabilityalertrule/{item.name} {verb}")
                lines.append(item)  # replaced below by a warning when a channel is missing
            elif kind == CHANNEL_KIND:
                channel = await self.put_channel(item, default_namespace)
                lines.append(f"observabilityalertsnotificationchannel/{channel.name} configured")
            else:
                namespace, name, data = item
                await self.put_secret(namespace, name, data)
                lines.append(f"secret/{name} configured")
        # Channels are looked up once everything is stored, so a manifest holding both never warns.
        answer = []
        for entry in lines:
            line = entry if isinstance(entry, str) else await self._channel_warning(entry)
            if line:
                answer.append(line)
        return answer

    async def _channel_warning(self, rule: AlertRule) -> str:
        """A warning line for a rule naming channels not stored (yet): accepted, since the channel may be applied
        next, and reported on the rule's status (ChannelsReady=False) until it is."""
        missing = [name for name in rule.channels if await self.channel(rule.namespace, name) is None]
        if not missing:
            return ""
        names = ", ".join(f'"{name}"' for name in missing)
        return (
            f"  warning: observabilityalertrule/{rule.name}: notification channel {names} not found; alerts are "
            "recorded but not sent to it until it is applied"
        )


def _named(table: Table, namespace: str, name: str) -> tuple[Any, Any]:
    """The WHERE clauses of one resource by its key (every resource table is keyed by namespace and name)."""
    return table.c.namespace == namespace, table.c.name == name


def load_manifest(text: str) -> list[Mapping[str, Any]]:
    """The documents of a YAML (or JSON) manifest, `---`-separated; a kind: List is flattened."""
    documents: list[Mapping[str, Any]] = []
    for doc in yaml.safe_load_all(text):
        if isinstance(doc, Mapping) and doc.get("kind") == "List":
            documents.extend(doc.get("items") or [])
        elif doc is not None:
            if not isinstance(doc, Mapping):
                raise InvalidResource("every document must be a mapping with apiVersion, kind and metadata")
            documents.append(doc)
    return documents


def _secret_from_resource(doc: Mapping[str, Any], default_namespace: str) -> tuple[str, str, dict[str, str]]:
    meta = doc.get("metadata") or {}
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidResource("metadata.name is required")
    data: dict[str, str] = {}
    for key, value in (doc.get("data") or {}).items():
        try:
            data[str(key)] = base64.b64decode(str(value), validate=True).decode()
        except ValueError:
            raise InvalidResource(f"data.{key} must be base64 (use stringData for plain text)") from None
    data.update({str(k): str(v) for k, v in (doc.get("stringData") or {}).items()})
    return str(meta.get("namespace") or default_namespace), name, data


def _dump_rule(rule: AlertRule) -> str:
    return json.dumps(rule_to_resource(rule))


def _load_rule(document: str) -> AlertRule:
    doc = json.loads(document)
    rule = rule_from_resource(doc, stored=True)
    status = doc.get("status") or {}
    return replace(
        rule,
        generation=int(doc["metadata"].get("generation") or 1),
        status=RuleStatus(
            observed_generation=int(status.get("observedGeneration") or 0),
            phase=status.get("phase") or "Pending",
            last_reconcile_time=status.get("lastReconcileTime") or "",
            last_sync_time=status.get("lastSyncTime") or "",
            backend_monitor_id=status.get("backendMonitorId") or "",
            conditions=tuple(
                Condition(c["type"], c["status"], c["reason"], c.get("message", ""), c.get("lastTransitionTime", ""))
                for c in status.get("conditions") or []
            ),
        ),
    )
