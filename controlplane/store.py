"""The control plane's resource store: every object of every kind, as the Kubernetes API server would keep them.

One set of SQLAlchemy Core queries serves SQLite (WAL, the default) and PostgreSQL (by DSN), as the observer's
alert store does. Each object is one row holding its whole document (JSON); the columns beside it are what
lookups, ordering and concurrency need.

Semantics are the API server's, so clients written against OpenChoreo behave the same here:
- `metadata.uid` is a uuid4 given at create and never changed; `creationTimestamp` likewise.
- `metadata.generation` starts at 1 and grows by one only when the content changes (`spec`; a Secret's `type` and
  `data`), not labels or status. A replace that changes nothing writes nothing (no new resourceVersion).
- `metadata.resourceVersion` is the store revision of the object's last write; a replace carrying a stale one is
  a Conflict (optimistic concurrency), one carrying none is unconditional.
- `apiVersion`, `kind` and `status` are read-only on create and replace: status is written by `put_status` only.
- A namespaced object needs its Namespace; a Namespace holding objects cannot be deleted.
- Delete cascades along owner references (`OWNED`: a Project's Components, a Component's Workloads and
  ReleaseBindings), without finalizers: one transaction, one `deleted` change per object removed.
- A kind's one list filter (controlplane/kinds.py `list_filters`: the owning Project or Component's name) is kept
  in the indexed `owner` column beside the document, so filtered lists and the delete cascade are index lookups
  rather than a parse of every object of the kind (which made a reconcile pass quadratic in the bindings).
- CEL rules run on create and replace (controlplane/cel.py); transition rules (immutability) on replace only, against
  the stored object, inside the write transaction.
- A v1 Secret's `stringData` is merged into `data` (base64) on write and not kept, as Kubernetes does;
  `secret_value` hands a decoded value to the reconcilers (the REST API never shows values).
- Every write bumps one revision counter and appends a `changes` row in the same transaction, so reconcilers
  wake on `revision()` and read what changed from `changes_since`; any Authz* write also bumps
  `authz_revision`, the stamp the policy cache checks.

Every write transaction begins by bumping the revision row: that takes the database's write lock (SQLite) or the
row lock (PostgreSQL) first, so the reads and checks that follow see the latest committed state and concurrent
writers queue rather than interleave.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import copy
import json
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    bindparam,
    delete,
    func,
    insert,
    inspect,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.types import TypeEngine

from controlplane import kinds, schema, selectors
from controlplane.errors import Conflict, Invalid, NotFound
from serving.sql import open_sql_engine

CHANGES_KEPT = 10_000  # revisions of history kept for changes_since; older rows are pruned
MAX_LIST_LIMIT = 1000  # the store's own bound on a page (the REST API allows 1..100)
_PRUNE_EVERY = 100  # prune the changes table on every Nth revision, not on every write

#: Owner references, as the store follows them on delete: owner kind -> the kinds it owns, in its namespace. An
#: owned object names its owner in its list filter field (controlplane/kinds.py), kept in the `owner` column.
OWNED: Mapping[str, tuple[str, ...]] = {
    "Project": ("Component",),
    "Component": ("Workload", "ReleaseBinding"),
}


def _owner_paths() -> Mapping[str, str]:
    """Kind -> the document field its `owner` column holds: its one list filter. One column holds one field, so
    a kind with two filters (or an OWNED kind without one) is a programming error caught at import."""
    paths: dict[str, str] = {}
    for row in kinds.KINDS:
        if len(row.list_filters) > 1:
            raise RuntimeError(f"{row.kind} has {len(row.list_filters)} list filters; the owner column holds one")
        for path in row.list_filters.values():
            paths[row.kind] = path
    for owner, owned in OWNED.items():
        missing = [kind for kind in owned if kind not in paths]
        if missing:
            raise RuntimeError(f"{owner} owns {missing}, which have no list filter naming their owner")
    return paths


OWNER_PATHS: Mapping[str, str] = _owner_paths()
OWNER_LENGTH = 253  # an owner is an object name

metadata = MetaData()


def _name_type(length: int) -> TypeEngine[str]:
    """A name column that sorts by code point on both databases: SQLite compares bytes (BINARY) already, and
    PostgreSQL gets collation "C" so its order (and so cursor paging) does not follow the server's locale, in
    which `a-b`, `a.b` and `a1` sort differently."""
    return String(length).with_variant(String(length, collation="C"), "postgresql")


resources = Table(
    "cp_resources",
    metadata,
    Column("kind", String(63), primary_key=True),
    Column("namespace", _name_type(63), primary_key=True),  # "" for cluster-scoped kinds
    Column("name", _name_type(253), primary_key=True),
    Column("uid", String(36), nullable=False, unique=True),
    Column("generation", BigInteger, nullable=False),
    Column("resource_version", BigInteger, nullable=False),
    Column("document", Text, nullable=False),  # the whole object as JSON, status included
    # The value of the kind's list filter field (OWNER_PATHS), "" when the kind has none or the field is absent.
    Column("owner", String(OWNER_LENGTH), nullable=False, server_default=""),
    Index("cp_resources_by_owner", "kind", "namespace", "owner", "name"),
)

revisions = Table(
    "cp_revision",
    metadata,
    Column("id", Integer, primary_key=True),  # always 1
    Column("revision", BigInteger, nullable=False),
    Column("authz_revision", BigInteger, nullable=False),
)

changes = Table(
    "cp_changes",
    metadata,
    Column("revision", BigInteger, primary_key=True, autoincrement=False),
    Column("kind", String(63), nullable=False),
    Column("namespace", String(63), nullable=False),
    Column("name", String(253), nullable=False),
    Column("op", String(16), nullable=False),  # created | replaced | status | deleted
    Index("cp_changes_by_kind", "kind", "revision"),
)


@dataclass(frozen=True)
class Page:
    """One page of a list: the items, the cursor of the next page ("" on the last) and how many items follow."""

    items: list[dict[str, Any]]
    next_cursor: str
    remaining: int


@dataclass(frozen=True)
class Change:
    """One write: the revision it made, what it touched (namespace "" for cluster-scoped) and how."""

    revision: int
    kind: str
    namespace: str
    name: str
    op: str


def open_engine(url: str) -> Engine:
    """An engine for `url` (`sqlite:///path`, `postgresql://...`, `postgres://...`, `postgresql+psycopg://...`)
    with the schema created. SQLite gets WAL, full sync and a busy timeout, so readers never block the writer."""
    engine = open_sql_engine(url)
    metadata.create_all(engine)
    if engine.dialect.name == "postgresql":
        _collate_names(engine)
    _add_owner_column(engine)
    with engine.begin() as conn:
        if conn.execute(select(revisions.c.id).where(revisions.c.id == 1)).first() is None:
            try:
                with conn.begin_nested():
                    conn.execute(insert(revisions).values(id=1, revision=0, authz_revision=0))
            except IntegrityError:  # another process made it first
                pass
    return engine


def _collate_names(engine: Engine) -> None:
    """Give the name columns of a table made before they had collation "C" (slice 1) that collation, so paging
    order is code-point order there too. A no-op once done."""
    query = text(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'cp_resources' "
        "AND column_name IN ('namespace', 'name') AND coalesce(collation_name, '') <> 'C'"
    )
    with engine.begin() as conn:
        for (column,) in conn.execute(query).all():
            length = 63 if column == "namespace" else 253
            conn.execute(text(f'ALTER TABLE cp_resources ALTER COLUMN {column} TYPE varchar({length}) COLLATE "C"'))


def _has_owner_column(conn: Connection) -> bool:
    return any(column["name"] == "owner" for column in inspect(conn).get_columns("cp_resources"))


def _add_owner_column(engine: Engine) -> None:
    """Give a table made before the `owner` column (issue 16) the column, its index and every row's value, once.

    The check is cheap and lock-free; only when the column is missing is the table locked (SQLite's write lock,
    PostgreSQL's exclusive table lock) and checked again, so two processes opening one old database migrate it
    once, and a crash midway leaves the old table (one transaction: DDL is transactional on both)."""
    with engine.connect() as conn:
        if _has_owner_column(conn):
            return
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("LOCK TABLE cp_resources IN ACCESS EXCLUSIVE MODE")
        if not _has_owner_column(conn):
            conn.exec_driver_sql(
                f"ALTER TABLE cp_resources ADD COLUMN owner VARCHAR({OWNER_LENGTH}) NOT NULL DEFAULT ''"
            )
            for index in resources.indexes:
                index.create(conn, checkfirst=True)
            for kind in OWNER_PATHS:
                _backfill_owner(conn, kind)
        conn.commit()


_BACKFILL_BATCH = 500


def _backfill_owner(conn: Connection, kind: str) -> None:
    """Fill the `owner` column of every `kind` row from its document, a bounded batch at a time (keyset paging)."""
    key = (resources.c.namespace, resources.c.name)
    after: tuple[str, str] | None = None
    while True:
        query = select(resources.c.namespace, resources.c.name, resources.c.document).where(resources.c.kind == kind)
        if after is not None:
            query = query.where(or_(key[0] > after[0], and_(key[0] == after[0], key[1] > after[1])))
        rows = conn.execute(query.order_by(*key).limit(_BACKFILL_BATCH)).all()
        if not rows:
            return
        conn.execute(
            update(resources)
            .where(
                resources.c.kind == kind,
                resources.c.namespace == bindparam("b_namespace"),
                resources.c.name == bindparam("b_name"),
            )
            .values(owner=bindparam("b_owner")),
            [
                {"b_namespace": r.namespace, "b_name": r.name, "b_owner": _owner(kind, json.loads(r.document))}
                for r in rows
            ],
        )
        after = (rows[-1].namespace, rows[-1].name)


def _owner(kind: str, document: Mapping[str, Any]) -> str:
    """What the `owner` column holds for `document` of `kind`: its list filter field's value, else ""."""
    path = OWNER_PATHS.get(kind)
    value = _dotted(document, path) if path else None
    return value if isinstance(value, str) else ""


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ns_key(row: kinds.Kind, namespace: str | None) -> str:
    return (namespace or "") if row.namespaced else ""


def _row_kind(kind: str) -> kinds.Kind:
    try:
        return kinds.get(kind)
    except KeyError as exc:
        raise Invalid([("kind", str(exc.args[0]))]) from None


def _is_authz(kind: str) -> bool:
    return kind.startswith(("Authz", "ClusterAuthz"))


def _encode_cursor(namespace: str, name: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([namespace, name]).encode()).decode()


def _decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (binascii.Error, ValueError, UnicodeError):
        value = None
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(part, str) for part in value)):
        raise Invalid([("cursor", f"Invalid value: {cursor[:64]!r}: not a cursor this server gave out")])
    return value[0], value[1]


