"""The embedded decision point at 10,000 policy lines: authorize() (indexed, with the per-call reload check on a
real policy file and a real SQLite table) next to plain pycasbin enforce on the same model and rules, the baseline
measured in the same run. The subject is a user in eight groups; requests mix allowed and denied scopes."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import casbin

from access import model as authz
from access.casbin_pdp import CasbinAuthorizer, entitlements_of, plain_enforcer
from access.model import PermissionDenied, Resource, Subject
from access.policy_sources import RACY_NS, FilePolicySource, SQLitePolicySource, StaticPolicySource
from access.resources import resource_path, scope_path
from bench.harness import percentile, report

P_LINES = 10_000
NAMESPACES = 400
PROJECTS = 5
COMPONENTS = 4
GROUPS = 3_000
ROLES = {
    "viewer": [authz.LOGS_VIEW, authz.EVENTS_VIEW, authz.METRICS_VIEW, authz.TRACES_VIEW, authz.ALERTS_VIEW],
    "developer": ["logs:*", "events:*", "metrics:*", "traces:*"],
    "oncall": ["alerts:*", "incidents:*"],
    "admin": ["*"],
}
ENVIRONMENTS = ["dev", "staging", "prod"]
SUBJECT_GROUPS = [f"team-{n}" for n in range(0, 8 * 37, 37)]
CHECKED = 20


def policy(seed: int = 7) -> list[tuple[str, ...]]:
    """Bindings of roles to groups on random scopes (a tenth environment-limited, a twentieth deny) until the
    p lines reach P_LINES; the bench subject's eight groups get a few bindings each, like everyone else."""
    rng = random.Random(seed)
    rules: list[tuple[str, ...]] = []
    p_lines = 0
    number = 0
    while p_lines < P_LINES:
        number += 1
        role = rng.choice(["viewer", "viewer", "developer", "oncall", "admin"] if number % 50 else ["admin"])
        namespace = f"ns-{rng.randrange(NAMESPACES)}"
        depth = rng.random()
        project = f"p-{rng.randrange(PROJECTS)}" if depth > 0.3 else ""
        component = f"c-{rng.randrange(COMPONENTS)}" if project and depth > 0.7 else ""
        path = scope_path(namespace, project, component) if number % 500 else "*"
        env = "|".join(rng.sample(ENVIRONMENTS, rng.randint(1, 2))) if rng.random() < 0.1 else "*"
        effect = "deny" if rng.random() < 0.05 else "allow"
        binding = f"binding:b{number}"
        for action in ROLES[role]:
            rules.append(("p", binding, path, action, env, effect))
            p_lines += 1
        for _ in range(rng.randint(1, 3)):
            rules.append(("g", f"groups:team-{rng.randrange(GROUPS)}", binding))
    return rules


def requests(rules: list[tuple[str, ...]], seed: int = 11, count: int = 500) -> list[tuple[str, Resource]]:
    """Half the requests fall inside (or below) a scope one of the subject's groups is bound on, half anywhere."""
    rng = random.Random(seed)
    mine = {f"groups:{group}" for group in SUBJECT_GROUPS}
    bindings = {rule[2] for rule in rules if rule[0] == "g" and rule[1] in mine}
    near = sorted({rule[2] for rule in rules if rule[0] == "p" and rule[1] in bindings and rule[2] != "*"})
    out = []
    for number in range(count):
        namespace = f"ns-{rng.randrange(NAMESPACES)}"
        project = f"p-{rng.randrange(PROJECTS)}" if rng.random() < 0.8 else ""
        component = f"c-{rng.randrange(COMPONENTS)}" if project and rng.random() < 0.6 else ""
        if number % 2 and near:
            parts = rng.choice(near).split("/")
            namespace = parts[1]
            project = parts[3] if len(parts) > 3 else project
            component = parts[5] if len(parts) > 5 else (component if project else "")
        environment = rng.choice(["", *ENVIRONMENTS])
        kind = "component" if component else "project" if project else "namespace"
        out.append(
            (
                rng.choice(authz.ACTIONS),
                Resource(kind, component or project or namespace, namespace, project, component, environment),
            )
        )
    return out


async def _timed(call: Callable[[], Awaitable[None]], repeat: int, warmup: int = 200) -> dict[str, float]:
    """Wall-clock percentiles, and the same in this thread's CPU time: on a busy machine the wall-clock tail is
    the scheduler's (a preempted call waits a time slice), the CPU-time tail is the code's."""
    for _ in range(warmup):
        await call()
    wall, cpu = [], []
    for _ in range(repeat):
        started, started_cpu = time.perf_counter(), time.thread_time()
        await call()
        cpu.append((time.thread_time() - started_cpu) * 1000)
        wall.append((time.perf_counter() - started) * 1000)
    return {
        "p50_ms": round(percentile(wall, 0.5), 4),
        "p99_ms": round(percentile(wall, 0.99), 4),
        "mean_ms": round(sum(wall) / len(wall), 4),
        "cpu_p50_ms": round(percentile(cpu, 0.5), 4),
        "cpu_p99_ms": round(percentile(cpu, 0.99), 4),
        "n": repeat,
    }


def _authorize_loop(authorizer: CasbinAuthorizer, subject: Subject, asked: list[tuple[str, Resource]]):
    position = 0
    allowed = 0

    async def call() -> None:
        nonlocal position, allowed
        action, resource = asked[position % len(asked)]
        position += 1
        try:
            await authorizer.authorize(subject, action, resource)
            allowed += 1
        except PermissionDenied:
            pass

    return call, lambda: allowed


