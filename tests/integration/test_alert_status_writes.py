"""A rule's status is written by the reconciler while users re-apply the rule: a status write must never put an
older spec or older labels back (a real SQLite alert store, the writes racing on real threads)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from domain.alerting import RuleStatus, rule_from_resource
from observer.alerting.db import open_engine
from observer.alerting.resources import ResourceStore


def rule(threshold: int):
    return rule_from_resource(
        {
            "kind": "ObservabilityAlertRule",
            "metadata": {"name": "r", "namespace": "acme", "labels": {"openchoreo.dev/project": "shop"}},
            "spec": {
                "name": "r",
                "source": {"type": "log", "query": "ERROR"},
                "condition": {"window": "5m", "interval": "1m", "operator": "gt", "threshold": threshold},
                "actions": {"notifications": {"channels": ["ops"]}},
            },
        }
    )


async def test_status_writes_never_revert_a_reapplied_rule(tmp_path: Path):
    store = ResourceStore(open_engine(str(tmp_path / "alerts.db")))
    await store.put_rule(rule(1))
    stop = asyncio.Event()

    async def reconcile_statuses() -> int:
        writes = 0
        while not stop.is_set():
            await store.set_rule_status("acme", "r", RuleStatus(phase=f"Ready-{writes}"))
            writes += 1
        return writes

    writer = asyncio.create_task(reconcile_statuses())
    try:
        for threshold in range(2, 80):
            await store.put_rule(rule(threshold))
            await asyncio.sleep(0)
            stored = await store.get_rule("acme", "r")
            assert stored.condition.threshold == threshold  # no status write put an older spec back
    finally:
        stop.set()
        assert await writer > 0
    store.engine.dispose()