def _ordered(document: dict[str, Any]) -> dict[str, Any]:
    """The object with its top-level keys in Kubernetes' order (apiVersion, kind, metadata, spec, status, rest)."""
    first = ("apiVersion", "kind", "metadata", "spec", "status")
    return {key: document[key] for key in (*first, *sorted(set(document) - set(first))) if key in document}


class _Unchanged(Exception):  # noqa: N818 - control flow, not an error
    """Raised inside a write transaction to roll it back when a replace would change nothing."""

    def __init__(self, document: dict[str, Any]) -> None:
        super().__init__("unchanged")
        self.document = document


def _content(document: Mapping[str, Any]) -> dict[str, Any]:
    """What `generation` tracks: everything but the envelope, metadata and status (a CRD's `spec`; a Secret's
    `type` and `data`)."""
    return {k: v for k, v in document.items() if k not in ("apiVersion", "kind", "metadata", "status")}


def _merge_string_data(document: dict[str, Any]) -> None:
    """A Secret's `stringData` written into `data` as base64 (it wins over a `data` key of the same name) and
    dropped, as the API server does: only `data` is stored."""
    plain = document.pop("stringData", None) or {}
    if plain:
        data = document.setdefault("data", {})
        for key, value in plain.items():
            data[key] = base64.b64encode(str(value).encode("utf-8")).decode("ascii")