def _enforce_loop(enforcer: casbin.Enforcer, entitlements: tuple[str, ...], asked: list[tuple[str, Resource]]):
    """A plain Enforcer asked the same requests in turn, as `_authorize_loop` asks the authorizer."""
    position = 0

    async def call() -> None:
        nonlocal position
        action, resource = asked[position % len(asked)]
        position += 1
        enforcer.enforce(entitlements, resource_path(resource), action, resource.environment)

    return call


def run(repeat: int = 5_000, baseline_repeat: int = 20) -> None:
    rules = policy()
    p_lines = sum(1 for rule in rules if rule[0] == "p")
    g_lines = len(rules) - p_lines
    subject = Subject("user", "groups", tuple(SUBJECT_GROUPS), token="bench")
    asked = requests(rules)

    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "policy.csv"
        csv.write_text("".join(", ".join(rule) + "\n" for rule in rules))
        database = Path(tmp) / "policy.db"
        conn = sqlite3.connect(database)
        SQLitePolicySource(database).close()
        conn.executemany(
            "INSERT INTO casbin_rule (ptype, v0, v1, v2, v3, v4) VALUES (?, ?, ?, ?, ?, ?)",
            [tuple(rule) + (None,) * (6 - len(rule)) for rule in rules],
        )
        conn.commit()
        conn.close()
        # The steady state: past the window in which a just-written file's content is hashed on every call.
        time.sleep(RACY_NS / 1e9 + 0.1)

        started = time.perf_counter()
        by_file = CasbinAuthorizer(FilePolicySource(csv))
        load_ms = (time.perf_counter() - started) * 1000
        db_source = SQLitePolicySource(database)
        by_db = CasbinAuthorizer(db_source)

        async def measure() -> tuple[dict, dict, int]:
            file_call, file_allowed = _authorize_loop(by_file, subject, asked)
            file_ms = await _timed(file_call, repeat)
            db_call, _ = _authorize_loop(by_db, subject, asked)
            db_ms = await _timed(db_call, repeat)
            return file_ms, db_ms, file_allowed()

        file_ms, db_ms, allowed = asyncio.run(measure())
        assert by_file.reloads == 0 and by_db.reloads == 0, "the bench must measure the steady state"

        plain = plain_enforcer(StaticPolicySource(rules))
        entitlements = entitlements_of(subject)
        plain_ms = asyncio.run(_timed(_enforce_loop(plain, entitlements, asked), baseline_repeat, warmup=3))

        # The line scan alone: the same plain enforce, its role lookups answered from a precomputed set.
        scan = plain_enforcer(StaticPolicySource(rules))
        roles = by_file.snapshot.roles
        scan.add_function("entitled", lambda subs, role: role in roles(tuple(subs)))
        scan_ms = asyncio.run(_timed(_enforce_loop(scan, entitlements, asked), baseline_repeat, warmup=3))

        # Same answers on every request (the unit tests prove it on random policies; here on this one).
        snapshot = by_file.snapshot
        mismatches = sum(
            snapshot.enforce(entitlements, resource_path(r), a, r.environment)
            != plain.enforce(entitlements, resource_path(r), a, r.environment)
            for a, r in asked[:CHECKED]
        )
        db_source.close()

    speedup = round(plain_ms["p50_ms"] / file_ms["p50_ms"]) if file_ms["p50_ms"] else 0
    report(
        "authz_pdp",
        [
            ("policy lines (p / g)", f"{p_lines:,} / {g_lines:,}", ""),
            ("subject groups", f"{len(SUBJECT_GROUPS)}", ""),
            ("load + index (ms)", f"{load_ms:.0f}", ""),
            ("plain casbin enforce p50 / p99 (ms)", f"{plain_ms['p50_ms']} / {plain_ms['p99_ms']}", "baseline"),
            (
                "plain enforce, roles precomputed p50 / p99 (ms)",
                f"{scan_ms['p50_ms']} / {scan_ms['p99_ms']}",
                "the scan alone",
            ),
            ("authorize, policy file p50 / p99 (ms)", f"{file_ms['p50_ms']} / {file_ms['p99_ms']}", "target p50 <= 1"),
            ("  same, CPU time p50 / p99 (ms)", f"{file_ms['cpu_p50_ms']} / {file_ms['cpu_p99_ms']}", ""),
            ("authorize, SQLite p50 / p99 (ms)", f"{db_ms['p50_ms']} / {db_ms['p99_ms']}", "target p50 <= 1"),
            ("  same, CPU time p50 / p99 (ms)", f"{db_ms['cpu_p50_ms']} / {db_ms['cpu_p99_ms']}", ""),
            ("speed-up at p50 (file vs plain)", f"{speedup}x", ""),
            ("allowed / asked", f"{allowed} / {repeat + 200}", ""),
            (f"decisions differing from plain (of {CHECKED})", f"{mismatches}", "must be 0"),
        ],
        {
            "p_lines": p_lines,
            "g_lines": g_lines,
            "groups": len(SUBJECT_GROUPS),
            "load_ms": round(load_ms, 1),
            "plain": plain_ms,
            "plain_scan_only": scan_ms,
            "file": file_ms,
            "sqlite": db_ms,
            "mismatches": mismatches,
        },
    )


if __name__ == "__main__":
    run()
