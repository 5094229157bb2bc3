"""Where the embedded decision point's policy comes from, and how a change is noticed on the very next call.

A policy is a list of Casbin rules for the model in access/casbin_pdp.py:

    p, <role or entitlement>, <scope path>, <action>, <environments>, <allow|deny>
    g, <entitlement or role>, <role>

Entitlements are `<claim>:<value>` as the token carries them: `groups:<group>` for a user, `sub:<sub>` for a
service account. A scope path is `*` (every namespace) or `ns/<ns>[/project/<p>[/component/<c>]]` or
`ns/<ns>/workflowrun/<run>`. Environments are `*` (any, and a query naming none) or names joined by `|`.

Two sources, each one class with the same two methods, so a PostgreSQL source is one more class:

- `FilePolicySource`: a YAML file of roles and bindings (compiled to the rules above; docs/authz-policy.md) or a
  Casbin policy CSV (`.csv`, the rules as written).
- `SQLitePolicySource`: the `casbin_rule` table (ptype, v0..v5) of a SQLite file, the layout Casbin's SQL
  adapters use.

`stamp()` is what is paid on every authorize call: it must be cheap and must change whenever the policy may have
changed (a false change only costs a reload; a missed one would let a revoked grant live on). `rules()` reads and
validates the whole policy, raising PolicyError for anything malformed, so a bad edit never half-applies. Both are
also Casbin adapters (`load_policy(model)`), so a plain `casbin.Enforcer` can read the same source.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import threading
import time
from collections.abc import Hashable, Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml
from casbin.persist.adapter import Adapter

from access.model import ACTIONS
from access.resources import scope_path

Rule = tuple[str, ...]  # ("p", sub, obj, act, env, eft) or ("g", member, role)

EFFECTS = ("allow", "deny")
#: A file changed within this long of being looked at may change again without its size, mtime and ctime
#: changing, since timestamps are only as fine as the kernel's coarse clock (a tick, at most 10 ms) or, on some
#: filesystems (FAT, some NFS and FUSE mounts), whole seconds. While a file is that young its content is hashed
#: too (git's "racy clean" rule). Whole-second timestamps are recognised by a zero sub-second part.
RACY_NS = 2_000_000_000
RACY_FINE_NS = 50_000_000

_SEGMENT = r"[^/\s]+"
_PATH = re.compile(rf"^(?:\*|ns/{_SEGMENT}(?:/workflowrun/{_SEGMENT}|/project/{_SEGMENT}(?:/component/{_SEGMENT})?)?)$")
_ACTION = re.compile(r"^(?:\*|[A-Za-z0-9_.-]+(?::[A-Za-z0-9_.-]+)*(?::\*)?)$")
_ENVIRONMENTS = re.compile(r"^(?:\*|[^|*\s]+(?:\|[^|*\s]+)*)$")


class PolicyError(ValueError):
    """The policy cannot be used as written; the message says where (line, row id or binding) and why."""


# ------------------------------------------------------------------------------------------- validation


def validate(rules: Iterable[Sequence[str]], where: Sequence[str] | None = None) -> list[Rule]:
    """Checks every rule against the model's grammar and drops exact duplicates (first wins). All or nothing:
    one bad rule rejects the policy, because applying the rest could widen access (a malformed deny skipped)."""
    checked: list[Rule] = []
    seen: set[Rule] = set()
    for number, raw in enumerate(rules):
        rule = tuple(str(field).strip() for field in raw)
        place = where[number] if where is not None else f"rule {number + 1}"
        problem = _problem(rule)
        if problem:
            raise PolicyError(f"{place}: {problem}: {', '.join(rule)}")
        if rule not in seen:
            seen.add(rule)
            checked.append(rule)
    return checked


def _problem(rule: Rule) -> str:
    if not rule:
        return "empty rule"
    if rule[0] == "g":
        if len(rule) != 3 or not rule[1] or not rule[2]:
            return "a g rule is `g, <member>, <role>`"
        return ""
    if rule[0] != "p":
        return f"unknown rule type {rule[0]!r} (p or g)"
    if len(rule) != 6:
        return "a p rule is `p, <subject>, <scope path>, <action>, <environments>, <allow|deny>`"
    _, sub, obj, act, env, eft = rule
    if not sub:
        return "empty subject"
    if not _PATH.match(obj):
        return f"scope path {obj!r} is not `*`, `ns/<ns>[/project/<p>[/component/<c>]]` or `ns/<ns>/workflowrun/<r>`"
    if not _ACTION.match(act):
        return f"action {act!r} is not `*`, `<kind>:<verb>` or `<kind>:*`"
    if not _ENVIRONMENTS.match(env):
        return f"environments {env!r} is not `*` or names joined by `|`"
    if eft not in EFFECTS:
        return f"effect {eft!r} is not allow or deny"
    return ""


# ------------------------------------------------------------------------------------------- formats


def parse_csv(text: str) -> list[Rule]:
    """A Casbin policy file: one rule a line, fields split on commas and trimmed; blank lines and `#` comments
    skipped (as Casbin's own file adapter reads it)."""
    rows: list[list[str]] = []
    where: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        rows.append([field.strip() for field in stripped.split(",")])
        where.append(f"line {number}")
    return validate(rows, where)


def compile_yaml(text: str) -> list[Rule]:
    """Roles and bindings (docs/authz-policy.md) to Casbin rules. Each binding becomes one Casbin role,
    `binding:<name>`, holding its role's actions on its scope (with its environments and effect), and each group
    or service account it names is linked to it with a `g` rule: one `p` rule per action, however many members."""
    try:
        document = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise PolicyError(f"not YAML: {exc}") from None
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise PolicyError("the policy is a mapping with `roles` and `bindings`")
    unknown = set(document) - {"roles", "bindings"}
    if unknown:
        raise PolicyError(f"unknown top-level keys: {', '.join(sorted(map(str, unknown)))}")
    roles = document.get("roles") or {}
    if not isinstance(roles, dict):
        raise PolicyError("`roles` maps a role name to its list of actions")
    actions: dict[str, list[str]] = {}
    for name, granted in roles.items():
        if isinstance(granted, str):
            granted = [granted]
        if not isinstance(granted, list) or not granted or not all(isinstance(a, str) for a in granted):
            raise PolicyError(f"role {name!r}: a non-empty list of actions")
        actions[str(name)] = granted
    bindings = document.get("bindings") or []
    if not isinstance(bindings, list):
        raise PolicyError("`bindings` is a list")
    rules: list[list[str]] = []
    where: list[str] = []
    names: set[str] = set()
    for number, binding in enumerate(bindings, start=1):
        compiled, name = _compile_binding(binding, number, actions)
        if name in names:
            raise PolicyError(f"binding {name!r}: the name is used twice")
        names.add(name)
        rules.extend(compiled)
        where.extend([f"binding {name!r}"] * len(compiled))
    return validate(rules, where)


_BINDING_KEYS = {
    "name",
    "role",
    "groups",
    "serviceAccounts",
    "entitlements",
    "namespace",
    "project",
    "component",
    "workflowRun",
    "environments",
    "effect",
}


def _compile_binding(binding: Any, number: int, actions: dict[str, list[str]]) -> tuple[list[list[str]], str]:
    if not isinstance(binding, dict):
        raise PolicyError(f"binding {number}: a mapping")
    name = str(binding.get("name") or f"binding-{number}")
    label = f"binding {name!r}"
    unknown = set(binding) - _BINDING_KEYS
    if unknown:
        raise PolicyError(f"{label}: unknown keys: {', '.join(sorted(map(str, unknown)))}")
    role = binding.get("role")
    if role not in actions:
        raise PolicyError(f"{label}: role {role!r} is not defined under `roles`")
    members = [f"groups:{g}" for g in _strings(binding, "groups", label)]
    members += [f"sub:{s}" for s in _strings(binding, "serviceAccounts", label)]
    for entitlement in _strings(binding, "entitlements", label):
        if ":" not in entitlement.strip(":"):
            raise PolicyError(f"{label}: entitlement {entitlement!r} is not `<claim>:<value>`")
        members.append(entitlement)
    if not members:
        raise PolicyError(f"{label}: names no groups, serviceAccounts or entitlements")
    namespace, project, component, run = (
        _string(binding, key, label) for key in ("namespace", "project", "component", "workflowRun")
    )
    if (project or component or run) and not namespace:
        raise PolicyError(f"{label}: project, component and workflowRun need a namespace")
    if component and not project:
        raise PolicyError(f"{label}: component needs a project")
    if run and project:
        raise PolicyError(f"{label}: a workflowRun sits under its namespace, not under a project")
    environments = _strings(binding, "environments", label)
    effect = str(binding.get("effect", "allow"))
    subject = f"binding:{name}"
    path = scope_path(namespace, project, component, run)
    env = "|".join(environments) if environments else "*"
    rules = [["p", subject, path, action, env, effect] for action in actions[role]]
    rules += [["g", member, subject] for member in members]
    return rules, name


def _strings(binding: dict[str, Any], key: str, label: str) -> list[str]:
    value = binding.get(key) or []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, (str, int)) and str(v).strip() for v in value):
        raise PolicyError(f"{label}: `{key}` is a list of non-empty names")
    return [str(v).strip() for v in value]