def _dotted(document: Mapping[str, Any], path: str) -> Any:
    node: Any = document
    for part in path.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


class Store:
    """The resource store (module docstring). Synchronous; async callers use `asyncio.to_thread`."""

    def __init__(self, url: str) -> None:
        self._engine = open_engine(url)

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine, for tables that live beside the resources (slices to come)."""
        return self._engine

    def close(self) -> None:
        """Release the connection pool."""
        self._engine.dispose()

    # ----------------------------------------------------------------- reads

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        row = _row_kind(kind)
        with self._engine.connect() as conn:
            found = self._select(conn, row.kind, _ns_key(row, namespace), name)
        return None if found is None else json.loads(found)

    def list(
        self,
        kind: str,
        namespace: str | None = None,
        *,
        selector: str = "",
        filters: Mapping[str, str] = {},  # noqa: B006 - read-only default, never mutated
        limit: int = 100,
        cursor: str = "",
    ) -> Page:
        """One page of `kind` (in `namespace`, or in all namespaces when None), ordered by (namespace, name).

        `selector` is a label selector; `filters` maps a list filter of the kind (`project` for Components) to the
        value its field must equal. The filter is a condition on the indexed `owner` column, so it costs the
        matching rows only; a selector is matched in Python on what the SQL leaves. Invalid names the bad
        `labelSelector`, filter, `limit` or `cursor`; a namespace that does not exist is NotFound, as a GET of it
        would be."""
        row = _row_kind(kind)
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise Invalid([("limit", f"Invalid value: {limit}: must be between 1 and {MAX_LIST_LIMIT}")])
        unknown = [key for key in filters if key not in row.list_filters]
        if unknown:
            raise Invalid([(key, f"not a filter of {row.kind}") for key in unknown])
        parsed = selectors.parse(selector)
        query = select(resources.c.namespace, resources.c.name, resources.c.document).where(
            resources.c.kind == row.kind
        )
        for value in filters.values():  # at most one: the kind's one filter, held in the owner column
            query = query.where(resources.c.owner == value)
        if row.namespaced and namespace is not None:
            query = query.where(resources.c.namespace == namespace)
        if cursor:
            after_ns, after_name = _decode_cursor(cursor)
            query = query.where(
                or_(
                    resources.c.namespace > after_ns,
                    and_(resources.c.namespace == after_ns, resources.c.name > after_name),
                )
            )
        query = query.order_by(resources.c.namespace, resources.c.name)
        with self._engine.connect() as conn:
            if row.namespaced and namespace is not None:
                self._require_namespace(conn, namespace)
            if not parsed.requirements:
                return self._page_plain(conn, query, limit)
            return self._page_selected(conn, query, limit, parsed)

    def _page_plain(self, conn: Connection, query: Any, limit: int) -> Page:
        rows = conn.execute(query.limit(limit + 1)).all()
        items = [json.loads(r.document) for r in rows[:limit]]
        if len(rows) <= limit:
            return Page(items, "", 0)
        last = rows[limit - 1]
        rest = select(func.count()).select_from(query.with_only_columns(resources.c.name).order_by(None).subquery())
        total_after_first = int(conn.execute(rest).scalar_one())
        return Page(items, _encode_cursor(last.namespace, last.name), total_after_first - limit)

    def _page_selected(self, conn: Connection, query: Any, limit: int, parsed: selectors.Selector) -> Page:
        """A page under a label selector: labels live in the document, so the rows the SQL conditions leave
        (kind, namespace, owner, cursor) are parsed and matched here, all of them, so `remaining` is exact."""
        items: list[dict[str, Any]] = []
        remaining = 0
        last: tuple[str, str] = ("", "")
        for r in conn.execution_options(yield_per=500).execute(query):
            document = json.loads(r.document)
            labels = (document.get("metadata") or {}).get("labels") or {}
            if not parsed.matches(labels):
                continue
            if len(items) < limit:
                items.append(document)
                last = (r.namespace, r.name)
            else:
                remaining += 1
        return Page(items, _encode_cursor(*last) if remaining else "", remaining)

    def revision(self) -> int:
        """The store revision: it grows on every write, so a reconciler compares it to know whether to look."""
        with self._engine.connect() as conn:
            return int(conn.execute(select(revisions.c.revision).where(revisions.c.id == 1)).scalar_one())

    def authz_revision(self) -> int:
        """Grows on every write of an Authz* kind: the stamp a policy cache compares before reusing its rules."""
        with self._engine.connect() as conn:
            return int(conn.execute(select(revisions.c.authz_revision).where(revisions.c.id == 1)).scalar_one())

    def changes_since(self, revision: int, limit: int = CHANGES_KEPT) -> builtins.list[Change]:
        """The writes after `revision`, oldest first, at most `limit`. Only the last CHANGES_KEPT revisions are
        kept: a caller further behind than that re-lists instead (it sees the first change returned is not
        `revision + 1`)."""
        query = select(changes).where(changes.c.revision > revision).order_by(changes.c.revision).limit(limit)
        with self._engine.connect() as conn:
            return [Change(int(r.revision), r.kind, r.namespace, r.name, r.op) for r in conn.execute(query)]

    # ----------------------------------------------------------------- writes

    def create(self, document: dict[str, Any]) -> dict[str, Any]:
        """Store a new object; returns it as stored (uid, generation 1, resourceVersion, creationTimestamp set).
        Invalid for a bad document, NotFound for a missing namespace, Conflict when the name is taken."""
        row, doc = self._validated(document)
        meta = doc["metadata"]
        namespace, name = _ns_key(row, meta.get("namespace")), meta["name"]
        with self._write() as (conn, revision):
            if row.namespaced:
                self._require_namespace(conn, namespace)
            if self._select(conn, row.kind, namespace, name) is not None:
                raise Conflict(f"{row.kind} '{name}' already exists")
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = _now()
            meta["generation"] = 1
            meta["resourceVersion"] = str(revision)
            if row.kind == "Namespace":
                doc["status"] = {"phase": "Active"}
            doc = _ordered(doc)
            try:
                with conn.begin_nested():
                    conn.execute(
                        insert(resources).values(
                            kind=row.kind,
                            namespace=namespace,
                            name=name,
                            uid=meta["uid"],
                            generation=1,
                            resource_version=revision,
                            document=json.dumps(doc),
                            owner=_owner(row.kind, doc),
                        )
                    )
            except IntegrityError:
                raise Conflict(f"{row.kind} '{name}' already exists") from None
            self._record(conn, revision, row.kind, namespace, name, "created")
        return doc

    def replace(self, document: dict[str, Any]) -> dict[str, Any]:
        """Replace an object's labels, annotations and spec; status, uid and creationTimestamp are kept.
        NotFound when it does not exist, Conflict when `metadata.resourceVersion` is given and stale."""
        row, doc = self._validated(document)
        meta = doc["metadata"]
        namespace, name = _ns_key(row, meta.get("namespace")), meta["name"]
        wanted = str(document.get("metadata", {}).get("resourceVersion") or "")

        def change(old: dict[str, Any], revision: int) -> dict[str, Any]:
            if wanted and wanted != str(old["metadata"]["resourceVersion"]):
                raise Conflict(
                    f"{row.kind} '{name}' was modified (resourceVersion {old['metadata']['resourceVersion']}"
                    f", not {wanted}); read it again and retry"
                )
            problems = schema.transition_problems(row.kind, doc, old)
            if problems:
                raise Invalid(problems)
            old_meta = old["metadata"]
            for key in ("uid", "creationTimestamp", "generation", "resourceVersion"):
                meta[key] = old_meta[key]
            if "status" in old:
                doc["status"] = old["status"]
            if _ordered(doc) == old:
                raise _Unchanged(old)
            meta["generation"] = int(old_meta["generation"]) + (0 if _content(old) == _content(doc) else 1)
            meta["resourceVersion"] = str(revision)
            return doc

        return self._update(row, namespace, name, "replaced", change)

    def secret_value(self, namespace: str, name: str, key: str) -> str | None:
        """The decoded value of `key` in Secret `namespace/name`, None when the Secret or the key does not exist
        (or the value is not UTF-8 text: what the reconcilers read from Secrets are tokens, passwords and PEM)."""
        found = self.get("Secret", namespace, name)
        encoded = ((found or {}).get("data") or {}).get(key)
        if not isinstance(encoded, str):
            return None
        try:
            return base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return None

    def put_status(self, kind: str, namespace: str | None, name: str, status: dict[str, Any]) -> dict[str, Any]:
        """Replace an object's status (the status subresource): generation unchanged, resourceVersion bumped.
        Invalid when the status does not fit the kind's schema."""
        row = _row_kind(kind)
        ns = _ns_key(row, namespace)

        def change(old: dict[str, Any], revision: int) -> dict[str, Any]:
            doc = copy.deepcopy(old)
            doc["status"] = copy.deepcopy(status)
            problems = [p for p in schema.validate(row.kind, doc, evaluate_rules=False) if p[0].startswith("status")]
            if problems:
                raise Invalid(problems)
            doc["metadata"]["resourceVersion"] = str(revision)
            return doc

        return self._update(row, ns, name, "status", change)

    def delete(self, kind: str, namespace: str | None, name: str) -> dict[str, Any]:
        """Remove an object and what it owns; returns the object. NotFound when absent; Conflict for a Namespace
        still holding objects.

        Finalizer-free cascade, as Kubernetes' garbage collector follows owner references: a Component takes its
        Workloads and ReleaseBindings (`spec.owner.componentName`, same namespace) with it, a Project its
        Components (`spec.owner.projectName`) and theirs. All in this one transaction, each removal a `deleted`
        change of its own revision, so the reconcilers see every owner leave and sweep what they rendered."""
        row = _row_kind(kind)
        ns = _ns_key(row, namespace)
        with self._write() as (conn, revision):
            found = self._select(conn, row.kind, ns, name)
            if found is None:
                raise self._missing(conn, row, ns, name)
            if row.kind == "Namespace":
                held = conn.execute(
                    select(resources.c.kind, resources.c.name).where(resources.c.namespace == name).limit(1)
                ).first()
                if held is not None:
                    raise Conflict(
                        f"Namespace '{name}' is not empty (it still holds {held.kind} '{held.name}'); "
                        "delete what it holds first"
                    )
            self._remove(conn, revision, row.kind, ns, name)
            for dependent_kind, dependent_name in self._dependents(conn, row.kind, ns, name):
                self._remove(conn, self._next_revision(conn), dependent_kind, ns, dependent_name)
        document: dict[str, Any] = json.loads(found)
        return document

    def _remove(self, conn: Connection, revision: int, kind: str, namespace: str, name: str) -> None:
        conn.execute(
            delete(resources).where(
                resources.c.kind == kind, resources.c.namespace == namespace, resources.c.name == name
            )
        )
        self._record(conn, revision, kind, namespace, name, "deleted")

    def _dependents(self, conn: Connection, kind: str, namespace: str, name: str) -> builtins.list[tuple[str, str]]:
        """(kind, name) of everything `kind/name` owns in `namespace`, transitively, owners before what they own
        (module-level OWNED); bounded by the namespace's size, since each object is visited once."""
        out: builtins.list[tuple[str, str]] = []
        pending = [(kind, name)]
        while pending:
            owner_kind, owner_name = pending.pop(0)
            for owned_kind in OWNED.get(owner_kind, ()):
                query = select(resources.c.name).where(
                    resources.c.kind == owned_kind, resources.c.namespace == namespace, resources.c.owner == owner_name
                )
                for r in conn.execute(query.order_by(resources.c.name)):
                    out.append((owned_kind, str(r.name)))
                    pending.append((owned_kind, str(r.name)))
        return out

    def _next_revision(self, conn: Connection) -> int:
        """One more revision inside the current write transaction (one per change row of a cascade)."""
        conn.execute(update(revisions).where(revisions.c.id == 1).values(revision=revisions.c.revision + 1))
        return int(conn.execute(select(revisions.c.revision).where(revisions.c.id == 1)).scalar_one())

    # ----------------------------------------------------------------- helpers

    def _validated(self, document: dict[str, Any]) -> tuple[kinds.Kind, dict[str, Any]]:
        """A validated, defaulted copy of `document` without the fields the server owns."""
        if not isinstance(document, dict):
            raise Invalid([("", "a manifest must be an object")])
        row = _row_kind(str(document.get("kind") or ""))
        doc = copy.deepcopy(document)
        doc.pop("status", None)
        meta = doc.get("metadata")
        if isinstance(meta, dict):
            for key in ("uid", "creationTimestamp", "generation", "resourceVersion"):
                meta.pop(key, None)
        problems = schema.validate(row.kind, doc)
        if row.namespaced and isinstance(meta, dict) and not meta.get("namespace"):
            problems.append(("metadata.namespace", "Required value"))
        if problems:
            raise Invalid(problems)
        if row.kind == "Secret":
            _merge_string_data(doc)
        return row, doc

    @contextmanager
    def _write(self) -> Iterator[tuple[Connection, int]]:
        """A write transaction that has taken the next revision (and with it the write lock) before anything."""
        with self._engine.begin() as conn:
            yield conn, self._next_revision(conn)

    def _update(
        self,
        row: kinds.Kind,
        namespace: str,
        name: str,
        op: str,
        change: Callable[[dict[str, Any], int], dict[str, Any]],
    ) -> dict[str, Any]:
        try:
            with self._write() as (conn, revision):
                found = self._select(conn, row.kind, namespace, name)
                if found is None:
                    raise self._missing(conn, row, namespace, name)
                doc = _ordered(change(json.loads(found), revision))
                conn.execute(
                    update(resources)
                    .where(resources.c.kind == row.kind, resources.c.namespace == namespace, resources.c.name == name)
                    .values(
                        generation=int(doc["metadata"]["generation"]),
                        resource_version=revision,
                        document=json.dumps(doc),
                        owner=_owner(row.kind, doc),
                    )
                )
                self._record(conn, revision, row.kind, namespace, name, op)
        except _Unchanged as unchanged:  # the transaction (and its revision bump) rolled back: nothing was written
            return unchanged.document
        return doc

    def _record(self, conn: Connection, revision: int, kind: str, namespace: str, name: str, op: str) -> None:
        conn.execute(insert(changes).values(revision=revision, kind=kind, namespace=namespace, name=name, op=op))
        if _is_authz(kind):
            conn.execute(
                update(revisions).where(revisions.c.id == 1).values(authz_revision=revisions.c.authz_revision + 1)
            )
        if revision % _PRUNE_EVERY == 0:
            conn.execute(delete(changes).where(changes.c.revision <= revision - CHANGES_KEPT))

    def _select(self, conn: Connection, kind: str, namespace: str, name: str) -> str | None:
        found = conn.execute(
            select(resources.c.document).where(
                resources.c.kind == kind, resources.c.namespace == namespace, resources.c.name == name
            )
        ).first()
        return None if found is None else str(found.document)

    def _missing(self, conn: Connection, row: kinds.Kind, namespace: str, name: str) -> NotFound:
        """NotFound for an absent object, blaming its namespace when that is what is missing."""
        if row.namespaced and self._select(conn, "Namespace", "", namespace) is None:
            return NotFound(f"Namespace '{namespace}' not found")
        return NotFound(f"{row.kind} '{name}' not found")

    def _require_namespace(self, conn: Connection, namespace: str) -> None:
        if self._select(conn, "Namespace", "", namespace) is None:
            raise NotFound(f"Namespace '{namespace}' not found")
