"""The embedded name registry: namespaces, projects, components and environments with their UIDs.

Entries come from two places. A YAML file declares them (UIDs optional: a missing one is derived from the
names, so it is stable across restarts). Enriched telemetry teaches them: a record carrying
`openchoreo.dev/component` and `openchoreo.dev/component-uid` makes that component queryable by name with no
declaration. When a name is seen with a new UID (the component was deleted and re-created), the newer UID wins,
so queries by name follow the current component and never inherit its predecessor's records.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from adapters.embedded.store import Store
from adapters.protocols import ScopeNotFound
from domain.identity import derived_uid
from domain.model import Identity


class EmbeddedRegistry:
    def __init__(self, store: Store):
        self._store = store
        # Learning runs on every ingested batch; remember what is already known to skip the write (and forget
        # it all when a write is rolled back: what it learned was not stored).
        self._known: dict[tuple[str, str, str], str] = {}
        store.on_rollback(self._known.clear)

    # ------------------------------------------------------------------------------------ ScopeResolver

    async def resolve(
        self, namespace: str, project: str = "", component: str = "", environment: str = ""
    ) -> tuple[str, str, str]:
        """The UIDs the names have now. Unlike every other read of the store, this one runs on the caller's
        thread (the event loop): it is one primary-key lookup per name in a table of a few pages, microseconds
        of work, where a hop to the thread pool and back costs a millisecond on a busy machine, on every query.
        Nothing is cached, so a name re-learned with a new UID, by this process or any other writing the same
        file, is resolved to the new one by the very next query."""
        return self._resolve(self._store.reader(), namespace, project, component, environment)

    def _resolve(
        self, conn: sqlite3.Connection, namespace: str, project: str, component: str, environment: str
    ) -> tuple[str, str, str]:
        named = (("project", project), ("component", component), ("environment", environment))
        wanted = [("namespace", "", namespace), *((kind, namespace, name) for kind, name in named if name)]
        found = dict(
            conn.execute(
                " UNION ALL ".join(
                    ["SELECT kind, uid FROM registry WHERE kind = ? AND namespace = ? AND name = ?"] * len(wanted)
                ),
                [value for key in wanted for value in key],
            ).fetchall()
        )
        for kind, _, name in wanted:  # the first unknown name, in scope order, is the one reported
            if kind not in found:
                raise ScopeNotFound(kind, name, namespace)
        return (
            str(found["project"]) if project else "",
            str(found["component"]) if component else "",
            str(found["environment"]) if environment else "",
        )

    # ------------------------------------------------------------------------------------ learning

    def knows_all(self, identities: Sequence[Identity]) -> bool:
        """Whether learning these would change nothing (so no write transaction is needed)."""
        return all(
            self._known.get((kind, namespace, name)) == uid
            for identity in set(identities)
            for kind, namespace, name, uid, _ in _entries(identity)
        )

    def learn(self, conn: sqlite3.Connection, identities: Sequence[Identity], seen_ns: int) -> None:
        """Records the names and UIDs these identities carry. Call inside the write transaction of the batch."""
        for identity in set(identities):
            for kind, namespace, name, uid, project in _entries(identity):
                key = (kind, namespace, name)
                if self._known.get(key) == uid:
                    continue
                conn.execute(
                    "INSERT INTO registry (kind, namespace, name, uid, project, seen_ns) VALUES (?,?,?,?,?,?)"
                    " ON CONFLICT (kind, namespace, name) DO UPDATE SET uid = excluded.uid,"
                    " project = excluded.project, seen_ns = excluded.seen_ns"
                    " WHERE registry.declared = 0 AND excluded.seen_ns >= registry.seen_ns",
                    (kind, namespace, name, uid, project, seen_ns),
                )
                self._known[key] = uid

    # ------------------------------------------------------------------------------------ declaring

    def declare(self, document: dict[str, Any]) -> int:
        """Loads a registry document; returns how many entries it declared. Declared UIDs are not overridden
        by learning, so a platform team's file stays the source of truth for what it lists.

        namespaces:
          - name: acme
            uid: 6f0c...            # optional
            projects:
              - name: shop
                components: [frontend, {name: cart, uid: ...}]
            environments: [development, {name: production, uid: ...}]
        """
        rows = []
        for ns in document.get("namespaces") or []:
            ns_name, ns_uid = _entry(ns)
            rows.append(("namespace", "", ns_name, ns_uid or derived_uid("namespace", "", ns_name), ""))
            for env in ns.get("environments") or [] if isinstance(ns, dict) else []:
                name, uid = _entry(env)
                rows.append(("environment", ns_name, name, uid or derived_uid("environment", ns_name, name), ""))
            for project in ns.get("projects") or [] if isinstance(ns, dict) else []:
                p_name, p_uid = _entry(project)
                rows.append(("project", ns_name, p_name, p_uid or derived_uid("project", ns_name, p_name), ""))
                for comp in project.get("components") or [] if isinstance(project, dict) else []:
                    name, uid = _entry(comp)
                    rows.append(("component", ns_name, name, uid or derived_uid("component", ns_name, name), p_name))
        with self._store.transaction() as conn:
            conn.executemany(
                "INSERT INTO registry (kind, namespace, name, uid, project, declared) VALUES (?,?,?,?,?,1)"
                " ON CONFLICT (kind, namespace, name) DO UPDATE SET uid = excluded.uid, project = excluded.project,"
                " declared = 1",
                rows,
            )
        self._known.clear()
        return len(rows)

    def declare_file(self, path: Path | str) -> int:
        return self.declare(yaml.safe_load(Path(path).read_text()) or {})

    async def entries(self) -> list[dict[str, str]]:
        rows = await self._store.read(
            lambda conn: conn.execute(
                "SELECT kind, namespace, name, uid, project FROM registry ORDER BY kind, namespace, name"
            ).fetchall()
        )
        return [dict(zip(("kind", "namespace", "name", "uid", "project"), row)) for row in rows]


def _entries(identity: Identity) -> list[tuple[str, str, str, str, str]]:
    """The registry rows an identity vouches for: (kind, namespace, name, uid, project). A namespace needs no
    UID; a project, component or environment only counts when the record carries both its name and UID."""
    if not identity.namespace:
        return []
    ns = identity.namespace
    entries = [("namespace", "", ns, derived_uid("namespace", "", ns), "")]
    for kind, name, uid in (
        ("project", identity.project, identity.project_uid),
        ("component", identity.component, identity.component_uid),
        ("environment", identity.environment, identity.environment_uid),
    ):
        if name and uid:
            entries.append((kind, ns, name, uid, identity.project if kind == "component" else ""))
    return entries


def _entry(item: Any) -> tuple[str, str]:
    """A YAML entry is either a bare name or a mapping with `name` and optional `uid`."""
    if isinstance(item, str):
        return item, ""
    if isinstance(item, dict) and isinstance(item.get("name"), str):
        uid = item.get("uid") or ""
        return item["name"], str(uuid.UUID(str(uid))) if uid else ""
    raise ValueError(f"registry entry {item!r} needs a name")