def _string(binding: dict[str, Any], key: str, label: str) -> str:
    value = binding.get(key)
    if value is None:
        return ""
    if not isinstance(value, (str, int)) or not str(value).strip():
        raise PolicyError(f"{label}: `{key}` is a non-empty name")
    return str(value).strip()


def known_action(pattern: str) -> bool:
    """Whether an action pattern can ever match one of OpenChoreo's actions (a typo like `log:view` cannot);
    used for warnings, not errors, so a policy shared with newer actions still loads."""
    if pattern == "*":
        return True
    if pattern.endswith(":*"):
        return any(a.startswith(pattern[:-1]) for a in ACTIONS)
    return pattern in ACTIONS


# ------------------------------------------------------------------------------------------- sources


def add_rules(model: Any, rules: Iterable[Rule]) -> None:
    """Puts validated rules into a Casbin model: the `p` lines and the `g` links, each in policy order."""
    rules = list(rules)
    for ptype in ("p", "g"):
        model.add_policies(ptype, ptype, [list(rule[1:]) for rule in rules if rule[0] == ptype])


class _CasbinAdapter(Adapter):  # type: ignore[misc]  # casbin ships no types
    """Lets a plain `casbin.Enforcer(model, source)` read the same rules (the reference in tests and bench)."""

    def rules(self) -> list[Rule]:  # pragma: no cover - overridden
        raise NotImplementedError

    def load_policy(self, model: Any) -> None:
        add_rules(model, self.rules())


class StaticPolicySource(_CasbinAdapter):
    """Rules held in memory (tests, benchmarks): never changes."""

    def __init__(self, rules: Iterable[Sequence[str]]):
        self._rules = validate(rules)

    def describe(self) -> str:
        return f"{len(self._rules)} rules in memory"

    def stamp(self) -> Hashable:
        return 0

    def rules(self) -> list[Rule]:
        return list(self._rules)


class FilePolicySource(_CasbinAdapter):
    """A policy file: YAML (`.yaml`/`.yml`, roles and bindings) or Casbin CSV (any other name).

    The stamp is (device, inode, size, mtime, ctime): an atomic replace (rename, a Kubernetes ConfigMap's symlink
    swap) changes the inode, an in-place write changes ctime. While the file is younger than the racy window (50 ms,
    or 2 s on a filesystem with whole-second timestamps) its content hash joins the stamp, so two writes within
    one timestamp tick are told apart too."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._yaml = self.path.suffix.lower() in (".yaml", ".yml")
        self._digests: dict[tuple[int, ...], str] = {}

    def describe(self) -> str:
        return str(self.path)

    def _stat(self) -> os.stat_result:
        return os.stat(self.path)

    def stamp(self) -> Hashable:
        try:
            st = self._stat()
        except OSError as exc:
            return ("unreadable", type(exc).__name__, exc.errno)
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        coarse = st.st_mtime_ns % 1_000_000_000 == 0 and st.st_ctime_ns % 1_000_000_000 == 0
        if time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) < (RACY_NS if coarse else RACY_FINE_NS):
            try:
                digest = hashlib.blake2b(self.path.read_bytes(), digest_size=16).hexdigest()
            except OSError as exc:
                return ("unreadable", type(exc).__name__, exc.errno)
            self._digests = {key: digest}  # only the newest matters: an older key never comes back unchanged
            return (*key, digest)
        return (*key, self._digests.get(key))

    def rules(self) -> list[Rule]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PolicyError(f"{self.path}: cannot read: {exc}") from None
        try:
            return compile_yaml(text) if self._yaml else parse_csv(text)
        except PolicyError as exc:
            raise PolicyError(f"{self.path}: {exc}") from None


SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS casbin_rule (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ptype TEXT NOT NULL,
    v0 TEXT, v1 TEXT, v2 TEXT, v3 TEXT, v4 TEXT, v5 TEXT
)
"""


class SQLitePolicySource(_CasbinAdapter):
    """The `casbin_rule` table of a SQLite file (created when missing); rows are edited by any tool, any process.

    The stamp is `PRAGMA data_version` on one long-lived connection, which SQLite changes whenever another
    connection commits, plus the file's inode (a replaced file is reopened). Rules are read on a fresh connection
    in one transaction, so a reload sees one committed state. A PostgreSQL source would be the same class with
    the stamp from a version row bumped by a trigger on the table."""

    def __init__(self, path: str | os.PathLike[str], busy_timeout_ms: int = 2000):
        self.path = Path(path)
        self._busy_timeout_ms = busy_timeout_ms
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._inode: int | None = None
        conn = self._connect()
        try:
            conn.execute(SQLITE_SCHEMA)
        finally:
            conn.close()

    def describe(self) -> str:
        return f"sqlite:{self.path}"

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(
            self.path, timeout=self._busy_timeout_ms / 1000, check_same_thread=False, isolation_level=None
        )

    def stamp(self) -> Hashable:
        with self._lock:
            try:
                inode = os.stat(self.path).st_ino
                if self._conn is None or inode != self._inode:
                    if self._conn is not None:
                        self._conn.close()
                    self._conn, self._inode = self._connect(), inode
                version = self._conn.execute("PRAGMA data_version").fetchone()[0]
            except (OSError, sqlite3.Error) as exc:
                if self._conn is not None:
                    self._conn.close()
                self._conn = None
                return ("unreadable", type(exc).__name__, str(exc))
            return (inode, version)

    def rules(self) -> list[Rule]:
        try:
            conn = self._connect()
            try:
                conn.execute("BEGIN")
                rows = conn.execute("SELECT id, ptype, v0, v1, v2, v3, v4, v5 FROM casbin_rule ORDER BY id").fetchall()
                conn.execute("COMMIT")
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise PolicyError(f"{self.path}: cannot read casbin_rule: {exc}") from None
        rules: list[list[str]] = []
        where: list[str] = []
        for row_id, ptype, *values in rows:
            fields = [ptype or ""]
            # Trailing NULLs (or empty strings, as some Casbin adapters write) are absent fields: a g rule fills
            # v0 and v1 only. A NULL in the middle is a hole.
            while values and values[-1] in (None, ""):
                values.pop()
            if any(v is None for v in values):
                raise PolicyError(f"{self.path}: casbin_rule id {row_id}: a NULL before the last field")
            fields.extend(values)
            rules.append(fields)
            where.append(f"casbin_rule id {row_id}")
        try:
            return validate(rules, where)
        except PolicyError as exc:
            raise PolicyError(f"{self.path}: {exc}") from None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
